"""The GPU path through the CUDA device double: every frame reaches the device, on every path.

``tests/support/cuda_double`` behaves as ONNX Runtime's CUDA provider where correctness depends
on it (a bound host input copied at bind time, device outputs read through a copy, CUDA graphs
replaying their captured addresses, per thread). The keypoints of every frame through it must
be the CPU's, bit for bit (the double computes on the CPU). Each path is put through: the
default binding on CUDA and TensorRT (warm-up first, as the worker does), the opt-in CUDA graph
(replays counted), a graph refused at the open or at its capture (the fall-back), a graph first
run on another thread. The named mutations of issue 69 are applied and must be caught: binding
the input once, a graph never used after its check, a fall-back that binds once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime import iobinding
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend, providers_of
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.providers import device_problem
from tests.support.arena import arena_frames

FRAMES = 9


@pytest.fixture(scope="module")
def bundled() -> ModelDescription:
    return load_model(None)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return arena_frames(FRAMES, seed=69)


def _keypoints(
    description: ModelDescription, device: str, frames: list[np.ndarray], *, cuda_graph: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """The worker's sequence: open, warm up (black frames), then one at a time and three at once."""
    backend = OnnxRuntimeBackend(description, device, 1, cuda_graph=cuda_graph)  # type: ignore[arg-type]
    try:
        backend.warm_up()
        estimator = NetworkEstimator(description, backend, frames[0].shape, 3)
        single = [estimator.estimate_animals([frame]) for frame in frames[:6]]
        points = np.concatenate([*single, estimator.estimate_animals(frames[6:9])])
        record = providers_of(backend)
        assert record is not None
        return points, record
    finally:
        backend.close()


@pytest.fixture(scope="module")
def cpu_points(bundled: ModelDescription, frames: list[np.ndarray]) -> np.ndarray:
    return _keypoints(bundled, "cpu", frames, cuda_graph=False)[0]


def _wrong_frames(points: np.ndarray, cpu: np.ndarray) -> list[int]:
    """The frames whose keypoints are not the CPU's (NaN where the CPU has NaN is equal)."""
    return [i for i in range(len(cpu)) if not np.array_equal(points[i], cpu[i], equal_nan=True)]


def test_the_double_is_a_gpu_to_the_projects_checks(cuda_double: Callable[..., Any]) -> None:
    assert device_problem("cuda") is None and device_problem("tensorrt") is None


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_the_default_path_gives_every_frame_its_own_keypoints(
    cuda_double: Callable[..., Any], bundled, frames, cpu_points, device: str
) -> None:
    double = cuda_double()
    points, record = _keypoints(bundled, device, frames, cuda_graph=False)
    assert record["applied"][0]["name"] == double.COUNTERS.sessions[-1]
    assert record["input_path"] == "bound-per-run"
    assert _wrong_frames(points, cpu_points) == []
    # Every run handed its frame over: one copy at bind per run, warm-up included.
    runs = record["runs"]
    assert {k: v["runs"] == v["input_binds"] for k, v in runs.items()} == dict.fromkeys(runs, True)
    assert double.COUNTERS.host_copies_at_bind == sum(v["input_binds"] for v in runs.values())


def test_the_cuda_graph_replays_every_frame_after_its_check(
    cuda_double: Callable[..., Any], bundled, frames, cpu_points
) -> None:
    double = cuda_double()
    points, record = _keypoints(bundled, "cuda", frames, cuda_graph=True)
    assert record["input_path"] == "cuda-graph"
    assert _wrong_frames(points, cpu_points) == []
    graph = record["cuda_graph"]
    assert graph["refused"] == {}
    # Warm-up: 3 batches of 1 (one checked in the capture); frames: 6 of 1, then 1 of 3.
    assert graph["replays"] == {"1x3x256x320 float32": 2 + 6, "3x3x256x320 float32": 0}
    assert double.COUNTERS.graph_replays >= 8 and double.COUNTERS.graph_captures == 2


