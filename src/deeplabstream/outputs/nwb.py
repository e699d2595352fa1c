"""One session folder as one NWB file, ``session.nwb`` (pynwb with the ndx-pose extension).

Built from the folder's files, at the stop or with ``deeplabstream-nwb SESSION_FOLDER``.
What goes where: docs/outputs.md, "NWB (session.nwb)".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeplabstream.core.errors import OutputError
from deeplabstream.core.optional import exit_with
from deeplabstream.core.regular_files import SpecialFileError, open_regular, regular_file
from deeplabstream.outputs.nwb_forms import experimenters, parse_date_of_birth
from deeplabstream.outputs.nwb_times import TimeBase, video_frame_times
from deeplabstream.outputs.pose.table import is_multi_animal_csv
from deeplabstream.outputs.session_record import (
    CameraRecord,
    DamagedRecordError,
    Metadata,
    ModelRecord,
    Recording,
    SessionRecord,
    read_session_folder,
)
from deeplabstream.outputs.session_repair import repair_interrupted_session

NWB_FILE = "session.nwb"
SOURCE_SOFTWARE = "DeepLabStream"
EVENTS_TABLE = "experiment_events"
BEHAVIOR_MODULE = "behavior"
REFERENCE_FRAME = (
    "image pixels of the camera's frame: x to the right, y down, (0, 0) the centre of the "
    "top-left pixel (as OpenCV and DeepLabCut)"
)
# events.csv's host-clock columns, written to the events table as session seconds.
_EVENT_TIMES = ("pose_ready", "decided", "written", "acknowledged")
# The columns of the frames and pose times tables that hold numbers.
_TIME_COLUMNS = ("frame_index", "camera_timestamp", "host_timestamp")
# events.csv's "name" becomes "event_name": a table's own attribute is called "name".
_EVENT_TEXT = ("kind", "event_name", "detail", "camera", "keypoint", "events_file")
_EVENT_NUMBERS = (
    "time_s",
    "frame_index",
    "camera_timestamp",
    "measured_x",
    "measured_y",
    "predicted_x",
    "predicted_y",
    "lead_ms",
    "likelihood",
)


class NwbError(OutputError):
    """The session folder lacks a file the NWB file needs, or a file cannot be read."""


class NwbIncompleteError(NwbError):
    """The NWB file was written, but some of the folder's data could not be put in it.

    ``path``: the file written; ``left_out``: each part not in it.
    """

    def __init__(self, path: Path, left_out: list[str]) -> None:
        self.path, self.left_out = path, left_out
        super().__init__(f"{path} was written, but these were left out: {'; '.join(left_out)}")


def write_session_nwb(session_dir: Path, path: Path | None = None) -> Path:
    """Write the session folder as an NWB file (default ``session_dir/session.nwb``, replaced).

    Raises NwbError when a file it needs is missing or unreadable, NwbIncompleteError when
    written without some of the folder's data.
    """
    from pynwb import NWBHDF5IO

    session_dir = Path(session_dir)
    target = Path(path) if path is not None else session_dir / NWB_FILE
    left_out: list[str] = []
    nwbfile = build_nwbfile(session_dir, target.parent, left_out)
    partial = target.with_name(f".{target.stem}.partial.nwb")
    try:
        with NWBHDF5IO(str(partial), mode="w") as io:
            io.write(nwbfile)
        partial.replace(target)  # a reader never sees half a file under the final name
    finally:
        partial.unlink(missing_ok=True)
    if left_out:
        raise NwbIncompleteError(target, left_out)
    return target


def build_nwbfile(
    session_dir: Path, nwb_dir: Path | None = None, left_out: list[str] | None = None
) -> Any:
    """Return the ``pynwb.NWBFile`` of ``session_dir``, not yet written.

    ``left_out`` gets a line for each part of the folder's data the file cannot hold.
    """
    from pynwb import NWBFile

    left_out = left_out if left_out is not None else []
    session = _finished_record(session_dir)
    started = datetime.fromisoformat(_required(session.started, "started", session_dir))
    clock = _time_base(session_dir, session)
    metadata = session.metadata
    nwbfile = NWBFile(
        session_description=_session_description(session_dir, session, clock),
        identifier=str(uuid.uuid4()),
        session_start_time=started,
        session_id=session_dir.name,
        experimenter=experimenters(metadata.experimenter) or None,
        notes=metadata.notes or None,
        experiment_description=_experiment_description(metadata, session),
        institution=metadata.institution or None,
        lab=metadata.lab or None,
        data_collection=_settings_text(session),
    )
    nwbfile.subject = _subject(metadata)
    nwb_dir = Path(nwb_dir) if nwb_dir is not None else session_dir
    videos = _add_cameras(nwbfile, (session_dir, nwb_dir), session, clock)
    exported = _add_poses(nwbfile, session_dir, session, clock, videos, left_out)
    events = _read_events(session_dir, session, clock)
    if not events.empty:
        _add_trials(nwbfile, events)
        _add_events(nwbfile, events, clock)
    left_out += _files_not_exported(session_dir, exported | set(_events_files(session)))
    return nwbfile


def _files_not_exported(session_dir: Path, exported: set[str]) -> list[str]:
    """Name the folder's pose and events files that no run of ``session.json`` wrote."""
    found = sorted({*session_dir.glob("*.pose.csv"), *session_dir.glob("events*.csv")})
    return [
        f"{path.name} (session.json names no analysis or experiment that wrote it: move it "
        "out of the session folder if it is not this session's)"
        for path in found
        if path.name not in exported
    ]


