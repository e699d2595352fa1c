"""High camera rates (150-500 fps): the analysed rate against the model-bound limit.

    python -m benchmarks.high_rate [--rates 150 200 300 500] [--seconds S] [--width W]
                                   [--height H] [--quick]

The goal (issue 27): camera frame rates a lab uses for fast behaviour run without the pipeline
becoming the bottleneck, i.e. the analysed rate stays >= 90 % of the model-bound limit.

For each rate of ``--rates``, the benchmark mode exactly as a user runs it:
``DeepLabStream.py --headless --benchmark-enabled --experiment-enabled --frames N`` (N = rate x
``--seconds``) on the simulated arena (``SOURCE = synthetic``, ``FRAMERATE`` = the rate,
``WIDTH`` x ``HEIGHT``), the bundled model with the app's default threads, ``ExampleExperiment``
on a log device, no recording. From its ``benchmark.json`` and session folder:

- the **analysed rate** (frames analysed per second, first to last pose);
- the **model's time per frame**: pre-processing + network + decoding, the mean over the
  analysed frames (``<camera>.pose_timing.csv``);
- the **model-bound limit** = min(camera rate, 1000 / model mean ms). The camera rate is the
  asked rate, or the rate the camera captured when that was lower: the simulated camera renders
  each frame in its capture process, and on two busy cores it may not reach 500 fps at
  640x480. Then the limit is the captured rate and the run is marked ``camera short``;
- the **share of the limit** analysed = analysed / limit (goal >= 0.90): below it, the
  pipeline around the model is the bottleneck;
- **skipped frames** (share of the frames captured) and frame -> keypoints latency p50 / p99.

The baseline is the naive single-thread loop the benchmark mode runs on the same model and
frames (``live/selftest/naive_loop.py``): its frames are rendered beforehand and fall due at the
asked rate, so its limit uses the asked rate; its share of the limit uses the model time
measured in the app's run (the naive loop reports percentiles only).

The app exits 1 when its loop missed the session's deadline more often than
``[Experiment] DEADLINE_MISS_TOLERANCE`` allows (the health check): the exit code and the
health verdict are kept per rate in ``details`` and the benchmark goes on to the next rate.
Saved to ``benchmarks/results/high_rate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.app_run import AppRunError, run_app
from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.live.selftest.benchmark_mode import BENCHMARK_JSON
from deeplabstream.outputs.pose.files import POSE_TIMING_SUFFIX

CAMERA = "arena"
DEFAULT_RATES = (150.0, 200.0, 300.0, 500.0)
DEFAULT_SECONDS, QUICK_SECONDS = 20.0, 3.0
GOAL_SHARE = 0.90
GOAL = f">= {GOAL_SHARE:.2f}"
#: A camera that captured less than this share of the asked rate is "short": it bounds the loop.
CAPTURE_SHORTFALL = 0.98
MODEL_STAGES = ("preprocess_ms", "inference_ms", "decode_ms")


@dataclass(frozen=True)
class Limit:
    """The fastest a loop can analyse: the camera's rate or the model's, whichever is lower."""

    asked_fps: float
    captured_fps: float | None  # None: not measured (the naive loop's frames are due as asked)
    model_ms: float  # the model's mean time per frame (pre-processing + network + decoding)

    @property
    def camera_fps(self) -> float:
        """Return the rate frames came at: the asked rate, or the captured one when lower."""
        if self.captured_fps is None:
            return self.asked_fps
        return min(self.asked_fps, self.captured_fps)

    @property
    def camera_short(self) -> bool:
        """Return whether the camera captured noticeably fewer frames per second than asked."""
        return self.captured_fps is not None and (
            self.captured_fps < CAPTURE_SHORTFALL * self.asked_fps
        )

    @property
    def model_fps(self) -> float:
        """Return the model's rate: 1000 / its mean time per frame in ms."""
        return 1000.0 / self.model_ms if self.model_ms > 0 else float("inf")

    @property
    def fps(self) -> float:
        """Return the model-bound limit: min(camera rate, model rate)."""
        return min(self.camera_fps, self.model_fps)

    @property
    def bound_by(self) -> str:
        """Return ``"model"`` when the model sets the limit, ``"camera"`` otherwise."""
        return "model" if self.model_fps < self.camera_fps else "camera"


def share_of_limit(analysed_fps: float | None, limit_fps: float) -> float | None:
    """Return analysed / limit (rounded to 0.001); None when nothing was analysed."""
    if analysed_fps is None or not limit_fps > 0:
        return None
    return round(analysed_fps / limit_fps, 3)


def percent(part: float | None, whole: float | None) -> float | None:
    """Return ``part`` as a percentage of ``whole`` (0.01 %); None when either is missing."""
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 2)


