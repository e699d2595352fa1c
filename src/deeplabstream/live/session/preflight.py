"""Checks before a run starts: every model it would load and the experiment it would run.

Each problem names the file, section and key and says what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

from deeplabstream.core.digest import file_sha256
from deeplabstream.core.errors import CalibrationError, DeviceError, ModelError
from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.optional import missing_extra
from deeplabstream.core.pinhole import read_calibration
from deeplabstream.core.regular_files import shown_path, utf8_name_problem
from deeplabstream.core.schema import spec_of
from deeplabstream.experiments.base import ExperimentSetup
from deeplabstream.experiments.config.parse import ExperimentConfigError
from deeplabstream.experiments.registry import (
    ExperimentNotFoundError,
)
from deeplabstream.experiments.triggers.base import (
    animal_problems,
    camera_problems,
    ensemble_problems,
)
from deeplabstream.experiments.triggers.space import reads_points3d
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.hardware.stimulation.serial_device import describe_serial_ports
from deeplabstream.live.processes.analysis.experiment_slot import device_raised, devices_to_open
from deeplabstream.live.session.keypoints import keypoint_mismatches, mismatch_problem
from deeplabstream.outputs.folder import too_little_space
from deeplabstream.outputs.signature import key_problem
from deeplabstream.pose.ensemble.members import (
    KeypointMap,
    keypoint_map_problems,
    mapping_problem,
    member_name,
)
from deeplabstream.pose.loading import (
    check_backend,
    check_model,
    check_precision,
    model_animals,
    model_keypoints,
    model_to_load,
)
from deeplabstream.pose.model_format import LAB_FORMATS_KEY, MODEL_FORMATS
from deeplabstream.pose.runtime.backends import device_check
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.experiment_plan import ExperimentInitError, ExperimentPlan
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.ring import SHM_FOLDER, RingSpec, ring_slots

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
    """Return the problems that would stop a run of ``settings``; empty when none is found.

    The settings are resolved into the run's plan and checked as :func:`check_plan` does;
    ``model_option`` is ``--model`` when given.
    """
    plan = resolve_cameras(settings, model=model_option)
    return check_plan(plan, pose, experiment, experiment_option=experiment_option)


def check_plan(
    plan: CameraPlan, pose: bool, experiment: bool, *, experiment_option: str | None = None
) -> list[str]:
    """Return the problems that would stop the run ``plan`` resolves; empty when none is found.

    ``pose``, ``experiment``: which parts the command line runs; ``experiment_option``:
    ``--experiment`` when given, so the messages name it.
    """
    settings = plan.settings
    problems: list[str] = _shared_memory_problems(settings)
    # Every session is signed at its close: a key that is a folder, a FIFO or not a key is
    # refused now, not found then (outputs/signature.py reads it without blocking).
    signing = key_problem()
    problems += [signing] if signing is not None else []
    if pose or experiment:
        problems += _lab_format_problems(settings)
        problems += _model_problems(plan)
        problems += _crop_problems(settings, plan) if not problems else []
        problems += _backend_problems(settings, plan) if not problems else []
        problems += _device_problems(settings) if not problems else []
        problems += _precision_problems(settings, plan) if not problems else []
        # A calibration is checked for use once its cameras and sizes fit the settings.
        problems += _triangulation_problems(settings) or _calibration_problems(settings)
    if experiment:
        problems += _experiment_problems(settings, plan, experiment_option)
        problems += _serial_port_problems(settings)
    return problems


def _lab_format_problems(settings: Settings) -> list[str]:
    """Return each lab format ``[Pose] MODEL_FORMATS`` names that cannot be loaded."""
    # At the load it would only be logged; a lab that named it expects it to run. Importing it
    # here also reports a format file every user may write to, as for every lab plugin.
    names = settings.pose.model_formats
    if not names:
        return []
    _, failures = MODEL_FORMATS.load_all(lab_names=names)
    return [
        f"{LAB_FORMATS_KEY} in {settings.source_file}: {failure}"
        for failure in failures
        if failure.name in names
    ]


def _serial_port_problems(settings: Settings) -> list[str]:
    """Return the serial boards whose port does not exist (a pyserial URL is not checked)."""
    problems = []
    for name, device in sorted(settings.devices.items()):
        port = str(getattr(device.options, "port", "") or "").strip()
        if device.type != "serial" or not port or "://" in port:
            continue
        if not serial_port_exists(port):
            problems.append(
                f"[Device {name}] PORT = {port} in {settings.source_file}: the serial port does "
                f"not exist (board unplugged, or another name); {describe_serial_ports()}"
            )
    return problems


def recording_space_problems(settings: Settings, output_dir: Path | None) -> list[str]:
    """Return why a recording could not start: less free than ``[Recording] MIN_FREE_SPACE``."""
    folder = output_dir if output_dir is not None else settings.output.directory
    problem = too_little_space(Path(folder), settings.recording.min_free_space)
    return [problem] if problem is not None else []


def output_folder_problems(settings: Settings, output_dir: Path | None) -> list[str]:
    """Return why the session folders cannot be made where they would go, before the start."""
    where = (
        "--output-dir"
        if output_dir is not None
        else f"[Output] DIRECTORY in {shown_path(settings.source_file)}"
    )
    folder = output_dir if output_dir is not None else settings.output.directory
    problem = utf8_name_problem(Path(folder))
    return [f"{where}: {problem}"] if problem is not None else []


def serial_port_exists(port: str) -> bool:
    """Return True when ``port`` names a serial port present now (a path, or a COM name)."""
    if sys.platform == "win32" or port.upper().startswith("COM"):
        import serial.tools.list_ports

        present = {info.device.upper() for info in serial.tools.list_ports.comports()}
        return port.upper() in present
    return Path(port).exists()


def absent_device_problems(plan: CameraPlan) -> list[str]:
    """Return the devices the experiment would open that are absent, or lack its channels.

    Call it once the session's devices are locked: a board is opened to be heard. An
    experiment that cannot be loaded gives nothing here (:func:`check_before_start` says why).
    """
    try:
        planned = plan.experiment_plan()
        experiment = planned.experiment()
        wanted = devices_to_open(experiment, plan.settings.devices)
    except Exception:  # reported by check_before_start, with what to do
        return []
    where = planned.file if planned.kind == "config" else None
    problems = []
    for name, device_settings in wanted.items():
        heading = f"[Device {name}] (TYPE = {device_settings.type})"
        try:
            device = device_settings.create()
            device.check_present()
        except (DeviceError, OSError, ValueError, ImportError) as error:  # ImportError: a driver
            problems.append(f"{heading}: {error}")
            continue
        except Exception as error:  # a lab's device may raise anything: named, not a traceback
            problems.append(device_raised(name, device_settings, "check_present", error))
            continue
        declared = ExperimentSetup.of(experiment).declared_outputs
        used = sorted({channel for owner, channel in declared if owner == name})
        problems += channel_problems(heading, _channel_count(device), used, experiment.name, where)
    return problems


def _channel_count(device: Any) -> int | None:
    """Return a device's channel count once checked; None where it cannot say (0: unknown)."""
    try:
        count = int(device.channel_count)
    except Exception:  # a lab's device that knows its channels only when open
        return None
    return count or None


