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
