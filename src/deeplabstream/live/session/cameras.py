"""The cameras of a session: one branch per camera, its capture process, pipes, ring and figures."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from typing import Any

from deeplabstream.core.control import (
    STOP_POLL_S,
    StopCheck,
    check_stop,
    join_or_terminate,
    receive,
    receive_within,
)
from deeplabstream.core.lifetime import children_leave_stop_signals_to_parent
from deeplabstream.core.logs import LogTarget
from deeplabstream.core.priority import PriorityPlan
from deeplabstream.hardware.cameras.base import CameraControl, CameraError
from deeplabstream.live.processes.capture.camera import CaptureJob, capture_main
from deeplabstream.live.processes.messages import (
    Abort,
    CameraControlSet,
    Failed,
    Finished,
    Opened,
    RecorderFinished,
    SetCameraControl,
)
from deeplabstream.live.processes.recording.recorder import RecorderProcess
from deeplabstream.outputs.session_record import CameraRecord, Recording
from deeplabstream.settings.sections import CameraSettings, Settings
from deeplabstream.transport.channel import Doorbell, EndReason
from deeplabstream.transport.ring import (
    N_CHANNELS,
    Channel,
    FrameRing,
    RingSpec,
    new_ring_name,
    ring_slots,
)

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 60.0  # spawning a process and opening a camera; generous for slow machines
CAPTURE_STOP_TIMEOUT_S = 10.0
#: A stop asked for again (Ctrl-C again) gives a capture process this long more.
HURRY_GRACE_S = 1.0


@dataclass
class CameraBranch:
    """One camera: its capture process, pipes, ring and recorder."""

    camera_id: int
    settings: CameraSettings
    process: multiprocessing.process.BaseProcess
    control: Connection
    channel_ends: tuple[Connection, ...]  # read ends, kept to hand to readers
    opened: Opened | None = None
    ring: FrameRing | None = None
    finished: Finished | None = None
    failure: str | None = None
    recorder: RecorderProcess | None = None
    recorder_entry: int | None = None  # its result's place in ``recordings``, once taken
    recordings: list[RecorderFinished] = field(default_factory=list)
    last_stats: dict[str, Any] = field(default_factory=dict)
    recorder_pids: dict[str, int | None] = field(default_factory=dict)  # every recorder it had
    lost_after_ns: int | None = None  # reported lost: host time of its last frame then
    loss_handled: bool = False  # [Streaming] ON_CAMERA_LOST applied (once per camera)
    controls_pipe: Connection | None = None  # live control requests and their answers
    controls: tuple[CameraControl, ...] = ()  # as the camera last reported them
    doorbell: Doorbell | None = None  # of its channels, as the session chose it

    @property
    def name(self) -> str:
        """Return the camera's name."""
        return self.settings.name

    @property
    def ended(self) -> bool:
        """Return True once the camera stopped streaming (ended or failed)."""
        return self.finished is not None or self.failure is not None

    def set_control(self, name: str, value: float, timeout_s: float) -> float:
        """Ask a streaming camera's capture process to set a live control; return what it took.

        Raises CameraError when refused (with the allowed range), ended, or silent for
        ``timeout_s`` (it answers between frames: not while waiting for a trigger).
        """
        pipe = self.controls_pipe
        if pipe is None or self.ended:
            raise CameraError(f"camera {self.name!r} is not streaming: {name} cannot be set")
        _drain(pipe)  # answers to requests that timed out earlier
        try:
            pipe.send(SetCameraControl(name, float(value)))
        except OSError:
            raise CameraError(f"camera {self.name!r}: its capture process has ended") from None
        deadline = time.monotonic() + timeout_s
        while True:
            answer = receive_within(pipe, deadline)
            if answer is None:
                raise CameraError(
                    f"camera {self.name!r}: no answer to {name} = {value:g} within {timeout_s:g} s "
                    "(it answers between frames)"
                )
            if isinstance(answer, CameraControlSet) and answer.name == name:
                break
        if answer.controls:
            self.controls = answer.controls
        if answer.error is not None:
            raise CameraError(answer.error)
        if name == "framerate" and self.opened is not None:
            # The stall watchdog expects a frame per interval of the rate the camera runs at now.
            self.opened = dataclasses.replace(self.opened, nominal_fps=answer.value)
        return answer.value


