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

import dataclasses
import logging
import math
import signal
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.clock import host_now_ns
from deeplabstream.core.deadline import DeadlineAccount, stage_name
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.lifetime import die_with_parent, leave_sigint_to_parent
from deeplabstream.core.logs import LogTarget, add_log_file, configure_process_logging
from deeplabstream.core.priority import (
    ProcessPriority,
    apply_process_priority,
    inference_thread_count,
)
from deeplabstream.core.stats import DurationHistogram
from deeplabstream.experiments.observation import Observation, Points3D
from deeplabstream.live.processes.depth import DepthSource, FrameDepth, depth_reader
from deeplabstream.live.processes.dispatch import (
    EVENTS_FILE,
    ExperimentRun,
    ExperimentSlot,
    ExperimentStartError,
)
from deeplabstream.live.processes.identities import CameraIdentities
from deeplabstream.live.processes.messages import (
    CameraModel,
    ExperimentSpec,
    ExperimentStopped,
    PoseFailed,
    PoseFinished,
    PoseReady,
    StartExperiment,
    StatusWanted,
    StopAnalysis,
    StopExperiment,
)
from deeplabstream.live.processes.pose_records import PoseRecord, encode_pose
from deeplabstream.outputs.folder import SESSION_LOG
from deeplabstream.outputs.lsl import LslOutlets, PoseOutlet
from deeplabstream.outputs.pose_files import (
    IDENTITY_SUFFIX,
    POSE_CSV_SUFFIX,
    POSE_PARQUET_SUFFIX,
    POSE_TIMES_SUFFIX,
    POSE_TIMING_SUFFIX,
    PoseCsvWriter,
    PoseTimesWriter,
    PoseTimingWriter,
    ibl_stem,
    individual_names,
    write_ibl_pose_files,
    write_pose_parquet,
)
from deeplabstream.pose.model import ModelDescription, ModelError, frame_size_warning
from deeplabstream.pose.runtime.cropping import (
    ContextFeeder,
    ContextRecorder,
    Crop,
    CropSettings,
    DynamicCrop,
    crop_settings,
    full_crop,
    input_multiple,
    split_context_graphs,
)
from deeplabstream.pose.tracking.tracker import IdentityTracker
from deeplabstream.settings.sections import PoseSettings
from deeplabstream.spatial.triangulation.live import LiveTriangulator, TriangulationSpec
from deeplabstream.transport.channel import ChannelReader, ChannelWriter
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import Channel, FrameRing, RingSpec

log = logging.getLogger(__name__)


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
    # Its dynamic cropping (pose.runtime.cropping.crop_settings of [Pose] and its [Camera] keys);
    # None: [Pose]'s keys alone.
    dynamic_crop: CropSettings | None = None
    pixels_per_mm: float | None = None  # its PIXELS_PER_MM: Observation.pixels_per_mm
    # Its deadline ([Experiment] DEADLINE_MS for its rate; core/deadline.py); None: off.
    deadline_ns: int | None = None


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
    priority: ProcessPriority | None = None  # its own cores (core/priority.py)
    lsl: bool = False  # [Output] LSL = on: poses and events on LSL outlets (outputs/lsl.py)
    lsl_wait_s: float = 0.0  # [Output] LSL_WAIT: wait this long for consumers before the first pose
    # [Triangulation] with a calibration: the calibrated cameras' poses are triangulated after
    # each batch into points3d.csv and Observations.points3d (spatial/triangulation/live.py).
    triangulation: TriangulationSpec | None = None


@dataclass
class _CameraState:
    camera: WorkerCamera
    model: _LoadedModel
    reader: NewestFrameReader
    ring: FrameRing
    csv: PoseCsvWriter
    timing: PoseTimingWriter
    times: PoseTimesWriter  # every row's times, analysed or not
    depth: Any = None  # live.processes.companion.CompanionReader of camera.depth
    cropper: DynamicCrop | None = None  # with dynamic cropping
    crop: Crop | None = None  # the region of this turn's frame that is analysed
    context: dict[str, np.ndarray] | None = None  # channel gates of its last full frame
    frames_cropped: int = 0
    crop_sizes: set[tuple[int, int]] = field(default_factory=set)  # (width, height) used
    # Frame arrival -> keypoints of every analysed frame, in fixed bins: a list of every value
    # grew the worker by tens of bytes a frame (MBs an hour at 100 frames/s).
    latency: DurationHistogram = field(default_factory=DurationHistogram)
    first_ready_ns: int = 0
    last_ready_ns: int = 0
    lsl: PoseOutlet | None = None  # its LSL pose stream ([Output] LSL = on)
    tracker: IdentityTracker | None = None  # a multi-animal model's identities across frames
    # Its identities by motion and looks, their background learner and confidence file.
    identities: CameraIdentities | None = None
    deadline: DeadlineAccount = field(default_factory=lambda: DeadlineAccount(None))

    def analysed_region(self) -> Crop:
        """Return the crop of the frame read now: the cropper's, or the whole frame."""
        if self.cropper is not None:
            return self.cropper.current
        geometry = self.camera.ring.geometry
        return full_crop((geometry.height, geometry.width))


