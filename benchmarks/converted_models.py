"""Models converted from DeepLabCut 3.0 and Lightning Pose: speed and accuracy per backend.

    python -m benchmarks.converted_models [--frames N] [--threads T] [--case KEY ...] [--quick]

For each real model of ../shared/data (DeepLabCut's ``cspnext_s`` on its 640x480 clip,
Lightning Pose's ``resnet18`` on its 396x406 clip, fed at 128x256), the whole per-frame path
(pre-processing, network, decoding; one frame at a time; the variants take turns on blocks of
10 frames, so that other load on the machine affects them alike) is timed on:

- **baseline: PyTorch eager**, the network rebuilt from the framework's file and run as the
  framework runs it (fp32);
- **project: ONNX Runtime fp32**, the converted graph, as the app runs it (idle threads of
  its pool sleep);
- ONNX Runtime fp32 with its default thread pool (idle threads spin), for comparison;
- ONNX Runtime fp16 (half-precision weights; decoding in float32). ONNX Runtime's CPU provider
  runs such graphs; CUDA and TensorRT providers are measured too where they are installed;
- OpenVINO fp32 (``[Pose] BACKEND = openvino``, the same graph), where the optional
  ``openvino`` package is installed (``requirements-openvino.txt``).

Beside each speed, the accuracy of the same run against the framework's own predictions
(DeepLabCut's ``analyze_videos``, Lightning Pose's ``litpose predict``): the largest |dx|, |dy|
(pixels) and |dlikelihood| over the frames timed. Figures are printed beside each other and
saved to ``benchmarks/results/converted_models.json``. Converted graphs are cached as the app
caches them (beside the model, or in ``~/.cache/deeplabstream`` for a read-only folder).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description, package_version
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend, open_backend

BLOCK = 10  # frames per turn of a variant
SPINNING = "onnxruntime cpu fp32, spinning threads"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def read_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, BGR, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(container.streams.video[0])]


@dataclass(frozen=True)
class Case:
    """One real model, its clip and the framework's predictions on it."""

    key: str
    title: str
    model: Path
    clip: Path
    reference: Path
    header_rows: int = 3


CASES = (
    Case(
        "dlc_cspnext_s",
        "DeepLabCut 3.0 cspnext_s, 640x480",
        SHARED_DATA
        / "dlc3-openfield-cspnext_s/model"
        / "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt",
        SHARED_DATA / "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4",
        SHARED_DATA / "dlc3-openfield-cspnext_s/reference/analyze_videos_bs4",
    ),
    Case(
        "lp_resnet18",
        "Lightning Pose resnet18, 396x406 frames at 128x256",
        SHARED_DATA
        / "lp-mirror-mouse-resnet18/model/tb_logs/mirror_mouse_resnet18_cpu/version_0"
        / "checkpoints/epoch=39-step=200-best.ckpt",
        SHARED_DATA / "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4",
        SHARED_DATA / "lp-mirror-mouse-resnet18/reference/litpose_predict_eager/video_preds",
    ),
)


def reference_poses(case: Case, keypoints: tuple[str, ...]) -> np.ndarray:
    """The framework's predictions on the clip: (frames, K, 3)."""
    (csv,) = case.reference.glob("*.csv")
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)


def variants() -> list[tuple[str, str, str, str]]:
    """(label, backend, device, precision) to measure, by what is installed."""
    import onnxruntime as ort
    import torch

    found = [
        ("pytorch eager fp32", "pytorch", "cpu", "fp32"),
        ("onnxruntime cpu fp32", "onnxruntime", "cpu", "fp32"),
        # ONNX Runtime's default thread pool (idle threads spin), which the project turns off
        (SPINNING, "onnxruntime", "cpu", "fp32"),
        ("onnxruntime cpu fp16", "onnxruntime", "cpu", "fp16"),
    ]
    if package_version("openvino") is not None:
        found.append(("openvino cpu fp32", "openvino", "cpu", "fp32"))
    if torch.cuda.is_available():
        found.append(("pytorch eager cuda fp32", "pytorch", "cuda", "fp32"))
    providers = ort.get_available_providers()
    for provider, device in (
        ("CUDAExecutionProvider", "cuda"),
        ("TensorrtExecutionProvider", "tensorrt"),
    ):
        if provider in providers:
            found += [
                (f"onnxruntime {device} {p}", "onnxruntime", device, p) for p in ("fp32", "fp16")
            ]
    return found


