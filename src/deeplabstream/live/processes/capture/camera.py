"""The capture process: one per camera, it grabs frames into the camera's ring and announces them.

docs/architecture.md, "Processes and what crosses between them".
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from deeplabstream.core.collector import settle_after_start_up
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.lifetime import die_with_parent, leave_stop_signals_to_parent, parent_ended
from deeplabstream.core.logs import (
    LogTarget,
    add_log_file,
    configure_process_logging,
    hold_log_lines,
)
from deeplabstream.core.priority import ProcessPriority, apply_process_priority
from deeplabstream.core.timing import precise_timers
from deeplabstream.hardware.cameras import Camera, CameraControl, CameraError
from deeplabstream.hardware.cameras.orientation import OrientedCamera
from deeplabstream.live.processes.capture.companion import CompanionOutputs
from deeplabstream.live.processes.messages import (
    CameraControlSet,
    Failed,
    Finished,
    Opened,
    SetCameraControl,
    Start,
)
from deeplabstream.outputs.folder import SESSION_LOG
from deeplabstream.settings.sections import CameraSettings
from deeplabstream.transport.channel import (
    ChannelWriter,
    Doorbell,
    EndReason,
    FrameRecord,
    encode_frame,
)
from deeplabstream.transport.ring import N_CHANNELS, Channel, FrameRing, StreamState

log = logging.getLogger(__name__)
hold_here("capture-import", importing=True)  # a fault test's chosen moment (core/fault_hooks.py)

#: How long the end of a stream waits for companion recorders before the camera reports (the main
#: process waits 10 s for it); a recorder still busy then finishes afterwards, unreported.
COMPANIONS_REPORT_WAIT_S = 6.0
LOCKSTEP_STALL_S = 60.0  # no model takes a minute per frame: the reader is stuck or gone
_LOCKSTEP_PAUSES_S = (0.0001, 0.002)  # first and longest sleep while waiting for the reader
#: How often the loop looks for control requests: a person turning a knob cannot tell 50 ms.
CONTROL_POLL_S = 0.05


@dataclass(frozen=True)
class CaptureJob:
    """Everything the capture process needs (picklable; connections travel as descriptors)."""

    camera_id: int
    camera: CameraSettings
    control: Connection
    channels: tuple[Connection, ...]  # write ends, indexed by Channel
    max_frames: int | None
    log_target: LogTarget
    priority: ProcessPriority | None = None  # applied first thing (core/priority.py)
    recorder_niceness: int = 0  # of the recorders it starts for companion streams (depth)
    controls: Connection | None = None  # live control requests (SetCameraControl); None: none
    doorbell: Doorbell | None = None  # [Streaming] DOORBELL as the session chose it


def capture_main(job: CaptureJob) -> None:
    """Entry point of a capture process; it ends at once with the main process."""
    leave_stop_signals_to_parent()  # the main process decides when to stop
    die_with_parent(signal.SIGTERM)
    configure_process_logging(job.log_target, f"capture:{job.camera.name}")
    hold_log_lines()  # the camera opens before the session folder exists: written at Start
    scheduling = {
        "priority": apply_process_priority(job.priority),  # before the driver's threads start
        "timers": precise_timers(),  # a paced camera sleeps until each frame is due: wake then
    }
    writers = [ChannelWriter(connection, kind=job.doorbell) for connection in job.channels]
    # Always wrapped: mirroring may be switched on while streaming (the Camera tab); while the
    # orientation is the identity, frames pass without a copy.
    common = job.camera.common
    camera: Camera = OrientedCamera(
        job.camera.camera_class()(job.camera.name, job.camera.options),
        common.rotate,
        common.mirror,
    )
    try:
        _open_and_stream(job, camera, writers, scheduling)
    finally:
        try:
            camera.close()
        except Exception:  # closing must not hide how the stream ended
            log.exception("camera %r did not close cleanly", job.camera.name)
        for writer in writers:
            writer.close()
        job.control.close()
        if job.controls is not None:
            job.controls.close()


def _open_and_stream(
    job: CaptureJob,
    camera: Camera,
    writers: list[ChannelWriter],
    scheduling: dict[str, Any],
) -> None:
    try:
        geometry = camera.open()
    except CameraError as error:
        job.control.send(Failed(str(error)))
        return
    except Exception as error:  # a plugin bug must still reach the user as a message
        log.exception("camera %r failed to open", job.camera.name)
        job.control.send(Failed(f"camera {job.camera.name!r}: {type(error).__name__}: {error}"))
        return
    try:
        companions = CompanionOutputs(
            job.camera.name,
            job.camera_id,
            camera.companions(),
            camera.nominal_fps,
            job.log_target,
            job.recorder_niceness,
            job.doorbell,
        )
    except (OSError, MemoryError) as error:
        job.control.send(Failed(f"camera {job.camera.name!r}: companion streams: {error}"))
        return
    try:
        _announce_and_stream(job, camera, writers, geometry, companions, scheduling)
    finally:
        companions.close()


def _announce_and_stream(
    job: CaptureJob,
    camera: Camera,
    writers: list[ChannelWriter],
    geometry: FrameGeometry,
    companions: CompanionOutputs,
    scheduling: dict[str, Any],
) -> None:
    description = camera.describe()
    description["scheduling"] = scheduling  # what this process asked for and got: session.json
    if companions:
        description["companions"] = companions.describe()
    job.control.send(
        Opened(
            geometry,
            camera.nominal_fps,
            description,
            camera.live,
            _controls_of(camera),
            paced=camera.paced,
        )
    )
    try:
        order = job.control.recv()
    except EOFError:  # the main process is gone
        return
    if not isinstance(order, Start):
        return
    add_log_file(order.session_dir / SESSION_LOG)
    ring = FrameRing.attach(order.ring)
    try:
        camera.set_stop_check(lambda: ring.stop_requested)
        camera.start_session(order.session_dir)
        if companions:  # recorded from the first frame when the camera itself is
            companions.start(order.session_dir, bool(ring.header["subscribed"][Channel.RECORD]))
        settle_after_start_up()  # no full garbage collection between two frames later
        reason, message, frames = _stream(job, camera, ring, writers, companions)
        _finish_side_outputs(camera)
        ring.header["state"] = (
            StreamState.FAILED if reason == EndReason.CAMERA_FAILED else StreamState.ENDED
        )
        for writer in writers:
            writer.send_end(job.camera_id, reason, frames)
        companions.end(reason, frames, wait_s=COMPANIONS_REPORT_WAIT_S)
        try:
            job.control.send(
                Finished(reason, message, frames, _final_description(camera, companions))
            )
        except OSError:  # the main process is gone
            pass
        companions.finish_recorders()
    finally:
        ring.close()


def _stream(
    job: CaptureJob,
    camera: Camera,
    ring: FrameRing,
    writers: list[ChannelWriter],
    companions: CompanionOutputs,
) -> tuple[EndReason, str, int]:
    header = ring.header
    subscribed = header["subscribed"]
    undelivered = header["undelivered"]
    header["state"] = StreamState.STREAMING
    seq = 0
    last_index = -1
    # Lockstep needs the reader's counters to start at frame 0: it must have subscribed already.
    lockstep = _Lockstep(ring) if _wants_lockstep(camera, header) else None
    requests = _ControlRequests(job.controls, camera)
    try:
        while not ring.stop_requested:
            if job.max_frames is not None and seq >= job.max_frames:
                if lockstep is not None:
                    lockstep.wait_until_taken(seq)
                return EndReason.STOPPED, "frame limit reached", seq
            if parent_ended():  # the main process died: do not stream on as an orphan
                return EndReason.STOPPED, "main process ended", seq
            if lockstep is not None:
                lockstep.wait_until_taken(seq)  # before the grab, so stamps exclude the wait
            slot_array = ring.begin_write(seq)
            companion_slots = companions.begin(seq) if companions else None
            stamp = camera.grab(slot_array)
            if stamp is None:
                if ring.stop_requested:  # the camera saw the stop while it waited for a frame
                    return EndReason.STOPPED, "stop requested", seq
                if lockstep is not None:  # the worker must take the last frame before the end
                    lockstep.wait_until_taken(seq)
                return EndReason.END_OF_SOURCE, "end of source", seq
            if companion_slots is not None:  # published first: the frame's record points to them
                companions.publish(seq, camera.grab_companions(companion_slots))
                companions.follow_recording(bool(subscribed[Channel.RECORD]))
            ring.end_write(seq)
            _count_frame(header, seq, stamp.frame_index, last_index, stamp)
            last_index = stamp.frame_index
            payload = encode_frame(
                FrameRecord(
                    job.camera_id,
                    ring.slot_for(seq),
                    seq,
                    stamp.frame_index,
                    stamp.camera_timestamp,
                    stamp.host_timestamp_ns,
                )
            )
            for channel in range(N_CHANNELS):
                if subscribed[channel] and not writers[channel].send(payload):
                    undelivered[channel] += 1
            seq += 1
            requests.serve_if_due(stamp.host_timestamp_ns)  # after publishing: no frame waits
    except CameraError as error:
        log.error("%s", error)
        return EndReason.CAMERA_FAILED, str(error), seq
    except Exception as error:
        log.exception("camera %r failed", job.camera.name)
        return EndReason.CAMERA_FAILED, f"camera {job.camera.name!r}: {error!r}", seq
    return EndReason.STOPPED, "stop requested", seq


class _ControlRequests:
    """Answers live control requests between frames, looking at most every CONTROL_POLL_S."""

    def __init__(self, connection: Connection | None, camera: Camera) -> None:
        self._connection = connection
        self._camera = camera
        self._next_poll_ns = 0

    def serve_if_due(self, now_ns: int) -> None:
        """Answer every request waiting, if it is time to look; never waits for one."""
        if self._connection is None or now_ns < self._next_poll_ns:
            return
        self._next_poll_ns = now_ns + round(CONTROL_POLL_S * 1e9)
        try:
            while self._connection.poll():
                request = self._connection.recv()
                if isinstance(request, SetCameraControl):
                    self._connection.send(self._apply(request))
        except (EOFError, OSError):  # the main process closed its end: no more requests
            self._connection = None

    def _apply(self, request: SetCameraControl) -> CameraControlSet:
        camera = self._camera
        try:
            value = camera.set_control(request.name, float(request.value))
        except CameraError as error:
            log.warning("%s", error)
            return CameraControlSet(request.name, request.value, str(error), _controls_of(camera))
        except Exception as error:  # a plugin bug: the stream goes on, the user is told
            log.exception("camera %r: setting %s failed", camera.name, request.name)
            text = f"camera {camera.name!r}: {request.name}: {type(error).__name__}: {error}"
            return CameraControlSet(request.name, request.value, text, _controls_of(camera))
        log.info("camera %r: %s set to %g", camera.name, request.name, value)
        return CameraControlSet(request.name, value, None, _controls_of(camera))


def _controls_of(camera: Camera) -> tuple[CameraControl, ...]:
    """Return the camera's controls; none when it cannot say (a plugin bug is only logged)."""
    try:
        return tuple(camera.controls())
    except Exception:
        log.exception("camera %r could not list its controls", camera.name)
        return ()


