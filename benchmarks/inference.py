"""Pose inference: the model alone, and the whole path frame -> keypoints, beside a naive loop.

    python -m benchmarks.inference [--model PATH] [--duration S] [--fps F] [--quick]

1. **Model alone**, per backend (ONNX Runtime; PyTorch when the model has ``model.pt``), per
   thread count and batch size: preprocessing, inference and decoding time per frame on the
   simulated arena's 640x480 frames.
2. **Whole path** in the app: the simulated arena at ``--fps`` (default 30) streams through the
   capture process and the shared-memory ring into the inference worker; latency = camera frame
   arrival (host clock) -> keypoints ready, from ``<camera>.pose_timing.csv``.
3. **Baseline**, in the same run: the naive single-thread loop (grab -> preprocess -> infer ->
   decode, as DeepLabCut-Live does) on the same model and the same frames at the same rate.

Figures are printed beside each other and saved to ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.settings import load_settings

FRAME_SHAPE = (480, 640, 3)


def arena_frames(count: int, seed: int = 123) -> list[np.ndarray]:
    """``count`` frames of the simulated arena at 640x480."""
    arena = SimulatedArena(ArenaParams(width=640, height=480, seed=seed))
    frames = []
    for _ in range(count):
        frame = np.empty(FRAME_SHAPE, np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    return frames


def time_model(
    description: ModelDescription, backend_name: str, threads: int, batch: int, frames: list
) -> dict[str, Any]:
    """Median and tail per-frame times of each stage of the estimator."""
    backend = open_backend(description, backend_name, "cpu", threads)
    backend.warm_up(batch)
    estimator = open_estimator(description, backend, FRAME_SHAPE, max_batch=batch)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "decode": [], "total": []}
    for start in range(0, len(frames) - batch + 1, batch):
        began = time.perf_counter()
        estimator.estimate(frames[start : start + batch])
        total = time.perf_counter() - began
        for stage in ("preprocess", "inference", "decode"):
            stages[stage].append(estimator.last_timings[stage] / batch)
        stages["total"].append(total / batch)
    backend.close()
    return {stage: summarize_ms(np.asarray(values) * 1e9) for stage, values in stages.items()} | {
        "backend": backend_name,
        "threads": threads,
        "batch": batch,
        "provider": backend.provider,
    }


def backends_by_size(sizes: list[tuple[int, int]], repeats: int) -> list[dict[str, Any]]:
    """The bundled network's architecture (fresh weights: speed does not depend on them) at
    several input sizes, in ONNX Runtime and in PyTorch (TorchScript), 1 thread, batch 1."""
    import torch

    from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
    from deeplabstream.pose.networks.own import NetworkConfig, PoseNet, export_onnx

    torch.manual_seed(0)
    network = PoseNet(NetworkConfig(num_keypoints=len(KEYPOINT_NAMES))).eval()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for height, width in sizes:
            onnx_file = Path(folder) / f"net_{height}x{width}.onnx"
            export_onnx(network, str(onnx_file), height, width)
            script_file = onnx_file.with_suffix(".pt")
            torch.jit.trace(network, torch.zeros(1, 3, height, width)).save(str(script_file))
            batch = np.zeros((1, 3, height, width), np.float32)
            for backend_name, model_file in (("onnxruntime", onnx_file), ("pytorch", script_file)):
                description = ModelDescription(
                    name="posenet",
                    framework="deeplabstream",
                    model_file=model_file,
                    keypoints=KEYPOINT_NAMES,
                    input_height=height,
                    input_width=width,
                    output_kind="heatmaps+locref",
                    output_names=("heatmaps", "locref"),
                )
                backend = open_backend(description, backend_name, "cpu", 1)
                backend.warm_up(1)
                times = []
                for _ in range(repeats):
                    began = time.perf_counter_ns()
                    backend.run(batch)
                    times.append(time.perf_counter_ns() - began)
                backend.close()
                rows.append(
                    {
                        "backend": backend_name,
                        "input": f"{width}x{height}",
                        "inference_ms": summarize_ms(np.asarray(times)),
                    }
                )
    return rows


def whole_path(model: Path | None, fps: float, duration_s: float, folder: Path) -> dict[str, Any]:
    """Run the app's stream with pose estimation; latency and rates from its own files."""
    settings_file = folder / "settings.ini"
    model_line = f"MODEL_PATH = {model}\n" if model else ""
    settings_file.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {fps}\nSEED = 123\n"
        f"[Pose]\n{model_line}\n[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    stream = LiveSession(load_settings(settings_file), output_dir=folder / "out")
    runner = SessionRunner(stream, duration_s=duration_s, status_out=None)
    try:
        stream.open()
        stream.pose.start_analysis()
        stream.start()
        runner.run_headless()
    finally:
        stream.stop("benchmark over")
    assert stream.session_dir is not None and stream.pose.analysis is not None
    timing = pd.read_csv(stream.session_dir / "arena.pose_timing.csv").iloc[10:]  # warm
    figures = stream.pose.analysis.summary()["cameras"]["arena"]
    captured = stream.camera_stats()["arena"]["captured"]
    queue_ms = (timing["picked_up"] - timing["host_timestamp"]) * 1e3
    stage_ms = timing[["preprocess_ms", "inference_ms", "decode_ms"]].sum(axis=1)
    return {
        "latency_ms": summarize_ms(timing["latency_ms"].to_numpy() * 1e6),
        "inference_ms": summarize_ms(timing["inference_ms"].to_numpy() * 1e6),
        "queue_wait_ms": summarize_ms(queue_ms.to_numpy() * 1e6),
        "overhead_ms": summarize_ms((timing["latency_ms"] - stage_ms).to_numpy() * 1e6),
        "analysed_fps": figures["analysed_fps"],
        "analysed": figures["frames_analysed"],
        "skipped": figures["frames_skipped"],
        "captured": captured,
    }