# -- session.json --------------------------------------------------------------------------


def _read_session_json(session_dir: Path) -> SessionRecord:
    """Return ``session.json`` of the folder, or raise :class:`NwbError` naming what is wrong."""
    return read_session_folder(session_dir, NwbError)


def _finished_record(session_dir: Path) -> SessionRecord:
    """Return the folder's record, a killed session's repaired first; a running one is refused."""
    session = _read_session_json(session_dir)
    if session.status not in ("running", "interrupted"):
        return session
    try:
        repaired = repair_interrupted_session(session_dir)
    except (OSError, DamagedRecordError) as error:
        raise NwbError(f"{session_dir / 'session.json'}: cannot be repaired: {error}") from None
    if session.status == "running" and not repaired:
        raise NwbError(
            f"{session_dir}: the session is still running (process {session.processes.get('main')})"
            "; export it once it has stopped"
        )
    return _read_session_json(session_dir) if repaired else session


def _required(value: Any, key: str, session_dir: Path) -> Any:
    """Return ``value`` (the record's ``key``); raise :class:`NwbError` when it is empty."""
    if not value:
        raise NwbError(f"{session_dir / 'session.json'}: has no {key!r}")
    return value


def _time_base(session_dir: Path, session: SessionRecord) -> TimeBase:
    """Return the file's clock: the host clock live, the video's own times for a replay."""
    if not session.has("clock"):
        raise NwbError(f"{session_dir / 'session.json'}: has no 'clock'")
    start = float(session.clock.host_time_at_start)
    if not session.is_replay():
        return TimeBase(start)
    camera, entry = next(iter(session.cameras.items()))
    times_file = session_dir / f"{camera}.pose_times.csv"
    if not times_file.is_file():  # no analysis (or an older session): frames alone give times
        return TimeBase(start, video=True)
    table = _read_csv(times_file, usecols=["frame_index", "host_timestamp", "camera_timestamp"])
    table = table.dropna(subset=["host_timestamp"])
    video = video_frame_times(table, entry.nominal_fps)
    host = table["host_timestamp"].to_numpy(dtype=float)
    order = np.argsort(host, kind="stable")
    return TimeBase(start, video=True, host_to_video=(host[order], video[order]))


def _session_description(session_dir: Path, session: SessionRecord, clock: TimeBase) -> str:
    """Return one sentence saying what the session was: its cameras, pose and experiment."""
    cameras = ", ".join(session.cameras) or "no camera"
    kind = "replay of a video" if clock.video else "session"
    parts = [f"DeepLabStream {kind} {session_dir.name}: cameras {cameras}"]
    model = session.pose.model if session.pose is not None else None
    if model is not None and model.to_json():
        parts.append(f"pose model {model.name} ({model.framework})")
    experiment = session.experiment
    if experiment is not None and experiment.name:
        parts.append(f"experiment {experiment.name}")
    if session.stop_reason:
        parts.append(f"ended: {session.stop_reason}")
    if clock.video:
        parts.append(
            "every time in this file is the replayed video's own time of a frame (its "
            "presentation time, s from the video's first frame), not the time of the replay"
        )
    else:
        parts.append("every time in this file is host-clock seconds from session_start_time")
    return "; ".join(parts) + "."


def _experiment_description(metadata: Metadata, session: SessionRecord) -> str | None:
    """Return ``[Session] EXPERIMENT_DESCRIPTION``, with the experiment run; None without both."""
    experiment = session.experiment
    run = ""
    if experiment is not None and experiment.name:
        description = experiment.description or ""
        run = f"{experiment.name}: {description}" if description else experiment.name
    given = metadata.experiment_description
    if given and run:
        return f"{given} (experiment {run})"
    return given or run or None


