"""The session folder: one per run, never overwritten, with ``session.json`` kept up to date.

``session.json`` is rewritten atomically (write a temporary file, then rename) while the session
runs, so it is always a complete JSON document; its ``status`` is ``running`` until the session
is finalised.
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
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.liveness import is_same_process_running
from deeplabstream.outputs.frames_table import count_table_rows, repair_frames_table
from deeplabstream.outputs.video import count_decodable_frames

log = logging.getLogger(__name__)

SESSION_JSON = "session.json"
SESSION_LOG = "session.log"
RESERVE_FILE = ".space-reserve"  # freed when the disk is full, so session.json can be finalised
RESERVE_BYTES = 1 << 20
_FOLDER_FORMAT = "%Y-%m-%d_%H-%M-%S"
_PACKAGES = ("numpy", "av", "opencv-python-headless", "PyQt5", "pandas", "pyarrow")


def folder_label(text: str) -> str:
    """Return ``text`` made safe as part of a folder name (``mouse 12/a`` -> ``mouse-12-a``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text.strip()).strip("-")[:64]


def create_session_folder(output_dir: Path, started: datetime, label: str = "") -> Path:
    """Make ``<output_dir>/<YYYY-mm-dd_HH-MM-SS>[_label]``; on a clash add ``-2``, ``-3``, ...

    ``label`` (the animal, say) is made safe with :func:`folder_label`.
    """
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

    Raises OSError saying how much space is free when the reserve cannot be written (a full
    disk); the folder, empty then, is removed.
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


def remove_preview_folder(folder: Path, cameras: list[str]) -> bool:
    """Remove the folder of a session that was only looked at; False (kept) when in doubt.

    A preview leaves ``session.json``, ``session.log`` and the cameras' own side files
    (``<camera>.truth.csv`` of the simulated arena, say): nothing worth a folder. A file of
    any other name (one the user put there) keeps the folder whole.
    """
    bookkeeping = {SESSION_JSON, SESSION_LOG, RESERVE_FILE}

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


@dataclass
class Recovery:
    """What the start found in the output folder: sessions marked, damaged files moved aside."""

    interrupted: list[Path] = field(default_factory=list)  # session folders marked interrupted
    damaged: list[Path] = field(default_factory=list)  # session.json files moved aside (new names)
    warnings: list[str] = field(default_factory=list)  # one per damaged file, naming it


class DamagedRecordError(DeepLabStreamError, ValueError):
    """A ``session.json`` that is not what a session writes (its reason says where)."""


def recover_interrupted_sessions(output_dir: Path) -> Recovery:
    """Mark the sessions in ``output_dir`` whose processes were killed; free their reserve.

    A session killed hard (SIGKILL, a power cut) never reaches its final ``session.json``: it
    stays ``running`` and keeps its 1 MiB space reserve. When its main process no longer runs
    (:func:`core.liveness.is_same_process_running`: the pid and its start time, so a pid now
    used by another process does not count), its status becomes ``interrupted`` (with a note
    in ``errors``) and the reserve is removed. A session whose main process still runs is left
    alone.

    A ``session.json`` that is not what a session writes (not JSON, not an object, a figure of
    the wrong type) never stops the start: it is renamed ``session.json.damaged`` (never
    deleted) and named in the returned warnings.
    """
    recovery = Recovery()
    if not output_dir.is_dir():
        return recovery
    for folder in sorted(output_dir.iterdir()):
        if not _SESSION_NAME.match(folder.name) or not folder.is_dir():
            continue
        path = folder / SESSION_JSON
        try:
            if _recover_one(folder, path):
                recovery.interrupted.append(folder)
        except DamagedRecordError as damage:
            _move_aside(path, str(damage), recovery)
        except OSError as error:  # unreadable or unwritable: left as it is, said once
            log.warning("%s: not checked for an interrupted session: %s", path, error)
    return recovery


