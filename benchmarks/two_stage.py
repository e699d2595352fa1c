"""Two-stage models (a detector, then the pose model on crops): each stage's time, crop included.

    python -m benchmarks.two_stage [--frames N] [--threads T] [--quick]

The model is the sleap-nn top-down export kept in the repository
(``tests/fixtures/sleap_topdown_flies/export_topdown``: a centroid model and a centered-instance
model, 2 flies, 1024x1024 grey frames), on the first frames of the flies clip of
``../shared/data/sleap-flies`` decoded as the app's video camera delivers them, one frame at a
time as the live loop runs them. Three variants take turns on blocks of 10 frames (rotating the
order, so that other load on the machine affects them alike):

- **baseline: sleap-nn's own graph**: the export's one ONNX graph (both networks, the crops cut
  inside it for all 20 of its instance slots), run on ONNX Runtime with the same threads, as
  sleap-nn's own ONNX predictor runs it: the same work, frame in, keypoints out;
- **project, CROP_FROM = same_frame**: the graph cut in its two stages, the crops cut on the host
  for the animals found only (:func:`pose.loading.open_estimator`'s estimator, as the inference
  worker runs it);
- **project, CROP_FROM = previous_frame**: frame t cut around frame t-1's centroids, the
  centroid stage run after frame t's keypoints are out (its time is the ``refresh``, outside
  frame -> keypoints).

Figures: frame -> keypoints p50/p99 of each, each stage's p50/p99 (centroid, crop, instance,
peaks), the crop stage's p99 against the goal of 0.5 ms, and the largest distance between the
project's keypoints and the baseline's (same frames). Saved to
``benchmarks/results/two_stage.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    now_iso,
    onnx_cpu_session,
    print_table,
    save_result,
    summarize_ms,
    video_frames,
)
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import load_average_1m, machine_description
from deeplabstream.pose.decoding.two_stage import CROP_FROM
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPORT = PROJECT_ROOT / "tests" / "fixtures" / "sleap_topdown_flies" / "export_topdown"
CLIP = (
    PROJECT_ROOT.parent
    / "shared"
    / "data"
    / "sleap-flies"
    / "inference"
    / "flies_clip_first100.mp4"
)
BLOCK = 10
STAGES = ("centroid", "crop", "instance", "peaks")
CROP_GOAL_MS = 0.5
VARIANTS = ("sleap-nn graph", "same_frame", "previous_frame")


def clip_frames(count: int) -> list[np.ndarray]:
    """The clip's first ``count`` frames as the app's video camera delivers them (BGR uint8)."""
    return video_frames(CLIP, count)


def sleap_graph_runner(threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """sleap-nn's whole graph on ONNX Runtime: a frame in, (instances, nodes, 3) out."""
    session = onnx_cpu_session(EXPORT / "model.onnx", threads)

    def run(frame: np.ndarray) -> np.ndarray:
        grey = frame[:, :, :1] if frame.ndim == 3 else frame[:, :, None]
        image = np.ascontiguousarray(grey.transpose(2, 0, 1)[None])  # (1, 1, H, W) uint8
        outputs = dict(
            zip(
                ("centroids", "centroid_vals", "peaks", "peak_vals", "valid"),
                session.run(None, {"image": image}),
                strict=False,
            )
        )
        valid = outputs["valid"][0].astype(bool)
        points = outputs["peaks"][0][valid]
        scores = outputs["peak_vals"][0][valid]
        return np.concatenate([points, scores[..., None]], axis=-1)

    return run


