"""The session folder: one per run, never overwritten, with ``session.json`` kept up to date.

``session.json`` is rewritten atomically, so it is always complete; its ``status`` is
``running`` until the session is finalised. docs/outputs.md.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deeplabstream import __version__
from deeplabstream.core.digest import file_sha256

log = logging.getLogger(__name__)

_GB = 1e9

SESSION_JSON = "session.json"
SESSION_LOG = "session.log"
RESERVE_FILE = ".space-reserve"  # freed when the disk is full, so session.json can be finalised
RESERVE_BYTES = 1 << 20
_FOLDER_FORMAT = "%Y-%m-%d_%H-%M-%S"
_PACKAGES = ("numpy", "av", "opencv-python-headless", "PyQt5", "pandas", "pyarrow")


def run_label(run: int) -> str:
    """Return what goes into the file names of a session's ``run``-th analysis or experiment."""
    return "" if run == 1 else f".run{run}"


def folder_label(text: str) -> str:
    """Return ``text`` made safe as part of a folder name (``mouse 12/a`` -> ``mouse-12-a``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text.strip()).strip("-")[:64]


def create_session_folder(output_dir: Path, started: datetime, label: str = "") -> Path:
    """Make ``<output_dir>/<YYYY-mm-dd_HH-MM-SS>[_label]``; on a clash add ``-2``, ``-3``, ..."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"cannot create the output folder {output_dir}: {error.strerror}. Set [Output] "
            "DIRECTORY or --output-dir to a writable folder."
        ) from None
    base = started.strftime(_FOLDER_FORMAT)
    suffix = folder_label(label)
    if suffix:
        base = f"{base}_{suffix}"
    for attempt in range(1, 1000):
        folder = output_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            folder.mkdir()  # exclusive: an existing session is never reused
        except FileExistsError:
            continue
        except OSError as error:  # read-only file system, no permission, full disk
            raise OSError(
                f"cannot create a session folder in {output_dir}: {error.strerror or error}. "
                "Set [Output] DIRECTORY or --output-dir to a writable folder."
            ) from None
        return folder
    raise FileExistsError(f"{output_dir}: too many sessions named {base}")


def start_session_folder(output_dir: Path, started: datetime, label: str = "") -> Path:
    """Make the session folder (:func:`create_session_folder`) with its space reserve.

    Raises OSError saying how much is free when the reserve cannot be written (the folder is
    removed).
    """
    folder = create_session_folder(output_dir, started, label)
    try:
        reserve_space(folder)
    except OSError as error:
        free = shutil.disk_usage(folder).free
        (folder / RESERVE_FILE).unlink(missing_ok=True)
        try:
            folder.rmdir()  # empty: nothing of this session was written
        except OSError:
            pass
        raise OSError(
            f"cannot start a session in {output_dir}: {error.strerror or error} "
            f"({free / 2**20:.1f} MiB free; a session needs at least 1 MiB to start). "
            "Free some space or choose another [Output] DIRECTORY / --output-dir."
        ) from None
    return folder


def too_little_space(folder: Path, needed_gb: float) -> str | None:
    """Say why ``folder``'s disk (or its nearest existing parent's) has under ``needed_gb`` free."""
    if needed_gb <= 0:
        return None
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free / _GB
    if free >= needed_gb:
        return None
    return (
        f"only {free:.2f} GB free on the disk of {folder}; [Recording] MIN_FREE_SPACE is "
        f"{needed_gb:.12g} GB. Free some space or choose another [Output] DIRECTORY / --output-dir."
    )


def remove_preview_folder(folder: Path, cameras: list[str], own: Sequence[str] = ()) -> bool:
    """Remove the folder of a session that was only looked at; False (kept) when in doubt.

    Only the preview's own files and ``own`` may be there: any other file keeps the folder.
    """
    bookkeeping = {SESSION_JSON, SESSION_LOG, RESERVE_FILE, *own}

    def ours(entry: Path) -> bool:
        side_file = any(entry.name.startswith(f"{camera}.") for camera in cameras)
        return entry.is_file() and (entry.name in bookkeeping or side_file)

    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    if not all(ours(entry) for entry in entries):
        return False
    try:
        for entry in entries:
            entry.unlink()
        folder.rmdir()
    except OSError:
        return False
    return True