@dataclass
class _LoadedModel:
    """One model and its estimators, one per frame shape of the cameras that use it."""

    key: str  # the model's path, "" for the bundled model
    description: ModelDescription
    backend: Any  # pose.runtime.backends.Backend
    estimators: dict[tuple[int, ...], Any] = field(default_factory=dict)
    max_batch: int = 1
    input_multiple: int | None = None  # for dynamic cropping: crops start on its multiples
    crop_graphs: _CropGraphs | None = None  # for dynamic cropping of a network with gates

    @property
    def summary(self) -> dict[str, Any]:
        return model_summary(self.description, self.backend.provider)

    def estimator(self, shape: tuple[int, ...]) -> Any:
        """Return the estimator of frames (or crops) of ``shape``, built on first use.

        A crop's shape is met at run time: its estimator is built then (buffers of that size;
        the backend plans its memory for the new input shape on that first run, and keeps the
        plan). Crop sizes are rounded (pose.runtime.cropping) so that only a few are ever built.
        """
        estimator = self.estimators.get(shape)
        if estimator is None:
            from deeplabstream.pose.runtime.estimator import PoseEstimator

            description = self.description
            if description.any_input_size:  # DeepLabCut runs at the frame's (crop's) own size
                description = description.at_input_size(*shape[:2])
            estimator = PoseEstimator(description, self.backend, shape, self.max_batch)
            self.estimators[shape] = estimator
        return estimator


@dataclass
class _CropGraphs:
    """A network with channel gates (CSPNeXt), split for cameras that crop (pose.runtime.cropping).

    ``full`` runs the graph that also outputs the gates (its backend a ContextRecorder), for
    the cropping cameras' whole frames; ``crop`` the graph fed the gates of the camera's last
    whole frame (a ContextFeeder). A cropping camera is analysed alone (its own gates).
    """

    full: _LoadedModel
    crop: _LoadedModel


def model_summary(description: ModelDescription, provider: str) -> dict[str, Any]:
    """Return what ``session.json`` says about the model."""
    return {
        "name": description.name,
        "framework": description.framework,
        "file": str(description.model_file),
        "keypoints": list(description.keypoints),
        "input": [description.input_width, description.input_height],
        "precision": description.precision,
        "decoder": description.decoder,
        "provider": provider,
        "max_animals": description.animals,
        "skeleton": [list(pair) for pair in description.skeleton],
    }


def pose_main(job: PoseJob) -> None:
    """Entry point of the inference worker process."""
    leave_sigint_to_parent()  # the main process decides when to stop
    die_with_parent(signal.SIGTERM)  # never outlive the session (a killed main process)
    configure_process_logging(job.log_target, "pose")
    apply_process_priority(job.priority)  # before ONNX Runtime starts its thread pool
    add_log_file(job.session_dir / SESSION_LOG)
    try:
        hold_here("pose-load")  # a fault test's chosen moment (core/fault_hooks.py)
        models = _load(job)
    except (ModelError, OSError, RuntimeError, ValueError) as load_error:
        job.control.send(PoseFailed(str(load_error)))
        return
    except Exception as load_error:  # a bug or an unexpected library error: say what it was
        log.exception("the pose model could not be loaded")
        job.control.send(PoseFailed(f"the pose model could not be loaded: {load_error!r}"))
        return
    outlets = _open_lsl(job, models)
    slot = ExperimentSlot(job.control, job.session_dir, outlets.events)
    try:
        slot.open(job.experiment, job.events_file)
    except ExperimentStartError as start_error:
        outlets.close()
        job.control.send(PoseFailed(str(start_error)))
        return
    try:
        triangulator = _triangulator(job, models)
    except (OSError, ValueError) as calibration_error:  # CalibrationError is a ValueError
        slot.finish()
        outlets.close()
        job.control.send(PoseFailed(f"[Triangulation]: {calibration_error}"))
        return
    states = _subscribe(job, models)
    for state in states:
        state.lsl = outlets.poses.get(state.camera.name)
    job.control.send(_ready_message(states))
    error: str | None = None
    try:
        _analyse(job, states, slot, triangulator)
    except Exception as failure:  # the stream must hear why analysis stopped
        log.exception("pose estimation failed")
        error = f"pose estimation stopped: {failure!r}"
    finally:
        figures = _finish(job, states)
        _finish_triangulation(triangulator, figures)
        run_error = slot.run.error if slot.run is not None else None
        slot.finish()
        outlets.close()  # after the experiment's last events
    if run_error and not error:
        error = run_error
    error = error or outlets.error  # LSL failures are reported, never stop the session
    last = slot.summaries[-1] if slot.summaries else None
    try:
        job.control.send(PoseFinished(figures, error, last, tuple(slot.summaries)))
    except OSError:
        pass


