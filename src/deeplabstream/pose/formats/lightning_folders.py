"""Lightning Pose's folders inside a model folder: the model they belong to, or what to run.

Design: docs/pose-models.md, "The folders the frameworks write".
"""

from __future__ import annotations

from pathlib import Path

from deeplabstream.pose.formats.lightning import CONFIG_FILE, EXPORT_FOLDER
from deeplabstream.pose.model import ModelError

CHECKPOINTS_FOLDER = "tb_logs"
TENSORRT_FOLDER = "exports_trt"
EXPORT_COMMAND = "litpose export {folder} --runtime onnx --onnx-precision fp32"


def claims(path: Path) -> bool:
    """Return True for ``exports_onnx/``, a folder of ``tb_logs/``, or a bare model folder."""
    if not path.is_dir():
        return False
    if path.name == EXPORT_FOLDER and (path.parent / CONFIG_FILE).is_file():
        return True
    if _model_folder_above(path) is not None:
        return True
    return _is_bare_model_folder(path)


def _model_folder_above(path: Path) -> Path | None:
    """Return the model folder of a folder in its ``tb_logs/`` tree (``tb_logs`` included)."""
    for folder in [path, *list(path.parents)[:4]]:
        if folder.name == CHECKPOINTS_FOLDER and (folder.parent / CONFIG_FILE).is_file():
            return folder.parent
    return None


def _is_bare_model_folder(path: Path) -> bool:
    """Return True for a model folder with neither a checkpoint nor an ONNX export."""
    if not (path / CONFIG_FILE).is_file() or (path / EXPORT_FOLDER).is_dir():
        return False
    if not any((path / name).is_dir() for name in (CHECKPOINTS_FOLDER, TENSORRT_FOLDER)):
        return False
    return not any((path / CHECKPOINTS_FOLDER).rglob("*.ckpt"))


def lightning_model_in(path: Path) -> Path:
    """Return the model that Lightning Pose's folder ``path`` belongs to, or refuse it.

    Raises ModelError for no checkpoint, several with none named best, or no model: says what to
    run.
    """
    if path.name == EXPORT_FOLDER:
        return path.parent  # the model folder picks the graph (fp32 when there is one)
    model_folder = _model_folder_above(path)
    if model_folder is None:
        raise ModelError(_bare_folder_refusal(path))
    checkpoints = sorted(path.rglob("*.ckpt"))
    best = [c for c in checkpoints if "best" in c.stem]
    chosen = checkpoints if len(checkpoints) == 1 else best
    if len(chosen) == 1:
        return chosen[0]
    if not checkpoints:
        raise ModelError(
            f"{path}: a folder of the Lightning Pose model {model_folder} with no checkpoint "
            f"(.ckpt) in it: set MODEL_PATH (or --model) to the model folder or to a .ckpt file"
        )
    names = "; ".join(str(c.relative_to(path)) for c in checkpoints)
    raise ModelError(
        f"{path}: {len(checkpoints)} Lightning Pose checkpoints ({names}): set MODEL_PATH (or "
        "--model) to the .ckpt file of the one to run"
    )


def _bare_folder_refusal(path: Path) -> str:
    tensorrt = (
        f"; its {TENSORRT_FOLDER}/ holds TensorRT engines, which this program does not read"
        if (path / TENSORRT_FOLDER).is_dir()
        else ""
    )
    return (
        f"{path}: a Lightning Pose model folder without a checkpoint (.ckpt under "
        f"{CHECKPOINTS_FOLDER}/) or an ONNX export ({EXPORT_FOLDER}/){tensorrt}. Copy the "
        f"checkpoint back into {path / CHECKPOINTS_FOLDER}, or, where the checkpoint and "
        f"Lightning Pose are, run `{EXPORT_COMMAND.format(folder=path)}` and copy the "
        f"{EXPORT_FOLDER}/ folder it writes into {path}"
    )
