"""A sleap-nn top-down export cut into its two stages, so that each runs (and is timed) alone.

Design: docs/pose-internals.md, "pose.formats.sleap_stages".
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.core.digest import files_digest
from deeplabstream.pose.formats.conversion import read_record, user_cache_folder
from deeplabstream.pose.model import ModelError

log = logging.getLogger(__name__)

#: Changes when the cut changes: older cached stages are then made again.
SPLIT_VERSION = 1
CENTROID_OUTPUTS = ("centroids", "centroid_vals", "instance_valid")


@dataclass(frozen=True)
class TopDownStages:
    """The two stage graphs cut from one top-down export."""

    centroid_graph: Path
    instance_graph: Path
    crops_name: str
    instance_outputs: tuple[str, ...]


def split_topdown(onnx_file: Path, identity: bool) -> TopDownStages:
    """Return the two stages of a top-down export, cut now or from the cache.

    Raises ModelError when the graph is not sleap-nn 0.3's top-down export.
    """
    digest = files_digest([onnx_file])[:16]
    folder = user_cache_folder() / "sleap-topdown"
    stem = f"{onnx_file.parent.name}.{digest}.v{SPLIT_VERSION}"
    record_file = folder / f"{stem}.json"
    record = read_record(record_file) or {}
    if "crops_name" in record:
        stages = TopDownStages(
            folder / f"{stem}.centroid.onnx",
            folder / f"{stem}.instance.onnx",
            str(record["crops_name"]),
            tuple(record["instance_outputs"]),
        )
        if stages.centroid_graph.is_file() and stages.instance_graph.is_file():
            return stages
    return _cut(onnx_file, identity, folder, stem)


def cut_single_instance(onnx_file: Path) -> tuple[Path, str]:
    """Return a single-instance export's graph up to its confidence maps (cached), and their name.

    Raises ModelError when the graph is not sleap-nn 0.3's single-instance export.
    """
    digest = files_digest([onnx_file])[:16]
    folder = user_cache_folder() / "sleap-single"
    stem = f"{onnx_file.parent.name}.{digest}.v{SPLIT_VERSION}"
    graph_file = folder / f"{stem}.maps.onnx"
    record = read_record(folder / f"{stem}.json") or {}
    if "maps_name" in record and graph_file.is_file():
        return graph_file, str(record["maps_name"])
    import onnx  # heavy: imported when a graph is cut
    from onnx.utils import Extractor

    try:  # the shapes inferred: the extractor reads the maps' type from them
        model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_file)))
    except Exception as error:  # onnx raises DecodeError, OSError, InferenceError, ...
        raise ModelError(f"{onnx_file}: cannot read the single-instance graph: {error}") from error
    maps_name = _maps_before_argmax(onnx_file, model.graph, "single-instance")
    input_name = next(i.name for i in model.graph.input)
    try:
        maps = Extractor(model).extract_model([input_name], [maps_name])
    except Exception as error:  # ValueError for names the graph lacks
        raise ModelError(f"{onnx_file}: cannot cut the graph before its peaks: {error}") from error
    _any_map_size(maps.graph)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".cutting-") as scratch:
        onnx.save(maps, str(Path(scratch) / graph_file.name))
        os.replace(Path(scratch) / graph_file.name, graph_file)
        record_file = Path(scratch) / f"{stem}.json"
        record = {"source": str(onnx_file), "maps_name": maps_name}
        record_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(record_file, folder / f"{stem}.json")  # the record last: the graph is whole
    log.info("cut %s before its peak finding in %s", onnx_file, folder)
    return graph_file, maps_name


def _any_map_size(graph: Any) -> None:
    """Drop the export size the tracer wrote into the graph's shapes: the maps follow the frame."""
    del graph.value_info[:]
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, name in zip(dims[2:], ("map_height", "map_width"), strict=False):
            dim.Clear()
            dim.dim_param = name


def _maps_before_argmax(onnx_file: Path, graph: Any, kind: str) -> str:
    """Return the confidence maps that the graph's one ``ArgMax`` reads through a ``Reshape``."""
    producers = {out: node for node in graph.node for out in node.output}
    maxima = [n for n in graph.node if n.op_type == "ArgMax"]
    if len(maxima) != 1:
        raise ModelError(
            f"{onnx_file}: expected sleap-nn's {kind} graph (one ArgMax finding the "
            f"keypoints); found {len(maxima)}. Export it with sleap-nn 0.3."
        )
    flat = producers.get(maxima[0].input[0])
    if flat is None or flat.op_type != "Reshape":
        raise ModelError(f"{onnx_file}: the keypoints' ArgMax does not read reshaped maps")
    return str(flat.input[0])


