"""SLEAP models exported by sleap-nn: ``sleap-nn export <model dir> -o <folder> --format onnx``.

Design: docs/pose-internals.md, "pose.formats.sleap".
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from deeplabstream.pose.decoding.sleap import OUTPUTS, SleapDecoding
from deeplabstream.pose.decoding.sleap_classes import CLASS_OUTPUTS, SleapClassDecoding
from deeplabstream.pose.decoding.sleap_single import SINGLE_OUTPUTS, SleapSingleDecoding
from deeplabstream.pose.decoding.sleap_topdown import (
    TOPDOWN_CLASS_OUTPUTS,
    TOPDOWN_OUTPUTS,
    SleapTopDownDecoding,
)
from deeplabstream.pose.formats.sleap_resize import follow_frame_size
from deeplabstream.pose.formats.sleap_stages import (
    CENTROID_OUTPUTS,
    cut_single_instance,
    split_topdown,
)
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, Precision

FRAMEWORK = "sleap-nn"
METADATA_FILE = "export_metadata.json"
CONFIG_FILE = "training_config.yaml"
#: A top-down export keeps each stage's training config (sleap-nn's ``_copy_training_config``).
STAGE_CONFIG_FILES = (
    "training_config_centroid.yaml",
    "training_config_centered_instance.yaml",
    "training_config_multi_class_topdown.yaml",
)
GRAPH_FILE = "model.onnx"
#: Animals reported per frame when neither MAX_ANIMALS nor the export's max_instances says.
DEFAULT_MAX_ANIMALS = 2
#: sleap-nn's grouping defaults for an exported bottom-up model.
DEFAULT_MIN_LINE_SCORES = 0.25
DEFAULT_MIN_INSTANCE_PEAKS = 0.0

SUPPORTED = (
    "single-instance models, bottom-up models (confidence maps + part-affinity fields), "
    "bottom-up identity models "
    "(confidence maps + class maps), and top-down models (centroid + centered-instance, with "
    "or without identity classes) exported with both stages together are supported"
)
BOTTOMUP = "bottomup"
IDENTITY_BOTTOMUP = "multi_class_bottomup"
TOPDOWN = "topdown"
IDENTITY_TOPDOWN = "multi_class_topdown_combined"
SINGLE = "single_instance"
#: What to run instead of one stage of a top-down model exported alone.
EXPORT_BOTH_STAGES = (
    "A top-down model runs here from the export of both its stages together: `sleap-nn "
    "export <centroid model folder> <centered_instance (or multi_class_topdown) model folder> "
    "-o <export folder> --format onnx` (one graph: centroids, the crops around them and the "
    "keypoints of each crop)."
)
#: The peak threshold sleap-nn applies to an export whose metadata names none.
DEFAULT_PEAK_THRESHOLD = 0.2
_UNSUPPORTED = {
    "centroid": (
        "a top-down model's centroid stage exported alone (it finds one point per animal, "
        "no keypoints)"
    ),
    "centered_instance": (
        "a top-down model's centered-instance stage exported alone (its graph takes crops "
        "centred on each animal, not frames: the centroid stage that finds them is missing)"
    ),
    "multi_class_topdown": (
        "a top-down identity model's instance stage exported alone (its graph takes crops "
        "centred on each animal, not frames: the centroid stage that finds them is missing)"
    ),
}
#: Other names of the model types that are run here.
_ALIASES = {"bottomup_multiclass": IDENTITY_BOTTOMUP, "topdown_multiclass": IDENTITY_TOPDOWN}
_RUN_HERE = (SINGLE, BOTTOMUP, IDENTITY_BOTTOMUP, TOPDOWN, IDENTITY_TOPDOWN)


def is_export_folder(path: Path) -> bool:
    """Return True for a sleap-nn export folder (even without ``model.onnx``) or a file in one."""
    if path.is_dir():
        return (path / METADATA_FILE).is_file()
    return path.suffix == ".onnx" and (path.parent / METADATA_FILE).is_file()


def load_sleap(
    path: str | Path, frame_size: tuple[int, int] | None = None, *, stages: bool = True
) -> ModelDescription:
    """Describe a sleap-nn ONNX export (folder or ``model.onnx``; docs/sleap-models.md).

    ``frame_size`` (height, width): the input size when neither metadata nor config names it.
    ``stages=False`` runs a top-down export's one graph as written. Raises ModelError for missing or
    unreadable files, a model type not run here, or metadata and graph disagreeing.
    """
    onnx_file, folder = _locate(Path(path))
    metadata = read_metadata(folder / METADATA_FILE)
    config = _read_config(folder / CONFIG_FILE)
    configs = {name: _read_config(folder / name) for name in STAGE_CONFIG_FILES}
    model_type = _check_model_type(folder, metadata, config)
    # The graph's resize by input_scale follows each frame's size (sleap-nn bakes the export's).
    export_file = onnx_file  # the user's: what messages and inspect name
    onnx_file = follow_frame_size(onnx_file, _input_scale(folder / METADATA_FILE, metadata))
    graph = _read_graph(onnx_file)
    if model_type in (TOPDOWN, IDENTITY_TOPDOWN):
        description = _describe_topdown(
            onnx_file, folder, metadata, configs, graph, frame_size, model_type
        )
        return _two_stages(description, export_file) if stages else description
    if model_type == SINGLE:
        return _describe_single(onnx_file, folder, metadata, config, graph, frame_size, export_file)
    return _describe(onnx_file, folder, metadata, config, graph, frame_size, model_type)


def _input_scale(metadata_file: Path, metadata: dict[str, Any]) -> float:
    """Return the metadata's ``input_scale`` (1 when absent)."""
    try:
        scale = float(metadata.get("input_scale") or 1.0)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{metadata_file}: input_scale is not a number: {error}") from error
    if not scale > 0:
        raise ModelError(f"{metadata_file}: input_scale {scale} is not positive")
    return scale


