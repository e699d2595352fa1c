"""An experiment's options: its trial timing, likelihood policy and prediction, each default once.

A config's ``[Experiment]`` keys name the same options (docs/experiments.md, Config reference).
Every value is checked when :class:`ExperimentOptions` is made, so a wrong one is refused where
it is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deeplabstream.core.schema import check_quantity
from deeplabstream.experiments.observation import (
    DEFAULT_HOLD_S,
    DEFAULT_MIN_LIKELIHOOD,
    KeypointFilter,
    Policy,
)
from deeplabstream.experiments.prediction import PredictionSettings


@dataclass(frozen=True)
class ExperimentOptions:
    """How an experiment runs its trials and reads keypoints (see ``Experiment.__init__``).

    Times are seconds of frame time. ``trial_duration_s`` 0: a trial is one moment (it ends in the
    update it started in); None: until ``end_trial``. ``max_trials`` and ``session_duration_s``
    None: no limit. ``min_likelihood``, ``policy`` and ``hold_s`` are the keypoint filter offered
    to triggers (``Experiment.likelihood``) and used by ``Experiment.point``; ``event_keypoint`` is
    the keypoint ``events.csv`` gives positions of for events no keypoint trigger decided.
    """

    max_trials: int | None = None
    inter_trial_interval_s: float = 0.0
    trial_duration_s: float | None = 0.0
    session_duration_s: float | None = None
    min_likelihood: float = DEFAULT_MIN_LIKELIHOOD
    policy: Policy = "missing"
    hold_s: float = DEFAULT_HOLD_S
    switch_off_at_trial_end: bool = True
    prediction: PredictionSettings = field(default_factory=PredictionSettings)
    event_keypoint: str | None = None

    def __post_init__(self) -> None:
        """Check every value; ValueError names the option and what it must be."""
        check_max_trials(self.max_trials)
        for name, allow_none, positive in (
            ("inter_trial_interval_s", False, False),
            ("trial_duration_s", True, False),
            ("session_duration_s", True, True),
        ):
            value = getattr(self, name)
            if value is None and not allow_none:
                raise ValueError(f"{name} must be a number of seconds, not None")
            if value is not None:
                seconds = check_quantity(name, value, "s", 0.0, strict=positive)
                object.__setattr__(self, name, seconds)
        object.__setattr__(self, "switch_off_at_trial_end", bool(self.switch_off_at_trial_end))
        KeypointFilter(self.min_likelihood, self.policy, self.hold_s)  # checks the three
        event_keypoint = self.event_keypoint
        if event_keypoint is not None and not (isinstance(event_keypoint, str) and event_keypoint):
            raise ValueError(f"event_keypoint must be a keypoint name, not {event_keypoint!r}")

    @classmethod
    def of(
        cls, prediction: PredictionSettings | str | None = None, **options: Any
    ) -> ExperimentOptions:
        """Return the options, ``prediction`` also given as a method name or None (off)."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise TypeError(f"unknown experiment option(s) {', '.join(unknown)}; options: {known}")
        if isinstance(prediction, str):
            prediction = PredictionSettings(prediction)  # type: ignore[arg-type]
        return cls(prediction=prediction or PredictionSettings(), **options)

    def keypoint_filter(self) -> KeypointFilter:
        """Return the likelihood threshold, policy and hold as a keypoint filter."""
        return KeypointFilter(self.min_likelihood, self.policy, self.hold_s)

    def trial_timing(self) -> dict[str, Any]:
        """Return the trial machine's options, for session.json."""
        return {
            "max_trials": self.max_trials,
            "inter_trial_interval_s": self.inter_trial_interval_s,
            "trial_duration_s": self.trial_duration_s,
            "session_duration_s": self.session_duration_s,
            "switch_off_at_trial_end": self.switch_off_at_trial_end,
        }


def check_max_trials(value: int | None) -> int | None:
    """Return ``max_trials``: a whole number >= 1, or None (no limit)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_trials must be a whole number >= 1 or None, not {value!r}")
    return value
