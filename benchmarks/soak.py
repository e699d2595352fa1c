"""Soak: three cameras with pose, an experiment and recording for an hour; nothing lost, no leak.

``python -m benchmarks.soak [--minutes 60]`` runs ``DeepLabStream.py --headless
--recording-enabled --experiment-enabled --duration`` on IBL's rig: a simulated ``body`` camera
at 30 Hz and two emulated Baslers (pylon's camera emulator, ``PYLON_CAMEMU=2``), ``left`` at
60 Hz and ``right`` at 150 Hz, with the bundled model and an experiment on ``body``. Every
few seconds it reads the resident memory (RSS) of every process of the session; at the end it
reads ``session.json``.

Figures: frames captured, recorded and lost per camera (goal: 0 lost), whether recorded + lost
= captured, and per process the RSS slope after warm-up in MB per 10 minutes (least squares
over the samples after the first fifth of the run, at least 30 s; goal below 1 MB per 10
minutes) with its
first and last RSS. The "baseline" column is empty: a soak has no second contender, only goals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import now_iso, print_table, save_result
from core.figures import Figure
from core.machine import machine_description

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMULATED = ("0815-0000", "0815-0001")
SAMPLE_EVERY_S = 5.0
WARM_UP_FRACTION = 0.2
WARM_UP_MIN_S = 30.0  # model loading and buffers filling
STOP_MARGIN_S = 5.0  # samples this close to the end may catch processes stopping

SETTINGS = f"""\
[Camera body]
SOURCE = synthetic
WIDTH = 640
HEIGHT = 480
FRAMERATE = 30
[Camera left]
SOURCE = basler
SERIAL = {EMULATED[0]}
WIDTH = 640
HEIGHT = 512
FRAMERATE = 60
EXPOSURE = 1000
[Camera right]
SOURCE = basler
SERIAL = {EMULATED[1]}
WIDTH = 640
HEIGHT = 512
FRAMERATE = 150
EXPOSURE = 1000
[Recording]
CODEC = h264
MIN_FREE_SPACE = 1
WARN_FREE_SPACE = 2
[Device stimulus_box]
TYPE = log
"""

EXPERIMENT = """\
[Experiment]
DESCRIPTION = Soak: a pulse each time the nose enters the left half of the simulated camera
[Trigger nose_left]
KIND = region
CAMERA = body
SHAPE = rect 0 0 320 480
MODE = entered
KEYPOINT = nose
[Stimulation pulse]
DEVICE = stimulus_box
COMMAND = pulse
CHANNEL = 1
DURATION = 0.05
[Rule pulse]
WHEN = nose_left
DO = pulse
"""


def run_soak(folder: Path, minutes: float) -> tuple[dict[str, Any], dict[str, list]]:
    """Run the session; its session.json and the RSS samples of each process (MB)."""
    experiment = folder / "soak_experiment.ini"
    experiment.write_text(EXPERIMENT, encoding="utf-8")
    settings = folder / "settings.ini"
    settings.write_text(SETTINGS + f"[Experiment]\nNAME = {experiment}\n", encoding="utf-8")
    environment = {**os.environ, "PYLON_CAMEMU": "2"}
    command = [
        sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
        str(settings), "--output-dir", str(folder / "out"), "--recording-enabled",
        "--experiment-enabled", "--duration", f"{minutes * 60:g}", "--log-level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment)
    samples: dict[str, list] = {}
    began = time.monotonic()
    running_s = minutes * 60 - STOP_MARGIN_S
    every_s = min(SAMPLE_EVERY_S, max(1.0, minutes))  # a short run: a sample a second
    while process.poll() is None:
        elapsed = time.monotonic() - began
        if elapsed <= running_s:  # after it: the session stops, processes shrink and end
            _sample(process.pid, samples, elapsed)
        time.sleep(every_s)
    if process.returncode not in (0, 1):
        raise SystemExit(f"the soak session failed (exit code {process.returncode})")
    session = next((folder / "out").iterdir())
    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    info["exit_code"] = process.returncode
    # Name each process by its role in the session (main, capture:left, recorder:left, pose).
    roles = {str(pid): name for name, pid in info["processes"].items() if pid is not None}
    named = {roles.get(pid, f"other:{pid}"): points for pid, points in samples.items()}
    return info, named


def _sample(pid: int, samples: dict[str, list], elapsed_s: float) -> None:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            rss_mb = process.memory_info().rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if rss_mb <= 0:  # a process that has just ended
            continue
        samples.setdefault(str(process.pid), []).append((elapsed_s, rss_mb))


def slope_mb_per_10min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares RSS slope after warm-up, MB per 10 minutes; None with too few samples."""
    if len(points) < 4:
        return None
    times = np.array([t for t, _ in points])
    kept = times >= max(times[-1] * WARM_UP_FRACTION, WARM_UP_MIN_S)
    if kept.sum() < 3:
        return None
    values = np.array([v for _, v in points])[kept]
    slope_per_s = np.polyfit(times[kept], values, 1)[0]
    return float(slope_per_s * 600)


def figures_of(info: dict[str, Any], samples: dict[str, list]) -> list[Figure]:
    """Frames per camera and memory slope per process."""
    figures = []
    for name, camera in info["cameras"].items():
        captured, recorded = camera["frames_captured"], camera["frames_recorded"]
        lost = camera["frames_lost_in_recording"]
        figures += [
            Figure(f"{name}_captured", f"{name}: frames captured", captured, None, compare=False),
            Figure(f"{name}_recorded", f"{name}: frames recorded", recorded, None, compare=False),
            Figure(f"{name}_lost", f"{name}: frames lost in recording", lost, None,
                   goal="0", compare=False),
            Figure(f"{name}_balanced", f"{name}: recorded + lost = captured",
                   int(recorded + lost == captured), None, goal="1 (yes)", compare=False),
        ]  # fmt: skip
    for name, points in sorted(samples.items()):
        slope = slope_mb_per_10min(points)
        figures += [
            Figure(f"rss_slope_{name}", f"{name}: RSS slope after warm-up",
                   None if slope is None else round(slope, 3), None, "MB / 10 min",
                   goal="< 1", compare=False),
            Figure(f"rss_last_{name}", f"{name}: RSS at the end", round(points[-1][1], 1), None,
                   "MB", compare=False),
        ]  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length (default 60)")
    parser.add_argument("--quick", action="store_true", help="3 minutes")
    args = parser.parse_args(argv)
    minutes = 3.0 if args.quick else args.minutes
    machine = machine_description()
    started = now_iso()
    with tempfile.TemporaryDirectory(prefix="dls-soak-") as folder:
        info, samples = run_soak(Path(folder), minutes)
    figures = figures_of(info, samples)
    print_table(f"Soak: {minutes:g} minutes, three cameras, pose, experiment, recording",
                figures, machine, project="measured", baseline="-")  # fmt: skip
    details = {
        "minutes": minutes,
        "exit_code": info["exit_code"],
        "errors": info["errors"],
        "pose": {k: v.get("frames_analysed") for k, v in (info["pose"] or {})["cameras"].items()},
        "rss_samples_mb": {name: points[:: max(1, len(points) // 60)]
                           for name, points in samples.items()},
    }  # fmt: skip
    save_result("soak", figures, started=started, machine=machine, details=details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