def model_time_ms(timing: pd.DataFrame) -> dict[str, float | int]:
    """Return the model's time per analysed frame (pre-processing + network + decoding), ms.

    ``timing`` is a ``<camera>.pose_timing.csv`` table; gives ``count``, ``mean``, ``p50`` and
    ``p99`` (``count`` 0 alone when no frame was analysed).
    """
    total = timing[list(MODEL_STAGES)].to_numpy(np.float64).sum(axis=1)
    total = total[np.isfinite(total)]
    if total.size == 0:
        return {"count": 0}
    return {
        "count": int(total.size),
        "mean": round(float(total.mean()), 3),
        "p50": round(float(np.percentile(total, 50)), 3),
        "p99": round(float(np.percentile(total, 99)), 3),
    }


@dataclass(frozen=True)
class RateRun:
    """One rate's figures: the app's and the naive loop's, from the benchmark mode's run."""

    asked_fps: float
    captured: int
    captured_fps: float | None
    analysed_fps: float | None
    skipped: int
    model_ms: float
    latency_ms: dict[str, Any]  # frame -> keypoints: p50, p99...
    naive_due: int
    naive_analysed_fps: float | None
    naive_skipped: int
    naive_latency_ms: dict[str, Any]

    @property
    def limit(self) -> Limit:
        """Return the app's limit (the captured rate counts)."""
        return Limit(self.asked_fps, self.captured_fps, self.model_ms)

    @property
    def naive_limit(self) -> Limit:
        """Return the naive loop's limit: its frames fall due at the asked rate."""
        return Limit(self.asked_fps, None, self.model_ms)


def rate_run(benchmark: dict[str, Any], asked_fps: float, model_ms: float) -> RateRun:
    """Return one rate's figures from its ``benchmark.json`` and the model's mean time (ms)."""
    camera = benchmark["cameras"][CAMERA]
    naive = benchmark["naive"] or {}
    naive_camera = (naive.get("cameras") or {}).get(CAMERA) or {}
    return RateRun(
        asked_fps=asked_fps,
        captured=camera["captured"],
        captured_fps=camera.get("measured_fps"),
        analysed_fps=camera.get("analysed_fps"),
        skipped=camera["skipped"],
        model_ms=model_ms,
        latency_ms=benchmark["latency_ms"].get("end_to_end") or {},
        naive_due=naive_camera.get("due", 0),
        naive_analysed_fps=naive_camera.get("analysed_fps"),
        naive_skipped=naive_camera.get("skipped", 0),
        naive_latency_ms=(naive.get("latency_ms") or {}).get("end_to_end") or {},
    )


def rate_figures(run: RateRun) -> list[Figure]:
    """Return one rate's figures, the app beside the naive loop."""
    rate = f"{run.asked_fps:g}"
    key, label = f"{rate}fps.", f"{rate} fps: "
    limit, naive_limit = run.limit, run.naive_limit
    captured_label = "camera rate, captured (naive loop: due)"
    figures = [
        Figure(
            key + "analysed_fps",
            label + "analysed rate",
            run.analysed_fps,
            run.naive_analysed_fps,
            "fps",
            higher_is_better=True,
        ),
        Figure(
            key + "share_of_limit",
            label + "analysed / model-bound limit",
            share_of_limit(run.analysed_fps, limit.fps),
            share_of_limit(run.naive_analysed_fps, naive_limit.fps),
            higher_is_better=True,
            goal=GOAL,
        ),
        Figure(
            key + "limit_fps",
            label + f"model-bound limit (the app's bound by the {limit.bound_by})",
            round(limit.fps, 2),
            round(naive_limit.fps, 2),
            "fps",
            compare=False,
        ),
        Figure(
            key + "captured_fps",
            label + captured_label + (" - CAMERA SHORT" if limit.camera_short else ""),
            run.captured_fps,
            run.asked_fps,
            "fps",
            compare=False,
        ),
        Figure(
            key + "model_mean_ms",
            label + "model per frame, mean",
            run.model_ms,
            None,
            "ms",
            compare=False,
        ),
        Figure(
            key + "skipped_percent",
            label + "frames skipped (share of captured / due)",
            percent(run.skipped, run.captured),
            percent(run.naive_skipped, run.naive_due),
            "%",
        ),
    ]
    for stat in ("p50", "p99"):
        figures.append(
            Figure(
                key + f"end_to_end_{stat}",
                label + f"frame -> keypoints {stat}",
                run.latency_ms.get(stat),
                run.naive_latency_ms.get(stat),
                "ms",
            )
        )
    return figures


def settings_text(rate: float, width: int, height: int) -> str:
    """Return the settings file of one rate's run."""
    return (
        f"[Camera {CAMERA}]\nSOURCE = synthetic\nFRAMERATE = {rate:g}\nWIDTH = {width}\n"
        f"HEIGHT = {height}\nSEED = 1\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
    )


