"""Closed-loop latency: camera frame -> pose -> decision -> command on the stimulus board.

    python -m benchmarks.closed_loop [--duration S] [--quick]

The app: the simulated arena at 30 fps 640x480, the bundled model, recording on, and an
experiment that sends a 5 ms pulse on every pose update to the project's own stimulus firmware
running under simavr (its UART on a pty). From ``events.csv``: frame arrival (host clock) ->
command written on the pty, and -> the board's acknowledgement received (the board sends it
right after switching the pin). Baseline, in the same run: the naive single-thread loop
(grab -> preprocess -> infer -> decide -> write, as DeepLabCut-Live does) on the same model,
frames, experiment and firmware. Saved to ``benchmarks/results/closed_loop.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Figure, machine_description, now_iso, print_table, save_result
from cameras.arena import ArenaParams, SimulatedArena
from cameras.base import host_now_ns
from experiments.observation import Observation
from experiments.registry import load_experiment
from pose.backends import open_backend
from pose.estimator import PoseEstimator
from pose.loading import load_model
from pose.worker import percentiles
from settings import load_settings
from stimulation import create_device
from stream.runner import StreamRunner
from stream.supervisor import Stream

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
EXPERIMENT = '''
from experiments.actions import Action
from experiments.base import Experiment


class PulseEveryUpdate(Experiment):
    """A benchmark's experiment: a 5 ms pulse on channel 0 at every pose update."""

    def __init__(self) -> None:
        super().__init__(name="pulse_every_update")
        self.declare_output("board", 0)

    def on_update(self, obs, t):
        return [Action.pulse("board", 0, 0.005, reason="benchmark")]
'''


class Board:
    """The stimulus firmware under simavr, its UART on a pty."""

    def __init__(self) -> None:
        subprocess.run(["make", "-C", str(FIRMWARE), "all", "sim"], check=True, capture_output=True)
        self.process = subprocess.Popen(
            [
                str(FIRMWARE / "build" / "simstim"),
                "--quit-on-eof",
                "--wait-open",
                str(FIRMWARE / "build" / "stimulus.elf"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = self.process.stdout.readline().split()[1]

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def app_run(folder: Path, duration_s: float) -> dict[str, Any]:
    """The app with recording and the experiment; latencies from its own events.csv."""
    board = Board()
    experiment_file = folder / "bench_experiment.py"
    experiment_file.write_text(EXPERIMENT, encoding="utf-8")
    settings_file = folder / "settings.ini"
    settings_file.write_text(
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 123\n"
        f"[Experiment]\nNAME = {experiment_file}:PulseEveryUpdate\n"
        f"[Device board]\nTYPE = serial\nPORT = {board.port}\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    stream = Stream(load_settings(settings_file), output_dir=folder / "out")
    runner = StreamRunner(stream, duration_s=duration_s, status_out=None)
    try:
        stream.open()
        stream.start_analysis(experiment=True)
        stream.start_recording()
        stream.start()
        runner.run_headless()
    finally:
        stream.stop("benchmark over")
        board.stop()
    assert stream.session_dir is not None
    events = pd.read_csv(stream.session_dir / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    pulses = pulses.iloc[10:]  # warm
    stats = stream.camera_stats()["arena"]
    return {
        "written_ms": _ms(pulses["written"] - pulses["host_timestamp"]),
        "acknowledged_ms": _ms((pulses["acknowledged"] - pulses["host_timestamp"]).dropna()),
        "decision_ms": _ms(pulses["decided"] - pulses["pose_ready"]),
        "actions": len(pulses),
        "captured": stats["captured"],
        "recorded": stats.get("recorded"),
        "analysed": stats.get("analysed"),
    }


def naive_run(duration_s: float) -> dict[str, Any]:
    """Grab -> preprocess -> infer -> decide -> write, in one thread, paced like the camera."""
    board = Board()
    device = create_device("serial", port=board.port, hello_timeout_s=10.0)
    device.open()
    description = load_model(None)
    threads = max(1, min(4, (os.cpu_count() or 2) - 1))
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    backend.warm_up(1)
    estimator = PoseEstimator(description, backend, (480, 640, 3), max_batch=1)
    experiment = load_experiment("ExampleExperiment")  # only for its machinery: same cost
    experiment.start()
    arena = SimulatedArena(ArenaParams(width=640, height=480, seed=123))
    frame = np.empty((480, 640, 3), np.uint8)
    written, acknowledged, records = [], [], []
    due = time.perf_counter()
    end = due + duration_s
    index = 0
    while due < end:
        arena.render_next(frame)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        arrived = host_now_ns()
        pose = estimator.estimate([frame])[0]
        experiment.update(Observation(index / 30, "arena", index, pose, description.keypoints))
        record = device.pulse(0, 0.005)
        written.append((record.written_ns - arrived) / 1e6)
        records.append((arrived, record))
        index += 1
        due += 1 / 30
        if time.perf_counter() > due:  # a busy loop misses camera frames
            due += (int((time.perf_counter() - due) * 30) + 1) / 30
    time.sleep(0.2)
    for arrived, record in records:
        if record.acked_ns is not None:
            acknowledged.append((record.acked_ns - arrived) / 1e6)
    device.close()
    board.stop()
    return {
        "written_ms": _ms(pd.Series(written[10:]) / 1e3),
        "acknowledged_ms": _ms(pd.Series(acknowledged[10:]) / 1e3),
        "actions": len(written),
    }


def _ms(seconds: pd.Series) -> dict[str, float]:
    """The percentiles session.json uses, in ms; NaN for each when there are none."""
    figures = percentiles(list(np.asarray(seconds, float) * 1e3))
    return figures or dict.fromkeys(("p50", "p95", "p99", "max"), float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    duration = 8.0 if args.quick else args.duration
    started, machine = now_iso(), machine_description()
    with tempfile.TemporaryDirectory() as folder:
        app = app_run(Path(folder), duration)
    naive = naive_run(duration)
    figures = []
    for key, label, goal in (
        ("written_ms", "frame -> command written", "p50 <= 12, p99 <= 20"),
        ("acknowledged_ms", "frame -> board acknowledged", ""),
    ):
        for stat in ("p50", "p95", "p99", "max"):
            figures.append(
                Figure(
                    f"{key}.{stat}",
                    f"{label} {stat}",
                    app[key][stat],
                    naive[key][stat],
                    "ms",
                    goal=goal if stat != "max" else "",
                )
            )
    figures.append(Figure("actions", "actions", app["actions"], naive["actions"], compare=False))
    print_table(
        f"closed loop at 30 fps 640x480, recording on, {duration:g} s",
        figures,
        machine,
        project="app",
        baseline="naive loop",
    )
    path = save_result(
        "closed_loop",
        figures,
        started=started,
        machine=machine,
        details=app,
        baseline_details=naive,
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