def _locate(path: Path) -> tuple[Path, Path]:
    """Return the graph and the export folder that ``path`` names."""
    if path.is_dir():
        folder, onnx_file = path, path / GRAPH_FILE
    else:
        folder, onnx_file = path.parent, path
    if not (folder / METADATA_FILE).is_file():
        raise ModelError(
            f"{path}: no {METADATA_FILE} in {folder}; export the model with `sleap-nn export "
            f"<model folder> -o <export folder> --format onnx` and name that folder"
        )
    if not onnx_file.is_file():
        raise ModelError(f"{folder}: no {GRAPH_FILE}; only ONNX exports (`--format onnx`) run here")
    return onnx_file, folder


def read_metadata(metadata_file: Path) -> dict[str, Any]:
    """sleap-nn's export metadata as a dict."""
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{metadata_file}: cannot read it: {error}") from error
    if not isinstance(metadata, dict):
        raise ModelError(
            f"{metadata_file}: expected a JSON object, found {type(metadata).__name__}"
        )
    return metadata


def _read_config(config_file: Path) -> dict[str, Any]:
    """Return the training config beside the export, or {} when it is absent."""
    if not config_file.is_file():
        return {}
    import yaml  # imported on use: only sleap-nn exports need it

    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ModelError(f"{config_file}: cannot read it: {error}") from error
    return config if isinstance(config, dict) else {}


def _heads(config: dict[str, Any]) -> list[str]:
    """Names of the heads the training config sets (not null)."""
    heads = (config.get("model_config") or {}).get("head_configs") or {}
    return [name for name, head in heads.items() if head] if isinstance(heads, dict) else []


def _model_type(metadata: dict[str, Any], heads: list[str]) -> str:
    """Return the model type the metadata names, else the one the training config's heads say."""
    model_type = str(metadata.get("model_type") or "").lower()
    if not model_type:
        model_type = "topdown" if {"centroid", "centered_instance"} & set(heads) else ""
        model_type = model_type or (heads[0] if len(heads) == 1 else "")
    return _ALIASES.get(model_type, model_type)


