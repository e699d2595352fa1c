"""Behaviour classifiers as triggers: the stimulus follows a behaviour, not a region.

Its design: docs/experiments-internals.md (`experiments.triggers.classifier`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.behaviour.classifier import BehaviourClassifier
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger, check_number
from deeplabstream.experiments.triggers.geometry import Label, Shape
from deeplabstream.experiments.triggers.kinds import (
    SECONDS,
    TriggerKind,
    file_path,
    identifier,
    number,
)


class BoutFilter:
    """A behaviour's probability over time -> whether a long enough bout is going on.

    Parameters
    ----------
    threshold
        A bout candidate starts when the probability is at least this.
    release
        ... and ends when it is below this (at most ``threshold``; None: ``threshold``).
    min_bout_s
        The candidate must last this long (seconds of frame time) before the filter is true.
    """

    def __init__(self, threshold: float, release: float | None = None, min_bout_s: float = 0.0):
        self.threshold = check_number("threshold", threshold, 0.0)
        if self.threshold > 1.0:
            raise ValueError(f"threshold is a probability, at most 1, not {threshold!r}")
        self.release = self.threshold if release is None else check_number("release", release, 0.0)
        if self.release > self.threshold:
            raise ValueError(
                f"release ({self.release:g}) must not be above threshold ({self.threshold:g}): "
                "a bout ends when the probability falls below release"
            )
        self.min_bout_s = check_number("min_bout_s", min_bout_s, 0.0)
        self.bout_start_s: float | None = None  # when the current candidate started

    def reset(self) -> None:
        """Forget the current bout."""
        self.bout_start_s = None

    def update(self, probability: float | None, time_s: float) -> bool:
        """Feed the probability at ``time_s`` (None or NaN: unknown, which ends a bout)."""
        known = probability is not None and not math.isnan(probability)
        if self.bout_start_s is None:
            if known and probability >= self.threshold:  # type: ignore[operator]
                self.bout_start_s = time_s
        elif not known or probability < self.release:  # type: ignore[operator]
            self.bout_start_s = None
        return self.bout_start_s is not None and time_s - self.bout_start_s >= self.min_bout_s


def bout_decisions(probabilities: np.ndarray, times_s: np.ndarray, bouts: BoutFilter) -> np.ndarray:
    """Return the filter's decision at each time (the offline twin of the live trigger)."""
    bouts.reset()
    return np.array(
        [bouts.update(float(p), float(t)) for p, t in zip(probabilities, times_s, strict=True)],
        dtype=bool,
    )


