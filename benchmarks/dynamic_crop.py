"""Dynamic cropping on the real open-field video: speed and keypoints against the full frame.

    python -m benchmarks.dynamic_crop [--frames N] [--threads T] [--margin PX] [--quick]
    python -m benchmarks.dynamic_crop --live [--fps F] [--frames N] [--rounds R] [--threads T]
                                             [--quick]

DeepLabCut 3.0's ``cspnext_s`` export (../shared/data/dlc3-openfield-cspnext_s) on the first N
frames of its open-field video (../shared/data/dlc-openfield/videos/m3v1mp4.mp4, 640x480), one
frame at a time, in order, as the inference worker analyses a camera:

- **baseline: PyTorch eager, full frame**: the network rebuilt from the export, run as
  DeepLabCut runs it;
- **ONNX Runtime, full frame**: the converted graph on the whole frame (``DYNAMIC_CROP = off``);
- **project: ONNX Runtime, dynamic crop** (``DYNAMIC_CROP = on``): the region around the last
  pose (plus the margin), the whole frame whenever tracking is lost, with the worker's own
  :class:`pose.runtime.cropping.DynamicCrop`; estimators are built per crop shape when first met, as
  in the worker (that first frame's cost is counted).

Each frame's latency is the whole per-frame path (pre-processing, network, decoding, and for
the crop the bookkeeping). The variants take turns on blocks of 10 frames (rotating the order,
each block started with one untimed frame), so that other load on the machine affects them
alike. Keypoints of the cropped frames (where tracking holds) are compared with the full frame's
of the same run. Figures are printed side by side and saved to
``benchmarks/results/dynamic_crop.json``.

``--live``: the app itself streaming the video at ``--fps`` (default 200) with
``DYNAMIC_CROP = on`` beside ``off``, saved to ``dynamic_crop_live_<F>fps.json``
(:mod:`benchmarks.dynamic_crop_live`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from benchmarks.converted_models import CASES, SHARED_DATA
from benchmarks.dynamic_crop_live import DEFAULT_FPS, DEFAULT_ROUNDS, main_live
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description, package_version
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.cropping import (
    ContextFeeder,
    ContextRecorder,
    CropSettings,
    DynamicCrop,
    input_multiple,
    split_context_graphs,
)

BLOCK = 10  # frames per turn of a variant
OFFLINE_FRAMES, OFFLINE_THREADS = 600, 2
VIDEO = SHARED_DATA / "dlc-openfield/videos/m3v1mp4.mp4"
MODEL = CASES[0].model  # DeepLabCut 3.0 cspnext_s
GOAL_VS_EAGER = ">= 5x"
GOAL_VS_ORT = ">= 2x"
GOAL_DEVIATION_PX = 0.5
CONFIDENT_LIKELIHOOD = 0.5  # [Pose] LIKELIHOOD_THRESHOLD's default


def video_blocks(path: Path, frames: int) -> Iterator[list[np.ndarray]]:
    """The video's first ``frames`` frames (BGR), ``BLOCK`` at a time (not all in memory)."""
    import av

    block: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index >= frames:
                break
            block.append(frame.to_ndarray(format="bgr24"))
            if len(block) == BLOCK:
                yield block
                block = []
    if block:
        yield block


@dataclass
class FullFrame:
    """One backend on the whole frame."""

    label: str
    estimator: PoseEstimator
    backend: Any
    latencies_ns: list[int] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)

    def switch(self, frame: np.ndarray) -> None:
        """An untimed frame: the switch between backends is not charged to this one."""
        self.estimator.estimate([frame])

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    def analyse(self, frame: np.ndarray) -> None:
        """One timed frame."""
        began = time.perf_counter_ns()
        pose = self.estimator.estimate([frame])[0]
        self.latencies_ns.append(time.perf_counter_ns() - began)
        self.poses.append(pose)


