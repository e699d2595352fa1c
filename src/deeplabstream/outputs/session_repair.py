"""Killed sessions: their ``session.json`` marked ``interrupted`` and counted from their files.

A damaged record is moved aside, never deleted (docs/reliability.md).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from deeplabstream.core.liveness import is_same_process_running
from deeplabstream.core.regular_files import regular_file
from deeplabstream.outputs.folder import (
    SESSION_JSON,
    is_session_name,
    move_aside,
    release_reserve,
    write_json_atomic,
)
from deeplabstream.outputs.frames_table import count_table_rows, repair_frames_table
from deeplabstream.outputs.pose.recovery import finish_events, rebuild_camera_figures
from deeplabstream.outputs.schema_check import json_kind
from deeplabstream.outputs.session_record import (
    VERDICTS,
    CameraRecord,
    Counted,
    DamagedRecordError,
    ExperimentRun,
    Health,
    PoseCamera,
    PoseRun,
    Recording,
    SessionRecord,
    load_record,
    parse_or_keep,
    read_record_data,
)
from deeplabstream.outputs.video import count_decodable_frames

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What the start found in the output folder: sessions marked, damaged files moved aside."""

    interrupted: list[Path] = field(default_factory=list)  # session folders marked interrupted
    damaged: list[Path] = field(default_factory=list)  # session.json files moved aside (new names)
    warnings: list[str] = field(default_factory=list)  # one per damaged file, naming it


def recover_interrupted_sessions(output_dir: Path) -> Recovery:
    """Mark the sessions in ``output_dir`` whose processes were killed; free their reserve.

    A damaged ``session.json`` is moved aside and named in the returned warnings.
    """
    recovery = Recovery()
    if not output_dir.is_dir():
        return recovery
    for folder in sorted(output_dir.iterdir()):
        if not is_session_name(folder.name) or not folder.is_dir():
            continue
        path = folder / SESSION_JSON
        try:
            if _recover_one(folder, path):
                recovery.interrupted.append(folder)
        except DamagedRecordError as damage:
            target, text = move_aside(path, str(damage))
            if target is not None:
                recovery.damaged.append(target)
            recovery.warnings.append(text)
        except OSError as error:  # unreadable or unwritable: left as it is, said once
            log.warning("%s: not checked for an interrupted session: %s", path, error)
    return recovery


def _recover_one(folder: Path, path: Path) -> bool:
    """Mark one session interrupted when its process is gone; True when it was marked."""
    try:
        data = read_record_data(path)
    except FileNotFoundError:
        return False
    if not isinstance(data, dict):
        raise DamagedRecordError(f"holds {json_kind(data)}, not an object")
    if data.get("status") != "running":
        return False
    record = SessionRecord.from_json(data, "session.json")
    pid = record.processes.get("main")
    if pid is not None and is_same_process_running(pid, record.main_process_started):
        return False
    note = (
        f"{_INTERRUPTED}: its main process ({pid}) ended without finalising "
        f"it (killed, or the machine stopped); found on "
        f"{datetime.now().astimezone().isoformat(timespec='seconds')}. Its cameras' "
        "recordings, analyses and experiments are counted from its files (what was written "
        "until then); its other figures are those of its last update."
    )
    cameras = {
        name: _repaired_camera(folder, name, camera) for name, camera in record.cameras.items()
    }
    record = dataclasses.replace(
        record, status="interrupted", errors=(*record.errors, note), cameras=cameras
    )
    write_json_atomic(path, _counted_or_said(folder, record).to_json())
    release_reserve(folder)
    return True


def _repaired_camera(folder: Path, name: str, camera: CameraRecord) -> CameraRecord:
    """Cut each of the camera's frames tables to the frames its video holds; re-derive figures."""
    # The rules (recorded + lost = captured while recording, captured >= recorded + lost):
    # docs/reliability.md, the whole session killed with its files ahead of session.json.
    after = _frames_after(folder, name, camera)
    if not camera.recordings and not after:
        return camera
    recordings = tuple(_repaired_recording(folder, r, after) for r in camera.recordings)
    recorded = sum(r.frames for r in recordings)
    lost = sum(r.lost for r in recordings)
    return dataclasses.replace(
        camera,
        recordings=recordings,
        frames_captured=max(camera.frames_captured + after, recorded + lost),
        frames_recorded=recorded,
        frames_lost_in_recording=lost,
        frames_dropped=camera.frames_dropped_by_camera + lost,
        repaired_from_files=True,
    )