def _handle_control(job: PoseJob, slot: ExperimentSlot) -> bool:
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
            slot.start(message)
        elif isinstance(message, StopExperiment):
            job.control.send(ExperimentStopped(slot.finish()))
    return True


def _model_key(job: PoseJob, camera: WorkerCamera) -> str:
    path = camera.model_path or job.settings.model_path
    return str(path) if path is not None else ""


def _load(job: PoseJob) -> dict[str, _LoadedModel]:
    """Every model the cameras use, each loaded once and warmed up on each frame shape."""
    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.runtime.backends import open_backend

    settings = job.settings
    # Auto: leave one core to the capture and recording processes, use at most 4.
    pinned = job.priority.cpus if job.priority is not None else None
    threads = inference_thread_count(settings.threads, pinned)
    models: dict[str, _LoadedModel] = {}
    for camera in job.cameras:
        key = _model_key(job, camera)
        if key not in models:
            description = load_model(
                Path(key) if key else None,
                frame_size=(camera.ring.geometry.height, camera.ring.geometry.width),
                precision=settings.precision,
                max_animals=settings.max_animals,
            )
            backend = open_backend(description, settings.backend, settings.device, threads)
            backend.warm_up()
            models[key] = _LoadedModel(key, description, backend, max_batch=settings.max_batch)
            log.info("model %s ready on %s", description.name, backend.provider)
        model = models[key]
        if _camera_crop(job, camera).enabled and model.description.multi_animal:
            raise ModelError(
                f"camera {camera.name!r}: dynamic cropping follows one animal; "
                f"{model.description.name} is a multi-animal model: set DYNAMIC_CROP = off in "
                "[Pose] (and in the camera's section)"
            )
        if _camera_crop(job, camera).enabled and model.input_multiple is None:
            model.input_multiple = _crop_multiple(camera, model.description)
            model.crop_graphs = _crop_graphs(model, settings, threads)
        shape = camera.ring.geometry.shape
        if shape not in model.estimators:
            estimator = model.estimator(shape)
            estimator.estimate([np.zeros(shape, np.uint8)])  # warm the whole path
    return models


def _crop_graphs(model: _LoadedModel, settings: PoseSettings, threads: int) -> _CropGraphs | None:
    """Return the split graphs of a network with channel gates; None without gates or on pytorch.

    The pytorch backend runs the rebuilt network, not a graph: its crops see their own
    channel statistics (keypoints move more; docs/pose-models.md).
    """
    from deeplabstream.pose.runtime.backends import open_backend

    description = model.description
    if settings.backend == "pytorch" or Path(description.model_file).suffix != ".onnx":
        return None
    try:
        graphs = split_context_graphs(Path(description.model_file))
    except OSError as error:  # the converted graph's folder is writable; this is unexpected
        log.warning("crops of %s see their own channel statistics: %s", description.name, error)
        return None
    if graphs is None:
        return None
    full = dataclasses.replace(
        description,
        model_file=graphs.full,
        output_names=(*description.output_names, *graphs.gates),
    )
    crop = dataclasses.replace(description, model_file=graphs.crop)
    dtype = np.float16 if description.precision == "fp16" else np.float32
    recorder = ContextRecorder(
        open_backend(full, settings.backend, settings.device, threads),
        graphs,
        len(description.output_names),
    )
    feeder = ContextFeeder(
        open_backend(crop, settings.backend, settings.device, threads), graphs, dtype
    )
    recorder.warm_up()
    feeder.warm_up()
    log.info("model %s: crops get the whole frame's channel gates", description.name)
    return _CropGraphs(
        _LoadedModel(f"{model.key}#full", full, recorder, max_batch=1),
        _LoadedModel(f"{model.key}#crop", crop, feeder, max_batch=1),
    )


