"""sleap-nn's training folders: the export inside, or the ``sleap-nn export`` command that makes it.

Design: docs/sleap-models.md, "Export the model".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deeplabstream.pose.formats.sleap import METADATA_FILE
from deeplabstream.pose.model import ModelError

CHECKPOINT = "best.ckpt"
CONFIGS = ("training_config.yaml", "training_config.json")
LEGACY_MODEL = "best_model.h5"  # SLEAP 1.x, TensorFlow
_CENTROID = "centroid"
_INSTANCE_STAGES = ("centered_instance", "multi_class_topdown")
_FRAME_SIZE = (
    " (add --input-height and --input-width with your camera's frame size: sleap-nn fixes it "
    "in the graph)"
)


def is_training_folder(path: Path) -> bool:
    """Return True for a folder ``sleap-nn train`` (or SLEAP 1.x) wrote one model into."""
    if not path.is_dir() or not any((path / name).is_file() for name in CONFIGS):
        return False
    return (path / CHECKPOINT).is_file() or (path / LEGACY_MODEL).is_file()


def claims(path: Path) -> bool:
    """Return True for a training folder, its ``best.ckpt``, or a folder of training folders."""
    if path.is_file():
        return path.name in (CHECKPOINT, LEGACY_MODEL) and is_training_folder(path.parent)
    if is_training_folder(path):
        return True
    return path.is_dir() and any(is_training_folder(child) for child in _folders(path))


def sleap_model_in(path: Path) -> Path:
    """Return the one sleap-nn export in ``path`` (a training folder or a folder of them).

    Raises ModelError for a checkpoint, no export or several, naming the command or the choices.
    """
    folder = path.parent if path.is_file() else path
    trainings = (
        [folder]
        if is_training_folder(folder)
        else sorted(child for child in _folders(folder) if is_training_folder(child))
    )
    exports = sorted({e for t in [folder, *trainings] for e in _exports_in(t)})
    if path.is_file() and exports:
        raise ModelError(
            f"{path}: a sleap-nn training checkpoint, which this program does not run; its "
            f"folder holds the export {', '.join(map(str, exports))}: set MODEL_PATH (or "
            "--model) to that export folder (or to the training folder)"
        )
    if len(exports) == 1:
        return exports[0]
    if len(exports) > 1:
        names = "; ".join(str(e) for e in exports)
        raise ModelError(
            f"{path}: {len(exports)} sleap-nn exports ({names}): set MODEL_PATH (or --model) "
            "to the export folder of the one to run"
        )
    raise ModelError(_training_refusal(path, trainings, folder))


def _folders(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:
        return []


def _exports_in(folder: Path) -> list[Path]:
    """Return the export folders (``export_metadata.json``) directly in ``folder``."""
    return [child for child in _folders(folder) if (child / METADATA_FILE).is_file()]


def model_type(training: Path) -> str:
    """Return the model type a training folder's config names (its one head), or "" when unknown."""
    for name in CONFIGS:
        config = _read_config(training / name)
        heads = (config.get("model_config") or {}).get("head_configs") or {}
        if isinstance(heads, dict):
            set_heads = [str(head) for head, value in heads.items() if value]
            if len(set_heads) == 1:
                return set_heads[0]
    return ""


def _read_config(file: Path) -> dict[str, Any]:
    """Return a training config as a dict ({} when it is absent or unreadable)."""
    try:
        text = file.read_text(encoding="utf-8") if file.is_file() else ""
    except OSError:
        return {}
    if file.suffix == ".json":
        try:
            config = json.loads(text or "{}")
        except ValueError:
            return {}
    else:
        import yaml  # imported on use: only sleap-nn's folders need it here

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
    return config if isinstance(config, dict) else {}


def export_command(training: Path, siblings: list[Path]) -> tuple[str, Path]:
    """Return the ``sleap-nn export`` command for ``training`` and the folder it writes."""
    kind = model_type(training)
    if kind != _CENTROID and kind not in _INSTANCE_STAGES:
        return _command([training]), training / "exported"
    wanted = _INSTANCE_STAGES if kind == _CENTROID else (_CENTROID,)
    partners = [s for s in siblings if s != training and model_type(s) in wanted]
    if len(partners) != 1:
        other = "centered_instance" if kind == _CENTROID else _CENTROID
        partner = Path(f"<the {other} model folder>")
        folders = [training, partner] if kind == _CENTROID else [partner, training]
        return _command(folders), folders[0] / "exported_topdown"
    centroid, instance = (training, partners[0]) if kind == _CENTROID else (partners[0], training)
    output = (
        "exported_multi_class_topdown"
        if model_type(instance) == "multi_class_topdown"
        else "exported_topdown"
    )
    return _command([centroid, instance]), centroid / output


def _command(folders: list[Path]) -> str:
    quoted = " ".join(json.dumps(str(f)) for f in folders)
    return f"sleap-nn export {quoted} --format onnx"


def _describe(training: Path) -> str:
    kind = model_type(training) or "model type unknown"
    if (training / LEGACY_MODEL).is_file() and not (training / CHECKPOINT).is_file():
        return f"{training} (a SLEAP 1.x TensorFlow model, {kind})"
    return f"{training} ({kind}, {CHECKPOINT})"


def _training_refusal(path: Path, trainings: list[Path], folder: Path) -> str:
    """Return the message for training folders without an export: the commands that make one."""
    if not trainings:
        return f"{path}: no sleap-nn training folder or export in it"
    legacy = [t for t in trainings if not (t / CHECKPOINT).is_file()]
    if legacy and len(legacy) == len(trainings):
        return (
            f"{path}: a SLEAP 1.x (TensorFlow) model ({LEGACY_MODEL}), which neither this program "
            f"nor `sleap-nn export` reads: train the model again with sleap-nn, then export it "
            f"with `sleap-nn export <model folder> --format onnx`"
        )
    siblings = trainings if len(trainings) > 1 else _siblings(trainings[0])
    plans = _plans(trainings, siblings)
    what = (
        f"a sleap-nn training folder: {_describe(trainings[0])}"
        if len(trainings) == 1
        else f"{len(trainings)} sleap-nn training folders: "
        + "; ".join(_describe(t) for t in trainings)
    )
    runs = " or ".join(f"`{command}` (it writes {output})" for command, output in plans)
    inside = all(folder in output.parents for _, output in plans)
    return (
        f"{path}: {what}, with no ONNX export in it. This program runs what `sleap-nn export` "
        f"writes: run {runs}{_FRAME_SIZE}, then set MODEL_PATH (or --model) to that folder"
        + (f" (or to {folder}, which then holds it)" if inside else "")
    )


def _siblings(training: Path) -> list[Path]:
    return [t for t in _folders(training.parent) if is_training_folder(t)]


def _plans(trainings: list[Path], siblings: list[Path]) -> list[tuple[str, Path]]:
    """One export per model: a top-down pair once, for its centroid stage."""
    centroids = [s for s in siblings if s in trainings and model_type(s) == _CENTROID]
    return [
        export_command(training, siblings)
        for training in trainings
        if not (model_type(training) in _INSTANCE_STAGES and centroids)
    ]
