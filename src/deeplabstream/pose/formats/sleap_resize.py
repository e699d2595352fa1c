"""sleap-nn exports resize every frame to one size fixed at export: made to follow the frame's.

Design: docs/pose-internals.md, "pose.formats.sleap_resize".
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.core.digest import files_digest
from deeplabstream.pose.formats.conversion import user_cache_folder
from deeplabstream.pose.model import ModelError

log = logging.getLogger(__name__)

#: Changes when the rewrite changes: older cached graphs are then made again.
REWRITE_VERSION = 1
#: Files of an export folder copied beside the rewritten graph (those present).
EXPORT_FILES = (
    "export_metadata.json",
    "training_config.yaml",
    "training_config_centroid.yaml",
    "training_config_centered_instance.yaml",
    "training_config_multi_class_topdown.yaml",
)
#: Operations between the graph's input and its resize that keep the frame's shape.
_ELEMENTWISE = {"Cast", "Div", "Mul", "Sub", "Add", "Identity"}


@dataclass(frozen=True)
class BakedResize:
    """A resize (node index ``node``) of the graph's input ``data`` to constant ``sizes`` (h, w)."""

    node: int
    data: str
    sizes: tuple[int, int]


def follow_frame_size(onnx_file: Path, input_scale: float) -> Path:
    """Return a graph that scales each input by ``input_scale`` at its own size (cached).

    ``onnx_file`` itself when nothing is resized to constant sizes. Raises ModelError when the graph
    cannot be read or the rewritten one written.
    """
    if input_scale == 1.0:
        return onnx_file
    import onnx  # heavy: imported when a graph is read

    try:
        model = onnx.load(str(onnx_file))
    except Exception as error:  # onnx raises DecodeError, OSError, ... on bad files
        raise ModelError(f"{onnx_file}: not a readable ONNX file: {error}") from error
    baked = find_baked_resizes(model.graph)
    if not baked:
        return onnx_file
    digest = files_digest([onnx_file])[:16]
    folder = user_cache_folder() / "sleap-frame-size" / f"{onnx_file.parent.name}.{digest}"
    folder = folder.with_name(f"{folder.name}.v{REWRITE_VERSION}")
    rewritten = folder / onnx_file.name
    if rewritten.is_file():
        return rewritten
    for resize in sorted(baked, key=lambda r: -r.node):  # later nodes first: indices hold
        _compute_sizes(model.graph, resize, input_scale)
    # The tracer's shapes of the tensors after the resize held the export size: ONNX Runtime
    # infers them again.
    del model.graph.value_info[:]
    _write(model, onnx_file, folder)
    log.info("%s: its input resize now follows each frame's size (%s)", onnx_file, rewritten)
    return rewritten


def find_baked_resizes(graph: Any) -> list[BakedResize]:
    """Return the graph's resizes of its own input to constant sizes."""
    producers = {out: node for node in graph.node for out in node.output}
    constants = _constants(graph)
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    found = []
    for index, node in enumerate(graph.node):
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        data = node.input[0]
        if not _from_input(data, producers, inputs):
            continue
        concat = producers.get(node.input[3])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
            continue
        if not _first_two_dims_of(concat.input[0], data, producers, constants):
            continue
        sizes = constants.get(concat.input[1])
        if sizes is None or len(sizes) != 2:
            continue
        found.append(BakedResize(index, data, (int(sizes[0]), int(sizes[1]))))
    return found


def _constants(graph: Any) -> dict[str, list[float]]:
    """Values of the graph's initializers and Constant nodes, flattened, by tensor name."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t).ravel().tolist() for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).ravel().tolist()
    return values


def _from_input(name: str, producers: dict[str, Any], inputs: set[str]) -> bool:
    """Return True when ``name`` is the graph's input through element-wise operations only."""
    while name not in inputs:
        node = producers.get(name)
        if node is None or node.op_type not in _ELEMENTWISE:
            return False
        name = node.input[0]
    return True


