"""SLEAP models exported by sleap-nn: ``sleap-nn export <model dir> -o <folder> --format onnx``.

An export is a folder holding ``model.onnx``, ``export_metadata.json`` (node names, edges, model
type, input scale, channels, ...) and the ``training_config.yaml`` of the model. Naming the
folder or its ``model.onnx`` loads it.

Supported: **bottom-up** multi-animal models (confidence maps + part-affinity fields). The graph
takes the frame as uint8 pixels (N, C, H, W) at any size, normalises and scales it itself, finds
the peaks and scores every candidate connection; the grouping of peaks into animals runs here
(:mod:`pose.decoding.sleap`, sleap-nn's own rules). Top-down (centroid + centered-instance),
single-instance and identity (multi-class) models are refused with a message that says so.

Identity models. sleap-nn can export a bottom-up identity model (confidence maps and **class
maps**, one map per animal identity that says whose each peak is: its
``BottomUpMultiClassONNXWrapper``), which would give identities without tracking. It is refused
here for now: no such export, with sleap-nn's own predictions to match it against, could be
made or obtained on these machines, and this project runs a framework's models only where its
outputs are shown equal to the framework's own. Identities of several animals come instead
from the tracker and the animals' looks (:mod:`pose.tracking.identities`), whatever the model.

What the description takes from where:

- keypoint names, edges, model type, input scale, channels, ``max_instances``: the metadata;
- the grouping settings sleap-nn uses by default for an export (``min_line_scores`` 0.25,
  ``min_instance_peaks`` 0), unless the metadata names others;
- the size the graph was traced at: the metadata's ``max_height`` / ``max_width``, else the
  training config's ``data_config.preprocessing`` ones, else the frame size; the inference
  worker then runs it at each frame's own size (``any_input_size``), as sleap-nn does;
- input and output names: the graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deeplabstream.pose.decoding.sleap import OUTPUTS, SleapDecoding
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, Precision

FRAMEWORK = "sleap-nn"
METADATA_FILE = "export_metadata.json"
CONFIG_FILE = "training_config.yaml"
GRAPH_FILE = "model.onnx"
#: Animals reported per frame when neither MAX_ANIMALS nor the export's max_instances says.
DEFAULT_MAX_ANIMALS = 2
#: sleap-nn's grouping defaults for an exported bottom-up model.
DEFAULT_MIN_LINE_SCORES = 0.25
DEFAULT_MIN_INSTANCE_PEAKS = 0.0

SUPPORTED = "only bottom-up models (confidence maps + part-affinity fields) are supported"
IDENTITY_MODELS = (
    "Identity models (class maps or class vectors) are not run here yet: none could be checked "
    "against sleap-nn's own predictions. Use a bottom-up model without identities: the "
    "identities of several animals then come from the tracker and the animals' looks "
    "(docs/sleap-models.md, 'Identities')."
)
_UNSUPPORTED = {
    "topdown": "a top-down model (centroid + centered-instance)",
    "centroid": "a top-down model's centroid stage",
    "centered_instance": "a top-down model's centered-instance stage",
    "single_instance": "a single-instance model",
    "multi_class_bottomup": "a bottom-up identity (multi-class) model with class maps",
    "multi_class_topdown": "a top-down identity (multi-class) model",
    "bottomup_multiclass": "a bottom-up identity (multi-class) model with class maps",
    "topdown_multiclass": "a top-down identity (multi-class) model",
}


def is_export_folder(path: Path) -> bool:
    """Return True for a sleap-nn export folder, or an ``.onnx`` file inside one.

    A folder without ``model.onnx`` (a TensorRT export) is recognised too, so that loading it
    says what is missing.
    """
    if path.is_dir():
        return (path / METADATA_FILE).is_file()
    return path.suffix == ".onnx" and (path.parent / METADATA_FILE).is_file()


def load_sleap(path: str | Path, frame_size: tuple[int, int] | None = None) -> ModelDescription:
    """Describe a sleap-nn bottom-up ONNX export.

    Parameters
    ----------
    path
        The export folder, or its ``model.onnx``.
    frame_size
        (height, width) of the frames, used as the input size when neither the metadata nor
        the training config names the size the graph was traced at.

    Returns
    -------
    ModelDescription
        ``framework="sleap-nn"``, ``decoder="sleap-bottomup"``, uint8 input normalised in the
        graph, ``decoding`` a :class:`~pose.decoding.sleap.SleapDecoding`.

    Raises
    ------
    ModelError
        When files are missing or unreadable, the model type is not bottom-up, or metadata and
        graph disagree.
    """
    onnx_file, folder = _locate(Path(path))
    metadata = read_metadata(folder / METADATA_FILE)
    config = _read_config(folder / CONFIG_FILE)
    _check_model_type(folder, metadata, config)
    graph = _read_graph(onnx_file)
    return _describe(onnx_file, folder, metadata, config, graph, frame_size)


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


def _check_model_type(folder: Path, metadata: dict[str, Any], config: dict[str, Any]) -> None:
    """Raise a ModelError unless the export is a bottom-up model without identities."""
    model_type = str(metadata.get("model_type") or "").lower()
    heads = _heads(config)
    if not model_type:
        model_type = "topdown" if {"centroid", "centered_instance"} & set(heads) else ""
        model_type = model_type or (heads[0] if len(heads) == 1 else "")
    unsupported = [h for h in heads if h in _UNSUPPORTED]
    if model_type in _UNSUPPORTED or unsupported:
        found = _UNSUPPORTED.get(model_type) or _UNSUPPORTED[unsupported[0]]
        hint = f" {IDENTITY_MODELS}" if "identity" in found else ""
        raise ModelError(
            f"{folder}: {found} (model_type {model_type!r}, heads {', '.join(heads) or '?'}); "
            f"{SUPPORTED}. Run it in SLEAP, or train a bottom-up model (`--pipeline bottomup`)."
            f"{hint}"
        )
    if metadata.get("n_classes") or metadata.get("class_names"):
        raise ModelError(
            f"{folder}: an identity (multi-class) model ({metadata.get('n_classes')} classes); "
            f"{SUPPORTED}, without identities. {IDENTITY_MODELS}"
        )
    if model_type != "bottomup":
        raise ModelError(
            f"{folder}: model_type {model_type or 'missing'!r} in {METADATA_FILE}; {SUPPORTED}"
        )


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
    """Return the size the graph was exported for (see the module docstring), or None."""
    return _stated_trace_size(metadata, config) or frame_size


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
) -> ModelDescription:
    """Cross-check metadata and graph, and build the description."""
    metadata_file = folder / METADATA_FILE
    input_name, shape, input_type, output_names = graph
    try:
        keypoints = tuple(str(n) for n in metadata["node_names"])
        edges = tuple((int(s), int(d)) for s, d in metadata["edge_inds"])
        input_scale = float(metadata.get("input_scale") or 1.0)
        channels = int(metadata.get("input_channels") or 1)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{metadata_file}: incomplete metadata: {error!r}") from error
    if any(not (0 <= i < len(keypoints)) for edge in edges for i in edge):
        raise ModelError(f"{metadata_file}: edge_inds name nodes beyond the {len(keypoints)} nodes")
    missing = [n for n in OUTPUTS if n not in output_names]
    if missing:
        raise ModelError(
            f"{onnx_file}: a bottom-up export outputs {', '.join(OUTPUTS)}; this graph has "
            f"{', '.join(output_names)} (missing {', '.join(missing)}). Export it again with "
            "sleap-nn 0.3 or later."
        )
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
    size = _trace_size(metadata, config, frame_size)
    if size is None:
        raise ModelError(
            f"{metadata_file}: no input size (max_height/max_width) in the metadata or the "
            "training config; give the frame size"
        )
    max_instances = metadata.get("max_instances")
    decoding = SleapDecoding(
        edges=edges,
        input_scale=input_scale,
        min_line_scores=float(metadata.get("min_line_scores", DEFAULT_MIN_LINE_SCORES)),
        min_instance_peaks=float(metadata.get("min_instance_peaks", DEFAULT_MIN_INSTANCE_PEAKS)),
    )
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
        stride=float(metadata.get("output_stride") or 1) / input_scale,
        decoder="sleap-bottomup",
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
        max_animals=int(max_instances) if max_instances else DEFAULT_MAX_ANIMALS,
        decoding=decoding,
        trained_size=_stated_trace_size(metadata, config),
    )


# -- for deeplabstream-inspect (through SleapExport, below)
# ------------------------------


def _metadata_of(description: ModelDescription) -> dict[str, Any]:
    """Return the export metadata beside the description's graph ({} when unreadable)."""
    try:
        return read_metadata(Path(description.model_file).parent / METADATA_FILE)
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
    return (
        f"bottom-up multi-animal model (confidence maps + part-affinity fields), backbone "
        f"{backbone}, input scale {metadata.get('input_scale', '?')}; skeleton "
        f"{len(description.skeleton)} edges: {edges}"
    )


def decoding_text(description: ModelDescription) -> str:
    """Return the grouping settings and the animals kept per frame, in words."""
    decoding = description.decoding
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
        """Read the export's metadata and graph (bottom-up models only)."""
        return load_sleap(path, frame_size)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a model loaded from a sleap-nn export."""
        return description.framework == "sleap-nn"

    def framework_text(self, description: ModelDescription) -> str:
        """Return the sleap-nn version the export names."""
        return framework_text(description)

    def network_text(self, description: ModelDescription) -> str:
        """Return the model type, backbone and skeleton."""
        return network_text(description)

    def decoding_text(self, description: ModelDescription) -> str:
        """Return sleap-nn's grouping settings and the animals kept per frame."""
        return decoding_text(description)
