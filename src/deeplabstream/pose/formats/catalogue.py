"""The model formats :func:`pose.loading.load_model` reads: one small class per format, one list.

A format says how to recognise its path, how to load it into a
:class:`~pose.model.ModelDescription`, how to check it cheaply, and (for ``python -m
deeplabstream.pose.inspect``) how to describe what it loaded. Formats that are rebuilt from another
framework's file and converted to ONNX here (``converted``) also rebuild their PyTorch network
and compare it with the graph. A new format is one class here and one entry in
:data:`MODEL_FORMATS`; the framework modules are imported only when their format is used.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from deeplabstream.pose.model import ModelDescription, ModelError

Precision = Literal["fp32", "fp16"]

DEEPLABCUT_EXPORT_ADVICE = (
    "not a readable DeepLabCut 3.0 export",
    "This program reads only DeepLabCut 3.0 exports it can load safely (weights and settings, "
    "no code): export the model again with deeplabcut.export_model and set MODEL_PATH (or "
    "--model) to the .pt file it writes.",
)
LIGHTNING_CHECKPOINT_ADVICE = (
    "not a readable Lightning checkpoint",
    "This program reads only checkpoints it can load safely (weights and settings, no code): "
    "point MODEL_PATH (or --model) at the .ckpt file Lightning Pose wrote under tb_logs/, or "
    "at its model folder.",
)


def unreadable(path: Path, advice: tuple[str, str], reason: str) -> ModelError:
    """Return the error for a model file that cannot be read: what it is not, why, what to do."""
    what, to_do = advice
    return ModelError(f"{path}: {what} ({reason}). {to_do}")


def check_torch_file(path: Path, advice: tuple[str, str]) -> None:
    """Raise a ModelError unless ``path`` looks like a file of ``torch.save``."""
    try:
        if path.stat().st_size == 0:
            raise unreadable(path, advice, "the file is empty")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any(name.rsplit("/", 1)[-1] == "data.pkl" for name in archive.namelist()):
                    return
        else:
            with path.open("rb") as file:
                if file.read(1) == b"\x80":  # torch's legacy format starts with a pickle
                    return
    except (OSError, zipfile.BadZipFile) as error:
        raise unreadable(path, advice, f"cannot be read: {error}") from error
    raise unreadable(path, advice, "not a file written by torch.save")


class ModelFormat:
    """One kind of model on disk. Subclasses write :meth:`recognises` and :meth:`load`."""

    #: Short name for messages.
    name: ClassVar[str]
    #: Rebuilt from another framework's file and converted to ONNX here: ``precision`` applies,
    #: the description has a ``source_file``, and :meth:`build_module` rebuilds the network.
    converted: ClassVar[bool] = False

    def recognises(self, path: Path) -> bool:
        """Return True when ``path`` (an existing file or folder) is a model of this format."""
        raise NotImplementedError

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Return the description of the model at ``path`` (see :func:`pose.loading.load_model`)."""
        raise NotImplementedError

    def check(self, path: Path) -> None:
        """Check cheaply that ``path`` loads; by default by loading it (no conversion here)."""
        self.load(path, None, "fp32")

    def describes(self, description: ModelDescription) -> bool:
        """Return True when ``description`` was loaded by this format."""
        raise NotImplementedError

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return the model's keypoint names without converting or running it.

        By default from :meth:`load` (formats whose description is a small file); formats
        converted here read the names from their file's config instead.
        """
        return self.load(path, None, "fp32").keypoints

    # -- for [Pose] BACKEND = pytorch ------------------------------------------------------

    def pytorch_problem(self, path: Path) -> str | None:
        """Return why the pytorch backend cannot run the model at ``path``; None when it can.

        By default it cannot: the format is an ONNX graph, and the pytorch backend runs
        TorchScript files and networks rebuilt from their framework's file, never a graph.
        Formats converted here are rebuilt from their file, so it can.
        """
        if self.converted:
            return None
        return (
            f"{path} is a {self.name} model, an ONNX graph only, which [Pose] BACKEND = pytorch "
            "cannot run: set BACKEND = onnxruntime (or openvino)"
        )

    def torchscript_file(self, description: ModelDescription) -> Path | None:
        """Return the TorchScript file the pytorch backend loads for ``description``, if any."""
        return None

    # -- for deeplabstream-inspect
    # ---------------------------------------------------------

    def framework_text(self, description: ModelDescription) -> str:
        """Return the framework and its version, in words."""
        return description.framework

    def network_text(self, description: ModelDescription) -> str:
        """Return what the network is, in words."""
        return f"ONNX graph, outputs {', '.join(description.output_names)}"

    def decoding_text(self, description: ModelDescription) -> str:
        """Return how keypoints are read from the outputs, in words."""
        return f"{description.decoder} on {description.output_kind}"

    def build_module(self, source: Path) -> Any:
        """Return the PyTorch module rebuilt from ``source`` (converted formats only)."""
        raise ModelError(f"{source}: no rebuilt network for format {self.name!r}")

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return the comparison of graph and network, and its limits at the model's precision."""
        raise ModelError(f"{description.model_file}: not a converted model (nothing to compare)")


