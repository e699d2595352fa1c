"""The CUDA-graph binding's sequence and check, on ONNX Runtime's CPU provider (no GPU here).

On a GPU, ONNX Runtime captures a CUDA graph inside the first ``run_with_iobinding`` of a graph
id, and every later run replays it: it reads the input and writes the outputs **at the device
addresses bound when it was captured**, whatever is bound later. The first GPU run of this
project returned all-zero heatmaps for that reason (outputs bound after the capture were never
written). The CPU provider has no CUDA graph, so these tests run a real CPU session behind
:class:`EmulatedCudaGraphSession`, a test double that replays on the captured addresses the same
way; the old binding sequence gives stale outputs under it, the present one gives the plain
session's outputs, and a graph that replays stale buffers is caught and left off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.graph_check import other_input, relative_deviation
from deeplabstream.pose.runtime.iobinding import CudaGraphBinding, HostBinding, torch_dtype

RNG = np.random.default_rng(61)


class _RecordingBinding:
    """A real IO binding that remembers the values bound to it (for the emulated capture)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.input_value: Any = None
        self.output_values: dict[str, Any] = {}

    def bind_ortvalue_input(self, name: str, value: Any) -> None:
        self.input_value = value
        self.real.bind_ortvalue_input(name, value)

    def bind_ortvalue_output(self, name: str, value: Any) -> None:
        self.output_values[name] = value
        self.real.bind_ortvalue_output(name, value)

    def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0) -> None:
        self.output_values[name] = None  # the runtime allocates it on the run
        self.real.bind_output(name, "cpu", 0)

    def get_outputs(self) -> Any:
        return self.real.get_outputs()


class EmulatedCudaGraphSession:
    """A real CPU session that replays like a CUDA graph (test double; see the module's notes).

    The first run of each graph id runs normally and captures the input value and the output
    values bound then (an output bound without a buffer: the one the runtime allocated); every
    later run of that id reads the captured input and writes into the captured outputs.
    ``stale_input`` captures a copy of the input instead: a graph that never reads new inputs.
    """

    def __init__(self, session: Any, *, stale_input: bool = False) -> None:
        self.session = session
        self.stale_input = stale_input
        self.captured: dict[str, tuple[Any, list[Any]]] = {}
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]

    def io_binding(self) -> _RecordingBinding:
        return _RecordingBinding(self.session.io_binding())

    def run_with_iobinding(self, binding: _RecordingBinding, run_options: Any = None) -> None:
        graph = run_options.get_run_config_entry("gpu_graph_id") if run_options else "0"
        if graph not in self.captured:
            self.session.run_with_iobinding(binding.real)
            produced = binding.get_outputs()
            outputs = [
                binding.output_values.get(name) or produced[i]
                for i, name in enumerate(self.output_names)
            ]
            source = binding.input_value
            if self.stale_input:
                source = ort.OrtValue.ortvalue_from_numpy(source.numpy().copy())
            self.captured[graph] = (source, outputs)
            return
        source, outputs = self.captured[graph]
        results = self.session.run(self.output_names, {self.input_name: source.numpy()})
        for output, result in zip(outputs, results, strict=True):
            output.update_inplace(np.ascontiguousarray(result))


@pytest.fixture(scope="module")
def bundled():
    return load_model(None)


@pytest.fixture(scope="module")
def sessions(bundled):
    path = str(bundled.model_file)
    graph = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return graph, plain


def _binding(bundled, sessions, **emulation: bool) -> CudaGraphBinding:
    graph, plain = sessions
    names = list(bundled.output_names)
    reference = HostBinding(plain, bundled.input_name, names)
    emulated = EmulatedCudaGraphSession(graph, **emulation)
    return CudaGraphBinding(emulated, reference, bundled.input_name, names, 0, device="cpu")


def _frames(bundled, n: int, count: int) -> list[np.ndarray]:
    return [
        RNG.uniform(0, 255, bundled.input_shape(n)).astype(bundled.input_dtype)
        for _ in range(count)
    ]


def _plain(sessions, bundled, batch: np.ndarray) -> list[np.ndarray]:
    return sessions[1].run(list(bundled.output_names), {bundled.input_name: batch})


