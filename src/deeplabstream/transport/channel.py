"""Frame records: how a reader learns that a new frame is in the ring (the frame "doorbell").

docs/architecture.md, "Processes and what crosses between them".
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_connections
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: only the portable doorbell
    fcntl = None  # type: ignore[assignment]

_RECORD = struct.Struct("<BxHIqqdq")
RECORD_SIZE = _RECORD.size
_F_SETPIPE_SZ = 1031  # Linux only; larger pipes absorb longer reader stalls
_PIPE_BYTES = 1 << 20
_READ_CHUNK = RECORD_SIZE * 4096
# Portable writer: records waiting in the writer process for its sending thread (on top of what
# the operating system's pipe holds); about as long a reader stall as a default 64 KiB pipe.
_QUEUE_RECORDS = 4096
# Bytes per message: with its 4-byte length header it fits one atomic POSIX pipe write (100 frame
# records); a larger record (a pose with many keypoints) goes alone.
_BATCH_BYTES = 4000
_CLOSE_FLUSH_S = 2.0
_STALL_S = 0.5  # a reader that takes nothing for this long has stopped reading

DOORBELL_ENV = "DEEPLABSTREAM_DOORBELL"
DOORBELL_CHOICES = ("auto", "pipe", "portable")


class Doorbell(StrEnum):
    """How frame records travel on a channel."""

    PIPE = "pipe"  # raw records on a non-blocking POSIX pipe
    PORTABLE = "portable"  # multiprocessing Connection calls only, fed by a sending thread


def pipe_doorbell_available() -> bool:
    """Return whether this platform has the non-blocking POSIX pipes the pipe doorbell needs."""
    return fcntl is not None and os.name == "posix"


def doorbell_kind(setting: str = "auto") -> Doorbell:
    """Return the doorbell to use: ``DEEPLABSTREAM_DOORBELL``, else ``[Streaming] DOORBELL``.

    ``auto``: the pipe on Linux and macOS, the portable one elsewhere. Both ends of a channel must
    use the same. Raises ValueError for an unknown choice, or ``pipe`` where there is none.
    """
    forced = os.environ.get(DOORBELL_ENV, "").strip().lower()
    source = DOORBELL_ENV if forced else "[Streaming] DOORBELL"
    choice = forced or setting.strip().lower()
    if choice not in DOORBELL_CHOICES:
        raise ValueError(
            f"{source}: expected one of {', '.join(DOORBELL_CHOICES)}, but got {choice!r}"
        )
    if choice == "auto":
        native = sys.platform.startswith("linux") or sys.platform == "darwin"
        return Doorbell.PIPE if native and pipe_doorbell_available() else Doorbell.PORTABLE
    if choice == Doorbell.PIPE and not pipe_doorbell_available():
        raise ValueError(f"{source} = pipe needs POSIX pipes ({sys.platform} has none): use auto")
    return Doorbell(choice)


# -- records -----------------------------------------------------------------------------------


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
    """A frame published in a camera's ring (what an output's sink reads of each frame).

    ``seq`` is the ring's running count (gaps: frames the reader never got); ``camera_timestamp`` is
    in seconds (NaN: no camera clock); ``host_timestamp_ns`` the arrival in the capture process.
    """

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
    """Return the 40 bytes that announce ``record``."""
    return _RECORD.pack(
        RecordKind.FRAME,
        record.camera_id,
        record.slot,
        record.seq,
        record.frame_index,
        record.camera_timestamp,
        record.host_timestamp_ns,
    )


def _encode_end(camera_id: int, reason: EndReason, frames: int) -> bytes:
    return _RECORD.pack(RecordKind.END, camera_id, int(reason), frames, -1, math.nan, 0)


def _decode(chunk: bytes, offset: int) -> Record:
    kind, camera_id, slot, seq, frame_index, camera_ts, host_ns = _RECORD.unpack_from(chunk, offset)
    if kind == RecordKind.END:
        return EndOfStream(camera_id, EndReason(slot), seq)
    return FrameRecord(camera_id, slot, seq, frame_index, camera_ts, host_ns)


# -- writers -----------------------------------------------------------------------------------


class ChannelWriter:
    """The capture side of one channel: never blocks on frame records (a refused one is counted).

    ``ChannelWriter(connection)`` makes this process's doorbell's writer; ``kind=`` picks one.
    """

    broken: bool  # the reader is gone: every later record is refused

    def __new__(cls, *args: Any, kind: Doorbell | None = None, **kwargs: Any) -> ChannelWriter:
        """Make the writer of ``kind`` (this process's doorbell when None)."""
        if cls is ChannelWriter:
            pipe = (kind or doorbell_kind()) is Doorbell.PIPE
            cls = PipeChannelWriter if pipe else PortableChannelWriter
        return super().__new__(cls)

    def __init__(self, connection: Connection, *, kind: Doorbell | None = None) -> None:
        self._connection = connection
        self.broken = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the connection (a sending thread or descriptor number cannot travel)."""
        return (type(self), (self._connection,))

    def send(self, payload: bytes) -> bool:
        """Send one encoded record; return False when it cannot be delivered now (never block)."""
        raise NotImplementedError

    def send_end(
        self, camera_id: int, reason: EndReason, frames: int, timeout: float = 2.0
    ) -> bool:
        """Send the end-of-stream record, waiting up to ``timeout`` s for room; return success."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the write end; readers see end-of-file once every writer is closed."""
        raise NotImplementedError


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _enlarge(fd: int) -> None:
    with contextlib.suppress(OSError):  # not Linux, or above the system's pipe-max-size
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


class PipeChannelWriter(ChannelWriter):
    """The pipe doorbell's writer: raw records, non-blocking ``os.write`` (POSIX only).

    Writes under ``PIPE_BUF`` are atomic on POSIX pipes, so a reader receives whole records.
    """

    def __init__(self, connection: Connection, *, kind: Doorbell | None = None) -> None:
        super().__init__(connection)
        self._fd = connection.fileno()
        _set_nonblocking(self._fd)
        _enlarge(self._fd)

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
        payload = _encode_end(camera_id, reason, frames)
        if self.send(payload):
            return True
        if self.broken:
            return False
        _, writable, _ = select.select([], [self._fd], [], timeout)
        return bool(writable) and self.send(payload)

    def close(self) -> None:
        """Close the write end; readers see end-of-file once every writer is closed."""
        self._connection.close()


class PortableChannelWriter(ChannelWriter):
    """The portable doorbell's writer: a bounded queue (``capacity`` records) a thread empties.

    ``Connection.send_bytes`` blocks when the pipe is full, so capture only appends to the queue.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        kind: Doorbell | None = None,
        capacity: int = _QUEUE_RECORDS,
    ) -> None:
        super().__init__(connection)
        self.capacity = capacity
        self._queue: deque[bytes] = deque()
        self._unsent = 0  # queued plus the message being sent
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._sent_all = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None

    def send(self, payload: bytes) -> bool:
        """Queue one encoded record; False when the queue is full or the reader is gone."""
        with self._lock:
            return self._enqueue(payload)

    def _enqueue(self, payload: bytes) -> bool:
        # Called with the lock held.
        if self.broken or self._closing or self._unsent >= self.capacity:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="doorbell", daemon=True)
            self._thread.start()
        self._queue.append(payload)
        self._unsent += 1
        self._has_work.notify()
        return True

    def send_end(
        self, camera_id: int, reason: EndReason, frames: int, timeout: float = 2.0
    ) -> bool:
        """Send the end-of-stream record, waiting up to ``timeout`` s; True once in the pipe."""
        payload = _encode_end(camera_id, reason, frames)
        deadline = time.monotonic() + timeout
        with self._lock:
            self._sent_all.wait_for(
                lambda: self.broken or self._unsent < self.capacity, _left(deadline)
            )
            if not self._enqueue(payload):
                return False
            self._sent_all.wait_for(lambda: self.broken or self._unsent == 0, _left(deadline))
            return not self.broken and self._unsent == 0

    def close(self) -> None:
        """Send what is queued (up to 2 s while the reader reads), then close the write end.

        Records still queued when this process ends are lost, hence the wait.
        """
        with self._lock:
            self._closing = True
            self._has_work.notify()
            thread = self._thread
            if thread is None:
                self._connection.close()
                return
            deadline = time.monotonic() + _CLOSE_FLUSH_S
            while self._unsent and not self.broken and _left(deadline) > 0:
                before = self._unsent
                self._sent_all.wait(min(_STALL_S, _left(deadline)))
                if self._unsent == before:  # no progress: the reader has stopped reading
                    return
        thread.join(_STALL_S)  # drained: the thread closes the connection as it ends

    def _pump(self) -> None:
        """Send queued records until closed (the sending thread)."""
        while True:
            with self._lock:
                self._has_work.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    break
                batch = _take_batch(self._queue)
            try:
                self._connection.send_bytes(b"".join(batch))
            except OSError:  # the reader is gone (BrokenPipeError), or closed under us
                with self._lock:
                    self.broken = True
                    self._queue.clear()
                    self._unsent = 0
                    self._sent_all.notify_all()
                break
            with self._lock:
                self._unsent -= len(batch)
                self._sent_all.notify_all()
        with contextlib.suppress(OSError):
            self._connection.close()


def _take_batch(queue: deque[bytes]) -> list[bytes]:
    """Return the oldest queued records that fit one message (at least one)."""
    batch = [queue.popleft()]
    size = len(batch[0])
    while queue and size + len(queue[0]) <= _BATCH_BYTES:
        size += len(queue[0])
        batch.append(queue.popleft())
    return batch


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


# -- readers -----------------------------------------------------------------------------------


class ChannelReader:
    """The reader side of one channel: wait for records, take them all at once.

    ``ChannelReader(connection, camera_id)`` makes this process's doorbell's reader.
    """

    at_eof: bool  # every writer has closed: nothing more will arrive

    def __new__(cls, *args: Any, kind: Doorbell | None = None, **kwargs: Any) -> ChannelReader:
        """Make the reader of ``kind`` (this process's doorbell when None)."""
        if cls is ChannelReader:
            pipe = (kind or doorbell_kind()) is Doorbell.PIPE
            cls = PipeChannelReader if pipe else PortableChannelReader
        return super().__new__(cls)

    def __init__(
        self, connection: Connection, camera_id: int, *, kind: Doorbell | None = None
    ) -> None:
        self._connection = connection
        self._camera_id = camera_id
        self._partial = b""
        self.at_eof = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the connection and camera id (records not yet read stay in the pipe)."""
        return (type(self), (self._connection, self._camera_id))

    def fileno(self) -> int:
        """Return what to wait on (for ``multiprocessing.connection.wait``; ``select`` on POSIX)."""
        return self._connection.fileno()

    def wait(self, timeout: float | None) -> bool:
        """Block until a record (or end-of-file) is available, or ``timeout`` s pass."""
        raise NotImplementedError

    def read_available(self) -> list[Record]:
        """Return every record that has arrived, oldest first; never block.

        Ends with ``EndOfStream(reason=WRITER_GONE)`` when all writers closed without one.
        """
        data = self.read_bytes(RECORD_SIZE)
        records = [_decode(data, offset) for offset in range(0, len(data), RECORD_SIZE)]
        if self.at_eof and not (records and isinstance(records[-1], EndOfStream)):
            records.append(EndOfStream(self._camera_id, EndReason.WRITER_GONE, -1))
        return records

    def read_bytes(self, record_size: int) -> bytes:
        """Return the bytes of the whole records arrived, undecoded; never block."""
        data = b"".join([self._partial, *self._read_chunks()])
        whole = len(data) - len(data) % record_size
        self._partial = data[whole:]
        return data[:whole]

    def _read_chunks(self) -> list[bytes]:
        """Return the bytes that have arrived (setting :attr:`at_eof` at end-of-file)."""
        raise NotImplementedError

    def discard_pending(self) -> int:
        """Drop every record waiting in the pipe; return how many frame records were dropped."""
        return sum(isinstance(r, FrameRecord) for r in self.read_available())

    def close(self) -> None:
        """Close this process's copy of the read end."""
        self._connection.close()


class PipeChannelReader(ChannelReader):
    """The pipe doorbell's reader: non-blocking ``os.read`` and ``select`` (POSIX only)."""

    def __init__(
        self, connection: Connection, camera_id: int, *, kind: Doorbell | None = None
    ) -> None:
        super().__init__(connection, camera_id)
        self._fd = connection.fileno()
        _set_nonblocking(self._fd)

    def wait(self, timeout: float | None) -> bool:
        """Block until a record (or end-of-file) is available, or ``timeout`` s pass."""
        if self.at_eof:
            return True
        readable, _, _ = select.select([self._fd], [], [], timeout)
        return bool(readable)

    def _read_chunks(self) -> list[bytes]:
        chunks = []
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
        return chunks


class PortableChannelReader(ChannelReader):
    """The portable doorbell's reader: ``Connection.poll``/``recv_bytes`` and ``wait``."""

    def wait(self, timeout: float | None) -> bool:
        """Block until a record (or end-of-file) is available, or ``timeout`` s pass."""
        if self.at_eof:
            return True
        return bool(wait_for_connections([self._connection], timeout))

    def _read_chunks(self) -> list[bytes]:
        chunks: list[bytes] = []
        budget = _READ_CHUNK  # bounded, like one pipe read: a fast writer cannot keep us here
        while not self.at_eof and budget > 0:
            try:
                if not self._connection.poll(0):
                    break
                chunk = self._connection.recv_bytes()
            except (EOFError, ConnectionError):  # every writer closed (Windows: broken pipe)
                self.at_eof = True
                break
            chunks.append(chunk)
            budget -= len(chunk)
        return chunks
