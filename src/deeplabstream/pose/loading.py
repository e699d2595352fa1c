"""One way in for every model: a path (or nothing, for the bundled model) -> ModelDescription.

Design: docs/pose-internals.md, "pose.loading".
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deeplabstream.core.errors import raised_as
from deeplabstream.pose.decoding.sleap_topdown import model_stages
from deeplabstream.pose.decoding.two_stage import CropFrom
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.dlc3_topdown import topdown_decoding_of, topdown_stages
from deeplabstream.pose.formats.dlc3_topdown_animals import open_dlc_topdown_estimator
from deeplabstream.pose.formats.framework_folders import resolve_model_path
from deeplabstream.pose.formats.lightning_context import context_of, heads_description
from deeplabstream.pose.formats.lightning_cropzoom import cropzoom_of, cropzoom_stages
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import (
    LAB_FORMATS_KEY,
    ModelFormat,
    Precision,
    build_torch_module,
    check_torch_file,
    format_of,
    unreadable,
    untried_lab_formats,
    unusable_formats,
)
from deeplabstream.pose.runtime.backends import (
    InferenceBackend,
    open_backend,
    second_graph_device,
    second_graph_threads,
)
from deeplabstream.pose.runtime.context import ContextEstimator
from deeplabstream.pose.runtime.cropzoom import CropZoomEstimator, stage_descriptions
from deeplabstream.pose.runtime.ensemble import EnsembleEstimator
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.precision import (
    PRECISIONS,
    PrecisionName,
    backend_problem,
    int8_model,
)
from deeplabstream.pose.runtime.precision import (
    device_problem as precision_device_problem,
)

BUNDLED_MODEL = Path(__file__).resolve().parent / "bundled" / "arena"

__all__ = [
    "BUNDLED_MODEL",
    "Precision",
    "build_torch_module",
    "check_backend",
    "check_model",
    "check_precision",
    "check_torch_file",
    "converted_on_first_use",
    "load_model",
    "model_animals",
    "model_keypoints",
    "model_to_load",
    "open_ensemble_estimator",
    "open_estimator",
    "open_reference_estimator",
    "unreadable",
]


def load_model(
    path: Path | None,
    *,
    frame_size: tuple[int, int] | None = None,
    precision: PrecisionName = "fp32",
    max_animals: int | None = None,
) -> ModelDescription:
    """Return the description of the model at ``path`` (None: the bundled model).

    ``path`` may be a framework's folder holding one model (``named_path``, ``found_model``).
    ``frame_size`` (height, width; default 640x480) applies to models that run at any size.
    ``precision`` ``int8`` needs a graph ``deeplabstream-quantize`` made. ``max_animals`` None: the
    model's. Raises ModelError saying what was found and what is expected.
    """
    path = BUNDLED_MODEL if path is None else Path(path).expanduser()
    if not path.exists():
        raise ModelError(
            f"{path}: {_not_there(path)}. Set [Pose] MODEL_PATH (or --model) to a model folder "
            "or file, or leave it empty for the bundled model."
        )
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}; expected {', '.join(PRECISIONS)}")
    model = resolve_model_path(path)
    if model != path:  # a framework's folder around the model: the record names both
        inner = load_model(
            model, frame_size=frame_size, precision=precision, max_animals=max_animals
        )
        return dataclasses.replace(inner, named_path=path, found_model=model)
    if precision == "tf32":  # the fp32 graph; the backend allows TensorFloat-32 on the GPU
        fp32 = load_model(path, frame_size=frame_size, precision="fp32", max_animals=max_animals)
        return dataclasses.replace(fp32, precision="tf32")
    if precision == "int8":  # the fp32 model, then its quantized graph (pose.runtime.precision)
        fp32 = load_model(path, frame_size=frame_size, precision="fp32", max_animals=max_animals)
        return int8_model(fp32, path)
    model_format = format_of(path)
    if precision != "fp32" and not (model_format is not None and model_format.converted):
        raise ModelError(
            f"{path}: precision {precision} applies to models converted here (DeepLabCut "
            f".pt, Lightning Pose .ckpt); for a Lightning Pose export name its fp16 .onnx file"
        )
    if model_format is not None:
        description = model_format.load(path, frame_size, precision)
        # An identity model reports one animal per class, whatever MAX_ANIMALS says.
        fixed = bool(description.identity_classes)
        if max_animals is not None and description.multi_animal and not fixed:
            description = dataclasses.replace(description, max_animals=max_animals)
        return description
    raise ModelError(
        f"{path}: not a model this program knows. Expected a folder with model.json (this "
        "project's models), a Lightning Pose model folder (config.yaml + exports_onnx/ or "
        "tb_logs/), a Lightning Pose .ckpt, a DeepLabCut 3.0 export (.pt) or a folder holding "
        "one (the project, exported-models-pytorch/), a sleap-nn ONNX export folder "
        "(export_metadata.json + model.onnx) or the training folder holding one, or an .onnx "
        "file inside one of them." + _unusable_formats_text()
    )


def _not_there(path: Path) -> str:
    """Say why nothing is at ``path``: not found, or a symbolic link that leads nowhere."""
    if not path.is_symlink():
        return "model not found"
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 (3.13: OSError ELOOP)
        return f"a symbolic link (to {target}) that leads back to itself: no model is there"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"a symbolic link (to {target}) that leads back to itself: no model is there"
    return f"a symbolic link to {target}, which does not exist: no model is there"


def model_to_load(path: Path | None) -> Path:
    """Return the model file or folder that ``path`` names (None: the bundled model).

    ModelError as :func:`load_model` for a folder that holds none or several.
    """
    path = BUNDLED_MODEL if path is None else Path(path).expanduser()
    return resolve_model_path(path) if path.exists() else path


def converted_on_first_use(path: Path | None) -> bool:
    """Return True when the model at ``path`` is converted to ONNX on its first load."""
    try:
        model = model_to_load(path)
    except ModelError:
        return False
    model_format = format_of(model) if model.exists() else None
    return model_format is not None and model_format.converted


def model_stage_names(description: ModelDescription) -> tuple[str, ...]:
    """Return the timed stages of a loaded two-stage model; () for a model of one stage."""
    return model_stages(description) or topdown_stages(description) or cropzoom_stages(description)


def open_estimator(
    description: ModelDescription,
    backend: InferenceBackend,
    frame_shape: tuple[int, ...],
    *,
    max_batch: int = 1,
    crop_from: CropFrom = "same_frame",
    open_stage: Callable[[ModelDescription], InferenceBackend] | None = None,
) -> PoseEstimator:
    """Return the estimator of a model's kind: the one place that picks it.

    ``description`` is at its input size, ``backend`` its first network opened. ``open_stage`` opens
    a second graph; None: on ONNX Runtime beside ``backend``, as the inference worker does.
    """

    def beside(stage: ModelDescription) -> InferenceBackend:
        device, threads = second_graph_device(backend), second_graph_threads(backend)
        return open_backend(stage, "onnxruntime", device, threads)

    opener = open_stage or beside
    if topdown_decoding_of(description) is not None:  # DeepLabCut: detector + pose
        return open_dlc_topdown_estimator(  # one or several animals
            description,
            lambda stage, *_: opener(stage),
            backend,
            threads=second_graph_threads(backend),  # its host steps, beside the detector
            frame_shape=frame_shape,
            crop_from=crop_from,
        )
    if cropzoom_of(description) is not None:  # Lightning Pose: detector + pose
        pose = opener(stage_descriptions(description)[1])
        return CropZoomEstimator(description, backend, pose, frame_shape, crop_from)
    if context_of(description) is not None:  # Lightning Pose: frames t-2 .. t+2
        heads = open_stage(heads_description(description)) if open_stage is not None else None
        return ContextEstimator(description, backend, frame_shape, max_batch, heads)
    return NetworkEstimator(description, backend, frame_shape, max_batch, crop_from=crop_from)


def open_ensemble_estimator(
    description: ModelDescription,
    members: Sequence[PoseEstimator],
    rows: Sequence[np.ndarray],
) -> EnsembleEstimator:
    """Return the estimator of an ensemble: its members' estimators combined (docs/ensembles.md)."""
    return EnsembleEstimator(description, members, rows)


