"""The registered triggers of one experiment run: updated once per update, counted, logged.

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
    """The registered triggers, updated once per update (``log``: the runtime's event log call).

    Each named trigger keeps its own states and edges (the experiment asks it); this counts
    and logs them.
    """

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
        #: Frame time each trigger has been true so far (a state holds from one update to the
        #: next, so an interval counts for the state at its start): the window's time per region.
        self.seconds_active: dict[str, float] = dict.fromkeys(triggers, 0.0)
        self._true_since_last: list[str] = []
        self._last_update_s: float | None = None

    def update(self, observations: AnyObservation) -> None:
        """Update every registered trigger once and log each change as a ``trigger`` event."""
        self._counter.tick += 1
        for name, trigger in self.triggers.items():
            now = trigger.update(observations)  # its before and after: the edges it answers
            if not trigger.state_changed() and not trigger.edges_per_animal:
                continue
            source = self._recording.source
            if trigger.camera is not None and isinstance(observations, Observations):
                source = observations.by_camera.get(trigger.camera, source)
            if trigger.edges_per_animal:  # ANIMAL = each: every animal's change is an event
                rose = set(trigger.animals_rose())
                changes: list[tuple[bool, tuple[int, ...], int | None, int | None]] = [
                    (one in rose, (one,), one, one)
                    for one in sorted(rose.union(trigger.animals_fell()))
                ]
            else:
                changed = trigger.animals_rose() if now else trigger.animals_fell()
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
        self._true_since_last = [name for name, named in self.triggers.items() if named.state_after]
