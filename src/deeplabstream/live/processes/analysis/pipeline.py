"""One camera's pipeline in the inference worker: a frame's journey, in the order it goes.

Design: docs/architecture.md, "Pose estimation".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeplabstream.core.deadline import INFERENCE, DeadlineAccount, inference_parts, model_parts
from deeplabstream.core.plugins import imported_lab_files, plugin_notices
from deeplabstream.core.timing import DurationHistogram, host_now_ns
from deeplabstream.experiments.observation import Observation, Points3D
from deeplabstream.live.processes.analysis.depth import FrameDepth, depth_reader
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.analysis.frame_wait import ArrivalClock
from deeplabstream.live.processes.analysis.identities import (
    CameraIdentities,
    ClassIdentities,
    rules_view,
)
from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
from deeplabstream.live.processes.analysis.models import (
    AnyModel,
    CropGraphs,
    LoadedEnsemble,
    LoadedModel,
    camera_crop,
    model_key,
)
from deeplabstream.live.processes.analysis.sinks import (
    AnalysedFrame,
    EnsembleValues,
    LiveOutputs,
    PoseFileSink,
    PosePipeSink,
    PoseSink,
)
from deeplabstream.live.processes.messages import CameraModel, PoseReady
from deeplabstream.outputs.pose.files import IDENTITY_SUFFIX, individual_names
from deeplabstream.pose.ensemble.causal import CausalEks
from deeplabstream.pose.ensemble.statistics import EnsembleFrame
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.model import ModelDescription, frame_size_warning
from deeplabstream.pose.model_format import format_entry
from deeplabstream.pose.runtime.cropping import Crop, DynamicCrop, full_crop
from deeplabstream.pose.tracking.tracker import IdentityTracker
from deeplabstream.spatial.triangulation.live import LiveTriangulator
from deeplabstream.transport.channel import ChannelReader, ChannelWriter
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import Channel, FrameRing

#: A batch: the model's key, the input shape (the frame's, or its crop's), and the camera that
#: is analysed alone (a cropping network with channel gates: its own gates), else -1.
BatchKey = tuple[str, tuple[int, ...], int]


@dataclass
class CameraEnsemble:
    """A camera's ensemble between frames: its models' last values, spread and causal filter."""

    causal: CausalEks | None = None  # [Pose] ENSEMBLE_SMOOTHING = causal
    values: EnsembleValues | None = None  # this frame's (the sinks and the experiment read it)

    def take(self, members: np.ndarray, frame: EnsembleFrame) -> None:
        """Keep this frame's models' keypoints (M, K, 3) and their ensemble; filter them."""
        self.values = EnsembleValues(members, frame.variance, frame.std)
        if self.causal is not None:
            step = self.causal.update(members, frame)
            self.values.smoothed = step.mean
            self.values.smoothed_variance = step.variance
            self.values.observation_variance = step.observation_variance

    def smoothed(self, keypoints: np.ndarray) -> np.ndarray | None:
        """Return the filter's x, y with the ensemble's likelihood (K, 3); None without it."""
        if self.values is None or self.values.smoothed is None:
            return None
        return np.column_stack([self.values.smoothed, keypoints[:, 2]])


@dataclass
class CameraPipeline:
    """One camera as the worker keeps it between frames; its methods in the frame's order."""

    camera: WorkerCamera
    model: AnyModel
    reader: NewestFrameReader
    ring: FrameRing
    files: PoseFileSink  # its pose files (also in ``sinks``): the closing figures read them
    sinks: list[PoseSink] = field(default_factory=list)  # every output of its poses, in order
    frame: AnalysedFrame = field(default_factory=AnalysedFrame)  # filled in place per frame
    depth: Any = None  # live.processes.capture.companion.CompanionReader of camera.depth
    cropper: DynamicCrop | None = None  # with dynamic cropping
    # The region of this turn's frame that is analysed (set by ``batch_key`` every turn).
    crop: Crop = field(init=False)
    context: dict[str, np.ndarray] | None = None  # channel gates of its last full frame
    frames_cropped: int = 0
    frames_no_animal: int = 0  # analysed frames in which the model found no keypoint at all
    crop_sizes: set[tuple[int, int]] = field(default_factory=set)  # (width, height) used
    # Frame arrival -> keypoints of every analysed frame, in fixed bins: a list of every value
    # grew the worker by tens of bytes a frame (MBs an hour at 100 frames/s).
    latency: DurationHistogram = field(default_factory=DurationHistogram)
    first_ready_ns: int = 0
    last_ready_ns: int = 0
    tracker: IdentityTracker | None = None  # a multi-animal model's identities across frames
    # Its identities by motion and looks, their background learner and confidence file; or
    # an identity model's classes and their confidence file (no tracker then).
    identities: CameraIdentities | ClassIdentities | None = None
    deadline: DeadlineAccount = field(default_factory=lambda: DeadlineAccount(None))
    arrivals: ArrivalClock = field(default_factory=ArrivalClock)  # when its next frame is due
    ensemble: CameraEnsemble | None = None  # a camera that runs several models
    # Whether its model reports several animals: known at load (not looked up every frame).
    multi_animal: bool = field(init=False)

    def __post_init__(self) -> None:
        """Start with the region its first frame is analysed in."""
        self.crop = self.analysed_region()
        self.multi_animal = self.model.description.multi_animal

    # --- read ---------------------------------------------------------------------------------

    def read(self) -> bool:
        """Take the newest frame announced, if any, and note when it arrived; True with a frame."""
        if not self.reader.poll():
            return False
        record = self.reader.record
        assert record is not None
        self.arrivals.arrived(record.seq, record.host_timestamp_ns)
        return True

    def write_not_analysed(self) -> None:
        """Hand the frames the last read passed over to every sink (they came first)."""
        for record in self.reader.passed_over:
            for sink in self.sinks:
                sink.write_not_analysed(record)

    # --- estimate (the batch: estimate()) ------------------------------------------------------

    def batch_key(self) -> BatchKey:
        """Set the region analysed this turn; return the batch it goes in (:data:`BatchKey`)."""
        self.crop = self.analysed_region()
        shape = self.crop.size + self.camera.ring.geometry.shape[2:]
        alone = self.camera.camera_id if self._crop_graphs() is not None else -1
        return (self.model.key, shape, alone)

    def analysed_region(self) -> Crop:
        """Return the crop of the frame read now: the cropper's, or the whole frame."""
        if self.cropper is not None:
            return self.cropper.current
        geometry = self.camera.ring.geometry
        return full_crop((geometry.height, geometry.width))

    def estimator(self, shape: tuple[int, ...]) -> PoseEstimator:
        """Return the estimator of its batch's input shape (a cropping camera's batch is itself)."""
        graphs = self._crop_graphs()
        if graphs is None:
            return self.model.estimator(shape)
        if self.crop.full:
            return graphs.full.estimator(shape)
        graphs.feeder.context = self.context  # the gates of its last whole frame
        return graphs.crop.estimator(shape)

    def _crop_graphs(self) -> CropGraphs | None:
        """Return the split graphs a cropping camera runs; None for the model's own graph."""
        return self.model.crop_graphs if self.cropper is not None else None

    # --- identify -----------------------------------------------------------------------------

    def identify(
        self, animals: np.ndarray, common_clock: bool, confidence: np.ndarray | None = None
    ) -> np.ndarray:
        """Return a frame's animals (A, K, 3) in identity order (tracker's or identity model's)."""
        if isinstance(self.identities, ClassIdentities):  # the model named them itself
            return self.identities.update(animals, confidence)
        if self.tracker is None:
            return animals
        record = self.reader.record
        assert record is not None
        if self.identities is not None:  # motion and looks (the frame is read for the looks)
            time_s = frame_time_s(record, common_clock)
            return self.identities.update(time_s, animals, self.reader.frame)
        return self.tracker.update(frame_time_s(record, common_clock), animals)

    def follow(self, pose: np.ndarray) -> None:
        """Keep a cropping camera's gates and set its next crop from this frame's pose."""
        crop = self.crop
        graphs = self._crop_graphs()
        if graphs is not None and crop.full:  # alone in its batch: the gates are its own
            self.context = graphs.recorder.context
        if self.cropper is not None:  # the next frame's crop, from this pose
            if not crop.full:
                self.frames_cropped += 1
                self.crop_sizes.add((crop.width, crop.height))
            self.cropper.update(pose)

    # --- observe ------------------------------------------------------------------------------

    def observe(
        self, animals: np.ndarray, names: tuple[str, ...], common_clock: bool
    ) -> Observation:
        """Return the experiment's view of one frame's animals (A, K, 3), the first one first."""
        record = self.reader.record
        assert record is not None
        depth = self.camera.depth
        withheld = unnamed = None
        if isinstance(self.identities, CameraIdentities):  # an animal it cannot name: unseen
            animals, withheld, unnamed = rules_view(self.identities.keeper, animals)
        ensemble = self.ensemble
        return Observation(
            time_s=frame_time_s(record, common_clock),
            camera=self.camera.name,
            frame_index=record.frame_index,
            keypoints=animals[0],
            animals=animals if self.multi_animal else None,
            names=names,
            frame=self.reader.frame,  # for image features (motion energy); they copy what they keep
            host_time_s=record.host_timestamp_ns / 1e9,
            # the depth of this very frame (its seq), for cameras with aligned depth
            depth=FrameDepth(self.depth, record.seq, depth.units_m) if depth is not None else None,
            pixels_per_mm=self.camera.effective.pixels_per_mm,
            identity_confidence=(
                self.identities.confidence if self.identities is not None else None
            ),
            # an ensemble's spread, its models' values and its causal filter's positions
            ensemble_std=ensemble.values.std if ensemble and ensemble.values else None,
            members=ensemble.values.members if ensemble and ensemble.values else None,
            smoothed=ensemble.smoothed(animals[0]) if ensemble is not None else None,
            withheld=withheld[0] if withheld is not None else None,
            animals_withheld=withheld,
            unnamed_rows=unnamed,
        )

    # --- after the last frame -----------------------------------------------------------------

    def last_index(self) -> int | None:
        """Return the last frame index when frames came after the last one read, else None."""
        ended, last = self.reader.ended, self.reader.last_seen
        if ended is not None and last is not None and ended.frames > last.seq + 1:
            return int(last.frame_index + ended.frames - (last.seq + 1))
        return None


