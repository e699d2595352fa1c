"""The inference worker: one process that estimates poses for every camera.

It subscribes to each camera's ANALYSE channel with the newest-frame policy, waits on all of them
at once, and whenever frames are ready takes the newest frame of every camera that has one,
estimates their poses in one batch per frame size, writes the pose files, and sends each pose on
the POSE pipe (camera id, frame index and timestamps, keypoints in frame pixels). Frames it
passes over are counted per camera (``skipped``), never silently lost.

Control messages (small, pickled)::

    worker -> main   PoseReady(...) | PoseFailed(message)   model loaded and warmed up, or not
    main -> worker   StopAnalysis()
    worker -> main   PoseFinished(per-camera figures)
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from cameras.base import host_now_ns
from experiments.observation import Observation
from experiments.runtime import ExperimentRun, ExperimentStartError
from pose.files import (
    POSE_CSV_SUFFIX,
    POSE_PARQUET_SUFFIX,
    POSE_TIMING_SUFFIX,
    PoseCsvWriter,
    PoseTimingWriter,
    write_pose_parquet,
)
from pose.model import ModelDescription, ModelError
from pose.records import PoseRecord, encode_pose
from recording.session import SESSION_LOG
from settings.sections import DeviceSettings, PoseSettings
from stream.channel import ChannelReader, ChannelWriter
from stream.logs import LogTarget, add_log_file, configure_process_logging
from stream.readers import NewestFrameReader
from stream.ring import Channel, FrameRing, RingSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerCamera:
    """One camera as the worker sees it."""

    camera_id: int
    name: str
    ring: RingSpec
    channel: Connection  # read end of the camera's ANALYSE pipe
    flip: bool = False


@dataclass(frozen=True)
class ExperimentSpec:
    """The experiment to run on the poses, and the devices settings.ini declares."""

    name: str
    devices: dict[str, DeviceSettings]


@dataclass(frozen=True)
class PoseJob:
    """Everything the worker process needs (picklable)."""

    cameras: tuple[WorkerCamera, ...]
    settings: PoseSettings
    session_dir: Path
    control: Connection
    poses: Connection  # write end of the POSE pipe
    log_target: LogTarget
    experiment: ExperimentSpec | None = None


@dataclass(frozen=True)
class PoseReady:
    """The model is loaded and warmed up; frames from now on are analysed."""

    model: dict[str, Any]
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PoseFailed:
    """The model could not be loaded or run; the message says why and what to do."""

    message: str


@dataclass(frozen=True)
class StopAnalysis:
    """Finish the current batch, write the files, and end."""


@dataclass(frozen=True)
class PoseFinished:
    """Per-camera figures of the analysis."""

    cameras: dict[str, dict[str, Any]]
    error: str | None = None
    experiment: dict[str, Any] | None = None


@dataclass
class _CameraState:
    camera: WorkerCamera
    reader: NewestFrameReader
    ring: FrameRing
    csv: PoseCsvWriter
    timing: PoseTimingWriter
    latencies_ms: list[float] = field(default_factory=list)
    first_ready_ns: int = 0
    last_ready_ns: int = 0


def model_summary(description: ModelDescription, provider: str) -> dict[str, Any]:
    """What ``session.json`` says about the model."""
    return {
        "name": description.name,
        "framework": description.framework,
        "file": str(description.model_file),
        "keypoints": list(description.keypoints),
        "input": [description.input_width, description.input_height],
        "precision": description.precision,
        "decoder": description.decoder,
        "provider": provider,
    }


def pose_main(job: PoseJob) -> None:
    """Entry point of the inference worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    configure_process_logging(job.log_target, "pose")
    add_log_file(job.session_dir / SESSION_LOG)
    try:
        estimators, description, provider = _load(job)
    except (ModelError, OSError, RuntimeError, ValueError) as error:
        job.control.send(PoseFailed(str(error)))
        return
    except Exception as error:  # a bug or an unexpected library error: still say what it was
        log.exception("the pose model could not be loaded")
        job.control.send(PoseFailed(f"the pose model could not be loaded: {error!r}"))
        return
    try:
        run = _open_experiment(job)
    except ExperimentStartError as error:
        job.control.send(PoseFailed(str(error)))
        return
    states = _subscribe(job, description)
    job.control.send(
        PoseReady(model_summary(description, provider), description.keypoints, description.skeleton)
    )
    error: str | None = None
    try:
        _analyse(job, states, estimators, run)
    except Exception as failure:  # the stream must hear why analysis stopped
        log.exception("pose estimation failed")
        error = f"pose estimation stopped: {failure!r}"
    finally:
        figures = _finish(job, states)
        experiment = _finish_experiment(run)
    if run is not None and run.error and not error:
        error = run.error
    try:
        job.control.send(PoseFinished(figures, error, experiment))
    except OSError:
        pass


def _open_experiment(job: PoseJob) -> ExperimentRun | None:
    if job.experiment is None:
        return None
    return ExperimentRun.open(job.experiment.name, job.experiment.devices, job.session_dir)


