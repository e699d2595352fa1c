"""Every model format of docs/pose-models.md on CUDA and TensorRT, against the CPU (issue 35).

Keypoints of the same frames on the GPU and on ONNX Runtime's CPU provider (fp32): at fp32 no
point moves more than 0.01 px; an fp16 model (a converted model's half graph, a Lightning Pose
fp16 export, a TensorRT fp16 engine) moves its points by at most 0.1 px at the median. The
pytorch backend's rebuilt networks (DeepLabCut 3.0, Lightning Pose checkpoints) on CUDA, with
channels-last and half weights, are held to the same limits.

Each runs with and without ``[Pose] CUDA_GRAPH`` (whose graphs are checked against the plain
run before use; the check's result is printed), one frame at a time and three at a time.
``PRECISION = tf32`` is held to the fp16 limit and its deviation printed.

Marked ``gpu``: skipped, with the reason, where no GPU and onnxruntime-gpu are found (or, for
TensorRT, where its libraries do not load).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend, providers_of, set_cuda_graph
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.gpu.gpu_here import device_reason, skip_unless, torch_cuda_reason
from tests.support.files import read_video
from tests.support.paths import PROJECT_ROOT, shared_data

pytestmark = pytest.mark.gpu

FP32_MAX_PX = 0.01
FP16_MEDIAN_PX = 0.1
FRAMES = 24


@dataclass(frozen=True)
class Case:
    """One model of a format: where it is, which frames it sees, its precisions."""

    name: str
    path: Callable[[], Path | None]
    frames: Callable[[], list[np.ndarray]]
    fp16: bool  # converted here: PRECISION = fp16 makes a half graph


def _clip(relative: str) -> Callable[[], list[np.ndarray]]:
    return lambda: read_video(shared_data(relative))[:FRAMES]


def _arena_frames() -> list[np.ndarray]:
    from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena

    arena = SimulatedArena(ArenaParams(seed=35))
    frames = []
    for _ in range(FRAMES):
        frame = np.empty(arena.frame_shape, np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    return frames


LP = "lp-mirror-mouse-resnet18"
LP_CLIP = _clip(f"{LP}/clip/test_vid_first100.mp4")
DLC = "dlc3-openfield-cspnext_s"
DLC_EXPORT = "model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
FLIES_CLIP = _clip("sleap-flies/inference/flies_clip_first100.mp4")

CASES = [
    Case("bundled (own format)", lambda: None, _arena_frames, False),
    Case("lightning-pose export fp32", lambda: shared_data(f"{LP}/model"), LP_CLIP, False),
    Case(
        "lightning-pose export fp16",
        lambda: shared_data(f"{LP}/model/exports_onnx/epoch=39-step=200-best_fp16.onnx"),
        LP_CLIP,
        False,
    ),
    Case(
        "lightning-pose checkpoint",
        lambda: next(shared_data(f"{LP}/model/tb_logs").rglob("*.ckpt")),
        LP_CLIP,
        True,
    ),
    Case(
        "deeplabcut 3.0 export",
        lambda: shared_data(f"{DLC}/{DLC_EXPORT}"),
        _clip(f"{DLC}/clip/m3v1mp4_first100.mp4"),
        True,
    ),
    Case(
        "sleap-nn bottom-up export",
        lambda: shared_data("sleap-flies/onnx/flies_bottomup_tiny_onnx"),
        FLIES_CLIP,
        False,
    ),
    Case(
        "sleap-nn identity export",
        lambda: PROJECT_ROOT / "tests" / "fixtures" / "sleap_id_flies" / "export",
        FLIES_CLIP,
        False,
    ),
]


@pytest.fixture(scope="module", autouse=True)
def converted_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Converted graphs in a private cache, never beside the shared data."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def _estimate(
    description: ModelDescription,
    frames: list[np.ndarray],
    backend: str,
    device: str,
    cuda_graph: bool = False,
) -> np.ndarray:
    set_cuda_graph(cuda_graph)  # every graph of the model: a two-stage model's second one too
    try:
        opened = open_backend(description, backend, device, threads=2)  # type: ignore[arg-type]
        try:
            opened.warm_up()
            estimator = NetworkEstimator(description, opened, frames[0].shape, 3)
            # One frame at a time, then three at a time: two input shapes, two CUDA graphs.
            single = [estimator.estimate_animals([frame]) for frame in frames[:12]]
            return np.concatenate([*single, estimator.estimate_animals(frames[12:])])
        finally:
            record = providers_of(opened)
            if record is not None and "cuda_graph" in record:
                print(f"cuda graph: {record['cuda_graph']}")
            opened.close()
    finally:
        set_cuda_graph(False)


def _matched_deviation(gpu: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Per-point distance (px) of the points both found, animals matched frame by frame."""
    distances = []
    for ours, theirs in zip(gpu, cpu, strict=True):
        best = None
        for order in itertools.permutations(range(len(ours))):
            d = np.hypot(*(ours[list(order), :, :2] - theirs[:, :, :2]).transpose(2, 0, 1))
            if best is None or np.nansum(d) < np.nansum(best):
                best = d
        assert best is not None
        distances.append(best[np.isfinite(best)])
    return np.concatenate(distances)


