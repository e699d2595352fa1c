"""Time triggers, in seconds of frame time since the first observation after a reset.

The start is the time of the first observation the trigger sees (of its camera, or any camera
with ``camera=None``), so a replay gives the same events as the live session.
"""

from __future__ import annotations

import math
from typing import Any

from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    check_number,
    select_camera,
)
from deeplabstream.experiments.triggers.kinds import (
    SECONDS,
    TriggerKind,
    identifier,
    number,
)


class _Clocked(Trigger):
    whole_observation = True  # without a camera it counts any observation's time

    def __init__(self, camera: str | None) -> None:
        super().__init__(camera)
        self.start_s: float | None = None

    def cameras_read(self) -> tuple[str, ...]:
        """Return the camera whose frame times it counts, or none (any observation's time)."""
        return () if self.camera is None else (self.camera,)

    def step(self, obs: AnyObservation) -> bool:
        """Return the state at the observation's time (paired: their reference time)."""
        t = obs.time_s
        if self.camera is not None:
            selected = select_camera(obs, self.camera, self._who())
            if selected is None:
                return self.state  # not this camera's frame: no news
            t = selected.time_s
        return self._at(self._elapsed(t))

    def _elapsed(self, t: float) -> float:
        if self.start_s is None or t < self.start_s:
            self.start_s = t  # the first observation, or a new replay
        return t - self.start_s

    def _at(self, elapsed: float) -> bool:
        raise NotImplementedError

    def forget(self) -> None:
        self.start_s = None


class After(_Clocked):
    """True from ``seconds`` after the first observation on (``t - start >= seconds``)."""

    kind = "after"

    def __init__(self, seconds: float, camera: str | None = None) -> None:
        super().__init__(camera)
        self.seconds = check_number("seconds", seconds, 0.0)

    def _at(self, elapsed: float) -> bool:
        return elapsed >= self.seconds

    def params(self) -> dict[str, Any]:
        return {"seconds": self.seconds}


class Every(_Clocked):
    """On for ``duration_s`` at the start of every ``period_s``, from ``phase_s`` after the start.

    True when ``e = t - start - phase_s >= 0`` and ``e mod period_s < duration_s``: on during
    ``[phase + k * period, phase + k * period + duration)`` for k = 0, 1, 2, ...
    """

    kind = "every"

    def __init__(
        self, period_s: float, duration_s: float, phase_s: float = 0.0, camera: str | None = None
    ) -> None:
        super().__init__(camera)
        self.period_s = check_number("period_s", period_s, 0.0, strict=True)
        self.duration_s = check_number("duration_s", duration_s, 0.0, strict=True)
        if self.duration_s > self.period_s:
            raise ValueError(
                f"duration_s ({duration_s!r}) must not be longer than period_s ({period_s!r})"
            )
        self.phase_s = check_number("phase_s", phase_s, 0.0)

    def _at(self, elapsed: float) -> bool:
        elapsed -= self.phase_s
        if elapsed < 0.0:
            return False
        within = elapsed - self.period_s * math.floor(elapsed / self.period_s)
        return within < self.duration_s

    def params(self) -> dict[str, Any]:
        return {"period_s": self.period_s, "duration_s": self.duration_s, "phase_s": self.phase_s}


#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "after",
        After,
        "True from `SECONDS` after the first update on.",
        {"seconds": number(required=True, unit=SECONDS), "camera": identifier()},
    ),
    TriggerKind(
        "every",
        Every,
        "On for `DURATION_S` at the start of every `PERIOD_S`, from `PHASE_S` on.",
        {
            "period_s": number(required=True, strict=True, unit=SECONDS),
            "duration_s": number(required=True, strict=True, unit=SECONDS),
            "phase_s": number(unit=SECONDS),
            "camera": identifier(),
        },
    ),
)
