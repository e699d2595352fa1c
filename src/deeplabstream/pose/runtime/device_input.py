"""The network's input prepared on the GPU: frames go up as bytes, the graph normalises them.

Design: docs/gpu.md, "The input prepared on the GPU".
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from deeplabstream.core.digest import files_digest
from deeplabstream.pose.formats.conversion import user_cache_folder
from deeplabstream.pose.model import ModelDescription

log = logging.getLogger(__name__)

#: Raised whenever the wrapper's nodes change: older wrapped graphs are made again.
WRAPPER_VERSION = 1
#: The wrapped graph's input.
FRAMES_INPUT = "frames"
#: The devices the input is prepared on (a GPU: the CPU gains nothing from it).
DEVICES = ("cuda", "tensorrt")


def device_input_problem(description: ModelDescription, frame_size: tuple[int, int]) -> str | None:
    """Why the input cannot be prepared on the device for (h, w) frames (None: it can)."""
    from deeplabstream.pose.decoding.sleap_topdown import instance_stage_description

    d = description
    if Path(d.model_file).suffix != ".onnx":
        return "not an ONNX graph"
    if d.normalization != "outside" or d.input_type != "float" or d.input_layout != "nchw":
        return "the graph takes its input as it is (it prepares it itself)"
    if d.color_order == "gray":
        return "a grey network: the frame is converted to grey on the CPU"
    if d.letterbox:
        return "the frame is letterboxed into the input"
    if not d.any_input_size and frame_size != (d.input_height, d.input_width):
        return (
            f"the frame ({frame_size[1]}x{frame_size[0]}) is resized to the input "
            f"({d.input_width}x{d.input_height}) on the CPU"
        )
    if instance_stage_description(d) is not None:
        return "a two-stage model: its second stage cuts crops from the prepared input"
    return None


def device_input_graph(description: ModelDescription) -> Path:
    """Return the wrapped graph of ``description``, made if needed."""
    source = Path(description.model_file)
    data = source.with_name(source.name + ".data")
    digest = files_digest([source, data] if data.is_file() else [source])
    folder = user_cache_folder() / "device_input"
    target = folder / f"{source.stem}.{digest[:16]}.v{WRAPPER_VERSION}.device-input.onnx"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _write_wrapped(description, target)
        log.info("%s: input prepared on the GPU by %s", source.name, target)
    return target


def with_device_input(description: ModelDescription) -> ModelDescription:
    """Return ``description`` running its wrapped graph: uint8 RGB frames, NHWC, never resized."""
    return dataclasses.replace(
        description,
        model_file=device_input_graph(description),
        input_name=FRAMES_INPUT,
        input_type="uint8",
        input_layout="nhwc",
        normalization="in-graph",
        resize="area",
    )


def input_for_device(
    description: ModelDescription,
    device: str,
    backend: str,
    frame_sizes: list[tuple[int, int]],
    setting: str = "auto",
) -> tuple[ModelDescription, str]:
    """Return the description to run on ``device`` and where its input is prepared, in words."""
    if backend != "onnxruntime" or device not in DEVICES:
        return description, "on the CPU"
    if setting == "off":
        return description, "on the CPU: [Pose] INPUT_ON_DEVICE = off"
    for size in frame_sizes:
        problem = device_input_problem(description, size)
        if problem is not None:
            return description, f"on the CPU: {problem}"
    return with_device_input(description), "on the GPU: uint8 frames, normalised in the graph"


def _write_wrapped(description: ModelDescription, target: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(description.model_file))
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    image = next((i for i in inputs if i.name == description.input_name), None)
    if image is None or len(inputs) != 1:
        raise ValueError(f"{description.model_file}: expected one input {description.input_name}")
    dims = image.type.tensor_type.shape.dim
    # N x C x H x W -> N x H x W x 3, keeping each dimension's name or size.
    nhwc = [_dim(dims[0]), _dim(dims[2]), _dim(dims[3]), 3]
    half = image.type.tensor_type.elem_type == TensorProto.FLOAT16
    prefix = "deeplabstream_device_input_"
    mean = np.asarray(description.mean, np.float32).reshape(1, 1, 1, 3)
    std = np.asarray(description.std, np.float32).reshape(1, 1, 1, 3)
    constants = [
        numpy_helper.from_array(np.asarray(255.0, np.float32), prefix + "scale"),
        numpy_helper.from_array(mean, prefix + "mean"),
        numpy_helper.from_array(std, prefix + "std"),
    ]
    names = [prefix + n for n in ("float", "unit", "centred", "normalised", "planar")]
    nodes = [
        helper.make_node("Cast", [FRAMES_INPUT], [names[0]], to=TensorProto.FLOAT),
        helper.make_node("Div", [names[0], prefix + "scale"], [names[1]]),
        helper.make_node("Sub", [names[1], prefix + "mean"], [names[2]]),
        helper.make_node("Div", [names[2], prefix + "std"], [names[3]]),
        helper.make_node("Transpose", [names[3]], [names[4]], perm=[0, 3, 1, 2]),
    ]
    last = names[4]
    if half:
        nodes.append(helper.make_node("Cast", [last], [prefix + "half"], to=TensorProto.FLOAT16))
        last = prefix + "half"
    nodes.append(helper.make_node("Identity", [last], [description.input_name]))
    graph.input.remove(image)
    graph.input.insert(0, helper.make_tensor_value_info(FRAMES_INPUT, TensorProto.UINT8, nhwc))
    graph.initializer.extend(constants)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    partial = target.with_name(target.name + ".partial")
    onnx.save(model, str(partial))
    partial.replace(target)  # a reader never sees half a file


def _dim(dimension: object) -> int | str:
    """One input dimension as ``make_tensor_value_info`` takes it: its size or its name."""
    value = getattr(dimension, "dim_value", 0)
    return int(value) if value else str(getattr(dimension, "dim_param", "") or "dynamic")