def channel_problems(
    heading: str, count: int | None, used: list[int], experiment: str, where: Path | None
) -> list[str]:
    """Return the problem of an experiment driving channels a device does not have (or none).

    ``count`` None: unknown, not judged; ``where``: the experiment's config file, if any.
    """
    if count is None:
        return []
    beyond = [channel for channel in used if not 0 <= channel < count]
    if not beyond:
        return []
    file = f" in {where}" if where is not None else ""
    channels = ", ".join(str(channel) for channel in beyond)
    return [
        f"{heading} has {count} channel(s), 0 to {count - 1}; experiment {experiment!r} drives "
        f"channel {channels}{file}: set each CHANNEL{file} to a channel the device has"
    ]


#: Bytes a frame of a pixel format takes per pixel (a camera that does not say: colour).
_PIXEL_BYTES = {"mono8": 1, "bgr8": 3}


#: Rings needing more than this share of the shared memory free now, or more than
#: RING_WARN_GIB in all, are worth a word before the start (more than all of it is refused):
#: the machine's other work, and the recorders and the model, need memory too.
RING_WARN_SHARE = 0.5
RING_WARN_GIB = 4.0


def _ring_needs(settings: Settings) -> list[tuple[str, int, str]]:
    """Return each camera's ring (name, bytes, shape) as the settings size it."""
    needs: list[tuple[str, int, str]] = []
    for camera in settings.cameras:
        options = camera.options
        width, height = getattr(options, "width", None), getattr(options, "height", None)
        if not isinstance(width, int) or not isinstance(height, int):
            continue
        channels = _PIXEL_BYTES.get(str(getattr(options, "pixel_format", "bgr8")), 3)
        fps = getattr(options, "framerate", None)
        slots = ring_slots(float(fps) if fps else None, settings.streaming.buffer_seconds)
        spec = RingSpec("size-only", FrameGeometry(height, width, channels), slots)
        shape = f"{slots} frames of {width} x {height} x {channels}"
        needs.append((camera.name, spec.total_bytes, shape))
    return needs