@pytest.mark.parametrize("knob", ["refuse_graph_at_open", "fail_capture", "stale_graph"])
def test_a_refused_graph_falls_back_to_a_path_that_hands_over_every_frame(
    cuda_double: Callable[..., Any], bundled, frames, cpu_points, knob: str
) -> None:
    cuda_double(**{knob: True})
    points, record = _keypoints(bundled, "cuda", frames, cuda_graph=True)
    assert _wrong_frames(points, cpu_points) == []
    if knob == "refuse_graph_at_open":
        assert record["input_path"] == "bound-per-run"
        assert any("enable_cuda_graph off: ONNX Runtime refused it" in n for n in record["notes"])
    else:
        assert record["cuda_graph"]["replays"] == {}
        assert len(record["cuda_graph"]["refused"]) == 2  # both shapes, each with its reason
        fallback = record["cuda_graph"]["fallback_runs"]
        assert all(v["runs"] == v["input_binds"] for v in fallback.values())


def test_a_graph_first_run_on_another_thread_is_captured_and_checked_there(
    cuda_double: Callable[..., Any], bundled, frames, cpu_points
) -> None:
    """The worker may warm up on one thread and analyse on another: graphs are per thread."""
    double = cuda_double()
    backend = OnnxRuntimeBackend(bundled, "cuda", 1, cuda_graph=True)
    try:
        backend.warm_up()  # captured and checked on this thread
        got: list[np.ndarray] = []

        def analyse() -> None:
            estimator = NetworkEstimator(bundled, backend, frames[0].shape, 3)
            got.extend(estimator.estimate_animals([frame]) for frame in frames[:6])

        worker = threading.Thread(target=analyse)
        worker.start()
        worker.join(timeout=120)
        record = providers_of(backend)
    finally:
        backend.close()
    assert _wrong_frames(np.concatenate(got), cpu_points[:6]) == []
    assert double.COUNTERS.graph_captures == 2  # one per thread
    assert record is not None and record["cuda_graph"]["refused"] == {}
    # Warm-up: 2 replays after the check; the thread's first frame is its own graph's check.
    assert record["cuda_graph"]["replays"] == {"1x3x256x320 float32": 2 + 5}


# --- the mutations of issue 69 must be caught ----------------------------------------------------


def _bind_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """HostBinding.run as release 0.7.0 had it: the input bound once per address."""

    def run(self: iobinding.HostBinding, batch: np.ndarray, extra: Any = None) -> Any:
        slot = self.slots.get(iobinding.shape_key(batch))
        if slot is None or slot.unbound or extra:
            return original(self, batch, extra)
        if getattr(slot, "bound_once", None) != batch.ctypes.data:
            slot.binding.bind_input(
                self.input_name, "cpu", 0, batch.dtype, list(batch.shape), batch.ctypes.data
            )
            slot.bound_once = batch.ctypes.data  # type: ignore[attr-defined]
        self.session.run_with_iobinding(slot.binding)
        slot.runs += 1
        return slot.outputs

    return run


@pytest.fixture
def bind_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(iobinding.HostBinding, "run", _bind_once(iobinding.HostBinding.run))
    yield


def test_mutation_binding_once_is_caught(
    cuda_double: Callable[..., Any], bind_once: None, bundled, frames, cpu_points
) -> None:
    points, _ = _keypoints(bundled, "cuda", frames, cuda_graph=False)
    # The estimator's input buffer is bound at its first frame; every later frame of that shape
    # is analysed as that one (release 0.7.0 on a GPU; the worker's first is its black warm-up).
    assert _wrong_frames(points, cpu_points) == [1, 2, 3, 4, 5]
    first = np.nan_to_num(points[0])
    assert all(np.array_equal(np.nan_to_num(points[i]), first) for i in range(1, 6))


def test_mutation_binding_once_is_invisible_on_the_cpu_provider(
    bind_once: None, bundled, frames, cpu_points
) -> None:
    """Why the double is needed: the CPU provider reads the host buffer at each run."""
    points, _ = _keypoints(bundled, "cpu", frames, cuda_graph=False)
    assert _wrong_frames(points, cpu_points) == []


