"""Pose models on the GPU: frames per second, frame -> keypoints latency, start times (issue 35).

    python -m benchmarks.gpu [--frames N] [--quick] [--model PATH ...]
                             [--dlclive-python PATH] [--closed-loop]

Without a GPU (no CUDA provider in ONNX Runtime, its CUDA/cuDNN libraries missing, or no device
a session starts on) it prints ``no GPU: not run`` with the reason and exits 0, saving nothing.

With one, in the same run and on the same frames (the DeepLabCut 3.0 clip in
``../shared/data/dlc3-openfield-cspnext_s``, 640x480):

- models: a ResNet-50 in DeepLabCut's ``resnet_50`` layout (timm's ResNet-50 with GroupNorm,
  output stride 16, a deconvolution heatmap head, 4 keypoints, random weights: speed does not
  depend on them) exported to ONNX here, the ``cspnext_s`` export of the shared data, and every
  ``--model PATH`` (a real DeepLabCut ResNet-50 export built with DeepLabCut, any model
  ``[Pose] MODEL_PATH`` takes);
- configurations: ONNX Runtime CUDA fp32 and fp16, TensorRT fp32 and fp16 (the fp16 graph of a
  converted model, ``trt_fp16_enable``), PyTorch CUDA fp32 and fp16 for the rebuilt networks;
  each at batch 1 and batch 3 (three cameras in one call);
- what is timed: the app's own path, :class:`~pose.runtime.estimator.PoseEstimator` (frames in
  host memory -> pre-processing into the bound input -> network -> keypoints), per call; frames
  per second = frames / mean call time; and each configuration's keypoints against the CPU's
  (fp32) on the same frames (median and max px), so speed is compared at equal output;
- start times: cold (TensorRT: an empty engine cache, the engine built) and warm (its cache
  reused), each in a fresh process: ``open_backend`` + warm-up, the models loaded as the worker
  loads them (for the random ResNet-50, in this process);
- baselines in the same run: ONNX Runtime's CPU provider (a few frames), and DeepLabCut-Live's
  PyTorch runner on the GPU when ``--dlclive-python`` names the interpreter of its separate
  environment (``../shared/peers/dlclive/SETUP.md``), on the same clip and model;
- ``--closed-loop``: then ``benchmarks.closed_loop --device tensorrt`` (the simulated rig at
  200 fps, frame -> command p50/p99/max, beside the naive loop).

Saved to ``benchmarks/results/gpu.json``. Never run yet: no GPU was available where it was
written (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.stats import percentiles
from deeplabstream.pose.model import ModelDescription, ModelError

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data" / "dlc3-openfield-cspnext_s"
CSPNEXT = (
    SHARED / "model" / "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
)
CLIP = SHARED / "clip" / "m3v1mp4_first100.mp4"
HEIGHT, WIDTH, KEYPOINTS = 480, 640, 4
CONFIGS = (
    ("onnxruntime", "cuda", "fp32"),
    ("onnxruntime", "cuda", "fp16"),
    ("onnxruntime", "tensorrt", "fp32"),
    ("onnxruntime", "tensorrt", "fp16"),
    ("pytorch", "cuda", "fp32"),
    ("pytorch", "cuda", "fp16"),
)
BATCHES = (1, 3)


def gpu_reason() -> str | None:
    """Why the GPU benchmarks cannot run here (None: they can)."""
    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.providers import device_problem

    problem = device_problem("cuda")
    if problem is not None:
        return problem
    try:
        open_backend(load_model(None), "onnxruntime", "cuda").close()
    except ModelError as error:
        return str(error)
    return None


# --- the models ---------------------------------------------------------------------------


def resnet50_descriptions(folder: Path) -> dict[str, ModelDescription]:
    """DeepLabCut's resnet_50 layout, random weights, as fp32 and fp16 ONNX graphs."""
    import torch
    from torch import nn

    from deeplabstream.pose.networks.resnet import ResNet

    class ResNet50Pose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = ResNet(50, norm="group", output_stride=16)
            self.head = nn.ConvTranspose2d(
                2048, KEYPOINTS, 3, stride=2, padding=1, output_padding=1
            )

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(images))

    torch.manual_seed(0)
    descriptions = {}
    for precision in ("fp32", "fp16"):
        model = ResNet50Pose().eval()
        dummy = torch.zeros(1, 3, HEIGHT, WIDTH)
        if precision == "fp16":
            model, dummy = model.half(), dummy.half()
        path = folder / f"resnet50_pose_{precision}.onnx"
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["images"], output_names=["heatmaps"],
            dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset_version=18, dynamo=False,
        )  # fmt: skip
        descriptions[precision] = ModelDescription(
            name=f"resnet_50 random {precision}",
            framework="deeplabcut",
            model_file=path,
            keypoints=tuple(f"k{i}" for i in range(KEYPOINTS)),
            input_height=HEIGHT,
            input_width=WIDTH,
            stride=8.0,
            heatmaps_are_probabilities=False,
            precision=precision,  # type: ignore[arg-type]
        )
    return descriptions


