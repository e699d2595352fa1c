"""sleap-nn single-instance models: the project's path vs sleap-nn's own graph, and dynamic crops.

    python -m benchmarks.sleap_single [--frames N] [--rounds R] [--threads T] [--fps F] [--quick]

The model is the sleap-nn single-instance export kept in the repository
(``tests/fixtures/sleap_single_openfield/export``: DeepLabCut's open-field mouse, 4 keypoints,
RGB, input scale 0.5), on the 100-frame open-field clip of ``../shared/data`` decoded as the
app's video camera delivers them, one frame at a time as the live loop runs them, paced at a
camera's rate (``--fps``, 30; 0: back to back), the clip played ``--rounds`` times (3: 300
frames for each figure). Four variants take turns on blocks of 10 frames (rotating the order,
so that other load on the machine affects them alike), with a pause of 0.1 s between blocks
(a spinning pool's threads spin about 40 ms after its last run: without the pause they would
take a core from the next variant's first frames):

- **baseline: sleap-nn's own graph**: the export's whole ONNX graph (its resize, the network and
  its peak finding, fixed to the export size) on ONNX Runtime with the same threads, fed the
  frame's RGB pixels as sleap-nn's own export reader feeds them: the same work, frame in,
  keypoints out. Its session is ONNX Runtime's default, as sleap-nn's: idle pool threads spin;
- **project, whole frame**: :func:`pose.loading.open_estimator`'s estimator as the inference worker
  runs it (the graph up to the confidence maps, its resize following the frame's size, the
  peaks found on the host) where it shares its cores with capture and recording: idle pool
  threads sleep (:func:`core.priority.inference_pool_may_spin`);
- **project, whole frame, spinning**: the same where the worker has cores of its own (pinned:
  ``CPU_AFFINITY``, 3 or more cores): idle pool threads spin, as the baseline's;
- **project, dynamic crop**: the same, on the crop :class:`pose.runtime.cropping.DynamicCrop`
  chooses from the previous frame's keypoints (``[Pose] DYNAMIC_CROP = on``, margin 128,
  likelihood 0.2), each crop size's estimator built once as the worker does.

Figures: frame -> keypoints p50/p99 of each beside the baseline's, the largest distance of the
project's whole-frame keypoints from the baseline's (same frames; expected 0), how many frames
the dynamic crop cropped, and the CPU time per frame of the sleeping and spinning variants
(the process's, all threads, pacing waits included). Saved to
``benchmarks/results/sleap_single.json``.
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
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import InferenceBackend, OnnxRuntimeBackend
from deeplabstream.pose.runtime.cropping import CropSettings, DynamicCrop, input_multiple

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPORT = PROJECT_ROOT / "tests" / "fixtures" / "sleap_single_openfield" / "export"
CLIP = (
    PROJECT_ROOT.parent
    / "shared"
    / "data"
    / "dlc3-openfield-cspnext_s"
    / "clip"
    / "m3v1mp4_first100.mp4"
)
BLOCK = 10
PAUSE_S = 0.1  # between blocks: a spinning pool parks about 40 ms after its last run
VARIANTS = ("sleap-nn graph", "whole frame", "whole frame, spinning", "dynamic crop")
CROP = CropSettings(enabled=True, margin=128, likelihood=0.2)


def clip_frames(count: int) -> list[np.ndarray]:
    """The clip's first ``count`` frames as the app's video camera delivers them (BGR uint8)."""
    return video_frames(CLIP, count)


def sleap_graph_runner(threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """sleap-nn's whole graph on ONNX Runtime: a BGR frame in, (K, 3) x, y, value out."""
    session = onnx_cpu_session(EXPORT / "model.onnx", threads)

    def run(frame: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(frame[:, :, ::-1].transpose(2, 0, 1)[None])  # RGB NCHW
        peaks, values = session.run(["peaks", "peak_vals"], {"image": image})
        return np.concatenate([peaks[0], values[0][:, None]], axis=-1).astype(np.float64)

    return run


class CroppedEstimator:
    """The worker's dynamic crop: an estimator per crop size, the crop from the last pose."""

    def __init__(self, description: ModelDescription, backend: InferenceBackend, shape: Any):
        self.description = description
        self.backend = backend
        self.crop = DynamicCrop(
            shape[:2], CROP, len(description.keypoints), input_multiple(description)
        )
        self.estimators: dict[tuple[int, int], PoseEstimator] = {}
        self.cropped = 0

    def estimate(self, frame: np.ndarray) -> np.ndarray:
        """Keypoints (K, 3) of ``frame`` in its pixels, from the crop chosen before it."""
        crop = self.crop.current
        view = np.ascontiguousarray(crop.view(frame))
        estimator = self.estimators.get(crop.size)
        if estimator is None:
            sized = self.description.at_input_size(*crop.size)
            estimator = open_estimator(sized, self.backend, view.shape)
            self.estimators[crop.size] = estimator
        pose = crop.to_frame(estimator.estimate([view])[0])
        self.cropped += not crop.full
        self.crop.update(pose)
        return pose


def measure(frames: list[np.ndarray], threads: int, fps: float) -> dict[str, Any]:
    """Run the variants in turns on blocks of frames; return each one's samples (ns)."""
    description = load_model(EXPORT)
    shape = frames[0].shape

    def backend(spin: bool) -> InferenceBackend:
        return OnnxRuntimeBackend(description, "cpu", threads, allow_spinning=spin)

    whole = open_estimator(description, backend(False), shape)
    spinning = open_estimator(description, backend(True), shape)
    cropped = CroppedEstimator(description, backend(False), shape)
    graph = sleap_graph_runner(threads)
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "sleap-nn graph": graph,
        "whole frame": lambda frame: whole.estimate([frame])[0],
        "whole frame, spinning": lambda frame: spinning.estimate([frame])[0],
        "dynamic crop": cropped.estimate,
    }
    for frame in frames[:3]:  # warm-up, off the record
        for runner in runners.values():
            runner(frame)
    samples: dict[str, list[int]] = {variant: [] for variant in VARIANTS}
    cpu_s = dict.fromkeys(VARIANTS, 0.0)
    worst_px = 0.0
    loads: list[float] = []
    for number in range(0, len(frames), BLOCK):
        block = frames[number : number + BLOCK]
        turn = (number // BLOCK) % len(VARIANTS)
        points: dict[str, list[np.ndarray]] = {variant: [] for variant in VARIANTS}
        for variant in VARIANTS[turn:] + VARIANTS[:turn]:
            time.sleep(PAUSE_S)
            cpu_began = time.process_time()
            due = time.perf_counter()
            for frame in block:
                if fps > 0:  # the next frame arrives at the camera's rate
                    due += 1.0 / fps
                    time.sleep(max(0.0, due - time.perf_counter()))
                began = time.perf_counter_ns()
                points[variant].append(runners[variant](frame))
                samples[variant].append(time.perf_counter_ns() - began)
            cpu_s[variant] += time.process_time() - cpu_began
        for variant in ("whole frame", "whole frame, spinning"):
            worst_px = max(worst_px, largest_distance(points[variant], points["sleap-nn graph"]))
        load = load_average_1m()
        if load is not None:
            loads.append(load)
    return {
        "samples": samples,
        "cpu_ms_per_frame": {v: 1e3 * cpu_s[v] / len(frames) for v in VARIANTS},
        "worst_px": worst_px,
        "cropped": cropped.cropped,
        "crop_sizes": sorted(cropped.estimators),
        "loads": loads,
    }


def largest_distance(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    """The largest x or y difference of keypoints both found, over frames (px)."""
    worst = 0.0
    for mine, reference in zip(ours, theirs, strict=True):
        seen = ~np.isnan(mine[:, 0]) & ~np.isnan(reference[:, 0])
        if seen.any():
            worst = max(worst, float(np.abs(mine[seen, :2] - reference[seen, :2]).max()))
    return worst


def figures_of(measured: dict[str, Any], frames: int) -> list[Figure]:
    """The figures: each project variant's frame -> keypoints beside sleap-nn's graph."""
    summaries = {variant: summarize_ms(values) for variant, values in measured["samples"].items()}
    baseline = summaries["sleap-nn graph"]
    figures: list[Figure] = []
    for variant in ("whole frame", "whole frame, spinning", "dynamic crop"):
        key = variant.replace(", ", "_").replace(" ", "_")
        for percentile in ("p50", "p99"):
            figures.append(
                Figure(
                    f"{key}_frame_to_keypoints_{percentile}_ms",
                    f"frame -> keypoints {percentile}, {variant}",
                    summaries[variant][percentile],
                    baseline[percentile],
                    "ms",
                )
            )
    figures.append(
        Figure(
            "whole_frame_max_px_from_sleap_graph",
            "largest keypoint distance from sleap-nn's graph, whole frame",
            round(measured["worst_px"], 4),
            0.0,
            "px",
            compare=False,
        )
    )
    cpu = measured["cpu_ms_per_frame"]
    for variant in ("whole frame", "whole frame, spinning"):
        figures.append(
            Figure(
                f"{variant.replace(', ', '_').replace(' ', '_')}_cpu_ms_per_frame",
                f"CPU time per frame (all threads), {variant}",
                round(cpu[variant], 2),
                round(cpu["sleap-nn graph"], 2),
                "ms",
                compare=False,
            )
        )
    figures.append(
        Figure(
            "frames_cropped_percent",
            "frames the dynamic crop cropped",
            round(100.0 * measured["cropped"] / frames, 1),
            None,
            "%",
            compare=False,
        )
    )
    return figures


def pace_text(fps: float) -> str:
    """How the frames came: at a camera's rate, or back to back."""
    return f"paced at {fps:g} fps" if fps > 0 else "back to back"


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save; 0 when done, 2 when the clip or the model is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the clip (<= 100)")
    parser.add_argument("--rounds", type=int, default=3, help="times the clip is played")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument(
        "--fps", type=float, default=30.0, help="frames per second (0: back to back)"
    )
    parser.add_argument("--quick", action="store_true", help="30 frames, once")
    args = parser.parse_args(argv)
    if not CLIP.is_file() or not EXPORT.is_dir():
        print(f"sleap_single: needs {CLIP} and {EXPORT}")
        return 2
    started = now_iso()
    machine = machine_description()
    frames = clip_frames(30 if args.quick else args.frames) * (1 if args.quick else args.rounds)
    measured = measure(frames, args.threads, args.fps)
    figures = figures_of(measured, len(frames))
    print_table(
        f"sleap-nn single-instance model (open-field mouse, 640x480, {len(frames)} frames, "
        f"{args.threads} threads, {pace_text(args.fps)})",
        figures,
        machine,
        project="project",
        baseline="sleap-nn graph",
    )
    loads = measured["loads"]
    sizes = ", ".join(f"{w}x{h}" for h, w in measured["crop_sizes"])
    print(f"crop sizes: {sizes}")
    print(f"load average (1 min) during the run: {min(loads, default=0)}-{max(loads, default=0)}")
    path = save_result(
        "sleap_single",
        figures,
        started=started,
        machine=machine,
        details={
            "frames": len(frames),
            "threads": args.threads,
            "fps": args.fps,
            "crop_sizes": [list(size) for size in measured["crop_sizes"]],
            "load_average_1m": {"min": min(loads, default=None), "max": max(loads, default=None)},
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