def _settings_text(session: SessionRecord) -> str:
    """Return the effective settings and versions of ``session.json`` as JSON text."""
    text = json.dumps(
        {
            "settings": session.settings if session.has("settings") else None,
            "versions": session.versions if session.has("versions") else None,
        },
        indent=1,
        default=str,
    )
    return "DeepLabStream settings in effect (session.json -> settings, versions):\n" + text


def _subject(metadata: Metadata) -> Any:
    """Return the subject, ``[Session] ANIMAL`` as its id; None without an animal."""
    # An empty key is left out (nwbinspector reports it) rather than guessed; sex then "U".
    # A slash in the animal's name, which DANDI's paths cannot hold, becomes "-".
    from pynwb.file import Subject

    animal = metadata.animal
    if not animal:
        return None
    known = metadata.subject
    given = {"species": known.species, "age": known.age, "strain": known.strain}
    fields: dict[str, Any] = {key: value for key, value in given.items() if value}
    if known.date_of_birth:
        fields["date_of_birth"] = parse_date_of_birth(known.date_of_birth)
    description = "the animal of [Session] ANIMAL"
    subject_id = animal.replace("/", "-")
    if subject_id != animal:
        description += f" ({animal!r}: '/' written as '-')"
    return Subject(subject_id=subject_id, sex=known.sex or "U", description=description, **fields)


# -- cameras and videos --------------------------------------------------------------------


def _add_cameras(
    nwbfile: Any,
    folders: tuple[Path, Path],
    session: SessionRecord,
    clock: TimeBase,
) -> dict[str, list[tuple[Any, np.ndarray]]]:
    """Add a Device per camera and an ImageSeries per video; return them, with their times."""
    session_dir, _ = folders
    videos: dict[str, list[tuple[Any, np.ndarray]]] = {}
    for name, entry in session.cameras.items():
        device = nwbfile.create_device(name=name, **_device_fields(entry))
        fps = entry.nominal_fps
        found = [_recorded_video(session_dir, r, clock, fps) for r in entry.recordings]
        if not entry.recordings:  # a replay: the video it replayed is the recording
            found = [_replayed_video(session_dir, name, entry, clock)]
        videos[name] = []
        for video in filter(None, found):
            number = len(videos[name]) + 1
            series = _video_series((name, number), video, entry, device, folders, clock)
            nwbfile.add_acquisition(series)
            videos[name].append((series, video.times))
    return videos


@dataclass(frozen=True)
class _Video:
    """A video file of a camera and each of its frames' times (the file's seconds)."""

    path: Path
    times: np.ndarray
    times_from: str


def _recorded_video(
    session_dir: Path, recording: Recording, clock: TimeBase, fps: float | None
) -> _Video | None:
    """Return one recording's video and frame times, or None without its files or frames."""
    video, table = recording.video, recording.frames_table
    if not video or not table:
        return None
    frames = _read_csv(session_dir / table)
    if frames.empty:  # a recording that got no frame: no video to point at
        return None
    if clock.video:
        times = video_frame_times(frames, fps)
    else:
        times = clock.frame_times(frames["host_timestamp"])
    return _Video(session_dir / video, times, table)


def _replayed_video(
    session_dir: Path, camera: str, entry: CameraRecord, clock: TimeBase
) -> _Video | None:
    """Return the video a replay read, when ``pose_times.csv`` times every frame from 0, or None."""
    file = entry.device.get("file")  # the video camera plugin's own description
    times_file = session_dir / f"{camera}.pose_times.csv"
    if not file or not Path(file).is_file() or not times_file.is_file():
        return None
    table = _read_csv(times_file, usecols=["frame_index", "host_timestamp", "camera_timestamp"])
    index = table["frame_index"].to_numpy()
    if clock.video:
        times = video_frame_times(table, entry.nominal_fps)
    else:
        times = clock.frame_times(table["host_timestamp"])
    if len(index) == 0 or np.isnan(times).any() or not np.array_equal(index, np.arange(len(index))):
        return None
    return _Video(Path(file), times, times_file.name)


