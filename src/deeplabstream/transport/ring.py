"""A camera's frames in shared memory: a ring of slots plus live counters, shared by processes.

A torn or overwritten frame is counted as lost, never returned. docs/architecture.md, "Processes and
what crosses between them".
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import psutil

from deeplabstream.core.frames import FrameGeometry

_ALIGN = 64


class Channel(IntEnum):
    """The readers a camera can feed; each has its own pipe and its own counters."""

    RECORD = 0  # every frame, in order
    ANALYSE = 1  # newest frame only
    DISPLAY = 2  # newest frame only, at most ~30 Hz


class StreamState(IntEnum):
    """Life of a camera's stream, as seen in the ring header."""

    STARTING = 0
    STREAMING = 1
    ENDED = 2  # normal end (end of video, frame limit, stop requested)
    FAILED = 3  # the camera raised an error


N_CHANNELS = len(Channel)

HEADER_DTYPE = np.dtype(
    [
        ("write_seq", "<i8"),  # frames published so far; the next frame gets this number
        ("captured", "<i8"),
        ("camera_gaps", "<i8"),  # frames missing from the camera's own index sequence
        ("last_gap_first", "<i8"),  # the latest run of them: its first and last frame index
        ("last_gap_last", "<i8"),
        ("first_host_ns", "<i8"),
        ("last_host_ns", "<i8"),
        ("last_frame_index", "<i8"),
        ("first_camera_ts", "<f8"),
        ("last_camera_ts", "<f8"),
        ("state", "<i8"),
        ("stop_requested", "<i8"),  # written by the main process: 1 = finish and end the stream
        ("subscribed", "<i8", (N_CHANNELS,)),  # written by readers: 1 while they want frames
        ("undelivered", "<i8", (N_CHANNELS,)),  # written by capture: pipe full, record not sent
        ("consumed", "<i8", (N_CHANNELS,)),  # written by readers: frames taken
        ("skipped", "<i8", (N_CHANNELS,)),  # written by readers: older frames passed over
        ("lost", "<i8", (N_CHANNELS,)),  # written by readers: overwritten before read
    ]
)


