"""Companion streams: a second image delivered with every frame of a camera (RealSense depth).

Companion frame ``seq`` is published before frame ``seq`` is announced. docs/cameras.md and
docs/outputs.md, "Companion streams (depth)".
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.control import receive
from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.lifetime import die_with_parent, leave_stop_signals_to_parent
from deeplabstream.core.logs import LogTarget
from deeplabstream.core.priority import SIDE_NICENESS, ProcessPriority
from deeplabstream.hardware.cameras.base import CompanionStream
from deeplabstream.live.processes.messages import RecorderFinished
from deeplabstream.live.processes.recording.recorder import (
    RecorderJob,
    RecorderProcess,
    recorder_main,
)
from deeplabstream.settings.sections import RecordingSettings
from deeplabstream.transport.channel import (
    ChannelWriter,
    Doorbell,
    EndReason,
    FrameRecord,
    encode_frame,
)
from deeplabstream.transport.ring import Channel, FrameRing, RingSpec, new_ring_name, ring_slots

log = logging.getLogger(__name__)

#: Seconds of companion frames each companion ring holds (the recorder may fall this far behind).
COMPANION_BUFFER_S = 2.0
#: How long a companion recorder may take to start (spawn + imports) or to finish its files.
RECORDER_START_TIMEOUT_S = 60.0
RECORDER_FINISH_TIMEOUT_S = 120.0
#: Companions are always recorded losslessly (depth must keep every bit).
COMPANION_RECORDING = RecordingSettings(codec="ffv1")
#: Stands for "the recorder's control pipe closed" where a message is expected.


def companion_recorder_main(job: RecorderJob) -> None:
    """Entry point of a companion recorder: a recorder that ends with its capture process."""
    leave_stop_signals_to_parent()  # the main process decides when to stop
    die_with_parent(signal.SIGTERM)
    recorder_main(job)


def companion_name(camera: str, suffix: str) -> str:
    """Return the name of a companion stream's files: ``<camera>_<suffix>``."""
    return f"{camera}_{suffix}"


def companion_rings(description: Mapping[str, Any]) -> dict[str, RingSpec]:
    """Return the companion rings a camera's ``Opened.description`` announced, by suffix.

    The rings exist while the camera's capture process runs.
    """
    rings = {}
    for suffix, entry in (description.get("companions") or {}).items():
        geometry = FrameGeometry(
            int(entry["height"]), int(entry["width"]), int(entry["channels"]), entry["dtype"]
        )
        rings[suffix] = RingSpec(entry["ring"], geometry, int(entry["slots"]))
    return rings


