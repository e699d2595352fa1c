"""The experiment's event log: every trigger change, trial, action, pause and finish, in order.

:class:`EventRecorder` makes each row (what it names: docs/experiments-internals.md,
`EventRecorder`), :class:`EventLog` keeps them, :class:`EventCsvWriter` writes them.

The columns, and when rows are written: docs/experiments.md (The event log: ``events.csv``).
An update's events wait for the next update (or :meth:`EventLog.commit`) so the dispatcher can
fill their timing columns first (:meth:`EventLog.fill_times`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from deeplabstream.core.whole_rows import WholeRowsFile
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    camera_of,
    keypoint_of,
)

log = logging.getLogger(__name__)

EventKind = Literal[
    "start", "trigger", "trial_start", "trial_end", "action", "pause", "resume", "finish", "note"
]
EVENT_KINDS: tuple[str, ...] = (
    "start",
    "trigger",
    "trial_start",
    "trial_end",
    "action",
    "pause",
    "resume",
    "finish",
    "note",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "time_s",
    "kind",
    "name",
    "detail",
    "trial",
    "camera",
    "frame_index",
    "camera_timestamp",
    "host_timestamp",
    "pose_ready",
    "decided",
    "written",
    "acknowledged",
    "keypoint",
    "measured_x",
    "measured_y",
    "predicted_x",
    "predicted_y",
    "lead_ms",
    "likelihood",
    "not_sent",
    "animal",
)
"""The columns of ``events.csv``, in order (documented in docs/experiments.md).