def load(path: Path, precision: str) -> ModelDescription:
    """A model as the worker loads it, at the clip's frame size."""
    from deeplabstream.pose.loading import load_model

    return load_model(path, frame_size=(HEIGHT, WIDTH), precision=precision)  # type: ignore[arg-type]


def clip_frames(count: int) -> list[np.ndarray]:
    """The clip's frames (BGR, 640x480), cycled to ``count``."""
    import cv2

    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"{CLIP}: no frames (the shared data folder is needed)")
    return [frames[i % len(frames)] for i in range(count)]


# --- timing ---------------------------------------------------------------------------------


def time_estimator(
    description: ModelDescription, backend: str, device: str, frames: list[np.ndarray], batch: int
) -> dict[str, Any]:
    """Per call (``batch`` frames -> keypoints) latency, frames per second, and the keypoints."""
    from deeplabstream.pose.runtime.backends import open_backend, providers_of
    from deeplabstream.pose.runtime.estimator import PoseEstimator

    opened = open_backend(description, backend, device, threads=2)  # type: ignore[arg-type]
    try:
        opened.warm_up(batch)
        estimator = PoseEstimator(description, opened, frames[0].shape, max_batch=batch)
        for start in range(0, 10 * batch, batch):  # the estimator's own shapes, warm
            estimator.estimate(frames[start : start + batch])
        times, points = [], []
        for start in range(0, len(frames) - batch + 1, batch):
            began = time.perf_counter()
            points.append(estimator.estimate(frames[start : start + batch]))
            times.append((time.perf_counter() - began) * 1e3)
        record = providers_of(opened)
    finally:
        opened.close()
    return {
        "latency_ms": percentiles(times) or {},
        "fps": round(batch * 1e3 / float(np.mean(times)), 1),
        "calls": len(times),
        "providers": record,
        "_points": np.concatenate(points),
    }