def _wants_lockstep(camera: Camera, header: Any) -> bool:
    """Return True when the camera asks for lockstep pacing and analysis is subscribed."""
    if not camera.waits_for_analysis:
        return False
    if not header["subscribed"][Channel.ANALYSE]:
        log.warning(
            "camera %r: PACING = lockstep, but pose estimation was not running when the stream "
            "started; frames go as fast as they decode",
            camera.name,
        )
        return False
    return True


class _Lockstep:
    """Waits for the ANALYSE reader to have handled a number of frames (lockstep pacing)."""

    def __init__(self, ring: FrameRing) -> None:
        self._ring = ring
        self._released = False

    def handled(self) -> int:
        """Frames the ANALYSE reader has taken, passed over or lost so far (single writer each)."""
        header, channel = self._ring.header, Channel.ANALYSE
        return int(sum(header[counter][channel] for counter in ("consumed", "skipped", "lost")))

    def wait_until_taken(self, frames: int) -> None:
        """Return once the reader has handled ``frames`` frames, or it unsubscribed, or stop."""
        ring = self._ring
        pause, longest = _LOCKSTEP_PAUSES_S
        progress_at = time.monotonic()
        last = self.handled()
        while not self._released and last < frames:
            if ring.stop_requested or not ring.header["subscribed"][Channel.ANALYSE]:
                return  # stopping, or pose estimation ended: nobody to wait for
            # A short sleep, not a doorbell: the wait is a few ms per frame at most, and the
            # reader's code stays the same for every pacing.
            time.sleep(pause)
            pause = min(pause * 2, longest)
            handled = self.handled()
            if handled != last:
                last, progress_at = handled, time.monotonic()
            elif time.monotonic() - progress_at > LOCKSTEP_STALL_S:
                log.warning(
                    "lockstep pacing: pose estimation took no frame for %.0f s; the camera runs "
                    "free from now on",
                    LOCKSTEP_STALL_S,
                )
                self._released = True