class LightningPoseExport(ModelFormat):
    """A Lightning Pose model folder with ``exports_onnx/``, or an ``.onnx`` inside it."""

    name = "Lightning Pose export"

    def recognises(self, path: Path) -> bool:
        """Return True for a folder with config.yaml and exports_onnx/, or an export's .onnx."""
        if path.is_dir():
            return (path / "config.yaml").is_file() and (path / "exports_onnx").is_dir()
        return (
            path.suffix == ".onnx"
            and path.parent.name == "exports_onnx"
            and (path.parent.parent / "config.yaml").is_file()
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read the export's config and graph (it picks its precision by the file named)."""
        from deeplabstream.pose.formats.lightning import load_lightning_pose

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

    def decoding_text(self, description: ModelDescription) -> str:
        """Return Lightning Pose's decoding and its downsample factor."""
        return _lightning_decoding(description)


class LightningPoseCheckpoint(ModelFormat):
    """A Lightning Pose ``.ckpt``, or a model folder with one under ``tb_logs/`` and no export."""

    name = "Lightning Pose checkpoint"
    converted = True

    def recognises(self, path: Path) -> bool:
        """Return True for a .ckpt file, or a model folder with a checkpoint and no export."""
        if path.is_file():
            return path.suffix == ".ckpt"
        if LightningPoseExport().recognises(path):
            return False  # a folder with an export runs Lightning Pose's own graph
        return (
            (path / "config.yaml").is_file()
            and (path / "tb_logs").is_dir()
            and any((path / "tb_logs").rglob("*.ckpt"))
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Rebuild the network from the checkpoint and convert it (or reuse the cached graph)."""
        from deeplabstream.pose.formats.lightning_ckpt import load_lightning_checkpoint

        return load_lightning_checkpoint(path, precision)

    def check(self, path: Path) -> None:
        """Open the checkpoint and its config (the tensors mapped, not read); check its kind."""
        if path.is_file():
            check_torch_file(path, LIGHTNING_CHECKPOINT_ADVICE)  # without importing torch
        from deeplabstream.pose.formats.lightning_ckpt import check_checkpoint

        check_checkpoint(path)

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return ``data.keypoint_names`` of the model's config.yaml (the weights are not read)."""
        from deeplabstream.pose.formats.lightning_ckpt import locate, read_config

        _, config_file = locate(path)
        names = (read_config(config_file).get("data") or {}).get("keypoint_names") or ()
        return tuple(str(name) for name in names)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a Lightning Pose model converted here."""
        return description.framework == "lightning-pose" and description.source_file is not None

    def framework_text(self, description: ModelDescription) -> str:
        """Return the Lightning Pose and Lightning versions the checkpoint names."""
        checkpoint = _read_checkpoint(description)
        version = checkpoint.config.get("model", {}).get("lightning_pose_version", "?")
        return f"Lightning Pose {version} checkpoint (Lightning {checkpoint.lightning_version})"

    def network_text(self, description: ModelDescription) -> str:
        """Return the tracker's backbone and downsample factor."""
        checkpoint = _read_checkpoint(description)
        return (
            f"heatmap tracker, backbone {checkpoint.backbone}, downsample_factor "
            f"{checkpoint.downsample_factor}"
        )

    def decoding_text(self, description: ModelDescription) -> str:
        """Return Lightning Pose's decoding and its downsample factor."""
        return _lightning_decoding(description)

    def build_module(self, source: Path) -> Any:
        """Return the heatmap tracker rebuilt from the checkpoint."""
        from deeplabstream.pose.formats import lightning_ckpt

        return lightning_ckpt.build_module(lightning_ckpt.read_checkpoint(source))

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return Lightning Pose's comparison and the limits at the model's precision."""
        from deeplabstream.pose.formats import lightning_ckpt

        fp32 = description.precision == "fp32"
        limits = lightning_ckpt.TOLERANCES if fp32 else lightning_ckpt.FP16_TOLERANCES
        return lightning_ckpt.compare_outputs(description.downsample_factor), limits


class OwnModel(ModelFormat):
    """The project's own format: a folder with ``model.json``, that file, or a file beside it."""

    name = "this project's model"

    def recognises(self, path: Path) -> bool:
        """Return True for a folder with model.json, that file, or a file beside it."""
        if path.is_dir():
            return (path / "model.json").is_file()
        return path.name == "model.json" or (path.parent / "model.json").is_file()

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read model.json and check the graph it names."""
        from deeplabstream.pose.formats.own_model import load_own_model

        return load_own_model(path)

    def pytorch_problem(self, path: Path) -> str | None:
        """None when model.json names a TorchScript file that is there; else what to do."""
        from deeplabstream.pose.formats.own_model import JSON_NAME, model_folder, torchscript_file

        if torchscript_file(path) is not None:
            return None
        folder = model_folder(path)
        return (
            f"{folder} has no TorchScript file (its {JSON_NAME} names none in "
            "files.torchscript, or the file is missing), and [Pose] BACKEND = pytorch runs a "
            "model of this project from its TorchScript file: set BACKEND = onnxruntime (or "
            "openvino), or train the model again without --no-torchscript so that it gets "
            "model.pt"
        )

    def torchscript_file(self, description: ModelDescription) -> Path | None:
        """Return the model folder's TorchScript file (``files.torchscript``), if it has one."""
        from deeplabstream.pose.formats.own_model import JSON_NAME, torchscript_file

        if not (Path(description.model_file).parent / JSON_NAME).is_file():
            return None  # a description made in code around a bare file
        return torchscript_file(description.model_file)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a model described by a model.json."""
        from deeplabstream.pose.formats.own_model import FRAMEWORK

        return description.framework == FRAMEWORK

    def framework_text(self, description: ModelDescription) -> str:
        """Return the framework named in model.json."""
        return f"{description.framework} (this project's format)"


class DeepLabCutExport(ModelFormat):
    """A DeepLabCut 3.0 export (``.pt`` / ``.pth``), not part of a model of this project."""

    name = "DeepLabCut 3.0 export"
    converted = True

    def recognises(self, path: Path) -> bool:
        """Return True for a .pt or .pth file without a model.json beside it."""
        return (
            path.is_file()
            and path.suffix in (".pt", ".pth")
            and not (path.parent / "model.json").is_file()
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Rebuild the network from the export and convert it (or reuse the cached graph)."""
        from deeplabstream.pose.formats.dlc3 import load_deeplabcut

        return load_deeplabcut(path, frame_size, precision)

    def check(self, path: Path) -> None:
        """Open the export (its tensors mapped, not read) and check what it holds."""
        check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)  # without importing torch
        from deeplabstream.pose.formats.dlc3 import check_export

        check_export(path)

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return the export's ``metadata.bodyparts`` (its weights are mapped, not read)."""
        from deeplabstream.pose.formats.dlc3 import read_bodyparts

        return read_bodyparts(path)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a DeepLabCut model converted here."""
        return description.framework == "deeplabcut" and description.source_file is not None

    def framework_text(self, description: ModelDescription) -> str:
        """Return the DeepLabCut config version the export names."""
        from deeplabstream.pose.formats.dlc3 import read_export

        version = _source(description, read_export).config.get("config_version", "?")
        return f"DeepLabCut 3.x export (PyTorch engine, config_version {version})"

    def network_text(self, description: ModelDescription) -> str:
        """Return what the export holds, in one line."""
        from deeplabstream.pose.formats.dlc3 import describe_holding, read_export

        return describe_holding(_source(description, read_export))

    def decoding_text(self, description: ModelDescription) -> str:
        """Return DeepLabCut's decoding (in the graph) and its locref scale."""
        return (
            "DeepLabCut's argmax + location refinement "
            f"(locref_std {description.locref_std:g}), in graph"
        )

    def build_module(self, source: Path) -> Any:
        """Return the DeepLabCut network rebuilt from the export."""
        from deeplabstream.pose.formats import dlc3

        return dlc3.build_module(dlc3.read_export(source))

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return DeepLabCut's comparison and the limits at the model's precision."""
        from deeplabstream.pose.formats import dlc3

        fp32 = description.precision == "fp32"
        return dlc3.compare_outputs, dlc3.TOLERANCES if fp32 else dlc3.FP16_TOLERANCES


class SleapExport(ModelFormat):
    """A sleap-nn ONNX export: a folder with ``export_metadata.json`` and ``model.onnx``, or it."""

    name = "sleap-nn"

    def recognises(self, path: Path) -> bool:
        """Return True for a sleap-nn export folder, or an .onnx file inside one."""
        from deeplabstream.pose.formats.sleap import is_export_folder

        return is_export_folder(path)

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Read the export's metadata and graph (bottom-up models only)."""
        from deeplabstream.pose.formats.sleap import load_sleap

        return load_sleap(path, frame_size)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a model loaded from a sleap-nn export."""
        return description.framework == "sleap-nn"

    def framework_text(self, description: ModelDescription) -> str:
        """Return the sleap-nn version the export names."""
        from deeplabstream.pose.formats.sleap import framework_text

        return framework_text(description)

    def network_text(self, description: ModelDescription) -> str:
        """Return the model type, backbone and skeleton."""
        from deeplabstream.pose.formats.sleap import network_text

        return network_text(description)

    def decoding_text(self, description: ModelDescription) -> str:
        """Return sleap-nn's grouping settings and the animals kept per frame."""
        from deeplabstream.pose.formats.sleap import decoding_text

        return decoding_text(description)


def _lightning_decoding(description: ModelDescription) -> str:
    return (
        "Lightning Pose's (upsample, soft-argmax), downsample_factor "
        f"{description.downsample_factor}"
    )


def _read_checkpoint(description: ModelDescription) -> Any:
    from deeplabstream.pose.formats.lightning_ckpt import read_checkpoint

    return _source(description, read_checkpoint)


def _source(description: ModelDescription, read: Any) -> Any:
    """Read the file a converted model came from with ``read``."""
    if description.source_file is None:
        raise ModelError(f"{description.model_file}: not a converted model (no source file)")
    return read(description.source_file)


MODEL_FORMATS: tuple[ModelFormat, ...] = (
    LightningPoseExport(),
    LightningPoseCheckpoint(),
    OwnModel(),
    DeepLabCutExport(),
    SleapExport(),
)
"""Every format, in the order a path is tried (an export wins over its folder's checkpoint)."""


def format_of(path: Path) -> ModelFormat | None:
    """Return the format of the existing ``path``, or None when no format recognises it."""
    return next((f for f in MODEL_FORMATS if f.recognises(path)), None)


def format_of_description(description: ModelDescription) -> ModelFormat | None:
    """Return the format that loaded ``description``, or None for one built elsewhere."""
    return next((f for f in MODEL_FORMATS if f.describes(description)), None)
