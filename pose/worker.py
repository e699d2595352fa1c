"""The inference worker: one process that estimates poses for every camera.

It subscribes to each camera's ANALYSE channel with the newest-frame policy, waits on all of them
at once, and whenever frames are ready takes the newest frame of every camera that has one,
estimates their poses in one batch per frame size, writes the pose files, and sends each pose on
the POSE pipe (camera id, frame index and timestamps, keypoints in frame pixels). Frames it
passes over are counted per camera (``skipped``), never silently lost.

Control messages (small, pickled)::

    worker -> main   PoseReady(...) | PoseFailed(message)   model loaded and warmed up, or not
    main -> worker   StartExperiment(spec, events_file)     (GUI) start an experiment now
    worker -> main   ExperimentStarted(...) | ExperimentFailed(message)
    main -> worker   StopExperiment()                       outputs off, events.csv closed
    worker -> main   ExperimentStopped(summary)
    worker -> main   ExperimentStatus(...)                  state, trials, triggers, at most
    main -> worker   StatusWanted()                         one in flight: the next is sent
                                                            only after the main process asks
    main -> worker   StopAnalysis()
    worker -> main   PoseFinished(per-camera figures)

The status credit (``StatusWanted``) means a main process that is busy (or a window that froze)
can never fill the pipe and block the worker: the loop never waits on the display.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from cameras.base import host_now_ns
from experiments.observation import Observation
from experiments.runtime import EVENTS_FILE, ExperimentRun, ExperimentStartError
from pose.files import (
    POSE_CSV_SUFFIX,
    POSE_PARQUET_SUFFIX,
    POSE_TIMING_SUFFIX,
    PoseCsvWriter,
    PoseTimingWriter,
    ibl_stem,
    write_ibl_pose_files,
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
class DepthSource:
    """A camera's depth image, aligned to its analysed frames: its companion ring and units."""

    ring: RingSpec  # the ``depth`` companion ring (frame ``seq`` belongs to main frame ``seq``)
    units_m: float  # metres per depth unit (``depth_units_m``; a RealSense: usually 0.001)


def depth_source(
    camera: str, description: Mapping[str, Any], frame_size: tuple[int, int]
) -> DepthSource | None:
    """The depth experiments may read for a camera, from its ``Opened.description``.

    None for a camera without a ``depth`` companion, and (with a warning) for one whose depth is
    not pixel-aligned to the analysed image: depth at a keypoint would be the depth somewhere
    else. Aligned means the camera aligned it (``aligned_to`` set: RealSense ``ALIGN_DEPTH =
    true``) or the main image is the infrared imager that depth is measured from; and the depth
    image must have the analysed image's size (``frame_size``: height, width).
    """
    from cameras.companion import companion_rings

    entry = (description.get("companions") or {}).get("depth")
    if not entry:
        return None
    aligned = entry.get("aligned_to") is not None or description.get("main_stream") == "infrared"
    ring = companion_rings(description)["depth"]
    size = (ring.geometry.height, ring.geometry.width)
    units = entry.get("depth_units_m")
    problem = None
    if not aligned:
        problem = "it is not aligned to the analysed image (set ALIGN_DEPTH = true)"
    elif size != tuple(frame_size):
        problem = f"its size {size[1]}x{size[0]} differs from the image's"
    elif not units or not math.isfinite(units) or units <= 0:
        problem = f"its depth units are unknown ({units!r})"
    if problem:
        log.warning("camera %s: experiments get no depth from it: %s", camera, problem)
        return None
    return DepthSource(ring, float(units))


@dataclass(frozen=True)
class WorkerCamera:
    """One camera as the worker sees it."""

    camera_id: int
    name: str
    ring: RingSpec
    channel: Connection  # read end of the camera's ANALYSE pipe
    flip: bool = False
    model_path: Path | None = None  # this camera's own model; None: the shared [Pose] model
    depth: DepthSource | None = None  # its aligned depth image: Observation.depth_m reads it


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
    file_label: str = ""  # "" for the session's first analysis, ".run2" etc. for later ones
    events_file: str = EVENTS_FILE  # for ``experiment``
    ibl_naming: bool = False  # also write _ibl_<camera>Camera.dlc.pqt and .times.npy


