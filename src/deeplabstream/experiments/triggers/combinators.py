"""Combinators: triggers made of triggers.

Its design: docs/experiments-internals.md (`experiments.triggers.combinators`).
"""

from __future__ import annotations

from typing import Any

from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    check_number,
    observation_time,
)
from deeplabstream.experiments.triggers.geometry import Shape
from deeplabstream.experiments.triggers.kinds import SECONDS, TriggerKind, number


class _Combinator(Trigger):
    whole_observation = True  # each child takes the observation and chooses its camera

    def cameras_read(self) -> tuple[str, ...]:
        """Return no camera: the children read theirs (each is checked on its own)."""
        return ()

    def __init__(self, *children: Trigger) -> None:
        super().__init__(None)
        for child in children:
            if not isinstance(child, Trigger):
                raise ValueError(f"{self.kind} combines triggers, not {child!r}")
        self.children: tuple[Trigger, ...] = children

    def describe(self) -> dict[str, Any]:
        """Return the kind, parameters and the children's descriptions (under ``"children"``)."""
        return {**super().describe(), "children": [c.describe() for c in self.children]}

    def shapes(self) -> list[Shape]:
        """Return the children's shapes."""
        return [shape for child in self.children for shape in child.shapes()]


class All(_Combinator):
    """True while every child is True (True with no children)."""

    kind = "all"

    def step(self, obs: AnyObservation) -> bool:
        """Update every child; True when all are."""
        return all([child.update(obs) for child in self.children])  # every child, always


class AnyOf(_Combinator):
    """True while at least one child is True (False with no children).

    Named ``AnyOf`` so that it does not shadow :data:`typing.Any`; configs still write ``any``.
    """

    kind = "any"

    def step(self, obs: AnyObservation) -> bool:
        """Update every child; True when any is."""
        return any([child.update(obs) for child in self.children])  # every child, always


And = All
Or = AnyOf


class _Single(_Combinator):
    def __init__(self, child: Trigger) -> None:
        super().__init__(child)
        self.child = child


class Not(_Single):
    """True while the child is False."""

    kind = "not"

    def step(self, obs: AnyObservation) -> bool:
        """Update the child; return its negation."""
        return not self.child.update(obs)


class Rising(_Single):
    """An event: True only on the observation where the child goes from False to True.

    The child counts as False before the first observation, so a child True on the very first
    observation is a rising edge.
    """

    kind = "rising"
    is_event = True

    def __init__(self, child: Trigger) -> None:
        super().__init__(child)
        self._before = False

    def step(self, obs: AnyObservation) -> bool:
        """Update the child; True on its False -> True transition."""
        now = self.child.update(obs)
        rose = now and not self._before
        self._before = now
        return rose

    def forget(self) -> None:
        self._before = False


class Debounce(_Single):
    """The child's state, changed only after the child has held the new state long enough.

    Turns True once the child has been True continuously for ``on_s`` seconds (of frame time,
    from the first observation it was True), and False once it has been False continuously for
    ``off_s``. With ``on_s = off_s = 0`` it equals the child.
    """

    kind = "debounce"

    def __init__(self, child: Trigger, on_s: float = 0.0, off_s: float = 0.0) -> None:
        super().__init__(child)
        self.on_s = check_number("on_s", on_s, 0.0)
        self.off_s = check_number("off_s", off_s, 0.0)
        self._since: float | None = None  # when the child began to differ from our state

    def step(self, obs: AnyObservation) -> bool:
        """Update the child; change state once the child has differed for on_s / off_s."""
        now = self.child.update(obs)
        t = observation_time(obs)
        if now == self.state:
            self._since = None
            return self.state
        if self._since is None or t < self._since:
            self._since = t
        if t - self._since >= (self.on_s if now else self.off_s):
            self._since = None
            return now
        return self.state

    def forget(self) -> None:
        self._since = None

    def params(self) -> dict[str, Any]:
        return {"on_s": self.on_s, "off_s": self.off_s}


_MANY = (1, None)  # at least one child
_ONE = (1, 1)

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind("all", All, "True while every trigger in `OF` is.", children=_MANY),
    TriggerKind("and", All, "The same as `all`.", children=_MANY),
    TriggerKind("any", AnyOf, "True while at least one trigger in `OF` is.", children=_MANY),
    TriggerKind("or", AnyOf, "The same as `any`.", children=_MANY),
    TriggerKind("not", Not, "True while the one trigger in `OF` is false.", children=_ONE),
    TriggerKind(
        "rising",
        Rising,
        "An event: true in the one update where the trigger in `OF` becomes true.",
        children=_ONE,
    ),
    TriggerKind(
        "debounce",
        Debounce,
        "The trigger in `OF`, changing state only once the change has lasted `ON_S` (to true) "
        "or `OFF_S` (to false) seconds.",
        {"on_s": number(unit=SECONDS), "off_s": number(unit=SECONDS)},
        children=_ONE,
    ),
)
