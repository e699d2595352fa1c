"""One camera's pose pipeline in the inference worker: read, crop, estimate, track.

A :class:`CameraPipeline` holds what the worker keeps per camera: its reader of the ring's
newest frame, its model, its dynamic crop, its identity tracker (and appearance identities;
or, for a model that names the animals itself, its classes: live.processes.class_identities),
its deadline account and its sinks (live.processes.pose_sinks). The worker's loop
(live.processes.inference) groups the cameras' frames into batches and calls
:func:`estimate_group` on each.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeplabstream.core.deadline import DeadlineAccount, model_parts
from deeplabstream.core.stats import DurationHistogram
from deeplabstream.experiments.observation import Observation
from deeplabstream.live.processes.class_identities import ClassIdentities
from deeplabstream.live.processes.depth import FrameDepth, depth_reader
from deeplabstream.live.processes.frame_wait import ArrivalClock
from deeplabstream.live.processes.identities import CameraIdentities
from deeplabstream.live.processes.messages import CameraModel, PoseReady
from deeplabstream.live.processes.pose_job import PoseJob, WorkerCamera
from deeplabstream.live.processes.pose_models import (
    CropGraphs,
    LoadedModel,
    camera_crop,
    model_key,
)
from deeplabstream.live.processes.pose_sinks import (
    AnalysedFrame,
    LiveOutputs,
    PoseFileSink,
    PosePipeSink,
    PoseSink,
)
from deeplabstream.outputs.pose_files import IDENTITY_SUFFIX, individual_names
from deeplabstream.pose.model import ModelDescription, frame_size_warning
from deeplabstream.pose.model_format import format_entry
from deeplabstream.pose.runtime.cropping import Crop, DynamicCrop, full_crop
from deeplabstream.pose.tracking.tracker import IdentityTracker
from deeplabstream.transport.channel import ChannelReader, ChannelWriter
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import Channel, FrameRing


@dataclass
class CameraPipeline:
    """One camera as the worker keeps it between frames."""

    camera: WorkerCamera
    model: LoadedModel
    reader: NewestFrameReader
    ring: FrameRing
    files: PoseFileSink  # its pose files (also in ``sinks``): the closing figures read them
    sinks: list[PoseSink] = field(default_factory=list)  # every output of its poses, in order
    frame: AnalysedFrame = field(default_factory=AnalysedFrame)  # filled in place per frame
    depth: Any = None  # live.processes.companion.CompanionReader of camera.depth
    cropper: DynamicCrop | None = None  # with dynamic cropping
    crop: Crop | None = None  # the region of this turn's frame that is analysed
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

    def analysed_region(self) -> Crop:
        """Return the crop of the frame read now: the cropper's, or the whole frame."""
        if self.cropper is not None:
            return self.cropper.current
        geometry = self.camera.ring.geometry
        return full_crop((geometry.height, geometry.width))

    def write_not_analysed(self) -> None:
        """Hand the frames the last poll passed over to every sink (they came first)."""
        for record in self.reader.passed_over:
            for sink in self.sinks:
                sink.write_not_analysed(record)

    def last_index(self) -> int | None:
        """Return the last frame index when frames were published after the last one read.

        Their announcements were refused (a full pipe); the end of stream says how many frames
        there were, and such frames go on one index each. None when there are none.
        """
        ended, last = self.reader.ended, self.reader.last_seen
        if ended is not None and last is not None and ended.frames > last.seq + 1:
            return int(last.frame_index + ended.frames - (last.seq + 1))
        return None


def subscribe(
    job: PoseJob, models: dict[str, LoadedModel], outputs: LiveOutputs
) -> list[CameraPipeline]:
    """Attach every camera's ring and build its pipeline and sinks (the outputs' and the pipe)."""
    poses_out = ChannelWriter(job.poses)
    record_rows = max(len(models[model_key(c)].description.keypoints) for c in job.cameras)
    record_animals = max(models[model_key(c)].description.animals for c in job.cameras)
    pipelines = []
    for camera in job.cameras:
        model = models[model_key(camera)]
        description = model.description
        ring = FrameRing.attach(camera.ring)
        reader = NewestFrameReader(
            ring, ChannelReader(camera.channel, camera.camera_id), Channel.ANALYSE
        )
        stem = job.stem(camera)
        tracker = _tracker(job, description)
        identities = _identities(job, tracker, stem) or _class_identities(job, description, stem)
        # The chosen outputs' sinks, the pose files first; the POSE pipe right after them.
        files, *others = outputs.sinks(
            dataclasses.replace(outputs.camera(camera.name), identities=identities)
        )
        assert isinstance(files, PoseFileSink)  # outputs.plugin.with_required: "pose" first
        pipe = PosePipeSink(poses_out, camera.camera_id, record_rows, record_animals, identities)
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
            )
        )
    return pipelines