def _device_fields(entry: CameraRecord) -> dict[str, Any]:
    """Return the Device's description, model and serial number from a camera's entry."""
    device = entry.device  # the camera plugin's own description of itself
    size = f"{entry.width} x {entry.height} px"
    fps = entry.nominal_fps
    kind = f" ({device['kind']})" if device.get("kind") else ""
    source = entry.source if entry.source is not None else "a"
    description = f"{source} camera{kind}, {size}"
    if fps:
        description += f", {fps} fps"
    fields: dict[str, Any] = {"description": description}
    if device.get("model"):
        fields["model_number"] = str(device["model"])
    if device.get("serial"):
        fields["serial_number"] = str(device["serial"])
    return fields


def _video_series(
    camera_and_number: tuple[str, int],
    video: _Video,
    entry: CameraRecord,
    device: Any,
    folders: tuple[Path, Path],
    clock: TimeBase,
) -> Any:
    """Return the external-file ImageSeries of one video of a camera (its ``number``-th)."""
    from pynwb.image import ImageSeries

    camera, number = camera_and_number
    path, inside = external_path(video.path, *folders)
    where = (
        "path relative to this file"
        if inside
        else "absolute path: the video is outside the session folder, so moving the video "
        "(not the session folder) breaks this link"
    )
    return ImageSeries(
        name=f"{camera}_video" if number == 1 else f"{camera}_video{number}",
        description=f"camera {camera}'s raw frames ({video.path.name}; {where}), one "
        f"timestamp per frame: {clock.words} ({video.times_from})",
        external_file=[path],
        format="external",
        starting_frame=[0],
        dimension=[int(entry.width or 0), int(entry.height or 0)],
        unit="n.a.",
        device=device,
        num_samples=len(video.times),  # the file holds no frames to count
        **_timing(video.times),
    )


def external_path(video: Path, session_dir: Path, nwb_dir: Path) -> tuple[str, bool]:
    """Return how the NWB file names ``video``, and whether that path is relative.

    Relative to ``nwb_dir`` when the video is inside the session folder, else absolute; POSIX.
    """
    import os

    resolved = video.resolve()
    if resolved.is_relative_to(session_dir.resolve()):
        try:
            return Path(os.path.relpath(resolved, nwb_dir.resolve())).as_posix(), True
        except ValueError:  # another drive (Windows): no relative path exists
            pass
    return resolved.as_posix(), False


def _timing(times: np.ndarray) -> dict[str, Any]:
    """Return a series' timing: ``timestamps``, or ``starting_time`` and ``rate`` when regular."""
    # NWB's best practices ask for a rate where timestamps are evenly spaced (to the ns).
    if len(times) > 2:
        steps = np.round(np.diff(times), 9)
        if steps[0] > 0 and np.all(steps == steps[0]):
            return {"starting_time": float(times[0]), "rate": float(1 / steps[0])}
    return {"timestamps": times}


def _read_csv(
    path: Path, numbers: tuple[str, ...] | None = _TIME_COLUMNS, **options: Any
) -> pd.DataFrame:
    """Return the table at ``path``; NwbError names a missing or bad file or cell."""
    try:
        table = pd.read_csv(regular_file(path), **options)
    except FileNotFoundError:
        raise NwbError(f"{path.parent}: missing {path.name}") from None
    except SpecialFileError as error:  # a FIFO there would block the export
        raise NwbError(str(error)) from None
    except (OSError, ValueError) as error:
        raise NwbError(f"{path}: cannot be read: {error}") from None
    header = options.get("header", 0)
    _numbers_only(table, path, numbers, len(header) if isinstance(header, list) else header + 1)
    return table


def _numbers_only(
    table: pd.DataFrame, path: Path, numbers: tuple[str, ...] | None, header_lines: int
) -> None:
    """Raise :class:`NwbError` at the first cell of ``numbers`` that is text, not a number."""
    # pandas would read such a column as text, and the later conversion names neither file nor row.
    columns: list[tuple[str, pd.Series | pd.Index]] = []
    if numbers is None:
        if not isinstance(table.index, pd.RangeIndex):
            columns.append(("the frame index (first column)", table.index))
        columns += [(_column_words(c), table[c]) for c in table.columns]
    else:
        columns += [(str(c), table[c]) for c in numbers if c in table.columns]
    for name, values in columns:
        if pd.api.types.is_numeric_dtype(values.dtype):
            continue
        text = pd.Series(np.asarray(values, dtype=object))
        bad = (pd.to_numeric(text, errors="coerce").isna() & text.notna()).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise NwbError(
                f"{path}: line {header_lines + row + 1}, column {name!r}: {text.iloc[row]!r} "
                "is not a number. The session writes numbers there, so the file was edited or "
                "damaged: restore it from a copy, or correct that cell (or delete its row), "
                "then export again"
            )