@dataclass
class Cropped:
    """One backend with dynamic cropping, exactly as the worker crops a camera.

    With gates (CSPNeXt), whole frames run the graph that outputs the channel gates and crops
    the graph fed them (pose.runtime.cropping); without, every frame runs the model's own graph and
    crops see their own channel statistics (DeepLabCut-Live's way).
    """

    label: str
    description: ModelDescription
    whole: Any  # backend of whole frames (a ContextRecorder with gates)
    part: Any  # backend of crops (a ContextFeeder with gates)
    crop: DynamicCrop
    estimators: dict[tuple[bool, tuple[int, ...]], PoseEstimator] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    cropped: list[bool] = field(default_factory=list)
    context: Any = None  # the gates of the last whole frame

    def close(self) -> None:
        """Close the backends."""
        self.whole.close()
        if self.part is not self.whole:
            self.part.close()

    def _estimator(self, full: bool, shape: tuple[int, ...]) -> PoseEstimator:
        estimator = self.estimators.get((full, shape))
        if estimator is None:  # a new crop shape: built on first use, as in the worker
            sized = self.description.at_input_size(*shape[:2])
            backend = self.whole if full else self.part
            estimator = self.estimators[(full, shape)] = open_estimator(sized, backend, shape)
        return estimator

    def _estimate(self, frame: np.ndarray) -> tuple[np.ndarray, Any]:
        region = self.crop.current
        view = region.view(frame)
        if not region.full and isinstance(self.part, ContextFeeder):
            self.part.context = self.context
        pose = self._estimator(region.full, view.shape).estimate([view])[0]
        if region.full and isinstance(self.whole, ContextRecorder):
            self.context = self.whole.context
        return region.to_frame(pose), region

    def switch(self, frame: np.ndarray) -> None:
        """An untimed frame in the current crop; the crop is not updated from it."""
        self._estimate(frame)

    def analyse(self, frame: np.ndarray) -> None:
        """One timed frame: crop, estimate, back to frame pixels, next crop."""
        began = time.perf_counter_ns()
        pose, region = self._estimate(frame)
        self.crop.update(pose)
        self.latencies_ns.append(time.perf_counter_ns() - began)
        self.poses.append(pose)
        self.regions.append(region.box)
        self.cropped.append(not region.full)


def open_cropped(
    description: ModelDescription, backend: str, threads: int, settings: CropSettings, gates: bool
) -> Cropped:
    """The crop variant, with its own backends (as the worker has its own sessions)."""
    shape = (description.input_height, description.input_width)
    crop = DynamicCrop(shape, settings, len(description.keypoints), input_multiple(description))
    graphs = split_context_graphs(Path(description.model_file)) if gates else None
    if graphs is None:
        plain = open_backend(description, backend, "cpu", threads)
        plain.warm_up(1)
        return Cropped(f"{backend}, dynamic crop, own gates", description, plain, plain, crop)
    full = dataclasses.replace(
        description, model_file=graphs.full, output_names=(*description.output_names, *graphs.gates)
    )
    part = dataclasses.replace(description, model_file=graphs.crop)
    recorder = ContextRecorder(open_backend(full, backend, "cpu", threads), graphs, 1)
    feeder = ContextFeeder(open_backend(part, backend, "cpu", threads), graphs, np.float32)
    recorder.warm_up(1)
    feeder.warm_up(1)
    return Cropped(f"{backend}, dynamic crop", description, recorder, feeder, crop)


def open_variants(
    description: ModelDescription,
    backend: str,
    threads: int,
    settings: CropSettings,
    also_own_gates: bool,
) -> list[Any]:
    """PyTorch eager full frame, ``backend`` full frame, ``backend`` with dynamic crop(s)."""
    shape = (description.input_height, description.input_width, 3)
    eager = open_backend(description, "pytorch", "cpu", threads)
    eager.warm_up(1)
    full = open_backend(description, backend, "cpu", threads)
    full.warm_up(1)
    variants = [
        FullFrame("pytorch eager, full frame", open_estimator(description, eager, shape), eager),
        FullFrame(f"{backend}, full frame", open_estimator(description, full, shape), full),
        open_cropped(description, backend, threads, settings, gates=True),
    ]
    if also_own_gates:
        variants.append(open_cropped(description, backend, threads, settings, gates=False))
    return variants


def measure(variants: list[Any], frames: int) -> None:
    """The variants take turns on blocks of frames (rotating the order)."""
    for turn, block in enumerate(video_blocks(VIDEO, frames)):
        shift = turn % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.switch(block[0])
            for frame in block:
                variant.analyse(frame)
        if turn % 10 == 0:
            done = (turn + 1) * BLOCK
            print(f"  {min(done, frames)} frames, load {os.getloadavg()[0]:.2f}", flush=True)


def latency_row(variant: Any) -> dict[str, Any]:
    """Latency and rate of one variant."""
    return {
        "latency_ms": summarize_ms(variant.latencies_ns),
        "fps": round(len(variant.latencies_ns) / (sum(variant.latencies_ns) / 1e9), 2),
    }