def _check_model_type(folder: Path, metadata: dict[str, Any], config: dict[str, Any]) -> str:
    """Return the model type if it runs here (``_RUN_HERE``); raise a ModelError otherwise."""
    heads = _heads(config)
    model_type = _model_type(metadata, heads)
    if model_type in (TOPDOWN, IDENTITY_TOPDOWN):
        return model_type
    unsupported = [h for h in heads if h in _UNSUPPORTED]
    if model_type in _UNSUPPORTED or unsupported:
        found = _UNSUPPORTED.get(model_type) or _UNSUPPORTED[unsupported[0]]
        raise ModelError(
            f"{folder}: {found} (model_type {model_type!r}, heads {', '.join(heads) or '?'}); "
            f"only {SUPPORTED}. {EXPORT_BOTH_STAGES}"
        )
    if model_type == BOTTOMUP and (metadata.get("n_classes") or metadata.get("class_names")):
        raise ModelError(
            f"{folder}: model_type 'bottomup' in {METADATA_FILE}, but it names "
            f"{metadata.get('n_classes')} identity classes; an identity model's export says "
            f"model_type 'multi_class_bottomup'. Export the model again with `sleap-nn export`."
        )
    if model_type not in _RUN_HERE:
        raise ModelError(
            f"{folder}: model_type {model_type or 'missing'!r} in {METADATA_FILE}; only {SUPPORTED}"
        )
    return model_type


def _read_graph(onnx_file: Path) -> tuple[str, tuple[Any, ...], str, tuple[str, ...]]:
    """Return the graph's input name, input shape, input type and output names."""
    import onnx  # heavy: imported when a graph is read

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ... on bad files
        raise ModelError(f"{onnx_file}: not a readable ONNX file: {error}") from error
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"{onnx_file}: expected one image input, found {len(inputs)}")
    first = inputs[0]
    shape = tuple(
        int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
        for d in first.type.tensor_type.shape.dim
    )
    input_type = onnx.TensorProto.DataType.Name(first.type.tensor_type.elem_type)
    return first.name, shape, input_type, tuple(o.name for o in model.graph.output)