def _camera_crop(job: PoseJob, camera: WorkerCamera) -> CropSettings:
    """Return a camera's dynamic-crop settings: its own, or ``[Pose]``'s."""
    if camera.dynamic_crop is not None:
        return camera.dynamic_crop
    return crop_settings(job.settings)


def _crop_multiple(camera: WorkerCamera, description: ModelDescription) -> int:
    """Return the model's input multiple for cropping; a model of fixed input size is an error."""
    try:
        return input_multiple(description)
    except ModelError as error:
        raise ModelError(
            f"camera {camera.name}: DYNAMIC_CROP = on, but its model {description.name} "
            f"({description.framework}) runs at its fixed input size "
            f"{description.input_width}x{description.input_height} only, so there is nothing "
            f"to crop for: set DYNAMIC_CROP = off for it ([Camera {camera.name}] or [Pose]), "
            f"or use a model that runs at any size (a DeepLabCut 3.0 export). ({error})"
        ) from None


def _ready_message(states: list[_CameraState]) -> PoseReady:
    first = states[0].model.description
    cameras = {
        state.camera.name: CameraModel(
            state.model.description.keypoints,
            state.model.description.skeleton,
            state.model.summary,
            state.model.description.animals,
        )
        for state in states
    }
    return PoseReady(
        states[0].model.summary,
        first.keypoints,
        first.skeleton,
        cameras,
        max(len(model.keypoints) for model in cameras.values()),
        max(model.animals for model in cameras.values()),
        {state.camera.name: state.reader.first_seq for state in states},
        _frame_size_warnings(states),
    )


def _frame_size_warnings(states: list[_CameraState]) -> tuple[str, ...]:
    """Say which cameras' frames are not the size their model was exported or trained at."""
    warnings = (
        frame_size_warning(
            state.model.description,
            state.camera.name,
            state.camera.ring.geometry.height,
            state.camera.ring.geometry.width,
        )
        for state in states
    )
    return tuple(warning for warning in warnings if warning)


def _tracker(job: PoseJob, description: ModelDescription) -> IdentityTracker | None:
    """Return the identity tracker of a multi-animal model's camera; None for a single animal."""
    if not description.multi_animal:
        return None
    return IdentityTracker(
        description.max_animals,
        len(description.keypoints),
        max_distance_px=job.settings.track_max_distance,
        max_gap_s=job.settings.track_max_gap,
        min_likelihood=job.settings.likelihood_threshold,
    )


def _identities(job: PoseJob, state: _CameraState, stem: str) -> CameraIdentities | None:
    """Start a multi-animal camera's identity keeper and its learner (None for one animal)."""
    if state.tracker is None:
        return None
    return CameraIdentities(
        state.tracker,
        job.session_dir / f"{stem}{IDENTITY_SUFFIX}",
        individual_names(state.tracker.max_animals),
        job.settings.likelihood_threshold,
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
                    individual_names(description.max_animals) if description.multi_animal else None,
                ),
                timing=PoseTimingWriter(job.session_dir / f"{stem}{POSE_TIMING_SUFFIX}"),
                times=PoseTimesWriter(job.session_dir / f"{stem}{POSE_TIMES_SUFFIX}"),
                depth=depth_reader(camera.depth),
                cropper=_cropper(job, camera, model),
                tracker=_tracker(job, description),
                deadline=DeadlineAccount(camera.deadline_ns),
            )
        )
        states[-1].identities = _identities(job, states[-1], stem)
    return states


def _cropper(job: PoseJob, camera: WorkerCamera, model: _LoadedModel) -> DynamicCrop | None:
    """Return the camera's dynamic crop, None when it analyses whole frames."""
    settings = _camera_crop(job, camera)
    if not settings.enabled:
        return None
    assert model.input_multiple is not None  # set by _load
    return DynamicCrop(
        (camera.ring.geometry.height, camera.ring.geometry.width),
        settings,
        len(model.description.keypoints),
        model.input_multiple,
        camera.flip,
    )