def _first_two_dims_of(
    name: str, data: str, producers: dict[str, Any], constants: dict[str, list[float]]
) -> bool:
    """Return True when ``name`` is ``shape(data)[0:2]`` (``Shape`` start/end, or ``Slice``)."""
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Shape":  # opset 15+: Shape(start=0, end=2)
        attributes = {a.name: a.i for a in node.attribute}
        return (
            node.input[0] == data and attributes.get("start", 0) == 0 and attributes.get("end") == 2
        )
    if node.op_type != "Slice" or len(node.input) < 3:
        return False
    shape = producers.get(node.input[0])
    starts, ends = constants.get(node.input[1]), constants.get(node.input[2])
    axes = constants.get(node.input[3]) if len(node.input) > 3 and node.input[3] else [0]
    return (
        shape is not None
        and shape.op_type == "Shape"
        and shape.input[0] == data
        and not {a.name for a in shape.attribute}
        and starts == [0]
        and ends == [2]
        and axes == [0]
    )


def _compute_sizes(graph: Any, resize: BakedResize, input_scale: float) -> None:
    """Feed the resize sizes computed from its input's shape (nodes inserted before it)."""
    from onnx import TensorProto, helper

    prefix = f"dls_frame_size_{resize.node}"

    def name(what: str) -> str:
        return f"{prefix}_{what}"

    constants = [
        helper.make_tensor(name("nc_start"), TensorProto.INT64, [1], [0]),
        helper.make_tensor(name("nc_end"), TensorProto.INT64, [1], [2]),
        helper.make_tensor(name("hw_end"), TensorProto.INT64, [1], [4]),
        helper.make_tensor(name("axis"), TensorProto.INT64, [1], [0]),
        helper.make_tensor(name("scale"), TensorProto.DOUBLE, [2], [input_scale, input_scale]),
    ]
    graph.initializer.extend(constants)
    nodes = [
        helper.make_node("Shape", [resize.data], [name("shape")]),
        helper.make_node(
            "Slice", [name("shape"), name("nc_start"), name("nc_end"), name("axis")],
            [name("nc")],
        ),
        helper.make_node(
            "Slice", [name("shape"), name("nc_end"), name("hw_end"), name("axis")], [name("hw")]
        ),
        helper.make_node("Cast", [name("hw")], [name("hw_double")], to=TensorProto.DOUBLE),
        helper.make_node("Mul", [name("hw_double"), name("scale")], [name("hw_scaled")]),
        helper.make_node("Floor", [name("hw_scaled")], [name("hw_floor")]),
        helper.make_node("Cast", [name("hw_floor")], [name("hw_new")], to=TensorProto.INT64),
        helper.make_node("Concat", [name("nc"), name("hw_new")], [name("sizes")], axis=0),
    ]  # fmt: skip
    target = graph.node[resize.node]
    target.input[3] = name("sizes")
    for offset, node in enumerate(nodes):
        graph.node.insert(resize.node + offset, node)


def _write(model: Any, onnx_file: Path, folder: Path) -> None:
    """Write the graph and copies of the export's other files into ``folder``, atomically."""
    import onnx

    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".rewriting-") as scratch:
            staging = Path(scratch) / folder.name
            staging.mkdir()
            onnx.checker.check_model(model)
            onnx.save(model, str(staging / onnx_file.name))
            for file_name in EXPORT_FILES:
                if (onnx_file.parent / file_name).is_file():
                    shutil.copy2(onnx_file.parent / file_name, staging / file_name)
            try:
                os.replace(staging, folder)
            except OSError:
                if not (folder / onnx_file.name).is_file():  # not another process's copy
                    raise
    except (OSError, onnx.checker.ValidationError) as error:
        raise ModelError(
            f"{onnx_file}: cannot write the graph that follows the frame's size into "
            f"{folder}: {error}"
        ) from error
