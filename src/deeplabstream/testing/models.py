"""A model format and an inference backend run alone: a model loaded, its network run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.pose.loading import open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.model_format import MODEL_FORMATS, ModelFormat, model_formats
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.testing.plugin_settings import PluginCheckError, returns_within

REFERENCE_BACKEND = "onnxruntime"
#: How long a format's ``recognises`` may take in :func:`check_model_format`.
RECOGNISES_LIMIT_S = 3.0


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model_format` found; ``poses`` (frames, animals, keypoints, 3)."""

    model_format: ModelFormat
    description: ModelDescription
    poses: np.ndarray


@dataclass(frozen=True)
class BackendRun:
    """What :func:`run_backend` got: the backend's and the reference's outputs on one batch."""

    outputs: list[np.ndarray]
    reference: list[np.ndarray]
    provider: str

    def largest_difference(self) -> float:
        """Return the largest absolute difference of any output value from the reference."""
        pairs = zip(self.outputs, self.reference, strict=True)
        differences = [np.abs(a.astype(np.float64) - b) for a, b in pairs if a.size]
        return max((float(d.max()) for d in differences), default=0.0)


def check_model_format(
    path: Path,
    *,
    model_format: str | type[ModelFormat] | None = None,
    frames: Sequence[np.ndarray] | None = None,
    settings_folder: Path | None = None,
    precision: str = "fp32",
) -> ModelCheck:
    """Load the model at ``path`` as a start does and estimate the keypoints of ``frames``.

    ``model_format``: the format expected to recognise it (name or class; None: any); ``frames``:
    BGR uint8 of one size (None: a grey frame of the input size). Raises :class:`PluginCheckError`
    for a broken rule of the format interface (docs/plugins.md, "Testing a plugin alone").
    """
    with using_settings_folder(settings_folder):
        named = (
            MODEL_FORMATS.get(model_format, settings_folder)
            if isinstance(model_format, str)
            else model_format
        )
        found = _format_of(path, named)
        label = f"model format {found.name!r} ({type(found).__name__})"
        description = found.load(path, None, precision)  # type: ignore[arg-type]
        if not isinstance(description, ModelDescription):
            raise PluginCheckError(f"{label}: load() returned {description!r}, not a description")
        if not found.describes(description):
            raise PluginCheckError(
                f"{label}: describes() is False for its own description (framework "
                f"{description.framework!r}); load writes framework=self.name"
            )
        keypoints = tuple(found.keypoints(path))
        if keypoints != tuple(description.keypoints):
            raise PluginCheckError(
                f"{label}: keypoints() says {keypoints}, its description {description.keypoints}"
            )
        if frames is None:
            grey = np.full((description.input_height, description.input_width, 3), 128, np.uint8)
            frames = [grey]
        backend = open_backend(description, REFERENCE_BACKEND, "cpu", 1)
        try:
            estimator = open_estimator(description, backend, frames[0].shape)
            poses = estimator.estimate_animals(list(frames))
        finally:
            backend.close()
    expected = (len(frames), description.animals, len(description.keypoints), 3)
    if poses.shape != expected:
        raise PluginCheckError(f"{label}: poses of shape {poses.shape}; expected {expected}")
    return ModelCheck(found, description, poses)


def run_backend(
    backend: str,
    model: Path | ModelDescription,
    *,
    device: str = "cpu",
    threads: int = 1,
    batch: np.ndarray | None = None,
    settings_folder: Path | None = None,
) -> BackendRun:
    """Run a model's network on ``backend`` and on the built-in ONNX Runtime, on one batch.

    ``batch`` None: one random image. Raises :class:`PluginCheckError` when the outputs' number or
    shapes differ from the reference's.
    """
    with using_settings_folder(settings_folder):
        description = model if isinstance(model, ModelDescription) else _load(model)
        if batch is None:
            rng = np.random.default_rng(0)
            batch = (rng.random(description.input_shape(1)) * 255).astype(description.input_dtype)
        tested = open_backend(description, backend, device, threads)  # type: ignore[arg-type]
        reference = open_backend(description, REFERENCE_BACKEND, "cpu", threads)
        try:
            tested.warm_up(len(batch))
            ours, theirs = list(tested.run(batch)), list(reference.run(batch))
            provider = str(tested.provider)
        finally:
            tested.close()
            reference.close()
    shapes, expected = [o.shape for o in ours], [t.shape for t in theirs]
    if shapes != expected:
        raise PluginCheckError(
            f"backend {backend!r}: run() gave outputs of shapes {shapes}; the network's are "
            f"{expected} (in description.output_names order: {description.output_names})"
        )
    return BackendRun(ours, theirs, provider)


def _format_of(path: Path, expected: type[ModelFormat] | None) -> ModelFormat:
    """Return the first format that recognises ``path``, which must be ``expected`` (when given)."""
    formats, _ = model_formats()
    first = next((f for f in formats if _recognises(f, path)), None)
    if expected is None:
        if first is None:
            names = ", ".join(f.name for f in formats)
            raise PluginCheckError(f"{path}: no model format recognises it (tried: {names})")
        return first
    if first is not None and not isinstance(first, expected):
        raise PluginCheckError(
            f"{path}: {type(first).__name__} ({first.name!r}) recognises it before "
            f"{expected.__name__}: a lab's format recognises its own file names only"
        )
    mine = first if first is not None else expected()
    if not _recognises(mine, path):
        raise PluginCheckError(f"{expected.__name__}.recognises({path}) is False")
    return mine


def _recognises(model_format: ModelFormat, path: Path) -> bool:
    """Ask ``model_format`` whether it recognises ``path``, within :data:`RECOGNISES_LIMIT_S`."""
    label = f"model format {model_format.name!r} ({type(model_format).__name__})"
    return bool(
        returns_within(
            label,
            f"recognises({path})",
            RECOGNISES_LIMIT_S,
            lambda: model_format.recognises(path),
            "recognises runs on every model at every start, before anything else: look at the "
            "path's name (its suffix, a file beside it), never load the model there",
        )
    )


def _load(path: Path) -> ModelDescription:
    return _format_of(path, None).load(path, None, "fp32")