@dataclass
class Runner:
    """One variant, opened and warm, and what it measured."""

    label: str
    estimator: PoseEstimator
    backend: Any
    latencies_ns: list[int]
    inference_s: list[float]
    poses: list[np.ndarray]


def open_runner(
    label: str,
    description: ModelDescription,
    backend_name: str,
    device: str,
    threads: int,
    frames: list[np.ndarray],
) -> Runner:
    """Open a backend, build the estimator and warm the whole path."""
    if label == SPINNING:
        backend: Any = OnnxRuntimeBackend(description, "cpu", threads, allow_spinning=True)
    else:
        backend = open_backend(description, backend_name, device, threads)
    backend.warm_up(1)
    estimator = open_estimator(description, backend, frames[0].shape, max_batch=1)
    for frame in frames[:3]:
        estimator.estimate([frame])
    return Runner(label, estimator, backend, [], [], [])


def measure_interleaved(runners: list[Runner], frames: list[np.ndarray]) -> None:
    """The variants take turns on blocks of frames (rotating the order).

    Turns keep the variants under the same machine state (other work, CPU clock): a change of
    load during the run does not favour the variant measured at a quiet time. Blocks, each
    started with one untimed frame, keep one backend's idle threads (PyTorch's and ONNX
    Runtime's spin after work) from being charged to the next.
    """
    for turn, start in enumerate(range(0, len(frames), BLOCK)):
        shift = turn % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.estimator.estimate([frames[start]])  # untimed: the switch between backends
            for frame in frames[start : start + BLOCK]:
                began = time.perf_counter_ns()
                runner.poses.append(runner.estimator.estimate([frame])[0])
                runner.latencies_ns.append(time.perf_counter_ns() - began)
                runner.inference_s.append(runner.estimator.last_timings["inference"])


def summary(runner: Runner, reference: np.ndarray) -> dict[str, Any]:
    """Latency, rate and accuracy against the framework of one variant."""
    poses = np.asarray(runner.poses)
    error = np.abs(poses - reference[: len(poses)]).max(axis=(0, 1))
    return {
        "provider": runner.backend.provider,
        "latency_ms": summarize_ms(runner.latencies_ns),
        "inference_ms": summarize_ms(np.asarray(runner.inference_s) * 1e9),
        "fps": round(len(poses) / (sum(runner.latencies_ns) / 1e9), 2),
        "max_dx_px": float(error[0]),
        "max_dy_px": float(error[1]),
        "max_dlikelihood": float(error[2]),
    }


def run_case(case: Case, frames_wanted: int, threads: int) -> dict[str, Any]:
    """Every variant on one model; the descriptions are loaded (and converted) once."""
    descriptions: dict[str, ModelDescription] = {}
    load_seconds: dict[str, float] = {}
    for precision in ("fp32", "fp16"):
        started = time.perf_counter()
        descriptions[precision] = load_model(case.model, precision=precision)
        load_seconds[precision] = round(time.perf_counter() - started, 2)
    frames = read_video(case.clip)[:frames_wanted]
    reference = reference_poses(case, descriptions["fp32"].keypoints)
    runners = [
        open_runner(label, descriptions[precision], backend, device, threads, frames)
        for label, backend, device, precision in variants()
    ]
    measure_interleaved(runners, frames)
    results = {}
    for runner in runners:
        runner.backend.close()
        row = results[runner.label] = summary(runner, reference)
        print(
            f"  {runner.label:<24} latency p50 {row['latency_ms']['p50']:7.2f} ms, p99 "
            f"{row['latency_ms']['p99']:7.2f} ms, {row['fps']:6.1f} fps; max |dx| "
            f"{row['max_dx_px']:.2g} px, |dy| {row['max_dy_px']:.2g} px, |dlikelihood| "
            f"{row['max_dlikelihood']:.2g}",
            flush=True,
        )
    return {
        "title": case.title,
        "model": str(case.model),
        "graphs": {p: str(d.model_file) for p, d in descriptions.items()},
        "load_seconds": load_seconds,
        "frames": len(frames),
        "input": [descriptions["fp32"].input_width, descriptions["fp32"].input_height],
        "variants": results,
    }