@dataclass(frozen=True)
class Turn:
    """What the batches of one loop turn share, and the running count of poses sent before it."""

    picked_ns: int  # when the loop took this turn's frames
    seq: int
    common_clock: bool  # several cameras: experiments see host time, the clock they share
    triangulator: LiveTriangulator | None = None  # live 3D of the calibrated cameras
    worker_free_ns: int = 0  # when the worker finished its previous turn (core/deadline.py)


def analyse_batch(
    group: list[CameraPipeline],
    shape: tuple[int, ...],
    turn: Turn,
    run: ExperimentRun | None,
    batch: int = 0,
) -> int:
    """Take one batch from its frames to its sinks; return the running count of poses sent.

    ``group``: the cameras of one :data:`BatchKey`; ``batch``: the worker's batch count.
    """
    estimator = group[0].estimator(shape)
    found = estimate(estimator, group)
    animals = identify(estimator, group, found, turn.common_clock)
    ready_ns = host_now_ns()
    points3d = triangulate(turn.triangulator, group, animals, turn.common_clock)
    decided_ns = written_ns = 0
    if run is not None:
        names = estimator.description.keypoints
        observations = [
            p.observe(a, names, turn.common_clock) for p, a in zip(group, animals, strict=True)
        ]
        run.on_poses(observations, ready_ns, points3d, batch)  # it decides; commands go out
        decided_ns, written_ns = run.last_decided_ns, run.last_written_ns
    lead_s = run.lead_s if run is not None else None
    for pipeline in group:  # what pose_exact.csv keeps of the update (the decisions' inputs)
        pipeline.frame.batch, pipeline.frame.lead_s = batch, lead_s
    seq = hand_to_sinks(group, animals, estimator, turn, ready_ns, decided_ns, written_ns)
    estimator.refresh()  # CROP_FROM = previous_frame: the detector, after the keypoints
    return seq


