"""A trigger kind's public hooks (step, params, forget); kinds with the old names refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region


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


def test_a_kind_written_with_the_underscore_hooks_is_refused_saying_what_to_write() -> None:
    """Release 0.8.0 removed release 0.4.0's names (deprecated since 0.5.0)."""
    said = r"defines _step, _params, _reset, release 0.4.0's hook names, which release 0.8.0 "
    said += r"removed: write step\(obs\), params\(\), forget\(\) instead"
    with pytest.raises(TypeError, match=said):

        class OldCountLeft(Trigger):
            kind = "old_count_left"

            def _step(self, obs: Observation) -> bool:
                return True

            def _params(self) -> dict[str, Any]:
                return {}

            def _reset(self) -> None:
                pass


def test_a_kind_without_step_says_what_to_write() -> None:
    class NoStep(Trigger):
        kind = "no_step"

    with pytest.raises(NotImplementedError, match=r"NoStep must define step\(obs\)"):
        NoStep().update(_observation(0.0, 10))


class LeftOfCircle(Region):
    """A lab's kind over a built-in one, written with the public hooks: inside, counted."""

    kind = "left_of_circle"

    def __init__(self) -> None:
        self.visits = 0
        super().__init__(Circle(30.0, 10.0, 25.0), hold_s=0.0)

    def step(self, obs: Observation) -> bool:
        inside = super().step(obs)
        self.visits += inside
        return inside

    def forget(self) -> None:
        super().forget()
        self.visits = 0

    def params(self) -> dict[str, Any]:
        return {**super().params(), "counted": True}


def _counts_the_visits(trigger: Any) -> None:
    """The built-in region's decisions, with the lab's count, parameter and reset on top."""
    states = [trigger.update(_observation(i / 10, x)) for i, x in enumerate([10, 20, 80, 30])]
    assert states == [True, True, False, True] and trigger.visits == 3
    assert trigger.describe()["counted"] is True and trigger.describe()["keypoint"] == "nose"
    trigger.reset()
    assert trigger.visits == 0 and trigger.last_point is None


def test_a_kind_over_a_built_in_kind_overrides_its_public_hooks() -> None:
    _counts_the_visits(LeftOfCircle())


def test_an_old_kind_over_a_built_in_kind_is_refused() -> None:
    with pytest.raises(TypeError, match=r"OldLeftOfCircle .* defines _step"):

        class OldLeftOfCircle(Region):
            kind = "old_left_of_circle"

            def _step(self, obs: Observation) -> bool:
                return super().step(obs)