def _aligned(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


@dataclass(frozen=True)
class RingSpec:
    """Everything a process needs to attach to a ring (small, picklable)."""

    name: str
    geometry: FrameGeometry
    slots: int

    @property
    def slot_seq_offset(self) -> int:
        """Byte offset of the per-slot sequence numbers."""
        return _aligned(HEADER_DTYPE.itemsize)

    @property
    def frames_offset(self) -> int:
        """Byte offset of the first frame slot."""
        return _aligned(self.slot_seq_offset + 8 * self.slots)

    @property
    def slot_stride(self) -> int:
        """Bytes from one slot to the next (aligned so each frame starts on a cache line)."""
        return _aligned(self.geometry.nbytes)

    @property
    def total_bytes(self) -> int:
        """Size of the shared-memory block."""
        return self.frames_offset + self.slots * self.slot_stride


def ring_slots(nominal_fps: float | None, buffer_seconds: float, minimum: int = 8) -> int:
    """Return how many slots hold ``buffer_seconds`` of frames at ``nominal_fps`` (>= minimum)."""
    fps = nominal_fps if nominal_fps and nominal_fps > 0 else 30.0
    return max(minimum, int(np.ceil(fps * buffer_seconds)))


#: The longest shared-memory name every platform takes: macOS refuses names of 31 bytes or more
#: (PSHMNAMLEN, with the leading "/" Python adds), Linux and Windows take far longer ones.
SHARED_MEMORY_NAME_MAX = 30
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def short_shared_memory_name(label: str) -> str:
    """Return a unique shared-memory name ``dls<pid>_<label>_<6 hex>``, short for every OS."""
    head, tail = f"dls{os.getpid()}_", f"_{secrets.token_hex(3)}"
    room = SHARED_MEMORY_NAME_MAX - len(head) - len(tail)
    return f"{head}{_NAME_UNSAFE.sub('', label)[:room]}{tail}"


def new_ring_name(camera_name: str) -> str:
    """Return a camera ring's unique shared-memory name (see :func:`short_shared_memory_name`)."""
    return short_shared_memory_name(camera_name)


class FrameRing:
    """A mapped ring: create it once in the owning process, attach to it everywhere else."""

    def __init__(self, spec: RingSpec, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.spec = spec
        self._shm = shm
        self._owner = owner
        buffer = shm.buf
        self.header = np.ndarray((), dtype=HEADER_DTYPE, buffer=buffer)
        self.slot_seq = np.ndarray(
            (spec.slots,), dtype="<i8", buffer=buffer, offset=spec.slot_seq_offset
        )
        geometry = spec.geometry
        self._frames = np.ndarray(
            (spec.slots, *geometry.shape),
            dtype=geometry.dtype,
            buffer=buffer,
            offset=spec.frames_offset,
            strides=(spec.slot_stride, *_c_strides(geometry)),
        )

    @classmethod
    def create(cls, spec: RingSpec) -> FrameRing:
        """Allocate the shared memory for ``spec`` (fails clearly when /dev/shm is too small)."""
        _check_shared_memory_room(spec.total_bytes)
        shm = shared_memory.SharedMemory(name=spec.name, create=True, size=spec.total_bytes)
        ring = cls(spec, shm, owner=True)
        ring.header[()] = np.zeros((), dtype=HEADER_DTYPE)
        ring.header["last_frame_index"] = -1
        ring.header["first_camera_ts"] = np.nan
        ring.header["last_camera_ts"] = np.nan
        ring.slot_seq[:] = -1
        return ring

    @classmethod
    def attach(cls, spec: RingSpec) -> FrameRing:
        """Map an existing ring created by another process."""
        return cls(spec, shared_memory.SharedMemory(name=spec.name), owner=False)

    # -- writer side (the capture process) ---------------------------------------------------

    def slot_for(self, seq: int) -> int:
        """Return the slot that frame number ``seq`` goes into."""
        return seq % self.spec.slots

    def begin_write(self, seq: int) -> np.ndarray:
        """Mark the slot of frame ``seq`` as being written and return it to be filled."""
        slot = self.slot_for(seq)
        self.slot_seq[slot] = -1
        return self._frames[slot]

    def end_write(self, seq: int) -> None:
        """Publish frame ``seq``: its slot is complete and readers may take it."""
        self.slot_seq[self.slot_for(seq)] = seq
        self.header["write_seq"] = seq + 1

    # -- reader side ------------------------------------------------------------------------

    def view(self, slot: int) -> np.ndarray:
        """Return the slot's pixels, in place (no copy); check :meth:`holds` after using them."""
        return self._frames[slot]

    def holds(self, slot: int, seq: int) -> bool:
        """Return whether ``slot`` still holds frame ``seq`` (not rewritten, not overwritten)."""
        return int(self.slot_seq[slot]) == seq

    def copy_frame(self, slot: int, seq: int, out: np.ndarray) -> bool:
        """Copy frame ``seq`` from ``slot`` into ``out``; False if it was overwritten or torn."""
        if not self.holds(slot, seq):
            return False
        np.copyto(out, self._frames[slot])
        return self.holds(slot, seq)

    def request_stop(self) -> None:
        """Ask the capture process to end the stream after the current frame."""
        # A flag, not a multiprocessing.Event: an Event holds a lock, and a capture process
        # killed while holding it would hang every other process.
        self.header["stop_requested"] = 1

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` was called by any process."""
        return bool(self.header["stop_requested"])

    def set_subscribed(self, channel: Channel, subscribed: bool) -> None:
        """Tell the capture process whether ``channel``'s reader wants frame records."""
        self.header["subscribed"][channel] = 1 if subscribed else 0

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the ring in this process (drop numpy views first so the map can close)."""
        self.header = self.slot_seq = self._frames = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:  # a caller still holds a view; the map goes when the process ends
            pass

    def unlink(self) -> None:
        """Remove the shared memory from the system (owner only, once every process is done)."""
        if self._owner:
            unlink_ring(self.spec.name)


_RING_NAME = re.compile(r"^dls(?P<pid>\d+)_")
SHM_FOLDER = Path("/dev/shm")


@dataclass(frozen=True)
class StaleRing:
    """A ring left in /dev/shm by a process that no longer runs (a killed session)."""

    name: str
    owner_pid: int
    nbytes: int


def find_stale_rings(folder: Path = SHM_FOLDER) -> list[StaleRing]:
    """Rings named ``dls<pid>_...`` whose creating process is gone (never another session's)."""
    if not _has_shm_folder(folder):  # macOS, Windows: rings are not files to list
        return []
    stale = []
    for path in folder.iterdir():
        match = _RING_NAME.match(path.name)
        if match is None:
            continue
        pid = int(match["pid"])
        if _process_exists(pid):
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        stale.append(StaleRing(path.name, pid, size))
    return sorted(stale, key=lambda ring: ring.name)


def remove_stale_rings(folder: Path = SHM_FOLDER) -> list[StaleRing]:
    """Remove the rings of dead sessions (:func:`find_stale_rings`); returns what was removed."""
    removed = []
    for ring in find_stale_rings(folder):
        try:
            (folder / ring.name).unlink()
        except FileNotFoundError:
            continue
        except PermissionError:  # another user's: not ours to remove
            continue
        removed.append(ring)
    return removed


def _has_shm_folder(folder: Path) -> bool:
    """Return whether ``folder`` holds shared memory as files (Linux's /dev/shm)."""
    return folder.is_dir()


def _process_exists(pid: int) -> bool:
    """Whether a process with this id runs (psutil: no signal is sent, on any platform)."""
    return bool(psutil.pid_exists(pid))


def unlink_ring(name: str) -> None:
    """Remove a ring's shared memory by name; quiet when it is already gone."""
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    shm.close()
    shm.unlink()


def _c_strides(geometry: FrameGeometry) -> tuple[int, ...]:
    itemsize = np.dtype(geometry.dtype).itemsize
    shape = geometry.shape
    strides = []
    step = itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _check_shared_memory_room(nbytes: int) -> None:
    """Refuse a ring /dev/shm cannot hold: touching it later would crash (SIGBUS)."""
    if not _has_shm_folder(SHM_FOLDER):
        return
    free = shutil.disk_usage(SHM_FOLDER).free
    if nbytes > free:
        raise MemoryError(
            f"shared memory (/dev/shm) has {free / 2**20:.0f} MiB free but a camera ring needs "
            f"{nbytes / 2**20:.0f} MiB; lower [Streaming] BUFFER_SECONDS or the resolution, or "
            "enlarge /dev/shm (for Docker: --shm-size)"
        )