def run_rate(folder: Path, rate: float, seconds: float, width: int, height: int) -> dict[str, Any]:
    """Run the benchmark mode at ``rate``; its figures, ``benchmark.json`` and health.

    A run that made no ``benchmark.json`` (a failed camera) gives ``error`` instead of figures.
    """
    folder.mkdir(parents=True)
    settings = folder / "settings.ini"
    settings.write_text(settings_text(rate, width, height), encoding="utf-8")
    frames = max(2, round(rate * seconds))
    arguments = ["--benchmark-enabled", "--experiment-enabled", "--frames", str(frames)]
    entry: dict[str, Any] = {"asked_fps": rate, "frames": frames, "load_1m_at_start": _load()}
    try:
        run = run_app(settings, arguments, folder / "out")
    except AppRunError as error:
        return entry | {"error": str(error)}
    entry["run"] = run.health()
    result = run.session / BENCHMARK_JSON
    timing = run.session / f"{CAMERA}{POSE_TIMING_SUFFIX}"
    if not result.is_file() or not timing.is_file():
        return entry | {"error": f"no {BENCHMARK_JSON} or pose timing:\n{run.tail()}"}
    benchmark = json.loads(result.read_text(encoding="utf-8"))
    model = model_time_ms(pd.read_csv(timing))
    entry["model_ms"] = model
    if not model["count"]:
        return entry | {"error": "no frame analysed", "benchmark": benchmark}
    entry["figures"] = rate_run(benchmark, rate, float(model["mean"]))
    entry["benchmark"] = benchmark
    return entry


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def summary_line(entry: dict[str, Any]) -> str:
    """Return one rate's verdict in a line: limit, share, what bounds it, the app's health."""
    rate = f"{entry['asked_fps']:g} fps"
    if "figures" not in entry:
        return f"{rate}: not measured: {entry.get('error')}"
    run: RateRun = entry["figures"]
    limit = run.limit
    share = share_of_limit(run.analysed_fps, limit.fps)
    short = (
        f"; the camera captured only {run.captured_fps:g} fps of the {rate} asked (rendered in "
        "its capture process): the limit uses the captured rate"
        if limit.camera_short
        else ""
    )
    health = entry["run"]
    met = "met" if share is not None and share >= GOAL_SHARE else "MISSED"
    return (
        f"{rate}: analysed {run.analysed_fps} fps of a {limit.fps:.1f} fps limit "
        f"(bound by the {limit.bound_by}; model {run.model_ms:.2f} ms mean) = {share} "
        f"(goal {GOAL}: {met}){short}; app exit code {health['exit_code']}, health "
        f"{health['verdict']}"
    )


def details_of(entry: dict[str, Any]) -> dict[str, Any]:
    """Return what ``details`` keeps of one rate: everything but the figures object."""
    kept = {k: v for k, v in entry.items() if k != "figures"}
    if "figures" in entry:
        run: RateRun = entry["figures"]
        kept["limit"] = {
            "camera_fps": run.limit.camera_fps,
            "model_fps": round(run.limit.model_fps, 2),
            "fps": round(run.limit.fps, 2),
            "bound_by": run.limit.bound_by,
            "camera_short": run.limit.camera_short,
        }
    return kept


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=list(DEFAULT_RATES),
        help="camera rates in fps (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds", type=float, help=f"seconds of frames per rate (default {DEFAULT_SECONDS:g})"
    )
    parser.add_argument("--width", type=int, default=640, help="frame width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="frame height (default 480)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per rate")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    started, machine = now_iso(), machine_description()
    entries = []
    with tempfile.TemporaryDirectory() as folder:
        for rate in args.rates:
            print(
                f"high rate: benchmark mode at {rate:g} fps, {args.width}x{args.height}, "
                f"{seconds:g} s of frames ...",
                flush=True,
            )
            entry = run_rate(Path(folder) / f"{rate:g}fps", rate, seconds, args.width, args.height)
            print(f"  {summary_line(entry)}", flush=True)
            entries.append(entry)
    figures = [f for entry in entries if "figures" in entry for f in rate_figures(entry["figures"])]
    print_table(
        f"High camera rates, {args.width}x{args.height}, {seconds:g} s per rate, benchmark mode "
        "(experiment on a log device, no recording)",
        figures,
        machine,
        project="app",
        baseline="naive loop",
    )
    for entry in entries:
        print(summary_line(entry))
    machine["load_average_1m_at_end"] = _load()
    path = save_result(
        "high_rate",
        figures,
        started=started,
        machine=machine,
        details={
            "width": args.width,
            "height": args.height,
            "seconds_per_rate": seconds,
            "goal_share_of_limit": GOAL_SHARE,
            "capture_shortfall": CAPTURE_SHORTFALL,
            "rates": {f"{e['asked_fps']:g}": details_of(e) for e in entries},
        },
    )
    print(f"saved {path}")
    return 0 if all("figures" in entry for entry in entries) else 1


if __name__ == "__main__":
    raise SystemExit(main())
