"""One way in for every model: a path (or nothing, for the bundled model) -> ModelDescription.

The kind is detected from what is on disk:

- nothing: the bundled model of the simulated arena (``pose/bundled/arena``);
- a folder with ``model.json``, that file, or the ``.onnx`` beside it: the project's own format;
- a folder with ``config.yaml`` and ``exports_onnx/``, or one ``.onnx`` inside such an
  ``exports_onnx`` folder: a Lightning Pose export;
- a ``.ckpt`` file, or a Lightning Pose model folder with a checkpoint under ``tb_logs/`` and no
  export: a Lightning Pose checkpoint, rebuilt and converted to ONNX
  (:mod:`pose.lightning_ckpt`);
- a ``.pt`` / ``.pth`` file (not part of a model of this project): a DeepLabCut 3.0 export,
  rebuilt and converted to ONNX (:mod:`pose.dlc3`).

Converted graphs are cached by the hash of the files they come from (:mod:`pose.conversion`):
the first load of such a model takes seconds to tens of seconds, later loads do not.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

from pose.model import ModelDescription, ModelError

BUNDLED_MODEL = Path(__file__).resolve().parent / "bundled" / "arena"
Precision = Literal["fp32", "fp16"]


def load_model(
    path: Path | None,
    *,
    frame_size: tuple[int, int] | None = None,
    precision: Precision = "fp32",
) -> ModelDescription:
    """The description of the model at ``path`` (None: the bundled model).

    Parameters
    ----------
    path
        A model folder or file of any supported kind, or None.
    frame_size
        (height, width) of the frames the model will see. Used by models that run at any size
        (DeepLabCut's, which it runs at the frame's own size); others resize frames to their
        input size. Default for those: 640x480.
    precision
        ``fp16`` converts a DeepLabCut export or Lightning Pose checkpoint to a half-precision
        graph (a Lightning Pose export picks its precision by the ``.onnx`` file named).

    Raises
    ------
    ModelError
        When nothing usable is there; the message says what was found and what is expected.
    """
    path = BUNDLED_MODEL if path is None else Path(path).expanduser()
    if not path.exists():
        raise ModelError(
            f"{path}: model not found. Set [Pose] MODEL_PATH (or --model) to a model folder or "
            "file, or leave it empty for the bundled model."
        )
    if precision not in ("fp32", "fp16"):
        raise ModelError(f"precision {precision!r}; expected fp32 or fp16")
    converted = _is_lightning_checkpoint(path) or _is_deeplabcut_export(path)
    if precision != "fp32" and not converted:
        raise ModelError(
            f"{path}: precision {precision} applies to models converted here (DeepLabCut "
            f".pt, Lightning Pose .ckpt); for a Lightning Pose export name its fp16 .onnx file"
        )
    if _is_lightning_pose(path):
        from pose.lightning import load_lightning_pose

        return load_lightning_pose(path)
    if _is_lightning_checkpoint(path):
        from pose.lightning_ckpt import load_lightning_checkpoint

        return load_lightning_checkpoint(path, precision)
    if _is_own_model(path):
        from pose.own_model import load_own_model

        return load_own_model(path)
    if _is_deeplabcut_export(path):
        from pose.dlc3 import load_deeplabcut

        return load_deeplabcut(path, frame_size, precision)
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "tb_logs").is_dir():
        raise ModelError(
            f"{path}: a Lightning Pose model folder without a checkpoint (.ckpt) under tb_logs/ "
            f"or an ONNX export in exports_onnx/: copy the checkpoint back, or export the model "
            f"with `litpose export {path} --runtime onnx`"
        )
    raise ModelError(
        f"{path}: not a model this program knows. Expected a folder with model.json (this "
        "project's models), a Lightning Pose model folder (config.yaml + exports_onnx/ or "
        "tb_logs/), a Lightning Pose .ckpt, a DeepLabCut 3.0 export (.pt), or an .onnx file "
        "inside one of them."
    )


def check_model(path: Path | None) -> None:
    """Check cheaply that ``path`` is a model :func:`load_model` can take (None: the bundled).

    Nothing is converted or run. This project's models and Lightning Pose exports are read
    whole (their description is a small file); a DeepLabCut export or Lightning checkpoint
    only has its file checked for the archive ``torch.save`` writes, which catches a missing,
    empty or foreign file in milliseconds. Its contents are checked when the model loads.

    Raises
    ------
    ModelError
        As :func:`load_model` would for what is checked; the message says what to do.
    """
    path = BUNDLED_MODEL if path is None else Path(path).expanduser()
    if not path.exists():
        load_model(path)  # raises its "model not found" message
    if _is_lightning_checkpoint(path) and path.is_file():
        check_torch_file(path, LIGHTNING_CHECKPOINT_ADVICE)
    elif _is_deeplabcut_export(path):
        check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)
    elif not _is_lightning_checkpoint(path):
        load_model(path)  # reads a description file (and the ONNX graph's inputs and outputs)


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
    """The error for a model file that cannot be read: what it is not, why, what to do."""
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


def build_torch_module(description: ModelDescription) -> Any:
    """The PyTorch module of a converted model, rebuilt from ``description.source_file``.

    It returns the graph's outputs in the graph's order, in float32, and is in eval mode on
    the CPU.

    Raises
    ------
    ModelError
        When the description has no source file, or its framework has no rebuilt network.
    """
    source = description.source_file
    if source is None:
        raise ModelError(f"{description.model_file}: not a converted model (no source file)")
    if description.framework == "deeplabcut":
        from pose import dlc3

        return dlc3.build_module(dlc3.read_export(source))
    if description.framework == "lightning-pose":
        from pose import lightning_ckpt

        return lightning_ckpt.build_module(lightning_ckpt.read_checkpoint(source))
    raise ModelError(f"{source}: no rebuilt network for framework {description.framework!r}")


def _is_lightning_pose(path: Path) -> bool:
    if path.is_dir():
        return (path / "config.yaml").is_file() and (path / "exports_onnx").is_dir()
    return (
        path.suffix == ".onnx"
        and path.parent.name == "exports_onnx"
        and (path.parent.parent / "config.yaml").is_file()
    )


def _is_lightning_checkpoint(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".ckpt"
    if _is_lightning_pose(path):
        return False  # a folder with an export runs Lightning Pose's own graph
    return (
        (path / "config.yaml").is_file()
        and (path / "tb_logs").is_dir()
        and any((path / "tb_logs").rglob("*.ckpt"))
    )


def _is_own_model(path: Path) -> bool:
    if path.is_dir():
        return (path / "model.json").is_file()
    return path.name == "model.json" or (path.parent / "model.json").is_file()


def _is_deeplabcut_export(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix in (".pt", ".pth")
        and not (path.parent / "model.json").is_file()
    )
