"""Pose models on the GPU: the app's path beside the plain reference, in the same run.

    python -m benchmarks.gpu [--frames N] [--quick] [--model PATH ...]
                             [--dlclive-python PATH] [--closed-loop] [--rehearse-on-cpu]

Without a GPU (no CUDA provider in ONNX Runtime, its CUDA/cuDNN libraries missing, or no device
a session starts on) it prints ``no GPU: not run`` with the reason and exits 0, saving nothing.
``--rehearse-on-cpu`` runs every step on the CPU instead (small frames, a few calls), so that a
machine without a GPU shows the benchmark runs through; its figures say nothing of a GPU.

With one, in the same run and on the same frames (the DeepLabCut 3.0 clip, 640x480):

- models: a ResNet-50 in DeepLabCut's ``resnet_50`` layout (GroupNorm, output stride 16, a
  deconvolution head, 4 keypoints, random weights: speed does not depend on them), exported to
  ONNX here at fp32 and fp16; the ``cspnext_s`` DeepLabCut 3.0 export; every ``--model PATH``;
- configurations (:data:`CONFIGS`): ONNX Runtime CUDA fp32, tf32 and fp16, each with and
  without ``CUDA_GRAPH``; TensorRT fp32 and fp16; PyTorch CUDA fp32, tf32 and fp16 (the rebuilt
  networks), eager and with ``CUDA_GRAPH``; batch 1 (and 3, three cameras in one call,
  without ``--quick``);
- for each, three timings per call, interleaved on the same frames:
  ``app``: frames -> keypoints through the app's own path (:class:`NetworkEstimator`: the
  pre-processing into the bound input, the network, the decoding);
  ``app_network``: the app's backend alone on the prepared batch (IO binding, CUDA graph);
  ``plain_network``: the same graph in a plain ``session.run`` with the same provider options
  (no IO binding, no CUDA graph), or, for PyTorch, the same network in plain eager PyTorch
  (NCHW, ``.cuda()``, outputs ``.cpu()``);
  and the keypoints against the CPU's on the same frames (median and max px);
- a configuration that cannot run here (TensorRT without its libraries, a graph ONNX Runtime
  refuses) is reported as **not run**, with the reason; nothing crashes;
- the goals of docs/gpu.md, each **met**, **missed** or **not run**, with the figure;
- start times: CUDA, and TensorRT cold (empty engine cache) and warm (cache reused), each in a
  fresh process;
- DeepLabCut-Live's PyTorch runner on the GPU when ``--dlclive-python`` names its environment's
  interpreter, on the same clip and model; ``--closed-loop``: ``benchmarks.closed_loop
  --device cuda`` (the simulated rig, beside the naive loop).

Saved to ``benchmarks/results/gpu.json`` (``gpu_rehearsal.json`` for a rehearsal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import percentiles
from deeplabstream.pose.model import ModelDescription

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data" / "dlc3-openfield-cspnext_s"
CSPNEXT = (
    SHARED / "model" / "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
)
CLIP = SHARED / "clip" / "m3v1mp4_first100.mp4"
KEYPOINTS = 4
RESNET = "resnet_50 (random weights)"


@dataclass(frozen=True)
class Config:
    """One way of running a model: backend, device, precision, CUDA graph."""

    backend: str
    device: str
    precision: str
    cuda_graph: bool = False

    @property
    def label(self) -> str:
        """The configuration's name in the results (``onnxruntime_cuda_fp16_graph``)."""
        graph = "_graph" if self.cuda_graph else ""
        return f"{self.backend}_{self.device}_{self.precision}{graph}"


CONFIGS = (
    Config("onnxruntime", "cuda", "fp32"),
    Config("onnxruntime", "cuda", "fp32", cuda_graph=True),
    Config("onnxruntime", "cuda", "tf32"),
    Config("onnxruntime", "cuda", "fp16"),
    Config("onnxruntime", "cuda", "fp16", cuda_graph=True),
    Config("onnxruntime", "tensorrt", "fp32"),
    Config("onnxruntime", "tensorrt", "fp16"),
    Config("pytorch", "cuda", "fp32"),
    Config("pytorch", "cuda", "fp32", cuda_graph=True),
    Config("pytorch", "cuda", "tf32"),
    Config("pytorch", "cuda", "fp16"),
    Config("pytorch", "cuda", "fp16", cuda_graph=True),
)


