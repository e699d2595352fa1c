"""Checks before a run starts: every model it would load and the experiment it would run.

A missing or unreadable model, an unknown or broken experiment, or a device the experiment uses
but the settings do not declare is found here, before any camera process or session folder
exists; each problem names the file, section and key and says what to do.

The checks are cheap: a model's description file is read (a DeepLabCut export or Lightning
checkpoint only has its file checked, see :func:`pose.loading.check_model`), and the experiment
is loaded as :func:`experiments.registry.load_experiment` does at the start (pure Python).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.errors import CalibrationError, ModelError
from deeplabstream.core.optional import missing_extra
from deeplabstream.core.pinhole import read_calibration
from deeplabstream.experiments.config import ExperimentConfigError
from deeplabstream.experiments.registry import (
    ExperimentNotFoundError,
    config_file_of,
    load_experiment,
)
from deeplabstream.experiments.triggers.base import animal_problems, camera_problems
from deeplabstream.experiments.triggers.space import reads_points3d
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.live.session.keypoints import keypoint_mismatches, mismatch_problem
from deeplabstream.pose.loading import (
    check_backend,
    check_model,
    check_precision,
    model_animals,
)
from deeplabstream.pose.runtime.cropping import crop_settings
from deeplabstream.settings.sections import Settings

#: A model that cannot be read, whatever the cause: ours (ModelError), the disk (OSError), a
#: reader library's own refusal (ValueError). The checks that only need the model skip it:
#: :func:`_model_problems` names it.
_UNREADABLE_MODEL = (ModelError, OSError, ValueError)


def check_before_start(
    settings: Settings,
    pose: bool,
    experiment: bool,
    *,
    model_option: Path | None = None,
    experiment_option: str | None = None,
) -> list[str]:
    """Return the problems that would stop the run; empty when none is found.

    Parameters
    ----------
    settings
        The run's settings, with the command line's overrides applied.
    pose, experiment
        Which parts the command line runs (an experiment needs the models too).
    model_option, experiment_option
        ``--model`` and ``--experiment`` when given, so the messages name them.
    """
    problems: list[str] = []
    if pose or experiment:
        problems += _model_problems(settings, model_option)
        problems += _crop_problems(settings) if not problems else []
        problems += _backend_problems(settings, model_option) if not problems else []
        problems += _precision_problems(settings) if not problems else []
        # A calibration is checked for use once its cameras and sizes fit the settings.
        problems += _triangulation_problems(settings) or _calibration_problems(settings)
    if experiment:
        problems += _experiment_problems(settings, experiment_option)
    return problems


def _model_problems(settings: Settings, model_option: Path | None) -> list[str]:
    where_global = (
        "--model" if model_option is not None else f"[Pose] MODEL_PATH in {settings.source_file}"
    )
    uses: dict[str, list[str]] = {}  # model path ("" = the shared one) -> where it is named
    for camera in settings.cameras:
        if camera.common.model_path is not None:
            where = f"[Camera {camera.name}] MODEL_PATH in {settings.source_file}"
            uses.setdefault(str(camera.common.model_path), []).append(where)
        else:
            uses.setdefault("", [where_global])
    problems = []
    for path, places in uses.items():
        model = Path(path) if path else settings.pose.model_path
        try:
            check_model(model)
        except ModelError as error:
            named = " and ".join(places)
            problems.append(f"{named}: {error}")
        except ModuleNotFoundError as error:  # a model of a kind whose extra is not installed
            clear = missing_extra(error) or f"{type(error).__name__}: {error}"
            problems.append(f"{' and '.join(places)}: {model}: {clear}")
        except Exception as error:  # an unexpected failure of a check is a problem too
            problems.append(f"{' and '.join(places)}: {model}: {type(error).__name__}: {error}")
    return problems


def _backend_problems(settings: Settings, model_option: Path | None) -> list[str]:
    """Return the models ``[Pose] BACKEND`` cannot run (pytorch and an ONNX graph only).

    Found here, the refusal comes before any camera opens, not from the worker after the
    start; the message names the model, the backend and what to set instead.
    """
    backend = f"[Pose] BACKEND = {settings.pose.backend} in {settings.source_file}"
    paths = {camera.common.model_path or settings.pose.model_path for camera in settings.cameras}
    problems = []
    for path in sorted(paths, key=str):
        try:
            check_backend(path, settings.pose.backend)
        except ModelError as error:
            if path is None:
                which = " for the bundled model ([Pose] MODEL_PATH is empty)"
            elif model_option is not None and path == settings.pose.model_path:
                which = " for --model"
            else:
                which = ""
            problems.append(f"{backend}{which}: {error}")
    return problems


def _precision_problems(settings: Settings) -> list[str]:
    """Return the models ``[Pose] PRECISION`` cannot apply to (pose.runtime.precision).

    An int8 model must have been quantized beforehand, and fp16 and int8 run only where the
    backend supports them: refused here, before any camera opens.
    """
    precision = settings.pose.precision
    if precision == "fp32":
        return []
    where = f"[Pose] PRECISION = {precision} in {settings.source_file}"
    paths = {camera.common.model_path or settings.pose.model_path for camera in settings.cameras}
    problems = []
    for path in sorted(paths, key=str):
        try:
            check_precision(path, precision, settings.pose.backend)
        except ModelError as error:
            problems.append(f"{where}: {error}")
    return problems


def _crop_problems(settings: Settings) -> list[str]:
    """Return the cameras that crop dynamically around one animal with a multi-animal model."""
    problems = []
    for camera in settings.cameras:
        if not crop_settings(settings.pose, camera.common).enabled:
            continue
        path = camera.common.model_path or settings.pose.model_path
        try:
            animals = model_animals(path, settings.pose.max_animals)
        except _UNREADABLE_MODEL:
            continue  # _model_problems names it
        if animals > 1:
            problems.append(
                f"[Camera {camera.name}] in {settings.source_file}: dynamic cropping follows one "
                f"animal, and {path} is a multi-animal model; set DYNAMIC_CROP = off in [Pose] "
                "and in the camera's section"
            )
    return problems


def _animal_problems(settings: Settings, triggers: Any) -> list[str]:
    """Return the triggers that read an animal the cameras' models do not report.

    A model that cannot be read is left to :func:`_model_problems`, which names it.
    """
    paths = {camera.common.model_path or settings.pose.model_path for camera in settings.cameras}
    try:
        counts = [model_animals(path, settings.pose.max_animals) for path in paths]
    except _UNREADABLE_MODEL:
        return []  # _model_problems names it
    return animal_problems(triggers, max(counts, default=1))


def _triangulation_problems(settings: Settings) -> list[str]:
    """Return what stops the live triangulation: the calibration, its cameras, their sizes.

    A calibration is only valid for the frame size it was made at: a camera whose frames
    (after ROTATE) differ from the calibration's ``size`` is refused.
    """
    declared = [camera.name for camera in settings.cameras]
    try:
        spec = settings.triangulation.spec(declared, str(settings.source_file))
    except CalibrationError as error:
        return [str(error)]
    if spec is None:
        return []
    calibrated = read_calibration(spec.calibration)
    problems = []
    for name in spec.cameras:
        size = _frame_size(settings, name)
        expected = calibrated[name].size
        if size is not None and size != expected:
            problems.append(
                f"[Camera {name}] in {settings.source_file}: frames of {size[0]} x {size[1]} px, "
                f"but {spec.calibration} calibrated this camera at {expected[0]} x {expected[1]} "
                "px: set WIDTH and HEIGHT to the calibration's size, or recalibrate"
            )
    return problems


def _calibration_problems(settings: Settings) -> list[str]:
    """Return why ``[Triangulation] CALIBRATION`` cannot triangulate (a zero focal length...).

    The calibration is loaded as the inference worker loads it
    (:meth:`spatial.triangulation.live.TriangulationSpec.load_cameras`), so a calibration that
    parses but cannot triangulate is refused here, not written as ``points3d.csv`` full of zeros.
    """
    declared = [camera.name for camera in settings.cameras]
    try:
        spec = settings.triangulation.spec(declared, str(settings.source_file))
        if spec is not None:
            spec.load_cameras()
    except CalibrationError as error:
        return [f"[Triangulation] CALIBRATION in {settings.source_file}: {error}"]
    return []


def _frame_size(settings: Settings, camera_name: str) -> tuple[int, int] | None:
    """Return a camera's frame size (width, height) after ROTATE; None when it is not set."""
    camera = settings.camera(camera_name)
    width = getattr(camera.options, "width", None)
    height = getattr(camera.options, "height", None)
    if not isinstance(width, int) or not isinstance(height, int):
        return None  # the camera's own size, known only once it is open
    return (height, width) if camera.common.rotate in (90, 270) else (width, height)


