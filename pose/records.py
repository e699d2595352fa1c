"""Poses through a pipe: fixed-size records from the inference worker to whoever shows or uses them.

A record holds the source frame's camera id, frame index and host timestamp, when the worker
picked the frame up and when the pose was ready, and A x K x (x, y, likelihood) as float32 (A
animals, 1 for single-animal models; row i is the animal with identity i). Records of one
session all have the same size (A and K are fixed by the models), are written non-blocking
(a reader that stops reading never slows the worker) and atomically (smaller than PIPE_BUF).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from transport.channel import ChannelReader

_HEAD = struct.Struct("<HxxxxxxqqqqQ")
_MAX_RECORD = 4096  # POSIX PIPE_BUF: larger writes could interleave


@dataclass(frozen=True, slots=True)
class PoseRecord:
    """One analysed frame's keypoints in frame pixels, with its timestamps (host clock).

    ``pose`` (K, 3) is the first animal's; ``animals`` (A, K, 3) holds every animal's for a
    multi-animal model (None for a single-animal one).
    """

    camera_id: int
    frame_index: int
    host_timestamp_ns: int
    picked_up_ns: int
    ready_ns: int
    seq: int
    pose: np.ndarray
    animals: np.ndarray | None = None


def pose_record_size(keypoints: int, animals: int = 1) -> int:
    """Bytes of one record for ``animals`` animals of ``keypoints`` keypoints."""
    size = _HEAD.size + 12 * keypoints * animals
    if size > _MAX_RECORD:
        raise ValueError(
            f"{animals} animal(s) of {keypoints} keypoints do not fit an atomic pipe record; "
            "lower [Pose] MAX_ANIMALS"
        )
    return size


def encode_pose(record: PoseRecord) -> bytes:
    """Encode ``record`` as bytes (its animals when it has them, else its pose)."""
    head = _HEAD.pack(
        record.camera_id,
        record.frame_index,
        record.host_timestamp_ns,
        record.picked_up_ns,
        record.ready_ns,
        record.seq,
    )
    points = record.pose if record.animals is None else record.animals
    return head + np.ascontiguousarray(points, dtype="<f4").tobytes()


class PoseReader:
    """Read every pose record that has arrived, without blocking."""

    def __init__(self, connection: Connection, keypoints: int, animals: int = 1) -> None:
        # The worker writes poses through a ChannelWriter: read them through this process's
        # doorbell (pipe or portable), which undoes its framing.
        self._channel = ChannelReader(connection, 0)
        self._size = pose_record_size(keypoints, animals)
        self._keypoints = keypoints
        self._animals = animals

    @property
    def at_eof(self) -> bool:
        """Return True once the worker has closed its end: no pose will arrive any more."""
        return self._channel.at_eof

    def fileno(self) -> int:
        """Return the descriptor to wait on."""
        return self._channel.fileno()

    def read_available(self) -> list[PoseRecord]:
        """Return the records that arrived since the last call, oldest first."""
        data = self._channel.read_bytes(self._size)
        return [self._decode(data, offset) for offset in range(0, len(data), self._size)]

    def _decode(self, data: bytes, offset: int) -> PoseRecord:
        camera_id, index, host, picked, ready, seq = _HEAD.unpack_from(data, offset)
        points = np.frombuffer(
            data, dtype="<f4", count=3 * self._keypoints * self._animals, offset=offset + _HEAD.size
        ).reshape(self._animals, self._keypoints, 3)
        animals = points if self._animals > 1 else None
        return PoseRecord(camera_id, index, host, picked, ready, seq, points[0], animals)

    def close(self) -> None:
        """Close this end."""
        self._channel.close()