@dataclass(frozen=True)
class CameraModel:
    """The model one camera's poses come from: its keypoints (pose rows) and skeleton."""

    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]
    summary: dict[str, Any]


@dataclass(frozen=True)
class PoseReady:
    """The models are loaded and warmed up; frames from now on are analysed.

    ``model``, ``keypoints`` and ``skeleton`` describe the shared model (the first camera's);
    ``cameras`` says which model each camera uses. Pose records carry ``record_keypoints`` rows,
    the most of any model: a camera's record holds its model's keypoints, then NaN rows.
    """

    model: dict[str, Any]
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]
    cameras: dict[str, CameraModel] = field(default_factory=dict)
    record_keypoints: int = 0


@dataclass(frozen=True)
class PoseFailed:
    """The model could not be loaded or run; the message says why and what to do."""

    message: str


@dataclass(frozen=True)
class StopAnalysis:
    """Finish the current batch, write the files, and end."""


@dataclass(frozen=True)
class StartExperiment:
    """Start an experiment on the poses from the next batch on (the GUI's Start Experiment)."""

    spec: ExperimentSpec
    events_file: str


@dataclass(frozen=True)
class ExperimentStarted:
    """The experiment runs and its devices are open."""

    name: str
    events_file: str


@dataclass(frozen=True)
class ExperimentFailed:
    """The experiment could not start; the message says why and what to do."""

    message: str


@dataclass(frozen=True)
class StopExperiment:
    """Stop the running experiment: outputs off, its events file closed; analysis goes on."""


@dataclass(frozen=True)
class ExperimentStopped:
    """The experiment has stopped; its summary for ``session.json``."""

    summary: dict[str, Any] | None


@dataclass(frozen=True)
class StatusWanted:
    """The main process has taken the last status and would take another."""


@dataclass(frozen=True)
class PoseFinished:
    """Per-camera figures of the analysis."""

    cameras: dict[str, dict[str, Any]]
    error: str | None = None
    experiment: dict[str, Any] | None = None  # the last experiment's summary
    experiments: tuple[dict[str, Any], ...] = ()  # every experiment of this analysis, in order


STATUS_INTERVAL_NS = 100_000_000  # experiment status to the GUI at most 10 times a second


@dataclass
class _ExperimentSlot:
    """The experiment the worker runs now (if any), and the summaries of those it ran."""

    run: ExperimentRun | None = None
    summaries: list[dict[str, Any]] = field(default_factory=list)
    status_wanted: bool = True
    next_status_ns: int = 0
    last_actions: int = -1


@dataclass
class _CameraState:
    camera: WorkerCamera
    model: _LoadedModel
    reader: NewestFrameReader
    ring: FrameRing
    csv: PoseCsvWriter
    timing: PoseTimingWriter
    depth: Any = None  # cameras.companion.CompanionReader of camera.depth
    latencies_ms: list[float] = field(default_factory=list)
    first_ready_ns: int = 0
    last_ready_ns: int = 0


