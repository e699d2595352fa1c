"""One way in for every model: a path (or nothing, for the bundled model) -> ModelDescription.

The kind is detected from what is on disk:

- nothing: the bundled model of the simulated arena (``pose/bundled/arena``);
- a folder with ``model.json``, that file, or the ``.onnx`` beside it: the project's own format;
- a folder with ``config.yaml`` and ``exports_onnx/``, or one ``.onnx`` inside such an
  ``exports_onnx`` folder: a Lightning Pose export.
"""

from __future__ import annotations

from pathlib import Path

from pose.model import ModelDescription, ModelError

BUNDLED_MODEL = Path(__file__).resolve().parent / "bundled" / "arena"


def load_model(path: Path | None) -> ModelDescription:
    """The description of the model at ``path`` (None: the bundled model)."""
    path = BUNDLED_MODEL if path is None else Path(path).expanduser()
    if not path.exists():
        raise ModelError(
            f"{path}: model not found. Set [Pose] MODEL_PATH (or --model) to a model folder or "
            "file, or leave it empty for the bundled model."
        )
    if _is_lightning_pose(path):
        from pose.lightning import load_lightning_pose

        return load_lightning_pose(path)
    if _is_own_model(path):
        from pose.own_model import load_own_model

        return load_own_model(path)
    if path.suffix in (".pt", ".pth") and not (path.parent / "model.json").is_file():
        raise ModelError(
            f"{path}: a PyTorch file, probably a DeepLabCut 3.0 export. Running DeepLabCut 3.0 "
            "exports directly is not supported yet; meanwhile train a model of this project on "
            "the same labels with python -m pose.train."
        )
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "tb_logs").is_dir():
        raise ModelError(
            f"{path}: a Lightning Pose model folder without an ONNX export. Export it with "
            f"`litpose export {path} --runtime onnx` (Lightning Pose >= 2.4) and point "
            "MODEL_PATH at the same folder; running checkpoints directly is not supported yet."
        )
    raise ModelError(
        f"{path}: not a model this program knows. Expected a folder with model.json (this "
        "project's models), a Lightning Pose export folder (config.yaml + exports_onnx/), or "
        "an .onnx file inside one of them."
    )


def _is_lightning_pose(path: Path) -> bool:
    if path.is_dir():
        return (path / "config.yaml").is_file() and (path / "exports_onnx").is_dir()
    return (
        path.suffix == ".onnx"
        and path.parent.name == "exports_onnx"
        and (path.parent.parent / "config.yaml").is_file()
    )


def _is_own_model(path: Path) -> bool:
    if path.is_dir():
        return (path / "model.json").is_file()
    return path.name == "model.json" or (path.parent / "model.json").is_file()