def _column_words(column: Any) -> str:
    """Return a column's name in words: a pose CSV's (scorer, keypoint, coord) as ``nose x``."""
    if isinstance(column, tuple):
        return " ".join(str(part) for part in column[1:])
    return str(column)


# -- poses ---------------------------------------------------------------------------------


def _add_poses(
    nwbfile: Any,
    session_dir: Path,
    session: SessionRecord,
    clock: TimeBase,
    videos: dict[str, list[tuple[Any, np.ndarray]]],
    left_out: list[str],
) -> set[str]:
    """Add a PoseEstimation per camera, analysis and animal; return the pose files exported."""
    from ndx_pose import Skeletons

    estimates: list[Any] = []
    skeletons: list[Any] = []
    exported: set[str] = set()
    for number, run in enumerate(session.pose_runs, start=1):
        for camera, figures in run.cameras.items():
            pose_file = figures.pose_file
            if not pose_file:
                continue
            exported.add(pose_file)
            model = run.model_of(camera)
            name = camera if number == 1 else f"{camera}_run{number}"
            source = _PoseSource(
                session_dir,
                camera,
                pose_file,
                model,
                clock,
                _nominal_fps(session, camera),
            )
            for individual, pose in _pose_tables(session_dir / pose_file):
                made = _pose_estimation(
                    nwbfile,
                    source,
                    (name if individual is None else f"{name}_{individual}", individual, pose),
                    videos.get(camera, []),
                    left_out,
                )
                if made is not None:  # None: no pose row (the worker ended at once)
                    estimates.append(made[0])
                    skeletons.append(made[1])
    if estimates:
        module = nwbfile.create_processing_module(
            name=BEHAVIOR_MODULE, description="pose estimation by DeepLabStream (ndx-pose)"
        )
        module.add(Skeletons(skeletons=skeletons))
        for estimate in estimates:
            module.add(estimate)
    return exported


def _pose_tables(path: Path) -> list[tuple[str | None, pd.DataFrame]]:
    """Return a pose CSV's table per animal: (None, table) for one, (individual, table) for each."""
    try:
        multi = is_multi_animal_csv(path)
    except FileNotFoundError:
        raise NwbError(f"{path.parent}: missing {path.name}") from None
    except OSError as error:
        raise NwbError(f"{path}: cannot be read: {error}") from None
    if not multi:
        return [(None, _read_csv(path, None, header=[0, 1, 2], index_col=0))]
    table = _read_csv(path, None, header=[0, 1, 2, 3], index_col=0)
    individuals = list(dict.fromkeys(table.columns.get_level_values(1)))
    return [(str(i), table.xs(i, axis=1, level=1, drop_level=True)) for i in individuals]


@dataclass(frozen=True)
class _PoseSource:
    """One pose file of a camera and analysis, and what its rows need to be timed."""

    session_dir: Path
    camera: str
    pose_file: str
    model: ModelRecord
    clock: TimeBase
    fps: float | None  # the camera's nominal rate: a video frame's time is index / fps


def _pose_estimation(
    nwbfile: Any,
    source: _PoseSource,
    animal: tuple[str, str | None, pd.DataFrame],
    videos: list[tuple[Any, np.ndarray]],
    left_out: list[str],
) -> tuple[Any, Any] | None:
    """Return the PoseEstimation of one pose table (``animal``) and its Skeleton."""
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton

    name, individual, pose = animal
    model = source.model
    times = _pose_times(source, pose.index.to_numpy())
    known = ~np.isnan(times)
    untimed = pose.index[~known & pose.notna().any(axis=1).to_numpy()]
    if len(untimed):  # an empty row without a time holds nothing: only posed rows count
        left_out.append(
            f"{len(untimed)} row(s) with keypoints of {source.pose_file} ({name}; frames "
            f"{untimed[0]} to {untimed[-1]}): no file gives their frames' times "
            f"({source.camera}.pose_times.csv, .pose_timing.csv or .frames.csv)"
        )
    pose, times = pose[known], times[known]
    if pose.empty:
        return None
    scorer = str(pose.columns.get_level_values(0)[0])
    keypoints = list(dict.fromkeys(pose.columns.get_level_values(1)))
    pose = pose.sort_index(axis=1)  # lexsorted columns: selecting a keypoint is then cheap
    skeleton = Skeleton(
        name=f"{name}_skeleton",
        nodes=keypoints,
        edges=_edges(model, keypoints),
        subject=nwbfile.subject if individual is None else None,
    )
    timing = _timing(times)
    series: list[Any] = []
    for index, keypoint in enumerate(keypoints):
        columns = pose[scorer, keypoint]
        series.append(
            PoseEstimationSeries(
                name=keypoint,
                description=f"{keypoint} as the model {model.name} placed it",
                data=columns[["x", "y"]].to_numpy(dtype=float),
                unit="pixels",
                reference_frame=REFERENCE_FRAME,
                confidence=columns["likelihood"].to_numpy(dtype=float),
                confidence_definition="the model's likelihood (0 to 1) for the keypoint",
                # every series shares the first one's times, stored once
                **(timing if index == 0 or "rate" in timing else {"timestamps": series[0]}),
            )
        )
    source_video = _source_video(videos, times)
    estimate = PoseEstimation(
        name=name,
        pose_estimation_series=series,
        description=_pose_description(source, individual),
        scorer=scorer,
        source_software=SOURCE_SOFTWARE,
        source_software_version=_model_text(model),
        skeleton=skeleton,
        device=nwbfile.devices.get(source.camera),
        source_video=source_video,
    )
    return estimate, skeleton