def _old_sequence(session: Any, bundled, batches: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The binding sequence of the release whose GPU outputs were all zeros, step by step."""
    value = ort.OrtValue.ortvalue_from_shape_and_type(
        list(batches[0].shape), batches[0].dtype.type, "cpu", 0
    )
    binding = session.io_binding()
    binding.bind_ortvalue_input(bundled.input_name, value)
    for name in bundled.output_names:
        binding.bind_output(name, "cuda", 0)  # no buffer: allocated by the first (capturing) run
    options = ort.RunOptions()
    options.add_run_config_entry("gpu_graph_id", "0")
    returned, own = [], []
    for index, batch in enumerate(batches):
        value.update_inplace(batch)
        session.run_with_iobinding(binding, options)
        if index == 0:
            results = [v.numpy().copy() for v in binding.get_outputs()]
            for name, result in zip(bundled.output_names, results, strict=True):
                fixed = ort.OrtValue.ortvalue_from_shape_and_type(
                    list(result.shape), result.dtype.type, "cpu", 0
                )
                fixed.update_inplace(np.zeros_like(result))  # fresh device memory reads 0
                binding.bind_ortvalue_output(name, fixed)  # bound after the capture
                own.append(fixed)
            returned.append(results)
        else:
            returned.append([v.numpy().copy() for v in own])
    return returned


def test_the_old_sequence_returns_stale_outputs_under_the_emulated_capture(
    bundled, sessions
) -> None:
    """The emulation reproduces the defect the first GPU run found: all-zero outputs."""
    graph = ort.InferenceSession(str(bundled.model_file), providers=["CPUExecutionProvider"])
    batches = _frames(bundled, 1, 4)
    returned = _old_sequence(EmulatedCudaGraphSession(graph), bundled, batches)
    expected = [_plain(sessions, bundled, b) for b in batches]
    np.testing.assert_allclose(returned[0][0], expected[0][0], rtol=1e-5, atol=1e-6)
    for later in returned[1:]:
        assert float(np.max(np.abs(later[0]))) == 0.0  # outputs bound after the capture


def test_a_graph_bound_before_its_capture_gives_the_plain_sessions_outputs(
    bundled, sessions
) -> None:
    binding = _binding(bundled, sessions)
    previous = None
    for batch in [np.zeros(bundled.input_shape(1), bundled.input_dtype), *_frames(bundled, 1, 5)]:
        got = binding.run(batch)
        expected = _plain(sessions, bundled, batch)
        for ours, theirs in zip(got, expected, strict=True):
            assert relative_deviation(ours, theirs) < 1e-6
        if previous is not None:  # the input is read: other frames, other heatmaps
            assert relative_deviation(got[0], previous) > 1e-3
        previous = np.array(got[0], copy=True)
    [slot] = binding.slots.values()
    assert slot.refused is None and slot.runs >= 7  # two checks at the capture, then each frame
    assert binding.checked_shapes == [list(bundled.input_shape(1))]
    assert binding.refusals == {}


def test_every_input_shape_gets_its_own_graph_and_buffers(bundled, sessions) -> None:
    binding = _binding(bundled, sessions)
    for n in (1, 3, 1, 3):
        [batch] = _frames(bundled, n, 1)
        got = binding.run(batch)
        assert got[0].shape[0] == n
        assert relative_deviation(got[0], _plain(sessions, bundled, batch)[0]) < 1e-6
    assert sorted(s[0] for s in binding.checked_shapes) == [1, 3]
    graph_ids = {s.run_options.get_run_config_entry("gpu_graph_id") for s in binding.slots.values()}
    assert graph_ids == {"0", "1"}


def test_a_graph_that_never_reads_new_inputs_is_refused_and_the_plain_session_runs(
    bundled, sessions
) -> None:
    binding = _binding(bundled, sessions, stale_input=True)
    frames = _frames(bundled, 1, 3)
    for batch in frames:
        got = binding.run(batch)
        assert relative_deviation(got[0], _plain(sessions, bundled, batch)[0]) < 1e-6
    [why] = binding.refusals.values()
    assert "second input" in why and "differed from the plain session" in why
    assert binding.checked_shapes == []


def test_a_second_input_differs_from_the_first_even_when_the_first_is_all_zeros() -> None:
    zeros = np.zeros((1, 3, 8, 8), np.float32)
    other = other_input(zeros)
    assert other.dtype == np.float32 and other.shape == zeros.shape
    assert np.all(other != 0.0)
    raw = np.full((2, 8, 8, 3), 7, np.uint8)
    assert other_input(raw).dtype == np.uint8 and np.any(other_input(raw) != 7)
    normalised = RNG.standard_normal((1, 3, 4, 4)).astype(np.float16)
    spread = other_input(normalised)
    assert spread.dtype == np.float16
    assert normalised.min() <= spread.min() and spread.max() <= normalised.max()


def test_the_deviation_of_outputs_that_do_not_match_is_never_small() -> None:
    heatmaps = RNG.uniform(0, 1, (1, 4, 8, 8)).astype(np.float32)
    assert relative_deviation(heatmaps, heatmaps) == 0.0
    assert relative_deviation(np.zeros_like(heatmaps), heatmaps) > 0.9
    assert relative_deviation(heatmaps[:, :2], heatmaps) == float("inf")
    nan = heatmaps.copy()
    nan[0, 0, 0, 0] = np.nan
    assert relative_deviation(nan, heatmaps) == float("inf")
    peaks = np.array([[True, False]])
    assert relative_deviation(peaks, peaks) == 0.0 and relative_deviation(~peaks, peaks) > 1


def test_every_output_type_of_a_graph_gets_pinned_memory_or_ordinary_memory() -> None:
    """sleap-nn's exports give boolean outputs: the pinned allocator took only three types."""
    torch = pytest.importorskip("torch")
    for dtype in (np.float32, np.float16, np.float64, np.uint8, np.int8, np.int32, np.int64):
        assert torch_dtype(torch, dtype) is not None
    assert torch_dtype(torch, np.bool_) is torch.bool
    assert torch_dtype(torch, np.dtype("U4")) is None  # no such tensor: ordinary memory