def open_reference_estimator(description: ModelDescription) -> PoseEstimator:
    """Return a DeepLabCut top-down model's estimator on its rebuilt PyTorch modules (reference)."""
    if topdown_decoding_of(description) is None:
        raise ModelError(f"{description.name}: only a DeepLabCut top-down model has a reference")
    return open_dlc_topdown_estimator(description)


def _unusable_formats_text() -> str:
    """Name the formats that could not be loaded, and the lab's, tried only when named."""
    failures = unusable_formats()
    text = (" Formats that cannot be loaded: " + "; ".join(map(str, failures))) if failures else ""
    untried = untried_lab_formats()
    if untried:
        text += (
            f" The lab's formats/ folder has {', '.join(untried)}, not tried: only the formats "
            f"{LAB_FORMATS_KEY} names are imported. If one of them reads this model, set "
            f"{LAB_FORMATS_KEY} = {untried[0]}"
        )
    return text


def check_model(path: Path | None) -> None:
    """Check cheaply that ``path`` is a model :func:`load_model` can take (None: the bundled).

    Nothing is converted or run, no code from the file runs. Raises ModelError as :func:`load_model`
    would, saying what to do.
    """
    model, model_format = _located(BUNDLED_MODEL if path is None else Path(path).expanduser())
    model_format.check(model)


