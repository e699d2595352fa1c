"""The recorder process: every frame of one camera, in order, into a video file and a frames table.

A frame it could not get is counted lost, never replaced. docs/architecture.md, "Processes and
what crosses between them".
"""

from __future__ import annotations

import errno
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from deeplabstream.core.collector import settle_after_start_up
from deeplabstream.core.control import join_or_terminate, receive_within
from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.lifetime import (
    children_leave_stop_signals_to_parent,
    die_with_parent,
    leave_stop_signals_to_parent,
)
from deeplabstream.core.logs import LogTarget, add_log_file, configure_process_logging
from deeplabstream.core.priority import ProcessPriority, apply_process_priority
from deeplabstream.core.timing import host_now_ns
from deeplabstream.live.processes.messages import RecorderFinished, RecorderReady, StopRecording
from deeplabstream.outputs.folder import SESSION_LOG, release_reserve
from deeplabstream.outputs.frames_table import FRAMES_TABLE_SUFFIX, FramesTable, count_table_rows
from deeplabstream.outputs.video import VideoWriter, recording_stem, video_file_name
from deeplabstream.settings.sections import RecordingSettings
from deeplabstream.transport.channel import ChannelReader, Doorbell, EndOfStream, FrameRecord
from deeplabstream.transport.ring import Channel, FrameRing, RingSpec

log = logging.getLogger(__name__)

#: A recorder beats at least this often while it runs: each turn of its loop (whose wait ends
#: after a second without news) and each frame it writes.
LOOP_WAIT_S = 1.0
#: A recorder that gave no sign of life this long is held (stopped, or stuck in its encoder or
#: disk): at the stop it is ended by the app, its recording counted to what its files hold.
SILENT_LIMIT_S = 5.0
#: A stop asked for again (Ctrl-C again) while a recorder still writes gives it this long more.
HURRY_GRACE_S = 1.0
#: How often the stop's wait looks at the recorder's signs of life.
LOOK_S = 0.1


@dataclass(frozen=True)
class RecorderJob:
    """Everything the recorder process needs (picklable)."""

    camera_id: int
    camera_name: str
    ring: RingSpec
    channel: Connection  # read end of the camera's RECORD pipe
    control: Connection
    session_dir: Path
    settings: RecordingSettings
    nominal_fps: float | None
    log_target: LogTarget
    priority: ProcessPriority | None = None  # side work: a lower priority (core/priority.py)
    # Its signs of life, read by the process that started it (core/heartbeat.py).
    heartbeat: Heartbeat | None = None
    # Which recording of this camera's stream it is (1, 2, ...): its files' names.
    part: int = 1
    doorbell: Doorbell | None = None  # [Streaming] DOORBELL as the session chose it


class _Recording:
    """The state of one recording: files, counters and the clock used for presentation times."""

    def __init__(self, job: RecorderJob, ring: FrameRing) -> None:
        settings = job.settings
        self.ring = ring
        stem = recording_stem(job.camera_name, job.part)
        self.video_name = video_file_name(stem, settings.codec)
        self.table_name = stem + FRAMES_TABLE_SUFFIX
        self.table = FramesTable(job.session_dir / self.table_name)
        self.video = VideoWriter(
            job.session_dir / self.video_name,
            job.ring.geometry,
            settings.codec,
            job.nominal_fps,
            crf=settings.crf,
            preset=settings.preset,
            threads=settings.encoder_threads,
            flush_interval=settings.flush_interval,
        )
        self.lost = 0
        self.first_seq = 0
        self.next_seq: int | None = None
        self._clock_offset: float | None = None  # camera time minus host time, at the first frame

    def write(self, record: FrameRecord) -> None:
        """Encode the announced frame, or count it lost if the ring no longer holds it."""
        if self.next_seq is not None and record.seq > self.next_seq:
            self._count_lost(record.seq - self.next_seq, "announcements missed (pipe full)")
        self.next_seq = record.seq + 1
        if not self.ring.holds(record.slot, record.seq):
            self._count_lost(1, "overwritten before it was read")
            return
        frame = self.video.frame_from(self.ring.view(record.slot))
        if not self.ring.holds(record.slot, record.seq):  # rewritten while we copied it
            self._count_lost(1, "overwritten while it was read")
            return
        self.video.encode(frame, self._presentation_time(record))
        self.table.append(record.frame_index, record.camera_timestamp, record.host_timestamp_ns)

    def _presentation_time(self, record: FrameRecord) -> float:
        host = record.host_timestamp_ns / 1e9
        if self._clock_offset is None:
            has_camera_clock = not math.isnan(record.camera_timestamp)
            self._clock_offset = record.camera_timestamp - host if has_camera_clock else 0.0
        if math.isnan(record.camera_timestamp):
            return host + self._clock_offset
        return record.camera_timestamp

    def _count_lost(self, count: int, why: str) -> None:
        if self.lost == 0:
            log.warning("recorder fell behind: %d frame(s) lost, %s", count, why)
        self.lost += count

    def close(self) -> None:
        """Finalise both files, even if one of them fails (the small table first)."""
        try:
            self.table.close()
        finally:
            self.video.close()