Columns are only ever added at the end, so that readers of older files keep working.
"""

EVENT_COLUMN_DOCS: dict[str, str] = {
    "time_s": "s, frame time of the update it happened in: the prompting frame's time (camera "
    "clock when the camera has one, else host arrival time; with several cameras the host "
    "clock), the experiment's only clock; the window's Log tab shows this same value as "
    "`time_s`",
    "kind": "`start`, `trigger`, `trial_start`, `trial_end`, `action`, `pause`, `resume`, "
    "`finish`, `note` (written by the experiment's own `self.log(name, detail)`)",
    "name": "the trigger (`trigger`), the rule or cause that started the trial (`trial_start`, "
    "`trial_end`), the device (`action`), the experiment (`start`, `finish`), the note's name "
    "(`note`)",
    "detail": "`true`/`false` (`trigger`); the command, e.g. `pulse channel=0 duration_s=0.5 "
    "reason=stimulate` (`action`); why (`trial_end`, `finish`: `3 trials done`, `stopped`, "
    "...); the note's text (`note`)",
    "trial": "the trial it belongs to (1, 2, ...); empty outside trials",
    "camera": "the camera of the analysed frame that caused it (for a trigger that reads one "
    "camera, that camera)",
    "frame_index": "that frame's index in its camera (the `frame_index` of "
    "`<camera>.frames.csv`, the index of `<camera>.pose.csv`)",
    "camera_timestamp": "s, that frame's `time_s` (camera clock; host arrival time for cameras "
    "without one)",
    "host_timestamp": "s, host clock, when that frame arrived (empty when the observation does "
    "not carry it)",
    "pose_ready": "s, host clock, when its keypoints were ready (filled by the dispatcher)",
    "decided": "s, host clock, when the experiment returned its actions (dispatcher)",
    "written": "s, host clock, when the command was written to the device (dispatcher)",
    "acknowledged": "s, host clock, when the device confirmed the command (dispatcher)",
    "keypoint": "`trigger` and `action` events: the keypoint whose positions the next columns "
    "give. For a trigger, the keypoint it reads (`tip` for head direction and target side, `A` "
    "for distance, a combinator's first child's); for an action, that of the trigger that "
    "decided it (the rule's `WHEN` trigger that fired; in a Python experiment the first trigger "
    "that changed in that update); otherwise (a timing trigger, a trial end's switch-off) "
    "`EVENT_KEYPOINT`, else the first keypoint the experiment's triggers read, else the "
    "camera's first keypoint. Empty for a finish's, pause's or stop's switch-off (`reason=finish`, "
    "`pause`, `stop`): no pose decided it, so it gives no position and no `animal`",
    "measured_x": "px, that keypoint in the frame that caused the event, as the pose model gave "
    "it (whatever its likelihood, which `<camera>.pose.csv` holds)",
    "measured_y": "px, likewise (y down)",
    "predicted_x": "px, with forward prediction (`PREDICT`): where the keypoint was predicted "
    "to be `lead_ms` after that frame's time, when the command reaches the device; empty with "
    "`PREDICT = off` or for a keypoint not seen for `PREDICT_MAX_GAP`",
    "predicted_y": "px, likewise",
    "lead_ms": "ms, with forward prediction: how far ahead of that frame's time the prediction "
    "looked (the lead used in that update); empty with `PREDICT = off`",
    "likelihood": "0-1, that keypoint's likelihood in that frame, as the pose model gave it: "
    "below the trigger's `MIN_LIKELIHOOD` the keypoint was not seen (a trigger keeps its state "
    "through such a loss for `HOLD_S`, then decides on it); empty where `keypoint` is empty or "
    "the camera has no such keypoint",
    "not_sent": "`action` events: why the command was never sent, e.g. `not sent: device gone "
    "(serial port ... vanished)` after a board vanished, or `not sent: an earlier command "
    "failed`; empty for a command that was sent (its `written` time says when) and for other "
    "events",
    "animal": "`trigger` and `action` events with a multi-animal model: the animal that made it, "
    "numbered from 1 as configs number them. For a trigger with `ANIMAL = each`, one event per "
    "animal's change, naming it; `ANIMAL = any`: the animal(s) whose change made it, joined "
    "with `+` (`1+2`: both in the same update); `ANIMAL = N`: N; a social trigger: its two "
    "`ANIMALS` (`1+2`); another trigger: 1 (the animal every trigger reads unless told). An "
    "action: the animal its rule fired for (`Action.animal`), else that of the trigger that "
    "decided it (whose keypoint it gives; none for a switch-off no trigger decided). Empty with "
    "a single-animal model and for the other events (trials, start, finish)",
}
"""What each column of ``events.csv`` holds (the table in docs/experiments.md)."""

TIMING_COLUMNS: tuple[str, ...] = ("pose_ready", "decided", "written", "acknowledged")
"""Host-clock seconds filled by whoever knows them (the dispatcher); empty otherwise."""


@dataclass(frozen=True, slots=True)
class ExperimentEvent:
    """One thing that happened in an experiment: one row of ``events.csv``.

    The fields are its columns (:data:`EVENT_COLUMN_DOCS`, docs/experiments.md), except
    ``action``: the action of an ``action`` event, which ``detail`` describes.
    """

    time_s: float
    kind: EventKind
    name: str
    detail: str = ""
    trial: int | None = None
    camera: str = ""
    frame_index: int | None = None
    camera_timestamp: float | None = None
    host_timestamp: float | None = None
    pose_ready: float | None = None
    decided: float | None = None
    written: float | None = None
    acknowledged: float | None = None
    action: Action | None = dataclasses.field(default=None, compare=False)
    keypoint: str = ""
    measured_x: float | None = None
    measured_y: float | None = None
    predicted_x: float | None = None
    predicted_y: float | None = None
    lead_ms: float | None = None
    likelihood: float | None = None
    not_sent: str = ""
    animal: str = ""

    def __post_init__(self) -> None:
        """Reject a kind that is not one of :data:`EVENT_KINDS`."""
        if self.kind not in EVENT_KINDS:
            allowed = ", ".join(EVENT_KINDS)
            raise ValueError(f"event kind must be one of {allowed}, not {self.kind!r}")

    def row(self) -> list[str]:
        """Return the event's CSV cells, in the order of :data:`EVENT_COLUMNS`."""
        return [_cell(getattr(self, column)) for column in EVENT_COLUMNS]

    def as_dict(self) -> dict[str, Any]:
        """Column name -> value (None for empty cells)."""
        return {column: getattr(self, column) for column in EVENT_COLUMNS}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}" if math.isfinite(value) else ""
    return str(value)


class EventWriter(Protocol):
    """Where an :class:`EventLog` writes its events as the session runs."""

    def write(self, events: Sequence[ExperimentEvent]) -> None:
        """Append ``events`` (called once per update, possibly with none, so it can flush)."""
        ...

    def close(self) -> None:
        """Flush and release the file."""
        ...