def _shared_memory_problems(settings: Settings) -> list[str]:
    """Return the cameras whose rings would need more than the free shared memory or memory."""
    needs = _ring_needs(settings)
    total = sum(nbytes for _, nbytes, _ in needs)
    available = available_shared_memory()
    if not needs or available is None or total <= available:
        return []
    listed = "; ".join(
        f"camera {name!r} {nbytes / 2**30:.2f} GiB ({shape})" for name, nbytes, shape in needs
    )
    return [
        f"{settings.source_file}: the cameras' frame rings would need "
        f"{total / 2**30:.2f} GiB of shared memory, and the machine has "
        f"{available / 2**30:.2f} GiB free ({listed}). Lower the cameras' WIDTH and HEIGHT "
        "or FRAMERATE, or [Streaming] BUFFER_SECONDS"
    ]


def available_shared_memory() -> int | None:
    """Return the bytes of shared memory free now: /dev/shm's free space and the free memory."""
    import psutil

    available = int(psutil.virtual_memory().available)
    if SHM_FOLDER.is_dir():  # Linux keeps shared memory in a size-limited folder
        available = min(available, shutil.disk_usage(SHM_FOLDER).free)
    return available


def start_warnings(settings: Settings) -> list[str]:
    """Return what is worth a warning before the start (``session.json`` and the summary).

    An EXPOSURE longer than the frame interval, and frame rings taking much shared memory.
    """
    return _exposure_warnings(settings) + _ring_warnings(settings)


def _ring_warnings(settings: Settings) -> list[str]:
    """Return a warning when the rings need a large part of the shared memory free now."""
    needs = _ring_needs(settings)
    total = sum(nbytes for _, nbytes, _ in needs)
    available = available_shared_memory()
    if not needs or available is None or total > available:
        return []
    if total <= RING_WARN_SHARE * available and total <= RING_WARN_GIB * 2**30:
        return []
    buffer = f"[Streaming] BUFFER_SECONDS = {settings.streaming.buffer_seconds:g}"
    if len(needs) == 1:
        ((name, _, shape),) = needs
        what = f"camera {name!r}: its frame ring needs {total / 2**30:.2f} GiB of shared memory"
        what += f" ({shape}, {buffer})"
    else:
        listed = "; ".join(
            f"camera {name!r} {nbytes / 2**30:.2f} GiB ({shape})" for name, nbytes, shape in needs
        )
        what = (
            f"the cameras' frame rings need {total / 2**30:.2f} GiB of shared memory ({listed}; "
            f"{buffer})"
        )
    return [
        f"{what}, {100 * total / available:.0f} % of the {available / 2**30:.2f} GiB free now: "
        "the recorders, the model and the machine's other work need memory too. Lower WIDTH "
        "and HEIGHT, FRAMERATE or BUFFER_SECONDS if this is more than meant"
    ]


def _exposure_warnings(settings: Settings) -> list[str]:
    """Return the cameras whose EXPOSURE allows fewer frames per second than FRAMERATE."""
    warnings = []
    for camera in settings.cameras:
        options = camera.options
        exposure, fps = getattr(options, "exposure", None), getattr(options, "framerate", None)
        if not exposure or not fps or _exposure_unit(options) != "µs":
            continue
        if str(getattr(options, "trigger", "")).startswith("line"):
            continue
        limit = 1e6 / float(exposure)
        if limit < float(fps):
            warnings.append(
                f"camera {camera.name!r}: EXPOSURE {exposure:g} µs allows at most "
                f"{limit:.1f} fps, below its FRAMERATE {fps:g}: it will deliver at most "
                f"{limit:.1f} fps. Shorten EXPOSURE to under {1e6 / float(fps):.0f} µs, or "
                "lower FRAMERATE"
            )
    return warnings


def _exposure_unit(options: Any) -> str:
    """Return the unit of a camera's EXPOSURE setting ("" when it has none)."""
    if not dataclasses.is_dataclass(options):
        return ""
    for entry in dataclasses.fields(options):
        if entry.name == "exposure" and entry.metadata:
            return spec_of(entry).unit
    return ""


