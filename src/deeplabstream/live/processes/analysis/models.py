"""The inference worker's models: each loaded once, warmed up, and its estimators cached.

Design: docs/architecture.md, "Pose estimation".
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.assignment import load_assignment_solver
from deeplabstream.core.digest import file_sha256
from deeplabstream.core.errors import raised_as
from deeplabstream.core.priority import inference_pool_may_spin, inference_thread_count
from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
from deeplabstream.pose.decoding.two_stage import CropFrom
from deeplabstream.pose.ensemble.members import (
    KeypointMap,
    check_member,
    keypoint_map_text,
    member_name,
    member_rows,
)
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.lightning_context import context_summary
from deeplabstream.pose.formats.lightning_cropzoom import (
    cropzoom_of,
    cropzoom_summary,
)
from deeplabstream.pose.loading import (
    load_model,
    model_stage_names,
    open_ensemble_estimator,
    open_estimator,
)
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import (
    InferenceBackend,
    open_backend,
    providers_of,
    second_graph_device,
    set_cuda_graph,
    set_idle_threads_spin,
)
from deeplabstream.pose.runtime.cropping import (
    ContextFeeder,
    ContextRecorder,
    CropSettings,
    input_multiple,
    split_context_graphs,
)
from deeplabstream.pose.runtime.device_input import input_for_device
from deeplabstream.pose.runtime.ensemble import EnsembleEstimator
from deeplabstream.pose.runtime.precision import int8_cost
from deeplabstream.settings.sections import PoseSettings

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model and its estimators, one per frame shape of the cameras that use it."""

    key: str  # the model's path, "" for the bundled model
    description: ModelDescription
    backend: InferenceBackend
    estimators: dict[tuple[int, ...], PoseEstimator] = field(default_factory=dict)
    max_batch: int = 1
    input_multiple: int | None = None  # for dynamic cropping: crops start on its multiples
    crop_from: CropFrom = "same_frame"  # a two-stage model's crops: [Pose] CROP_FROM
    crop_graphs: CropGraphs | None = None  # for dynamic cropping of a network with gates
    #: Where the network's input is prepared (pose.runtime.device_input), and the model as
    #: loaded when its graph was wrapped to take the frame's bytes (None: it was not).
    input_prepared: str = "on the CPU"
    loaded: ModelDescription | None = None

    @property
    def summary(self) -> dict[str, Any]:
        """Return what ``session.json`` says about the model."""
        # The model as loaded (its file and digest prove which model ran), and where its input
        # was prepared (a wrapped graph is named there).
        summary = model_summary(self.loaded or self.description, self.backend.provider) | {
            "providers": providers_of(self.backend),  # pose.runtime.providers
            "input_prepared": self.input_prepared,
        }
        if self.loaded is not None:
            summary["input_graph"] = str(self.description.model_file)
        if two_stage(self.description):  # where its crops come from (pose.decoding.two_stage)
            summary["crop_from"] = self.crop_from
            summary["second_stage"] = {
                "backend": "onnxruntime",
                "device": second_graph_device(self.backend),
            }
        return summary

    def estimator(self, shape: tuple[int, ...]) -> PoseEstimator:
        """Return the estimator of frames (or crops) of ``shape``, built on first use."""
        estimator = self.estimators.get(shape)
        if estimator is None:
            description = self.description
            if description.any_input_size:  # DeepLabCut runs at the frame's (crop's) own size
                description = description.at_input_size(*shape[:2])
            estimator = open_estimator(  # its second graphs beside it
                description, self.backend, shape, max_batch=self.max_batch, crop_from=self.crop_from
            )
            self.estimators[shape] = estimator
        return estimator


@dataclass
class LoadedEnsemble:
    """Several models of the same keypoints, run on each frame as one (docs/ensembles.md).

    Its :attr:`description` is its first model's, whose keypoints are the ensemble's.
    """

    key: str
    members: list[LoadedModel]
    rows: list[np.ndarray]
    keypoint_map: KeypointMap = ()
    estimators: dict[tuple[int, ...], EnsembleEstimator] = field(default_factory=dict)
    input_multiple: int | None = None  # never set: an ensemble analyses whole frames
    crop_graphs: CropGraphs | None = None

    @property
    def description(self) -> ModelDescription:
        """The ensemble's description: its first model's."""
        return self.members[0].description

    @property
    def summary(self) -> dict[str, Any]:
        """What ``session.json`` says: the first model's record, every model's in ``ensemble``."""
        return self.members[0].summary | {
            "ensemble": [member.summary for member in self.members],
            "keypoint_map": keypoint_map_text(self.keypoint_map),
        }

    def estimator(self, shape: tuple[int, ...]) -> EnsembleEstimator:
        """Return the ensemble's estimator of frames of ``shape`` (its members', combined)."""
        estimator = self.estimators.get(shape)
        if estimator is None:
            members = [member.estimator(shape) for member in self.members]
            estimator = open_ensemble_estimator(self.description, members, self.rows)
            self.estimators[shape] = estimator
        return estimator