def estimate(estimator: PoseEstimator, group: list[CameraPipeline]) -> list[np.ndarray]:
    """Estimate the group's frames in one batch; each camera's animals (A, K, 3) in frame pixels."""
    # Each frame's camera: an estimator that keeps per-camera state (a context model's past
    # frames, CROP_FROM = previous_frame's boxes) keys it by this; the others ignore it.
    found = estimator.estimate_animals(
        [p.crop.view(p.reader.frame) for p in group],
        [p.camera.effective.flip for p in group],
        [p.camera.camera_id for p in group],
    )
    # An ensemble's models' own values of each frame, and their spread (none for one model).
    members = estimator.last_members
    for index, (pipeline, found_animals) in enumerate(zip(group, found, strict=True)):
        pipeline.crop.to_frame(found_animals)  # crop pixels to frame pixels (in place)
        if not found_any_animal(found_animals):
            pipeline.frames_no_animal += 1
        if pipeline.ensemble is not None and members is not None:
            pipeline.ensemble.take(members[index], estimator.last_frames[index])
    return list(found)


def identify(
    estimator: PoseEstimator,
    group: list[CameraPipeline],
    found: list[np.ndarray],
    common_clock: bool,
) -> list[np.ndarray]:
    """Return each camera's animals (A, K, 3) in identity order; set its next crop from them."""
    # An identity model's (N, A) identity confidences (None for other models).
    confidence = estimator.last_identity_confidence
    animals = [
        p.identify(a, common_clock, None if confidence is None else confidence[i])
        for i, (p, a) in enumerate(zip(group, found, strict=True))
    ]
    for pipeline, found_animals in zip(group, animals, strict=True):
        pipeline.follow(found_animals[0])  # the first animal: what single-animal code reads
    return animals