def _trace_size(
    metadata: dict[str, Any], config: dict[str, Any], frame_size: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Return the size the graph was exported for, or None."""
    return _stated_trace_size(metadata, config) or frame_size


def _input_size(
    metadata_file: Path,
    metadata: dict[str, Any],
    config: dict[str, Any],
    frame_size: tuple[int, int] | None,
    config_named: str,
) -> tuple[int, int]:
    """Return :func:`_trace_size`, or raise a ModelError naming ``config_named``."""
    size = _trace_size(metadata, config, frame_size)
    if size is None:
        raise ModelError(
            f"{metadata_file}: no input size (max_height/max_width) in the metadata or "
            f"{config_named}; give the frame size"
        )
    return size


def _check_edges(
    metadata_file: Path, edges: tuple[tuple[int, int], ...], keypoints: tuple[str, ...]
) -> None:
    """Raise a ModelError when the metadata's ``edge_inds`` name nodes beyond its keypoints."""
    if any(not (0 <= i < len(keypoints)) for edge in edges for i in edge):
        raise ModelError(f"{metadata_file}: edge_inds name nodes beyond the {len(keypoints)} nodes")


def _stated_trace_size(metadata: dict[str, Any], config: dict[str, Any]) -> tuple[int, int] | None:
    """Return the traced size the metadata or the training config states, or None."""
    preprocessing = ((config.get("data_config") or {}).get("preprocessing")) or {}
    for source in (metadata, preprocessing):
        height, width = source.get("max_height"), source.get("max_width")
        if height and width:
            return int(height), int(width)
    return None


def _describe(
    onnx_file: Path,
    folder: Path,
    metadata: dict[str, Any],
    config: dict[str, Any],
    graph: tuple[str, tuple[Any, ...], str, tuple[str, ...]],
    frame_size: tuple[int, int] | None,
    model_type: str = BOTTOMUP,
) -> ModelDescription:
    """Cross-check metadata and graph, and build the description."""
    metadata_file = folder / METADATA_FILE
    output_names = graph[3]
    try:
        keypoints = tuple(str(n) for n in metadata["node_names"])
        edges = tuple((int(s), int(d)) for s, d in metadata["edge_inds"] or ())
        input_scale = float(metadata.get("input_scale") or 1.0)
        channels = int(metadata.get("input_channels") or 1)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{metadata_file}: incomplete metadata: {error!r}") from error
    _check_edges(metadata_file, edges, keypoints)
    identity = model_type == IDENTITY_BOTTOMUP
    if identity and not edges:  # no part-affinity fields: the labels' skeleton, for drawing
        edges = _config_edges(config, keypoints)
    _check_outputs(onnx_file, output_names, CLASS_OUTPUTS if identity else OUTPUTS, identity)
    _check_input(onnx_file, metadata_file, graph, channels)
    size = _input_size(metadata_file, metadata, config, frame_size, "the training config")
    classes: tuple[str, ...] = ()
    decoding: SleapDecoding | SleapClassDecoding
    if identity:
        classes = _class_names(metadata_file, metadata)
        decoding = SleapClassDecoding(
            class_names=classes,
            peak_threshold=float(metadata.get("peak_threshold") or DEFAULT_PEAK_THRESHOLD),
        )
        animals = len(classes)
    else:
        decoding = SleapDecoding(
            edges=edges,
            input_scale=input_scale,
            min_line_scores=float(metadata.get("min_line_scores", DEFAULT_MIN_LINE_SCORES)),
            min_instance_peaks=float(
                metadata.get("min_instance_peaks", DEFAULT_MIN_INSTANCE_PEAKS)
            ),
        )
        max_instances = metadata.get("max_instances")
        animals = int(max_instances) if max_instances else DEFAULT_MAX_ANIMALS
    return _export_description(
        onnx_file, folder, metadata, graph, keypoints, edges, channels, size,
        trained_size=_stated_trace_size(metadata, config),
        stride=float(metadata.get("output_stride") or 1) / input_scale,
        decoder="sleap-classes" if identity else "sleap-bottomup",
        max_animals=animals,
        decoding=decoding,
        identity_classes=classes,
    )  # fmt: skip


def _export_description(
    onnx_file: Path,
    folder: Path,
    metadata: dict[str, Any],
    graph: tuple[str, tuple[Any, ...], str, tuple[str, ...]],
    keypoints: tuple[str, ...],
    edges: tuple[tuple[int, int], ...],
    channels: int,
    size: tuple[int, int],
    **kind: Any,
) -> ModelDescription:
    """Describe what every sleap-nn export shares (uint8 pixels, any size); ``kind`` adds more."""
    input_name, shape, _, output_names = graph
    gray = channels == 1
    return ModelDescription(
        name=str(metadata.get("model_name") or folder.name),
        framework=FRAMEWORK,
        model_file=onnx_file,
        keypoints=keypoints,
        input_height=size[0],
        input_width=size[1],
        color_order="gray" if gray else "rgb",
        mean=(0.0,) if gray else (0.0, 0.0, 0.0),
        std=(1.0,) if gray else (1.0, 1.0, 1.0),
        # Frames are fed at their own size (any_input_size): no resize happens; "area" only
        # applies to a crop fed at a fixed size.
        resize="area",
        output_kind="coordinates",
        heatmaps_are_probabilities=False,
        input_name=input_name,
        output_names=output_names,
        batch_size=shape[0] if isinstance(shape[0], int) else None,
        # The input is uint8 whatever the weights' precision: nothing is cast to float16.
        precision="fp32",
        skeleton=tuple((keypoints[s], keypoints[d]) for s, d in edges),
        any_input_size=True,
        input_type="uint8",
        input_layout="nchw",
        normalization="in-graph",
        **kind,
    )


def _describe_single(
    onnx_file: Path,
    folder: Path,
    metadata: dict[str, Any],
    config: dict[str, Any],
    graph: tuple[str, tuple[Any, ...], str, tuple[str, ...]],
    frame_size: tuple[int, int] | None,
    export_file: Path,
) -> ModelDescription:
    """Describe a single-instance export; messages name ``export_file``, the export's graph."""
    metadata_file = folder / METADATA_FILE
    output_names = graph[3]
    try:
        keypoints = tuple(str(n) for n in metadata["node_names"])
        edges = tuple((int(s), int(d)) for s, d in metadata.get("edge_inds") or ())
        channels = int(metadata.get("input_channels") or 1)
        decoding = SleapSingleDecoding(
            input_scale=float(metadata.get("input_scale") or 1.0),
            output_stride=float(metadata.get("output_stride") or 1),
            peak_threshold=float(metadata.get("peak_threshold") or DEFAULT_PEAK_THRESHOLD),
            max_stride=_backbone_max_stride(config),
            export_graph=export_file,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"{metadata_file}: incomplete single-instance metadata (node_names): {error!r}; "
            "export the model again with `sleap-nn export`"
        ) from error
    if not keypoints:
        raise ModelError(f"{metadata_file}: node_names is empty; export the model again")
    _check_edges(metadata_file, edges, keypoints)
    edges = edges or _config_edges(config, keypoints)
    _check_outputs(onnx_file, output_names, SINGLE_OUTPUTS, "single-instance")
    _check_single_output_ranks(onnx_file)
    # Run up to the confidence maps: the exporter fixed the peak finding to the export size.
    maps_graph, maps_name = cut_single_instance(onnx_file)
    _check_input(onnx_file, metadata_file, graph, channels)
    size = _input_size(metadata_file, metadata, config, frame_size, "the training config")
    return _export_description(
        maps_graph, folder, metadata, (graph[0], graph[1], graph[2], (maps_name,)), keypoints,
        edges, channels, size,
        trained_size=_stated_trace_size(metadata, config),
        stride=decoding.grid_px,
        decoder="sleap-single",
        max_animals=1,
        decoding=decoding,
    )  # fmt: skip


def _check_single_output_ranks(onnx_file: Path) -> None:
    """Raise a ModelError unless ``peaks`` is (N, K, 2) and ``peak_vals`` (N, K)."""
    # Other exports name their outputs so too (a bottom-up graph, several peaks per keypoint):
    # metadata that says single-instance beside such a graph is caught before the start.
    import onnx  # heavy: imported when a graph is read

    model = onnx.load(str(onnx_file), load_external_data=False)
    ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in model.graph.output}
    if ranks.get("peaks") != 3 or ranks.get("peak_vals") != 2:
        raise ModelError(
            f"{onnx_file}: a single-instance export gives peaks (N, K, 2) and peak_vals (N, K); "
            f"this graph's peaks have {ranks.get('peaks')} dimensions and peak_vals "
            f"{ranks.get('peak_vals')}: it is another model type. Export it again with "
            "`sleap-nn export`, which writes the model type it has into export_metadata.json."
        )


