"""The experiment's event plumbing: what each row of ``events.csv`` names, and recording it.

Its design: docs/experiments-internals.md (`experiments.engine.recording`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.events import EventKind, EventLog, ExperimentEvent
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    camera_of,
    keypoint_of,
)

Text = str | Callable[[], str]
"""A cell given as it is, or as a function that makes it (run when the event is made)."""
Positions = dict[str, Any] | Callable[[], dict[str, Any]] | None


@dataclass(frozen=True)
class EventTarget:
    """What a trigger's events name: its keypoint, its camera and the animals it reads."""

    trigger: Trigger
    keypoint: str | None
    camera: str | None
    animals: tuple[int, ...]


class EventRecorder:
    """The event log of one experiment, and what this update's events name.

    Parameters
    ----------
    events
        The log the events go to.
    event_keypoint
        The keypoint whose positions events give when no keypoint trigger decided them (None:
        the first keypoint a registered trigger reads, else the camera's first).
    triggers
        The experiment's registered triggers (read, never changed: for that default keypoint).
    """

    def __init__(
        self, events: EventLog, event_keypoint: str | None, triggers: Mapping[str, Trigger]
    ) -> None:
        self.events = events
        self.event_keypoint = event_keypoint
        self._triggers = triggers
        # Set by a loop that settles the events itself once the update's commands are out
        # (live.processes.analysis.dispatch); off, every event is made when it is logged.
        self.defer_details = False
        self.source: Observation | None = None  # the observation that prompted this update
        self.current: AnyObservation | None = None  # this update's observations (predicted)
        self.event_targets: dict[int, EventTarget] = {}  # by id(trigger): target()

    def begin_update(self, observations: AnyObservation) -> None:
        """Remember this update's observations: its events name them."""
        self.source = prompting(observations)
        self.current = observations

    def record(
        self,
        kind: EventKind,
        name: str,
        detail: Text,
        *,
        time_s: float | None,
        trial: int | None,
        source: Observation | None = None,
        action: Action | None = None,
        positions: Positions = None,
        animal: Text = "",
    ) -> None:
        """Log an event; ``detail``, ``positions`` and ``animal`` may be functions that make them.

        With :attr:`defer_details`, an event with such functions is made only when the loop
        settles the events, after the update's commands are out: the decision does not wait for
        formatting. The functions read the update's state, which holds until the next update.
        """
        source = source if source is not None else self.source
        when = time_s if time_s is not None else math.nan

        def make() -> ExperimentEvent:
            where = positions() if callable(positions) else positions
            return ExperimentEvent(
                when,
                kind,
                name,
                detail() if callable(detail) else detail,
                trial,
                camera=source.camera if source is not None else "",
                frame_index=source.frame_index if source is not None else None,
                camera_timestamp=source.time_s if source is not None else None,
                host_timestamp=getattr(source, "host_time_s", None),
                action=action,
                animal=animal() if callable(animal) else animal,
                **(where or {}),
            )

        if self.defer_details and (callable(detail) or callable(positions)):
            self.events.defer(make)
        else:
            self.events.record(make())

    def target(self, trigger: Trigger) -> EventTarget:
        """Return what ``trigger``'s events log: its keypoint, camera and animals (cached).

        They never change while a trigger lives, and finding them walks the trigger's
        attributes and children: done once, not on every event (an event is logged before
        the update's decision, so its cost is the loop's).
        """
        target = self.event_targets.get(id(trigger))
        if target is None or target.trigger is not trigger:
            target = EventTarget(
                trigger, keypoint_of(trigger), camera_of(trigger), animals_of(trigger)
            )
            self.event_targets[id(trigger)] = target
        return target

    def source_of(self, trigger: Trigger, animal: int | None = None) -> Observation | None:
        """Return this update's observation of the keypoint that ``trigger`` names (keypoint_of).

        A trigger of another animal than animal 1 (``ANIMAL = 2``, a social trigger whose first
        animal is not 1, or ``animal``: the one whose change of an ``any``/``each`` trigger made
        the event) gets that animal's keypoints, so the logged position is its own.
        """
        target = self.target(trigger)
        source = self.source
        if target.camera is not None and isinstance(self.current, Observations):
            source = self.current.by_camera.get(target.camera, self.source)
        if animal is None:
            animal = target.animals[0] if target.animals else 1
        if source is not None and source.animals is not None and 1 < animal <= len(source.animals):
            return source.for_animal(animal)
        return source

    def trigger_positions(self, trigger: Trigger, animal: int | None = None) -> dict[str, Any]:
        """Return the positions of the keypoint ``trigger`` reads (of ``animal``, if given)."""
        return self.positions(self.source_of(trigger, animal), self.target(trigger).keypoint)

    def positions(self, source: Observation | None, keypoint: str | None) -> dict[str, Any]:
        """Return ``keypoint``'s measured and predicted position in ``source`` (event columns).

        ``keypoint`` None: :attr:`event_keypoint`, else the first keypoint a trigger reads, else
        the camera's first. Only the name for a keypoint the camera does not have.
        """
        if source is None:
            return {}
        name = keypoint or self.event_keypoint or self._default_keypoint(source)
        if name not in source.names:
            return {"keypoint": name}
        row = source.names.index(name)
        positions: dict[str, Any] = {
            "keypoint": name,
            "measured_x": _finite(source.keypoints[row, 0]),
            "measured_y": _finite(source.keypoints[row, 1]),
            # why a trigger saw it or not: below its MIN_LIKELIHOOD it was not seen
            "likelihood": _finite(source.keypoints[row, 2]),
        }
        if source.predicted is not None and source.lead_s is not None:
            positions["predicted_x"] = _finite(source.predicted[row, 0])
            positions["predicted_y"] = _finite(source.predicted[row, 1])
            positions["lead_ms"] = source.lead_s * 1e3
        return positions

    def _default_keypoint(self, source: Observation) -> str:
        """Return the first registered trigger's keypoint the camera has, else its first one."""
        for trigger in self._triggers.values():
            found = self.target(trigger).keypoint
            if found is not None and found in source.names:
                return found
        return source.names[0] if source.names else ""


def animal_label(animals: Iterable[int], source: Observation | None) -> str:
    """Return ``events.csv``'s ``animal``: ``2``, ``1+2``; empty with a single-animal model."""
    if source is None or source.animals is None:
        return ""
    return "+".join(str(animal) for animal in animals)


def trigger_detail(trigger: Trigger, state: bool, each: int | None = None) -> str:
    """Return ``true``/``false`` and what the trigger measured (a light's levels...).

    ``each``: the animal whose change of an ``ANIMAL = each`` trigger this is (its measurement).
    """
    measured = trigger.measurement_of(each) if each else trigger.measurement()  # type: ignore[attr-defined]
    return ("true" if state else "false") + (f" {measured}" if measured else "")


def prompting(observations: AnyObservation) -> Observation | None:
    """Return the observation that prompted an update: the one, or the nearest to the reference."""
    if isinstance(observations, Observation):
        return observations
    best: Observation | None = None
    for obs in observations.by_camera.values():
        if best is None or abs(obs.time_s - observations.time_s) < abs(
            best.time_s - observations.time_s
        ):
            best = obs
    return best


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