def _model_problems(plan: CameraPlan) -> list[str]:
    # A camera's own model, or a shared one (each of an ensemble's) -> where it is named
    uses: dict[tuple[str, bool], tuple[Path | None, list[str]]] = {}
    for camera in plan.cameras:
        for model in camera.models:
            _, places = uses.setdefault((str(model), camera.own_model), (model, []))
            if camera.model_named_by not in places:
                places.append(camera.model_named_by)
    problems = []
    for model, places in uses.values():
        problems += model_problems(model, " and ".join(places))
    return problems or _ensemble_problems(plan)


def _ensemble_problems(plan: CameraPlan) -> list[str]:
    """Return what stops a camera's ensemble (animals, keypoints, crop, map, EKS length)."""
    problems = []
    read: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}  # per camera: its keypoints
    for camera in plan.cameras:
        if not camera.ensemble:
            continue
        where = camera.model_named_by
        if camera.dynamic_crop.enabled:
            problems.append(
                f"{where}: camera {camera.name!r} runs an ensemble of {len(camera.ensemble)} "
                "models, and dynamic cropping runs one; set DYNAMIC_CROP = off in [Pose] (and "
                "in the camera's section), or name one model"
            )
        try:
            names = [model_keypoints(path) for path in camera.ensemble]
            animals = [
                model_animals(path, plan.settings.pose.max_animals) for path in camera.ensemble
            ]
        except _UNREADABLE_MODEL:
            continue  # _model_problems names it
        problems += _smooth_param_problems(plan, camera.name, names[0])
        problems += _repeated_member_problems(where, camera.ensemble)
        read[camera.name] = (list(names[0]), names[1:])
        for index, path in enumerate(camera.ensemble):
            which = f"{where}: {member_name(index, path)}"
            if animals[index] > 1:
                problems.append(
                    f"{which} finds several animals; an ensemble is of single-animal "
                    "models (docs/ensembles.md)"
                )
            elif index and names[0] and names[index]:
                problem = mapping_problem(names[0], names[index], camera.keypoint_map)
                problems += [f"{which}: {problem}"] if problem else []
    return _keypoint_map_problems(plan, read) or problems


def _repeated_member_problems(where: str, ensemble: tuple[Path, ...]) -> list[str]:
    """Return each model an ensemble lists again: its spread would always be 0."""
    problems = []
    seen: dict[Path, int] = {}
    for index, path in enumerate(ensemble):
        model = model_to_load(path).resolve()  # a framework's folder: the model inside
        if model in seen:
            first = seen[model]
            problems.append(
                f"{where}: {member_name(index, path)} is {member_name(first, ensemble[first])} "
                "again. One model's values are the same each time it runs, so the ensemble's "
                "spread would be 0 on every frame and every MAX_ENSEMBLE_STD rule would pass: "
                "name each model once (an ensemble is of models trained apart: other seeds, "
                "other frameworks)"
            )
        seen.setdefault(model, index)
    return problems or _copied_member_problems(where, ensemble)


def _copied_member_problems(where: str, ensemble: tuple[Path, ...]) -> list[str]:
    """Return each member that is a byte-identical copy of an earlier one at another path."""
    # Only members whose files have the same names and sizes are hashed: the check costs nothing
    # for models trained apart.
    problems = []
    by_layout: dict[tuple[tuple[str, int], ...], list[int]] = {}
    for index, path in enumerate(ensemble):
        layout = _file_layout(model_to_load(path))
        if layout:
            by_layout.setdefault(layout, []).append(index)
    for indices in by_layout.values():
        seen: dict[str, int] = {}
        for index in indices:
            digest = _content_digest(model_to_load(ensemble[index]))
            first = seen.setdefault(digest, index)
            if first != index:
                problems.append(
                    f"{where}: {member_name(index, ensemble[index])} is a byte-identical copy "
                    f"of {member_name(first, ensemble[first])} (every file the same, SHA-256 "
                    f"{digest[:12]}...). Its values would be the same as that model's on every "
                    "frame, so the ensemble's spread would be 0 and every MAX_ENSEMBLE_STD rule "
                    "would pass: an ensemble is of models trained apart (other seeds, other "
                    "frameworks); remove the copy"
                )
    return sorted(problems)


def _model_files(model: Path) -> list[tuple[str, Path]]:
    """Return a model's files by their path in it ("" for a model that is one file)."""
    if model.is_file():
        return [("", model)]
    if not model.is_dir():
        return []
    found = [(path.relative_to(model).as_posix(), path) for path in model.rglob("*")]
    return sorted((name, path) for name, path in found if path.is_file())