def spawn_capture(
    context: SpawnContext,
    camera_id: int,
    camera: CameraSettings,
    max_frames: int | None,
    log_level: int,
    plan: PriorityPlan,
    doorbell: Doorbell,
) -> CameraBranch:
    """Start the capture process of one camera; it opens the camera and says so."""
    control, child_control = context.Pipe(duplex=True)
    controls_pipe, child_controls = context.Pipe(duplex=True)
    pipes = [context.Pipe(duplex=False) for _ in range(N_CHANNELS)]
    job = CaptureJob(
        camera_id=camera_id,
        camera=camera,
        control=child_control,
        channels=tuple(write_end for _, write_end in pipes),
        max_frames=max_frames,
        log_target=LogTarget(log_level),
        priority=plan.for_role("capture"),
        recorder_niceness=plan.side_niceness,
        controls=child_controls,
        doorbell=doorbell,
    )
    process = context.Process(target=capture_main, args=(job,), name=f"capture:{camera.name}")
    with children_leave_stop_signals_to_parent():
        process.start()
    # Close our copies of the child's ends, so a dead child shows as end-of-file.
    child_control.close()
    child_controls.close()
    for _, write_end in pipes:
        write_end.close()
    branch = CameraBranch(camera_id, camera, process, control, tuple(r for r, _ in pipes))
    branch.controls_pipe, branch.doorbell = controls_pipe, doorbell
    return branch


def await_opened(
    branches: list[CameraBranch], stop_requested: StopCheck | None = None
) -> list[str]:
    """Wait until every camera opened or failed; return the problems (empty: all opened).

    Raises StopRequested when ``stop_requested`` gives a reason meanwhile (the caller ends the
    capture processes).
    """
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    pending = {branch.control: branch for branch in branches}
    problems: list[str] = []
    while pending:
        check_stop(stop_requested)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for branch in pending.values():
                problems.append(
                    f"camera {branch.name!r}: did not open within {OPEN_TIMEOUT_S:.0f} s"
                )
            break
        sentinels = {b.process.sentinel: b for b in pending.values()}
        watched: dict[Any, CameraBranch] = {**pending, **sentinels}
        step = min(remaining, STOP_POLL_S) if stop_requested is not None else remaining
        for ready in wait(list(watched), timeout=step):
            branch = watched[ready]
            if branch.control not in pending:
                continue
            message = receive(branch.control)
            del pending[branch.control]
            if isinstance(message, Opened):
                branch.opened = message
                branch.controls = message.controls
                log.info(
                    "camera %r opened: %dx%d, %d channel(s), %s fps",
                    branch.name,
                    message.geometry.width,
                    message.geometry.height,
                    message.geometry.channels,
                    message.nominal_fps,
                )
            elif isinstance(message, Failed):
                problems.append(message.message)
            else:
                code = branch.process.exitcode
                problems.append(
                    f"camera {branch.name!r}: its capture process ended before opening "
                    f"(exit code {code})"
                )
    return problems


def _drain(pipe: Connection) -> None:
    """Drop whatever is waiting on ``pipe`` (late answers nobody waits for any more)."""
    try:
        while pipe.poll():
            pipe.recv()
    except (EOFError, OSError):
        pass


def ring_spec(branch: CameraBranch, settings: Settings) -> RingSpec:
    """Size the camera's ring for ``[Streaming] BUFFER_SECONDS`` of its frames."""
    assert branch.opened is not None
    slots = ring_slots(branch.opened.nominal_fps, settings.streaming.buffer_seconds)
    return RingSpec(new_ring_name(branch.name), branch.opened.geometry, slots)