def _final_description(camera: Camera, companions: CompanionOutputs) -> dict[str, Any]:
    """Return what the camera knows once it stopped (its clock fit), for ``session.json``."""
    try:
        description = camera.describe()
    except Exception:  # a description must never hide how the stream ended
        log.exception("camera %r could not describe itself", camera.name)
        description = {}
    if companions:
        description["companions"] = companions.summary()
    return description


def _finish_side_outputs(camera: Camera) -> None:
    """Finalise a camera's side outputs; a failure (full disk) is logged, never fatal."""
    try:
        camera.finish_session()
    except Exception:
        log.exception("camera %r could not finalise its side outputs", camera.name)


def _count_frame(header: Any, seq: int, frame_index: int, last_index: int, stamp: Any) -> None:
    """Update the live counters other processes read (single writer: this process)."""
    if seq == 0:
        header["first_host_ns"] = stamp.host_timestamp_ns
        header["first_camera_ts"] = stamp.camera_timestamp
    elif frame_index > last_index + 1:
        header["camera_gaps"] += frame_index - last_index - 1
        header["last_gap_first"] = last_index + 1  # which frames: a stall is named by them
        header["last_gap_last"] = frame_index - 1
    header["captured"] = seq + 1
    header["last_host_ns"] = stamp.host_timestamp_ns
    header["last_frame_index"] = frame_index
    if not math.isnan(stamp.camera_timestamp):
        header["last_camera_ts"] = stamp.camera_timestamp
