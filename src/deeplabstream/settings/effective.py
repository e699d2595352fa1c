"""Each camera's effective settings: its own ``[Camera NAME]`` keys where set, else ``[Pose]``'s.

A ``[Camera NAME]`` section may name its own pose model (``MODEL_PATH``), likelihood threshold
and dynamic cropping; where it does not, ``[Pose]``'s apply, and a command line's ``--model``
stands in for ``[Pose] MODEL_PATH`` (never for a camera's own). That rule is written here once:
:func:`resolve_cameras` turns a loaded :class:`~deeplabstream.settings.sections.Settings` into a
:class:`CameraPlan`, one :class:`EffectiveCamera` per camera, and every reader takes its values
from it: the checks before the start (``live/session/preflight.py``, ``keypoints.py``), the
session (``LiveSession.camera_plan``: the live view's thresholds, what the inference worker is
given), the worker (``WorkerCamera.effective``: its model, flip and crop), the window (the models
to convert before Start Analysis, the keypoints of each camera's model) and the offline replay,
whose video camera has no keys of its own.

Both are frozen and picklable: a camera's crosses to the inference worker as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deeplabstream.pose.runtime.cropping import CropSettings, crop_settings
from deeplabstream.settings.sections import CameraSettings, PoseSettings, Settings

#: How messages name the command line's model (``--model``), which replaces ``[Pose] MODEL_PATH``.
MODEL_OPTION = "--model"


@dataclass(frozen=True)
class EffectiveCamera:
    """One camera's settings as the session runs it, every fallback to ``[Pose]`` resolved.

    The defaults are those of a camera without keys of its own under a default ``[Pose]``.

    Attributes
    ----------
    name
        The camera's name (``[Camera NAME]``).
    model
        The pose model it runs: its own ``MODEL_PATH``, else ``--model``, else ``[Pose]
        MODEL_PATH``; None: the bundled model.
    model_named_by
        The key (or option) that named ``model``, with the settings file, for messages:
        ``[Camera left] MODEL_PATH in /lab/rig.ini``, ``[Pose] MODEL_PATH in ...`` or
        ``--model``.
    own_model
        The camera names its own model (``[Camera NAME] MODEL_PATH``).
    flip
        ``FLIP``: frames mirrored left-right before pose estimation.
    likelihood_threshold
        Its ``LIKELIHOOD_THRESHOLD``, else ``[Pose]``'s: keypoints below it are not seen (the
        live view, tracking lost).
    dynamic_crop
        Its dynamic cropping: ``[Pose] DYNAMIC_CROP*`` with its own overrides.
    pixels_per_mm
        ``PIXELS_PER_MM`` (``Observation.pixels_per_mm``); None: not calibrated.
    """

    name: str
    model: Path | None = None
    model_named_by: str = "[Pose] MODEL_PATH"
    own_model: bool = False
    flip: bool = False
    likelihood_threshold: float = PoseSettings.likelihood_threshold
    dynamic_crop: CropSettings = field(default_factory=CropSettings)
    pixels_per_mm: float | None = None

    @property
    def model_key(self) -> str:
        """The key of its model among the session's: its path, "" for the bundled model."""
        return str(self.model) if self.model is not None else ""


@dataclass(frozen=True)
class CameraPlan:
    """The effective settings of every camera of one settings file (and command line).

    Attributes
    ----------
    cameras
        One :class:`EffectiveCamera` per ``[Camera NAME]``, in the file's order.
    shared_model
        The model of every camera without its own: ``--model``, else ``[Pose] MODEL_PATH``
        (None: the bundled model). A replay's video camera runs it.
    shared_model_named_by
        ``--model`` or ``[Pose] MODEL_PATH in FILE``, for messages.
    likelihood_threshold
        ``[Pose] LIKELIHOOD_THRESHOLD``: a camera without its own, or one not in the plan.
    """

    cameras: tuple[EffectiveCamera, ...]
    shared_model: Path | None
    shared_model_named_by: str
    likelihood_threshold: float

    @property
    def model_option(self) -> bool:
        """Whether ``--model`` replaced ``[Pose] MODEL_PATH``."""
        return self.shared_model_named_by == MODEL_OPTION

    @property
    def models(self) -> tuple[Path | None, ...]:
        """Every model the cameras run, once each, in the order of the first camera to run it."""
        return tuple(dict.fromkeys(camera.model for camera in self.cameras))

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
        """Return each camera's model; ``{None: the shared model}`` for settings without cameras.

        A replay's settings (and a settings file without cameras) get their cameras from the
        videos: the shared model is what they run.
        """
        if not self.cameras:
            return {None: self.shared_model}
        return {camera.name: camera.model for camera in self.cameras}


def resolve_cameras(settings: Settings, *, model: Path | None = None) -> CameraPlan:
    """Return the effective settings of every camera of ``settings``: the one place they resolve.

    Parameters
    ----------
    settings
        The loaded settings (a replay's: its video cameras in place of the file's).
    model
        The command line's ``--model``, when given: it replaces ``[Pose] MODEL_PATH`` for every
        camera without a ``MODEL_PATH`` of its own, and messages name it ``--model``. A command
        that also writes it into ``settings`` (for ``session.json``) passes the same path.
    """
    where = settings.source_file
    shared: Path | None = model
    shared_named_by = MODEL_OPTION
    if model is None:
        shared, shared_named_by = settings.pose.model_path, f"[Pose] MODEL_PATH in {where}"
    cameras = tuple(
        _effective(camera, settings.pose, shared, shared_named_by, where)
        for camera in settings.cameras
    )
    return CameraPlan(cameras, shared, shared_named_by, settings.pose.likelihood_threshold)


def _effective(
    camera: CameraSettings,
    pose: PoseSettings,
    shared_model: Path | None,
    shared_named_by: str,
    where: Path,
) -> EffectiveCamera:
    common = camera.common
    own_model = common.model_path is not None
    threshold = common.likelihood_threshold
    return EffectiveCamera(
        name=camera.name,
        model=common.model_path if common.model_path is not None else shared_model,
        model_named_by=(
            f"[Camera {camera.name}] MODEL_PATH in {where}" if own_model else shared_named_by
        ),
        own_model=own_model,
        flip=common.flip,
        likelihood_threshold=threshold if threshold is not None else pose.likelihood_threshold,
        # [Pose] DYNAMIC_CROP* with this camera's own overrides (pose.runtime.cropping)
        dynamic_crop=crop_settings(pose, common),
        pixels_per_mm=common.pixels_per_mm,
    )