def _max_distance(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest distance between matched keypoints of two frames' animals (NaN rows skipped).

    Animals are matched by their nearest mean position (the slots' order may differ).
    """
    ours = ours[~np.isnan(ours[:, :, 0]).all(axis=1)]
    if not len(ours) or not len(theirs):
        return 0.0
    worst = 0.0
    for animal in ours:
        centre = np.nanmean(animal[:, :2], axis=0)
        match = theirs[
            np.argmin([np.linalg.norm(np.nanmean(t[:, :2], axis=0) - centre) for t in theirs])
        ]
        seen = ~np.isnan(animal[:, 0]) & ~np.isnan(match[:, 0])
        if seen.any():
            worst = max(worst, float(np.abs(animal[seen, :2] - match[seen, :2]).max()))
    return worst


def measure(frames: list[np.ndarray], threads: int) -> dict[str, Any]:
    """Run the variants in turns on blocks of frames; return each one's samples (ns)."""
    description = load_model(EXPORT)
    shape = frames[0].shape
    estimators: dict[str, PoseEstimator] = {
        crop_from: open_estimator(
            description,
            open_backend(description, "onnxruntime", "cpu", threads),
            shape,
            crop_from=crop_from,
        )
        for crop_from in CROP_FROM
    }
    graph = sleap_graph_runner(threads)
    for estimator in estimators.values():  # warm-up, off the record
        estimator.estimate_animals(frames[:3], keys=["clip"] * 3)
        estimator.refresh()
    graph(frames[0])
    samples: dict[str, dict[str, list[int]]] = {
        variant: {"total": [], **{stage: [] for stage in (*STAGES, "refresh")}}
        for variant in VARIANTS
    }
    worst_px = {"same_frame": 0.0, "previous_frame": 0.0}
    loads: list[float] = []
    blocks = [frames[i : i + BLOCK] for i in range(0, len(frames), BLOCK)]
    for number, block in enumerate(blocks):
        order = VARIANTS[number % 3 :] + VARIANTS[: number % 3]
        theirs: list[np.ndarray] = []
        ours: dict[str, list[np.ndarray]] = {"same_frame": [], "previous_frame": []}
        for variant in order:
            for frame in block:
                if variant == "sleap-nn graph":
                    began = time.perf_counter_ns()
                    theirs.append(graph(frame))
                    samples[variant]["total"].append(time.perf_counter_ns() - began)
                    continue
                estimator = estimators[variant]
                began = time.perf_counter_ns()
                result = estimator.estimate_animals([frame], keys=["clip"])
                samples[variant]["total"].append(time.perf_counter_ns() - began)
                estimator.refresh()  # previous_frame: the centroid stage, after the keypoints
                ours[variant].append(result[0])
                for stage, seconds in estimator.last_stage_timings.items():
                    samples[variant][stage].append(int(seconds * 1e9))
        for variant, results in ours.items():
            for mine, reference in zip(results, theirs, strict=True):
                worst_px[variant] = max(worst_px[variant], _max_distance(mine, reference))
        load = load_average_1m()
        if load is not None:
            loads.append(load)
    return {"samples": samples, "worst_px": worst_px, "loads": loads}


def figures_of(measured: dict[str, Any]) -> list[Figure]:
    """The figures: each variant's frame -> keypoints beside the baseline's, the crop stage."""
    summaries = {
        variant: {name: summarize_ms(values) for name, values in stages.items() if values}
        for variant, stages in measured["samples"].items()
    }
    baseline = summaries["sleap-nn graph"]["total"]
    figures: list[Figure] = []
    for variant in ("same_frame", "previous_frame"):
        total = summaries[variant]["total"]
        for percentile in ("p50", "p99"):
            figures.append(
                Figure(
                    f"{variant}_frame_to_keypoints_{percentile}_ms",
                    f"frame -> keypoints {percentile}, CROP_FROM = {variant}",
                    total[percentile],
                    baseline[percentile],
                    "ms",
                )
            )
        crop = summaries[variant].get("crop", {})
        figures.append(
            Figure(
                f"{variant}_crop_p99_ms",
                f"crop stage p99, CROP_FROM = {variant}",
                crop.get("p99"),
                None,
                "ms",
                goal=f"<= {CROP_GOAL_MS} ms",
                compare=False,
            )
        )
        figures.append(
            Figure(
                f"{variant}_max_px_from_sleap_graph",
                f"largest keypoint distance from sleap-nn's graph, CROP_FROM = {variant}",
                round(measured["worst_px"][variant], 4),
                0.0,
                "px",
                compare=False,
            )
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save; 0 when done, 2 when the clip or the model is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the clip (<= 100)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--quick", action="store_true", help="30 frames")
    args = parser.parse_args(argv)
    if not CLIP.is_file() or not EXPORT.is_dir():
        print(f"two_stage: needs {CLIP} and {EXPORT}")
        return 2
    started = now_iso()
    machine = machine_description()
    frames = clip_frames(30 if args.quick else args.frames)
    measured = measure(frames, args.threads)
    figures = figures_of(measured)
    print_table(
        f"Two-stage model (sleap-nn top-down, 2 flies, {len(frames)} frames, "
        f"{args.threads} threads)",
        figures,
        machine,
        project="project",
        baseline="sleap-nn graph",
    )
    stages = {
        variant: {name: summarize_ms(values) for name, values in per_stage.items() if values}
        for variant, per_stage in measured["samples"].items()
    }
    for variant in ("same_frame", "previous_frame"):
        line = ", ".join(
            f"{stage} {stages[variant][stage]['p50']}/{stages[variant][stage]['p99']}"
            for stage in (*STAGES, "refresh")
            if stage in stages[variant]
        )
        print(f"{variant}: stages p50/p99 ms: {line}")
    loads = measured["loads"]
    print(f"load average (1 min) during the run: {min(loads, default=0)}-{max(loads, default=0)}")
    path = save_result(
        "two_stage",
        figures,
        started=started,
        machine=machine,
        details={
            "frames": len(frames),
            "threads": args.threads,
            "stages_ms": stages,
            "load_average_1m": {"min": min(loads, default=None), "max": max(loads, default=None)},
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
