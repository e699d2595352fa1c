"""The input prepared on the GPU: the wrapped graph gives the CPU pre-processing's numbers.

Run on ONNX Runtime's CPU provider (no GPU here): the same graph runs on the GPU, whose float32
division and subtraction round as the CPU's do. A small convolutional network made here stands
for a model that takes the normalised image at the frame's own size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend
from deeplabstream.pose.runtime.device_input import (
    device_input_problem,
    input_for_device,
    with_device_input,
)
from deeplabstream.pose.runtime.estimator import NetworkEstimator

RNG = np.random.default_rng(61)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def _network(folder: Path, half: bool, any_size: bool) -> ModelDescription:
    """A 3x3 convolution to 4 heatmaps and a ReLU, fp32 or fp16, of fixed or any input size."""
    kind = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    dtype = np.float16 if half else np.float32
    height, width = ("height", "width") if any_size else (48, 64)
    weights = RNG.standard_normal((4, 3, 3, 3)).astype(dtype)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["heatmaps"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", kind, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("heatmaps", kind, ["batch", 4, height, width])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"tiny_{'fp16' if half else 'fp32'}_{'any' if any_size else 'fixed'}.onnx"
    onnx.save(model, str(path))
    return ModelDescription(
        name="tiny",
        framework="deeplabcut",
        model_file=path,
        keypoints=("a", "b", "c", "d"),
        input_height=48,
        input_width=64,
        stride=1.0,
        heatmaps_are_probabilities=False,
        precision="fp16" if half else "fp32",
        any_input_size=any_size,
    )


def _frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    return [RNG.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _keypoints(description: ModelDescription, frames: list[np.ndarray]) -> np.ndarray:
    backend = OnnxRuntimeBackend(description, "cpu", 1)
    try:
        estimator = NetworkEstimator(description, backend, frames[0].shape, max_batch=2)
        return np.concatenate(
            [estimator.estimate(frames[i : i + 2]) for i in range(0, len(frames), 2)]
        )
    finally:
        backend.close()


def _network_input_and_outputs(description: ModelDescription, frames: list[np.ndarray]):
    backend = OnnxRuntimeBackend(description, "cpu", 1, io_binding=False)
    try:
        estimator = NetworkEstimator(description, backend, frames[0].shape, max_batch=len(frames))
        batch = np.array(estimator.preprocessor.prepare(frames)[0], copy=True)
        return batch, backend.run(batch)[0]
    finally:
        backend.close()


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_the_wrapped_graph_gives_the_cpu_preprocessings_outputs_to_the_bit(
    tmp_path: Path, half: bool
) -> None:
    host = _network(tmp_path, half, any_size=False)
    device = with_device_input(host)
    assert (device.input_type, device.input_layout, device.normalization) == (
        "uint8", "nhwc", "in-graph",
    )  # fmt: skip
    frames = _frames(4)
    host_input, host_out = _network_input_and_outputs(host, frames)
    device_input, device_out = _network_input_and_outputs(device, frames)
    assert host_input.dtype == (np.float16 if half else np.float32)
    assert device_input.dtype == np.uint8 and device_input.shape == (4, 48, 64, 3)
    np.testing.assert_array_equal(device_input[..., ::-1], np.stack(frames))  # RGB bytes only
    if not half:
        np.testing.assert_array_equal(device_out, host_out)
        np.testing.assert_array_equal(_keypoints(device, frames), _keypoints(host, frames))
        return
    # The CPU provider has no fp16 convolution: it runs one in fp32 between two casts, and its
    # optimiser drops the wrapper's cast to fp16 that meets them (a GPU runs it in fp16). So
    # the fp16 network sees the unrounded input here: equal to fp16's precision.
    np.testing.assert_allclose(device_out, host_out, rtol=2e-3, atol=2e-2)


def test_a_graph_of_any_size_keeps_its_sizes_open(tmp_path: Path) -> None:
    host = _network(tmp_path, False, any_size=True)
    device = with_device_input(host)
    for height, width in ((48, 64), (40, 72)):
        frames = _frames(2, height, width)
        sized_host, sized_device = (
            host.at_input_size(height, width),
            device.at_input_size(height, width),
        )
        np.testing.assert_array_equal(
            _keypoints(sized_device, frames), _keypoints(sized_host, frames)
        )


def test_the_wrapped_graph_is_made_once_in_the_cache_never_beside_the_model(
    tmp_path: Path,
) -> None:
    host = _network(tmp_path, False, any_size=False)
    first, second = with_device_input(host), with_device_input(host)
    assert first.model_file == second.model_file
    assert (tmp_path / "cache") in first.model_file.parents
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [host.model_file.name]


def test_the_models_it_does_not_apply_to_say_why(tmp_path: Path) -> None:
    fixed = _network(tmp_path, False, any_size=False)
    assert device_input_problem(fixed, (48, 64)) is None
    assert "resized to the input" in (device_input_problem(fixed, (480, 640)) or "")
    assert device_input_problem(_network(tmp_path, False, any_size=True), (480, 640)) is None
    bundled = load_model(None)  # takes pixels and normalises them itself
    assert "prepares it itself" in (device_input_problem(bundled, (256, 320)) or "")
    gray = dataclasses.replace(fixed, color_order="gray", mean=(0.5,), std=(0.25,))
    assert "grey" in (device_input_problem(gray, (48, 64)) or "")
    boxed = dataclasses.replace(fixed, letterbox=True)
    assert "letterboxed" in (device_input_problem(boxed, (48, 64)) or "")


def test_only_a_gpu_device_gets_it_and_the_setting_turns_it_off(tmp_path: Path) -> None:
    host = _network(tmp_path, False, any_size=False)
    sizes = [(48, 64)]
    assert input_for_device(host, "cpu", "onnxruntime", sizes) == (host, "on the CPU")
    assert input_for_device(host, "cuda", "pytorch", sizes)[0] is host
    off = input_for_device(host, "cuda", "onnxruntime", sizes, "off")
    assert off == (host, "on the CPU: [Pose] INPUT_ON_DEVICE = off")
    wrapped, where = input_for_device(host, "tensorrt", "onnxruntime", sizes)
    assert wrapped.input_type == "uint8" and where.startswith("on the GPU")
    # A second camera of another size would need a resize on the CPU: every camera is asked.
    kept, why = input_for_device(host, "cuda", "onnxruntime", [*sizes, (480, 640)])
    assert kept is host and "resized" in why