def _analyse(
    job: PoseJob,
    states: list[_CameraState],
    slot: ExperimentSlot,
    triangulator: LiveTriangulator | None = None,
) -> None:
    poses_out = ChannelWriter(job.poses)
    active = list(states)
    record_rows = max(len(s.model.description.keypoints) for s in states)
    record_animals = max(s.model.description.animals for s in states)
    common_clock = len(states) > 1
    seq = 0
    while active:
        # wait() takes any object with fileno(); typeshed names only connections and sockets.
        waitables: list[Any] = [*(s.reader for s in active), job.control]
        worker_free_ns = host_now_ns()  # a frame that arrived before now waited for the worker
        wait(waitables, timeout=1.0)
        # On a stop, one last turn: frames announced before it are analysed (the newest of each
        # camera) or counted as skipped, never left uncounted.
        stopping = not _handle_control(job, slot)
        picked_ns = host_now_ns()
        ready = [s for s in active if s.reader.poll()]
        for state in active:  # before this turn's pose: the frames passed over came first
            _write_not_analysed(state)
        active = [s for s in active if s.reader.ended is None]
        groups: dict[tuple[str, tuple[int, ...], int], list[_CameraState]] = defaultdict(list)
        for state in ready:  # one batch per model and input size (the frame's, or its crop's)
            state.crop = state.analysed_region()
            shape = state.crop.size + state.camera.ring.geometry.shape[2:]
            alone = state.camera.camera_id if _crop_graphs_of(state) is not None else -1
            groups[(state.model.key, shape, alone)].append(state)
        for (_, shape, _), group in groups.items():
            estimator = _group_estimator(group[0], shape)
            batch = _Batch(
                picked_ns,
                poses_out,
                seq,
                record_rows,
                record_animals,
                common_clock,
                triangulator,
                worker_free_ns,
            )
            seq = _estimate_group(estimator, group, batch, slot.run)
        if stopping:
            return
        if ready:
            slot.send_status()


def _write_not_analysed(state: _CameraState) -> None:
    """Write the empty pose rows (and the times) of the frames the last poll passed over.

    One row per captured frame keeps row i of the pose table frame first + i, the layout
    DeepLabCut, Lightning Pose and movement expect; a row is a string, no array per frame.
    """
    for record in state.reader.passed_over:
        state.csv.write_missing(record.frame_index)
        state.times.write(
            record.frame_index, record.host_timestamp_ns, record.camera_timestamp, False
        )


def _write_trailing(state: _CameraState) -> None:
    """Write the empty rows of frames published after the last announcement read.

    Their announcements were refused (a full pipe); the end of stream says how many frames
    there were, and such frames go on one index each, so their rows are there (times unknown).
    """
    ended, last = state.reader.ended, state.reader.last_seen
    if ended is not None and last is not None and ended.frames > last.seq + 1:
        last_index = last.frame_index + ended.frames - (last.seq + 1)
        state.csv.end_at(last_index)
        state.times.end_at(last_index)
        if state.identities is not None:
            state.identities.end_at(last_index)


@dataclass(frozen=True)
class _Batch:
    """What every group of one loop turn shares."""

    picked_ns: int
    poses_out: ChannelWriter
    seq: int
    record_rows: int  # rows of a pose record (the most keypoints of any model)
    record_animals: int  # animals of a pose record (the most of any model)
    common_clock: bool  # several cameras: experiments see host time, the clock they share
    triangulator: LiveTriangulator | None = None  # live 3D of the calibrated cameras
    worker_free_ns: int = 0  # when the worker finished its previous turn (core/deadline.py)


def _crop_graphs_of(state: _CameraState) -> _CropGraphs | None:
    """Return the split graphs a cropping camera runs; None for the model's own graph."""
    return state.model.crop_graphs if state.cropper is not None else None


def _group_estimator(state: _CameraState, shape: tuple[int, ...]) -> Any:
    """Return the estimator of a group's input shape (a cropping camera's group is that camera)."""
    graphs = _crop_graphs_of(state)
    if graphs is None:
        return state.model.estimator(shape)
    if _region(state).full:
        return graphs.full.estimator(shape)
    graphs.crop.backend.context = state.context  # the gates of its last whole frame
    return graphs.crop.estimator(shape)


def _padded(animals: np.ndarray, batch: _Batch) -> np.ndarray:
    """Return a camera's animals (A, K, 3) in the record's size, NaN where it has none."""
    if animals.shape[:2] == (batch.record_animals, batch.record_rows):
        return animals
    out = np.full((batch.record_animals, batch.record_rows, 3), np.nan, np.float32)
    out[: animals.shape[0], : animals.shape[1]] = animals
    return out


def _confidence(state: _CameraState, batch: _Batch) -> np.ndarray | None:
    """Return the identities' confidence (record_animals,) for the pose record (NaN: none)."""
    if batch.record_animals == 1:
        return None
    out = np.full(batch.record_animals, np.nan, np.float32)
    if state.identities is not None:
        confidence = state.identities.confidence
        out[: confidence.size] = confidence
    return out