def deviation(ours: np.ndarray, reference: np.ndarray, where: np.ndarray) -> dict[str, Any]:
    """|dx|,|dy| (px) and |dlikelihood| of the frames ``where``, per keypoint.

    ``confident``: only keypoints whose full-frame likelihood is at least
    ``CONFIDENT_LIKELIHOOD`` (on flat heatmaps a tiny change of the features moves the peak).
    """
    if not where.any():
        empty: dict[str, Any] = dict.fromkeys(
            ("max_dxy_px", "p99_dxy_px", "median_dxy_px", "confident_max_dxy_px")
        )
        counts = ("frames", "keypoints", "keypoints_over_goal", "confident_keypoints")
        return (
            empty | dict.fromkeys((*counts, "confident_over_goal"), 0) | {"max_dlikelihood": None}
        )
    delta = np.abs(ours[where] - reference[where])
    per_keypoint = delta[..., :2].max(axis=2)  # (frames, K)
    confident = reference[where][..., 2] >= CONFIDENT_LIKELIHOOD
    return {
        "frames": int(where.sum()),
        "keypoints": int(per_keypoint.size),
        "max_dxy_px": float(per_keypoint.max()),
        "p99_dxy_px": float(np.percentile(per_keypoint, 99)),
        "median_dxy_px": float(np.median(per_keypoint)),
        "keypoints_over_goal": int((per_keypoint > GOAL_DEVIATION_PX).sum()),
        "confident_keypoints": int(confident.sum()),
        "confident_max_dxy_px": float(per_keypoint[confident].max()) if confident.any() else None,
        "confident_over_goal": int((per_keypoint[confident] > GOAL_DEVIATION_PX).sum()),
        "max_dlikelihood": float(delta[..., 2].max()),
    }


def crop_row(variant: Cropped, reference: np.ndarray) -> dict[str, Any]:
    """What a crop variant did: frames cropped, sizes, keypoints against the full frame."""
    cropped = np.asarray(variant.cropped)
    poses = np.asarray(variant.poses)
    sizes = {(w, h) for (_, _, w, h), c in zip(variant.regions, cropped, strict=True) if c}
    pixels = np.mean([w * h for _, _, w, h in variant.regions])
    return {
        "vs_full_frame": deviation(poses, reference, cropped),
        "lost_tracking_frames_vs_full_frame": deviation(poses, reference, ~cropped),
        "frames": len(cropped),
        "frames_cropped": int(cropped.sum()),
        "crop_sizes": sorted(sizes),
        "mean_pixels_percent_of_frame": round(100 * float(pixels) / (640 * 480), 1),
    }


