"""The registered triggers of one experiment run: their states, edges, counts and events.

Its design: docs/experiments-internals.md (`experiments.engine.trigger_states`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from deeplabstream.experiments.engine.recording import EventRecorder, animal_label, trigger_detail
from deeplabstream.experiments.observation import Observations
from deeplabstream.experiments.triggers.base import AnyObservation
from deeplabstream.experiments.triggers.named import NamedTrigger, UpdateCounter


class TriggerStates:
    """The registered triggers, updated once per update (``log``: the runtime's event log call)."""

    def __init__(
        self,
        triggers: Mapping[str, NamedTrigger],
        counter: UpdateCounter,
        recording: EventRecorder,
        log: Callable[..., None],
    ) -> None:
        self.triggers = triggers
        self._counter = counter
        self._recording = recording
        self._log = log
        #: How often each trigger became true (each animal's rise of an ``ANIMAL = each`` one).
        self.counts: dict[str, int] = dict.fromkeys(triggers, 0)
        self._states: dict[str, bool] = dict.fromkeys(triggers, False)
        self._previous: dict[str, bool] = dict.fromkeys(triggers, False)
        #: Frame time each trigger has been true so far (a state holds from one update to the
        #: next, so an interval counts for the state at its start): the window's time per region.
        self.seconds_active: dict[str, float] = dict.fromkeys(triggers, 0.0)
        self._true_since_last: list[str] = []
        self._last_update_s: float | None = None

    def update(self, observations: AnyObservation) -> None:
        """Update every registered trigger once and log each change as a ``trigger`` event."""
        self._counter.tick += 1
        for name, trigger in self.triggers.items():
            before = self._states[name]
            now = trigger.update(observations)
            self._previous[name], self._states[name] = before, now
            if now == before and not trigger.edges_per_animal:
                continue
            source = self._recording.source
            if trigger.camera is not None and isinstance(observations, Observations):
                source = observations.by_camera.get(trigger.camera, source)
            if trigger.edges_per_animal:  # ANIMAL = each: every animal's change is an event
                rose = set(self._animals(name, rising=True))
                changes: list[tuple[bool, tuple[int, ...], int | None, int | None]] = [
                    (one in rose, (one,), one, one)
                    for one in sorted(rose.union(self._animals(name, rising=False)))
                ]
            else:
                changed = self._animals(name, rising=now)
                animal = changed[0] if changed and trigger.animal_states() is not None else None
                changes = [(now, changed, animal, None)]
            for state, animals, of, each in changes:  # of: the animal whose positions it logs
                if state:
                    self.counts[name] += 1
                self._log(
                    "trigger",
                    name,
                    partial(trigger_detail, trigger, state, each),
                    source=source,
                    positions=partial(self._recording.trigger_positions, trigger, of),
                    animal=animal_label(animals, source),
                )

    def count_active(self, now: float | None) -> None:
        """Add the frame time since the previous update to each trigger that was true then."""
        if now is None:
            return
        last = self._last_update_s
        if last is not None and now > last:
            for name in self._true_since_last:
                self.seconds_active[name] += now - last
        self._last_update_s = now
        self._true_since_last = [name for name, state in self._states.items() if state]

    def is_true(self, name: str, animal: int | None = None) -> bool:
        """Return the state of trigger ``name`` after this update (of ``animal``, if given).

        ``animal``: that animal's own state for a trigger with ``ANIMAL = any`` or ``each``;
        for another trigger, its state if it reads that animal (animal 1 when it names none).
        """
        name = self._known(name)
        if animal is None:
            return self._states[name]
        states = self.triggers[name].animal_states()
        if states is not None:
            return states.get(animal, False)
        return self._states[name] and animal in self.animals_named(name)

    def rose(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from False to True in this update.

        For an ``ANIMAL = each`` trigger, whether some animal's own state rose (animal
        ``animal``'s, if given). ``ANIMAL = any``: its one state, or animal ``animal``'s own.
        Another trigger with ``animal``: its edge, if it reads that animal.
        """
        name = self._known(name)
        if animal is None and not self.triggers[name].edges_per_animal:
            return self._states[name] and not self._previous[name]
        rose = self._animals(name, rising=True)
        return bool(rose) if animal is None else animal in rose

    def fell(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from True to False in this update (as :meth:`rose`)."""
        name = self._known(name)
        if animal is None and not self.triggers[name].edges_per_animal:
            return self._previous[name] and not self._states[name]
        fell = self._animals(name, rising=False)
        return bool(fell) if animal is None else animal in fell

    def animals_rose(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` rose in this update, in order.

        For ``ANIMAL = any`` and ``each``, each animal's own edge; for another trigger that rose,
        the animals it reads (``ANIMAL = N``: N; a social trigger: its two; else animal 1).
        """
        return self._animals(self._known(name), rising=True)

    def animals_fell(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` fell in this update (as above)."""
        return self._animals(self._known(name), rising=False)

    def changed_animals(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` rose in this update, else fell."""
        name = self._known(name)
        return self._animals(name, rising=True) or self._animals(name, rising=False)

    def animals_named(self, name: str) -> tuple[int, ...]:
        """Return the animals a trigger without per-animal states reads (none named: 1)."""
        return self._recording.target(self.triggers[name]).animals or (1,)

    def changed_keypoint_trigger(self) -> str | None:
        """Return the first registered trigger that changed in this update and reads a keypoint."""
        for name, trigger in self.triggers.items():
            changed = self._states[name] != self._previous[name]
            if changed and self._recording.target(trigger).keypoint is not None:
                return name
        return None

    def _animals(self, name: str, rising: bool) -> tuple[int, ...]:
        trigger = self.triggers[name]
        if trigger.animal_states() is not None:
            return tuple(trigger.rose_animals() if rising else trigger.fell_animals())
        changed = self._states[name] == rising != self._previous[name]
        return self.animals_named(name) if changed else ()

    def _known(self, name: str) -> str:
        if name not in self._states:
            known = ", ".join(self.triggers) or "none"
            raise KeyError(f"no trigger named {name!r}; triggers: {known}")
        return name
