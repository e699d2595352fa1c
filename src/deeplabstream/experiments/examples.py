"""Example experiments written in Python: logic a config file cannot express.

Load one by name (``"AlternatingReward"``), or copy this file into the lab's ``experiments/``
folder and name the copy by its stem; docs/experiments.md ("Writing an experiment class").
"""

from __future__ import annotations

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.triggers import Circle, Region
from deeplabstream.experiments.triggers.base import AnyObservation

LEFT_ZONE = Circle(160, 240, 60)
RIGHT_ZONE = Circle(480, 240, 60)


class AlternatingReward(Experiment):
    """Spatial alternation: water when the nose enters a zone other than the last one rewarded.

    Two reward zones, one valve channel each. Entering a zone is rewarded (a 50 ms pulse) unless
    that zone was also the one rewarded last: the animal must alternate. Each reward is a trial;
    at most 100 trials, 2 s apart; the session ends after 30 minutes.

    Parameters
    ----------
    left, right
        The two zones, in frame pixels (default: the simulated arena's left and right thirds).
    valve
        The stimulation device with the valves; channel 0 waters the left zone, 1 the right.
    reward_s
        How long a valve opens.
    """

    description = "Water for alternating between two zones"

    def __init__(
        self,
        left: Circle = LEFT_ZONE,
        right: Circle = RIGHT_ZONE,
        valve: str = "water_valve",
        reward_s: float = 0.05,
    ) -> None:
        super().__init__(
            max_trials=100,
            inter_trial_interval_s=2.0,
            trial_duration_s=0.0,  # a trial is the moment of the reward
            session_duration_s=30 * 60.0,
        )
        # Triggers are updated by the experiment once per update; their changes are logged.
        self.add_trigger("left", Region(left, "inside", "nose", **self.likelihood))
        self.add_trigger("right", Region(right, "inside", "nose", **self.likelihood))
        self.rewards = {
            "left": Action.pulse(valve, 0, reward_s),
            "right": Action.pulse(valve, 1, reward_s),
        }
        self.last_rewarded: str | None = None

    def on_update(self, obs: AnyObservation, t: float) -> list[Action]:
        """Reward an entry into the zone not rewarded last (when a trial can start)."""
        for zone in ("left", "right"):
            if self.rose(zone) and zone != self.last_rewarded and self.start_trial(zone):
                self.last_rewarded = zone
                return [self.rewards[zone].with_reason(f"{zone} entry, alternating")]
        return []