class EventCsvWriter:
    """``events.csv``: one row per event, columns :data:`EVENT_COLUMNS`, in whole rows.

    ``target``: a path (created; an existing file is never overwritten) or an open text stream (not
    closed by :meth:`close`, only flushed). A disk error is logged and ends the file at its last
    whole row; the experiment goes on.
    """

    def __init__(self, target: Path | str | TextIO) -> None:
        self._buffer = io.StringIO()  # each row's text, made by the csv module
        self._csv = csv.writer(self._buffer, lineterminator="\n")
        header = self.render_row(EVENT_COLUMNS)
        self._rows: WholeRowsFile | None = None
        self._stream: TextIO | None = None
        if isinstance(target, str | Path):
            self.path: Path | None = Path(target)
            self._rows = WholeRowsFile(self.path, header)
        else:
            self.path, self._stream = None, target
            self._guard(lambda: target.write(header))
        self.rows = 0
        self._error: str | None = None  # why the stream stopped early

    @property
    def error(self) -> str | None:
        """Why the file stopped early (a disk error), or None."""
        return self._rows.error if self._rows is not None else self._error

    def render_row(self, cells: Sequence[str]) -> str:
        """Return one row's text as the file has it (csv quoting, ending in a newline)."""
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._csv.writerow(cells)
        return buffer.getvalue()

    def render(self, events: Sequence[ExperimentEvent]) -> str:
        """Return the rows of ``events`` as the file would have them."""
        return "".join(self.render_row(event.row()) for event in events)

    def write(self, events: Sequence[ExperimentEvent]) -> None:
        """Append the rows of ``events`` (none: the rows kept are written if a second passed)."""
        if not events and self._rows is not None:
            self._rows.flush_if_due()
        for event in events:
            text = self.render_row(event.row())
            if self._rows is not None:
                self._rows.write_row(text)
            elif self._stream is not None:
                stream = self._stream
                self._guard(lambda: stream.write(text))  # noqa: B023 - called at once
            self.rows += 1

    def unwritten(self) -> tuple[int, str]:
        """Return the file's length in bytes and the rows handed over but not in it yet."""
        return self._rows.unwritten() if self._rows is not None else (0, "")

    def flush(self) -> None:
        """Push the rows written so far to the file."""
        if self._rows is not None:
            self._rows.flush()
        elif self._stream is not None:
            self._guard(self._stream.flush)

    def close(self) -> None:
        """Write what is left, and close the file when this writer opened it."""
        if self._rows is not None:
            self._rows.close()
        elif self._stream is not None:
            self._guard(self._stream.flush)
            self._stream = None

    def _guard(self, operation: Any) -> None:
        try:
            operation()
        except OSError as error:
            self._error = f"events stream stopped at {error.strerror or error}"
            log.error("%s", self._error)
            self._stream = None