def _assert_close(gpu: np.ndarray, cpu: np.ndarray, half: bool, what: str) -> None:
    deviation = _matched_deviation(gpu, cpu)
    assert deviation.size > 0, f"{what}: no point found on both"
    print(
        f"{what}: median {np.median(deviation):.4f} px, max {deviation.max():.4f} px "
        f"({deviation.size} points)"
    )
    if half:
        assert np.median(deviation) <= FP16_MEDIAN_PX, what
    else:
        assert deviation.max() <= FP32_MAX_PX, what


@pytest.mark.parametrize(
    ("device", "cuda_graph"), [("cuda", False), ("cuda", True), ("tensorrt", False)],
    ids=["cuda", "cuda-graph", "tensorrt"],
)  # fmt: skip
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_onnxruntime_on_the_gpu_equals_the_cpu(case: Case, device: str, cuda_graph: bool) -> None:
    skip_unless(device_reason(device))
    path, frames = case.path(), case.frames()
    size = (frames[0].shape[0], frames[0].shape[1])
    fp32 = load_model(path, frame_size=size)
    cpu = _estimate(fp32, frames, "onnxruntime", "cpu")
    gpu = _estimate(fp32, frames, "onnxruntime", device, cuda_graph)
    half_export = fp32.precision == "fp16"  # a Lightning Pose fp16 export named by its file
    _assert_close(gpu, cpu, half_export, f"{case.name} on {device} {fp32.precision}")
    if case.fp16:
        fp16 = load_model(path, frame_size=size, precision="fp16")
        half = _estimate(fp16, frames, "onnxruntime", device, cuda_graph)
        _assert_close(half, cpu, True, f"{case.name} on {device} fp16")


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_tf32_moves_keypoints_by_a_measured_amount(device: str) -> None:
    """PRECISION = tf32: the fp32 graph in TensorFloat-32 math; how far points move is printed."""
    skip_unless(device_reason(device))
    case = CASES[4]  # the DeepLabCut 3.0 export: a ResNet-class network converted here
    path, frames = case.path(), case.frames()
    size = (frames[0].shape[0], frames[0].shape[1])
    cpu = _estimate(load_model(path, frame_size=size), frames, "onnxruntime", "cpu")
    tf32 = _estimate(
        load_model(path, frame_size=size, precision="tf32"), frames, "onnxruntime", device
    )
    _assert_close(tf32, cpu, True, f"{case.name} on {device} tf32")


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "cuda-graph"])
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16"])
@pytest.mark.parametrize("case", [c for c in CASES if c.fp16], ids=lambda c: c.name)
def test_pytorch_on_the_gpu_equals_the_onnx_cpu_path(
    case: Case, precision: str, cuda_graph: bool
) -> None:
    skip_unless(torch_cuda_reason())
    path, frames = case.path(), case.frames()
    size = (frames[0].shape[0], frames[0].shape[1])
    cpu = _estimate(load_model(path, frame_size=size), frames, "onnxruntime", "cpu")
    model = load_model(path, frame_size=size, precision=precision)  # type: ignore[arg-type]
    gpu = _estimate(model, frames, "pytorch", "cuda", cuda_graph)
    what = f"{case.name} pytorch cuda {precision} {'graph' if cuda_graph else 'eager'}"
    _assert_close(gpu, cpu, precision != "fp32", what)