def recorded_and_lost(branch: CameraBranch, stats: dict[str, Any]) -> tuple[int, int]:
    """Return the frames the whole session recorded of the camera, and those its recorders lost."""
    recorded = sum(r.frames_recorded for r in branch.recordings)
    lost = sum(r.frames_lost for r in branch.recordings)
    if branch.recorder is not None and branch.recorder.finished is None:  # recording now
        recorded += stats.get("recorded", 0)
        lost += stats.get("record_lost", 0)
    return recorded, lost


def camera_entry(branch: CameraBranch, stats: dict[str, Any]) -> CameraRecord:
    """Return the camera's entry of session.json."""
    geometry = branch.opened.geometry if branch.opened else None
    recorded, lost = recorded_and_lost(branch, stats)
    status = "streaming"
    if branch.failure or (branch.finished and branch.finished.reason == EndReason.CAMERA_FAILED):
        status = "failed"
    elif branch.finished:
        status = "ended"
    finished = [
        Recording(
            video=r.video_file,
            frames_table=r.frames_table,
            frames=r.frames_recorded,
            lost=r.frames_lost,
            error=r.error,
        )
        for r in branch.recordings
    ]
    return CameraRecord(
        camera_id=branch.camera_id,
        source=branch.settings.source,
        record=branch.settings.common.record,  # false: never recorded, by choice
        status=status,
        end=branch.finished.message if branch.finished else branch.failure,
        width=geometry.width if geometry else None,
        height=geometry.height if geometry else None,
        channels=geometry.channels if geometry else None,
        nominal_fps=branch.opened.nominal_fps if branch.opened else None,
        measured_fps=stats["measured_fps"],
        frames_captured=stats["captured"],
        frames_dropped_by_camera=stats["camera_gaps"],
        frames_recorded=recorded,
        frames_lost_in_recording=lost,
        frames_dropped=stats["camera_gaps"] + lost,
        recordings=(*finished, *running_recording(branch, stats)),
        last_frame_index=stats.get("last_frame_index") if stats["captured"] else None,
        device=_device_description(branch),
        # What its capture process asked for and got: priority, cores, timers.
        scheduling=(branch.opened.description if branch.opened else {}).get("scheduling"),
    )


def _device_description(branch: CameraBranch) -> dict[str, Any]:
    """Return what the camera said of itself when it opened, then its final figures, clock."""
    description = {
        **(branch.opened.description if branch.opened else {}),
        **(branch.finished.description if branch.finished else {}),
    }
    description.pop("scheduling", None)  # the process's, not the device's: beside it
    return description


def running_recording(branch: CameraBranch, stats: dict[str, Any]) -> list[Recording]:
    """Return the recording in progress, as far as it got (so a killed session names its files)."""
    recorder = branch.recorder
    if recorder is None or recorder.finished is not None or recorder.ready is None:
        return []
    return [
        Recording(
            video=recorder.ready.video_file,
            frames_table=recorder.ready.frames_table,
            frames=stats.get("recorded", 0),
            lost=stats.get("record_lost", 0),
            error=None,
            running=True,
            # write_seq = captured: the frames delivered since the recorder's first
            captured=max(0, stats["captured"] - max(0, recorder.ready.first_seq)),
        )
    ]


def branch_stats(branch: CameraBranch) -> dict[str, Any]:
    """Return live figures of the camera, read from its ring header (cheap)."""
    ring = branch.ring
    if ring is None or ring.header is None:  # not opened yet, or already closed
        return branch.last_stats or {"captured": 0, "camera_gaps": 0, "measured_fps": None}
    header = ring.header
    captured = int(header["captured"])
    span_s = (int(header["last_host_ns"]) - int(header["first_host_ns"])) / 1e9
    stats = {
        "captured": captured,
        "camera_gaps": int(header["camera_gaps"]),
        "measured_fps": round((captured - 1) / span_s, 3) if captured > 1 and span_s > 0 else None,
        "recorded": int(header["consumed"][Channel.RECORD]),
        "record_lost": int(header["lost"][Channel.RECORD]),
        "analysed": int(header["consumed"][Channel.ANALYSE]),
        "analysis_skipped": int(header["skipped"][Channel.ANALYSE]),
        "last_frame_index": int(header["last_frame_index"]),
        # the newest frame's stamps: rates on the camera's own clock (live/session/report/rates.py)
        "last_camera_ts": float(header["last_camera_ts"]),
        "last_host_ns": int(header["last_host_ns"]) if captured else None,
    }
    branch.last_stats = stats
    return stats