def figures_of(key: str, case: dict[str, Any]) -> list[Figure]:
    """ONNX Runtime (fp32, fp16) beside PyTorch eager for one model."""
    rows = case["variants"]
    eager = rows["pytorch eager fp32"]
    figures = []
    for label, short in (
        ("onnxruntime cpu fp32", "ort_fp32"),
        (SPINNING, "ort_fp32_spinning"),
        ("onnxruntime cpu fp16", "ort_fp16"),
        ("openvino cpu fp32", "openvino_fp32"),
    ):
        row = rows.get(label)
        if row is None:  # openvino: an optional package
            continue
        name = f"{case['title'].split(',')[0]}, {label}"
        figures += [
            Figure(
                f"{key}_{short}_latency_p50_ms",
                f"{name}: latency p50",
                row["latency_ms"]["p50"],
                eager["latency_ms"]["p50"],
                "ms",
            ),
            Figure(
                f"{key}_{short}_latency_p99_ms",
                f"{name}: latency p99",
                row["latency_ms"]["p99"],
                eager["latency_ms"]["p99"],
                "ms",
            ),
            Figure(
                f"{key}_{short}_fps",
                f"{name}: rate",
                row["fps"],
                eager["fps"],
                "fps",
                higher_is_better=True,
            ),
            # Accuracies in 1e-3 px and 1e-6, so that the table's three decimals show them.
            Figure(
                f"{key}_{short}_max_dxy_millipx",
                f"{name}: max |dx|,|dy| vs framework",
                round(1e3 * max(row["max_dx_px"], row["max_dy_px"]), 4),
                round(1e3 * max(eager["max_dx_px"], eager["max_dy_px"]), 4),
                "1e-3 px",
                compare=False,
            ),
            Figure(
                f"{key}_{short}_max_dlikelihood_micro",
                f"{name}: max |dlikelihood| vs framework",
                round(1e6 * row["max_dlikelihood"], 4),
                round(1e6 * eager["max_dlikelihood"], 4),
                "1e-6",
                compare=False,
            ),
        ]
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="clip frames per variant (<= 100)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every backend")
    parser.add_argument("--quick", action="store_true", help="20 frames per variant")
    parser.add_argument(
        "--case",
        nargs="+",
        choices=[case.key for case in CASES],
        help="these models only (default: all)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases_wanted = [c for c in CASES if not args.case or c.key in args.case]
    missing = [c.model for c in cases_wanted if not c.model.is_file()]
    if missing:
        print(f"the shared data folder is not beside the project: {missing[0]} is absent")
        return 1
    frames = 20 if args.quick else min(args.frames, 100)
    started, machine = now_iso(), machine_description()
    machine |= {
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
        "openvino": package_version("openvino"),
    }
    cases = {}
    for case in cases_wanted:
        print(f"\n{case.title}: {frames} frames, {args.threads} threads, one frame at a time")
        cases[case.key] = run_case(case, frames, args.threads)
    figures = [f for key, case in cases.items() for f in figures_of(key, case)]
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print_table(
        "converted models: whole per-frame path (pre-processing + network + decoding)",
        figures,
        machine,
        project="ONNX Runtime / OpenVINO",
        baseline="PyTorch eager",
    )
    path = save_result(
        "converted_models",
        figures,
        started=started,
        machine=machine,
        details={"threads": args.threads, "cases": cases},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