def _repaired_recording(folder: Path, recording: Recording, after: int) -> Recording:
    """Cut one recording's table to its video and re-derive its ``frames`` and ``lost``."""
    video, table = recording.video, recording.frames_table
    if not (video and table and (folder / table).is_file()):
        return recording
    if (folder / video).exists() and not (folder / video).is_file():
        return recording  # a FIFO or a device: opening it could block the start for ever
    taken = count_table_rows(folder / table)  # before the cut: every frame the recorder took
    recorded = repair_frames_table(folder / table, count_decodable_frames(folder / video))
    captured = max(recording.frames, taken) + recording.lost
    if recording.running and recording.captured is not None:
        captured = max(captured, recording.captured + after)
    present = None if recording.present is None else recording.present - {"running", "captured"}
    return dataclasses.replace(
        recording,
        frames=recorded,
        lost=captured - recorded,
        running=None,
        captured=None,
        present=present,
    )


def _frames_after(folder: Path, name: str, camera: CameraRecord) -> int:
    """Return the frames camera ``name`` delivered after its last update's newest frame (files')."""
    last = camera.last_frame_index
    if last is None:
        return 0
    tables = [folder / r.frames_table for r in camera.recordings if r.frames_table]
    times = [folder / f"{name}{label}.pose_times.csv" for label in _run_labels(folder, name)]
    found = [_rows_after(path, last, "frame_index", "host_timestamp") for path in tables + times]
    return max(found, default=0)


def _run_labels(folder: Path, name: str) -> list[str]:
    """Return the labels of camera ``name``'s analyses whose files are in ``folder``."""
    labels: list[str] = []
    while (folder / f"{name}{_run_label(len(labels) + 1)}.pose_times.csv").is_file():
        labels.append(_run_label(len(labels) + 1))
    return labels


def _run_label(number: int) -> str:
    """Return what goes between a camera's name and its files' suffixes in the n-th analysis."""
    return "" if number == 1 else f".run{number}"


def _rows_after(path: Path, last_index: int, index_column: str, time_column: str) -> int:
    """Count a table's whole rows of frames after ``last_index`` that have an arrival time."""
    try:
        with regular_file(path).open(newline="", encoding="utf-8", errors="replace") as file:
            text = file.read()
    except (FileNotFoundError, NotADirectoryError):
        return 0
    whole = text[: text.rfind("\n") + 1]  # a cut last row does not count
    count = 0
    for row in csv.DictReader(io.StringIO(whole)):
        try:
            if int(row.get(index_column) or "") > last_index and row.get(time_column):
                count += 1
        except ValueError:  # a damaged row: no frame of it is counted
            continue
    return count


def repair_interrupted_session(folder: Path) -> bool:
    """Make a killed session's record say what its files hold; True when it was rewritten.

    A ``running`` record whose process is gone is marked interrupted; an older version's
    uncounted ``interrupted`` one is counted from its files. Raises DamagedRecordError or
    OSError.
    """
    path = folder / SESSION_JSON
    if _recover_one(folder, path):
        log.warning("session %s was interrupted (killed); marked so in its session.json", folder)
        return True
    record = load_record(path)
    if record.status != "interrupted":
        return False
    counted = counted_from_files(folder, record)
    if counted == record:
        return False
    write_json_atomic(path, counted.to_json())
    log.warning("session %s was interrupted: counted from its files in its session.json", folder)
    return True


# -- a killed session's record, counted from its files -----------------------------------------

#: What goes between a camera's name and ``.pose.csv`` for the n-th analysis (``.run2``), and
#: into ``events<label>.csv`` for the n-th experiment: outputs.folder.run_label's names.
_RUN_LABEL = re.compile(r"(?:\.run(\d+))?")
#: How the interruption's error begins (:func:`_recover_one`'s note).
_INTERRUPTED = "the session was interrupted"