def _identified(state: _CameraState, animals: np.ndarray, common_clock: bool) -> np.ndarray:
    """Return a frame's animals (A, K, 3) in identity order (tracked), or as found."""
    if state.tracker is None:
        return animals
    record = state.reader.record
    assert record is not None
    if state.identities is not None:  # motion and looks (the frame is read for the looks)
        time_s = _frame_time_s(record, common_clock)
        return state.identities.update(time_s, animals, state.reader.frame)
    return state.tracker.update(_frame_time_s(record, common_clock), animals)


def _estimate_group(
    estimator: Any, group: list[_CameraState], batch: _Batch, run: ExperimentRun | None
) -> int:
    picked_ns, seq = batch.picked_ns, batch.seq
    found = estimator.estimate_animals(
        [_region(s).view(s.reader.frame) for s in group], [s.camera.flip for s in group]
    )
    for state, found_animals in zip(group, found, strict=True):
        _region(state).to_frame(found_animals)  # crop pixels to frame pixels (in place)
    # Identities first: every output (files, pipe, experiment) sees animal i as identity i.
    animals = [_identified(s, a, batch.common_clock) for s, a in zip(group, found, strict=True)]
    poses = [a[0] for a in animals]  # the first animal: what single-animal code reads
    for state, pose in zip(group, poses, strict=True):
        region = _region(state)
        graphs = _crop_graphs_of(state)
        if graphs is not None and region.full:  # alone in its batch: the gates are its own
            state.context = graphs.full.backend.context
        if state.cropper is not None:  # the next frame's crop, from this pose
            if not region.full:
                state.frames_cropped += 1
                state.crop_sizes.add((region.width, region.height))
            state.cropper.update(pose)
    ready_ns = host_now_ns()
    experiment_ms = None
    decided_ns = written_ns = 0
    points3d = _triangulate(batch, group, poses)  # before the decision, which may read it
    if run is not None:  # the decision first: files and pipes can wait a few microseconds
        observations = [
            _observation(s, a, estimator, batch.common_clock)
            for s, a in zip(group, animals, strict=True)
        ]
        run.on_poses(observations, ready_ns, points3d)
        decided_ns, written_ns = run.last_decided_ns, run.last_written_ns
        if decided_ns:  # 0: the experiment had stopped (an error) and decided nothing
            experiment_ms = (decided_ns - ready_ns) / 1e6
    timings = dict(estimator.last_timings)
    model_ns = round(sum(timings.values()) * 1e9)  # pre-processing, network, decoding
    after_pose_us = ((written_ns or decided_ns) - ready_ns) // 1000 if decided_ns else 0
    for state, found_animals in zip(group, animals, strict=True):
        record = state.reader.record
        assert record is not None
        late = state.deadline.add(
            record.host_timestamp_ns,
            batch.worker_free_ns,
            picked_ns,
            model_ns,
            ready_ns,
            decided_ns,
            written_ns,
        )
        state.csv.write(record.frame_index, found_animals)  # (1, K, 3) for one animal
        if state.identities is not None:
            state.identities.write(record.frame_index)
        state.times.write(
            record.frame_index, record.host_timestamp_ns, record.camera_timestamp, True
        )
        state.timing.write(
            record.frame_index,
            record.host_timestamp_ns,
            picked_ns,
            timings,
            ready_ns,
            len(group),
            experiment_ms,
            _region(state).box,
            batch.worker_free_ns,
            decided_ns,
            written_ns,
            stage_name(late),
        )
        padded = _padded(found_animals, batch)
        batch.poses_out.send(
            encode_pose(
                PoseRecord(
                    state.camera.camera_id,
                    record.frame_index,
                    record.host_timestamp_ns,
                    picked_ns,
                    ready_ns,
                    seq,
                    padded[0],
                    padded if batch.record_animals > 1 else None,
                    late,
                    after_pose_us,
                    _confidence(state, batch),
                )
            )
        )
        state.latency.add(ready_ns - record.host_timestamp_ns)
        state.first_ready_ns = state.first_ready_ns or ready_ns
        state.last_ready_ns = ready_ns
        seq += 1
    _push_lsl(group, animals)
    return seq