def _tracker(job: PoseJob, description: ModelDescription) -> IdentityTracker | None:
    """Return the identity tracker of a multi-animal model's camera.

    None for a single animal, and for an identity model (its classes are the identities).
    """
    if not description.multi_animal or description.identity_classes:
        return None
    return IdentityTracker(
        description.max_animals,
        len(description.keypoints),
        max_distance_px=job.settings.track_max_distance,
        max_gap_s=job.settings.track_max_gap,
        min_likelihood=job.settings.likelihood_threshold,
    )


def _identities(
    job: PoseJob, tracker: IdentityTracker | None, stem: str
) -> CameraIdentities | None:
    """Start a multi-animal camera's identity keeper and its learner (None for one animal)."""
    if tracker is None:
        return None
    return CameraIdentities(
        tracker,
        job.session_dir / f"{stem}{IDENTITY_SUFFIX}",
        individual_names(tracker.max_animals),
        job.settings.likelihood_threshold,
        learn=job.settings.appearance_identity == "on",  # issue 30: the learner can be off
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


def _cropper(camera: WorkerCamera, model: LoadedModel) -> DynamicCrop | None:
    """Return the camera's dynamic crop, None when it analyses whole frames."""
    settings = camera_crop(camera)
    if not settings.enabled:
        return None
    assert model.input_multiple is not None  # set by pose_models.load_models
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
        _frame_size_warnings(pipelines),
        {
            name: origin
            for p in pipelines
            for name, origin in format_entry(p.model.description).items()
        },
    )


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


def group_key(pipeline: CameraPipeline) -> tuple[str, tuple[int, ...], int]:
    """Set the region analysed this turn; return its batch: model, input shape, alone or not.

    One batch per model and input size (the frame's, or its crop's); a camera cropping a
    network with channel gates is analysed alone (its own gates).
    """
    pipeline.crop = pipeline.analysed_region()
    shape = pipeline.crop.size + pipeline.camera.ring.geometry.shape[2:]
    alone = pipeline.camera.camera_id if _crop_graphs_of(pipeline) is not None else -1
    return (pipeline.model.key, shape, alone)


def _crop_graphs_of(pipeline: CameraPipeline) -> CropGraphs | None:
    """Return the split graphs a cropping camera runs; None for the model's own graph."""
    return pipeline.model.crop_graphs if pipeline.cropper is not None else None


def group_estimator(pipeline: CameraPipeline, shape: tuple[int, ...]) -> Any:
    """Return the estimator of a group's input shape (a cropping camera's group is that camera)."""
    graphs = _crop_graphs_of(pipeline)
    if graphs is None:
        return pipeline.model.estimator(shape)
    if region(pipeline).full:
        return graphs.full.estimator(shape)
    graphs.crop.backend.context = pipeline.context  # the gates of its last whole frame
    return graphs.crop.estimator(shape)


def estimate_group(
    estimator: Any, group: list[CameraPipeline], common_clock: bool
) -> list[np.ndarray]:
    """Estimate the group's frames; return each camera's animals (A, K, 3) in identity order.

    The keypoints are in frame pixels; every camera's next crop is set from its pose.
    """
    # Each frame's camera: an estimator that keeps per-camera state (a context model's past
    # frames, CROP_FROM = previous_frame's boxes) keys it by this; the others ignore it.
    found = estimator.estimate_animals(
        [region(p).view(p.reader.frame) for p in group],
        [p.camera.effective.flip for p in group],
        [p.camera.camera_id for p in group],
    )
    for pipeline, found_animals in zip(group, found, strict=True):
        region(pipeline).to_frame(found_animals)  # crop pixels to frame pixels (in place)
        if not found_any_animal(found_animals):
            pipeline.frames_no_animal += 1
    # An identity model's (N, A) identity confidences (None for other models).
    confidence = getattr(estimator, "last_identity_confidence", None)
    # Identities first: every output (files, pipe, experiment) sees animal i as identity i.
    animals = [
        _identified(p, a, common_clock, None if confidence is None else confidence[i])
        for i, (p, a) in enumerate(zip(group, found, strict=True))
    ]
    for pipeline, found_animals in zip(group, animals, strict=True):
        _follow(pipeline, found_animals[0])  # the first animal: what single-animal code reads
    return animals


