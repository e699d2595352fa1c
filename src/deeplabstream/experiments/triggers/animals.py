"""Rules for several animals: a one-animal trigger for one chosen animal, any animal, each animal.

Its design: docs/experiments-internals.md (`experiments.triggers.animals`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    FilteredTrigger,
    Trigger,
    WrappingTrigger,
    select_camera,
)

ANIMAL_CHOICES: tuple[str, ...] = ("any", "each")
"""The words a config's ``ANIMAL`` takes besides an animal number."""

TriggerMaker = Callable[[], Trigger]


class ForAnimal(WrappingTrigger):
    """Any one-animal trigger, fed the keypoints of animal ``animal`` (numbered from 1).

    Parameters
    ----------
    trigger
        The trigger to feed (not a combinator: give each child its own animal).
    animal
        The animal, numbered from 1 (:meth:`Observation.for_animal`).
    min_identity_confidence
        The animal counts as not seen while its identity confidence is lower (0: never).

    Only the cameras ``trigger`` reads are seen as that animal; other cameras pass unchanged.
    :meth:`describe` is the trigger's own, plus ``"animal"``, so the factory rebuilds it.

    Raises
    ------
    ValueError
        For an animal number that is not a whole number >= 1, an animal >= 2 with predicted
        positions (forward prediction follows animal 1 only), and, on an update, an animal the
        observation's model does not report.
    """

    def __init__(self, trigger: Trigger, animal: int, min_identity_confidence: float = 0.0) -> None:
        check_one_animal_trigger(trigger, "ForAnimal")
        if isinstance(animal, bool) or not isinstance(animal, int) or animal < 1:
            raise ValueError(
                f"animal must be a whole number >= 1 (animals are numbered from 1), not {animal!r}"
            )
        if animal != 1 and getattr(trigger, "predicted", False):
            raise ValueError(
                f"animal {animal} with predicted = true: forward prediction follows animal 1 "
                "only; set PREDICTED = false (or ANIMAL = 1)"
            )
        super().__init__(trigger)
        self.animal = animal
        self.min_identity_confidence = check_confidence(min_identity_confidence)

    def animals_read(self) -> tuple[int, ...]:
        """Return the one animal it reads."""
        return (self.animal,)

    def step(self, obs: AnyObservation) -> bool:
        """Feed the wrapped trigger this observation as seen for the animal; return its state."""
        return self.trigger.update(self._view(obs))

    def _view(self, obs: AnyObservation) -> AnyObservation:
        read = self.trigger.cameras_read()
        if isinstance(obs, Observation):
            return obs if read and obs.camera not in read else self._as_animal(obs)
        return Observations(
            obs.time_s,
            {
                camera: one if read and camera not in read else self._as_animal(one)
                for camera, one in obs.by_camera.items()
            },
        )

    def _as_animal(self, obs: Observation) -> Observation:
        try:
            view = obs.for_animal(self.animal, self.min_identity_confidence)
        except ValueError as error:
            raise ValueError(f"{self._who()}: {error}") from None
        if self.min_identity_confidence > 0 and not (
            obs.identity_confidence_of(self.animal) >= self.min_identity_confidence
        ):
            self.trigger.end_hold()  # a doubtful identity is decided at once, never bridged
        return view

    def describe(self) -> dict[str, Any]:
        """Return the wrapped trigger's description with ``"animal"`` (and its confidence)."""
        return _described_for(self.trigger, self.animal, self.min_identity_confidence)

    def _who(self) -> str:
        return f"trigger {self.kind!r} (animal {self.animal})"


def _described_for(
    trigger: Trigger, animal: int | str, min_identity_confidence: float
) -> dict[str, Any]:
    """Return ``trigger``'s description with its ``animal`` (and its identity confidence)."""
    described = {**trigger.describe(), "animal": animal}
    if min_identity_confidence:
        described["min_identity_confidence"] = min_identity_confidence
    return described


def check_one_animal_trigger(trigger: Trigger, who: str) -> None:
    """ValueError unless ``trigger`` reads one animal (not a combinator, not a social trigger).

    A wrapper of one trigger that keeps its animal (:class:`FilteredTrigger`) counts as the
    trigger it wraps.
    """
    if not isinstance(trigger, Trigger):
        raise ValueError(f"{who} wraps a trigger, not {trigger!r}")
    inner = trigger.trigger if isinstance(trigger, FilteredTrigger) else trigger
    if inner.animals_read() or getattr(inner, "children", ()):
        # A combinator's children, or a social trigger, choose their animals themselves.
        raise ValueError(
            f"animal is for triggers that read one animal, not {trigger.kind!r} (give each "
            "trigger a combinator combines its own animal; social triggers take animals)"
        )