def _recover_one(folder: Path, path: Path) -> bool:
    """Mark one session interrupted when its process is gone; True when it was marked.

    Raises DamagedRecordError for a file that is not a session's record, OSError for one that cannot
    be read or written.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except UnicodeDecodeError as error:
        raise DamagedRecordError(f"not UTF-8 text ({error.reason})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise DamagedRecordError(f"not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DamagedRecordError(f"holds a JSON {type(data).__name__}, not an object")
    if data.get("status") != "running":
        return False
    processes = data.get("processes")
    if processes is not None and not isinstance(processes, dict):
        raise DamagedRecordError(f"'processes' is a {type(processes).__name__}, not an object")
    pid = (processes or {}).get("main")
    started = data.get("main_process_started")
    started = float(started) if isinstance(started, int | float) else None
    if isinstance(pid, int) and is_same_process_running(pid, started):
        return False
    errors = data.setdefault("errors", [])
    if not isinstance(errors, list):
        raise DamagedRecordError(f"'errors' is a {type(errors).__name__}, not a list")
    try:
        _repair_recordings(folder, data)
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        raise DamagedRecordError(
            f"its recordings cannot be read: {type(error).__name__}: {error}"
        ) from None
    data["status"] = "interrupted"
    errors.append(
        f"the session was interrupted: its main process ({pid}) ended without finalising "
        f"it (killed, or the machine stopped); found by the next start on "
        f"{datetime.now().astimezone().isoformat(timespec='seconds')}. The figures here "
        "are those of its last update; the files hold what was written until then."
    )
    write_json_atomic(path, data)
    release_reserve(folder)
    return True


def _move_aside(path: Path, reason: str, recovery: Recovery) -> None:
    """Rename a damaged ``session.json`` (``.damaged``, ``.damaged-2``, ...) and say so."""
    for attempt in range(1, 1000):
        target = path.with_name(
            path.name + DAMAGED_SUFFIX + ("" if attempt == 1 else f"-{attempt}")
        )
        if not target.exists():
            break
    try:
        os.replace(path, target)
    except OSError as error:
        text = (
            f"{path} is damaged ({reason}) and could not be moved aside "
            f"({error.strerror or error}): it is ignored; remove or fix it by hand"
        )
    else:
        recovery.damaged.append(target)
        text = (
            f"{path} is damaged ({reason}): moved aside to {target.name} and ignored; that "
            "session is not checked for an interruption (its videos and tables are untouched)"
        )
    recovery.warnings.append(text)
    log.warning("%s", text)


def _repair_recordings(folder: Path, data: dict[str, Any]) -> None:
    """Cut each camera's frames table to the frames its video holds; re-derive the figures.

    A killed recorder's table may name frames whose video data never reached the disk, and the
    files went on growing after the last ``session.json`` update (up to 2 s of frames). So the
    figures are taken from the files where they know more, keeping the rules of a finished
    session: recorded + lost = captured while recording, and captured >= recorded + lost.

    - recorded: the frames its video holds that have a row (the table is cut to them);
    - captured while recording: the last update's recorded + lost, or, when larger, the
      table's whole rows before the cut (each a frame the camera delivered and the recorder
      took) + the last update's lost;
    - lost: captured while recording - recorded;
    - ``frames_captured``: the last update's, or the frames captured while recording when the
      files show more (a recording that ran from the session's start: recorded + lost).

    A record of the wrong shape raises TypeError, ValueError or AttributeError before any file
    is changed (:func:`_check_recordings`).
    """
    cameras = data.get("cameras") or {}
    _check_recordings(cameras)
    for camera in cameras.values():
        recordings = camera.get("recordings") or []
        if not recordings:
            continue
        for recording in recordings:
            _repair_recording(folder, recording)
        recorded = sum(int(r.get("frames") or 0) for r in recordings)
        lost = sum(int(r.get("lost") or 0) for r in recordings)
        camera["frames_captured"] = max(int(camera.get("frames_captured") or 0), recorded + lost)
        camera["frames_recorded"] = recorded
        camera["frames_lost_in_recording"] = lost
        camera["frames_dropped"] = int(camera.get("frames_dropped_by_camera") or 0) + lost
        camera["repaired_from_files"] = True


def _check_recordings(cameras: Any) -> None:
    """Raise TypeError or ValueError when the cameras' figures are not what a session writes.

    Checked before the repair touches a file: a damaged record never half-repairs a table.
    """
    if not isinstance(cameras, dict):
        raise TypeError(f"'cameras' is a {type(cameras).__name__}, not an object")
    for name, camera in cameras.items():
        if not isinstance(camera, dict):
            raise TypeError(f"cameras.{name} is a {type(camera).__name__}, not an object")
        for key in ("frames_captured", "frames_dropped_by_camera"):
            _count(camera.get(key), f"cameras.{name}.{key}")
        recordings = camera.get("recordings") or []
        if not isinstance(recordings, list):
            raise TypeError(f"cameras.{name}.recordings is a {type(recordings).__name__}")
        for index, recording in enumerate(recordings):
            where = f"cameras.{name}.recordings[{index}]"
            if not isinstance(recording, dict):
                raise TypeError(f"{where} is a {type(recording).__name__}, not an object")
            for key in ("frames", "lost"):
                _count(recording.get(key), f"{where}.{key}")
            for key in ("video", "frames_table"):
                value = recording.get(key)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{where}.{key} is a {type(value).__name__}, not a file name")


def _count(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is a whole count (or missing)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{where} is {value!r}, not a count of frames")


def _repair_recording(folder: Path, recording: dict[str, Any]) -> None:
    """Cut one recording's table to its video and re-derive its ``frames`` and ``lost``.

    A recording whose files are gone keeps its figures (nothing to re-derive them from).
    """
    video, table = recording.get("video"), recording.get("frames_table")
    if not (video and table and (folder / table).exists()):
        return
    frames, lost = int(recording.get("frames") or 0), int(recording.get("lost") or 0)
    taken = count_table_rows(folder / table)  # before the cut: every frame the recorder took
    recorded = repair_frames_table(folder / table, count_decodable_frames(folder / video))
    captured = max(frames, taken) + lost
    recording["frames"], recording["lost"] = recorded, captured - recorded
    recording.pop("running", None)


def reserve_space(folder: Path) -> None:
    """Set aside a little disk space in ``folder`` for the final ``session.json``."""
    with open(folder / RESERVE_FILE, "wb") as file:
        file.write(bytes(RESERVE_BYTES))  # real blocks, not a sparse file
        file.flush()
        os.fsync(file.fileno())


def release_reserve(folder: Path) -> bool:
    """Give the reserved space back; False when there was none left to give."""
    try:
        (folder / RESERVE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def write_session_json(folder: Path, data: dict[str, Any], use_reserve: bool = True) -> None:
    """Write ``session.json``; on a full disk, use the reserved space and try once more.

    ``use_reserve=False`` for the updates while the session runs: the reserve is kept for the
    final ``session.json``; an update that finds the disk full leaves the previous one.
    """
    try:
        write_json_atomic(folder / SESSION_JSON, data)
    except OSError as error:
        if error.errno != errno.ENOSPC or not use_reserve or not release_reserve(folder):
            raise
        write_json_atomic(folder / SESSION_JSON, data)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` so that readers never see a half-written file.

    The file is strict JSON: a figure that is NaN or infinite (not measured) is written as
    ``null`` and named in the log, never a reason to lose the file.
    """
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
    versions = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
