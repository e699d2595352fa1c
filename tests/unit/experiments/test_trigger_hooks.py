"""A trigger kind's public hooks (step, params, forget), and kinds written with the old names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger


def _observation(t: float, x: float) -> Observation:
    keypoints = np.array([[x, 10.0, 0.99]], dtype=np.float64)
    return Observation(time_s=t, camera="arena", frame_index=round(t * 10), keypoints=keypoints,
                       names=("nose",))  # fmt: skip


class CountLeft(Trigger):
    """Written with the public hooks: true from the second observation left of x."""

    kind = "count_left"

    def __init__(self, x: float) -> None:
        super().__init__()
        self.x, self.count = x, 0

    def keypoints_read(self) -> tuple[str, ...]:
        return ("nose",)

    def step(self, obs: Observation) -> bool:
        point = obs.point("nose")
        self.count = self.count + 1 if point is not None and point[0] < self.x else 0
        return self.count >= 2

    def forget(self) -> None:
        self.count = 0

    def params(self) -> dict[str, Any]:
        return {"x": self.x}


def test_a_kind_with_the_public_hooks_updates_resets_and_describes_itself() -> None:
    trigger = CountLeft(50.0)
    states = [trigger.update(_observation(i / 10, x)) for i, x in enumerate([10, 20, 80, 30])]
    assert states == [False, True, False, False]
    assert trigger.count == 1
    trigger.reset()
    assert trigger.count == 0 and trigger.state is False
    assert trigger.describe() == {"kind": "count_left", "x": 50.0}


def test_a_kind_written_with_the_underscore_hooks_still_works_and_is_warned() -> None:
    said = r"_step, _params, _reset, the underscore hooks deprecated in release 0.5.0: write "
    said += r"step\(obs\)"
    with pytest.warns(DeprecationWarning, match=said + r".*until release 0.8.0"):

        class OldCountLeft(Trigger):
            kind = "old_count_left"

            def __init__(self, x: float) -> None:
                super().__init__()
                self.x, self.count = x, 0

            def _step(self, obs: Observation) -> bool:
                point = obs.point("nose")
                self.count = self.count + 1 if point is not None and point[0] < self.x else 0
                return self.count >= 2

            def _params(self) -> dict[str, Any]:
                return {"x": self.x}

            def _reset(self) -> None:
                self.count = 0

    trigger = OldCountLeft(50.0)
    assert [trigger.update(_observation(i / 10, 10)) for i in range(3)] == [False, True, True]
    trigger.reset()
    assert trigger.count == 0
    assert trigger.describe() == {"kind": "old_count_left", "x": 50.0}


def test_a_kind_without_step_says_what_to_write() -> None:
    class NoStep(Trigger):
        kind = "no_step"

    with pytest.raises(NotImplementedError, match=r"NoStep must define step\(obs\)"):
        NoStep().update(_observation(0.0, 10))