def _file_layout(model: Path) -> tuple[tuple[str, int], ...]:
    """Return each file of a model with its size: what two copies must share (() : unreadable)."""
    try:
        return tuple((name, path.stat().st_size) for name, path in _model_files(model))
    except OSError:  # _model_problems names an unreadable model
        return ()


def _content_digest(model: Path) -> str:
    """Return one SHA-256 over every file of a model (its name and content)."""
    combined = hashlib.sha256()
    for name, path in _model_files(model):
        combined.update(name.encode("utf-8", "surrogateescape") + b"\0")
        combined.update(bytes.fromhex(file_sha256(path)))
    return combined.hexdigest()


def _keypoint_map_problems(
    plan: CameraPlan, read: dict[str, tuple[list[str], list[tuple[str, ...]]]]
) -> list[str]:
    """Return the ``KEYPOINT_MAP`` pairs no ensemble reading them (all cameras together) can use."""
    by_key: dict[str, tuple[KeypointMap, list[str], list[tuple[str, ...]]]] = {}
    for camera in plan.cameras:
        if camera.name in read:
            first, others = read[camera.name]
            _, firsts, theirs = by_key.setdefault(
                _keypoint_map_key(plan, camera.name), (camera.keypoint_map, [], [])
            )
            firsts += first
            theirs += others
    return [
        f"{key}: {problem}"
        for key, (pairs, firsts, theirs) in by_key.items()
        for problem in keypoint_map_problems(list(dict.fromkeys(firsts)), theirs, pairs)
    ]


def _keypoint_map_key(plan: CameraPlan, camera: str) -> str:
    """Return the ``KEYPOINT_MAP`` key a camera's ensemble reads: its own, else ``[Pose]``'s."""
    where = plan.settings.source_file
    for section in plan.settings.cameras:
        if section.name == camera and section.common.keypoint_map is not None:
            return f"[Camera {camera}] KEYPOINT_MAP in {where}"
    return f"[Pose] KEYPOINT_MAP in {where}"


def _smooth_param_problems(plan: CameraPlan, camera: str, keypoints: tuple[str, ...]) -> list[str]:
    """Return why ``EKS_SMOOTH_PARAM`` does not fit a causal filter of ``keypoints``."""
    pose = plan.settings.pose
    given = len(pose.eks_smooth_param)
    if pose.ensemble_smoothing != "causal" or not keypoints or given in (1, len(keypoints)):
        return []
    return [
        f"[Pose] EKS_SMOOTH_PARAM in {plan.settings.source_file} gives {given} values, and "
        f"the ensemble of camera {camera!r} has {len(keypoints)} keypoints "
        f"({', '.join(keypoints)}): give one value for every keypoint, or one per keypoint in "
        "that order"
    ]


def model_problems(model: Path | None, where: str) -> list[str]:
    """Return why ``model`` (None: the bundled one) cannot be loaded; ``where`` names the key."""
    unusable_name = utf8_name_problem(model) if model is not None else None
    if unusable_name is not None:
        return [f"{where}: {unusable_name}"]
    try:
        check_model(model)
    except ModelError as error:
        hint = _torch_folder_hint(model)
        text = str(error).rstrip(".") + hint if hint else str(error)
        return [f"{where}: {text}"]
    except ModuleNotFoundError as error:  # a model of a kind whose extra is not installed
        clear = missing_extra(error) or f"{type(error).__name__}: {error}"
        return [f"{where}: {model}: {clear}"]
    except Exception as error:  # an unexpected failure of a check is a problem too
        return [f"{where}: {model}: {type(error).__name__}: {error}"]
    return []


def _torch_folder_hint(model: Path | None) -> str:
    """Name the .pt files of a folder given as the model (a DeepLabCut 3.0 model folder)."""
    if model is None or not model.is_dir():
        return ""
    files = sorted(model.rglob("*.pt"))[:3]
    if not files:
        return ""
    named = ", ".join(str(file) for file in files)
    return (
        f". This folder holds PyTorch file(s) ({named}): for a DeepLabCut 3.0 model, name "
        "its exported .pt file (deeplabcut.export_model writes it under "
        "exported-models-pytorch/); a training snapshot (snapshot-*.pt) must be exported first"
    )