def _pose_times(source: _PoseSource, frame_indices: np.ndarray) -> np.ndarray:
    """Return each pose row's time in the file's seconds; NaN where no file gives one."""
    # Best first: pose_times.csv, pose_timing.csv, the frames tables, a replay's index / rate.
    # An untimed empty row is interpolated from its neighbours, keeping the even spacing that
    # tools assume (movement takes time = row / fps).
    session_dir, column = source.session_dir, source.clock.column
    stem = source.pose_file.removesuffix(".pose.csv")
    camera = stem.split(".")[0]
    known: dict[int, float] = {}
    sources = [f"{stem}.pose_times.csv", f"{stem}.pose_timing.csv"]
    sources += sorted(p.name for p in session_dir.glob(f"{camera}*.frames.csv"))
    for name in sources:
        path = session_dir / name
        if not path.is_file() or (name.endswith(".frames.csv") and not _same_camera(name, camera)):
            continue
        table = _read_csv(
            path, (*_TIME_COLUMNS, column), usecols=lambda c: c in ("frame_index", column)
        )
        if column not in table:  # pose_timing.csv has host times only
            continue
        table = table.dropna()
        for index, value in zip(table["frame_index"], table[column], strict=True):
            known.setdefault(int(index), float(value))
    times = np.array([known.get(int(i), np.nan) for i in frame_indices], dtype=float)
    if source.clock.video and source.fps:  # a video's frame without a time: index / rate
        times[np.isnan(times)] = frame_indices[np.isnan(times)] / source.fps
    times = source.clock.frame_times(times)
    found = ~np.isnan(times)
    if found.sum() >= 2 and not found.all():
        inside = (frame_indices > frame_indices[found].min()) & (
            frame_indices < frame_indices[found].max()
        )
        fill = ~found & inside
        times[fill] = np.interp(frame_indices[fill], frame_indices[found], times[found])
    return times


def _same_camera(frames_table: str, camera: str) -> bool:
    """Tell whether ``frames_table`` is one of ``camera``'s own (not a companion's, say)."""
    return frames_table.split(".")[0] == camera


def _edges(model: ModelRecord, keypoints: list[str]) -> np.ndarray:
    """Return the skeleton's edges as pairs of keypoint indices (uint8), none when unknown."""
    pairs = model.skeleton
    if pairs is None:
        pairs = _skeleton_from_model_file(model)
    position = {keypoint: index for index, keypoint in enumerate(keypoints)}
    edges = [(position[a], position[b]) for a, b in pairs if a in position and b in position]
    dtype = np.uint8 if len(keypoints) < 256 else np.uint16
    return np.array(edges, dtype=dtype).reshape(-1, 2)


def _skeleton_from_model_file(model: ModelRecord) -> list[tuple[str, str]]:
    """Return the skeleton in this project's ``model.json`` beside the model file, or none."""
    file = model.file
    if not file:
        return []
    for folder in (Path(file), Path(file).parent):
        path = folder / "model.json"
        try:
            with open_regular(path, encoding="utf-8") as description:
                pairs = json.load(description).get("skeleton") or []
        except (OSError, ValueError, AttributeError):
            continue
        return [(str(a), str(b)) for a, b in pairs]
    return []


def _source_video(videos: list[tuple[Any, np.ndarray]], times: np.ndarray) -> Any:
    """Return the video that holds the analysed frames (the first whose times overlap them)."""
    for series, frame_times in videos:
        if len(times) and frame_times[0] <= times[-1] and times[0] <= frame_times[-1]:
            return series
    return None