def _finish_experiment(run: ExperimentRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    try:
        run.stop()
    except Exception:  # the pose files and the figures must still be reported
        log.exception("the experiment did not stop cleanly")
    return run.summary()


def _load(job: PoseJob) -> tuple[dict[tuple[int, ...], Any], ModelDescription, str]:
    from pose.backends import open_backend
    from pose.estimator import PoseEstimator
    from pose.loading import load_model

    settings = job.settings
    description = load_model(settings.model_path)
    # Auto: leave one core to the capture and recording processes, use at most 4.
    threads = settings.threads or max(1, min(4, (os.cpu_count() or 2) - 1))
    backend = open_backend(description, settings.backend, settings.device, threads)
    backend.warm_up()
    estimators: dict[tuple[int, ...], Any] = {}
    for camera in job.cameras:
        shape = camera.ring.geometry.shape
        if shape not in estimators:
            estimators[shape] = PoseEstimator(description, backend, shape, settings.max_batch)
            estimators[shape].estimate([np.zeros(shape, np.uint8)])  # warm the whole path
    log.info("model %s ready on %s", description.name, backend.provider)
    return estimators, description, backend.provider


def _subscribe(job: PoseJob, description: ModelDescription) -> list[_CameraState]:
    scorer = f"deeplabstream_{description.name}"
    states = []
    for camera in job.cameras:
        ring = FrameRing.attach(camera.ring)
        reader = NewestFrameReader(
            ring, ChannelReader(camera.channel, camera.camera_id), Channel.ANALYSE
        )
        folder = job.session_dir
        states.append(
            _CameraState(
                camera=camera,
                reader=reader,
                ring=ring,
                csv=PoseCsvWriter(
                    folder / f"{camera.name}{POSE_CSV_SUFFIX}", scorer, description.keypoints
                ),
                timing=PoseTimingWriter(folder / f"{camera.name}{POSE_TIMING_SUFFIX}"),
            )
        )
    return states


def _analyse(
    job: PoseJob, states: list[_CameraState], estimators: dict, run: ExperimentRun | None
) -> None:
    poses_out = ChannelWriter(job.poses)
    active = list(states)
    seq = 0
    while active:
        wait([*(s.reader for s in active), job.control], timeout=1.0)
        if job.control.poll():
            try:
                message = job.control.recv()
            except EOFError:  # the main process is gone
                return
            if isinstance(message, StopAnalysis):
                return
        picked_ns = host_now_ns()
        ready = [s for s in active if s.reader.poll()]
        active = [s for s in active if s.reader.ended is None]
        groups: dict[tuple[int, ...], list[_CameraState]] = defaultdict(list)
        for state in ready:
            groups[state.camera.ring.geometry.shape].append(state)
        for shape, group in groups.items():
            seq = _estimate_group(estimators[shape], group, picked_ns, poses_out, seq, run)


def _estimate_group(
    estimator: Any,
    group: list[_CameraState],
    picked_ns: int,
    poses_out: ChannelWriter,
    seq: int,
    run: ExperimentRun | None,
) -> int:
    poses = estimator.estimate([s.reader.frame for s in group], [s.camera.flip for s in group])
    ready_ns = host_now_ns()
    if run is not None:  # the decision first: files and pipes can wait a few microseconds
        observations = [_observation(s, p, estimator) for s, p in zip(group, poses, strict=True)]
        run.on_poses(observations, ready_ns)
    timings = dict(estimator.last_timings)
    for state, pose in zip(group, poses, strict=True):
        record = state.reader.record
        assert record is not None
        state.csv.write(record.frame_index, pose)
        state.timing.write(
            record.frame_index, record.host_timestamp_ns, picked_ns, timings, ready_ns, len(group)
        )
        poses_out.send(
            encode_pose(
                PoseRecord(
                    state.camera.camera_id,
                    record.frame_index,
                    record.host_timestamp_ns,
                    picked_ns,
                    ready_ns,
                    seq,
                    pose,
                )
            )
        )
        state.latencies_ms.append((ready_ns - record.host_timestamp_ns) / 1e6)
        state.first_ready_ns = state.first_ready_ns or ready_ns
        state.last_ready_ns = ready_ns
        seq += 1
    return seq


def _observation(state: _CameraState, pose: np.ndarray, estimator: Any) -> Observation:
    record = state.reader.record
    assert record is not None
    camera_s = None if math.isnan(record.camera_timestamp) else record.camera_timestamp
    return Observation(
        time_s=camera_s if camera_s is not None else record.host_timestamp_ns / 1e9,
        camera=state.camera.name,
        frame_index=record.frame_index,
        keypoints=pose,
        names=estimator.description.keypoints,
        frame=state.reader.frame,  # for image features (motion energy); they copy what they keep
        host_time_s=record.host_timestamp_ns / 1e9,
    )


def _finish(job: PoseJob, states: list[_CameraState]) -> dict[str, dict[str, Any]]:
    figures = {}
    for state in states:
        state.reader.close()
        state.csv.close()
        state.timing.close()
        header = state.ring.header
        analysed = state.csv.rows
        span_s = (state.last_ready_ns - state.first_ready_ns) / 1e9
        figures[state.camera.name] = {
            "frames_analysed": analysed,
            "frames_skipped": int(header["skipped"][Channel.ANALYSE]),
            "frames_lost": int(header["lost"][Channel.ANALYSE]),
            "analysed_fps": round((analysed - 1) / span_s, 3) if analysed > 1 and span_s else None,
            "latency_ms": percentiles(state.latencies_ms),
            "pose_file": state.csv.path.name,
            "pose_table": _parquet(state.csv.path, job.session_dir / state.camera.name),
        }
        state.ring.close()
    return figures


def _parquet(csv_path: Path, stem: Path) -> str | None:
    target = stem.with_name(stem.name + POSE_PARQUET_SUFFIX)
    try:
        write_pose_parquet(csv_path, target)
    except (OSError, ValueError) as error:
        log.error("could not write %s: %s", target, error)
        return None
    return target.name


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50 / p95 / p99 / max of ``values`` (milliseconds), rounded; None when empty."""
    if not values:
        return None
    array = np.asarray(values)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(array.max()), 3),
    }