class ClassifierTrigger(Trigger):
    """True while the classifier has seen ``behaviour`` for at least ``min_bout_s`` seconds.

    Parameters
    ----------
    model
        The classifier's ONNX file (its feature spec ``<model>.json`` beside it).
    behaviour
        One of the classifier's behaviours.
    threshold, release, min_bout_s
        See :class:`BoutFilter`.
    pixels_per_mm
        The calibration of the pose's pixels; None: the camera's ``PIXELS_PER_MM``, else the
        one the classifier was trained with.
    camera
        Which camera's poses feed it (see :mod:`experiments.triggers.base`).
    """

    kind = "classifier"

    def __init__(
        self,
        model: str | Path,
        behaviour: str,
        threshold: float = 0.5,
        release: float | None = None,
        min_bout_s: float = 0.0,
        pixels_per_mm: float | None = None,
        camera: str | None = None,
    ) -> None:
        super().__init__(camera)
        self.model = Path(model)
        self.pixels_per_mm = (
            None
            if pixels_per_mm is None
            else check_number("pixels_per_mm", pixels_per_mm, 0.0, True)
        )
        # Messages in the factory's "parameter 'x' = value" form: a config names the key.
        try:
            self.classifier = BehaviourClassifier.load(self.model, self.pixels_per_mm)
        except (OSError, ValueError) as error:
            raise ValueError(f"parameter 'model' = {str(model)!r} is not valid: {error}") from None
        if behaviour not in self.classifier.behaviours:
            raise ValueError(
                f"parameter 'behaviour' = {behaviour!r} is not valid: the classifier "
                f"{self.model.name} knows {', '.join(self.classifier.behaviours)}"
            )
        self.behaviour = behaviour
        self._column = self.classifier.behaviours.index(behaviour)
        self.bouts = BoutFilter(threshold, release, min_bout_s)
        self._calibration: float | None = self.pixels_per_mm
        self._order: tuple[tuple[str, ...], np.ndarray] | None = None
        self._last_time_s = -math.inf
        self.probabilities: np.ndarray | None = None  # the last update's, per behaviour
        self._position: tuple[float, float] | None = None

    def step(self, obs: Observation) -> bool:
        if obs.time_s < self._last_time_s:  # time went backwards: a new replay
            self.forget()
        self._last_time_s = obs.time_s
        self._follow_calibration(obs.pixels_per_mm)
        keypoints = obs.keypoints[self._indices(obs.names)]
        self.probabilities = self.classifier.update(keypoints, obs.time_s)
        self._position = _label_position(keypoints)
        probability = (
            None if self.probabilities is None else float(self.probabilities[self._column])
        )
        return self.bouts.update(probability, obs.time_s)

    def _follow_calibration(self, camera_pixels_per_mm: float | None) -> None:
        """Use the camera's PIXELS_PER_MM when the config gives none (reloads on a change)."""
        if self.pixels_per_mm is not None or camera_pixels_per_mm == self._calibration:
            return
        self._calibration = camera_pixels_per_mm
        self.classifier = BehaviourClassifier.load(self.model, camera_pixels_per_mm)
        self.forget()

    def _indices(self, names: tuple[str, ...]) -> np.ndarray:
        """Return the rows of the pose the classifier reads, in its order (cached per model)."""
        if self._order is None or self._order[0] != names:
            missing = [name for name in self.classifier.keypoints if name not in names]
            if missing:
                raise ValueError(
                    f"the classifier {self.model.name} needs keypoint(s) {', '.join(missing)}, "
                    f"which the pose model does not report ({', '.join(names)})"
                )
            order = np.array([names.index(name) for name in self.classifier.keypoints])
            self._order = (names, order)
        return self._order[1]

    def forget(self) -> None:
        self.classifier.reset()
        self.bouts.reset()
        self._last_time_s = -math.inf
        self.probabilities = None
        self._position = None

    def current(self) -> tuple[str, float] | None:
        """Return the most probable behaviour now and its probability (None before any)."""
        if self.probabilities is None:
            return None
        best = int(np.argmax(self.probabilities))
        return self.classifier.behaviours[best], float(self.probabilities[best])

    def measurement(self) -> str:
        """``freezing p=0.93`` (this trigger's behaviour), for the event log."""
        if self.probabilities is None:
            return f"{self.behaviour} p=unknown"
        return f"{self.behaviour} p={self.probabilities[self._column]:.2f}"

    def shapes(self) -> list[Shape]:
        """Return the current behaviour and its probability, to write beside the animal."""
        now = self.current()
        if now is None or self._position is None:
            return []
        return [Label(*self._position, f"{now[0]} {now[1]:.2f}")]

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoints the classifier was trained on (its feature spec names them)."""
        return tuple(self.classifier.keypoints)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": str(self.model),
            "behaviour": self.behaviour,
            "threshold": self.bouts.threshold,
            "release": self.bouts.release,
            "min_bout_s": self.bouts.min_bout_s,
        }
        if self.pixels_per_mm is not None:
            params["pixels_per_mm"] = self.pixels_per_mm
        return params


def _label_position(keypoints: np.ndarray) -> tuple[float, float] | None:
    """Return a point just right of the visible keypoints (None when none is visible)."""
    seen = keypoints[np.isfinite(keypoints[:, :2]).all(axis=1)]
    if len(seen) == 0:
        return None
    return float(seen[:, 0].max()) + 10.0, float(seen[:, 1].min())


#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "classifier",
        ClassifierTrigger,
        "A behaviour classifier (`MODEL`, made by `deeplabstream-train-behaviour`) has seen "
        "`BEHAVIOUR` with probability >= `THRESHOLD` (until it falls below `RELEASE`) for "
        "`MIN_BOUT_S` seconds.",
        {
            "model": file_path(required=True),
            "behaviour": identifier(required=True),
            "threshold": number(maximum=1.0),
            "release": number(maximum=1.0),
            "min_bout_s": number(unit=SECONDS),
            "pixels_per_mm": number(strict=True, unit="px/mm; default: the camera's PIXELS_PER_MM"),
            "camera": identifier(),
        },
    ),
)
