"""The CUDA device double itself: ONNX Runtime's CUDA semantics where correctness depends on them.

Each test pins one behaviour the double claims (``tests/support/cuda_double/ort_cuda_double.py``),
on the bundled model's real graph, so that a test passing through it means what it says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription

GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(scope="module")
def bundled() -> ModelDescription:
    return load_model(None)


def _session(bundled: ModelDescription, graph: bool = False) -> Any:
    import onnxruntime as ort

    options = {"device_id": "0", **({"enable_cuda_graph": "1"} if graph else {})}
    return ort.InferenceSession(
        str(bundled.model_file), providers=GPU, provider_options=[options, {}]
    )


def _inputs(bundled: ModelDescription, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.uniform(0, 255, bundled.input_shape(1)).astype(bundled.input_dtype)
        for _ in range(count)
    ]


def _plain(bundled: ModelDescription, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    cpu = ort.InferenceSession(str(bundled.model_file), providers=["CPUExecutionProvider"])
    return cpu.run([bundled.output_names[0]], {bundled.input_name: batch})[0]


def test_it_answers_as_a_gpu_session(cuda_double: Callable[..., Any], bundled) -> None:
    import onnxruntime as ort

    session = _session(bundled)
    assert "CUDAExecutionProvider" in ort.get_available_providers()
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    assert session.get_provider_options()["CUDAExecutionProvider"]["device_id"] == "0"


def test_a_bound_host_input_is_copied_when_bound_not_when_run(
    cuda_double: Callable[..., Any], bundled
) -> None:
    first, second = _inputs(bundled, 2)
    session = _session(bundled)
    binding = session.io_binding()
    buffer = first.copy()
    binding.bind_input(
        bundled.input_name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data
    )
    binding.bind_output(bundled.output_names[0], "cpu")
    buffer[...] = second  # written after the bind: the device still holds the first
    session.run_with_iobinding(binding)
    got = binding.copy_outputs_to_cpu()[0]
    np.testing.assert_array_equal(got, _plain(bundled, first))
    binding.bind_input(  # bound again: copied again
        bundled.input_name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data
    )
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], _plain(bundled, second))


def test_device_values_are_read_only_through_a_copy(cuda_double: Callable[..., Any]) -> None:
    import onnxruntime as ort

    value = ort.OrtValue.ortvalue_from_numpy(np.arange(6, dtype=np.float32), "cuda", 0)
    host = value.numpy()
    host[:] = -1  # a copy: the device keeps its values
    np.testing.assert_array_equal(value.numpy(), np.arange(6, dtype=np.float32))
    assert value.device_name() == "cuda" and value.data_ptr() != host.ctypes.data
    value.update_inplace(np.full(6, 2, np.float32))  # host -> device, now
    np.testing.assert_array_equal(value.numpy(), np.full(6, 2, np.float32))


def test_a_graph_replays_the_addresses_it_captured(
    cuda_double: Callable[..., Any], bundled
) -> None:
    import onnxruntime as ort

    first, second = _inputs(bundled, 2)
    expected = _plain(bundled, first)
    session = _session(bundled, graph=True)
    captured_input = ort.OrtValue.ortvalue_from_numpy(first, "cuda", 0)
    output = ort.OrtValue.ortvalue_from_shape_and_type(
        list(expected.shape), expected.dtype.type, "cuda", 0
    )
    binding = session.io_binding()
    binding.bind_ortvalue_input(bundled.input_name, captured_input)
    binding.bind_ortvalue_output(bundled.output_names[0], output)
    session.run_with_iobinding(binding)  # captures
    np.testing.assert_array_equal(output.numpy(), expected)
    # A new input bound after the capture is never read: the graph replays the captured one.
    binding.bind_ortvalue_input(
        bundled.input_name, ort.OrtValue.ortvalue_from_numpy(second, "cuda", 0)
    )
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(output.numpy(), expected)
    captured_input.update_inplace(second)  # written into the captured address: read
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(output.numpy(), _plain(bundled, second))
    with pytest.raises(RuntimeError, match="IO binding"):
        session.run(None, {bundled.input_name: first})


def test_graphs_are_per_thread_and_a_capture_blocks_other_threads(
    cuda_double: Callable[..., Any], bundled
) -> None:
    import onnxruntime as ort

    double = cuda_double()
    [batch] = _inputs(bundled, 1)
    session = _session(bundled, graph=True)
    value = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0)
    expected = _plain(bundled, batch)
    output = ort.OrtValue.ortvalue_from_shape_and_type(
        list(expected.shape), expected.dtype.type, "cuda", 0
    )
    binding = session.io_binding()
    binding.bind_ortvalue_input(bundled.input_name, value)
    binding.bind_ortvalue_output(bundled.output_names[0], output)
    session.run_with_iobinding(binding)
    worker = threading.Thread(target=session.run_with_iobinding, args=(binding,))
    worker.start()
    worker.join(timeout=60)
    assert double.COUNTERS.graph_captures == 2  # the other thread captured its own
    # While a thread captures (CUDA's global mode), another thread's run fails.
    double._CAPTURING["thread"] = -1
    try:
        with pytest.raises(Exception, match="stream is capturing"):
            session.run_with_iobinding(binding)
    finally:
        double._CAPTURING["thread"] = None