def test_mutation_a_graph_never_used_after_its_check_is_caught(
    cuda_double: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, bundled, frames
) -> None:
    original = iobinding.CudaGraphBinding.run

    def skip_the_graph(self: iobinding.CudaGraphBinding, batch: np.ndarray, extra: Any = None):
        import threading as t

        if (t.get_ident(), iobinding.shape_key(batch)) in self.slots:
            return self.reference.run(batch)  # right keypoints, but the graph never replays
        return original(self, batch, extra)

    monkeypatch.setattr(iobinding.CudaGraphBinding, "run", skip_the_graph)
    double = cuda_double()
    _, record = _keypoints(bundled, "cuda", frames, cuda_graph=True)
    # What test_the_cuda_graph_replays_every_frame_after_its_check requires, not met:
    assert record["cuda_graph"]["replays"]["1x3x256x320 float32"] == 0
    assert double.COUNTERS.graph_replays == 2  # the two runs of each capture's check only


def test_mutation_a_fall_back_that_binds_once_is_caught(
    cuda_double: Callable[..., Any], bind_once: None, bundled, frames, cpu_points
) -> None:
    cuda_double(fail_capture=True)
    points, record = _keypoints(bundled, "cuda", frames, cuda_graph=True)
    assert record["cuda_graph"]["refused"]  # the fall-back ran ...
    assert _wrong_frames(points, cpu_points) == [1, 2, 3, 4, 5]  # ... on a stale input


# --- the worker's own loading sequence ---------------------------------------------------------


def _worker_keypoints(
    tmp_path: Any, frames: list[np.ndarray], cuda_graph: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """load_models as the inference worker runs it (the model opened and warmed up, its
    estimator warmed on a black frame), then six frames; their keypoints and the record."""
    from deeplabstream.core.frames import FrameGeometry
    from deeplabstream.core.logs import LogTarget
    from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
    from deeplabstream.live.processes.analysis.models import LoadedModel, load_models
    from deeplabstream.pose.runtime.backends import set_cuda_graph
    from deeplabstream.settings.effective import EffectiveCamera
    from deeplabstream.settings.sections import PoseSettings
    from deeplabstream.transport.ring import RingSpec

    camera = WorkerCamera(
        camera_id=0,
        ring=RingSpec("unused", FrameGeometry(*frames[0].shape), 8),
        channel=None,  # type: ignore[arg-type]  # load_models reads no frames
        effective=EffectiveCamera("arena"),
    )
    job = PoseJob(
        cameras=(camera,),
        settings=PoseSettings(threads=1, device="cuda", cuda_graph=cuda_graph),  # type: ignore[arg-type]
        session_dir=tmp_path,
        control=None,  # type: ignore[arg-type]
        poses=None,  # type: ignore[arg-type]
        log_target=LogTarget(),
    )
    try:
        [model] = load_models(job).values()
    finally:
        set_cuda_graph(False)
    assert isinstance(model, LoadedModel)
    try:
        estimator = model.estimator(frames[0].shape)
        points = np.concatenate([estimator.estimate_animals([frame]) for frame in frames[:6]])
        record = providers_of(model.backend)
    finally:
        model.backend.close()
    assert record is not None and record["applied"][0]["name"] == "CUDAExecutionProvider"
    return points, record


@pytest.mark.parametrize("cuda_graph", ["off", "on"])
def test_the_workers_loading_and_warm_up_then_frames_give_the_cpus_keypoints(
    cuda_double: Callable[..., Any], tmp_path, frames, cpu_points, cuda_graph: str
) -> None:
    points, record = _worker_keypoints(tmp_path, frames, cuda_graph)
    assert record["input_path"] == ("cuda-graph" if cuda_graph == "on" else "bound-per-run")
    assert _wrong_frames(points, cpu_points[:6]) == []


def test_mutation_binding_once_gives_every_frame_the_workers_black_warm_up_frame(
    cuda_double: Callable[..., Any], bind_once: None, tmp_path, frames, cpu_points
) -> None:
    """Release 0.7.0's binding in the worker's sequence: what a GPU would have analysed."""
    points, _ = _worker_keypoints(tmp_path, frames, "off")
    assert _wrong_frames(points, cpu_points[:6]) == [0, 1, 2, 3, 4, 5]
    assert all(np.array_equal(points[i], points[0], equal_nan=True) for i in range(6))
