"""An experiment's options: its trial timing, likelihood policy and prediction, each declared once.

Each field is also a config's ``[Experiment]`` key (docs/experiments.md, Config reference): its
metadata (:func:`core.schema.setting`) gives the key's documentation, limits and checks, and the
config's section is generated from it. Every value is checked when :class:`ExperimentOptions` is
made, so a wrong one is refused where it is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deeplabstream.core.schema import check_quantity, greater_than_zero, setting
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

    Each field's ``doc`` is its key's; None is a key left empty, ``end_trial`` a rule's
    ``ENDS_TRIAL``. Times are seconds of frame time. ``min_likelihood``, ``policy`` and ``hold_s``
    are the keypoint filter offered to triggers (``Experiment.likelihood``) and used by
    ``Experiment.point``.
    """

    max_trials: int | None = setting(
        None,
        doc="The experiment finishes after this many trials. Empty: no limit.",
        minimum=1,
    )
    inter_trial_interval_s: float = setting(
        0.0,
        key="INTER_TRIAL_INTERVAL",
        doc="After a trial ends, no new trial starts before this many seconds (frame time).",
        minimum=0,
        unit="s",
    )
    trial_duration_s: float | None = setting(
        0.0,
        key="TRIAL_DURATION",
        doc="A trial ends this long after it started. 0: a trial is one moment (it ends in the "
        "update it started in; right for pulses). Empty: it lasts until a rule with "
        "`ENDS_TRIAL = true` fires (or the session ends).",
        minimum=0,
        unit="s",
        allowed="a number >= 0 s, or empty (until a rule ends the trial)",
    )
    session_duration_s: float | None = setting(
        None,
        key="SESSION_DURATION",
        doc="The experiment finishes itself this long after its start. Empty: it runs until "
        "stopped.",
        minimum=0,
        unit="s",
        check=greater_than_zero("s", or_none=True),
        allowed="a number > 0 s, or empty for none",
    )
    min_likelihood: float = setting(
        DEFAULT_MIN_LIKELIHOOD,
        doc="Keypoints with a lower likelihood are not seen. Applies to every keypoint trigger "
        "that does not set its own `MIN_LIKELIHOOD`.",
        minimum=0,
        maximum=1,
    )
    policy: Policy = setting(
        "missing",
        doc="A keypoint not seen is `missing` (a trigger keeps its state for `HOLD` seconds, "
        "then region, speed and direction triggers are false) or `hold`s its last position for "
        "up to `HOLD` seconds. Applies to every keypoint trigger that does not set its own "
        "`POLICY`.",
    )
    hold_s: float = setting(
        DEFAULT_HOLD_S,
        key="HOLD",
        doc="How long a keypoint not seen (below `MIN_LIKELIHOOD`) keeps a trigger's state "
        "(`POLICY = missing`) or its last position (`POLICY = hold`): a blink of the model is "
        "neither an exit nor a new entry. 0: every frame decides alone. Applies to every "
        "trigger that reads keypoints and does not set its own `HOLD_S`.",
        minimum=0,
        unit="s",
    )
    switch_off_at_trial_end: bool = setting(
        True,
        doc="When a trial ends, switch off the outputs it switched on (`on`, endless "
        "`pattern`). Outputs still on are always switched off on pause, finish and stop.",
    )
    prediction: PredictionSettings = field(default_factory=PredictionSettings)  # PREDICT keys
    event_keypoint: str | None = setting(
        None,
        doc="The keypoint whose measured and predicted positions `events.csv` gives for events "
        "no keypoint trigger decided (a timing trigger, a trial end's switch-off; a finish's, "
        "pause's or stop's switch-off gives none: no pose decided it). Empty: the first "
        "keypoint a trigger reads.",
    )

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