AnyModel = LoadedModel | LoadedEnsemble
"""What a camera runs: one model, or an ensemble of several."""


@dataclass
class CropGraphs:
    """A network with channel gates (CSPNeXt), split for cameras that crop (pose.runtime.cropping).

    ``full`` also outputs the gates for whole frames; ``crop`` is fed the gates of the camera's
    last whole frame. A cropping camera is analysed alone.
    """

    full: LoadedModel
    crop: LoadedModel
    recorder: ContextRecorder
    feeder: ContextFeeder


def model_summary(description: ModelDescription, provider: str) -> dict[str, Any]:
    """Return what ``session.json`` says about the model."""
    return {
        "name": description.name,
        "framework": description.framework,
        "file": str(description.model_file),
        "source_file": _named_file(description),  # what the user pointed MODEL_PATH at
        # a framework's folder MODEL_PATH named, and the model found in it (the one that ran)
        "model_path": _text(description.named_path),
        "model_found": _text(description.found_model),
        "keypoints": list(description.keypoints),
        "input": [description.input_width, description.input_height],
        # the output grid, in input pixels: how far apart two places the model can name are
        # (deeplabstream-verify's bound on a lossy recording)
        "stride": description.stride,
        "precision": description.precision,
        "int8_cost": int8_cost(description),  # deviation from fp32 (pose.runtime.precision)
        "decoder": description.decoder,
        "provider": provider,
        "max_animals": description.animals,
        "skeleton": [list(pair) for pair in description.skeleton],
        # what proves which model ran (deeplabstream-verify): the graph's bytes, and the file
        # the user named where the graph was converted from it
        "sha256": _digest(str(description.model_file)),
        "source_sha256": _digest(_named_file(description)),
        **cropzoom_summary(description),  # a crop-zoom pair: its stages, rule and live mode
    } | context_summary(description)  # a context model: its frames and live mode


