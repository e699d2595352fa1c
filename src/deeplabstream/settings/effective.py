"""A run's settings resolved once: a camera's own ``[Camera NAME]`` keys, else ``[Pose]``'s.

Design: docs/architecture.md, "settings.effective".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TypeVar

from deeplabstream.pose.ensemble.members import KeypointMap, keypoint_map_text
from deeplabstream.pose.runtime.cropping import CropSettings
from deeplabstream.settings.experiment_plan import ExperimentPlan, resolve_experiment
from deeplabstream.settings.sections import (
    CameraCommonSettings,
    CameraSettings,
    PoseSettings,
    Settings,
)

_T = TypeVar("_T")

#: How messages name the command line's model (``--model``), which replaces ``[Pose] MODEL_PATH``.
MODEL_OPTION = "--model"


class Origin(Enum):
    """Where an effective value came from."""

    CAMERA = "[Camera NAME]"  # the camera's own key
    POSE = "[Pose]"  # [Pose]'s key (its default where the file leaves it out)
    MODEL_OPTION = MODEL_OPTION  # the command line's --model, in place of [Pose] MODEL_PATH
    DEFAULT = "default"  # named nowhere: the bundled model


@dataclass(frozen=True)
class EffectiveCamera:
    """One camera's settings as the session runs it, every fallback to ``[Pose]`` resolved.

    ``model``: its own ``MODEL_PATH``, else ``--model``, else ``[Pose] MODEL_PATH``; None: the
    bundled model. ``model_named_by`` names the key and file for messages; each ``*_origin`` says
    where a value came from. ``pixels_per_mm`` None: not calibrated. ``ensemble``: every model when
    ``MODEL_PATH`` names several (``model`` is the first), () for one.
    """

    name: str
    model: Path | None = None
    model_named_by: str = "[Pose] MODEL_PATH"
    model_origin: Origin = Origin.DEFAULT
    flip: bool = False
    likelihood_threshold: float = PoseSettings.likelihood_threshold
    threshold_origin: Origin = Origin.POSE
    dynamic_crop: CropSettings = field(default_factory=CropSettings)
    pixels_per_mm: float | None = None
    ensemble: tuple[Path, ...] = ()
    keypoint_map: KeypointMap = ()

    @property
    def models(self) -> tuple[Path | None, ...]:
        """Every model it runs: the ensemble's, else its one model."""
        return self.ensemble or (self.model,)

    @property
    def own_model(self) -> bool:
        """Whether the camera names its own model (``[Camera NAME] MODEL_PATH``)."""
        return self.model_origin is Origin.CAMERA

    @property
    def model_key(self) -> str:
        """Its model's key among the session's: the path ("" bundled), an ensemble's paths, map."""
        if self.ensemble:
            return ";".join(map(str, self.ensemble)) + "|" + keypoint_map_text(self.keypoint_map)
        return str(self.model) if self.model is not None else ""


@dataclass(frozen=True)
class CameraPlan:
    """One run's effective settings: its settings file and command line, resolved once.

    ``settings`` has ``--model`` applied as ``[Pose] MODEL_PATH``; ``cameras`` are in the file's
    order; ``shared_model`` is the model of every camera without its own (a replay's runs it).
    """

    settings: Settings
    cameras: tuple[EffectiveCamera, ...]
    shared_model: Path | None
    shared_model_named_by: str
    shared_model_origin: Origin
    likelihood_threshold: float
    experiment_named_by: str = "[Experiment] NAME"
    _experiment: list[ExperimentPlan] = field(default_factory=list, compare=False, repr=False)

    def experiment_plan(self) -> ExperimentPlan:
        """Return the run's experiment (``[Experiment] NAME``), resolved once per plan.

        Raises what :func:`~settings.experiment_plan.resolve_experiment` raises.
        """
        if not self._experiment:
            settings = self.settings
            self._experiment.append(
                resolve_experiment(
                    settings.experiment.name,
                    settings.source_file.parent,
                    self.experiment_named_by,
                )
            )
        return self._experiment[0]

    @property
    def model_option(self) -> bool:
        """Whether ``--model`` replaced ``[Pose] MODEL_PATH``."""
        return self.shared_model_origin is Origin.MODEL_OPTION

    @property
    def models(self) -> tuple[Path | None, ...]:
        """Every model the cameras run (each of an ensemble's too), once each, in order."""
        return tuple(dict.fromkeys(model for camera in self.cameras for model in camera.models))

    def camera(self, name: str) -> EffectiveCamera:
        """Return the camera called ``name``; KeyError for a camera the settings lack."""
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)

    def threshold(self, name: str) -> float:
        """Return a camera's likelihood threshold; ``[Pose]``'s for a camera not in the plan."""
        try:
            return self.camera(name).likelihood_threshold
        except KeyError:
            return self.likelihood_threshold

    def models_by_camera(self) -> dict[str | None, Path | None]:
        """Return each camera's model; ``{None: the shared model}`` for settings without cameras."""
        if not self.cameras:
            return {None: self.shared_model}
        return {camera.name: camera.model for camera in self.cameras}


