"""End to end: the benchmark mode of ``DeepLabStream.py``, camera -> pose -> experiment -> device.

    python -m benchmarks.end_to_end [--frames N] [--fps F] [--quick]

Runs ``DeepLabStream.py --headless --benchmark-enabled --experiment-enabled --recording-enabled
--frames N`` on the simulated arena (640x480 at ``--fps``, default 30), the bundled model,
``ExampleExperiment`` on a log-only device, exactly as a user would, and reads its
``benchmark.json``: per-stage latency, rates and the naive single-thread loop on the same model
and frames, recording in a writer thread (the same work), and the same loop without recording.
Saved to ``benchmarks/results/end_to_end.json`` (the whole ``benchmark.json`` is kept in
``details``). The app exits 1 when its loop missed the session's deadline (the health check):
the benchmark goes on and keeps the exit code and the health verdict in ``details["run"]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.app_run import PROJECT_ROOT, run_app
from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.live.selftest.benchmark_mode import BENCHMARK_JSON, comparison

DEFAULT_FRAMES, QUICK_FRAMES = 3000, 300


def run_benchmark_mode(folder: Path, frames: int, fps: float, root: Path = PROJECT_ROOT) -> dict:
    """Run the benchmark mode in a fresh interpreter; its benchmark.json.

    The app exits 1 when the loop missed its deadline (the health check): the figures are
    still the point, so the exit code and the health verdict go into ``run`` of the result.
    """
    settings = folder / "settings.ini"
    settings.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {fps:g}\nSEED = 1\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    arguments = [
        "--benchmark-enabled",
        "--experiment-enabled",
        "--recording-enabled",
        "--frames",
        str(frames),
    ]
    run = run_app(settings, arguments, folder / "out", root=root)
    result = run.session / BENCHMARK_JSON
    if not result.is_file():
        raise SystemExit(f"no {BENCHMARK_JSON} (exit code {run.exit_code}):\n{run.tail()}")
    data = json.loads(result.read_text(encoding="utf-8"))
    data["run"] = run.health()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, help=f"frames (default {DEFAULT_FRAMES})")
    parser.add_argument("--fps", type=float, default=30.0, help="the camera's rate")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES} frames")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also run the benchmark mode of this checkout of earlier code (e.g. a git worktree "
        "of the commit before a change), alternating with this one, and compare the two apps",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --before: runs of each")
    args = parser.parse_args(argv)
    frames = args.frames or (QUICK_FRAMES if args.quick else DEFAULT_FRAMES)
    if args.before is not None:
        return compare_with_before(args.before.resolve(), frames, args.fps, args.rounds)
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
    health = data["run"]
    print(f"app exit code {health['exit_code']}, health {health['verdict']}")
    for problem in health["problems"]:
        print(f"  {problem}")
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


BEFORE_FIGURES = (
    ("end_to_end", "frame -> keypoints"),
    ("closed_loop", "frame -> command"),
    ("transport", "transport"),
    ("handover", "copy out + batching"),
    ("experiment", "experiment"),
)


def compare_with_before(before: Path, frames: int, fps: float, rounds: int) -> int:
    """This checkout's benchmark mode beside an earlier checkout's, taking turns.

    The same settings, frames and machine; the two alternate (this, before, this, ...) so that
    what else runs on the machine affects both alike. Each figure is the median over the rounds
    of the app's own percentile. Saved to ``results/end_to_end_vs_before.json``.
    """
    if not (before / "DeepLabStream.py").is_file():
        raise SystemExit(f"--before {before}: no DeepLabStream.py there (give a checkout)")
    started, machine = now_iso(), machine_description()
    runs: dict[str, list[dict]] = {"now": [], "before": []}
    for number in range(rounds):
        for side, root in (("now", PROJECT_ROOT), ("before", before)):
            print(f"round {number + 1} of {rounds}: {side} ({root}) ...", flush=True)
            with tempfile.TemporaryDirectory() as folder:
                runs[side].append(run_benchmark_mode(Path(folder), frames, fps, root))
    figures = [
        Figure(
            "analysed_fps",
            "analysed rate",
            _median_of(runs["now"], ("cameras",), "analysed_fps"),
            _median_of(runs["before"], ("cameras",), "analysed_fps"),
            "fps",
            higher_is_better=True,
        )
    ]
    for stage, label in BEFORE_FIGURES:
        for stat in ("p50", "p95", "p99", "max"):
            figures.append(
                Figure(
                    f"{stage}_{stat}",
                    f"{label} {stat} (median of {rounds} runs)",
                    _median_of(runs["now"], ("latency_ms", stage), stat),
                    _median_of(runs["before"], ("latency_ms", stage), stat),
                    "ms",
                )
            )
    print_table(
        f"The app now vs before ({before}): benchmark mode at {fps:g} fps, {frames} frames, "
        f"{rounds} rounds",
        figures,
        machine,
        project="now",
        baseline="before",
    )
    path = save_result(
        "end_to_end_vs_before",
        figures,
        started=started,
        machine=machine,
        details={"before": str(before), "frames": frames, "fps": fps, "rounds": rounds,
                 "runs": [run.get("run") for run in runs["now"]]},
    )  # fmt: skip
    print(f"saved {path}")
    return 0


def _median_of(runs: list[dict], path: tuple[str, ...], key: str) -> float | None:
    """The median over ``runs`` of ``run[path...][key]`` (for cameras: summed over cameras)."""
    values = []
    for run in runs:
        node = run
        for name in path:
            node = (node or {}).get(name) or {}
        if path == ("cameras",):
            values.append(sum(camera.get(key) or 0.0 for camera in node.values()))
        elif node.get(key) is not None:
            values.append(float(node[key]))
    return round(float(statistics.median(values)), 3) if values else None


if __name__ == "__main__":
    raise SystemExit(main())