def naive_loop(description: ModelDescription, fps: float, duration_s: float) -> dict[str, Any]:
    """Grab -> preprocess -> infer -> decode in one thread, paced like the camera."""
    threads = max(1, min(4, (os.cpu_count() or 2) - 1))  # as the worker's THREADS = 0
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    backend.warm_up(1)
    estimator = open_estimator(description, backend, FRAME_SHAPE, max_batch=1)
    arena = SimulatedArena(ArenaParams(width=640, height=480, seed=123))
    frame = np.empty(FRAME_SHAPE, np.uint8)
    latencies: list[int] = []
    inference: list[float] = []
    due = time.perf_counter()
    missed = analysed = 0
    end = due + duration_s
    while due < end:
        arena.render_next(frame)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        arrived = host_now_ns()
        estimator.estimate([frame])
        latencies.append(host_now_ns() - arrived)
        inference.append(estimator.last_timings["inference"])
        analysed += 1
        due += 1 / fps
        late = time.perf_counter() - due
        if late > 0:  # frames the camera delivered while the loop was busy: never analysed
            skipped = int(late * fps) + 1
            missed += skipped
            due += skipped / fps
    backend.close()
    return {
        "latency_ms": summarize_ms(np.asarray(latencies[10:])),
        "inference_ms": summarize_ms(np.asarray(inference[10:]) * 1e9),
        "analysed_fps": round(analysed / duration_s, 3),
        "analysed": analysed,
        "skipped": missed,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model (default: the bundled model)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per live run")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate of the live runs")
    parser.add_argument("--quick", action="store_true", help="short runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    duration = 8.0 if args.quick else args.duration
    started, machine = now_iso(), machine_description()
    description = load_model(args.model)
    frames = arena_frames(60 if args.quick else 300)
    variants = [("onnxruntime", t, b) for t in (1, 2) for b in (1, 2)]
    if (description.model_file.parent / "model.pt").is_file():
        variants.append(("pytorch", 2, 1))
    model_alone = [time_model(description, *variant, frames) for variant in variants]
    with tempfile.TemporaryDirectory() as folder:
        app = whole_path(args.model, args.fps, duration, Path(folder))
    naive = naive_loop(description, args.fps, duration)
    by_size = backends_by_size([(256, 320), (480, 640)], 20 if args.quick else 100)
    model_ms = min(v["inference"]["p50"] for v in model_alone if v["batch"] == 1)
    figures = [
        Figure(
            "latency_p50_ms",
            "frame -> keypoints latency p50",
            app["latency_ms"]["p50"],
            naive["latency_ms"]["p50"],
            "ms",
            goal="<= 12 (with experiment)",
        ),
        Figure(
            "latency_p99_ms",
            "frame -> keypoints latency p99",
            app["latency_ms"]["p99"],
            naive["latency_ms"]["p99"],
            "ms",
            goal="<= 20",
        ),
        Figure(
            "latency_max_ms",
            "frame -> keypoints latency max",
            app["latency_ms"]["max"],
            naive["latency_ms"]["max"],
            "ms",
        ),
        Figure(
            "inference_p50_ms",
            "inference alone p50",
            app["inference_ms"]["p50"],
            naive["inference_ms"]["p50"],
            "ms",
        ),
        Figure(
            "overhead_p50_ms",
            "pipeline overhead p50 (latency - stages)",
            app["overhead_ms"]["p50"],
            None,
            "ms",
            goal="<= 1",
        ),
        Figure(
            "overhead_p99_ms",
            "pipeline overhead p99",
            app["overhead_ms"]["p99"],
            None,
            "ms",
            goal="<= 2",
        ),
        Figure(
            "analysed_fps",
            "analysed rate",
            app["analysed_fps"],
            naive["analysed_fps"],
            "fps",
            higher_is_better=True,
        ),
        Figure("skipped", "frames skipped", app["skipped"], naive["skipped"], compare=False),
    ]
    print("\nmodel alone, per frame (ms, p50 / p99):")
    for variant in model_alone:
        print(
            f"  {variant['backend']:>11} threads={variant['threads']} batch={variant['batch']}: "
            f"preprocess {variant['preprocess']['p50']:.2f}, inference "
            f"{variant['inference']['p50']:.2f} / {variant['inference']['p99']:.2f}, decode "
            f"{variant['decode']['p50']:.2f}, total {variant['total']['p50']:.2f}"
        )
    print(f"  model-bound limit: {1000 / model_ms:.0f} fps at batch 1")
    print("\nbundled network architecture per backend and input size (1 thread, batch 1, ms):")
    for row in by_size:
        print(
            f"  {row['backend']:>11} {row['input']:>8}: p50 {row['inference_ms']['p50']:.2f}, "
            f"p99 {row['inference_ms']['p99']:.2f}"
        )
    print_table(
        f"whole path at {args.fps:g} fps, {duration:g} s, model {description.name}",
        figures,
        machine,
        project="app",
        baseline="naive loop",
    )
    path = save_result(
        "inference",
        figures,
        started=started,
        machine=machine,
        details={
            "model": description.name,
            "model_alone": model_alone,
            "by_size": by_size,
            "app": app,
            "fps": args.fps,
            "duration_s": duration,
        },
        baseline_details=naive,
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
