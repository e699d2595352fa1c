"""A trigger registered under a name: updated once per experiment update, whoever reads it.

A trigger read by several others (a child of two combinators) is still updated once per update:
its name compares the experiment's update count (:class:`UpdateCounter`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    keypoint_of,
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

    It answers the questions an experiment asks by name (``Experiment.is_true``, ``rose``,
    ``fell``, ``animals_rose``, ``animals_fell``): its state before and after this update,
    whole and per animal. ``state_before`` and ``state_after`` are what the updates gave,
    whatever a ``reset`` did in between.
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
        self.state_before = False  # the state the latest update started from
        self.state_after = False  # the state it ended with

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
            self.state_before, self.state_after = self.state_after, self.inner.update(obs)
            return self.state_after
        return self.state

    def forget(self) -> None:
        """Reset the wrapped trigger (not a child: the checks look through it by attribute)."""
        self.inner.reset()
        self._seen = -1

    # -- the experiment's questions about this update ---------------------------------------

    def is_true(self, animal: int | None = None) -> bool:
        """Return the state after this update (of ``animal``, if given).

        ``animal``: that animal's own state for a trigger with ``ANIMAL = any`` or ``each``;
        for another trigger, its state if it reads that animal (animal 1 when it names none).
        """
        if animal is None:
            return self.state_after
        states = self.animal_states()
        if states is not None:
            return states.get(animal, False)
        return self.state_after and animal in self.animals_named

    def rose(self, animal: int | None = None) -> bool:
        """Whether it went from False to True in this update.

        For an ``ANIMAL = each`` trigger, whether some animal's own state rose (animal
        ``animal``'s, if given). ``ANIMAL = any``: its one state, or animal ``animal``'s own.
        Another trigger with ``animal``: its edge, if it reads that animal.
        """
        if animal is None and not self.edges_per_animal:
            return self.state_after and not self.state_before
        rose = self.animals_rose()
        return bool(rose) if animal is None else animal in rose

    def fell(self, animal: int | None = None) -> bool:
        """Whether it went from True to False in this update (as :meth:`rose`)."""
        if animal is None and not self.edges_per_animal:
            return self.state_before and not self.state_after
        fell = self.animals_fell()
        return bool(fell) if animal is None else animal in fell

    def state_changed(self) -> bool:
        """Whether its whole state changed in this update."""
        return self.state_before != self.state_after

    def animals_rose(self) -> tuple[int, ...]:
        """Return the animals whose state rose in this update, in order.

        For ``ANIMAL = any`` and ``each``, each animal's own edge; for another trigger that rose,
        the animals it reads (``ANIMAL = N``: N; a social trigger: its two; else animal 1).
        """
        return self._animals_changed(rising=True)

    def animals_fell(self) -> tuple[int, ...]:
        """Return the animals whose state fell in this update (as :meth:`animals_rose`)."""
        return self._animals_changed(rising=False)

    def changed_animals(self) -> tuple[int, ...]:
        """Return the animals whose state rose in this update, else those whose state fell."""
        return self.animals_rose() or self.animals_fell()

    @cached_property
    def animals_named(self) -> tuple[int, ...]:
        """The animals it reads when it has no per-animal states (none named: animal 1)."""
        return animals_of(self) or (1,)

    @cached_property
    def logged_keypoint(self) -> str | None:
        """The keypoint its events name (None: it reads none)."""
        return keypoint_of(self)

    def _animals_changed(self, rising: bool) -> tuple[int, ...]:
        if self.animal_states() is not None:  # the wrapped AnimalsTrigger's own edges
            return tuple(self.rose_animals() if rising else self.fell_animals())
        return self.animals_named if self.state_after == rising != self.state_before else ()

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