class EventLog:
    """Every event of an experiment, in memory and (with a writer) on disk as the run goes.

    ``writer`` None keeps them in memory only; :meth:`attach` sets one later.
    """

    def __init__(self, writer: EventWriter | None = None) -> None:
        self._events: list[ExperimentEvent | None] = []
        self.writer = writer
        self._committed = 0
        # Events whose content is made later (:meth:`defer`): their place and their maker.
        self._deferred: list[tuple[int, Callable[[], ExperimentEvent]]] = []
        # Actions whose acknowledgement is still to come (:meth:`hold`): their rows, and every
        # later row (the file keeps the order), stay pending until it is filled or released.
        self._held: list[Action] = []
        #: Counts every change of what the file does not have yet (events added, their times
        #: filled, committed): the worker publishes those rows only when it moved.
        self.changes = 0

    @property
    def events(self) -> list[ExperimentEvent]:
        """Every event so far, in order (deferred ones made now)."""
        self.settle()
        return self._events  # type: ignore[return-value]  # settled: no placeholder is left

    def record(self, event: ExperimentEvent) -> ExperimentEvent:
        """Add ``event`` (pending until the next :meth:`commit`)."""
        self._events.append(event)
        self.changes += 1
        return event

    def defer(self, make: Callable[[], ExperimentEvent]) -> None:
        """Add an event whose content ``make`` gives later, in this place of the order.

        For events logged between a frame's pose and its command: formatting them (levels,
        positions) is left until :meth:`settle`, which the loop calls once the command is
        out. ``make`` must read only what stays as it is until then.
        """
        self._deferred.append((len(self._events), make))
        self._events.append(None)
        self.changes += 1

    def settle(self) -> None:
        """Make the deferred events (every accessor does it first)."""
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for index, make in deferred:
                self._events[index] = make()

    @property
    def pending(self) -> list[ExperimentEvent]:
        """The events not yet committed: the latest update's, and any held for an answer."""
        return self.events[self._committed :]

    def fill_times(
        self,
        action: Action | None = None,
        *,
        pose_ready: float | None = None,
        decided: float | None = None,
        written: float | None = None,
        acknowledged: float | None = None,
    ) -> int:
        """Fill timing columns of pending events; return how many events were changed.

        With ``action``, only the pending ``action`` events of that action (the object the
        experiment returned); without, every pending event. Only the times given are set.
        """
        times: dict[str, Any] = {
            name: value
            for name, value in (
                ("pose_ready", pose_ready),
                ("decided", decided),
                ("written", written),
                ("acknowledged", acknowledged),
            )
            if value is not None
        }
        changed = 0
        events = self.events
        for index in range(self._committed, len(events)):
            event = events[index]
            if action is not None and event.action is not action:
                continue
            events[index] = dataclasses.replace(event, **times)
            changed += 1
        self.changes += changed
        if action is not None and acknowledged is not None:
            self.release(action)
        return changed

    def hold(self, action: Action) -> None:
        """Keep ``action``'s rows (and the rows after them) from :meth:`commit` until released.

        A device acknowledges after the command's update, often after the next one (a screen
        paints at its refresh): its time must reach the row before the row reaches the file.
        Filling ``acknowledged`` releases the action; :meth:`release` does when none will come.
        """
        if not any(held is action for held in self._held):
            self._held.append(action)

    def release(self, action: Action) -> None:
        """Let ``action``'s rows be committed (acknowledged, failed, or waited for long enough)."""
        self._held = [held for held in self._held if held is not action]

    def mark_not_sent(self, action: Action, why: str) -> int:
        """Say in the pending ``action`` events of ``action`` that its command was never sent.

        ``why`` is written as ``not sent: why`` in the ``not_sent`` column (the row stays, so
        that the experiment's decision is kept); returns how many events were marked.
        """
        changed = 0
        events = self.events
        for index in range(self._committed, len(events)):
            event = events[index]
            if event.action is action:
                events[index] = dataclasses.replace(event, not_sent=f"not sent: {why}")
                changed += 1
        self.changes += changed
        return changed

    def commit(self) -> int:
        """Hand the pending events up to the first held one to the writer; return how many."""
        pending = self.pending
        for index, event in enumerate(pending):
            if event.action is not None and any(held is event.action for held in self._held):
                pending = pending[:index]
                break
        self._committed += len(pending)
        self.changes += bool(pending)
        if self.writer is not None:
            self.writer.write(pending)
        return len(pending)

    def attach(self, writer: EventWriter) -> None:
        """Write to ``writer`` from now on; the events committed so far are written at once."""
        self.writer = writer
        writer.write(self.events[: self._committed])

    def close(self) -> None:
        """Commit everything pending (held rows too) and close the writer."""
        self._held = []
        self.commit()
        if self.writer is not None:
            self.writer.close()

    def counts(self) -> dict[str, int]:
        """Count the events of each kind (kinds that occurred)."""
        return dict(Counter(event.kind for event in self.events))

    def of_kind(self, kind: str) -> list[ExperimentEvent]:
        """Return the events of one kind, in order."""
        return [event for event in self.events if event.kind == kind]

    def to_csv_text(self) -> str:
        """Every event as the text of an ``events.csv`` (for tests and exports)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        writer.writerows(event.row() for event in self.events)
        return buffer.getvalue()

    def __len__(self) -> int:
        """Count the events."""
        return len(self.events)

    def __iter__(self) -> Iterator[ExperimentEvent]:
        """Return the events in order."""
        return iter(self.events)


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