def _digest(path: str | None) -> str | None:
    """Return the SHA-256 of a model file (None: no file), taken once per file and change."""
    if path is None or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _cached_digest(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _cached_digest(path: str, size: int, mtime_ns: int) -> str:
    """Return the digest of ``path`` as it is at this size and time (the cache key)."""
    return file_sha256(Path(path))


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _named_file(description: ModelDescription) -> str | None:
    """Return the file a converted model was made from (None: ``file`` is the user's own)."""
    pair = cropzoom_of(description)
    if pair is not None:
        return str(pair.file)
    return None if description.source_file is None else str(description.source_file)


def two_stage(description: ModelDescription) -> bool:
    """Return True for a model in two stages (a detector, then the pose model on crops)."""
    return bool(model_stage_names(description))


def model_key(camera: WorkerCamera) -> str:
    """Return the key of the model ``camera`` runs: its path, "" for the bundled model."""
    return camera.effective.model_key


def load_models(job: PoseJob) -> dict[str, AnyModel]:
    """Every model the cameras use, each loaded once and warmed up on each frame shape.

    Raises ModelError for any refusal of the files, the backend or the warm-up (their message).
    """
    # The worker tells the user why the model cannot run, whoever refused it (pose_main).
    with raised_as(ModelError, OSError, RuntimeError, ValueError):
        return _load_models(job)


def _load_models(job: PoseJob) -> dict[str, AnyModel]:
    settings = job.settings
    # Auto: leave one core to the capture and recording processes, use at most 4.
    pinned = job.priority.cpus if job.priority is not None else None
    threads = inference_thread_count(settings.threads, pinned)
    # Pool threads on cores of the worker's own spin between layers and frames
    # (core.priority.inference_pool_may_spin); elsewhere they sleep, leaving the cores to
    # capture and recording.
    set_idle_threads_spin(inference_pool_may_spin(pinned, threads))
    set_cuda_graph(settings.cuda_graph == "on")
    models: dict[str, AnyModel] = {}
    for camera in job.cameras:
        key = model_key(camera)
        if key not in models:
            if camera.effective.ensemble:
                models[key] = _load_ensemble(job, camera, models, threads)
            else:
                models[key] = _load_one(job, camera, camera.effective.model, threads)
        model = models[key]
        if model.description.multi_animal:
            load_assignment_solver()  # now, not at the first frame that assigns animals
        if camera_crop(camera).enabled and isinstance(model, LoadedEnsemble):
            raise ModelError(
                f"camera {camera.name!r}: dynamic cropping runs one model, and this camera runs "
                f"an ensemble of {len(model.members)} ({camera.effective.model_named_by}): set "
                "DYNAMIC_CROP = off in [Pose] (and in the camera's section), or name one model"
            )
        if camera_crop(camera).enabled and model.description.multi_animal:
            raise ModelError(
                f"camera {camera.name!r}: dynamic cropping follows one animal; "
                f"{model.description.name} is a multi-animal model: set DYNAMIC_CROP = off in "
                "[Pose] (and in the camera's section)"
            )
        crops = camera_crop(camera).enabled
        if crops and isinstance(model, LoadedModel) and model.input_multiple is None:
            model.input_multiple = _crop_multiple(camera, model.description)
            model.crop_graphs = _crop_graphs(model, settings, threads)
        shape = camera.ring.geometry.shape
        if shape not in model.estimators:
            estimator = model.estimator(shape)
            estimator.estimate([np.zeros(shape, np.uint8)])  # warm the whole path
    return models


def _load_one(job: PoseJob, camera: WorkerCamera, path: Path | None, threads: int) -> LoadedModel:
    """Load one model (``path``; None: the bundled one), open its backend and warm it up."""
    settings = job.settings
    description = load_model(
        path,
        frame_size=(camera.ring.geometry.height, camera.ring.geometry.width),
        precision=settings.precision,
        max_animals=settings.max_animals,
    )
    loaded = description
    description, prepared = input_for_device(
        description,
        settings.device,
        settings.backend,
        _frame_sizes(job, camera, path),
        "off" if camera_crop(camera).enabled else settings.input_on_device,
    )
    backend = open_backend(description, settings.backend, settings.device, threads)
    backend.warm_up()
    log.info("model %s ready on %s, input %s", description.name, backend.provider, prepared)
    return LoadedModel(
        str(path) if path is not None else "",
        description,
        backend,
        max_batch=settings.max_batch,
        crop_from=settings.crop_from,
        input_prepared=prepared,
        loaded=None if description is loaded else loaded,
    )


def _frame_sizes(job: PoseJob, camera: WorkerCamera, path: Path | None) -> list[tuple[int, int]]:
    """Return the frame sizes (height, width) of every camera that runs the model at ``path``."""
    key = "" if path is None else str(path)
    users = [c for c in job.cameras if model_key(c) == key or path in c.effective.ensemble]
    return [(c.ring.geometry.height, c.ring.geometry.width) for c in [camera, *users]]


def _load_ensemble(
    job: PoseJob, camera: WorkerCamera, models: dict[str, AnyModel], threads: int
) -> LoadedEnsemble:
    """Load an ensemble's models once each; ModelError for a multi-animal or mismatched one."""
    effective = camera.effective
    members: list[LoadedModel] = []
    for index, path in enumerate(effective.ensemble):
        which = f"camera {camera.name!r}: {member_name(index, path)} of {effective.model_named_by}"
        known = models.get(str(path))
        member = known if isinstance(known, LoadedModel) else None
        if member is None:
            member = models[str(path)] = _load_one(job, camera, path, threads)
        check_member(member.description, which)
        members.append(member)
    keypoints = members[0].description.keypoints
    rows = [
        member_rows(
            keypoints,
            member.description,
            effective.keypoint_map if index else (),
            f"camera {camera.name!r}: {member_name(index, effective.ensemble[index])}",
        )
        for index, member in enumerate(members)
    ]
    log.info(
        "camera %s: an ensemble of %d models (%s)",
        camera.name,
        len(members),
        ", ".join(m.description.name for m in members),
    )
    return LoadedEnsemble(model_key(camera), members, rows, effective.keypoint_map)


def _crop_graphs(model: LoadedModel, settings: PoseSettings, threads: int) -> CropGraphs | None:
    """Return the split graphs of a network with channel gates; None without gates or on pytorch."""
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
    return CropGraphs(
        LoadedModel(f"{model.key}#full", full, recorder, max_batch=1),
        LoadedModel(f"{model.key}#crop", crop, feeder, max_batch=1),
        recorder,
        feeder,
    )


def camera_crop(camera: WorkerCamera) -> CropSettings:
    """Return a camera's dynamic-crop settings (its own keys over ``[Pose]``'s, resolved)."""
    return camera.effective.dynamic_crop


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