_SESSION_NAME = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_[A-Za-z0-9_-]+)?(-\d+)?$")


#: What a damaged ``session.json`` is renamed to (never deleted: the user may want it back).
DAMAGED_SUFFIX = ".damaged"


def is_session_name(name: str) -> bool:
    """Tell whether ``name`` is a session folder's (``2026-11-23_10-15-02[_label][-2]``)."""
    return _SESSION_NAME.match(name) is not None


def move_aside(path: Path, reason: str) -> tuple[Path | None, str]:
    """Rename a damaged file (``.damaged``, ``.damaged-2``, ...); return its new path and why.

    The path is None when it could not be renamed (left where it is).
    """
    for attempt in range(1, 1000):
        target = path.with_name(
            path.name + DAMAGED_SUFFIX + ("" if attempt == 1 else f"-{attempt}")
        )
        if not target.exists():
            break
    moved: Path | None = target
    try:
        os.replace(path, target)
    except OSError as error:
        moved = None
        text = (
            f"{path} is damaged ({reason}) and could not be moved aside "
            f"({error.strerror or error}): it is ignored; remove or fix it by hand"
        )
    else:
        text = (
            f"{path} is damaged ({reason}): moved aside to {target.name} and ignored; that "
            "session is not checked for an interruption (its videos and tables are untouched)"
        )
    log.warning("%s", text)
    return moved, text


#: What a session's file digests leave out: session.json itself (it holds them), the log (the
#: process writes it to its last line, after the close: the summary, a replay's "done"), the
#: space reserve, damaged copies moved aside, and what verify writes later (``verify/``).
_NOT_DIGESTED = ("session.json", "session.log", ".space-reserve")


def file_digests(folder: Path) -> dict[str, tuple[str, int]]:
    """Return every file of a finished session folder: relative path -> (SHA-256, bytes)."""
    digests: dict[str, tuple[str, int]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            not path.is_file()
            or path.is_symlink()
            or relative.parts[0] == "verify"
            or path.name in _NOT_DIGESTED
            or path.name.endswith(DAMAGED_SUFFIX)
        ):
            continue
        digests[relative.as_posix()] = (file_sha256(path), path.stat().st_size)
    return digests


def reserve_space(folder: Path) -> None:
    """Set aside a little disk space in ``folder`` for the final ``session.json``."""
    with open(folder / RESERVE_FILE, "wb") as file:
        file.write(bytes(RESERVE_BYTES))  # real blocks, not a sparse file
        file.flush()
        os.fsync(file.fileno())


def release_reserve(folder: Path) -> bool:
    """Give the reserved space back; False when there was none left to give, or it cannot be.

    Never raises: an unwritable folder keeps the reserve, said in the log.
    """
    try:
        (folder / RESERVE_FILE).unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("the space reserved in %s could not be given back: %s", folder, error)
        return False
    return True


def write_session_json(folder: Path, data: dict[str, Any], use_reserve: bool = True) -> None:
    """Write ``session.json``; on a full disk, use the reserved space and try once more.

    ``use_reserve=False`` (updates while running): a full disk leaves the previous file.
    """
    try:
        write_json_atomic(folder / SESSION_JSON, data)
    except OSError as error:
        if error.errno != errno.ENOSPC or not use_reserve or not release_reserve(folder):
            raise
        write_json_atomic(folder / SESSION_JSON, data)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically; NaN or infinite figures become ``null``."""
    temporary = path.with_name(path.name + ".tmp")
    unknown: list[str] = []
    text = json.dumps(_finite(data, "", unknown), indent=2, allow_nan=False, default=_json_default)
    if unknown:
        log.warning("%s: not finite, written as null: %s", path.name, ", ".join(unknown[:10]))
    text += "\n"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _finite(value: Any, where: str, unknown: list[str]) -> Any:
    """Return ``value`` with every NaN or infinite float replaced by None (its key noted)."""
    if isinstance(value, float) and not math.isfinite(value):
        unknown.append(where or "(top)")
        return None
    if isinstance(value, dict):
        return {
            key: _finite(item, f"{where}.{key}" if where else str(key), unknown)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_finite(item, f"{where}[{index}]", unknown) for index, item in enumerate(value)]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that touch the data (for reproducibility)."""
    versions = {"python": sys.version.split()[0], "deeplabstream": __version__}  # the code's own
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