def check_confidence(value: float) -> float:
    """Return ``value`` as a probability in [0, 1], or ValueError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"min_identity_confidence must be a number from 0 to 1, not {value!r}")
    return float(value)


class _PerAnimal(WrappingTrigger):
    """Shared parts of AnyAnimal and EachAnimal: the copies per animal, their states and edges."""

    #: The word a config writes for this wrapper (``ANIMAL = any`` / ``each``).
    choice: ClassVar[str] = ""

    def __init__(
        self,
        trigger: Trigger,
        min_identity_confidence: float = 0.0,
        make: TriggerMaker | None = None,
    ) -> None:
        check_one_animal_trigger(trigger, type(self).__name__)
        if getattr(trigger, "predicted", False):
            raise ValueError(
                f"animal = {self.choice} with predicted = true: forward prediction follows "
                "animal 1 only; set PREDICTED = false (or ANIMAL = 1)"
            )
        # Checked here, once, by the ForAnimal every copy is made as.
        ForAnimal(trigger, 1, min_identity_confidence)
        super().__init__(trigger)
        self.min_identity_confidence = float(min_identity_confidence)
        self._make: TriggerMaker = make or (lambda: copy.deepcopy(trigger))
        self.copies: dict[int, ForAnimal] = {}
        self._states: dict[int, bool] = {}
        self._previous: dict[int, bool] = {}

    def step(self, obs: AnyObservation) -> bool:
        """Feed every animal's copy; return the combined state (see the subclasses)."""
        self._add_copies(obs)
        self._previous = self._states
        self._states = {number: bool(one.update(obs)) for number, one in self.copies.items()}
        return any(self._states.values())

    def _add_copies(self, obs: AnyObservation) -> None:
        """Make a copy for every animal ``obs`` reports that has none yet."""
        selected = select_camera(obs, self.camera, self._who())
        if selected is None:  # not this trigger's camera: no news of its animals
            return
        for number in range(len(self.copies) + 1, selected.animal_count + 1):
            if self.copies:
                made = self._make()
                made.reset()  # a copy of the prototype, which may have been fed since
            else:
                made = self.trigger  # animal 1's: the prototype, never fed before
            self.copies[number] = ForAnimal(made, number, self.min_identity_confidence)

    def animal_states(self) -> dict[int, bool]:
        """Return each animal's state after the last update (empty before the first)."""
        return dict(self._states)

    def rose_animals(self) -> tuple[int, ...]:
        """Return the animals whose own state went from false to true in the last update."""
        return tuple(n for n, now in self._states.items() if now and not self._previous.get(n))

    def fell_animals(self) -> tuple[int, ...]:
        """Return the animals whose own state went from true to false in the last update."""
        return tuple(n for n, now in self._states.items() if not now and self._previous.get(n))

    def true_animals(self) -> tuple[int, ...]:
        """Return the animals whose state is true after the last update."""
        return tuple(n for n, now in self._states.items() if now)

    def measurement_of(self, animal: int) -> str:
        """Return what animal ``animal``'s copy measured in the last update ("" for none)."""
        found = self.copies.get(animal)
        return found.measurement() if found is not None else ""

    def measurement(self) -> str:
        """Return each true animal's measurement, ``animal N: ...`` (the changed ones first)."""
        shown = self.rose_animals() or self.fell_animals() or self.true_animals()
        parts = [f"animal {n}: {self.measurement_of(n)}" for n in shown if self.measurement_of(n)]
        return "; ".join(parts)

    def forget(self) -> None:
        """Forget every animal's memory and state (the copies stay, as fresh)."""
        for one in self.copies.values():
            one.reset()
        self._states, self._previous = {}, {}

    def end_hold(self) -> None:
        """Decide the next loss of every animal at once."""
        for one in self.copies.values():
            one.trigger.end_hold()

    def describe(self) -> dict[str, Any]:
        """Return the wrapped trigger's description with ``"animal": "any"`` or ``"each"``."""
        return _described_for(self.trigger, self.choice, self.min_identity_confidence)

    def _who(self) -> str:
        return f"trigger {self.kind!r} (animal {self.choice})"


class AnyAnimal(_PerAnimal):
    """One state: true while some animal satisfies ``trigger`` (``ANIMAL = any``).

    ``AnyAnimal(Region(zone, mode="entered"))`` is true in every update where some animal
    entered. :meth:`animal_states` gives each animal's own state; the experiment logs one event
    per change of the combined state, naming the animals that changed it.
    """

    choice = "any"


class EachAnimal(_PerAnimal):
    """One state per animal, each animal's own edges (``ANIMAL = each``).

    :attr:`state` is true while any animal's is; :meth:`rose_animals` and :meth:`fell_animals`
    name the animals whose own edge happened in the last update. An experiment logs a trigger
    event per animal change, and ``rose(name, animal=N)`` reads animal N's edge.
    """

    choice = "each"
    edges_per_animal = True


def for_animals(
    trigger: Trigger,
    animal: int | str | None,
    min_identity_confidence: float = 0.0,
    make: TriggerMaker | None = None,
) -> Trigger:
    """Return ``trigger`` for ``animal``: a number (:class:`ForAnimal`), ``"any"`` or ``"each"``.

    None with no ``min_identity_confidence`` returns ``trigger`` itself (animal 1, as always).
    """
    if animal == "any":
        return AnyAnimal(trigger, min_identity_confidence, make)
    if animal == "each":
        return EachAnimal(trigger, min_identity_confidence, make)
    if isinstance(animal, str):
        raise ValueError(f"animal must be a number from 1, any or each, not {animal!r}")
    if animal is None and not min_identity_confidence:
        return trigger
    return ForAnimal(trigger, animal or 1, min_identity_confidence)