@dataclass(frozen=True)
class Run:
    """What this run measures: frame size, calls, batches, and where "the GPU" is."""

    height: int = 480
    width: int = 640
    frames: int = 1000
    batches: tuple[int, ...] = (1, 3)
    rehearsal: bool = False  # every device is the CPU (the code path, not a GPU's figures)

    def device(self, device: str) -> str:
        """The device a configuration runs on in this run."""
        return "cpu" if self.rehearsal else device


def gpu_reason() -> str | None:
    """Why the GPU benchmarks cannot run here (None: they can)."""
    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.model import ModelError
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


def resnet50(run: Run) -> tuple[dict[str, ModelDescription], Any]:
    """DeepLabCut's resnet_50 layout, random weights: fp32 and fp16 ONNX graphs, and the module."""
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
    module = ResNet50Pose().eval()
    folder = Path(tempfile.mkdtemp(prefix="resnet50-"))
    descriptions = {}
    for precision in ("fp32", "fp16"):
        exported = ResNet50Pose().eval()
        exported.load_state_dict(module.state_dict())
        dummy = torch.zeros(1, 3, run.height, run.width)
        if precision == "fp16":
            exported, dummy = exported.half(), dummy.half()
        path = folder / f"resnet50_pose_{precision}.onnx"
        torch.onnx.export(
            exported, (dummy,), str(path), input_names=["images"], output_names=["heatmaps"],
            dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset_version=18, dynamo=False,
        )  # fmt: skip
        descriptions[precision] = ModelDescription(
            name=f"resnet_50 random {precision}",
            framework="deeplabcut",
            model_file=path,
            keypoints=tuple(f"k{i}" for i in range(KEYPOINTS)),
            input_height=run.height,
            input_width=run.width,
            stride=8.0,
            heatmaps_are_probabilities=False,
            precision=precision,  # type: ignore[arg-type]
        )
    descriptions["tf32"] = _as_tf32(descriptions["fp32"])
    return descriptions, module


def _as_tf32(description: ModelDescription) -> ModelDescription:
    import dataclasses

    return dataclasses.replace(description, precision="tf32")


def load(path: Path, precision: str, run: Run) -> ModelDescription:
    """A model as the worker loads it, at this run's frame size."""
    from deeplabstream.pose.loading import load_model

    size = (run.height, run.width)
    return load_model(path, frame_size=size, precision=precision)  # type: ignore[arg-type]


def clip_frames(run: Run) -> list[np.ndarray]:
    """The clip's frames (BGR), at this run's size, cycled to ``run.frames``."""
    import cv2

    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if frame.shape[:2] != (run.height, run.width):
            frame = cv2.resize(frame, (run.width, run.height), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"{CLIP}: no frames (the shared data folder is needed)")
    return [frames[i % len(frames)] for i in range(run.frames)]


# --- timing ---------------------------------------------------------------------------------