def _backbone_max_stride(config: dict[str, Any]) -> int | None:
    """Return the training config's backbone ``max_stride`` (UNet, ConvNeXt, Swin), or None."""
    backbones = (config.get("model_config") or {}).get("backbone_config") or {}
    if not isinstance(backbones, dict):
        return None
    for backbone in backbones.values():
        if isinstance(backbone, dict) and backbone.get("max_stride"):
            return int(backbone["max_stride"])
    return None


def _describe_topdown(
    onnx_file: Path,
    folder: Path,
    metadata: dict[str, Any],
    stages: dict[str, dict[str, Any]],
    graph: tuple[str, tuple[Any, ...], str, tuple[str, ...]],
    frame_size: tuple[int, int] | None,
    model_type: str,
) -> ModelDescription:
    """Describe a top-down export (both stages in one graph), with or without classes."""
    metadata_file = folder / METADATA_FILE
    output_names = graph[3]
    centroid_config = stages[STAGE_CONFIG_FILES[0]]
    instance_config = stages[STAGE_CONFIG_FILES[1]] or stages[STAGE_CONFIG_FILES[2]]
    try:
        keypoints = tuple(str(n) for n in metadata["node_names"])
        edges = tuple((int(s), int(d)) for s, d in metadata.get("edge_inds") or ())
        crop = metadata["crop_size"]
        crop_size = (int(crop[0]), int(crop[1])) if isinstance(crop, list) else (int(crop),) * 2
        slots = int(metadata["max_instances"])
        channels = int(metadata.get("input_channels") or 1)
        centroid_scale = float(metadata.get("input_scale") or 1.0)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ModelError(
            f"{metadata_file}: incomplete top-down metadata (node_names, crop_size, "
            f"max_instances): {error!r}; export the model again with `sleap-nn export`"
        ) from error
    _check_edges(metadata_file, edges, keypoints)
    if not edges:  # the instance model's labels' skeleton, for drawing
        edges = _config_edges(instance_config, keypoints)
    identity = model_type == IDENTITY_TOPDOWN
    _check_outputs(
        onnx_file, output_names, TOPDOWN_CLASS_OUTPUTS if identity else TOPDOWN_OUTPUTS,
        "top-down identity" if identity else "top-down",
    )  # fmt: skip
    _check_input(onnx_file, metadata_file, graph, channels)
    size = _input_size(
        metadata_file, metadata, centroid_config, frame_size, "the centroid model's training config"
    )
    classes = _class_names(metadata_file, metadata) if identity else ()
    instance_preprocessing = (instance_config.get("data_config") or {}).get("preprocessing") or {}
    decoding = SleapTopDownDecoding(
        crop_size=crop_size,
        max_instances=slots,
        centroid_input_scale=centroid_scale,
        instance_input_scale=float(instance_preprocessing.get("scale") or 1.0),
        anchor_part=metadata.get("anchor_part"),
        class_names=classes,
        instance_stride=float(metadata.get("output_stride") or 1)
        / float(instance_preprocessing.get("scale") or 1.0),
        peak_threshold=float(metadata.get("peak_threshold") or DEFAULT_PEAK_THRESHOLD),
    )
    return _export_description(
        onnx_file, folder, metadata, graph, keypoints, edges, channels, size,
        trained_size=_stated_trace_size(metadata, centroid_config),
        stride=float(metadata.get("output_stride") or 1) / decoding.instance_input_scale,
        decoder="sleap-topdown",
        max_animals=len(classes) if identity else min(slots, DEFAULT_MAX_ANIMALS),
        decoding=decoding,
        identity_classes=classes,
    )  # fmt: skip


