"""Where each analysed frame goes: the inference worker's outputs behind one small interface.

Every camera has a list of sinks; the worker hands each of them every frame it analysed
(:meth:`PoseSink.write`, after the experiment's decision) and every frame it passed over
(:meth:`PoseSink.write_not_analysed`), in frame order, and closes them when analysis ends. A new
output is one class here and one line where the worker builds a camera's sinks
(``live.processes.pose_pipeline.subscribe``).

- :class:`PoseFileSink`: ``<camera>.pose.csv``, ``.pose_times.csv``, ``.pose_timing.csv`` and
  a multi-animal camera's ``.identity.csv`` (outputs/pose_files.py);
- :class:`PosePipeSink`: the POSE pipe to the main process (its records: live.processes.messages);
- :class:`LslPoseSink`: the camera's LSL pose stream (``[Output] LSL = on``, outputs/lsl.py).

Live triangulation is not a sink: the experiment's decision reads its 3D points, so it runs
before the decision (live.processes.pose_points3d).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deeplabstream.core.deadline import stage_name
from deeplabstream.live.processes.class_identities import ClassIdentities
from deeplabstream.live.processes.identities import CameraIdentities
from deeplabstream.live.processes.messages import PoseRecord, encode_pose
from deeplabstream.live.processes.pose_job import PoseJob
from deeplabstream.outputs.lsl import LslOutlets, PoseOutlet
from deeplabstream.outputs.pose_files import (
    POSE_CSV_SUFFIX,
    POSE_TIMES_SUFFIX,
    POSE_TIMING_SUFFIX,
    PoseCsvWriter,
    PoseTimesWriter,
    PoseTimingWriter,
    individual_names,
)
from deeplabstream.pose.model import ModelDescription
from deeplabstream.transport.channel import ChannelWriter, FrameRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AnalysedFrame:
    """One analysed frame of one camera, as its sinks see it.

    Each camera has one, filled in place for every frame it analyses (no allocation per
    frame): a sink reads it during :meth:`PoseSink.write` and keeps nothing of it.
    """

    record: Any = None  # transport.channel.FrameRecord: index, seq, host and camera times
    animals: np.ndarray = field(default_factory=lambda: np.empty((1, 0, 3), np.float32))
    seq: int = 0  # the worker's running count of poses sent
    late: int = 0  # core.deadline: the stage that missed the deadline (0: none)
    box: tuple[int, int, int, int] | None = None  # the analysed region (x, y, width, height)
    picked_ns: int = 0  # the worker took the frame
    ready_ns: int = 0  # its keypoints were ready
    timings: dict[str, float] = field(default_factory=dict)  # pre-processing, network, decoding
    batch_size: int = 1
    experiment_ms: float | None = None  # the experiment's decision took this long
    worker_free_ns: int = 0  # the worker finished its previous turn
    decided_ns: int = 0  # the experiment decided (0: no experiment, or it decided nothing)
    written_ns: int = 0  # its outputs were written
    after_pose_us: int = 0  # keypoints ready -> decision written


class PoseSink(Protocol):
    """One output of a camera's poses."""

    def write(self, frame: AnalysedFrame) -> None:
        """Take one analysed frame (animals in identity order, in frame pixels)."""

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Take one captured frame that was passed over (a newer one was analysed)."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Finish; return the figures it adds to its camera's in ``session.json`` ({}: none).

        ``last_index``: the stream's last frame index when frames were published after the
        last one read (their announcements were refused), so that files can end there; None
        otherwise.
        """
        ...


class PoseFileSink:
    """The camera's pose files: one pose and times row per captured frame, timing per analysed.

    One row per captured frame keeps row i of the pose table frame first + i, the layout
    DeepLabCut, Lightning Pose and movement expect; a row is a string, no array per frame.
    """

    def __init__(
        self,
        session_dir: Path,
        stem: str,
        description: ModelDescription,
        identities: CameraIdentities | ClassIdentities | None,
    ) -> None:
        self.csv = PoseCsvWriter(
            session_dir / f"{stem}{POSE_CSV_SUFFIX}",
            f"deeplabstream_{description.name}",
            description.keypoints,
            individual_names(description.max_animals) if description.multi_animal else None,
        )
        self.timing = PoseTimingWriter(session_dir / f"{stem}{POSE_TIMING_SUFFIX}")
        self.times = PoseTimesWriter(session_dir / f"{stem}{POSE_TIMES_SUFFIX}")
        self.identities = identities  # writes <camera>.identity.csv beside the pose rows

    def write(self, frame: AnalysedFrame) -> None:
        """Append its pose row (and identities' confidences), its times and its timing."""
        record = frame.record
        self.csv.write(record.frame_index, frame.animals)  # (1, K, 3) for one animal
        if self.identities is not None:
            self.identities.write(record.frame_index)
        self.times.write(
            record.frame_index, record.host_timestamp_ns, record.camera_timestamp, True
        )
        self.timing.write(
            record.frame_index,
            record.host_timestamp_ns,
            frame.picked_ns,
            frame.timings,
            frame.ready_ns,
            frame.batch_size,
            frame.experiment_ms,
            frame.box,
            frame.worker_free_ns,
            frame.decided_ns,
            frame.written_ns,
            stage_name(frame.late),
        )

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Append its empty pose row and its times."""
        self.csv.write_missing(record.frame_index)
        self.times.write(
            record.frame_index, record.host_timestamp_ns, record.camera_timestamp, False
        )

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Close the files (the identity file is closed with its learner, after them)."""
        if last_index is not None:  # those frames go on one index each: their rows are there
            self.csv.end_at(last_index)
            self.times.end_at(last_index)
            if self.identities is not None:
                self.identities.end_at(last_index)
        self.csv.close()
        self.timing.close()
        self.times.close()
        return {
            "pose_file": self.csv.path.name,
            "pose_rows": self.csv.rows,  # one per frame index, analysed or not
            "pose_times_file": self.times.path.name,
        }

    @property
    def errors(self) -> list[str]:
        """Say which files stopped early (a full disk): the session reports them as errors."""
        return [error for error in (self.csv.error, self.timing.error, self.times.error) if error]


class PosePipeSink:
    """The POSE pipe: each analysed frame's pose record to the main process."""

    def __init__(
        self,
        writer: ChannelWriter,
        camera_id: int,
        record_rows: int,
        record_animals: int,
        identities: CameraIdentities | ClassIdentities | None,
    ) -> None:
        self._writer = writer
        self._camera_id = camera_id
        self._rows = record_rows  # rows of a pose record (the most keypoints of any model)
        self._animals = record_animals  # animals of a pose record (the most of any model)
        self._identities = identities

    def write(self, frame: AnalysedFrame) -> None:
        """Send its pose record (the record's size: the largest model's, NaN-padded)."""
        record = frame.record
        padded = self._padded(frame.animals)
        self._writer.send(
            encode_pose(
                PoseRecord(
                    self._camera_id,
                    record.frame_index,
                    record.host_timestamp_ns,
                    frame.picked_ns,
                    frame.ready_ns,
                    frame.seq,
                    padded[0],
                    padded if self._animals > 1 else None,
                    frame.late,
                    frame.after_pose_us,
                    self._confidence(),
                )
            )
        )

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Nothing: the main process counts frames passed over from the ring's header."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Add nothing: the pipe is the session's; the worker's last message ends it."""
        return {}  # the pipe is the session's; the worker's last message says it ended

    def _padded(self, animals: np.ndarray) -> np.ndarray:
        """Return a camera's animals (A, K, 3) in the record's size, NaN where it has none."""
        if animals.shape[:2] == (self._animals, self._rows):
            return animals
        out = np.full((self._animals, self._rows, 3), np.nan, np.float32)
        out[: animals.shape[0], : animals.shape[1]] = animals
        return out

    def _confidence(self) -> np.ndarray | None:
        """Return the identities' confidence (record animals,) for the record (NaN: none)."""
        if self._animals == 1:
            return None
        out = np.full(self._animals, np.nan, np.float32)
        if self._identities is not None:
            confidence = self._identities.confidence
            out[: confidence.size] = confidence
        return out


class LslPoseSink:
    """The camera's LSL pose stream, each pose stamped with its frame's arrival time.

    A single-animal camera sends its (K, 3) keypoints; a multi-animal one every identity's, in
    identity order (A * K, 3). Its failures are kept by the outlets (reported, never fatal).
    """

    def __init__(self, outlet: PoseOutlet) -> None:
        self._outlet = outlet

    def write(self, frame: AnalysedFrame) -> None:
        """Push its animals' keypoints."""
        self._outlet.push(frame.animals.reshape(-1, 3), frame.record.host_timestamp_ns / 1e9)

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Nothing: a stream carries analysed poses only."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Add nothing: the outlets close with the experiment's events, after the last."""
        return {}  # the outlets close with the experiment's events, after the last of them


def open_lsl(job: PoseJob, descriptions: dict[str, ModelDescription]) -> LslOutlets:
    """Open the LSL outlets with ``[Output] LSL = on`` (none otherwise); failures are kept.

    ``descriptions``: each camera's model, by camera name.
    """
    if not job.lsl:
        return LslOutlets.off()
    outlets = LslOutlets.open(
        {name: _lsl_channels(description) for name, description in descriptions.items()}
    )
    if job.lsl_wait_s > 0:  # before any frame is analysed: a consumer gets every pose
        waiting = outlets.wait_for_consumers(job.lsl_wait_s)
        if waiting:
            log.warning(
                "LSL: no consumer after %g s on %s; sending anyway (LSL_WAIT)",
                job.lsl_wait_s,
                ", ".join(waiting),
            )
        else:
            log.info("LSL: every outlet has a consumer")
    return outlets


def _lsl_channels(description: ModelDescription) -> tuple[str, ...]:
    """Return the channels of a camera's LSL pose stream (``animal1_nose``, ... for several)."""
    if not description.multi_animal:
        return description.keypoints
    return tuple(
        f"{animal}_{name}"
        for animal in individual_names(description.max_animals)
        for name in description.keypoints
    )
