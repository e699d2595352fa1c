"""Frame records through pipes: how a reader learns that a new frame is in the ring.

Each camera has one pipe per :class:`transport.ring.Channel`. The capture process writes a
fixed-size 40-byte record per frame (camera id, ring slot, sequence number, the camera's frame
index and timestamp, the host arrival time) and a typed end-of-stream record when it stops.
Readers block on the pipe (no busy-waiting) and read whatever records have arrived.

The writer end is non-blocking: a reader that stops reading never slows capture. When a pipe is
full the record is not sent and the capture process counts it (``undelivered`` in the ring
header); the reader sees the gap in sequence numbers. Writes of 40 bytes are atomic on POSIX pipes
(< PIPE_BUF), so a reader always receives whole records. POSIX only (Linux, macOS).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import select
import struct
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.connection import Connection

_RECORD = struct.Struct("<BxHIqqdq")
RECORD_SIZE = _RECORD.size
_F_SETPIPE_SZ = 1031  # Linux only; larger pipes absorb longer reader stalls
_PIPE_BYTES = 1 << 20
_READ_CHUNK = RECORD_SIZE * 4096


class RecordKind(IntEnum):
    """What a record announces."""

    FRAME = 0
    END = 1


class EndReason(IntEnum):
    """Why a stream ended, carried by the end-of-stream record."""

    STOPPED = 0  # stop requested (Ctrl-C, GUI, frame or time limit)
    END_OF_SOURCE = 1  # the source ran out (end of a video file)
    CAMERA_FAILED = 2  # the camera raised an error
    WRITER_GONE = 3  # the pipe closed without a record: the capture process died


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """A frame published in a camera's ring."""

    camera_id: int
    slot: int
    seq: int
    frame_index: int
    camera_timestamp: float
    host_timestamp_ns: int


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The typed end-of-stream marker; ``frames`` is how many frames the camera published."""

    camera_id: int
    reason: EndReason
    frames: int


Record = FrameRecord | EndOfStream


def encode_frame(record: FrameRecord) -> bytes:
    """The 40 bytes that announce ``record``."""
    return _RECORD.pack(
        RecordKind.FRAME,
        record.camera_id,
        record.slot,
        record.seq,
        record.frame_index,
        record.camera_timestamp,
        record.host_timestamp_ns,
    )


def _decode(chunk: bytes, offset: int) -> Record:
    kind, camera_id, slot, seq, frame_index, camera_ts, host_ns = _RECORD.unpack_from(chunk, offset)
    if kind == RecordKind.END:
        return EndOfStream(camera_id, EndReason(slot), seq)
    return FrameRecord(camera_id, slot, seq, frame_index, camera_ts, host_ns)


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _enlarge(fd: int) -> None:
    with contextlib.suppress(OSError):  # not Linux, or above the system's pipe-max-size
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


class ChannelWriter:
    """The capture side of one channel: never blocks on frame records."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection  # keeps the descriptor open
        self._fd = connection.fileno()
        _set_nonblocking(self._fd)
        _enlarge(self._fd)
        self.broken = False

    def send(self, payload: bytes) -> bool:
        """Send one encoded record; False when the pipe is full or its reader is gone."""
        if self.broken:
            return False
        try:
            os.write(self._fd, payload)
        except BlockingIOError:
            return False
        except BrokenPipeError:
            self.broken = True
            return False
        return True

    def send_end(
        self, camera_id: int, reason: EndReason, frames: int, timeout: float = 2.0
    ) -> bool:
        """Send the end-of-stream record, waiting up to ``timeout`` s for room in the pipe."""
        payload = _RECORD.pack(RecordKind.END, camera_id, int(reason), frames, -1, math.nan, 0)
        if self.send(payload):
            return True
        if self.broken:
            return False
        _, writable, _ = select.select([], [self._fd], [], timeout)
        return bool(writable) and self.send(payload)

    def close(self) -> None:
        """Close the write end; readers see end-of-file once every writer is closed."""
        self._connection.close()


class ChannelReader:
    """The reader side of one channel: wait for records, take them all at once."""

    def __init__(self, connection: Connection, camera_id: int) -> None:
        self._connection = connection
        self._fd = connection.fileno()
        self._camera_id = camera_id
        _set_nonblocking(self._fd)
        self._partial = b""
        self.at_eof = False

    def fileno(self) -> int:
        """The descriptor to wait on (for ``select`` or ``multiprocessing.connection.wait``)."""
        return self._fd

    def wait(self, timeout: float | None) -> bool:
        """Block until a record (or end-of-file) is available, or ``timeout`` s pass."""
        if self.at_eof:
            return True
        readable, _, _ = select.select([self._fd], [], [], timeout)
        return bool(readable)

    def read_available(self) -> list[Record]:
        """Every record that has arrived, oldest first; never blocks.

        When all writers have closed the pipe without an end-of-stream record (the capture
        process died), the list ends with ``EndOfStream(reason=WRITER_GONE)``.
        """
        chunks = [self._partial] if self._partial else []
        while not self.at_eof:
            try:
                chunk = os.read(self._fd, _READ_CHUNK)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno != errno.EINTR:
                    raise
                continue
            if not chunk:
                self.at_eof = True
                break
            chunks.append(chunk)
            if len(chunk) < _READ_CHUNK:
                break
        data = b"".join(chunks)
        whole = len(data) - len(data) % RECORD_SIZE
        self._partial = data[whole:]
        records = [_decode(data, offset) for offset in range(0, whole, RECORD_SIZE)]
        if self.at_eof and not (records and isinstance(records[-1], EndOfStream)):
            records.append(EndOfStream(self._camera_id, EndReason.WRITER_GONE, -1))
        return records

    def discard_pending(self) -> int:
        """Drop every record waiting in the pipe; return how many frame records were dropped."""
        return sum(isinstance(r, FrameRecord) for r in self.read_available())

    def close(self) -> None:
        """Close this process's copy of the read end."""
        self._connection.close()
