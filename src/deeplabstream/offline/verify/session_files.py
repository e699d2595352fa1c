"""What a session folder holds for verification: its settings, recordings and live results.

Design: docs/verify.md, "offline.verify.session_files".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.digest import file_sha256
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.plugins import recorded_code, use_settings_folder
from deeplabstream.core.regular_files import regular_file
from deeplabstream.outputs.frames_table import FRAMES_TABLE_SUFFIX
from deeplabstream.outputs.pose.files import (
    POSE_CSV_SUFFIX,
    POSE_EXACT_SUFFIX,
    POSE_TIMES_SUFFIX,
    POSE_TIMING_SUFFIX,
)
from deeplabstream.outputs.session_record import (
    DamagedRecordError,
    SessionRecord,
    read_record_data,
)
from deeplabstream.outputs.video import CODEC_FILE_SUFFIX
from deeplabstream.pose.model_format import use_lab_formats
from deeplabstream.settings.recorded import settings_from_record
from deeplabstream.settings.sections import Settings

SESSION_JSON = "session.json"
POSE_FILE_SUFFIXES = (POSE_EXACT_SUFFIX, POSE_CSV_SUFFIX)
LOSSLESS_SUFFIX = CODEC_FILE_SUFFIX["ffv1"]  # every pixel as captured


class VerifyError(DeepLabStreamError, ValueError):
    """A session folder that cannot be verified; the message says why and what to do."""


class VerifyStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the verification (nothing of it is written)."""

    def __init__(self, reason: str, signum: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.signum = signum


@dataclass(frozen=True)
class VideoPart:
    """One video holding a camera's frames, and where its frames sat in the live stream.

    ``frames_table``: ``<camera>.frames.csv`` (row i: the live frame index of video frame i);
    None for a replay's own video, whose frame i was live frame i.
    """

    video: Path
    frames_table: Path | None

    def live_index(self) -> np.ndarray | None:
        """Return the live frame index of each video frame (None: a replay's own video)."""
        if self.frames_table is None:
            return None
        data = np.loadtxt(self.frames_table, delimiter=",", skiprows=1, usecols=(0,), ndmin=1)
        return data.astype(np.int64)

    @property
    def lossless(self) -> bool:
        """True when the reference sees the pixels the live loop saw, to the bit.

        An FFV1 recording; or a replay's own video, which the reference decodes as the replay
        did (whatever its codec, the replay analysed the decoded frames, not the camera's).
        """
        return self.frames_table is None or self.video.suffix.lower() == LOSSLESS_SUFFIX


@dataclass(frozen=True)
class CameraFiles:
    """A camera's videos and its live pose files."""

    name: str
    videos: tuple[VideoPart, ...]
    pose_exact: Path | None  # <camera>.pose_exact.csv: full precision (newer sessions)
    pose_csv: Path | None  # <camera>.pose.csv: 0.001 px (sessions before pose_exact)
    pose_times: Path | None
    pose_timing: Path | None
    truth: Path | None  # <camera>.truth.csv of the simulated arena: where the animal was


@dataclass(frozen=True)
class SessionFiles:
    """A session folder ready to verify.

    ``problems``: what reading it found wrong with the record itself (each a reason the verdict
    is "differs"): a settings file or a lab file inside the folder checked, a replay's swapped
    video.
    """

    folder: Path
    record: dict[str, Any]
    settings: Settings
    cameras: tuple[CameraFiles, ...]
    events: Path | None  # events.csv; None without an experiment
    experiment: str | None  # the experiment's name as the session ran it
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the reader should know: code named, never run

    @property
    def recording_sets(self) -> int:
        """How many recordings each camera has (a stream recorded in several parts)."""
        return max(len(camera.videos) for camera in self.cameras)

    def model_record(self, camera: str) -> dict[str, Any]:
        """Return what session.json says of ``camera``'s model (its own, else the shared one)."""
        pose = self.record.get("pose") or {}
        own = (pose.get("camera_models") or {}).get(camera)
        return own or pose.get("model") or {}


def read_session(folder: Path) -> SessionFiles:
    """Read ``folder``'s ``session.json`` and find what verification needs.

    Raises
    ------
    VerifyError
        Not a session folder, a session without poses, or one without a recording of any
        analysed camera: the message names the folder and what would make it verifiable.
    """
    folder = folder.expanduser().resolve()
    record = read_record(folder)
    if not record.get("pose"):
        raise VerifyError(
            f"{folder}: the session estimated no poses, so there is nothing to verify. Verify "
            "a session run with pose estimation (the window's Start Analysis; on the command "
            "line --pose-enabled or --experiment-enabled)."
        )
    problems: list[str] = []
    notes: list[str] = []
    settings = _settings(folder, record, problems, notes)
    cameras = tuple(
        camera
        for camera in (
            _camera_files(folder, record, name, problems) for name in _pose_cameras(record, folder)
        )
        if camera is not None
    )
    if not cameras:
        raise VerifyError(
            f"{folder}: no camera of this session was recorded, so its frames cannot be "
            "analysed again. Record the session to verify it (the window's Start Recording; "
            "on the command line --recording-enabled; [Camera NAME] RECORD = true)."
        )
    for camera in cameras:  # a FIFO or device where a file should be would hang the reading
        for path in (camera.pose_exact, camera.pose_csv, camera.pose_times, camera.pose_timing):
            if path is not None:
                regular_file(path)
        for part in camera.videos:
            regular_file(part.video)
            if part.frames_table is not None:
                regular_file(part.frames_table)
    experiment = record.get("experiment") or {}
    events = folder / (experiment.get("events_file") or "events.csv")
    return SessionFiles(
        folder=folder,
        record=record,
        settings=settings,
        cameras=cameras,
        events=events if experiment.get("name") and events.is_file() else None,
        experiment=experiment.get("name"),
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _settings(
    folder: Path, record: dict[str, Any], problems: list[str], notes: list[str]
) -> Settings:
    """Return the settings the session ran, read in its settings file's folder."""
    # That folder becomes this process's settings folder, as when the session started (for the
    # experiment configs it names, data); when it is gone, or inside the session folder checked
    # (refused, said in problems), there is none. Its devices and outputs are left out: verify never
    # runs them.
    recorded = {**(record.get("settings") or {}), "devices": {}, "outputs": {}}
    recorded["Pose"] = _recorded_formats_only(recorded.get("Pose"), notes)
    original = Path(recorded["file"]) if recorded.get("file") else None
    # Only an absolute path that still names a folder is the lab's: a relative one would be
    # read against the current folder (``cd SESSION; deeplabstream-verify .`` must not take the
    # session folder, or any other, for the lab's), so it is not taken.
    usable = original is not None and original.is_absolute() and original.parent.is_dir()
    if usable and original is not None and inside(original, folder):
        problems.append(
            f"session.json's settings.file ({original}) lies inside the session folder checked: "
            "verify never takes settings or code from the folder it checks, so it was not used"
        )
        usable = False
    place = original if usable and original is not None else folder / SESSION_JSON
    try:
        settings = settings_from_record(recorded, place)
    except ValueError as error:  # SettingsError: a key this version no longer reads
        raise VerifyError(
            f"{folder / SESSION_JSON}: the settings the session ran with cannot be read back: "
            f"{error}"
        ) from None
    # The lab's plugin folders are its settings file's, never the session folder checked.
    use_settings_folder(place.parent if usable else None)
    use_lab_formats(settings.pose.model_formats)  # the formats the session named, no other
    return settings


def _recorded_formats_only(pose: Any, notes: list[str]) -> Any:
    """``[Pose]`` with MODEL_FORMATS cut to the lab's formats the session recorded running."""
    # Only a format that read the model is recorded (plugin_files); another one named there is not
    # imported (core/plugins/ only_recorded_code), said in notes.
    if not isinstance(pose, dict) or not isinstance(pose.get("MODEL_FORMATS"), list):
        return pose
    code = recorded_code() or {}
    recorded = {path.stem for path in code if path.parent.name == "formats"}
    kept = [name for name in pose["MODEL_FORMATS"] if str(name).strip() in recorded]
    for name in pose["MODEL_FORMATS"]:
        if name not in kept:
            notes.append(
                f"[Pose] MODEL_FORMATS names {name!r}, which the session did not record "
                "running (plugin_files): it was not imported; verify runs only recorded code"
            )
    return {**pose, "MODEL_FORMATS": kept}


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (both taken as they resolve)."""
    try:
        return Path(path).expanduser().resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def read_record(folder: Path) -> dict[str, Any]:
    """Return the folder's ``session.json`` as JSON data; VerifyError when there is none."""
    return _session_json(folder.expanduser().resolve())


def _session_json(folder: Path) -> dict[str, Any]:
    path = folder / SESSION_JSON
    if not folder.is_dir():
        raise VerifyError(
            f"{folder}: no such folder. Give a session folder (it holds session.json)."
        )
    if not path.is_file():
        raise VerifyError(
            f"{folder}: no {SESSION_JSON} here, so this is not a session folder. Give the folder "
            "a session wrote (Session folder: ... in its output)."
        )
    try:  # as every reader reads it: a regular file, a byte-order mark allowed
        data = read_record_data(path)
    except (OSError, ValueError) as error:
        raise VerifyError(f"{path}: cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise VerifyError(f"{path}: not a session record (a JSON object)")
    try:  # its figures are checked against the files: a NaN or 10**30 count is no figure
        SessionRecord.from_json(data, SESSION_JSON)
    except DamagedRecordError as error:
        raise VerifyError(f"{path}: damaged, so its figures cannot be taken: {error}") from None
    return data


def _pose_cameras(record: dict[str, Any], folder: Path) -> list[str]:
    """Return the cameras with poses, in the session's order (every pose run's)."""
    # A session that never closed recorded none (the worker reports them at its end): the cameras
    # whose pose files are in the folder.
    names: list[str] = []
    runs = [record.get("pose") or {}, *(record.get("pose_runs") or [])]
    for run in runs:
        for name in (run or {}).get("cameras") or {}:
            if name not in names:
                names.append(name)
    if not names and record.get("status") != "finished":
        names = [
            name
            for name in record.get("cameras") or {}
            if any((folder / f"{name}{suffix}").is_file() for suffix in POSE_FILE_SUFFIXES)
        ]
    return names


def _camera_files(
    folder: Path, record: dict[str, Any], name: str, problems: list[str]
) -> CameraFiles | None:
    said = len(problems)
    videos = _videos(folder, record, name, problems)
    if not videos and len(problems) == said:  # kept when a swapped video was named
        return None

    def beside(suffix: str) -> Path | None:
        path = folder / f"{name}{suffix}"
        return path if path.is_file() else None

    return CameraFiles(
        name=name,
        videos=videos,
        pose_exact=beside(POSE_EXACT_SUFFIX),
        pose_csv=beside(POSE_CSV_SUFFIX),
        pose_times=beside(POSE_TIMES_SUFFIX),
        pose_timing=beside(POSE_TIMING_SUFFIX),
        truth=beside(".truth.csv"),
    )


def _videos(
    folder: Path, record: dict[str, Any], name: str, problems: list[str]
) -> tuple[VideoPart, ...]:
    """Return the camera's recordings; for a replay, its video (live frame i = video frame i)."""
    # A replay's video is taken only while it is the one replayed (its recorded SHA-256): a swapped
    # video is said in problems and not analysed.
    camera = (record.get("cameras") or {}).get(name) or {}
    parts = []
    for recording in camera.get("recordings") or []:
        video = recording.get("video")
        if not video:
            continue
        if not (folder / video).exists() and not (folder / video).is_symlink():
            raise VerifyError(
                f"{folder / video}: gone. session.json says camera {name!r} was recorded into "
                "it, and verify analyses the recorded frames again: restore it from a copy of "
                "the session folder"
            )
        table = recording.get("frames_table") or f"{name}{FRAMES_TABLE_SUFFIX}"
        table_path = folder / table
        if not table_path.is_file():
            raise VerifyError(
                f"{folder / video}: its frames table {table} is missing, so its frames cannot be "
                "placed in the live stream. Keep the session folder whole."
            )
        parts.append(VideoPart(folder / video, table_path))
    replay = record.get("replay") or {}
    if not parts and replay.get("video") and Path(replay["video"]).is_file():
        video = Path(replay["video"])
        recorded = replay.get("video_sha256")
        if recorded and file_sha256(video) != recorded:
            problems.append(
                f"{video}: the replay's source video was swapped: its SHA-256 is not the one "
                f"recorded ({recorded[:12]}... then); the live keypoints are not compared with "
                "another video"
            )
        else:
            parts.append(VideoPart(video, None))
    return tuple(parts)


def changed_lab_files(recorded: list[dict[str, Any]]) -> list[str]:
    """Say which of the lab's files a session ran (recorded with their SHA-256) are gone or changed.

    Verify imports a lab's plugin only from where the session found it, and only while it is the
    code that ran: a file named here is not imported (core/plugins/ ``import_recorded_file``).
    """
    problems = []
    for entry in recorded:
        file, digest = (entry or {}).get("file"), (entry or {}).get("sha256")
        if not file or not digest or Path(file).suffix.lower() == ".ini":
            continue  # a config is data: its run's plan holds the text that ran
        what = f"the lab's {entry.get('kind') or 'plugin'} {entry.get('name')!r} ({file})"
        path = Path(file)
        if not path.is_file():
            problems.append(f"{what} is gone: what it did cannot be re-derived")
        elif file_sha256(path) != digest:
            problems.append(
                f"{what} changed since the session (its SHA-256 differs): it is not run again"
            )
    return problems