@dataclass
class _LoadedModel:
    """One model and its estimators, one per frame shape of the cameras that use it."""

    key: str  # the model's path, "" for the bundled model
    description: ModelDescription
    backend: Any  # pose.backends.Backend
    estimators: dict[tuple[int, ...], Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return model_summary(self.description, self.backend.provider)


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
        models = _load(job)
    except (ModelError, OSError, RuntimeError, ValueError) as error:
        job.control.send(PoseFailed(str(error)))
        return
    except Exception as error:  # a bug or an unexpected library error: still say what it was
        log.exception("the pose model could not be loaded")
        job.control.send(PoseFailed(f"the pose model could not be loaded: {error!r}"))
        return
    slot = _ExperimentSlot()
    try:
        slot.run = _open_experiment(job.experiment, job.session_dir, job.events_file)
    except ExperimentStartError as error:
        job.control.send(PoseFailed(str(error)))
        return
    states = _subscribe(job, models)
    job.control.send(_ready_message(states))
    error: str | None = None
    try:
        _analyse(job, states, slot)
    except Exception as failure:  # the stream must hear why analysis stopped
        log.exception("pose estimation failed")
        error = f"pose estimation stopped: {failure!r}"
    finally:
        figures = _finish(job, states)
        run_error = slot.run.error if slot.run is not None else None
        _finish_experiment(slot)
    if run_error and not error:
        error = run_error
    last = slot.summaries[-1] if slot.summaries else None
    try:
        job.control.send(PoseFinished(figures, error, last, tuple(slot.summaries)))
    except OSError:
        pass


def _open_experiment(
    spec: ExperimentSpec | None, session_dir: Path, events_file: str
) -> ExperimentRun | None:
    if spec is None:
        return None
    return ExperimentRun.open(spec.name, spec.devices, session_dir, events_file)


def _finish_experiment(slot: _ExperimentSlot) -> dict[str, Any] | None:
    """Stop the running experiment (if any); keep and return its summary."""
    run, slot.run = slot.run, None
    if run is None:
        return None
    try:
        run.stop()
    except Exception:  # the pose files and the figures must still be reported
        log.exception("the experiment did not stop cleanly")
    summary = run.summary()
    slot.summaries.append(summary)
    return summary


def _handle_control(job: PoseJob, slot: _ExperimentSlot) -> bool:
    """Act on the main process's messages; False once analysis should end."""
    while job.control.poll():
        try:
            message = job.control.recv()
        except EOFError:  # the main process is gone
            return False
        if isinstance(message, StopAnalysis):
            return False
        if isinstance(message, StatusWanted):
            slot.status_wanted = True
        elif isinstance(message, StartExperiment):
            _start_experiment(job, slot, message)
        elif isinstance(message, StopExperiment):
            job.control.send(ExperimentStopped(_finish_experiment(slot)))
    return True


def _start_experiment(job: PoseJob, slot: _ExperimentSlot, message: StartExperiment) -> None:
    if slot.run is not None:
        job.control.send(ExperimentFailed(f"experiment {slot.run.experiment.name!r} runs already"))
        return
    try:
        slot.run = _open_experiment(message.spec, job.session_dir, message.events_file)
    except ExperimentStartError as error:
        job.control.send(ExperimentFailed(str(error)))
        return
    slot.last_actions = -1  # the first status goes out at once
    job.control.send(ExperimentStarted(message.spec.name, message.events_file))


def _send_status(job: PoseJob, slot: _ExperimentSlot) -> None:
    """Send the experiment's status if the main process wants one and there is news."""
    run = slot.run
    if run is None or not slot.status_wanted:
        return
    now = host_now_ns()
    if now < slot.next_status_ns and run.actions == slot.last_actions:
        return  # an action is news at once (the live view flashes); otherwise 10 Hz
    slot.status_wanted = False
    slot.next_status_ns = now + STATUS_INTERVAL_NS
    slot.last_actions = run.actions
    job.control.send(run.status())


def _model_key(job: PoseJob, camera: WorkerCamera) -> str:
    path = camera.model_path or job.settings.model_path
    return str(path) if path is not None else ""


def _load(job: PoseJob) -> dict[str, _LoadedModel]:
    """Every model the cameras use, each loaded once and warmed up on each frame shape."""
    from pose.backends import open_backend
    from pose.estimator import PoseEstimator
    from pose.loading import load_model

    settings = job.settings
    # Auto: leave one core to the capture and recording processes, use at most 4.
    threads = settings.threads or max(1, min(4, (os.cpu_count() or 2) - 1))
    models: dict[str, _LoadedModel] = {}
    for camera in job.cameras:
        key = _model_key(job, camera)
        if key not in models:
            description = load_model(
                Path(key) if key else None,
                frame_size=camera.ring.geometry.shape[:2],
                precision=settings.precision,
            )
            backend = open_backend(description, settings.backend, settings.device, threads)
            backend.warm_up()
            models[key] = _LoadedModel(key, description, backend)
            log.info("model %s ready on %s", description.name, backend.provider)
        model = models[key]
        shape = camera.ring.geometry.shape
        if shape not in model.estimators:
            description = model.description
            if description.any_input_size:  # DeepLabCut runs at the frame's own size
                description = description.at_input_size(*shape[:2])
            estimator = PoseEstimator(description, model.backend, shape, settings.max_batch)
            estimator.estimate([np.zeros(shape, np.uint8)])  # warm the whole path
            model.estimators[shape] = estimator
    return models


def _ready_message(states: list[_CameraState]) -> PoseReady:
    first = states[0].model.description
    cameras = {
        state.camera.name: CameraModel(
            state.model.description.keypoints,
            state.model.description.skeleton,
            state.model.summary,
        )
        for state in states
    }
    return PoseReady(
        states[0].model.summary,
        first.keypoints,
        first.skeleton,
        cameras,
        max(len(model.keypoints) for model in cameras.values()),
    )


def _subscribe(job: PoseJob, models: dict[str, _LoadedModel]) -> list[_CameraState]:
    states = []
    for camera in job.cameras:
        model = models[_model_key(job, camera)]
        description = model.description
        ring = FrameRing.attach(camera.ring)
        reader = NewestFrameReader(
            ring, ChannelReader(camera.channel, camera.camera_id), Channel.ANALYSE
        )
        stem = f"{camera.name}{job.file_label}"
        states.append(
            _CameraState(
                camera=camera,
                model=model,
                reader=reader,
                ring=ring,
                csv=PoseCsvWriter(
                    job.session_dir / f"{stem}{POSE_CSV_SUFFIX}",
                    f"deeplabstream_{description.name}",
                    description.keypoints,
                ),
                timing=PoseTimingWriter(job.session_dir / f"{stem}{POSE_TIMING_SUFFIX}"),
                depth=_depth_reader(camera),
            )
        )
    return states


def _depth_reader(camera: WorkerCamera) -> Any:
    if camera.depth is None:
        return None
    from cameras.companion import CompanionReader

    reader = CompanionReader(camera.depth.ring)
    reader.ring  # noqa: B018 - map it now, like the camera's own ring, not in the first decision
    return reader


class FrameDepth:
    """:data:`experiments.observation.DepthLookup` of one frame: its depth ring, by its ``seq``.

    The depth of main frame ``seq`` is published before the frame is announced, so it is there
    when the frame's pose is; it stays readable until the ring moves past it (about 2 s).
    """

    __slots__ = ("reader", "seq", "units_m")

    def __init__(self, reader: Any, seq: int, units_m: float) -> None:
        self.reader, self.seq, self.units_m = reader, seq, units_m

    def __call__(self, x: float, y: float, radius: int) -> float | None:
        """Metres from the camera under (x, y): the median of the measured pixels; None if none."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        value = self.reader.value_at(self.seq, x, y, radius)
        return None if value is None else value * self.units_m


def _analyse(job: PoseJob, states: list[_CameraState], slot: _ExperimentSlot) -> None:
    poses_out = ChannelWriter(job.poses)
    active = list(states)
    record_rows = max(len(s.model.description.keypoints) for s in states)
    common_clock = len(states) > 1
    seq = 0
    while active:
        wait([*(s.reader for s in active), job.control], timeout=1.0)
        # On a stop, one last turn: frames announced before it are analysed (the newest of each
        # camera) or counted as skipped, never left uncounted.
        stopping = not _handle_control(job, slot)
        picked_ns = host_now_ns()
        ready = [s for s in active if s.reader.poll()]
        active = [s for s in active if s.reader.ended is None]
        groups: dict[tuple[str, tuple[int, ...]], list[_CameraState]] = defaultdict(list)
        for state in ready:  # one batch per model and frame size
            groups[(state.model.key, state.camera.ring.geometry.shape)].append(state)
        for (_, shape), group in groups.items():
            estimator = group[0].model.estimators[shape]
            batch = _Batch(picked_ns, poses_out, seq, record_rows, common_clock)
            seq = _estimate_group(estimator, group, batch, slot.run)
        if stopping:
            return
        if ready:
            _send_status(job, slot)


@dataclass(frozen=True)
class _Batch:
    """What every group of one loop turn shares."""

    picked_ns: int
    poses_out: ChannelWriter
    seq: int
    record_rows: int  # rows of a pose record (the most keypoints of any model)
    common_clock: bool  # several cameras: experiments see host time, the clock they share


def _padded(pose: np.ndarray, rows: int) -> np.ndarray:
    if len(pose) == rows:
        return pose
    out = np.full((rows, 3), np.nan, np.float32)
    out[: len(pose)] = pose
    return out


def _estimate_group(
    estimator: Any, group: list[_CameraState], batch: _Batch, run: ExperimentRun | None
) -> int:
    picked_ns, seq = batch.picked_ns, batch.seq
    poses = estimator.estimate([s.reader.frame for s in group], [s.camera.flip for s in group])
    ready_ns = host_now_ns()
    experiment_ms = None
    if run is not None:  # the decision first: files and pipes can wait a few microseconds
        observations = [
            _observation(s, p, estimator, batch.common_clock)
            for s, p in zip(group, poses, strict=True)
        ]
        run.on_poses(observations, ready_ns)
        experiment_ms = (host_now_ns() - ready_ns) / 1e6
    timings = dict(estimator.last_timings)
    for state, pose in zip(group, poses, strict=True):
        record = state.reader.record
        assert record is not None
        state.csv.write(record.frame_index, pose)
        state.timing.write(
            record.frame_index,
            record.host_timestamp_ns,
            picked_ns,
            timings,
            ready_ns,
            len(group),
            experiment_ms,
        )
        batch.poses_out.send(
            encode_pose(
                PoseRecord(
                    state.camera.camera_id,
                    record.frame_index,
                    record.host_timestamp_ns,
                    picked_ns,
                    ready_ns,
                    seq,
                    _padded(pose, batch.record_rows),
                )
            )
        )
        state.latencies_ms.append((ready_ns - record.host_timestamp_ns) / 1e6)
        state.first_ready_ns = state.first_ready_ns or ready_ns
        state.last_ready_ns = ready_ns
        seq += 1
    return seq


def _observation(
    state: _CameraState, pose: np.ndarray, estimator: Any, common_clock: bool
) -> Observation:
    """The experiment's view of one pose.

    With one camera, time is the camera's own clock where it has one (its hardware timestamps
    are the most exact). With several, every camera's observation uses the host arrival time,
    the one clock they share, so pairing by time and the pairing error mean something.
    """
    record = state.reader.record
    assert record is not None
    camera_s = None if math.isnan(record.camera_timestamp) else record.camera_timestamp
    if common_clock:
        camera_s = None
    depth = state.camera.depth
    return Observation(
        time_s=camera_s if camera_s is not None else record.host_timestamp_ns / 1e9,
        camera=state.camera.name,
        frame_index=record.frame_index,
        keypoints=pose,
        names=estimator.description.keypoints,
        frame=state.reader.frame,  # for image features (motion energy); they copy what they keep
        host_time_s=record.host_timestamp_ns / 1e9,
        # the depth of this very frame (its seq), for cameras with aligned depth
        depth=FrameDepth(state.depth, record.seq, depth.units_m) if depth is not None else None,
    )


def _finish(job: PoseJob, states: list[_CameraState]) -> dict[str, dict[str, Any]]:
    figures = {}
    for state in states:
        state.reader.close()
        if state.depth is not None:
            state.depth.close()
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
            "pose_table": _parquet(
                state.csv.path, job.session_dir / f"{state.camera.name}{job.file_label}"
            ),
        }
        if job.ibl_naming and figures[state.camera.name]["pose_table"]:
            figures[state.camera.name]["ibl_files"] = _ibl_files(job, state)
        state.ring.close()
    return figures


def _ibl_files(job: PoseJob, state: _CameraState) -> list[str] | None:
    stem = job.session_dir / f"{ibl_stem(state.camera.name)}{job.file_label}"
    parquet = job.session_dir / f"{state.camera.name}{job.file_label}{POSE_PARQUET_SUFFIX}"
    timing = job.session_dir / f"{state.camera.name}{job.file_label}{POSE_TIMING_SUFFIX}"
    try:
        return list(write_ibl_pose_files(parquet, timing, stem))
    except (OSError, ValueError, KeyError) as error:
        log.error("could not write the IBL-named files of %s: %s", state.camera.name, error)
        return None


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
