"""The model inside a folder a framework wrote, or the command that makes one.

Design: docs/pose-models.md, "The folders the frameworks write".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deeplabstream.pose.formats import dlc3_folders, lightning_folders, sleap_folders
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.model_format import format_of

# (claims, model_in) of each framework's folders, in the order they are asked.
FolderReader = tuple[Callable[[Path], bool], Callable[[Path], Path]]
READERS: tuple[FolderReader, ...] = (
    (dlc3_folders.claims, dlc3_folders.deeplabcut_model_in),
    (sleap_folders.claims, sleap_folders.sleap_model_in),
    (lightning_folders.claims, lightning_folders.lightning_model_in),
)
_MOST_FOLDERS_SEARCHED = 400  # a folder that is not a model's is searched this far, no further
_MOST_LISTED = 8


def resolve_model_path(path: Path) -> Path:
    """Return the model to load for ``path``: ``path`` itself, or the one model inside it.

    An unknown path is returned as it is. Raises ModelError for a framework's folder with no model
    this program runs, or several, naming the command to run or the models to choose.
    """
    for _ in range(4):  # a framework's folder gives a model, or a folder of a format, at most
        inner = _model_inside(path)
        if inner == path:
            return path
        path = inner
    return path


def _model_inside(path: Path) -> Path:
    for claims, model_in in READERS:
        if claims(path):
            return model_in(path)
    if not path.is_dir() or format_of(path) is not None:
        return path
    found = _models_below(path)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        shown = "; ".join(str(f) for f in found[:_MOST_LISTED])
        more = f" and {len(found) - _MOST_LISTED} more" if len(found) > _MOST_LISTED else ""
        raise ModelError(
            f"{path}: {len(found)} models in this folder ({shown}{more}): set MODEL_PATH (or "
            "--model) to the one to run"
        )
    return path


def _models_below(folder: Path) -> list[Path]:
    """Return the models one and two levels below ``folder`` (not searching inside them)."""
    found: list[Path] = []
    level = [folder]
    searched = 0
    for _ in range(2):
        below: list[Path] = []
        for parent in level:
            for child in _children(parent):
                searched += 1
                if searched > _MOST_FOLDERS_SEARCHED:
                    return found
                if _is_model(child):
                    found.append(child)
                elif child.is_dir():
                    below.append(child)
        level = below
    return found


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(c for c in folder.iterdir() if not c.name.startswith("."))
    except OSError:
        return []


def _is_model(path: Path) -> bool:
    """Return True for a model, or a framework's folder around one (or several)."""
    return any(claims(path) for claims, _ in READERS) or format_of(path) is not None