def _points3d_problems(settings: Settings, triggers: Any) -> list[str]:
    """Return the 3D triggers of an experiment that would run without a calibration."""
    if settings.triangulation.calibration is not None:
        return []
    return [
        f"trigger {name!r} reads 3D keypoints, but {settings.source_file} names no calibration: "
        "add [Triangulation] CALIBRATION = calibration.toml (docs/3d.md), or use a 2D trigger"
        for name, trigger in triggers.items()
        if reads_points3d(trigger)
    ]


def experiment_keypoint_problems(settings: Settings, where: str) -> list[str]:
    """Return the keypoints ``[Experiment] NAME`` reads that the models lack (offline replay).

    ``where`` names the setting or option that chose the experiment. An experiment that cannot
    be loaded gives no problem here: loading it at the start says why.
    """
    name = settings.experiment.name
    try:
        loaded = load_experiment(name, settings.source_file.parent)
    except Exception:  # not this check's to report (see the docstring)
        return []
    return [f"{where} ({name!r}): {p}" for p in _keypoint_problems(settings, loaded, name)]


def _keypoint_problems(settings: Settings, experiment: Any, name: str) -> list[str]:
    """Return each keypoint the experiment reads that the model of a camera it reads lacks.

    Found here, a wrong keypoint stops the start with the model's keypoints listed, instead of
    stopping the experiment at its first pose (``live/session/keypoints.py``).
    """
    config_file = config_file_of(name, settings.source_file.parent)
    return [mismatch_problem(m, config_file) for m in keypoint_mismatches(settings, experiment)]