def _two_stages(description: ModelDescription, export_file: Path) -> ModelDescription:
    """Return the same top-down model run as two stages (centroid graph, then instance graph)."""
    decoding = description.decoding
    assert isinstance(decoding, SleapTopDownDecoding)
    cut = split_topdown(Path(description.model_file), bool(decoding.class_names))
    return dataclasses.replace(
        description,
        model_file=cut.centroid_graph,
        output_names=CENTROID_OUTPUTS,
        decoding=dataclasses.replace(
            decoding,
            instance_graph=cut.instance_graph,
            crops_name=cut.crops_name,
            instance_outputs=cut.instance_outputs,
            export_graph=export_file,
        ),
    )


def _check_outputs(
    onnx_file: Path,
    output_names: tuple[str, ...],
    expected: tuple[str, ...],
    identity: bool | str,
) -> None:
    """Raise a ModelError unless the graph has every output its model type needs."""
    missing = [n for n in expected if n not in output_names]
    if missing:
        if isinstance(identity, str):
            kind = identity
        else:
            kind = "bottom-up identity" if identity else "bottom-up"
        raise ModelError(
            f"{onnx_file}: a {kind} export outputs {', '.join(expected)}; this graph has "
            f"{', '.join(output_names)} (missing {', '.join(missing)}). Export it again with "
            "sleap-nn 0.3 or later."
        )


def _check_input(
    onnx_file: Path,
    metadata_file: Path,
    graph: tuple[str, tuple[Any, ...], str, tuple[str, ...]],
    channels: int,
) -> None:
    """Raise a ModelError unless the graph takes uint8 (N, C, H, W) of the metadata's channels."""
    input_name, shape, input_type, _ = graph
    if input_type != "UINT8" or len(shape) != 4 or shape[1] not in (1, 3, None):
        raise ModelError(
            f"{onnx_file}: input {input_name!r} is {input_type} {shape}; expected uint8 "
            "(batch, channels, height, width) as sleap-nn exports"
        )
    if isinstance(shape[1], int) and shape[1] != channels:
        raise ModelError(
            f"{onnx_file}: the graph takes {shape[1]} channels but {metadata_file} says "
            f"input_channels {channels}"
        )


def _config_edges(
    config: dict[str, Any], keypoints: tuple[str, ...]
) -> tuple[tuple[int, int], ...]:
    """Return the edges of the training labels' first skeleton (names in ``keypoints``), or ()."""
    skeletons = (config.get("data_config") or {}).get("skeletons") or []
    if not isinstance(skeletons, list) or not skeletons or not isinstance(skeletons[0], dict):
        return ()
    edges = []
    for edge in skeletons[0].get("edges") or []:
        try:
            names = (str(edge["source"]["name"]), str(edge["destination"]["name"]))
        except (KeyError, TypeError):
            continue
        if names[0] in keypoints and names[1] in keypoints:
            edges.append((keypoints.index(names[0]), keypoints.index(names[1])))
    return tuple(edges)