def figures_of(rows: dict[str, Any], labels: tuple[str, str, str]) -> list[Figure]:
    """The dynamic crop beside PyTorch eager and beside the same backend's full frame."""
    eager_label, full_label, crop_label = labels
    eager, full, crop = rows[eager_label], rows[full_label], rows[crop_label]
    figures = []
    for short, base, goal in (("eager", eager, GOAL_VS_EAGER), ("full", full, GOAL_VS_ORT)):
        name = f"dynamic crop vs {'PyTorch eager' if short == 'eager' else full_label}"
        for stat in ("p50", "p99"):
            figures.append(
                Figure(
                    f"crop_vs_{short}_latency_{stat}_ms",
                    f"{name}: latency {stat}",
                    crop["latency_ms"][stat],
                    base["latency_ms"][stat],
                    "ms",
                    goal=goal if stat == "p50" else "",
                )
            )
        figures.append(
            Figure(
                f"crop_vs_{short}_fps",
                f"{name}: rate",
                crop["fps"],
                base["fps"],
                "fps",
                higher_is_better=True,
            )
        )
    figures += [
        Figure(
            f"{full_label.split(',')[0]}_full_vs_eager_latency_p50_ms",
            f"{full_label} vs PyTorch eager: latency p50",
            full["latency_ms"]["p50"],
            eager["latency_ms"]["p50"],
            "ms",
        ),
        # Keypoints: cropped frames vs the full frame (the value), the full frame's graph vs
        # PyTorch eager (the baseline column: how far two full-frame engines already differ).
        Figure(
            "crop_max_dxy_px",
            "max |dx|,|dy| where tracking holds: crop vs full frame (baseline column: full "
            "frame vs eager)",
            crop["vs_full_frame"]["max_dxy_px"],
            full["vs_eager"]["max_dxy_px"],
            "px",
            goal=f"<= {GOAL_DEVIATION_PX}",
            compare=False,
        ),
        Figure(
            "crop_p99_dxy_px",
            "p99 of per-keypoint |dx|,|dy| where tracking holds: crop vs full frame",
            crop["vs_full_frame"]["p99_dxy_px"],
            None,
            "px",
            compare=False,
        ),
        Figure(
            "crop_keypoints_over_goal_percent",
            f"keypoints moved > {GOAL_DEVIATION_PX} px where tracking holds",
            round(
                100
                * crop["vs_full_frame"]["keypoints_over_goal"]
                / max(1, crop["vs_full_frame"]["keypoints"]),
                2,
            ),
            None,
            "%",
            compare=False,
        ),
        Figure(
            "crop_confident_max_dxy_px",
            f"max |dx|,|dy| of keypoints with likelihood >= {CONFIDENT_LIKELIHOOD} where "
            "tracking holds",
            crop["vs_full_frame"]["confident_max_dxy_px"],
            None,
            "px",
            compare=False,
        ),
        Figure(
            "frames_cropped_percent",
            "frames cropped (the rest: tracking lost, whole frame)",
            round(100 * crop["frames_cropped"] / max(1, crop["frames"]), 1),
            0.0,
            "%",
            compare=False,
        ),
    ]
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames",
        type=int,
        help=f"video frames (from the first; default {OFFLINE_FRAMES}; --live: per run, "
        "default the whole video)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"CPU threads of every backend (default {OFFLINE_THREADS}; --live: [Pose] THREADS, "
        "default the app's)",
    )
    parser.add_argument("--margin", type=int, default=CropSettings().margin, help="crop margin")
    parser.add_argument("--size-step", type=int, default=CropSettings().size_step)
    parser.add_argument("--likelihood", type=float, default=CropSettings().likelihood)
    parser.add_argument(
        "--backend",
        default="onnxruntime",
        choices=("onnxruntime", "openvino"),
        help="backend of the full-frame and cropped variants",
    )
    parser.add_argument("--refresh", type=int, default=CropSettings().refresh)
    parser.add_argument(
        "--also-own-gates",
        action="store_true",
        help="also measure crops that see their own channel statistics (DeepLabCut-Live's way)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="the app streaming the video at --fps, DYNAMIC_CROP on vs off",
    )
    parser.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help="--live: the camera's rate (default 200)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"--live: rounds of off and on (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--quick", action="store_true", help="100 frames (--live: 400 per run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.live:
        return main_live(args, MODEL, VIDEO)
    args.threads = OFFLINE_THREADS if args.threads is None else args.threads
    for needed in (MODEL, VIDEO):
        if not needed.is_file():
            print(f"the shared data folder is not beside the project: {needed} is absent")
            return 1
    frames = 100 if args.quick else (args.frames or OFFLINE_FRAMES)
    settings = CropSettings(
        True, args.margin, args.likelihood, None, args.size_step, refresh=args.refresh
    )
    started, machine = now_iso(), machine_description()
    machine |= {
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
        "openvino": package_version("openvino"),
    }
    description = load_model(MODEL)
    variants = open_variants(description, args.backend, args.threads, settings, args.also_own_gates)
    labels = (variants[0].label, variants[1].label, variants[2].label)
    print(
        f"{MODEL.name} on {VIDEO.name}: {frames} frames, 640x480, {args.threads} threads, one "
        f"frame at a time; crop margin {settings.margin} px, likelihood {settings.likelihood}"
    )
    measure(variants, frames)
    eager, full, crop = variants[:3]
    reference = np.asarray(full.poses)
    rows = {variant.label: latency_row(variant) for variant in variants}
    everywhere = np.ones(len(reference), bool)
    rows[full.label]["vs_eager"] = deviation(reference, np.asarray(eager.poses), everywhere)
    for variant in variants[2:]:
        rows[variant.label] |= crop_row(variant, reference)
    for label, row in rows.items():
        latency = row["latency_ms"]
        print(
            f"  {label:<28} p50 {latency['p50']:7.2f} ms, p99 {latency['p99']:7.2f} ms, "
            f"{row['fps']:6.1f} fps"
        )
    for variant in variants[2:]:
        print(f"  {variant.label} vs full frame where tracking holds:")
        print(f"    {rows[variant.label]['vs_full_frame']}")
    for variant in variants:
        variant.close()
    figures = figures_of(rows, labels)
    for variant in variants[3:]:  # crops that see their own channel statistics
        own = rows[variant.label]
        figures += [
            Figure(
                "own_gates_crop_vs_full_latency_p50_ms",
                f"{variant.label} vs {full.label}: latency p50",
                own["latency_ms"]["p50"],
                rows[full.label]["latency_ms"]["p50"],
                "ms",
            ),
            Figure(
                "own_gates_crop_max_dxy_px",
                f"{variant.label}: max |dx|,|dy| where tracking holds vs full frame",
                own["vs_full_frame"]["max_dxy_px"],
                None,
                "px",
                compare=False,
            ),
        ]
    print_table(
        "dynamic crop: whole per-frame path on the open-field video",
        figures,
        machine,
        project="dynamic crop",
        baseline="full frame",
    )
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    path = save_result(
        "dynamic_crop",
        figures,
        started=started,
        machine=machine,
        details={
            "model": str(MODEL),
            "video": str(VIDEO),
            "frames": frames,
            "threads": args.threads,
            "crop": {
                "margin_px": settings.margin,
                "likelihood": settings.likelihood,
                "size_step_px": settings.size_step,
                "input_multiple": crop.crop.multiple,
                "refresh_frames": settings.refresh,
            },
            "variants": rows,
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