def _located(path: Path) -> tuple[Path, ModelFormat]:
    """Return the model at ``path`` (or in its framework's folder) and its format; else raise."""
    if not path.exists():
        load_model(path)  # raises its "model not found" message
    model = resolve_model_path(path)  # a framework's folder: its model, or what to run
    model_format = format_of(model)
    if model_format is None:
        load_model(model)  # raises the message for what is there
        raise ModelError(f"{model}: not a model this program knows")  # pragma: no cover
    return model, model_format


def check_backend(path: Path | None, backend: str) -> None:
    """Check that ``[Pose] BACKEND`` can run the model at ``path`` (None: the bundled model).

    A path no format knows is left to :func:`check_model`. Raises ModelError naming the model, why
    the backend cannot run it, and what to set instead.
    """
    if backend != "pytorch":
        return
    path = model_to_load(path)
    model_format = format_of(path) if path.exists() else None
    problem = model_format.pytorch_problem(path) if model_format is not None else None
    if problem is not None:
        raise ModelError(problem)


def check_precision(
    path: Path | None, precision: PrecisionName, backend: str, device: str = "cpu"
) -> None:
    """Check that ``[Pose] PRECISION`` applies to the model at ``path`` on ``backend``.

    tf32 needs a GPU; fp16 a model converted here; int8 the onnxruntime backend and a quantized
    graph. Raises ModelError naming the model and what to run or set instead.
    """
    problem = backend_problem(precision, backend) or precision_device_problem(precision, device)
    if problem is not None:
        raise ModelError(problem)
    path = model_to_load(path)
    if precision == "fp16":
        model_format = format_of(path) if path.exists() else None
        if not (model_format is not None and model_format.converted):
            load_model(path, precision=precision)  # raises its message for this model
    elif precision == "int8":
        load_model(path, precision=precision)


def model_animals(path: Path | None, max_animals: int) -> int:
    """Return how many animals the model at ``path`` reports per frame, cheaply (no conversion).

    ``max_animals`` for a multi-animal model, its classes for an identity model, else 1. ModelError
    as :func:`check_model`.
    """
    path = model_to_load(path)
    model_format = format_of(path) if path.exists() else None
    if model_format is None or model_format.converted:
        check_model(path)
        return 1
    description = model_format.load(path, None, "fp32")
    if description.identity_classes:  # one animal per class
        return len(description.identity_classes)
    return max_animals if description.multi_animal else 1


def model_keypoints(path: Path | None) -> tuple[str, ...]:
    """Return the keypoint names of the model at ``path`` (None: the bundled), cheaply.

    Cached while the model's files keep their size and modification time. ModelError as
    :func:`check_model`, and for files that cannot be read.
    """
    with raised_as(ModelError, OSError, ValueError):
        path = (BUNDLED_MODEL if path is None else Path(path).expanduser()).resolve()
        if not path.exists():
            load_model(path)  # raises its "model not found" message
        key = (str(path), _stamp(path))
        if key not in _KEYPOINTS:
            model, model_format = _located(path)
            if len(_KEYPOINTS) >= _KEYPOINT_CACHE_SIZE:
                _KEYPOINTS.pop(next(iter(_KEYPOINTS)))
            _KEYPOINTS[key] = model_format.keypoints(model)
        return _KEYPOINTS[key]


_KEYPOINTS: dict[tuple[str, tuple[int, ...]], tuple[str, ...]] = {}
_KEYPOINT_CACHE_SIZE = 32


def _stamp(path: Path) -> tuple[int, ...]:
    """Size and modification time of ``path``, and of every file directly in it (a folder)."""
    files = [path, *sorted(path.iterdir())] if path.is_dir() else [path]
    stamp: list[int] = []
    for file in files:
        status = file.stat()
        stamp += [status.st_size, status.st_mtime_ns]
    return tuple(stamp)