class CompanionReader:
    """Reads one companion ring by the main frame's sequence number (any process).

    ``spec`` from :func:`companion_rings`; mapped on first use, unmapped by :meth:`close`.
    """

    def __init__(self, spec: RingSpec) -> None:
        self.spec = spec
        self._ring: FrameRing | None = None

    @property
    def ring(self) -> FrameRing:
        """The mapped ring (mapped on first use)."""
        if self._ring is None:
            self._ring = FrameRing.attach(self.spec)
        return self._ring

    def latest_seq(self) -> int | None:
        """Return the newest companion frame's sequence number, None before the first."""
        written = int(self.ring.header["write_seq"])
        return written - 1 if written else None

    def copy(self, seq: int, out: np.ndarray) -> bool:
        """Copy the companion of main frame ``seq`` into ``out``; False if no longer held."""
        ring = self.ring
        return ring.copy_frame(ring.slot_for(seq), seq, out)

    def value_at(self, seq: int, x: float, y: float, radius: int = 2) -> float | None:
        """Return the median non-zero value around pixel (x, y) of the companion of frame ``seq``.

        Depth in metres: times ``depth_units_m``. Zero (no measurement) is left out; None when the
        window has none, is outside the image, or the frame is no longer held.
        """
        ring = self.ring
        slot = ring.slot_for(seq)
        height, width = self.spec.geometry.height, self.spec.geometry.width
        column, row = round(x), round(y)
        if not (0 <= column < width and 0 <= row < height) or not ring.holds(slot, seq):
            return None
        window = ring.view(slot)[
            max(0, row - radius) : row + radius + 1, max(0, column - radius) : column + radius + 1
        ].copy()
        if not ring.holds(slot, seq):  # overwritten while we copied it
            return None
        measured = window[window > 0]
        return float(np.median(measured)) if measured.size else None

    def close(self) -> None:
        """Unmap the ring."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None


@dataclass
class _Output:
    """One companion in the capture process: its ring, its record pipe and its recorder."""

    stream: CompanionStream
    name: str
    ring: FrameRing
    record_read: Connection  # handed to each recorder of this companion
    writer: ChannelWriter
    last_index: int = -1
    recorder: RecorderProcess | None = None
    finished: list[RecorderFinished] = field(default_factory=list)


class CompanionOutputs:
    """The capture-process side of a camera's companions: rings, announcements, recorders.

    ``nominal_fps`` sizes the rings (:data:`COMPANION_BUFFER_S` s); ``doorbell`` None: default.
    """

    def __init__(
        self,
        camera_name: str,
        camera_id: int,
        streams: tuple[CompanionStream, ...],
        nominal_fps: float | None,
        log_target: LogTarget,
        recorder_niceness: int = SIDE_NICENESS,
        doorbell: Doorbell | None = None,
    ) -> None:
        self.camera_name = camera_name
        self._doorbell = doorbell
        self._recorder_niceness = recorder_niceness
        self.camera_id = camera_id
        self._log_target = log_target
        self._nominal_fps = nominal_fps
        self._context = multiprocessing.get_context("spawn")
        self._outputs: list[_Output] = []
        self._session_dir: Path | None = None
        self._recording = False
        try:
            for stream in streams:
                self._outputs.append(self._make_output(stream))
        except BaseException:
            self.close()
            raise

    def _make_output(self, stream: CompanionStream) -> _Output:
        name = companion_name(self.camera_name, stream.suffix)
        slots = ring_slots(self._nominal_fps, COMPANION_BUFFER_S)
        ring = FrameRing.create(RingSpec(new_ring_name(name), stream.geometry, slots))
        read_end, write_end = self._context.Pipe(duplex=False)
        return _Output(stream, name, ring, read_end, ChannelWriter(write_end, kind=self._doorbell))

    def __bool__(self) -> bool:
        """Return True when the camera has companion streams."""
        return bool(self._outputs)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Per suffix: the companion's name, ring, geometry and the camera's description of it."""
        info = {}
        for output in self._outputs:
            geometry, spec = output.stream.geometry, output.ring.spec
            info[output.stream.suffix] = {
                "name": output.name,
                "ring": spec.name,
                "slots": spec.slots,
                "width": geometry.width,
                "height": geometry.height,
                "channels": geometry.channels,
                "dtype": geometry.dtype,
                **output.stream.description,
            }
        return info

    # -- per frame ---------------------------------------------------------------------------

    def begin(self, seq: int) -> dict[str, np.ndarray]:
        """Return the slots that frame ``seq``'s companions go into (marked as being written)."""
        return {o.stream.suffix: o.ring.begin_write(seq) for o in self._outputs}

    def publish(self, seq: int, stamps: dict[str, FrameStamp]) -> None:
        """Publish frame ``seq``'s companions (call before the main frame is announced)."""
        for output in self._outputs:
            stamp = stamps[output.stream.suffix]
            ring, header = output.ring, output.ring.header
            ring.end_write(seq)
            if seq == 0:
                header["first_host_ns"] = stamp.host_timestamp_ns
                header["first_camera_ts"] = stamp.camera_timestamp
            elif stamp.frame_index > output.last_index + 1:
                header["camera_gaps"] += stamp.frame_index - output.last_index - 1
            output.last_index = stamp.frame_index
            header["captured"] = seq + 1
            header["last_host_ns"] = stamp.host_timestamp_ns
            header["last_frame_index"] = stamp.frame_index
            header["last_camera_ts"] = stamp.camera_timestamp
            if header["subscribed"][Channel.RECORD]:
                record = FrameRecord(
                    self.camera_id,
                    ring.slot_for(seq),
                    seq,
                    stamp.frame_index,
                    stamp.camera_timestamp,
                    stamp.host_timestamp_ns,
                )
                if not output.writer.send(encode_frame(record)):
                    header["undelivered"][Channel.RECORD] += 1

    # -- recording ---------------------------------------------------------------------------

    def start(self, session_dir: Path, main_recording: bool) -> None:
        """Before the first frame: the folder, and recorders (subscribed) if the camera records."""
        self._session_dir = session_dir
        self.follow_recording(main_recording)
        deadline = time.monotonic() + RECORDER_START_TIMEOUT_S
        for output in self._outputs:
            if output.recorder is not None:
                self._await_ready(output, deadline)

    def follow_recording(self, main_recording: bool) -> None:
        """Record the companions while the camera itself is recorded (cheap; call per frame)."""
        if main_recording and not self._recording and self._session_dir is not None:
            self._recording = True
            for output in self._outputs:
                self._start_recorder(output, self._session_dir)
        elif not main_recording and self._recording:
            self._recording = False
            for output in self._outputs:
                self._stop_recorder(output)
        self._collect_finished_recorders()

    def _start_recorder(self, output: _Output, session_dir: Path) -> None:
        if output.recorder is not None:  # an earlier recording has not finished yet
            self._finish_recorder(output, time.monotonic() + RECORDER_FINISH_TIMEOUT_S)

        def job_for(control: Connection, heartbeat: Heartbeat) -> RecorderJob:
            return RecorderJob(
                camera_id=self.camera_id,
                camera_name=output.name,
                ring=output.ring.spec,
                channel=output.record_read,
                control=control,
                session_dir=session_dir,
                settings=COMPANION_RECORDING,
                nominal_fps=self._nominal_fps,
                log_target=self._log_target,
                # Side work like every recorder; it keeps the cores of the capture that starts it.
                priority=ProcessPriority("recorder", self._recorder_niceness),
                heartbeat=heartbeat,
                part=len(output.finished) + 1,  # a recording started again: files of its own
                doorbell=self._doorbell,
            )

        output.recorder = RecorderProcess.start(
            self._context, job_for, f"recorder:{output.name}", target=companion_recorder_main
        )

    def _await_ready(self, output: _Output, deadline: float) -> None:
        assert output.recorder is not None
        if not output.recorder.await_ready(deadline):
            log.error("companion %s: its recorder did not start", output.name)
            self._finish_recorder(output, deadline)

    def _stop_recorder(self, output: _Output) -> None:
        if output.recorder is not None:
            output.recorder.request_stop()

    def _collect_finished_recorders(self) -> None:
        """Take the results of recorders that finished (never blocks)."""
        for output in self._outputs:
            self._take_news(output, 0.0)

    def _take_news(self, output: _Output, wait_s: float) -> None:
        """Take the recorder's messages arriving within ``wait_s``; finish it once it ended."""
        recorder = output.recorder
        deadline = time.monotonic() + wait_s
        while (
            recorder is not None
            and recorder.running
            and recorder.control.poll(max(0.0, deadline - time.monotonic()))
        ):
            recorder.take(receive(recorder.control))  # None: the recorder is gone
        if recorder is not None and not recorder.running:
            self._finish_recorder(output, time.monotonic() + RECORDER_FINISH_TIMEOUT_S)

    def _finish_recorder(self, output: _Output, deadline: float) -> None:
        """Wait for the recorder's result (until ``deadline``), join it, keep the result."""
        if output.recorder is None:
            return
        message = output.recorder.collect(deadline)
        output.finished.append(message)
        if message.error:
            log.error("companion %s: %s", output.name, message.error)
        output.recorder = None

    # -- end ---------------------------------------------------------------------------------

    def end(self, reason: EndReason, frames: int, wait_s: float) -> None:
        """Send every companion's end-of-stream record; wait up to ``wait_s`` for recorders."""
        for output in self._outputs:
            output.writer.send_end(self.camera_id, reason, frames)
        deadline = time.monotonic() + wait_s
        for output in self._outputs:
            self._take_news(output, max(0.0, deadline - time.monotonic()))

    def finish_recorders(self) -> None:
        """Wait for every recorder still finishing its files (after the camera reported)."""
        deadline = time.monotonic() + RECORDER_FINISH_TIMEOUT_S
        for output in self._outputs:
            self._finish_recorder(output, deadline)

    def summary(self) -> dict[str, dict[str, Any]]:
        """For ``session.json``: per companion, frames captured and its recordings."""
        info = self.describe()
        for output in self._outputs:
            entry = info[output.stream.suffix]
            header = output.ring.header
            entry["frames_captured"] = int(header["captured"]) if header is not None else None
            entry["frames_dropped_by_camera"] = (
                int(header["camera_gaps"]) if header is not None else None
            )
            entry["recordings"] = [
                {
                    "video": r.video_file,
                    "frames_table": r.frames_table,
                    "frames": r.frames_recorded,
                    "lost": r.frames_lost,
                    "error": r.error,
                }
                for r in output.finished
            ]
            if output.recorder is not None:
                entry["recording_still_finishing"] = True
        return info

    def close(self) -> None:
        """Unmap and remove the rings, close the pipes (recorders must be finished first)."""
        for output in self._outputs:
            output.writer.close()
            output.record_read.close()
            output.ring.close()
            output.ring.unlink()
        self._outputs = []