def deviation(points: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Median and max distance (px) of the keypoints from the reference's."""
    n = min(len(points), len(reference))
    d = np.hypot(*(points[:n, :, :2] - reference[:n, :, :2]).transpose(2, 0, 1))
    d = d[np.isfinite(d)]
    return {"median_px": round(float(np.median(d)), 4), "max_px": round(float(d.max()), 4)}


def start_in_fresh_process(path: Path | None, device: str, precision: str) -> float | None:
    """Seconds from ``open_backend`` to a finished warm-up, in a fresh interpreter."""
    if path is None:
        return None
    code = (
        "import json,sys,time\n"
        "from benchmarks.gpu import load\n"
        "from deeplabstream.pose.runtime.backends import open_backend\n"
        "d = load(__import__('pathlib').Path(sys.argv[1]), sys.argv[3])\n"
        "t = time.perf_counter(); b = open_backend(d, 'onnxruntime', sys.argv[2], 2)\n"
        "b.warm_up(); print(json.dumps(time.perf_counter() - t))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), device, precision],
        cwd=PROJECT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"  start of {path.name} on {device} {precision} failed: {done.stderr[-500:]}")
        return None
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def start_times(description: ModelDescription, path: Path | None, precision: str) -> dict:
    """TensorRT cold (empty engine cache) and warm (cache reused) start, and CUDA's start."""
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.trt_cache import cache_root

    root = cache_root(Path(description.model_file))
    for old in root.glob(Path(description.model_file).name + "-*"):
        shutil.rmtree(old, ignore_errors=True)  # a cold start: no engine of this model
    times: dict[str, float | None] = {}
    for label, device in (("tensorrt_cold_s", "tensorrt"), ("tensorrt_warm_s", "tensorrt")):
        if path is not None:
            times[label] = start_in_fresh_process(path, device, precision)
        else:  # a description made here: timed in this process (its CUDA context exists)
            began = time.perf_counter()
            backend = open_backend(description, "onnxruntime", device, 2)  # type: ignore[arg-type]
            backend.warm_up()
            backend.close()
            times[label] = round(time.perf_counter() - began, 2)
    times["cuda_s"] = start_in_fresh_process(path, "cuda", precision)
    return times


def dlclive_on_gpu(python: str | None, model: Path, frames: int) -> dict[str, Any] | None:
    """DeepLabCut-Live's PyTorch runner on the GPU, in its own environment (None: not run)."""
    if python is None or not Path(python).exists():
        print("  DeepLabCut-Live: no --dlclive-python given (../shared/peers/dlclive/SETUP.md)")
        return None
    code = (
        "import json,sys,time,cv2,numpy as np\n"
        "from dlclive import DLCLive\n"
        "cap=cv2.VideoCapture(sys.argv[2]); fr=[]\n"
        "while True:\n ok,f=cap.read()\n if not ok: break\n fr.append(f)\n"
        "out={}\n"
        "for prec in ('FP32','FP16'):\n"
        " live=DLCLive(sys.argv[1],model_type='pytorch',device='cuda',precision=prec,"
        "single_animal=True)\n"
        " live.init_inference(fr[0])\n"
        " for i in range(20): live.get_pose(fr[i%len(fr)])\n"
        " t=[]\n"
        " for i in range(int(sys.argv[3])):\n"
        "  s=time.perf_counter(); live.get_pose(fr[i%len(fr)]); t.append(time.perf_counter()-s)\n"
        " t=np.array(t)*1e3\n"
        " out[prec]={'p50_ms':float(np.percentile(t,50)),'p99_ms':float(np.percentile(t,99)),"
        "'max_ms':float(t.max()),'fps':float(1e3/t.mean())}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [python, "-c", code, str(model), str(CLIP), str(frames)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"  DeepLabCut-Live failed: {done.stderr[-800:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the run --------------------------------------------------------------------------------


def measure_model(
    name: str,
    descriptions: dict[str, ModelDescription],
    path: Path | None,
    frames: list[np.ndarray],
    converted: bool,
) -> dict[str, Any]:
    """Every configuration and batch of one model, against the CPU's keypoints."""
    cpu = time_estimator(descriptions["fp32"], "onnxruntime", "cpu", frames[:12], 1)
    reference = cpu.pop("_points")
    runs: dict[str, Any] = {"cpu_fp32_b1": cpu}
    for backend, device, precision in CONFIGS:
        if backend == "pytorch" and not converted:
            continue  # only the rebuilt networks run on the pytorch backend
        for batch in BATCHES:
            label = f"{backend}_{device}_{precision}_b{batch}"
            try:
                run = time_estimator(descriptions[precision], backend, device, frames, batch)
            except ModelError as error:
                runs[label] = {"error": str(error)}
                print(f"  {name} {label}: {error}")
                continue
            run["vs_cpu"] = deviation(run.pop("_points"), reference)
            runs[label] = run
            print(
                f"  {name} {label}: {run['fps']} frames/s, p50 {run['latency_ms'].get('p50')} "
                f"p99 {run['latency_ms'].get('p99')} ms, vs CPU {run['vs_cpu']}"
            )
    runs["start"] = {p: start_times(descriptions[p], path, p) for p in ("fp32", "fp16")}
    return runs


def iobinding_on_cpu(calls: int) -> dict[str, Any]:
    """The bundled model on the CPU provider: IO binding against ``session.run``, interleaved.

    Each round runs the same prepared batch once through each path (in alternating order), so
    both see the same load; batch 1 and 3. Latency of ``backend.run`` alone, in ms.
    """
    import os

    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend

    description = load_model(None)
    bound = OnnxRuntimeBackend(description, "cpu", 1)
    plain = OnnxRuntimeBackend(description, "cpu", 1, io_binding=False)
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"load_average_start": os.getloadavg()}
    for batch in (1, 3):
        data = rng.uniform(0, 255, description.input_shape(batch)).astype(np.float32)
        times: dict[str, list[float]] = {"iobinding": [], "session_run": []}
        for backend in (bound, plain):
            for _ in range(20):  # warm: the bound path learns this shape's outputs
                backend.run(data)
        for index in range(calls):
            order = [("iobinding", bound), ("session_run", plain)]
            for name, backend in order if index % 2 else order[::-1]:
                began = time.perf_counter_ns()
                backend.run(data)
                times[name].append((time.perf_counter_ns() - began) / 1e6)
        results[f"batch{batch}"] = {
            name: {k: round(v, 3) for k, v in (percentiles(t) or {}).items()}
            for name, t in times.items()
        }
        print(f"batch {batch}: {results[f'batch{batch}']}")
    results["load_average_end"] = os.getloadavg()
    print(f"load average: start {results['load_average_start']}, end {results['load_average_end']}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--dlclive-python", default=None)
    parser.add_argument("--closed-loop", action="store_true")
    parser.add_argument(
        "--iobinding-on-cpu",
        type=int,
        metavar="CALLS",
        help="only compare IO binding with session.run on the CPU (the bundled model)",
    )
    args = parser.parse_args(argv)
    if args.iobinding_on_cpu:
        iobinding_on_cpu(args.iobinding_on_cpu)
        return 0
    reason = gpu_reason()
    if reason is not None:
        print(f"no GPU: not run ({reason})")
        return 0
    count = 150 if args.quick else args.frames
    frames = clip_frames(count)
    started, machine = now_iso(), machine_description()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["resnet_50 (random weights)"] = measure_model(
            "resnet_50", resnet50_descriptions(Path(folder)), None, frames, False
        )
        for path in [CSPNEXT, *args.model]:
            descriptions = {p: load(path, p) for p in ("fp32", "fp16")}
            results[path.name] = measure_model(path.name, descriptions, path, frames, True)
    results["dlclive_cuda"] = dlclive_on_gpu(args.dlclive_python, CSPNEXT, count)
    resnet = results["resnet_50 (random weights)"]
    best = resnet.get("onnxruntime_tensorrt_fp16_b1") or resnet["onnxruntime_cuda_fp16_b1"]
    figures = [
        Figure(
            "resnet50_fps",
            "ResNet-50 640x480 batch 1, TensorRT fp16",
            best.get("fps"),
            resnet["cpu_fp32_b1"]["fps"],
            "frames/s",
            goal=">= 500",
            higher_is_better=True,
        ),
        Figure(
            "resnet50_p99_ms",
            "frame -> keypoints p99",
            best.get("latency_ms", {}).get("p99"),
            resnet["cpu_fp32_b1"]["latency_ms"].get("p99"),
            "ms",
            goal="<= 3",
        ),
        Figure(
            "warm_start_s",
            "warm start with a cached engine",
            resnet["start"]["fp16"].get("tensorrt_warm_s"),
            resnet["start"]["fp16"].get("tensorrt_cold_s"),
            "s",
            goal="<= 5",
        ),
    ]
    print_table("Pose models on the GPU", figures, machine, project="GPU", baseline="CPU / cold")
    path = save_result("gpu", figures, started=started, machine=machine, details=results)
    print(f"saved {path}")
    if args.closed_loop:
        from benchmarks import closed_loop

        closed_loop.main(["--device", "tensorrt"] + (["--quick"] if args.quick else []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