def _backend_problems(settings: Settings, plan: CameraPlan) -> list[str]:
    """Return the models ``[Pose] BACKEND`` cannot run (pytorch and an ONNX graph only)."""
    backend = f"[Pose] BACKEND = {settings.pose.backend} in {settings.source_file}"
    problems = []
    for path in sorted(plan.models, key=str):
        try:
            check_backend(path, settings.pose.backend)
        except ModelError as error:
            if path is None:
                which = " for the bundled model ([Pose] MODEL_PATH is empty)"
            elif plan.model_option and path == plan.shared_model:
                which = " for --model"
            else:
                which = ""
            problems.append(f"{backend}{which}: {error}")
    return problems


def _device_problems(settings: Settings) -> list[str]:
    """Return why ``[Pose] DEVICE`` cannot be had here; the run never falls back to the CPU."""
    problem = device_check(settings.pose.backend, settings.pose.device)
    if problem is None:
        return []
    where = (
        f"[Pose] DEVICE = {settings.pose.device} with BACKEND = {settings.pose.backend} in "
        f"{settings.source_file}"
    )
    return [f"{where}: {problem}"]


def _precision_problems(settings: Settings, plan: CameraPlan) -> list[str]:
    """Return the models ``[Pose] PRECISION`` cannot apply to (pose.runtime.precision)."""
    precision = settings.pose.precision
    if precision == "fp32":
        return []
    where = f"[Pose] PRECISION = {precision} in {settings.source_file}"
    problems = []
    for path in sorted(plan.models, key=str):
        try:
            check_precision(path, precision, settings.pose.backend, settings.pose.device)
        except ModelError as error:
            problems.append(f"{where}: {error}")
    return problems


def _crop_problems(settings: Settings, plan: CameraPlan) -> list[str]:
    """Return the cameras that crop dynamically around one animal with a multi-animal model."""
    problems = []
    for camera in plan.cameras:
        if not camera.dynamic_crop.enabled:
            continue
        path = camera.model
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


def _animal_problems(settings: Settings, plan: CameraPlan, triggers: Any) -> list[str]:
    """Return the triggers that read an animal the cameras' (readable) models do not report."""
    try:
        counts = [model_animals(path, settings.pose.max_animals) for path in plan.models]
    except _UNREADABLE_MODEL:
        return []  # _model_problems names it
    return animal_problems(triggers, max(counts, default=1))


def _triangulation_problems(settings: Settings) -> list[str]:
    """Return what stops the live triangulation: the calibration, its cameras, their frame sizes."""
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
    """Return why ``[Triangulation] CALIBRATION``, loaded as the worker does, cannot triangulate."""
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


def _keypoint_problems(plan: CameraPlan, experiment: ExperimentPlan) -> list[str]:
    """Return each keypoint the experiment reads that the model of a camera it reads lacks."""
    config_file = experiment.file if experiment.kind == "config" else None
    loaded = experiment.experiment()
    return [mismatch_problem(m, config_file) for m in keypoint_mismatches(plan, loaded)]


def _experiment_problems(
    settings: Settings, plan: CameraPlan, experiment_option: str | None
) -> list[str]:
    name = settings.experiment.name
    where = (
        "--experiment"
        if experiment_option is not None
        else f"[Experiment] NAME in {settings.source_file}"
    )
    try:
        experiment = plan.experiment_plan()
        loaded = experiment.experiment()
    except (ExperimentNotFoundError, ExperimentConfigError) as error:
        return [f"{where} ({name!r}): {error}"]
    except ExperimentInitError as error:  # names the class and what its __init__ raised
        return [f"{where} ({name!r}): {error}. Fix the class, or name another experiment."]
    except Exception as error:  # a .py that fails to import, a class that fails to build
        return [
            f"{where} ({name!r}): the experiment could not be loaded: "
            f"{type(error).__name__}: {error}. Fix the file, or name another experiment."
        ]
    cameras = [camera.name for camera in settings.cameras]
    found = camera_problems(loaded.triggers, cameras)
    ensembles = {camera.name for camera in plan.cameras if camera.ensemble}
    smoothed = ensembles if settings.pose.ensemble_smoothing == "causal" else set()
    found += ensemble_problems(loaded.triggers, cameras, ensembles, smoothed)
    found += _animal_problems(settings, plan, loaded.triggers)
    found += _points3d_problems(settings, loaded.triggers)
    found += _keypoint_problems(plan, experiment)
    problems = [f"{where} ({name!r}): {problem}" for problem in found]
    needed = sorted({device for device, _ in ExperimentSetup.of(loaded).declared_outputs})
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
