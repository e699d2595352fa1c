"""A ResNet-50-class pose network at 640x480, batch 1, on the GPU: frames per second.

    python -m benchmarks.gpu [--frames N] [--quick]

Needs ONNX Runtime's GPU build (``requirements-gpu.txt``) and an NVIDIA GPU; on a machine
without them it says what is missing and exits 1 without saving.

The network is DeepLabCut's ``resnet_50`` shape (timm's ResNet-50 with GroupNorm, output stride
16, a deconvolution heatmap head for 6 keypoints), with random weights: speed does not depend
on the weights. It is exported to ONNX once (fp32; the fp16 graph is the same network in half
precision) and run per execution provider:

- ``CPUExecutionProvider`` fp32 (the same run's baseline, a few frames only: it is slow);
- ``CUDAExecutionProvider`` fp32 and fp16;
- ``TensorrtExecutionProvider`` fp16 (``trt_fp16_enable``; the engine is built and cached in
  the results folder on the first run, which can take minutes).

Each frame is a new host array (uint8 640x480 BGR turned into the network's input), so the
host-to-device copy is counted, as in the app. Saved to ``benchmarks/results/gpu.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.stats import percentiles

HEIGHT, WIDTH, KEYPOINTS = 480, 640, 6


def build_network() -> Any:
    """DeepLabCut's resnet_50 layout with a deconvolution head, random weights, eval mode."""
    import torch
    from torch import nn

    from deeplabstream.pose.networks.resnet import ResNet

    class ResNet50Pose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = ResNet(50, norm="group", output_stride=16)
            self.head = nn.Sequential(
                nn.ConvTranspose2d(2048, KEYPOINTS, 3, stride=2, padding=1, output_padding=1)
            )

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(images))

    torch.manual_seed(0)
    return ResNet50Pose().eval()


def export(folder: Path, half: bool) -> Path:
    """The network as ONNX (fp32, or fp16 weights and input), batch 1 at 640x480."""
    import torch

    model = build_network()
    dummy = torch.zeros(1, 3, HEIGHT, WIDTH)
    if half:
        model, dummy = model.half(), dummy.half()
    path = folder / f"resnet50_pose_{'fp16' if half else 'fp32'}.onnx"
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["heatmaps"],
        opset_version=18,
        dynamo=False,
    )
    return path


def providers_available() -> list[str]:
    """ONNX Runtime's execution providers in this installation."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def time_provider(path: Path, provider: str, frames: int, half: bool) -> dict[str, Any]:
    """Per-frame latency (host frame -> heatmaps on the host) and frames per second."""
    import cv2
    import onnxruntime

    options: list[Any] = [provider]
    if provider == "TensorrtExecutionProvider":
        cache = RESULTS_DIR / "trt_cache"
        cache.mkdir(parents=True, exist_ok=True)
        options = [
            (
                provider,
                {
                    "trt_fp16_enable": True,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            ),
            "CUDAExecutionProvider",
        ]
    session = onnxruntime.InferenceSession(str(path), providers=options)
    rng = np.random.default_rng(0)
    dtype = np.float16 if half else np.float32
    frame = rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
    times = []
    for index in range(frames + 10):
        started = time.perf_counter()
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        batch = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=dtype) / dtype(255)
        session.run(None, {"images": batch})
        if index >= 10:  # warm-up (and TensorRT's engine build) not counted
            times.append((time.perf_counter() - started) * 1e3)
    latency = percentiles(times) or {}
    return {
        "provider": session.get_providers()[0],
        "latency_ms": latency,
        "fps": round(1e3 / float(np.mean(times)), 1) if times else None,
        "frames": len(times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    frames = 200 if args.quick else args.frames
    available = providers_available()
    if "CUDAExecutionProvider" not in available:
        print(
            "benchmarks.gpu: ONNX Runtime has no CUDA provider here (providers: "
            f"{', '.join(available)}). On a machine with an NVIDIA GPU: "
            ".venv/bin/pip uninstall -y onnxruntime && .venv/bin/pip install -r "
            "requirements-gpu.txt"
        )
        return 1
    started, machine = now_iso(), machine_description()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        fp32, fp16 = export(Path(folder), False), export(Path(folder), True)
        runs["cpu_fp32"] = time_provider(fp32, "CPUExecutionProvider", 10, False)
        runs["cuda_fp32"] = time_provider(fp32, "CUDAExecutionProvider", frames, False)
        runs["cuda_fp16"] = time_provider(fp16, "CUDAExecutionProvider", frames, True)
        if "TensorrtExecutionProvider" in available:
            runs["tensorrt_fp16"] = time_provider(fp32, "TensorrtExecutionProvider", frames, False)
    best = max((r for k, r in runs.items() if k != "cpu_fp32"), key=lambda r: r["fps"] or 0)
    figures = [
        Figure(
            "fps",
            "ResNet-50 640x480 batch 1, best GPU provider",
            best["fps"],
            runs["cpu_fp32"]["fps"],
            "frames/s",
            goal=">= 300",
            higher_is_better=True,
        ),
        Figure(
            "p99_ms",
            "per-frame latency p99",
            best["latency_ms"].get("p99"),
            runs["cpu_fp32"]["latency_ms"].get("p99"),
            "ms",
        ),
    ]
    print_table(
        "ResNet-50-class pose network on the GPU", figures, machine, project="GPU", baseline="CPU"
    )
    for name, run in runs.items():
        print(f"  {name}: {run['fps']} frames/s, latency {run['latency_ms']} ({run['provider']})")
    path = save_result("gpu", figures, started=started, machine=machine, details=runs)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