def found_any_animal(animals: np.ndarray) -> bool:
    """Return True when the model placed any keypoint of any animal (A, K, 3) in the frame."""
    placed = np.isfinite(animals[..., 0]) & (np.nan_to_num(animals[..., 2]) > 0)
    return bool(placed.any())


def frame_time_s(record: Any, common_clock: bool) -> float:
    """Return a frame's time: one camera's own clock, or the host arrival time with several."""
    if common_clock or math.isnan(record.camera_timestamp):
        return float(record.host_timestamp_ns / 1e9)
    return float(record.camera_timestamp)


def triangulate(
    triangulator: LiveTriangulator | None,
    group: list[CameraPipeline],
    animals: list[np.ndarray],
    common_clock: bool,
) -> Points3D | None:
    """Hand the group's poses (the first animal's) to the live triangulation; return its new set."""
    if triangulator is None:
        return None
    for pipeline, found_animals in zip(group, animals, strict=True):
        record = pipeline.reader.record
        assert record is not None
        time_s = frame_time_s(record, common_clock)
        triangulator.add(pipeline.camera.name, time_s, record.frame_index, found_animals[0])
    return triangulator.triangulate()


def hand_to_sinks(
    group: list[CameraPipeline],
    animals: list[np.ndarray],
    estimator: PoseEstimator,
    turn: Turn,
    ready_ns: int,
    decided_ns: int,
    written_ns: int,
) -> int:
    """Fill each camera's frame in place, hand it to its sinks; return the running pose count.

    ``decided_ns``, ``written_ns``: 0 with no decision or no experiment.
    """
    experiment_ms = (decided_ns - ready_ns) / 1e6 if decided_ns else None
    timings = dict(estimator.last_timings)
    model_ns = round(sum(timings.values()) * 1e9)  # pre-processing, network, decoding
    timings.update(estimator.last_stage_timings)  # two-stage parts: files only
    after_pose_us = ((written_ns or decided_ns) - ready_ns) // 1000 if decided_ns else 0
    seq = turn.seq
    for pipeline, found_animals in zip(group, animals, strict=True):
        record = pipeline.reader.record
        assert record is not None
        frame = pipeline.frame  # filled in place: no allocation per frame
        frame.late = pipeline.deadline.add(
            record.host_timestamp_ns,
            turn.worker_free_ns,
            turn.picked_ns,
            model_ns,
            ready_ns,
            decided_ns,
            written_ns,
        )
        frame.late_part = ""
        if frame.late == INFERENCE and pipeline.deadline.parts:  # which of the model's parts
            parts = inference_parts(estimator.last_timings, estimator.last_stage_timings)
            frame.late_part = pipeline.deadline.blame_part(parts)
        frame.record = record
        frame.time_s = frame_time_s(record, turn.common_clock)
        frame.animals = found_animals
        frame.seq = seq
        frame.box = pipeline.crop.box
        frame.batch_size = len(group)
        frame.timings = timings
        frame.picked_ns = turn.picked_ns
        frame.ready_ns = ready_ns
        frame.worker_free_ns = turn.worker_free_ns
        frame.experiment_ms = experiment_ms
        frame.decided_ns = decided_ns
        frame.written_ns = written_ns
        frame.after_pose_us = after_pose_us
        frame.ensemble = pipeline.ensemble.values if pipeline.ensemble is not None else None
        for sink in pipeline.sinks:
            sink.write(frame)
        pipeline.latency.add(ready_ns - record.host_timestamp_ns)
        pipeline.first_ready_ns = pipeline.first_ready_ns or ready_ns
        pipeline.last_ready_ns = ready_ns
        seq += 1
    return seq