def _ms(samples: list[float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in (percentiles(samples) or {}).items()}


def _timed(call: Callable[[np.ndarray], Any], batch: np.ndarray) -> float:
    """Milliseconds ``call(batch)`` took."""
    began = time.perf_counter()
    call(batch)
    return (time.perf_counter() - began) * 1e3


def plain_torch(description: ModelDescription, module: Any, device: str) -> Callable[..., Any]:
    """The network in plain eager PyTorch: NCHW, ``.to(device)``, outputs ``.cpu()``."""
    import torch

    from deeplabstream.pose.model_format import build_torch_module

    network = module if module is not None else build_torch_module(description)
    half = description.precision == "fp16"
    network = network.to(device).eval()
    network = network.half() if half else network.float()
    dtype = torch.float16 if half else torch.float32

    def run(batch: np.ndarray) -> list[Any]:
        with torch.inference_mode():
            result = network(torch.from_numpy(batch).to(device, dtype))
            outputs = result if isinstance(result, (tuple, list)) else [result]
            return [o.cpu() for o in outputs]

    return run


def measure_config(
    description: ModelDescription,
    config: Config,
    frames: list[np.ndarray],
    batch: int,
    run: Run,
    torch_module: Any = None,
) -> dict[str, Any]:
    """The app's path, its backend alone and the plain reference, interleaved; the keypoints.

    The app's path is the worker's: the input prepared where the worker prepares it for the
    configuration's device (:func:`~pose.runtime.device_input.input_for_device`; a rehearsal
    runs that graph on the CPU). The plain reference runs the model's own graph on the CPU's
    pre-processing of the same frames.
    """
    from deeplabstream.pose.runtime.backends import (
        OnnxRuntimeBackend,
        open_backend,
        providers_of,
        set_cuda_graph,
    )
    from deeplabstream.pose.runtime.device_input import input_for_device
    from deeplabstream.pose.runtime.estimator import NetworkEstimator  # its pre-processing

    device = run.device(config.device)
    size = (frames[0].shape[0], frames[0].shape[1])
    app_model, prepared = input_for_device(description, config.device, config.backend, [size])
    set_cuda_graph(config.cuda_graph)
    opened: list[Any] = []
    try:
        backend = open_backend(app_model, config.backend, device, threads=2)  # type: ignore[arg-type]
        opened.append(backend)
        backend.warm_up(batch)
        estimator = NetworkEstimator(app_model, backend, frames[0].shape, max_batch=batch)
        if config.backend == "onnxruntime":
            plain_backend = OnnxRuntimeBackend(
                description,
                device,
                2,
                io_binding=False,
                cuda_graph=False,  # type: ignore[arg-type]
            )
            opened.append(plain_backend)
            plain_backend.warm_up(batch)
            plain = plain_backend.run
            reference = NetworkEstimator(description, plain_backend, frames[0].shape, batch)
        else:
            plain = plain_torch(description, torch_module, "cpu" if run.rehearsal else "cuda")
            reference = estimator  # the same model, the same pre-processing
        calls = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        for chunk in calls[:10]:  # warm: the estimator's own shapes, the graphs captured
            estimator.estimate(chunk)
            plain(reference.preprocessor.prepare(chunk)[0])
        times: dict[str, list[float]] = {"app": [], "app_network": [], "plain_network": []}
        points = []
        for index, chunk in enumerate(calls):
            began = time.perf_counter()
            points.append(estimator.estimate(chunk))
            times["app"].append((time.perf_counter() - began) * 1e3)
            inputs = {
                "app_network": (backend.run, estimator.preprocessor.prepare(chunk)[0]),
                "plain_network": (plain, reference.preprocessor.prepare(chunk)[0]),
            }
            names = ["app_network", "plain_network"]
            for name in names if index % 2 else names[::-1]:  # the same load for both
                times[name].append(_timed(*inputs[name]))
        record = providers_of(backend)
    finally:
        set_cuda_graph(False)
        for each in opened:
            each.close()
    result: dict[str, Any] = {name: _ms(samples) for name, samples in times.items()}
    result["fps"] = round(batch * 1e3 / float(np.mean(times["app"])), 1)
    result["calls"] = len(calls)
    p50 = {name: result[name].get("p50") for name in times}
    if p50["app_network"] and p50["plain_network"]:
        result["network_vs_plain"] = round(p50["app_network"] / p50["plain_network"], 3)
    result["providers"] = record
    result["input_prepared"] = prepared
    result["_points"] = np.concatenate(points)
    return result


def deviation(points: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Median and max distance (px) of the keypoints from the reference's."""
    n = min(len(points), len(reference))
    d = np.hypot(*(points[:n, :, :2] - reference[:n, :, :2]).transpose(2, 0, 1))
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"median_px": float("nan"), "max_px": float("nan")}
    return {"median_px": round(float(np.median(d)), 4), "max_px": round(float(d.max()), 4)}


#: The keypoints a configuration must give to count at all (tests/gpu's limits): fp32 no point
#: more than 0.01 px from the CPU's, tf32 and fp16 at most 0.1 px at the median.
FP32_MAX_PX = 0.01
HALF_MEDIAN_PX = 0.1


def keypoints_right(vs_cpu: dict[str, float], precision: str) -> bool:
    """Whether a configuration's keypoints are the CPU's within its precision's limit."""
    median, largest = vs_cpu.get("median_px"), vs_cpu.get("max_px")
    if median is None or largest is None or not np.isfinite([median, largest]).all():
        return False  # no point found on both: nothing shows the keypoints are right
    if precision == "fp32":
        return float(largest) <= FP32_MAX_PX
    return float(median) <= HALF_MEDIAN_PX


def cpu_keypoints(description: ModelDescription, frames: list[np.ndarray]) -> np.ndarray:
    """The CPU's fp32 keypoints of ``frames``: the reference every configuration is held to."""
    from deeplabstream.pose.loading import open_estimator
    from deeplabstream.pose.runtime.backends import open_backend

    backend = open_backend(description, "onnxruntime", "cpu", threads=2)
    try:
        estimator = open_estimator(description, backend, frames[0].shape, max_batch=1)
        return np.concatenate([estimator.estimate([frame]) for frame in frames])
    finally:
        backend.close()


def start_in_fresh_process(path: Path | None, device: str, precision: str, run: Run) -> Any:
    """Seconds from ``open_backend`` to a finished warm-up in a fresh interpreter (or why not)."""
    if path is None:
        return None
    code = (
        "import json,sys,time\n"
        "from benchmarks.gpu import Run, load\n"
        "from deeplabstream.pose.runtime.backends import open_backend\n"
        "run = Run(height=int(sys.argv[4]), width=int(sys.argv[5]))\n"
        "d = load(__import__('pathlib').Path(sys.argv[1]), sys.argv[3], run)\n"
        "t = time.perf_counter(); b = open_backend(d, 'onnxruntime', sys.argv[2], 2)\n"
        "b.warm_up(); print(json.dumps(time.perf_counter() - t))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), run.device(device), precision, str(run.height),
         str(run.width)],
        cwd=PROJECT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  start of {path.name} on {device} {precision}: not run ({why})")
        return {"not_run": why}
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def start_times(description: ModelDescription, path: Path | None, run: Run) -> dict[str, Any]:
    """TensorRT cold (empty engine cache) and warm (cache reused), and CUDA's, fresh processes.

    A model made in this process (the random ResNet-50, ``path`` None) is started here.
    """
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.trt_cache import cache_root

    root = cache_root(Path(description.model_file))
    for old in root.glob(Path(description.model_file).name + "-*"):
        shutil.rmtree(old, ignore_errors=True)  # a cold start: no engine of this model
    times: dict[str, Any] = {}
    for label, device in (("tensorrt_cold_s", "tensorrt"), ("tensorrt_warm_s", "tensorrt"),
                          ("cuda_s", "cuda")):  # fmt: skip
        if path is not None:
            times[label] = start_in_fresh_process(path, device, description.precision, run)
            continue
        try:
            began = time.perf_counter()
            backend = open_backend(description, "onnxruntime", run.device(device), 2)  # type: ignore[arg-type]
            backend.warm_up()
            backend.close()
            times[label] = round(time.perf_counter() - began, 2)
        except Exception as error:  # a device that cannot run here: reported, never a crash
            times[label] = {"not_run": f"{type(error).__name__}: {error}"}
    return times


def dlclive_on_gpu(python: str | None, model: Path, frames: int) -> dict[str, Any] | None:
    """DeepLabCut-Live's PyTorch runner on the GPU, in its own environment (None: not run)."""
    if python is None or not Path(python).exists():
        print("  DeepLabCut-Live: not run (no --dlclive-python given)")
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
        print(f"  DeepLabCut-Live: not run ({done.stderr[-800:]})")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the run --------------------------------------------------------------------------------


def measure_model(
    name: str,
    descriptions: dict[str, ModelDescription],
    path: Path | None,
    frames: list[np.ndarray],
    run: Run,
    torch_module: Any = None,
) -> dict[str, Any]:
    """Every configuration and batch of one model, against the CPU's keypoints."""
    reference = cpu_keypoints(descriptions["fp32"], frames[:12])
    runs: dict[str, Any] = {}
    for config in CONFIGS:
        if config.backend == "pytorch" and path is None:
            continue  # a graph made here has no file to rebuild (plain_pytorch_reference times it)
        if run.rehearsal and config.backend == "pytorch" and config.precision == "fp16":
            continue  # half precision convolutions on the CPU take minutes: not rehearsed
        for batch in run.batches if not config.cuda_graph else run.batches[:1]:
            label = f"{config.label}_b{batch}"
            try:
                measured = measure_config(
                    descriptions[config.precision], config, frames, batch, run, torch_module
                )
            except Exception as error:  # a device or graph that cannot run here: said, no crash
                why = f"{type(error).__name__}: {error}"
                runs[label] = {"not_run": why}
                print(f"  {name} {label}: not run ({why[:300]})")
                continue
            measured["vs_cpu"] = deviation(measured.pop("_points"), reference)
            measured["keypoints_ok"] = keypoints_right(measured["vs_cpu"], config.precision)
            runs[label] = measured
            print(
                f"  {name} {label}: {measured['fps']} frames/s; app p50 "
                f"{measured['app'].get('p50')} p99 {measured['app'].get('p99')} ms; network "
                f"app {measured['app_network'].get('p50')} vs plain "
                f"{measured['plain_network'].get('p50')} ms; vs CPU {measured['vs_cpu']}"
            )
    runs["start"] = {p: start_times(descriptions[p], path, run) for p in ("fp32", "fp16")}
    return runs


def _p50(results: dict[str, Any], model: str, label: str, key: str = "app") -> float | None:
    """A configuration's p50, None where it did not run or its keypoints were wrong."""
    runs = results.get(model)
    entry = (runs.get(label) if isinstance(runs, dict) else None) or {}
    if not entry.get("keypoints_ok"):
        return None
    value = (entry.get(key) or {}).get("p50") if isinstance(entry.get(key), dict) else None
    return None if value is None else float(value)


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of docs/gpu.md: met, missed or not run, with its figure."""

    def verdict(ok: bool | None) -> str:
        return "not run" if ok is None else ("met" if ok else "missed")

    lines = []
    wrong = [
        f"{model} {label} ({entry['vs_cpu']})"
        for model, runs in results.items()
        if isinstance(runs, dict)
        for label, entry in runs.items()
        if isinstance(entry, dict) and entry.get("keypoints_ok") is False
    ]
    lines.append(
        {
            "goal": "Every configuration's keypoints are the CPU's (fp32 <= 0.01 px max, "
            "tf32/fp16 <= 0.1 px median); a wrong one counts for no other goal",
            "figure": wrong or "all right",
            "verdict": verdict(not wrong),
        }
    )
    worst_ort, worst_torch = None, None
    for runs in results.values():
        if not isinstance(runs, dict):
            continue
        for label, entry in runs.items():
            if not isinstance(entry, dict) or "network_vs_plain" not in entry:
                continue
            if not entry.get("keypoints_ok"):
                continue  # fast and wrong is not met
            ratio = float(entry["network_vs_plain"])
            if label.startswith("onnxruntime"):
                worst_ort = max(worst_ort or 0.0, ratio)
            elif label.startswith("pytorch"):
                worst_torch = max(worst_torch or 0.0, ratio)
    lines.append(
        {
            "goal": "ONNX Runtime: the app's network call within 1.15x of a plain session.run",
            "figure": worst_ort,
            "verdict": verdict(None if worst_ort is None else worst_ort <= 1.15),
        }
    )
    lines.append(
        {
            "goal": "PyTorch CUDA: the app's network call within 1.2x of plain PyTorch",
            "figure": worst_torch,
            "verdict": verdict(None if worst_torch is None else worst_torch <= 1.2),
        }
    )
    for model in (name for name, runs in results.items() if isinstance(runs, dict)):
        fp32 = _p50(results, model, "onnxruntime_cuda_fp32_b1")
        fp16 = _p50(results, model, "onnxruntime_cuda_fp16_b1")
        lines.append(
            {
                "goal": f"{model}: fp16 faster than fp32 (ONNX Runtime CUDA, batch 1, app p50)",
                "figure": None if fp32 is None or fp16 is None else [fp32, fp16],
                "verdict": verdict(None if fp32 is None or fp16 is None else fp16 < fp32),
            }
        )
    fp16_resnet = [
        _p50(results, RESNET, label)
        for label in ("onnxruntime_cuda_fp16_b1", "onnxruntime_cuda_fp16_graph_b1")
    ]
    best_fp16 = min((v for v in fp16_resnet if v is not None), default=None)
    lines.append(
        {
            "goal": "ResNet-50 640x480 batch 1 fp16, ONNX Runtime CUDA: frame -> keypoints p50 "
            "<= 2.0 ms",
            "figure": best_fp16,
            "verdict": verdict(None if best_fp16 is None else best_fp16 <= 2.0),
        }
    )
    p99s = [
        (entry.get("app") or {}).get("p99")
        for label, entry in (results.get(RESNET) or {}).items()
        if label.endswith("_b1")
        and isinstance(entry, dict)
        and "app" in entry
        and entry.get("keypoints_ok")
    ]
    best_p99 = min((float(v) for v in p99s if v is not None), default=None)
    lines.append(
        {
            "goal": "ResNet-50 640x480 batch 1: frame -> keypoints p99 <= 3 ms (best "
            "configuration)",
            "figure": best_p99,
            "verdict": verdict(None if best_p99 is None else best_p99 <= 3.0),
        }
    )
    trt = (results.get(RESNET) or {}).get("onnxruntime_tensorrt_fp16_b1") or {}
    trt = trt if trt.get("keypoints_ok") else {}
    lines.append(
        {
            "goal": "ResNet-50 fp16 on TensorRT: >= 500 frames/s batch 1",
            "figure": trt.get("fps"),
            "verdict": verdict(None if "fps" not in trt else trt["fps"] >= 500),
        }
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="150 frames, batch 1 only")
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--dlclive-python", default=None)
    parser.add_argument("--closed-loop", action="store_true")
    parser.add_argument(
        "--rehearse-on-cpu",
        action="store_true",
        help="run every step on the CPU (small frames, a few calls): the code path only",
    )
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
    if args.rehearse_on_cpu:
        run = Run(height=120, width=160, frames=4, batches=(1,), rehearsal=True)
    else:
        reason = gpu_reason()
        if reason is not None:
            print(f"no GPU: not run ({reason})")
            return 0
        run = Run(frames=150 if args.quick else args.frames, batches=(1,) if args.quick else (1, 3))
    frames = clip_frames(run)
    started, machine = now_iso(), machine_description()
    results: dict[str, Any] = {}
    descriptions, module = resnet50(run)
    results[RESNET] = measure_model("resnet_50", descriptions, None, frames, run)
    results[RESNET]["plain_pytorch"] = plain_pytorch_reference(module, frames, run)
    for path in [CSPNEXT, *args.model]:
        try:
            loaded = {p: load(path, p, run) for p in ("fp32", "tf32", "fp16")}
        except Exception as error:  # a model this machine cannot convert: said, no crash
            results[path.name] = {"not_run": f"{type(error).__name__}: {error}"}
            continue
        results[path.name] = measure_model(path.name, loaded, path, frames, run)
    results["dlclive_cuda"] = dlclive_on_gpu(args.dlclive_python, CSPNEXT, run.frames)
    if run.rehearsal:  # CPU figures judge no GPU goal
        results["goals"] = [{"goal": "none: a CPU rehearsal runs the code path only",
                             "figure": None, "verdict": "not judged"}]  # fmt: skip
        print("\nCPU rehearsal: the code path only; no GPU goal is judged from CPU figures.")
    else:
        results["goals"] = goals(results)
        _print_goals(results["goals"])
    save_figures(results, started, machine, "gpu_rehearsal" if run.rehearsal else "gpu")
    if args.closed_loop and not run.rehearsal:
        from benchmarks import closed_loop

        closed_loop.main(["--device", "cuda"] + (["--quick"] if args.quick else []))
    return 0


def plain_pytorch_reference(module: Any, frames: list[np.ndarray], run: Run) -> dict[str, Any]:
    """The ResNet-50 in plain eager PyTorch on the GPU, fp32 and fp16 (channels-last)."""
    import torch

    device = "cpu" if run.rehearsal else "cuda"
    batch = np.random.default_rng(0).standard_normal((1, 3, run.height, run.width))
    found: dict[str, Any] = {}
    for name, half, channels_last in (("fp32", False, False), ("fp16_channels_last", True, True)):
        try:
            network = module.to(device).eval()
            network = network.half() if half else network.float()
            layout = torch.channels_last if channels_last else torch.contiguous_format
            network = network.to(memory_format=layout)
            dtype = torch.float16 if half else torch.float32
            samples = []
            with torch.inference_mode():
                for index in range(min(run.frames, 200) + 10):
                    tensor = (
                        torch.from_numpy(batch).to(device, dtype).contiguous(memory_format=layout)
                    )
                    began = time.perf_counter()
                    network(tensor).cpu()
                    if index >= 10:
                        samples.append((time.perf_counter() - began) * 1e3)
            found[name] = _ms(samples)
        except Exception as error:  # no CUDA build of torch here: said, no crash
            found[name] = {"not_run": f"{type(error).__name__}: {error}"}
    module.float().to("cpu")
    return found


def _print_goals(lines: list[dict[str, Any]]) -> None:
    print("\nGoals (docs/gpu.md):")
    for line in lines:
        print(f"  {line['verdict']:8} {line['goal']}: {line['figure']}")


def save_figures(results: dict[str, Any], started: str, machine: dict[str, Any], name: str) -> None:
    """The headline figures beside their same-run baselines; the whole results as details."""
    resnet = results[RESNET]

    def app(label: str, key: str = "p50") -> float | None:
        entry = resnet.get(label) or {}
        return (entry.get("app") or {}).get(key) if isinstance(entry, dict) else None

    def plain(label: str) -> float | None:
        entry = resnet.get(label) or {}
        return (entry.get("plain_network") or {}).get("p50") if isinstance(entry, dict) else None

    figures = [
        Figure(
            "resnet50_fp16_p50_ms",
            "ResNet-50 640x480 b1 fp16 ORT CUDA, frame -> keypoints p50 (baseline: plain "
            "session.run, network only)",
            app("onnxruntime_cuda_fp16_b1"),
            plain("onnxruntime_cuda_fp16_b1"),
            "ms",
            goal="<= 2.0",
            compare=False,
        ),
        Figure(
            "resnet50_fp32_p50_ms",
            "ResNet-50 640x480 b1 fp32 ORT CUDA, frame -> keypoints p50 (baseline: plain "
            "session.run, network only)",
            app("onnxruntime_cuda_fp32_b1"),
            plain("onnxruntime_cuda_fp32_b1"),
            "ms",
            compare=False,
        ),
        Figure(
            "resnet50_fp16_p99_ms",
            "ResNet-50 b1 fp16 ORT CUDA, frame -> keypoints p99 (baseline: fp32)",
            app("onnxruntime_cuda_fp16_b1", "p99"),
            app("onnxruntime_cuda_fp32_b1", "p99"),
            "ms",
            goal="<= 3",
        ),
        Figure(
            "resnet50_trt_fp16_fps",
            "ResNet-50 b1 fp16 TensorRT frames/s (baseline: ORT CUDA fp16)",
            (resnet.get("onnxruntime_tensorrt_fp16_b1") or {}).get("fps"),
            (resnet.get("onnxruntime_cuda_fp16_b1") or {}).get("fps"),
            "frames/s",
            goal=">= 500",
            higher_is_better=True,
        ),
    ]
    machine_note = "CPU rehearsal: no GPU figures" if name.endswith("rehearsal") else "GPU"
    print_table("Pose models on the GPU", figures, machine, project=machine_note, baseline="plain")
    path = save_result(name, figures, started=started, machine=machine, details=results)
    print(f"saved {path}")


def iobinding_on_cpu(calls: int) -> dict[str, Any]:
    """The bundled model on the CPU provider: IO binding against ``session.run``, interleaved.

    Each round runs the same prepared batch once through each path (in alternating order), so
    both see the same load; batch 1 and 3. Latency of ``backend.run`` alone, in ms.
    """
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
                times[name].append(_timed(backend.run, data))
        results[f"batch{batch}"] = {name: _ms(t) for name, t in times.items()}
        print(f"batch {batch}: {results[f'batch{batch}']}")
    results["load_average_end"] = os.getloadavg()
    print(f"load average: start {results['load_average_start']}, end {results['load_average_end']}")
    return results


if __name__ == "__main__":
    raise SystemExit(main())