def recorder_main(job: RecorderJob) -> None:
    """Entry point of a recorder process."""
    leave_stop_signals_to_parent()  # the main process decides when to stop
    die_with_parent(signal.SIGTERM)  # never outlive the session (a killed main process)
    configure_process_logging(job.log_target, f"recorder:{job.camera_name}")
    apply_process_priority(job.priority)  # before the encoder starts its threads
    add_log_file(job.session_dir / SESSION_LOG)
    ring = FrameRing.attach(job.ring)
    reader = ChannelReader(job.channel, job.camera_id, kind=job.doorbell)
    recording: _Recording | None = None
    error: str | None = None
    try:
        reader.discard_pending()  # left by an earlier recording of this stream
        first_seq = int(ring.header["write_seq"])
        ring.set_subscribed(Channel.RECORD, True)
        recording = _Recording(job, ring)
        recording.first_seq = first_seq
        settle_after_start_up()  # the encoder never stops mid-session for a full collection
        job.control.send(RecorderReady(first_seq, recording.video_name, recording.table_name))
        _record(job, reader, recording, first_seq)
    except OSError as failure:  # disk full, folder removed, ...
        error = f"recording of camera {job.camera_name!r} stopped: {failure}"
        log.error("%s", error)
        if failure.errno == errno.ENOSPC:
            release_reserve(job.session_dir)  # room to flush the frames table and session.json
    finally:
        ring.set_subscribed(Channel.RECORD, False)
        error = _finish(job, recording, error)
        ring.close()
        reader.close()
        job.control.close()


def _record(job: RecorderJob, reader: ChannelReader, recording: _Recording, first_seq: int) -> None:
    header = recording.ring.header
    stopping = False
    while True:
        # wait() takes any object with fileno(); typeshed names only connections and sockets.
        waitables: list[Any] = [reader, job.control]
        wait(waitables, timeout=LOOP_WAIT_S)
        if job.heartbeat is not None:
            job.heartbeat.turned()
        if job.control.poll():
            try:
                stopping = isinstance(job.control.recv(), StopRecording) or stopping
            except EOFError:  # the main process died: finish what was announced and close
                stopping = True
            if stopping:
                recording.ring.set_subscribed(Channel.RECORD, False)
        ended = False
        for record in reader.read_available():
            if isinstance(record, EndOfStream):
                ended = True
                break
            if record.seq >= first_seq:
                recording.write(record)
                header["consumed"][Channel.RECORD] = recording.table.rows
                header["lost"][Channel.RECORD] = recording.lost
                if job.heartbeat is not None:
                    job.heartbeat.beat()
        if ended or stopping:
            return


def _finish(job: RecorderJob, recording: _Recording | None, error: str | None) -> str | None:
    frames = lost = 0
    first_seq = last_seq = -1
    video = table = ""
    if recording is not None:
        first_seq = recording.first_seq
        last_seq = (recording.next_seq or first_seq) - 1
        try:
            recording.close()
        except OSError as failure:
            error = error or f"recording of camera {job.camera_name!r}: closing failed: {failure}"
            log.error("%s", error)
        frames, lost = recording.table.rows, recording.lost
        video, table = recording.video_name, recording.table_name
    try:
        job.control.send(RecorderFinished(video, table, frames, lost, error, first_seq, last_seq))
    except OSError:  # the main process is gone; the files are closed all the same
        pass
    return error


def cause_to_end(
    silent_s: float, now: float, deadline: float, hurried_at: float | None
) -> str | None:
    """Say why the app must end a recorder it waits for now; None: wait on (``monotonic`` s)."""
    if silent_s >= SILENT_LIMIT_S:
        return (
            f"the recorder did not answer for {silent_s:.1f} s (no frame written, no reply to "
            "the stop: its process was stopped or is stuck); it was stopped by the app"
        )
    if hurried_at is not None and now - hurried_at >= HURRY_GRACE_S:
        return (
            "the recorder was still writing when the stop was asked for again; it was stopped "
            "by the app"
        )
    if now >= deadline:
        return "the recorder did not finish in time; it was stopped by the app"
    return None