def _triangulator(job: PoseJob, models: dict[str, _LoadedModel]) -> LiveTriangulator | None:
    """Return the live triangulation of ``job`` (None without a calibration).

    The calibrated cameras must share one model (the same keypoints): checked here, before the
    first frame, as the calibration's cameras are.
    """
    spec = job.triangulation
    if spec is None:
        return None
    by_name = {camera.name: camera for camera in job.cameras}
    missing = [name for name in spec.cameras if name not in by_name]
    if missing:
        raise ValueError(f"CAMERAS names {', '.join(missing)}, which pose estimation does not run")
    keypoints = {
        models[_model_key(job, by_name[name])].description.keypoints for name in spec.cameras
    }
    if len(keypoints) != 1:
        raise ValueError(
            f"the calibrated cameras {', '.join(spec.cameras)} use models with different "
            "keypoints; triangulation needs one model for all of them (MODEL_PATH)"
        )
    return LiveTriangulator(spec, keypoints.pop(), job.session_dir, job.file_label)


def _triangulate(
    batch: _Batch, group: list[_CameraState], poses: list[np.ndarray]
) -> Points3D | None:
    """Hand the group's poses (the first animal's) to the triangulator; return its new set."""
    triangulator = batch.triangulator
    if triangulator is None:
        return None
    for state, pose in zip(group, poses, strict=True):
        record = state.reader.record
        assert record is not None
        time_s = _frame_time_s(record, batch.common_clock)
        triangulator.add(state.camera.name, time_s, record.frame_index, pose)
    return triangulator.triangulate()


def _finish_triangulation(
    triangulator: LiveTriangulator | None, figures: dict[str, dict[str, Any]]
) -> None:
    """Close ``points3d.csv``; add the triangulation's figures to each calibrated camera's."""
    if triangulator is None:
        return
    triangulator.close()
    summary = triangulator.figures()
    for camera in triangulator.cameras:
        if camera in figures:
            figures[camera]["triangulation"] = summary


