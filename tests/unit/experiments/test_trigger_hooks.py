"""A trigger kind's one override point (step, with params, forget); old names refused or warned."""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from typing import Any

import numpy as np
import pytest

from deeplabstream.core.plugins import plugin_notices
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


def _built_in_trigger_classes() -> list[type[Trigger]]:
    """Every trigger class the package ships (each module of experiments/triggers imported)."""
    import deeplabstream.experiments.triggers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    found, todo = [], [Trigger]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("deeplabstream."):
            found.append(cls)
    return found


def test_no_built_in_trigger_writes_update_or_reset_only_step() -> None:
    """One override point: every shipped kind decides in step; update and reset are the base's."""
    classes = _built_in_trigger_classes()
    names = {cls.__name__ for cls in classes}
    assert {"All", "Rising", "Debounce", "ForAnimal", "EachAnimal", "NamedTrigger"} <= names
    assert {"After", "HeightAbove", "DistanceBelow", "FilteredTrigger", "Region"} <= names
    overriding = [
        f"{cls.__module__}.{cls.__qualname__}.{method}"
        for cls in classes
        if cls is not Trigger
        for method in ("update", "reset")
        if method in vars(cls)
    ]
    assert overriding == []


def _old_combinator() -> type[Trigger]:
    """A lab's combinator as the docs before release 0.8.0 let one be written: update, reset."""

    class Both(Trigger):
        kind = "lab_both"

        def __init__(self, *children: Trigger) -> None:
            super().__init__()
            self.children, self.updates = children, 0

        def cameras_read(self) -> tuple[str, ...]:
            return ()

        def update(self, obs: Any) -> bool:  # type: ignore[misc]  # final since 0.8.0
            self.updates += 1
            self.state = all([child.update(obs) for child in self.children])
            return self.state

        def reset(self) -> None:  # type: ignore[misc]  # final since 0.8.0
            for child in self.children:
                child.reset()
            self.updates = 0
            super().reset()

    return Both


def test_a_kind_overriding_update_and_reset_works_warned_until_0_9_0() -> None:
    """Deprecated in 0.8.0: said once (console, session.json) and as a DeprecationWarning."""
    said = (
        r"trigger class _old_combinator\.<locals>\.Both \(.*test_trigger_hooks\) overrides "
        r"update\(\), reset\(\), which a trigger's callers call and no kind writes since "
        r"release 0\.8\.0: write step\(obs\), "
        r"forget\(\) instead .*It works until release 0\.9\.0, which removes it"
    )
    with pytest.warns(DeprecationWarning, match=said):
        both_class: Any = _old_combinator()
    assert any("Both" in text and "0.9.0" in text for text in plugin_notices())
    both: Any = both_class(CountLeft(50.0), Region(Circle(30.0, 10.0, 25.0), hold_s=0.0))
    xs = [10, 20, 80, 30, 40]
    states = [both.update(_observation(i / 10, x)) for i, x in enumerate(xs)]
    assert states == [False, True, False, False, True]  # CountLeft's count and the region's side
    assert both.updates == 5
    both.reset()
    assert both.updates == 0 and both.children[0].count == 0
    assert both.state is False


def test_a_kind_with_only_the_hooks_is_not_warned() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)

        class Quiet(Trigger):
            kind = "quiet"

            def step(self, obs: Observation) -> bool:
                return True

    assert Quiet().update(_observation(0.0, 10)) is True
