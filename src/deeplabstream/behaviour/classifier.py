"""A trained behaviour classifier at run time: ONNX Runtime on one thread, frame by frame.

docs/behaviour-classifiers.md, "What the files hold".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.behaviour.features import FeatureSpec, FeatureSpecError, FeatureWindow
from deeplabstream.core.errors import ModelError

MODEL_FORMAT = "deeplabstream-behaviour-model/1"
"""The ``format`` of a classifier's JSON; a file with another format is refused."""


class ClassifierError(ModelError):
    """A classifier that cannot be loaded or run; the message names the file and what to do."""


def metadata_path(model_path: Path) -> Path:
    """Return the JSON file beside a classifier's ONNX file (``NAME.onnx`` -> ``NAME.json``)."""
    return model_path.with_suffix(".json")


def metrics_path(model_path: Path) -> Path:
    """Return the scores file beside a classifier (``NAME.onnx`` -> ``NAME.metrics.json``)."""
    return model_path.with_suffix(".metrics.json")


def read_metadata(model_path: Path) -> dict[str, Any]:
    """Read and check a classifier's JSON (format, behaviours, spec, scale)."""
    path = metadata_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClassifierError(
            f"{path}: missing; a classifier needs the JSON written beside {model_path.name} by "
            "'deeplabstream-train-behaviour train'"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClassifierError(f"{path}: not valid JSON ({error}); train the model again") from None
    if not isinstance(data, dict):
        raise ClassifierError(f"{path}: expected a JSON object, but got {type(data).__name__}")
    found = data.get("format")
    if found != MODEL_FORMAT:
        raise ClassifierError(
            f"{path}: expected format '{MODEL_FORMAT}', but got {found!r}; it was written by "
            "another version of this program: train the classifier again with this one"
        )
    behaviours = data.get("behaviours")
    if (
        not isinstance(behaviours, list)
        or len(behaviours) < 2
        or not all(isinstance(b, str) and b for b in behaviours)
    ):
        raise ClassifierError(
            f"{path}, 'behaviours': expected a list of at least two names, but got {behaviours!r}"
        )
    scale = data.get("pixels_per_mm")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ClassifierError(
            f"{path}, 'pixels_per_mm': expected a positive number, but got {scale!r}"
        )
    try:
        FeatureSpec.from_dict(data.get("feature_spec"))  # type: ignore[arg-type]
    except FeatureSpecError as error:
        raise ClassifierError(f"{path}, 'feature_spec': {error}") from None
    return data


class BehaviourClassifier:
    """Probabilities of each behaviour, from each new frame's keypoints; build it with ``load``.

    Picklable: the ONNX Runtime session is made on first use, again in another process.
    """

    def __init__(
        self, model_path: Path, metadata: dict[str, Any], pixels_per_mm: float | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.metadata = metadata
        self.spec = FeatureSpec.from_dict(metadata["feature_spec"])
        self.behaviours: tuple[str, ...] = tuple(metadata["behaviours"])
        self.keypoints: tuple[str, ...] = self.spec.keypoints
        self.training_pixels_per_mm = float(metadata["pixels_per_mm"])
        scale = self.training_pixels_per_mm if pixels_per_mm is None else float(pixels_per_mm)
        if not (math.isfinite(scale) and scale > 0):
            raise ClassifierError(
                f"Expected pixels_per_mm to be a positive number, but got {pixels_per_mm}"
            )
        self.pixels_per_mm = scale
        self.input_name = str(metadata.get("input_name", "features"))
        self.probabilities_name = str(metadata.get("probabilities_output", "probabilities"))
        self._window = FeatureWindow(self.spec, scale)
        self._input = np.zeros((1, self.spec.n_features), np.float32)
        self._session: Any = None

    @classmethod
    def load(cls, path: Path, pixels_per_mm: float | None = None) -> BehaviourClassifier:
        """Load ``path`` (``NAME.onnx``) and ``NAME.json``; ``pixels_per_mm`` None: training's."""
        model_path = Path(path)
        if not model_path.is_file():
            raise ClassifierError(
                f"{model_path}: no such classifier; train one with 'deeplabstream-train-behaviour "
                "train ... --out NAME.onnx'"
            )
        classifier = cls(model_path, read_metadata(model_path), pixels_per_mm)
        classifier._open()
        return classifier

    def _open(self) -> Any:
        if self._session is not None:
            return self._session
        import onnxruntime as ort  # here: importing behaviour/ never starts ONNX Runtime

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime raises its own exception kinds
            raise ClassifierError(
                f"{self.model_path}: not a usable ONNX model ({error}); train it again"
            ) from None
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        if self.input_name not in inputs:
            raise ClassifierError(
                f"{self.model_path}: no input '{self.input_name}' (it has {sorted(inputs)})"
            )
        width = inputs[self.input_name].shape[-1]
        if isinstance(width, int) and width != self.spec.n_features:
            raise ClassifierError(
                f"{self.model_path}: the model takes {width} features but its feature spec "
                f"({metadata_path(self.model_path).name}) makes {self.spec.n_features}"
            )
        if self.probabilities_name not in outputs:
            raise ClassifierError(
                f"{self.model_path}: no output '{self.probabilities_name}' (it has {outputs})"
            )
        self._session = session
        return session

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the ONNX Runtime session; it is made again on first use."""
        state = self.__dict__.copy()
        state["_session"] = None
        return state

    @property
    def full(self) -> bool:
        """Whether the window spans ``spec.window_s`` seconds since the last reset."""
        return self._window.full

    def reset(self) -> None:
        """Forget the frames seen (a new trial, or the animal was lost)."""
        self._window.reset()

    def update(self, keypoints: np.ndarray, time_s: float) -> np.ndarray | None:
        """Add a frame; return each behaviour's probability (``behaviours`` order), or None.

        ``keypoints`` (K, 3) in pixels; ``time_s`` increasing seconds. None until the window spans
        ``spec.window_s`` (see ``full``).
        """
        features = self._window.update(keypoints, time_s)
        if features is None or not self._window.full:
            return None
        self._input[0] = features
        session = self._open()
        result = session.run([self.probabilities_name], {self.input_name: self._input})[0]
        return np.asarray(result[0], dtype=np.float32)

    def probabilities_of(self, features: np.ndarray) -> np.ndarray:
        """Return (N, B) probabilities for (N, F) features (``features.features_of``)."""
        table = np.ascontiguousarray(features, dtype=np.float32)
        if table.ndim != 2 or table.shape[1] != self.spec.n_features:
            raise ValueError(
                f"Expected features of shape (N, {self.spec.n_features}), but got {table.shape}"
            )
        if len(table) == 0:
            return np.zeros((0, len(self.behaviours)), np.float32)
        session = self._open()
        result = session.run([self.probabilities_name], {self.input_name: table})[0]
        return np.asarray(result, dtype=np.float32)
