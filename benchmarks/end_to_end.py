"""End to end: the benchmark mode of ``DeepLabStream.py``, camera -> pose -> experiment -> device.

    python -m benchmarks.end_to_end [--frames N] [--fps F] [--quick]

Runs ``DeepLabStream.py --headless --benchmark-enabled --experiment-enabled --recording-enabled
--frames N`` on the simulated arena (640x480 at ``--fps``, default 30), the bundled model,
``ExampleExperiment`` on a log-only device, exactly as a user would, and reads its
``benchmark.json``: per-stage latency, rates and the naive single-thread loop on the same model
and frames, recording in a writer thread (the same work), and the same loop without recording.
Saved to ``benchmarks/results/end_to_end.json`` (the whole ``benchmark.json`` is kept in
``details``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.live.selftest.benchmark_mode import comparison

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRAMES, QUICK_FRAMES = 3000, 300


def run_benchmark_mode(folder: Path, frames: int, fps: float) -> dict:
    """Run the benchmark mode in a fresh interpreter; its benchmark.json."""
    settings = folder / "settings.ini"
    settings.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {fps:g}\nSEED = 1\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    command = [
        sys.executable,
        str(PROJECT_ROOT / "DeepLabStream.py"),
        "--settings",
        str(settings),
        "--headless",
        "--benchmark-enabled",
        "--experiment-enabled",
        "--recording-enabled",
        "--frames",
        str(frames),
        "--output-dir",
        str(folder / "out"),
        "--log-level",
        "WARNING",
    ]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL)
    (result,) = (folder / "out").glob("*/benchmark.json")
    return json.loads(result.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, help=f"frames (default {DEFAULT_FRAMES})")
    parser.add_argument("--fps", type=float, default=30.0, help="the camera's rate")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES} frames")
    args = parser.parse_args(argv)
    frames = args.frames or (QUICK_FRAMES if args.quick else DEFAULT_FRAMES)
    started, machine = now_iso(), machine_description()
    print(f"end to end: benchmark mode, {frames} frames at {args.fps:g} fps ...", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        data = run_benchmark_mode(Path(folder), frames, args.fps)
    naive = data.pop("naive")
    figures = comparison(data, naive)
    other = data.get("naive_no_recording")
    for figure in comparison(data, other) if other else []:
        if figure.key.startswith(("end_to_end", "closed_loop")):
            figures.append(
                dataclasses.replace(
                    figure,
                    key=f"{figure.key}.vs_no_recording",
                    label=f"{figure.label}, vs naive loop not recording",
                )
            )
    for stage in ("transport", "queue_wait", "preprocessing", "inference", "decoding"):
        figures.append(
            Figure(
                f"{stage}_p50",
                f"{stage.replace('_', ' ')} p50",
                (data["latency_ms"].get(stage) or {}).get("p50"),
                (naive["latency_ms"].get(stage) or {}).get("p50"),
                "ms",
                compare=False,
            )
        )
    lost = data["tracking_lost_fraction"]
    figures.append(Figure("tracking_lost_fraction", "tracking lost (share)", lost, None))
    print_table(
        f"End to end at {args.fps:g} fps, {frames} frames, recording, experiment on a log device",
        figures,
        machine,
        project="app",
        baseline="naive loop, recording",
    )
    path = save_result(
        "end_to_end",
        figures,
        started=started,
        machine=machine,
        details=data,
        baseline_details=naive,
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
