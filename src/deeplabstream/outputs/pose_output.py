"""The built-in outputs of the pose files: ``pose`` (always chosen) and ``ibl``.

docs/outputs.md.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from deeplabstream.core.deadline import stage_name
from deeplabstream.outputs.interface import (
    AnalysedFrame,
    EnsembleValues,
    LiveOutput,
    Output,
    OutputCamera,
    OutputSession,
    PoseSink,
)
from deeplabstream.outputs.pose.files import (
    EKS_CAUSAL_SUFFIX,
    ENSEMBLE_SUFFIX,
    POSE_CSV_SUFFIX,
    POSE_EXACT_SUFFIX,
    POSE_PARQUET_SUFFIX,
    POSE_TIMES_SUFFIX,
    POSE_TIMING_SUFFIX,
    EnsembleCsvWriter,
    ExactPoseWriter,
    PoseCsvWriter,
    PoseTimesWriter,
    PoseTimingWriter,
    ibl_stem,
    write_ibl_pose_files,
    write_pose_parquet,
)
from deeplabstream.transport.channel import FrameRecord

log = logging.getLogger(__name__)


class PoseFileSink:
    """The camera's pose files: one pose and times row per captured frame, timing per analysed."""

    def __init__(self, camera: OutputCamera) -> None:
        self.camera = camera
        directory = camera.session_dir
        self.csv = PoseCsvWriter(
            directory / f"{camera.stem}{POSE_CSV_SUFFIX}",
            f"deeplabstream_{camera.model_name}",
            camera.keypoints,
            camera.individuals if camera.multi_animal else None,
        )
        self.timing = PoseTimingWriter(
            directory / f"{camera.stem}{POSE_TIMING_SUFFIX}", camera.timing_stages
        )
        self.times = PoseTimesWriter(directory / f"{camera.stem}{POSE_TIMES_SUFFIX}")
        self.exact = ExactPoseWriter(
            directory / f"{camera.stem}{POSE_EXACT_SUFFIX}",
            camera.keypoints,
            camera.individuals if camera.multi_animal else None,
            identities=camera.identities is not None,
            members=len(camera.ensemble),
        )
        # An ensemble's spread, and its causal filter's output (docs/ensembles.md).
        self.ensemble = self.causal = None
        if camera.ensemble:
            self.ensemble = EnsembleCsvWriter(
                directory / f"{camera.stem}{ENSEMBLE_SUFFIX}",
                f"deeplabstream_ensemble_{camera.model_name}",
                camera.keypoints,
            )
        if camera.ensemble and camera.causal_eks:
            self.causal = EnsembleCsvWriter(
                directory / f"{camera.stem}{EKS_CAUSAL_SUFFIX}",
                "deeplabstream_causal_eks",
                camera.keypoints,
                smoothed=True,
            )
        self.identities = camera.identities  # writes <camera>.identity.csv beside the pose rows
        self.looks: dict[str, Any] | None = None  # what the identity keeper did, once closed
        self.table_errors: list[str] = []

    def write(self, frame: AnalysedFrame) -> None:
        """Append its pose row (and identities' confidences), its times and its timing."""
        record = frame.record
        self.csv.write(record.frame_index, frame.animals)  # (1, K, 3) for one animal
        identities = self.identities
        ensemble = frame.ensemble
        self.exact.write(
            record.frame_index,
            frame.animals,
            frame.batch,
            frame.time_s,
            frame.lead_s,
            identities.confidence if identities is not None else None,
            None if ensemble is None else ensemble.members,
        )
        if ensemble is not None:
            self._write_ensemble(record.frame_index, frame.animals[0], ensemble)
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
            frame.late_part,
        )

    def _write_ensemble(self, index: int, keypoints: np.ndarray, ensemble: EnsembleValues) -> None:
        """Append an ensemble's rows: its spread, and its causal filter's output."""
        median = keypoints[:, :2]
        if self.ensemble is not None:
            self.ensemble.write(index, keypoints, median, ensemble.variance)
        if self.causal is not None and ensemble.smoothed is not None:
            assert ensemble.observation_variance is not None  # set with smoothed
            smoothed = np.column_stack([ensemble.smoothed, keypoints[:, 2]])
            self.causal.write(
                index, smoothed, median, ensemble.observation_variance, ensemble.smoothed_variance
            )

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Append its empty pose row and its times."""
        self.csv.write_missing(record.frame_index)
        for rows in self._ensemble_files:
            rows.write_missing(record.frame_index)
        self.times.write(
            record.frame_index, record.host_timestamp_ns, record.camera_timestamp, False
        )

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Close the files and the identity keeper, then write ``<camera>.pose.pqt`` from them."""
        if last_index is not None:  # those frames go on one index each: their rows are there
            self.csv.end_at(last_index)
            self.times.end_at(last_index)
            if self.identities is not None:
                self.identities.end_at(last_index)
            for rows in self._ensemble_files:
                rows.end_at(last_index)
        for rows in self._ensemble_files:
            rows.close()
        self.csv.close()
        self.exact.close()
        self.timing.close()
        self.times.close()
        # The learner stopped and the confidence file closed before the table reads it.
        self.looks = self.identities.close() if self.identities is not None else None
        return {
            "pose_file": self.csv.path.name,
            "pose_rows": self.csv.rows,  # one per frame index, analysed or not
            "pose_times_file": self.times.path.name,
            "pose_table": self._table(),
            # how pose_exact.csv's values read back to their bits (float32 or float64)
            "pose_exact_dtype": self.exact.dtype,
        }

    @property
    def _ensemble_files(self) -> list[EnsembleCsvWriter]:
        """An ensemble's files (none for one model)."""
        return [rows for rows in (self.ensemble, self.causal) if rows is not None]

    @property
    def errors(self) -> list[str]:
        """Say which files stopped early (a full disk): the session reports them as errors."""
        written = (self.csv.error, self.exact.error, self.timing.error, self.times.error)
        ensemble = tuple(rows.error for rows in self._ensemble_files)
        return [error for error in (*written, *ensemble) if error] + self.table_errors

    def _table(self) -> str | None:
        """Write ``<stem>.pose.pqt`` from the finished CSVs; None (and an error kept) on failure."""
        target = self.camera.session_dir / f"{self.camera.stem}{POSE_PARQUET_SUFFIX}"
        identity = self.identities.file.path if self.identities is not None else None
        try:
            ensemble = self.ensemble.path if self.ensemble is not None else None
            method = self.identities.method() if self.identities is not None else None
            write_pose_parquet(
                self.csv.path, target, self.times.path, identity, ensemble, identities=method
            )
        except (OSError, ValueError) as error:
            message = f"could not write {target.name}: {error}"
            log.error("%s", message)
            self.table_errors.append(message)
            target.unlink(missing_ok=True)  # never leave a cut (unreadable) table behind
            return None
        return target.name