@dataclass
class RecorderProcess:
    """A recorder process seen from the process that started it: the one recorder life cycle.

    :meth:`start`, :meth:`await_ready`, :meth:`request_stop`, :meth:`collect`, for cameras and
    companion streams alike.
    """

    process: BaseProcess
    control: Connection
    session_dir: Path
    heartbeat: Heartbeat | None = None  # its signs of life
    ready: RecorderReady | None = None  # its first frame and file names
    finished: RecorderFinished | None = None

    @classmethod
    def start(
        cls,
        context: SpawnContext,
        job_for: Callable[[Connection, Heartbeat], RecorderJob],
        name: str,
        target: Callable[[RecorderJob], None] = recorder_main,
    ) -> RecorderProcess:
        """Start a recorder; ``job_for`` builds its job around the child's control connection."""
        control, child_control = context.Pipe(duplex=True)
        heartbeat = Heartbeat(context)
        job = job_for(child_control, heartbeat)
        process = context.Process(target=target, args=(job,), name=name)
        with children_leave_stop_signals_to_parent():
            process.start()
        child_control.close()  # ours closed: a dead recorder shows as end-of-file
        return cls(process, control, job.session_dir, heartbeat)

    def silent_s(self) -> float:
        """Return how long the running recorder has given no sign of life (0: it lives)."""
        if self.heartbeat is None or self.finished is not None:
            return 0.0
        return self.heartbeat.silent_s(host_now_ns())

    @property
    def running(self) -> bool:
        """Return True until the recorder's result (or its death) has been taken."""
        return self.finished is None

    def await_ready(self, deadline: float) -> bool:
        """Wait until the recorder is subscribed; False (and finished) when it failed to start."""
        message = receive_within(self.control, deadline)
        if isinstance(message, RecorderReady):
            self.ready = message
            return True
        self.take(message)
        return False

    def take(self, message: Any) -> None:
        """Take a message received from the recorder; None means the recorder is gone."""
        if isinstance(message, RecorderReady):
            self.ready = message
        elif isinstance(message, RecorderFinished):
            self.finished = message
        else:
            join_or_terminate(self.process, 1.0)
            code = self.process.exitcode
            how = f"exit code {code}"
            if code is not None and code < 0:
                how = f"killed by signal {-code}"
            self.finished = self.without_result(
                f"the recorder process ended unexpectedly ({how}); the recording stopped there"
            )

    def request_stop(self) -> None:
        """Ask the recorder to record the frames announced so far, then close its files."""
        if self.finished is None:
            try:
                self.control.send(StopRecording())
            except OSError:  # already gone: collect() says so
                pass

    def collect(self, deadline: float, hurry: Callable[[], bool] | None = None) -> RecorderFinished:
        """Wait for the recorder's result, join it, close the connection; bounded.

        One silent for :data:`SILENT_LIMIT_S`, still writing :data:`HURRY_GRACE_S` after ``hurry``,
        or past ``deadline`` is ended, and its result says so.
        """
        hurried_at: float | None = None
        while self.finished is None:
            message = receive_within(self.control, min(deadline, time.monotonic() + LOOK_S))
            if message is not None or not self.process.is_alive():
                self.take(message or receive_within(self.control, time.monotonic()))
                continue
            now = time.monotonic()
            if hurried_at is None and hurry is not None and hurry():
                hurried_at = now
            why = cause_to_end(self.silent_s(), now, deadline, hurried_at)
            if why is not None:
                self.end(why)
        join_or_terminate(self.process, max(0.1, min(deadline - time.monotonic(), LOOK_S * 20)))
        self.control.close()
        assert self.finished is not None  # take(None) and end() always set it
        return self.finished

    def end(self, why: str) -> None:
        """End the recorder now (it cannot end itself); its result says ``why``."""
        log.error("%s: %s", self.process.name, why)
        self.process.kill()  # it leaves SIGTERM to its parent (core.lifetime)
        self.process.join(5.0)
        self.finished = self.without_result(f"{why}; the recording stopped there")

    def without_result(self, error: str) -> RecorderFinished:
        """Return what is known of a recording whose process ended without a word (``error``)."""
        ready = self.ready
        if ready is None:
            return RecorderFinished("", "", 0, 0, error)
        rows = count_table_rows(self.session_dir / ready.frames_table)
        return RecorderFinished(
            ready.video_file, ready.frames_table, rows, 0, error, ready.first_seq, -1
        )