def counted_from_files(folder: Path, record: SessionRecord) -> SessionRecord:
    """Return an interrupted session's record counted and judged from its files, as a finished one.

    Its figures come from the pose files, its experiments' events from their events files
    (ended with a ``finish`` row); what the record already counts is kept.
    """
    pose_runs = _repaired_pose_runs(folder, record)
    why = next((e for e in record.errors if e.startswith(_INTERRUPTED)), _INTERRUPTED)
    experiment_runs = _repaired_experiment_runs(folder, record, why.split(";")[0])
    return dataclasses.replace(
        record,
        pose=pose_runs[-1] if pose_runs else record.pose,
        pose_runs=pose_runs,
        experiment=experiment_runs[-1] if experiment_runs else record.experiment,
        experiment_runs=experiment_runs,
        health=_judged_again(record.health, record.errors, record.warnings),
    )


def _counted_or_said(folder: Path, record: SessionRecord) -> SessionRecord:
    """Return :func:`counted_from_files`; an unreadable file is an error of the record."""
    try:
        return counted_from_files(folder, record)
    except (ValueError, csv.Error) as error:
        errors = (*record.errors, f"its analyses and experiments were not counted: {error}")
        health = _judged_again(record.health, errors, record.warnings)
        return dataclasses.replace(record, errors=errors, health=health)


def _judged_again(health: Health, errors: tuple[str, ...], warnings: tuple[str, ...]) -> Health:
    """Return ``health`` with the verdict and ``counted`` of these errors, as a live session's."""
    worst = VERDICTS.index(health.verdict)
    if errors:
        worst = VERDICTS.index("error")
    elif warnings:
        worst = max(worst, VERDICTS.index("warning"))
    counted = Counted(errors=len(errors), warnings=len(warnings))
    return dataclasses.replace(health, verdict=VERDICTS[worst], counted=counted)


def _repaired_pose_runs(folder: Path, record: SessionRecord) -> tuple[PoseRun, ...]:
    """Return every analysis, each camera's figures read from its pose files where it has none."""
    runs = list(record.pose_runs)
    while _pose_files_of_run(folder, record, len(runs) + 1):
        runs.append(PoseRun())
    repaired = []
    for number, run in enumerate(runs, start=1):
        cameras = dict(run.cameras)
        for camera, pose_csv in _pose_files_of_run(folder, record, number).items():
            if camera not in cameras:
                cameras[camera] = _pose_figures_from_files(folder, camera, pose_csv)
        repaired.append(dataclasses.replace(run, cameras=cameras))
    return tuple(repaired)


def _pose_files_of_run(folder: Path, record: SessionRecord, number: int) -> dict[str, Path]:
    """Return the pose CSV of each of the record's cameras in the ``number``-th analysis."""
    files = {name: folder / f"{name}{_run_label(number)}.pose.csv" for name in record.cameras}
    return {name: path for name, path in files.items() if path.is_file()}


def _pose_figures_from_files(folder: Path, camera: str, pose_csv: Path) -> PoseCamera:
    """Return one camera's analysis figures from its pose files, nothing guessed."""
    label = pose_csv.name.removeprefix(camera).removesuffix(".pose.csv")
    figures = rebuild_camera_figures(folder, camera, label)
    for unknown in ("deadline", "frames_lost", "frames_not_analysed_worker_gone"):
        figures.pop(unknown, None)
    return parse_or_keep(PoseCamera, figures, f"pose.cameras.{camera}")


def _repaired_experiment_runs(
    folder: Path, record: SessionRecord, why: str
) -> tuple[ExperimentRun, ...]:
    """Return every experiment, one whose summary never came rebuilt from its events file."""
    named = {run.events_file for run in record.experiment_runs}
    rebuilt = []
    for path in _events_files(folder):
        if path.name in named:
            continue
        summary = finish_events(path, why)
        if summary is not None:
            summary.update(state="interrupted")
            rebuilt.append(parse_or_keep(ExperimentRun, summary, f"experiment.{path.name}"))
    return (*record.experiment_runs, *rebuilt)


def _events_files(folder: Path) -> list[Path]:
    """Return the folder's events files in run order: events.csv, events.run2.csv, ..."""
    found = {}
    for path in folder.glob("events*.csv"):
        if not path.is_file():  # a FIFO would block the start: only regular files are read
            continue
        match = _RUN_LABEL.fullmatch(path.name.removeprefix("events").removesuffix(".csv"))
        if match is not None:
            found[int(match.group(1) or 1)] = path
    return [found[number] for number in sorted(found)]
