"""Lightning Pose models exported with ``litpose export <model dir> --runtime onnx``.

Design: docs/pose-internals.md, "pose.formats.lightning".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, Precision

EXPORT_FOLDER = "exports_onnx"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class _GraphInfo:
    """What the loader needs from an ONNX graph, read without its weights."""

    input_name: str
    input_shape: tuple[int | str | None, ...]
    input_type: str
    output_names: tuple[str, ...]
    output_shape: tuple[int | str | None, ...]


def load_lightning_pose(path: str | Path) -> ModelDescription:
    """Describe a Lightning Pose ONNX export (its model folder, or one ``exports_onnx/*.onnx``).

    Raises ModelError for missing files or config, an ambiguous graph, missing external weights, or
    config and graph disagreeing.
    """
    onnx_file, config_file = _locate(Path(path))
    config = read_config(config_file)
    graph = read_graph(onnx_file)
    return describe_model(onnx_file, config_file, config, graph)


def _locate(path: Path) -> tuple[Path, Path]:
    """Find the ONNX file and the config file that ``path`` names."""
    if not path.exists():
        raise ModelError(f"{path}: no such Lightning Pose model folder or file")
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: not an .onnx file; name the model folder or its .onnx")
        folder = path.parent.parent if path.parent.name == EXPORT_FOLDER else path.parent
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            raise ModelError(f"{path}: no {CONFIG_FILE} in {folder} (the model folder)")
        return path, config_file
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise ModelError(f"{path}: no {CONFIG_FILE}; is this a Lightning Pose model folder?")
    exports = path / EXPORT_FOLDER
    if not exports.is_dir():
        raise ModelError(
            f"{path}: no {EXPORT_FOLDER}/ folder; export the model first with "
            f"`litpose export {path} --runtime onnx`"
        )
    return _choose_graph(exports), config_file


def _choose_graph(exports: Path) -> Path:
    """Choose the fp32 graph when there is one, else the only graph."""
    graphs = sorted(exports.glob("*.onnx"))
    if not graphs:
        raise ModelError(f"{exports}: no .onnx file; export with `litpose export --runtime onnx`")
    if len(graphs) == 1:
        return graphs[0]
    fp32 = [g for g in graphs if g.stem.endswith("fp32")]
    if len(fp32) == 1:
        return fp32[0]
    names = ", ".join(g.name for g in graphs)
    raise ModelError(f"{exports}: several .onnx files ({names}); name the one to use")


def read_config(config_file: Path) -> dict[str, Any]:
    """Lightning Pose's config as a dict."""
    import yaml  # imported on use: only configs of Lightning Pose need it

    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ModelError(f"{config_file}: cannot read it: {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise ModelError(f"{config_file}: no `data` section; not a Lightning Pose config")
    return config


def read_graph(onnx_file: Path) -> _GraphInfo:
    """Read the inputs and outputs of an ONNX graph; check that its external weights are there."""
    import onnx  # heavy: imported when a graph is read
    from onnx.external_data_helper import uses_external_data

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ... on bad files
        raise ModelError(f"{onnx_file}: not a readable ONNX file: {error}") from error
    missing = set()
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            location = next(e.value for e in tensor.external_data if e.key == "location")
            if not (onnx_file.parent / location).is_file():
                missing.add(location)
    if missing:
        raise ModelError(
            f"{onnx_file}: its weights file {', '.join(sorted(missing))} is missing; keep the "
            f".onnx.data file that `litpose export` wrote beside the .onnx"
        )
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or not model.graph.output:
        raise ModelError(f"{onnx_file}: expected one image input and a heatmap output")
    first, output = inputs[0], model.graph.output[0]
    return _GraphInfo(
        input_name=first.name,
        input_shape=_shape(first),
        input_type=onnx.TensorProto.DataType.Name(first.type.tensor_type.elem_type),
        output_names=tuple(o.name for o in model.graph.output),
        output_shape=_shape(output),
    )


def _shape(value_info: Any) -> tuple[int | str | None, ...]:
    """Dimensions of a graph input or output: ints, names of symbolic dims, or None."""
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or None)
    return tuple(dims)


def describe_model(
    onnx_file: Path, config_file: Path, config: dict[str, Any], graph: _GraphInfo
) -> ModelDescription:
    """Cross-check config and graph, and build the description."""
    data = config["data"]
    try:
        keypoints = tuple(str(k) for k in data["keypoint_names"])
        height = int(data["image_resize_dims"]["height"])
        width = int(data["image_resize_dims"]["width"])
        downsample_factor = int(data.get("downsample_factor", 2))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{config_file}: incomplete `data` section: {error!r}") from error
    model_type = str(config.get("model", {}).get("model_type", "heatmap"))
    if model_type == "heatmap_mhcrnn":
        checkpoints = sorted((config_file.parent / "tb_logs").rglob("*.ckpt"))
        where = f" ({checkpoints[0]})" if checkpoints else ""
        raise ModelError(
            f"{onnx_file}: the ONNX export of a Lightning Pose context model (heatmap_mhcrnn) "
            f"is not run (its one graph takes five frames and recomputes each frame's "
            f"backbone five times); set MODEL_PATH to the model's checkpoint{where} instead: "
            "it is rebuilt and run as two graphs, each frame's features kept"
        )
    if model_type != "heatmap":
        raise ModelError(
            f"{config_file}: model_type {model_type!r} is not supported; only single-frame "
            f"`heatmap` models are"
        )
    shape = graph.input_shape
    if len(shape) != 4:
        raise ModelError(
            f"{onnx_file}: input {graph.input_name!r} has rank {len(shape)} {shape}; expected "
            f"4 (batch, 3, height, width)"
        )
    if shape[1] != 3:
        raise ModelError(f"{onnx_file}: input has {shape[1]} channels, expected 3 (RGB)")
    if isinstance(shape[2], int) and isinstance(shape[3], int) and shape[2:] != (height, width):
        raise ModelError(
            f"{onnx_file}: input is {shape[3]}x{shape[2]} but {config_file} says "
            f"image_resize_dims {width}x{height}"
        )
    out = graph.output_shape
    if len(out) != 4:
        raise ModelError(f"{onnx_file}: output has shape {out}, expected (batch, K, h, w) heatmaps")
    if out[1] != len(keypoints):
        raise ModelError(
            f"{onnx_file}: the graph outputs {out[1]} heatmaps but {config_file} names "
            f"{len(keypoints)} keypoints"
        )
    precisions: dict[str, Literal["fp32", "fp16"]] = {"FLOAT": "fp32", "FLOAT16": "fp16"}
    precision = precisions.get(graph.input_type)
    if precision is None:
        raise ModelError(f"{onnx_file}: input type {graph.input_type}, expected FLOAT or FLOAT16")
    stride = height / out[2] if isinstance(out[2], int) else 2.0**downsample_factor
    return lightning_description(
        config,
        config_file,
        onnx_file,
        keypoints,
        (height, width),
        downsample_factor,
        stride=stride,
        input_name=graph.input_name,
        output_names=graph.output_names[:1],
        batch_size=shape[0] if isinstance(shape[0], int) else _vit_export_batch(config),
        precision=precision,
    )


def lightning_description(
    config: dict[str, Any],
    config_file: Path,
    model_file: Path,
    keypoints: tuple[str, ...],
    size: tuple[int, int],
    downsample_factor: int,
    **graph: Any,
) -> ModelDescription:
    """Describe a Lightning Pose graph: the video path's pre-processing, its heatmap decoding."""
    height, width = size
    return ModelDescription(
        name=str(config.get("model", {}).get("model_name") or config_file.parent.name),
        framework="lightning-pose",
        model_file=model_file,
        keypoints=keypoints,
        input_height=height,
        input_width=width,
        color_order="rgb",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize="bilinear-float",
        output_kind="heatmaps",
        decoder="lightning-pose",
        heatmaps_are_probabilities=True,
        downsample_factor=downsample_factor,
        trained_size=_labelled_frame_size(config["data"]),
        **graph,
    )


def _vit_export_batch(config: dict[str, Any]) -> int | None:
    """Return 1 for a ViT model's export, whose graph runs one image at a time, else None."""
    # Lightning Pose 2.4.3 exports its ViT backbones with a symbolic batch, but a reshape keeps the
    # traced batch of 1: ONNX Runtime (and litpose predict --runtime onnx) fails on 2 images.
    backbone = str(config.get("model", {}).get("backbone", ""))
    return 1 if backbone.startswith("vit") else None


def _labelled_frame_size(data: dict[str, Any]) -> tuple[int, int] | None:
    """Return ``data.image_orig_dims`` (the labelled frames' height, width), or None."""
    dims = data.get("image_orig_dims") or {}
    try:
        return int(dims["height"]), int(dims["width"])
    except (KeyError, TypeError, ValueError):
        return None


# --- the format ---------------------------------------------------------------------------------


def lightning_decoding_text(description: ModelDescription) -> str:
    """Return Lightning Pose's decoding and its downsample factor, in words."""
    return (
        "Lightning Pose's (upsample, soft-argmax), downsample_factor "
        f"{description.downsample_factor}"
    )


class LightningPoseExport(ModelFormat):
    """A Lightning Pose model folder with ``exports_onnx/``, or an ``.onnx`` inside it."""

    name = "Lightning Pose export"

    def recognises(self, path: Path) -> bool:
        """Return True for a folder with config.yaml and exports_onnx/, or an export's .onnx."""
        if path.is_dir():
            return (path / CONFIG_FILE).is_file() and (path / EXPORT_FOLDER).is_dir()
        return (
            path.suffix == ".onnx"
            and path.parent.name == EXPORT_FOLDER
            and (path.parent.parent / CONFIG_FILE).is_file()
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read the export's config and graph (it picks its precision by the file named)."""
        return load_lightning_pose(path)

    def pytorch_problem(self, path: Path) -> str | None:
        """Say that the export is a graph; name the checkpoint that pytorch can run instead."""
        folder = path if path.is_dir() else path.parent.parent
        checkpoints = sorted((folder / "tb_logs").rglob("*.ckpt")) if folder.is_dir() else []
        advice = (
            f", or set MODEL_PATH to its checkpoint {checkpoints[0]} to run the network rebuilt "
            "from it"
            if checkpoints
            else ""
        )
        return f"{super().pytorch_problem(path)}{advice}"

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a Lightning Pose model that was not converted here."""
        return description.framework == "lightning-pose" and description.source_file is None

    def framework_text(self, description: ModelDescription) -> str:
        """Return ``Lightning Pose ONNX export``."""
        return "Lightning Pose ONNX export"

    def network_text(self, description: ModelDescription) -> str:
        """Return the backbone the export's config names, and the graph's outputs."""
        config_file = description.model_file.parent.parent / CONFIG_FILE  # <model>/exports_onnx/
        model = read_config(config_file).get("model", {}) if config_file.is_file() else {}
        backbone = model.get("backbone", "not named") if isinstance(model, dict) else "not named"
        return f"ONNX graph, backbone {backbone}, outputs {', '.join(description.output_names)}"

    def decoding_text(self, description: ModelDescription) -> str:
        """Return Lightning Pose's decoding and its downsample factor."""
        return lightning_decoding_text(description)
