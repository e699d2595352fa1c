"""IO binding on ONNX Runtime's CPU provider against the plain ``session.run`` (issue 35).

The bundled model's real session, bound and unbound: the outputs must be identical, the bound
buffers reused across calls, and a new input shape must get buffers of its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend
from deeplabstream.pose.runtime.estimator import NetworkEstimator

RNG = np.random.default_rng(35)


@pytest.fixture(scope="module")
def bundled():
    return load_model(None)


@pytest.fixture(scope="module")
def backends(bundled):
    bound = OnnxRuntimeBackend(bundled, "cpu", 1)
    plain = OnnxRuntimeBackend(bundled, "cpu", 1, io_binding=False)
    yield bound, plain
    bound.close()
    plain.close()


def _batch(description, n: int) -> np.ndarray:
    return RNG.standard_normal(description.input_shape(n)).astype(np.float32)


def test_bound_outputs_equal_session_run_and_reuse_their_buffers(bundled, backends) -> None:
    bound, plain = backends
    first_buffers = None
    for _ in range(4):
        batch = _batch(bundled, 1)
        expected = plain.run(batch)
        got = bound.run(batch)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
        if first_buffers is None:
            first_buffers = [g.ctypes.data for g in got]
        # The same memory every call: allocated once for this shape, written in place.
        assert [g.ctypes.data for g in got] == first_buffers
    slot = bound._binding.slots[(bundled.input_shape(1), np.dtype(np.float32))]
    assert slot.runs >= 3  # the first call learned the shapes; the others ran bound


def test_a_new_shape_gets_new_buffers_and_the_old_ones_are_kept(bundled, backends) -> None:
    bound, plain = backends
    one = bound.run(_batch(bundled, 1))
    one_pointers = [o.ctypes.data for o in one]
    batch3 = _batch(bundled, 3)
    three = bound.run(batch3)
    assert three[0].shape[0] == 3
    assert not set(one_pointers) & {o.ctypes.data for o in three}
    for g, e in zip(bound.run(batch3), plain.run(batch3), strict=True):
        np.testing.assert_array_equal(g, e)
    again = bound.run(_batch(bundled, 1))
    assert [o.ctypes.data for o in again] == one_pointers
    assert len(bound._binding.slots) >= 2


def test_an_input_that_cannot_be_bound_in_place_is_copied_into_its_own_buffer(
    bundled, backends
) -> None:
    bound, plain = backends
    strided = np.asfortranarray(_batch(bundled, 1))  # the same values, not C-contiguous
    assert not strided.flags.c_contiguous
    before = bound._binding.copied_inputs
    bound.run(np.ascontiguousarray(strided))  # make sure this shape's buffers exist
    got = bound.run(strided)
    assert bound._binding.copied_inputs == before + 1
    for g, e in zip(got, plain.run(np.ascontiguousarray(strided)), strict=True):
        np.testing.assert_array_equal(g, e)


def test_the_estimator_writes_frames_into_the_buffer_the_network_reads(bundled) -> None:
    frames = [RNG.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(3)]
    allocated: list[tuple[tuple[int, ...], np.dtype]] = []

    class Recording(OnnxRuntimeBackend):
        def host_buffer(self, shape, dtype):
            allocated.append((tuple(shape), np.dtype(dtype)))
            return super().host_buffer(shape, dtype)

    bound = Recording(bundled, "cpu", 1)
    plain = OnnxRuntimeBackend(bundled, "cpu", 1, io_binding=False)
    estimators = [
        NetworkEstimator(bundled, b, frames[0].shape, max_batch=3) for b in (bound, plain)
    ]
    # The pre-processing's buffer came from the backend (pinned memory on a GPU)...
    assert allocated == [(bundled.input_shape(3), np.dtype(np.float32))]
    for _ in range(3):
        got, expected = (e.estimate(frames) for e in estimators)
        np.testing.assert_array_equal(got, expected)
    # ... and is bound where it is: no copy of the input on the way to the network.
    assert bound._binding.copied_inputs == 0
    bound.close()
    plain.close()


def test_outputs_whose_shape_follows_the_data_run_unbound(tmp_path) -> None:
    """A graph whose output size depends on the values (NonZero): bound buffers cannot fit."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    from deeplabstream.pose.runtime.iobinding import HostBinding

    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["zero"], value_float=0.0),
            helper.make_node("Greater", ["images", "zero"], ["positive"]),
            helper.make_node("NonZero", ["positive"], ["where"]),
        ],
        "nonzero",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("where", TensorProto.INT64, [2, None])],
    )
    path = tmp_path / "nonzero.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    binding = HostBinding(session, "images", ["where"])
    two = np.array([[1.0, -1.0, 2.0, -2.0]], np.float32)
    three = np.array([[1.0, 1.0, 2.0, -2.0]], np.float32)
    np.testing.assert_array_equal(binding.run(two)[0], session.run(None, {"images": two})[0])
    # Same input shape, another output shape: refused by the bound buffers, run unbound.
    np.testing.assert_array_equal(binding.run(three)[0], session.run(None, {"images": three})[0])
    assert next(iter(binding.slots.values())).unbound
    np.testing.assert_array_equal(binding.run(two)[0], session.run(None, {"images": two})[0])