def _class_names(metadata_file: Path, metadata: dict[str, Any]) -> tuple[str, ...]:
    """Return an identity model's classes (``class_names``, checked against ``n_classes``)."""
    names = metadata.get("class_names") or ()
    if not isinstance(names, list | tuple) or not names:
        raise ModelError(
            f"{metadata_file}: an identity model without class_names; export it again with "
            "`sleap-nn export` from the trained model folder (its training_config.yaml names "
            "the classes)"
        )
    classes = tuple(str(name) for name in names)
    count = metadata.get("n_classes")
    if count is not None and int(count) != len(classes):
        raise ModelError(
            f"{metadata_file}: n_classes {count} but {len(classes)} class_names {classes}"
        )
    if len(set(classes)) != len(classes):
        raise ModelError(f"{metadata_file}: class names repeat: {classes}")
    return classes


# -- for deeplabstream-inspect (through SleapExport, below)
# ------------------------------


def _metadata_of(description: ModelDescription) -> dict[str, Any]:
    """Return the export metadata beside the description's graph ({} when unreadable)."""
    graph = Path(description.model_file)
    decoding = description.decoding
    if isinstance(decoding, SleapTopDownDecoding | SleapSingleDecoding) and decoding.export_graph:
        graph = decoding.export_graph  # the graph run is a part of it, in the cache
    try:
        return read_metadata(graph.parent / METADATA_FILE)
    except ModelError:
        return {}


def framework_text(description: ModelDescription) -> str:
    """Return the sleap-nn version the export names, in words."""
    version = _metadata_of(description).get("sleap_nn_version", "?")
    return f"sleap-nn {version} ONNX export"


def network_text(description: ModelDescription) -> str:
    """Return the model type, backbone and skeleton, in words."""
    metadata = _metadata_of(description)
    backbone = metadata.get("backbone") or "?"
    edges = ", ".join(f"{a}->{b}" for a, b in description.skeleton)
    if isinstance(description.decoding, SleapTopDownDecoding):
        stages = _topdown_text(description.decoding, backbone)
        return f"{stages}; skeleton {len(description.skeleton)} edges: {edges}"
    if isinstance(description.decoding, SleapSingleDecoding):
        return (
            f"single-instance model (confidence maps, one animal), backbone {backbone}, input "
            f"scale {description.decoding.input_scale:g}, output stride "
            f"{description.decoding.output_stride:g}; sleap-nn's graph run up to its maps "
            f"({description.model_file}); skeleton {len(description.skeleton)} edges: {edges}"
        )
    kind = (
        f"bottom-up identity model (confidence maps + class maps), classes "
        f"{', '.join(description.identity_classes)}"
        if description.identity_classes
        else "bottom-up multi-animal model (confidence maps + part-affinity fields)"
    )
    return (
        f"{kind}, backbone {backbone}, input scale {metadata.get('input_scale', '?')}; "
        f"skeleton {len(description.skeleton)} edges: {edges}"
    )


def _topdown_text(decoding: SleapTopDownDecoding, backbone: str) -> str:
    """Return a top-down model's two stages, in words."""
    kind = "top-down identity model" if decoding.class_names else "top-down model"
    anchor = decoding.anchor_part or "the centre of the keypoints"
    crop_h, crop_w = decoding.crop_size
    where = (
        f"sleap-nn's graph {decoding.export_graph} cut into 2 stages run apart (the instance "
        f"stage: {decoding.instance_graph})"
        if decoding.two_stages
        else "2 stages in sleap-nn's one graph"
    )
    return (
        f"{kind}, {where}: (1) centroid model on the frame scaled by "
        f"{decoding.centroid_input_scale:g} (one point per animal: {anchor}), up to "
        f"{decoding.max_instances} animals; (2) crops of {crop_w}x{crop_h} frame pixels around "
        f"each {'valid ' if decoding.two_stages else ''}centroid -> centered-instance model "
        f"(input {crop_w}x{crop_h} scaled by "
        f"{decoding.instance_input_scale:g})"
        + (" with class vectors" if decoding.class_names else "")
        + f"; backbone {backbone}"
    )