def _open_lsl(job: PoseJob, models: dict[str, _LoadedModel]) -> LslOutlets:
    """Open the LSL outlets with ``[Output] LSL = on`` (none otherwise); failures are kept."""
    if not job.lsl:
        return LslOutlets.off()
    models_of = {camera.name: models[_model_key(job, camera)] for camera in job.cameras}
    outlets = LslOutlets.open(
        {name: _lsl_channels(model.description) for name, model in models_of.items()}
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


def _push_lsl(group: list[_CameraState], animals: list[np.ndarray]) -> None:
    """Send each pose to its camera's LSL stream, stamped with its frame's arrival time.

    A single-animal camera sends its (K, 3) keypoints; a multi-animal one every identity's, in
    identity order (A * K, 3).
    """
    for state, found_animals in zip(group, animals, strict=True):
        record = state.reader.record
        if state.lsl is not None and record is not None:
            state.lsl.push(found_animals.reshape(-1, 3), record.host_timestamp_ns / 1e9)


def _region(state: _CameraState) -> Crop:
    """Return the region analysed in this turn (set when the turn grouped the cameras)."""
    assert state.crop is not None
    return state.crop


def _frame_time_s(record: Any, common_clock: bool) -> float:
    """Return a frame's time for experiments and the tracker.

    With one camera, the camera's own clock where it has one (its hardware timestamps are the
    most exact). With several, the host arrival time, the one clock they share, so pairing by
    time and the pairing error mean something.
    """
    if common_clock or math.isnan(record.camera_timestamp):
        return float(record.host_timestamp_ns / 1e9)
    return float(record.camera_timestamp)


def _observation(
    state: _CameraState, animals: np.ndarray, estimator: Any, common_clock: bool
) -> Observation:
    """Return the experiment's view of one frame's animals (A, K, 3), the first one first."""
    record = state.reader.record
    assert record is not None
    depth = state.camera.depth
    return Observation(
        time_s=_frame_time_s(record, common_clock),
        camera=state.camera.name,
        frame_index=record.frame_index,
        keypoints=animals[0],
        animals=animals if state.tracker is not None else None,
        names=estimator.description.keypoints,
        frame=state.reader.frame,  # for image features (motion energy); they copy what they keep
        host_time_s=record.host_timestamp_ns / 1e9,
        # the depth of this very frame (its seq), for cameras with aligned depth
        depth=FrameDepth(state.depth, record.seq, depth.units_m) if depth is not None else None,
        pixels_per_mm=state.camera.pixels_per_mm,
        identity_confidence=(state.identities.confidence if state.identities is not None else None),
    )


def _finish(job: PoseJob, states: list[_CameraState]) -> dict[str, dict[str, Any]]:
    figures = {}
    for state in states:
        state.reader.close()
        if state.depth is not None:
            state.depth.close()
        _write_trailing(state)
        state.csv.close()
        state.timing.close()
        state.times.close()
        # The learner stopped and the confidence file closed before the table reads it.
        looks = state.identities.close() if state.identities is not None else None
        header = state.ring.header
        analysed = state.csv.analysed
        span_s = (state.last_ready_ns - state.first_ready_ns) / 1e9
        file_errors = [
            error for error in (state.csv.error, state.timing.error, state.times.error) if error
        ]
        figures[state.camera.name] = {
            "frames_analysed": analysed,
            "frames_skipped": int(header["skipped"][Channel.ANALYSE]),
            "frames_lost": int(header["lost"][Channel.ANALYSE]),
            "analysed_fps": round((analysed - 1) / span_s, 3) if analysed > 1 and span_s else None,
            "latency_ms": state.latency.figures(),
            # Dynamic cropping: frames analysed whole (tracking lost, or cropping off) and
            # cropped; the crop of every frame is in <camera>.pose_timing.csv.
            "frames_full_frame": analysed - state.frames_cropped,
            "frames_cropped": state.frames_cropped,
            "dynamic_crop": _crop_figures(state),
            "pose_file": state.csv.path.name,
            "pose_rows": state.csv.rows,  # one per frame index, analysed or not
            "pose_times_file": state.times.path.name,
            "pose_table": _parquet(
                state.csv.path,
                job.session_dir / f"{state.camera.name}{job.file_label}",
                file_errors,
                state.times.path,
                state.identities.file.path if state.identities is not None else None,
            ),
            # Files that stopped early (a full disk): the session reports them as errors.
            "file_errors": file_errors,
            "identities": _identity_figures(state, looks),
            # The loop's deadline: misses per stage (core/deadline.py); the session judges.
            "deadline": state.deadline.figures(),
            "frames_not_analysed_worker_gone": 0,  # it ended normally (live/session/analysis.py)
        }
        if job.ibl_naming and figures[state.camera.name]["pose_table"]:
            figures[state.camera.name]["ibl_files"] = _ibl_files(job, state)
        state.ring.close()
    return figures


def _identity_figures(state: _CameraState, looks: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return what the tracker counted and the keeper did (multi-animal); None for one animal."""
    if state.tracker is None:
        return None
    figures = {
        "max_animals": state.model.description.max_animals,
        **dataclasses.asdict(state.tracker.counts),
    }
    if looks is not None:
        figures["appearance"] = looks  # pose.tracking.identities, live.processes.identities
    return figures


def _crop_figures(state: _CameraState) -> dict[str, Any] | None:
    """Return the camera's dynamic-crop settings and the crop sizes it used; None when it is off."""
    cropper = state.cropper
    if cropper is None:
        return None
    settings = cropper.settings
    return {
        "margin_px": settings.margin,
        "likelihood": settings.likelihood,
        "min_keypoints": cropper.min_keypoints,
        "size_step_px": cropper.step,
        "input_multiple": cropper.multiple,
        "refresh_frames": settings.refresh,
        # crops of a network with channel gates get the whole frame's (pose.runtime.cropping)
        "whole_frame_gates": state.model.crop_graphs is not None,
        "sizes": [list(size) for size in sorted(state.crop_sizes)],  # [width, height]
    }


def _ibl_files(job: PoseJob, state: _CameraState) -> list[str] | None:
    stem = job.session_dir / f"{ibl_stem(state.camera.name)}{job.file_label}"
    parquet = job.session_dir / f"{state.camera.name}{job.file_label}{POSE_PARQUET_SUFFIX}"
    timing = job.session_dir / f"{state.camera.name}{job.file_label}{POSE_TIMING_SUFFIX}"
    try:
        return list(write_ibl_pose_files(parquet, timing, stem))
    except (OSError, ValueError, KeyError) as error:
        log.error("could not write the IBL-named files of %s: %s", state.camera.name, error)
        return None


def _parquet(
    csv_path: Path,
    stem: Path,
    errors: list[str],
    times_path: Path,
    identity_path: Path | None = None,
) -> str | None:
    target = stem.with_name(stem.name + POSE_PARQUET_SUFFIX)
    try:
        write_pose_parquet(csv_path, target, times_path, identity_path)
    except (OSError, ValueError) as error:
        message = f"could not write {target.name}: {error}"
        log.error("%s", message)
        errors.append(message)
        target.unlink(missing_ok=True)  # never leave a cut (unreadable) table behind
        return None
    return target.name