def file_errors(branch: CameraBranch) -> list[str]:
    """Return the side files the camera's capture process could not write, one line each."""
    description = branch.finished.description if branch.finished else {}
    return [f"camera {branch.name!r}: {error}" for error in description.get("file_errors") or []]


def close_connections(branch: CameraBranch) -> None:
    """Close the main process's ends of the camera's pipes."""
    branch.control.close()
    if branch.controls_pipe is not None:
        branch.controls_pipe.close()
    for end in branch.channel_ends:
        end.close()


def is_live(settings: Settings) -> bool:
    """Return False when a camera delivers frames as fast as they are taken (a replayed video)."""
    return not any(
        getattr(camera.options, "pacing", "realtime") in ("free", "lockstep")
        for camera in settings.cameras
    )


# -- the capture processes' end -------------------------------------------------------------


def collect_finished_captures(
    branches: list[CameraBranch],
    report_error: Callable[[str], None],
    hurry: Callable[[], bool] | None = None,
) -> None:
    """Take each streaming camera's Finished message; report a failed or stuck one.

    Waits up to :data:`CAPTURE_STOP_TIMEOUT_S` (:data:`HURRY_GRACE_S` once ``hurry``).
    """
    deadline = time.monotonic() + CAPTURE_STOP_TIMEOUT_S
    for branch in branches:
        if branch.ended:
            continue
        message = None
        while message is None and time.monotonic() < deadline:
            message = receive_within(branch.control, min(deadline, time.monotonic() + STOP_POLL_S))
            if message is None and not branch.process.is_alive():
                message = receive_within(branch.control, time.monotonic())  # its last words
                break
            if message is None and hurry is not None and hurry():
                deadline = min(deadline, time.monotonic() + HURRY_GRACE_S)
        if isinstance(message, Finished):
            branch.finished = message
            if message.reason == EndReason.CAMERA_FAILED:
                report_error(message.message)
        else:
            branch.failure = f"camera {branch.name!r}: capture process did not stop cleanly"
            report_error(branch.failure)


def join_captures(branches: list[CameraBranch], started: bool) -> None:
    """Join every capture process; one that does not stop in time is ended."""
    if not started:
        for branch in branches:
            if branch.process.is_alive() and branch.opened is not None:
                _send_abort(branch)
    for branch in branches:
        unanswered = started and branch.failure is not None and branch.finished is None
        join_or_terminate(branch.process, HURRY_GRACE_S if unanswered else CAPTURE_STOP_TIMEOUT_S)


def abort_captures(branches: list[CameraBranch]) -> None:
    """End every capture process of a start that cannot go on; close their pipes."""
    # A camera still opening reads its Abort once open, and ends without streaming.
    for branch in branches:
        if branch.process.is_alive():
            _send_abort(branch)
    join_captures(branches, started=False)
    for branch in branches:
        close_connections(branch)


def _send_abort(branch: CameraBranch) -> None:
    try:
        branch.control.send(Abort())
    except OSError:  # the process is gone already: nothing to tell
        pass


def end_summary(branches: list[CameraBranch]) -> str:
    """Say why the cameras ended, in a few words (e.g. "frame limit reached")."""
    reasons = [b.finished.message if b.finished else b.failure or "" for b in branches]
    return ", ".join(dict.fromkeys(r for r in reasons if r))
