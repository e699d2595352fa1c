"""A trial and the experiment's states, as a lab's experiment reads them (``self.trial``...).

The engine's trial machine keeps them (:class:`~experiments.engine.runtime.TrialMachine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ExperimentState = Literal["idle", "waiting", "in_trial", "inter_trial", "paused", "finished"]
STATES: tuple[str, ...] = ("idle", "waiting", "in_trial", "inter_trial", "paused", "finished")
EPSILON_S = 1e-9
"""Tolerance of duration comparisons (seconds)."""

Output = tuple[str, int]
"""A device's channel: ``(device, channel)``."""


@dataclass
class Trial:
    """One trial: when it started and ended, what started it and why it ended."""

    index: int
    cause: str
    start_s: float
    end_s: float | None = None
    end_reason: str = ""

    @property
    def duration_s(self) -> float | None:
        """How long it lasted (None while running)."""
        return None if self.end_s is None else self.end_s - self.start_s

    def as_dict(self) -> dict[str, Any]:
        """For session.json."""
        return {
            "index": self.index,
            "cause": self.cause,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "end_reason": self.end_reason,
        }
