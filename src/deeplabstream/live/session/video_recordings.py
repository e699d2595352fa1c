"""A session's video recordings: one recorder process per camera, started, stopped, accounted.

Every frame captured while recording is in the files or counted lost.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from pathlib import Path

from deeplabstream.core.errors import OutputError
from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.logs import LogTarget
from deeplabstream.core.priority import ProcessPriority
from deeplabstream.live.processes.messages import RecorderFinished
from deeplabstream.live.processes.recording.recorder import RecorderJob, RecorderProcess
from deeplabstream.live.session.cameras import OPEN_TIMEOUT_S, CameraBranch
from deeplabstream.outputs.folder import too_little_space
from deeplabstream.outputs.frames_table import repair_frames_table
from deeplabstream.outputs.video import count_decodable_frames
from deeplabstream.settings.sections import RecordingSettings
from deeplabstream.transport.ring import Channel

log = logging.getLogger(__name__)

#: How long the stop waits for recorders that keep writing (a ring's worth of frames to encode);
#: one that gives no sign of life is ended within seconds (live.processes.recording.recorder).
RECORDER_STOP_TIMEOUT_S = 120.0


class RecordingError(OutputError, RuntimeError):
    """Recording cannot start (not enough disk space, stream not running)."""


def is_recording(branches: list[CameraBranch]) -> bool:
    """Return True while any camera's recorder runs."""
    return any(b.recorder is not None and b.recorder.running for b in branches)


def start_recordings(
    context: SpawnContext,
    branches: list[CameraBranch],
    session_dir: Path,
    settings: RecordingSettings,
    log_level: int,
    priority: ProcessPriority | None,
    report_error: Callable[[str], None],
) -> None:
    """Start a recorder per streaming camera to record; return once all of them are subscribed.

    Raises RecordingError: disk too full, no camera to record, or a recorder did not start.
    """
    check_free_space(session_dir, settings)
    starting = [
        b for b in branches if not b.ended and b.recorder is None and b.settings.common.record
    ]
    if not starting and not is_recording(branches):
        raise RecordingError(
            "no camera to record: every camera has RECORD = false (the Session form's "
            "Record boxes) or has ended"
        )
    for branch in starting:
        branch.recorder = spawn_recorder(
            context, branch, session_dir, settings, log_level, priority
        )
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    for branch in starting:
        assert branch.recorder is not None
        if not branch.recorder.await_ready(deadline):
            take_recorder_result(branch, report_error)
            raise RecordingError(f"camera {branch.name!r}: the recorder did not start")


def request_stops(branches: list[CameraBranch]) -> None:
    """Ask every running recorder to finish (frames announced so far are still written)."""
    for branch in branches:
        if branch.recorder is not None:
            branch.recorder.request_stop()


def collect_recorders(
    branches: list[CameraBranch],
    session_dir: Path | None,
    report_error: Callable[[str], None],
    hurry: Callable[[], bool] | None = None,
) -> None:
    """Wait for every recorder asked to stop (bounded); account what each wrote."""
    deadline = time.monotonic() + RECORDER_STOP_TIMEOUT_S
    for branch in branches:
        recorder = branch.recorder
        if recorder is None:
            continue
        recorder.collect(deadline, hurry)
        if branch.recorder_entry is None:
            take_recorder_result(branch, report_error)
        account_recording(branch, recorder, session_dir)
        branch.recorder, branch.recorder_entry = None, None


def spawn_recorder(
    context: SpawnContext,
    branch: CameraBranch,
    session_dir: Path,
    settings: RecordingSettings,
    log_level: int,
    priority: ProcessPriority | None,
) -> RecorderProcess:
    """Start a recorder process on the camera's RECORD channel."""
    assert branch.ring is not None and branch.opened is not None
    ring, nominal_fps = branch.ring.spec, branch.opened.nominal_fps

    def job_for(control: Connection, heartbeat: Heartbeat) -> RecorderJob:
        return RecorderJob(
            camera_id=branch.camera_id,
            camera_name=branch.name,
            ring=ring,
            channel=branch.channel_ends[Channel.RECORD],
            control=control,
            session_dir=session_dir,
            settings=settings,
            nominal_fps=nominal_fps,
            log_target=LogTarget(log_level),
            priority=priority,
            heartbeat=heartbeat,
            part=len(branch.recordings) + 1,  # a recording stopped before has its own files
            doorbell=branch.doorbell,
        )

    recorder = RecorderProcess.start(context, job_for, f"recorder:{branch.name}")
    branch.recorder_pids[recorder.process.name] = recorder.process.pid
    return recorder


def account_recording(
    branch: CameraBranch, recorder: RecorderProcess, session_dir: Path | None
) -> None:
    """Make the recording's figures hold: recorded + lost = captured while it was on."""
    message = recorder.finished
    entry = branch.recorder_entry
    if message is None or entry is None or message.first_seq < 0:
        return
    failed = message.error is not None
    end_seq = message.last_seq
    if failed and branch.ring is not None and branch.ring.header is not None:
        end_seq = int(branch.ring.header["write_seq"]) - 1
    recorded = message.frames_recorded
    if failed and session_dir is not None and message.video_file:
        recorded = verify_recording(session_dir, message)
    expected = end_seq - message.first_seq + 1
    lost = max(message.frames_lost, expected - recorded)
    if (recorded, lost) != (message.frames_recorded, message.frames_lost):
        log.warning(
            "camera %r: the recording holds %d frame(s); %d captured while it was on are "
            "counted lost",
            branch.name,
            recorded,
            lost,
        )
    branch.recordings[entry] = dataclasses.replace(
        message, frames_recorded=recorded, frames_lost=lost, last_seq=end_seq
    )


def take_recorder_result(branch: CameraBranch, report_error: Callable[[str], None]) -> None:
    """Add the finished recorder's result to the camera's recordings; report its losses."""
    assert branch.recorder is not None and branch.recorder.finished is not None
    message = branch.recorder.finished
    branch.recorder_entry = len(branch.recordings)
    branch.recordings.append(message)
    if message.error:
        report_error(f"camera {branch.name!r}: {message.error}")
    if message.frames_lost:
        log.warning(
            "camera %r: %d frame(s) could not be recorded (recorder fell behind)",
            branch.name,
            message.frames_lost,
        )


def recording_losses(branches: list[CameraBranch]) -> list[str]:
    """Return an error for each camera with frames captured while recording but not in the files."""
    errors = []
    for branch in branches:
        lost = sum(r.frames_lost for r in branch.recordings)
        if lost:
            recorded = sum(r.frames_recorded for r in branch.recordings)
            errors.append(
                f"camera {branch.name!r}: {lost} of {lost + recorded} frames captured while "
                "recording are not in the recording (see frames_lost_in_recording)"
            )
    return errors


def check_free_space(session_dir: Path, settings: RecordingSettings) -> None:
    """Raise RecordingError when the disk has less than ``[Recording] MIN_FREE_SPACE`` free."""
    problem = too_little_space(session_dir, settings.min_free_space)
    if problem is not None:
        raise RecordingError(problem)


def verify_recording(session_dir: Path, message: RecorderFinished) -> int:
    """Return the frames of a failed recording that decode; cut its frames table to them."""
    decodable = count_decodable_frames(session_dir / message.video_file)
    table = session_dir / message.frames_table
    if not table.exists():
        return decodable
    kept = repair_frames_table(table, decodable)
    if kept < decodable:  # the table lost rows the video holds: those frames have no times
        log.warning(
            "%s: %d frame(s) have no row; counted lost", message.video_file, decodable - kept
        )
    return kept