def _experiment_problems(settings: Settings, experiment_option: str | None) -> list[str]:
    name = settings.experiment.name
    where = (
        "--experiment"
        if experiment_option is not None
        else f"[Experiment] NAME in {settings.source_file}"
    )
    try:
        loaded = load_experiment(name, settings.source_file.parent)
    except (ExperimentNotFoundError, ExperimentConfigError) as error:
        return [f"{where} ({name!r}): {error}"]
    except Exception as error:  # a .py that fails to import, a class that fails to build
        return [
            f"{where} ({name!r}): the experiment could not be loaded: "
            f"{type(error).__name__}: {error}. Fix the file, or name another experiment."
        ]
    cameras = [camera.name for camera in settings.cameras]
    found = camera_problems(loaded.triggers, cameras) + _animal_problems(settings, loaded.triggers)
    found += _points3d_problems(settings, loaded.triggers)
    found += _keypoint_problems(settings, loaded, name)
    problems = [f"{where} ({name!r}): {problem}" for problem in found]
    needed = sorted({device for device, _ in loaded.outputs})
    missing = [device for device in needed if device not in settings.devices]
    if not missing:
        return problems
    declared = ", ".join(sorted(settings.devices)) or "none"
    sections = ", ".join(f"[Device {device}]" for device in missing)
    return [
        *problems,
        f"{where} ({name!r}): the experiment uses the device(s) {', '.join(missing)}, which "
        f"{settings.source_file} does not declare (declared: {declared}). Add {sections} with "
        f"TYPE = {' | '.join(sorted(DEVICES))} (docs/settings.md).",
    ]
