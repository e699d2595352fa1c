"""The capture process: one per camera, it grabs frames into the camera's ring and announces them.

Handshake with the main process over the control connection (small pickled messages, never
frames)::

    capture -> main   Opened(geometry, nominal_fps, description)  or  Failed(message)
    main -> capture   Start(ring spec, session folder)            or  Abort()
    capture -> main   Finished(reason, message, frames)            when the stream ends

Between Start and Finished the loop is: mark slot, ``camera.grab(slot)``, publish, update the
header counters, send a record to each subscribed channel. The loop ends when the main process
sets the ring header's ``stop_requested`` flag, the frame limit is reached, the source ends, or
the camera fails; every path sends the end-of-stream record, closes the camera and detaches from
the ring.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cameras import Camera, CameraError, FrameGeometry, camera_class
from recording.session import SESSION_LOG
from settings.sections import CameraSettings
from stream.channel import ChannelWriter, EndReason, FrameRecord, encode_frame
from stream.logs import LogTarget, add_log_file, configure_process_logging
from stream.ring import N_CHANNELS, Channel, FrameRing, RingSpec, StreamState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """The camera opened; the main process sizes the ring from this."""

    geometry: FrameGeometry
    nominal_fps: float | None
    description: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The camera could not be opened; nothing was started."""

    message: str


@dataclass(frozen=True)
class Start:
    """Go: attach to this ring and write side outputs into this session folder."""

    ring: RingSpec
    session_dir: Path


@dataclass(frozen=True)
class Abort:
    """Another camera failed to open: close without streaming."""


@dataclass(frozen=True)
class Finished:
    """The stream ended; ``message`` explains a failure."""

    reason: EndReason
    message: str
    frames: int


@dataclass(frozen=True)
class CaptureJob:
    """Everything the capture process needs (picklable; connections travel as descriptors)."""

    camera_id: int
    camera: CameraSettings
    control: Connection
    channels: tuple[Connection, ...]  # write ends, indexed by Channel
    max_frames: int | None
    log_target: LogTarget


def capture_main(job: CaptureJob) -> None:
    """Entry point of a capture process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    configure_process_logging(job.log_target, f"capture:{job.camera.name}")
    writers = [ChannelWriter(connection) for connection in job.channels]
    camera = camera_class(job.camera.source)(job.camera.name, job.camera.options)
    try:
        _open_and_stream(job, camera, writers)
    finally:
        try:
            camera.close()
        except Exception:  # closing must not hide how the stream ended
            log.exception("camera %r did not close cleanly", job.camera.name)
        for writer in writers:
            writer.close()
        job.control.close()


def _open_and_stream(job: CaptureJob, camera: Camera, writers: list[ChannelWriter]) -> None:
    try:
        geometry = camera.open()
    except CameraError as error:
        job.control.send(Failed(str(error)))
        return
    except Exception as error:  # a plugin bug must still reach the user as a message
        log.exception("camera %r failed to open", job.camera.name)
        job.control.send(Failed(f"camera {job.camera.name!r}: {type(error).__name__}: {error}"))
        return
    job.control.send(Opened(geometry, camera.nominal_fps, camera.describe()))
    try:
        order = job.control.recv()
    except EOFError:  # the main process is gone
        return
    if not isinstance(order, Start):
        return
    add_log_file(order.session_dir / SESSION_LOG)
    ring = FrameRing.attach(order.ring)
    try:
        camera.start_session(order.session_dir)
        reason, message, frames = _stream(job, camera, ring, writers)
        _finish_side_outputs(camera)
        ring.header["state"] = (
            StreamState.FAILED if reason == EndReason.CAMERA_FAILED else StreamState.ENDED
        )
        for writer in writers:
            writer.send_end(job.camera_id, reason, frames)
        try:
            job.control.send(Finished(reason, message, frames))
        except OSError:  # the main process is gone
            pass
    finally:
        ring.close()


def _stream(
    job: CaptureJob, camera: Camera, ring: FrameRing, writers: list[ChannelWriter]
) -> tuple[EndReason, str, int]:
    header = ring.header
    subscribed = header["subscribed"]
    undelivered = header["undelivered"]
    header["state"] = StreamState.STREAMING
    seq = 0
    last_index = -1
    parent = os.getppid()
    try:
        while not ring.stop_requested:
            if job.max_frames is not None and seq >= job.max_frames:
                return EndReason.STOPPED, "frame limit reached", seq
            if os.getppid() != parent:  # the main process died: do not stream on as an orphan
                return EndReason.STOPPED, "main process ended", seq
            slot_array = ring.begin_write(seq)
            stamp = camera.grab(slot_array)
            if stamp is None:
                return EndReason.END_OF_SOURCE, "end of source", seq
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
    except CameraError as error:
        log.error("%s", error)
        return EndReason.CAMERA_FAILED, str(error), seq
    except Exception as error:
        log.exception("camera %r failed", job.camera.name)
        return EndReason.CAMERA_FAILED, f"camera {job.camera.name!r}: {error!r}", seq
    return EndReason.STOPPED, "stop requested", seq


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
    header["captured"] = seq + 1
    header["last_host_ns"] = stamp.host_timestamp_ns
    header["last_frame_index"] = frame_index
    if not math.isnan(stamp.camera_timestamp):
        header["last_camera_ts"] = stamp.camera_timestamp


__all__ = [
    "Abort",
    "CaptureJob",
    "Channel",
    "Failed",
    "Finished",
    "Opened",
    "Start",
    "capture_main",
]