def _model_text(model: ModelRecord) -> str:
    """Return the model's name and framework, e.g. ``arena (deeplabstream, fp32)``."""
    details = ", ".join(str(value) for value in (model.framework, model.precision) if value)
    name = model.name if model.name is not None else "unknown model"
    return f"{name} ({details})" if details else str(name)


def _model_files(model: ModelRecord) -> str:
    """Return the model's file, and the file it was converted from where it was."""
    if model.source_file:
        return f"{model.file} (converted from {model.source_file})"
    return str(model.file)


def _pose_description(source: _PoseSource, individual: str | None) -> str:
    """Return what the PoseEstimation holds and where it came from."""
    model, pose_file = source.model, source.pose_file
    animal = (
        f"animal {individual} (its track: the identity tracker's individual {individual} in "
        f"{pose_file}) of "
        if individual is not None
        else ""
    )
    return (
        f"keypoints of {animal}camera {source.camera} from {pose_file}, estimated by "
        f"DeepLabStream with the model {_model_text(model)}; file {_model_files(model)}, input "
        f"{model.input}, decoder {model.decoder}. One row per row of {pose_file}: "
        f"frames not analysed are NaN rows; times are {source.clock.words}."
    )


# -- events and trials ---------------------------------------------------------------------


def _events_files(session: SessionRecord) -> list[str]:
    """Return every events file of the session, in order (one per experiment run)."""
    return [run.events_file for run in session.experiment_runs if run.events_file]


def _nominal_fps(session: SessionRecord, camera: str) -> float | None:
    """Return the camera's nominal rate (None when the record has no such camera)."""
    entry = session.cameras.get(camera)
    return entry.nominal_fps if entry is not None else None


def _read_events(session_dir: Path, session: SessionRecord, clock: TimeBase) -> pd.DataFrame:
    """Return every event with ``time`` (the file's seconds), sorted by it."""
    # Live: the prompting frame's arrival from the session's start. Replay: the frame's video
    # time, latency columns that time plus their delay after the frame's arrival.
    tables = []
    for file in _events_files(session):
        table = _read_csv(
            session_dir / file,
            ("host_timestamp", "trial", *_EVENT_NUMBERS, *_EVENT_TIMES),
            dtype={"detail": str, "name": str, "kind": str, "keypoint": str, "animal": str},
        )
        table["events_file"] = file
        tables.append(table)
    if not tables:
        return pd.DataFrame()
    events = pd.concat(tables, ignore_index=True).rename(columns={"name": "event_name"})
    if events.empty:
        return events
    host = pd.Series(np.nan, index=events.index)
    if "host_timestamp" in events:
        host = pd.to_numeric(events["host_timestamp"], errors="coerce")
    for fallback in ("decided", "written"):  # events no frame prompted (a stop's switch-off)
        if fallback in events:
            host = host.fillna(pd.to_numeric(events[fallback], errors="coerce"))
    host = host.ffill().bfill()
    if host.isna().all():
        raise NwbError(f"{session_dir}: the events have no host times")
    time = clock.moments(host.to_numpy())
    if clock.video and "time_s" in events:  # the experiment's own clock: the video's
        frame_time = pd.to_numeric(events["time_s"], errors="coerce").to_numpy(dtype=float)
        time = np.where(np.isnan(frame_time), time, frame_time)
    events["time"] = time
    for column in _EVENT_TIMES:  # the latency columns, on the same clock as every time
        if column in events:
            after_frame = pd.to_numeric(events[column], errors="coerce") - host
            events[column] = time + after_frame.to_numpy(dtype=float)
    return events.sort_values("time", kind="stable").reset_index(drop=True)


def _add_trials(nwbfile: Any, events: pd.DataFrame) -> None:
    """Add the trials that lasted (``trial_start`` to ``trial_end``) to the trials table."""
    # An instant trial (stop = start) stays in the events only: NWB's best practices want every
    # interval's stop after its start. A trial that never ended lasts to the last event.
    from pynwb.epoch import TimeIntervals

    lasting = list(_lasting_trials(events))
    if not lasting:
        return
    nwbfile.trials = TimeIntervals(
        name="trials",
        description="the experiment's trials that lasted (trial_start to trial_end of "
        "events.csv); instant trials (ended in the update that started them) are in the "
        "events table only",
    )
    nwbfile.add_trial_column("trial", "the trial's number in its experiment run (events.csv)")
    nwbfile.add_trial_column("cause", "the rule or cause that started the trial")
    nwbfile.add_trial_column("end_reason", "why the trial ended (empty: it never ended)")
    nwbfile.add_trial_column("events_file", "the events file of the experiment run")
    for start, stop, end_reason in lasting:
        nwbfile.add_trial(
            start_time=float(start.time),
            stop_time=stop,
            trial=int(start.trial),
            cause=_text(start.event_name),
            end_reason=end_reason,
            events_file=str(start.events_file),
        )