# --- before the first frame -------------------------------------------------------------------


def open_pipelines(
    job: PoseJob, models: dict[str, AnyModel], outputs: LiveOutputs
) -> list[CameraPipeline]:
    """Attach every camera's ring and build its pipeline and sinks (the outputs' and the pipe)."""
    poses_out = ChannelWriter(job.poses, kind=job.doorbell)
    record_rows = max(len(models[model_key(c)].description.keypoints) for c in job.cameras)
    record_animals = max(models[model_key(c)].description.animals for c in job.cameras)
    record_spread = any(c.effective.ensemble for c in job.cameras)  # a camera's ensemble
    pipelines = []
    for camera in job.cameras:
        model = models[model_key(camera)]
        description = model.description
        ring = FrameRing.attach(camera.ring)
        reader = NewestFrameReader(
            ring,
            ChannelReader(camera.channel, camera.camera_id, kind=job.doorbell),
            Channel.ANALYSE,
        )
        stem = job.stem(camera)
        tracker = _tracker(job, description)
        identities = _identities(job, tracker, stem, description.keypoints) or _class_identities(
            job, description, stem
        )
        # The chosen outputs' sinks, the pose files first; the POSE pipe right after them.
        files, *others = outputs.sinks(
            dataclasses.replace(outputs.camera(camera.name), identities=identities)
        )
        assert isinstance(files, PoseFileSink)  # outputs.interface.with_required: "pose" first
        pipe = PosePipeSink(
            poses_out, camera.camera_id, record_rows, record_animals, identities, record_spread
        )
        sinks: list[PoseSink] = [files, pipe, *others]
        pipelines.append(
            CameraPipeline(
                camera=camera,
                model=model,
                reader=reader,
                ring=ring,
                files=files,
                sinks=sinks,
                depth=depth_reader(camera.depth),
                cropper=_cropper(camera, model),
                tracker=tracker,
                identities=identities,
                deadline=DeadlineAccount(
                    camera.deadline_ns, parts=model_parts(outputs.camera(camera.name).timing_stages)
                ),
                ensemble=_ensemble(job, model),
            )
        )
    return pipelines


def _ensemble(job: PoseJob, model: AnyModel) -> CameraEnsemble | None:
    """Return a camera's ensemble state (its causal filter with ``causal``); None for one model."""
    if not isinstance(model, LoadedEnsemble):
        return None
    settings = job.settings
    if settings.ensemble_smoothing != "causal":
        return CameraEnsemble()
    keypoints = len(model.description.keypoints)
    return CameraEnsemble(CausalEks(keypoints, settings.eks_smooth_param, settings.eks_var_mode))