def _cut(onnx_file: Path, identity: bool, folder: Path, stem: str) -> TopDownStages:
    """Cut the graph into its stages and write them (and their record) into ``folder``."""
    import onnx  # heavy: imported when a graph is cut
    from onnx.utils import Extractor

    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_file)))
    except Exception as error:  # onnx raises DecodeError, OSError, InferenceError, ...
        raise ModelError(f"{onnx_file}: cannot read the top-down graph: {error}") from error
    crops_name, instance_outputs = _cut_points(onnx_file, model.graph, identity)
    extractor = Extractor(model)
    try:
        centroid = extractor.extract_model(["image"], list(CENTROID_OUTPUTS))
        instance = extractor.extract_model([crops_name], list(instance_outputs))
    except Exception as error:  # ValueError for names the graph lacks
        raise ModelError(
            f"{onnx_file}: cannot cut the top-down graph into its stages ({error}); export it "
            "with sleap-nn 0.3 (`sleap-nn export <centroid> <centered_instance> --format onnx`)"
        ) from error
    folder.mkdir(parents=True, exist_ok=True)
    stages = TopDownStages(
        folder / f"{stem}.centroid.onnx",
        folder / f"{stem}.instance.onnx",
        crops_name,
        instance_outputs,
    )
    with tempfile.TemporaryDirectory(dir=folder, prefix=".cutting-") as scratch:
        for graph, final in ((centroid, stages.centroid_graph), (instance, stages.instance_graph)):
            onnx.save(graph, str(Path(scratch) / final.name))
            os.replace(Path(scratch) / final.name, final)
        record = {
            "source": str(onnx_file),
            "crops_name": crops_name,
            "instance_outputs": list(instance_outputs),
        }
        record_file = Path(scratch) / f"{stem}.json"
        record_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(record_file, folder / f"{stem}.json")  # the record last: stages complete
    log.info("cut %s into its centroid and instance stages in %s", onnx_file, folder)
    return stages


def _cut_points(onnx_file: Path, graph: Any, identity: bool) -> tuple[str, tuple[str, ...]]:
    """Return the crops tensor and the instance stage's outputs."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    samplers = [n for n in graph.node if n.op_type == "GridSample"]
    maxima = [n for n in graph.node if n.op_type == "ArgMax"]
    if len(samplers) != 1 or len(maxima) != 1:
        raise ModelError(
            f"{onnx_file}: expected sleap-nn's top-down graph (one GridSample cutting the "
            f"crops, one ArgMax finding the keypoints); found {len(samplers)} and "
            f"{len(maxima)}. Export it with sleap-nn 0.3."
        )
    # The crops: GridSample's output, through the reshapes that flatten (B, I) into one batch.
    crops = samplers[0].output[0]
    while len(consumers.get(crops, [])) == 1 and consumers[crops][0].op_type == "Reshape":
        crops = consumers[crops][0].output[0]
    # The confidence maps: flattened by a Reshape before the ArgMax of the global peaks.
    outputs = [_maps_before_argmax(onnx_file, graph, "top-down")]
    if identity:
        outputs.append(_before_masking(onnx_file, producers, "class_logits"))
    return crops, tuple(outputs)


def _before_masking(onnx_file: Path, producers: dict[str, Any], output: str) -> str:
    """Return the tensor an output comes from, before the reshape and the zeroed slots."""
    name = output
    for _ in range(8):
        node = producers.get(name)
        if node is None or node.op_type not in ("Where", "Reshape"):
            return name
        if node.op_type == "Reshape":
            name = node.input[0]
        else:  # Where(invalid, 0, data): the data is the input a Reshape made
            data = [
                i for i in node.input[1:] if getattr(producers.get(i), "op_type", "") == "Reshape"
            ]
            if len(data) != 1:
                break
            name = data[0]
    raise ModelError(f"{onnx_file}: cannot find where the graph's {output!r} is computed")