def found_any_animal(animals: np.ndarray) -> bool:
    """Return True when the model placed any keypoint of any animal (A, K, 3) in the frame.

    A keypoint not found is NaN in x (a top-down model whose centroid stage found nothing gives
    every animal so), or has no likelihood at all.
    """
    placed = np.isfinite(animals[..., 0]) & (np.nan_to_num(animals[..., 2]) > 0)
    return bool(placed.any())


def _follow(pipeline: CameraPipeline, pose: np.ndarray) -> None:
    """Keep a cropping camera's gates and set its next crop from this frame's pose."""
    crop = region(pipeline)
    graphs = _crop_graphs_of(pipeline)
    if graphs is not None and crop.full:  # alone in its batch: the gates are its own
        pipeline.context = graphs.full.backend.context
    if pipeline.cropper is not None:  # the next frame's crop, from this pose
        if not crop.full:
            pipeline.frames_cropped += 1
            pipeline.crop_sizes.add((crop.width, crop.height))
        pipeline.cropper.update(pose)


def _identified(
    pipeline: CameraPipeline,
    animals: np.ndarray,
    common_clock: bool,
    confidence: np.ndarray | None = None,
) -> np.ndarray:
    """Return a frame's animals (A, K, 3) in identity order, or as found.

    Identity order is the tracker's, or an identity model's classes (with its ``confidence``).
    """
    if isinstance(pipeline.identities, ClassIdentities):  # the model named them itself
        return pipeline.identities.update(animals, confidence)
    if pipeline.tracker is None:
        return animals
    record = pipeline.reader.record
    assert record is not None
    if pipeline.identities is not None:  # motion and looks (the frame is read for the looks)
        time_s = frame_time_s(record, common_clock)
        return pipeline.identities.update(time_s, animals, pipeline.reader.frame)
    return pipeline.tracker.update(frame_time_s(record, common_clock), animals)


def region(pipeline: CameraPipeline) -> Crop:
    """Return the region analysed in this turn (set when the turn grouped the cameras)."""
    assert pipeline.crop is not None
    return pipeline.crop


def frame_time_s(record: Any, common_clock: bool) -> float:
    """Return a frame's time for experiments and the tracker.

    With one camera, the camera's own clock where it has one (its hardware timestamps are the
    most exact). With several, the host arrival time, the one clock they share, so pairing by
    time and the pairing error mean something.
    """
    if common_clock or math.isnan(record.camera_timestamp):
        return float(record.host_timestamp_ns / 1e9)
    return float(record.camera_timestamp)


def observation(
    pipeline: CameraPipeline, animals: np.ndarray, estimator: Any, common_clock: bool
) -> Observation:
    """Return the experiment's view of one frame's animals (A, K, 3), the first one first."""
    record = pipeline.reader.record
    assert record is not None
    depth = pipeline.camera.depth
    return Observation(
        time_s=frame_time_s(record, common_clock),
        camera=pipeline.camera.name,
        frame_index=record.frame_index,
        keypoints=animals[0],
        animals=animals if pipeline.model.description.multi_animal else None,
        names=estimator.description.keypoints,
        frame=pipeline.reader.frame,  # for image features (motion energy); they copy what they keep
        host_time_s=record.host_timestamp_ns / 1e9,
        # the depth of this very frame (its seq), for cameras with aligned depth
        depth=FrameDepth(pipeline.depth, record.seq, depth.units_m) if depth is not None else None,
        pixels_per_mm=pipeline.camera.effective.pixels_per_mm,
        identity_confidence=(
            pipeline.identities.confidence if pipeline.identities is not None else None
        ),
    )
