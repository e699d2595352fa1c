"""A trigger registered under a name: updated once per experiment update, whoever reads it.

A trigger read by several others (a child of two combinators) is still updated once per update:
its name compares the experiment's update count (:class:`UpdateCounter`).
"""

from __future__ import annotations

from typing import Any

from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    keypoints_of,
)
from deeplabstream.experiments.triggers.geometry import Shape


class UpdateCounter:
    """The update count that named triggers compare against (updated once per update)."""

    __slots__ = ("tick",)

    def __init__(self) -> None:
        self.tick = 0


class NamedTrigger(Trigger):
    """A trigger registered under a name: updated at most once per experiment update.

    A trigger read by several others (a child of two combinators, a rule's condition that is also
    a combinator's child) would otherwise be updated twice per observation, which corrupts its
    memory (an ``entered`` event would be swallowed). Attribute reads that the wrapper does not
    answer go to the wrapped trigger (``named.last_speed``).
    """

    whole_observation = True  # the wrapped trigger chooses its camera

    def __init__(self, name: str, inner: Trigger, counter: UpdateCounter) -> None:
        super().__init__(inner.camera)
        self.name = name
        self.inner = inner
        self.kind = inner.kind  # type: ignore[misc]
        self.is_event = inner.is_event
        self.edges_per_animal = inner.edges_per_animal
        self._counter = counter
        self._seen = -1

    def animal_states(self) -> dict[int, bool] | None:
        """Return the wrapped trigger's state per animal (None: it has none)."""
        return self.inner.animal_states()

    def cameras_read(self) -> tuple[str, ...] | None:
        """Return the wrapped trigger's cameras."""
        return self.inner.cameras_read()

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoints the registered trigger (and its children) read."""
        return keypoints_of(self.inner)

    def animals_read(self) -> tuple[int, ...]:
        """Return the animals its trigger (and the trigger's children) read."""
        return animals_of(self.inner)

    def step(self, obs: AnyObservation) -> bool:
        """Return the wrapped trigger's state, updated on the first call of an experiment update."""
        if self._seen != self._counter.tick:
            self._seen = self._counter.tick
            return self.inner.update(obs)
        return self.state

    def forget(self) -> None:
        """Reset the wrapped trigger (not a child: the checks look through it by attribute)."""
        self.inner.reset()
        self._seen = -1

    def describe(self) -> dict[str, Any]:
        """Return the wrapped trigger's description."""
        return self.inner.describe()

    def measurement(self) -> str:
        """Return the wrapped trigger's last measurement."""
        return self.inner.measurement()

    def shapes(self) -> list[Shape]:
        """Return the wrapped trigger's shapes."""
        return self.inner.shapes()

    def __getattr__(self, attribute: str) -> Any:
        """Anything else: the wrapped trigger's attribute."""
        if attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def __repr__(self) -> str:
        """Return the name and the wrapped trigger."""
        return f"{self.name}={self.inner!r}"