def decoding_text(description: ModelDescription) -> str:
    """Return the grouping settings and the animals kept per frame, in words."""
    decoding = description.decoding
    if isinstance(decoding, SleapSingleDecoding):
        return (
            f"each keypoint's highest confidence-map cell on the host, by the graph's rule (no "
            f"sub-pixel refinement: points on a {decoding.grid_px:g}-pixel grid of the frame; "
            f"below peak_threshold {decoding.peak_threshold:g} not found); one animal per frame"
        )
    if isinstance(decoding, SleapTopDownDecoding):
        where = (
            "centroids in the first graph; the crops and each keypoint's highest point on the "
            "host, the instance graph between them"
            if decoding.two_stages
            else "centroids, crops and keypoints in graph"
        )
        if decoding.class_names:
            return (
                f"{where}; sleap-nn's class assignment on the "
                "host (softmax of each animal's class logits, Hungarian matching); one animal "
                f"per class, {description.max_animals} per frame: "
                + ", ".join(
                    f"animal{i} = {name}" for i, name in enumerate(decoding.class_names, start=1)
                )
                + " ([Pose] MAX_ANIMALS does not apply)"
            )
        return (
            f"{where}; the animals in decreasing centroid "
            f"confidence, max animals {description.max_animals} per frame ([Pose] MAX_ANIMALS; "
            f"the graph finds at most {decoding.max_instances})"
        )
    if isinstance(decoding, SleapClassDecoding):
        return (
            f"peaks and class values in graph; sleap-nn's class assignment on the host "
            f"(peak_threshold {decoding.peak_threshold:g}); one animal per class, "
            f"{description.max_animals} per frame: "
            + ", ".join(
                f"animal{i} = {name}" for i, name in enumerate(decoding.class_names, start=1)
            )
            + " ([Pose] MAX_ANIMALS does not apply)"
        )
    settings = ""
    if isinstance(decoding, SleapDecoding):
        settings = (
            f" (min_line_scores {decoding.min_line_scores:g}, min_instance_peaks "
            f"{decoding.min_instance_peaks:g}, points / {decoding.input_scale:g})"
        )
    return (
        f"peaks and line scores in graph; sleap-nn's grouping on the host{settings}; "
        f"max animals {description.max_animals} per frame ([Pose] MAX_ANIMALS)"
    )


# --- the format ---------------------------------------------------------------------------------


class SleapExport(ModelFormat):
    """A sleap-nn ONNX export: a folder with ``export_metadata.json`` and ``model.onnx``, or it."""

    name = "sleap-nn"

    def recognises(self, path: Path) -> bool:
        """Return True for a sleap-nn export folder, or an .onnx file inside one."""
        return is_export_folder(path)

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read the export's metadata and graph (bottom-up or top-down, classes or not)."""
        return load_sleap(path, frame_size)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a model loaded from a sleap-nn export."""
        return description.framework == "sleap-nn"

    def input_multiple(self, description: ModelDescription) -> int | None:
        """Return a single-instance model's down-sampling in frame pixels (None: unknown)."""
        decoding = description.decoding
        if isinstance(decoding, SleapSingleDecoding) and decoding.max_stride:
            return math.ceil(decoding.max_stride / decoding.input_scale)
        return None

    def model_text(self, description: ModelDescription) -> str:
        """Return the export's graph (the graph run is a part or a rewrite of it, in the cache)."""
        decoding = description.decoding
        if isinstance(decoding, SleapTopDownDecoding | SleapSingleDecoding):
            return str(decoding.export_graph or description.model_file)
        return str(description.model_file)

    def framework_text(self, description: ModelDescription) -> str:
        """Return the sleap-nn version the export names."""
        return framework_text(description)

    def network_text(self, description: ModelDescription) -> str:
        """Return the model type, backbone and skeleton."""
        return network_text(description)

    def decoding_text(self, description: ModelDescription) -> str:
        """Return sleap-nn's grouping settings and the animals kept per frame."""
        return decoding_text(description)