def resolve_cameras(
    settings: Settings, *, model: Path | None = None, experiment: str | None = None
) -> CameraPlan:
    """Return the run's plan: the one place its settings and command line meet and resolve.

    ``model`` (``--model``) replaces ``[Pose] MODEL_PATH`` for cameras without their own, in the
    plan's ``settings`` too; ``experiment`` (``--experiment``) replaces ``[Experiment] NAME``.
    """
    where = settings.source_file
    if model is not None:
        settings = dataclasses.replace(
            settings, pose=dataclasses.replace(settings.pose, model_path=(model,))
        )
    named_by = f"[Experiment] NAME in {where}"
    if experiment is not None:
        settings = dataclasses.replace(
            settings, experiment=dataclasses.replace(settings.experiment, name=experiment)
        )
        named_by = "--experiment"
    shared = _shared_model(settings.pose, model)
    cameras = tuple(_effective(camera, settings.pose, shared, where) for camera in settings.cameras)
    return CameraPlan(
        settings,
        cameras,
        shared.model,
        shared.named_by(where),
        shared.origin,
        settings.pose.likelihood_threshold,
        named_by,
    )


@dataclass(frozen=True)
class _SharedModel:
    """The model of every camera without its own (or an ensemble's), and where it came from."""

    models: tuple[Path, ...]
    origin: Origin

    @property
    def model(self) -> Path | None:
        """The model (an ensemble's first); None: the bundled model."""
        return self.models[0] if self.models else None

    def named_by(self, where: Path) -> str:
        """Return the key or option that named it, for messages (``[Pose]``'s even when empty)."""
        return (
            MODEL_OPTION if self.origin is Origin.MODEL_OPTION else f"[Pose] MODEL_PATH in {where}"
        )


def _shared_model(pose: PoseSettings, model: Path | None) -> _SharedModel:
    if model is not None:
        return _SharedModel((model,), Origin.MODEL_OPTION)
    if pose.model_path:
        return _SharedModel(pose.model_path, Origin.POSE)
    return _SharedModel((), Origin.DEFAULT)


def _effective(
    camera: CameraSettings, pose: PoseSettings, shared: _SharedModel, where: Path
) -> EffectiveCamera:
    common = camera.common
    own_model = bool(common.model_path)
    models = common.model_path if own_model else shared.models
    own_threshold = common.likelihood_threshold
    return EffectiveCamera(
        name=camera.name,
        model=models[0] if models else None,
        ensemble=models if len(models) > 1 else (),
        keypoint_map=common.keypoint_map if common.keypoint_map is not None else pose.keypoint_map,
        model_named_by=(
            f"[Camera {camera.name}] MODEL_PATH in {where}" if own_model else shared.named_by(where)
        ),
        model_origin=Origin.CAMERA if own_model else shared.origin,
        flip=common.flip,
        likelihood_threshold=(
            own_threshold if own_threshold is not None else pose.likelihood_threshold
        ),
        threshold_origin=Origin.CAMERA if own_threshold is not None else Origin.POSE,
        # [Pose] DYNAMIC_CROP* with this camera's own overrides
        dynamic_crop=crop_settings(pose, common),
        pixels_per_mm=common.pixels_per_mm,
    )


def crop_settings(pose: PoseSettings, camera: CameraCommonSettings | None = None) -> CropSettings:
    """Return a camera's crop settings: its ``[Camera NAME]`` keys where set, else ``[Pose]``'s."""

    def pick(own: _T | None, shared: _T) -> _T:
        return own if own is not None else shared

    own = camera if camera is not None else CameraCommonSettings()
    likelihood = pick(own.dynamic_crop_likelihood, pose.dynamic_crop_likelihood)
    if likelihood is None:  # the camera's (or [Pose]'s) LIKELIHOOD_THRESHOLD
        likelihood = pick(own.likelihood_threshold, pose.likelihood_threshold)
    return CropSettings(
        enabled=pick(own.dynamic_crop, pose.dynamic_crop) == "on",
        margin=int(pick(own.dynamic_crop_margin, pose.dynamic_crop_margin)),
        likelihood=float(likelihood),
        min_keypoints=pick(own.dynamic_crop_min_keypoints, pose.dynamic_crop_min_keypoints),
        size_step=int(pick(own.dynamic_crop_size_step, pose.dynamic_crop_size_step)),
        refresh=int(pick(own.dynamic_crop_refresh, pose.dynamic_crop_refresh)),
    )
