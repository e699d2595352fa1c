"""Poses through a pipe: fixed-size records from the inference worker to whoever shows or uses them.

A record holds the source frame's camera id, frame index and host timestamp, when the worker
picked the frame up and when the pose was ready, and A x K x (x, y, likelihood) as float32 (A
animals, 1 for single-animal models; row i is the animal with identity i), and for several
animals each identity's confidence (A float32, :mod:`pose.tracking.identities`). Records of one
session all have the same size (A and K are fixed by the models), are written non-blocking
(a reader that stops reading never slows the worker) and atomically (smaller than PIPE_BUF).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from deeplabstream.transport.channel import ChannelReader

# camera id, deadline code, (pad), pose ready -> end in us, frame index, arrival, pick-up, pose
# ready, sequence number: 48 bytes, the size it had before the deadline fields (they used the pad).
_HEAD = struct.Struct("<HBxIqqqqQ")
_MAX_LOOP_US = 2**32 - 1
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
    # core.deadline: 0 on time, else the code of the stage blamed for missing the deadline
    late_stage: int = 0
    # pose ready -> the frame's decision or command (us); 0 without an experiment
    after_pose_us: int = 0
    # (A,) each identity's confidence for several animals (NaN: not seen); None for one
    identity_confidence: np.ndarray | None = None

    @property
    def end_ns(self) -> int:
        """When the frame's loop ended: its command, decision or pose (host clock, ns)."""
        return self.ready_ns + self.after_pose_us * 1000

    @property
    def end_to_end_ms(self) -> float:
        """Frame arrival -> its command, decision or pose (whichever came last), in ms."""
        return (self.ready_ns - self.host_timestamp_ns) / 1e6 + self.after_pose_us / 1e3


def pose_record_size(keypoints: int, animals: int = 1) -> int:
    """Bytes of one record for ``animals`` animals of ``keypoints`` keypoints."""
    size = _HEAD.size + 12 * keypoints * animals + (4 * animals if animals > 1 else 0)
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
        record.late_stage,
        min(record.after_pose_us, _MAX_LOOP_US),
        record.frame_index,
        record.host_timestamp_ns,
        record.picked_up_ns,
        record.ready_ns,
        record.seq,
    )
    if record.animals is None:
        return head + np.ascontiguousarray(record.pose, dtype="<f4").tobytes()
    confidence = record.identity_confidence
    if confidence is None:
        confidence = np.full(len(record.animals), np.nan)
    points = np.ascontiguousarray(record.animals, dtype="<f4").tobytes()
    return head + points + np.ascontiguousarray(confidence, dtype="<f4").tobytes()


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
        camera_id, late, after_us, index, host, picked, ready, seq = _HEAD.unpack_from(data, offset)
        points = np.frombuffer(
            data, dtype="<f4", count=3 * self._keypoints * self._animals, offset=offset + _HEAD.size
        ).reshape(self._animals, self._keypoints, 3)
        if self._animals == 1:
            return PoseRecord(
                camera_id, index, host, picked, ready, seq, points[0], None, late, after_us
            )
        confidence = np.frombuffer(
            data, dtype="<f4", count=self._animals, offset=offset + _HEAD.size + points.nbytes
        )
        return PoseRecord(
            camera_id, index, host, picked, ready, seq, points[0], points, late, after_us,
            confidence,
        )  # fmt: skip

    def close(self) -> None:
        """Close this end."""
        self._channel.close()