class PoseFilesOutput(Output):
    """``pose``: the pose files of every camera and their table (always chosen)."""

    def open_live(self, session: OutputSession) -> LiveOutput:
        """Return the live half: a :class:`PoseFileSink` per camera."""
        return _PoseFiles()


class _PoseFiles(LiveOutput):
    def camera_sink(self, camera: OutputCamera) -> PoseSink:
        return PoseFileSink(camera)


class IblSink:
    """Writes the camera's IBL-named tables at the close, from its finished pose table."""

    def __init__(self, camera: OutputCamera) -> None:
        self.camera = camera

    def write(self, frame: AnalysedFrame) -> None:
        """Nothing: the IBL files are copies of the finished table."""

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Nothing, as above."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Write the IBL files (no table: nothing); ``ibl_files`` None when they could not be."""
        camera = self.camera
        parquet = camera.session_dir / f"{camera.stem}{POSE_PARQUET_SUFFIX}"
        if not parquet.is_file():  # the pose table failed: its error is reported already
            return {}
        timing = camera.session_dir / f"{camera.stem}{POSE_TIMING_SUFFIX}"
        label = camera.stem[len(camera.name) :]  # "" or ".run2": after IBL's name, as the stem
        stem = camera.session_dir / f"{ibl_stem(camera.name)}{label}"
        try:
            return {"ibl_files": list(write_ibl_pose_files(parquet, timing, stem))}
        except (OSError, ValueError, KeyError) as error:
            log.error("could not write the IBL-named files of %s: %s", camera.name, error)
            return {"ibl_files": None}


class IblOutput(Output):
    """``ibl``: the pose tables also named as IBL's pipeline names them."""

    def open_live(self, session: OutputSession) -> LiveOutput:
        """Return the live half: an :class:`IblSink` per camera."""
        return _IblFiles()


class _IblFiles(LiveOutput):
    def camera_sink(self, camera: OutputCamera) -> PoseSink:
        return IblSink(camera)