def _lasting_trials(events: pd.DataFrame) -> Any:
    """Yield (trial_start row, stop, end reason) of each trial whose stop is after its start."""
    starts = events[events["kind"] == "trial_start"]
    ends = events[events["kind"] == "trial_end"]
    last = float(events["time"].max())
    for start in starts.itertuples():
        end = ends[(ends["trial"] == start.trial) & (ends["events_file"] == start.events_file)]
        stop = float(end["time"].iloc[0]) if not end.empty else last
        if stop > float(start.time):
            yield start, stop, _text(end["detail"].iloc[0]) if not end.empty else ""


def _add_events(nwbfile: Any, events: pd.DataFrame, clock: TimeBase) -> None:
    """Add every event to the ``experiment_events`` EventsTable (instants, not intervals)."""
    from pynwb.event import EventsTable, TimestampVectorData, VectorData

    columns = [
        TimestampVectorData(
            name="timestamp",
            description=f"the prompting frame's time: {clock.words}",
            data=events["time"].to_numpy(dtype=float),
        )
    ]
    for column, (description, values) in _event_columns(events, clock).items():
        columns.append(VectorData(name=column, description=description, data=values))
    table = EventsTable(
        name=EVENTS_TABLE,
        description="every event of the experiment (events.csv): start, trigger changes, trial "
        "starts and ends, actions, finish; the latency columns (pose_ready, decided, written, "
        f"acknowledged) are on the same clock as the timestamps ({clock.words}), NaN when "
        "empty",
        source_description="DeepLabStream's experiment, live (events.csv)",
        columns=columns,
    )
    nwbfile.add_events_table(table)


def _event_columns(events: pd.DataFrame, clock: TimeBase) -> dict[str, tuple[str, Any]]:
    """Return the events table's columns (description, values); all-empty ones are left out."""
    columns: dict[str, tuple[str, Any]] = {}
    for column in _EVENT_TEXT:
        if column in events:
            source = "name" if column == "event_name" else column
            columns[column] = (f"events.csv's {source}", [_text(v) for v in events[column]])
    reasons = [_text(v) for v in events.get("not_sent", [])]
    if any(reasons):  # only a session whose device went away has commands it did not send
        columns["not_sent"] = (
            "events.csv's not_sent: why an action's command was not sent",
            reasons,
        )
    animals = [_text(v) for v in events.get("animal", [])]
    if any(animals):  # only a multi-animal model's events name animals
        columns["animal"] = (
            "events.csv's animal: the animal(s) that made a trigger or action event, numbered "
            "from 1 ('1+2': both); empty for events no animal made",
            animals,
        )
    trials = pd.to_numeric(events.get("trial", pd.Series(dtype=float)), errors="coerce")
    if trials.notna().any():  # blank outside trials, as in events.csv: NaN in a number column
        columns["trial"] = (
            "the trial it belongs to (1, 2, ...); NaN outside trials (blank in events.csv)",
            trials.to_numpy(dtype=float),
        )
    for column in (*_EVENT_NUMBERS, *_EVENT_TIMES):
        if column not in events:
            continue
        values = pd.to_numeric(events[column], errors="coerce").to_numpy(dtype=float)
        if np.isnan(values).all():  # e.g. the predictions without PREDICT: nothing to keep
            continue
        unit = f", {clock.words}" if column in _EVENT_TIMES else ""
        columns[column] = (f"events.csv's {column}{unit} (NaN when empty)", values)
    return columns


def _text(value: Any) -> str:
    """Return a cell as text, empty for a missing value."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run ``deeplabstream-nwb``; return 0 written, 1 not writable as NWB, 2 bad arguments."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-nwb",
        description="Write a DeepLabStream session folder as an NWB file (pynwb, ndx-pose).",
    )
    parser.add_argument("session_folder", type=Path, help="the session folder (with session.json)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="the NWB file to write (default: SESSION_FOLDER/session.nwb)",
    )
    options = parser.parse_args(argv)
    began = time.monotonic()
    try:
        path = write_session_nwb(options.session_folder, options.output)
    except NwbError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"Error: {options.session_folder}: cannot write NWB: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} in {time.monotonic() - began:.1f} s")
    return 0


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