def _tracker(job: PoseJob, description: ModelDescription) -> IdentityTracker | None:
    """Return a multi-animal camera's identity tracker; None for one animal or an identity model."""
    if not description.multi_animal or description.identity_classes:
        return None
    return IdentityTracker(
        description.max_animals,
        len(description.keypoints),
        max_distance_px=job.settings.track_max_distance,
        max_gap_s=job.settings.track_max_gap,
        min_likelihood=job.settings.likelihood_threshold,
        regroup=job.settings.merged_instance_repair == "on",  # whole animals unless on
    )


def _identities(
    job: PoseJob, tracker: IdentityTracker | None, stem: str, keypoints: tuple[str, ...] = ()
) -> CameraIdentities | None:
    """Start a multi-animal camera's identity keeper and its learner (None for one animal)."""
    if tracker is None:
        return None
    return CameraIdentities(
        tracker,
        job.session_dir / f"{stem}{IDENTITY_SUFFIX}",
        individual_names(tracker.max_animals),
        job.settings.likelihood_threshold,
        learn=job.settings.appearance_identity == "on",  # the learner can be off
        keypoints=tuple(keypoints),
    )


def _class_identities(
    job: PoseJob, description: ModelDescription, stem: str
) -> ClassIdentities | None:
    """Return an identity model's camera's class identities (None for other models)."""
    if not description.identity_classes:
        return None
    return ClassIdentities(
        job.session_dir / f"{stem}{IDENTITY_SUFFIX}",
        individual_names(description.max_animals),
        description.identity_classes,
    )


def _cropper(camera: WorkerCamera, model: AnyModel) -> DynamicCrop | None:
    """Return the camera's dynamic crop, None when it analyses whole frames."""
    settings = camera_crop(camera)
    if not settings.enabled:
        return None
    assert model.input_multiple is not None  # set by live.processes.analysis.models.load_models
    return DynamicCrop(
        (camera.ring.geometry.height, camera.ring.geometry.width),
        settings,
        len(model.description.keypoints),
        model.input_multiple,
        camera.effective.flip,
    )


def ready_message(pipelines: list[CameraPipeline]) -> PoseReady:
    """Return the message that says the models are loaded and warmed up."""
    first = pipelines[0].model.description
    cameras = {
        p.camera.name: CameraModel(
            p.model.description.keypoints,
            p.model.description.skeleton,
            p.model.summary,
            p.model.description.animals,
            len(p.camera.effective.ensemble),
        )
        for p in pipelines
    }
    return PoseReady(
        pipelines[0].model.summary,
        first.keypoints,
        first.skeleton,
        cameras,
        max(len(model.keypoints) for model in cameras.values()),
        max(model.animals for model in cameras.values()),
        {p.camera.name: p.reader.first_seq for p in pipelines},
        # and what the plugins imported here gave the lab to read (core/plugins/)
        _frame_size_warnings(pipelines) + tuple(plugin_notices()),
        {
            name: origin
            for p in pipelines
            for model in _single_models(p.model)
            for name, origin in format_entry(model.description).items()
        },
        {str(record.path): record.sha256 for record in imported_lab_files()},
        record_spread=any(p.ensemble is not None for p in pipelines),
    )


def _single_models(model: AnyModel) -> list[LoadedModel]:
    """Return the models a camera runs: an ensemble's members, else the one model."""
    return model.members if isinstance(model, LoadedEnsemble) else [model]


def _frame_size_warnings(pipelines: list[CameraPipeline]) -> tuple[str, ...]:
    """Say which cameras' frames are not the size their model was exported or trained at."""
    warnings = (
        frame_size_warning(
            p.model.description,
            p.camera.name,
            p.camera.ring.geometry.height,
            p.camera.ring.geometry.width,
        )
        for p in pipelines
    )
    return tuple(warning for warning in warnings if warning)
