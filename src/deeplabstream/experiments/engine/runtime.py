"""What runs an experiment: its triggers, trials, event log and prediction, around the lab's hooks.

Its design, and its trial machine's (:class:`TrialMachine`): docs/experiments-internals.md
(`experiments.engine.runtime`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment, ExperimentSetup, NamedTrigger, UpdateCounter
from deeplabstream.experiments.events import (
    EventKind,
    EventLog,
    EventRecorder,
    animal_label,
    trigger_detail,
)
from deeplabstream.experiments.observation import KeypointFilter, Observation, Observations
from deeplabstream.experiments.options import ExperimentOptions
from deeplabstream.experiments.prediction import PosePredictor
from deeplabstream.experiments.trial import EPSILON_S, ExperimentState, Output, Trial
from deeplabstream.experiments.triggers.base import AnyObservation


class LogEvent(Protocol):
    """Log one event of the machine (the experiment's event log)."""

    def __call__(
        self, kind: EventKind, name: str, detail: str, *, trial: int | None = None
    ) -> None:
        """Record ``kind`` ``name`` ``detail`` (in ``trial``, else the one in progress)."""
        ...


class TrialMachine:
    """States, trials, timing and held outputs of one experiment (docs/experiments-internals.md).

    Parameters
    ----------
    options
        The experiment's options (checked when they were made): the trial timing.
    name
        Returns the experiment's name (its ``finish`` event names it).
    log
        Records an event (``trial_start``, ``trial_end``, ``pause``, ``finish``...).
    log_action
        Records an ``action`` event for an action emitted in a trial (or None).
    trial_ended
        Returns the actions of a trial's end (the experiment's ``on_trial_end``).
    """

    def __init__(
        self,
        options: ExperimentOptions,
        *,
        name: Callable[[], str],
        log: LogEvent,
        log_action: Callable[[Action, int | None, bool], None],
        trial_ended: Callable[[Trial], Iterable[Action]],
    ) -> None:
        self.options = options  # read where used: never copied, so never out of date
        self._name = name
        self._log = log
        self._log_action = log_action
        self._trial_ended = trial_ended

        self.state: ExperimentState = "idle"
        self.trials: list[Trial] = []
        self.trial: Trial | None = None  # the trial in progress
        self.started_s: float | None = None
        self.ended_s: float | None = None
        self.finish_reason = ""
        self.now_s: float | None = None  # the latest frame time seen
        self.stopped = False
        # Why the experiment asked to end the session (end_session), until it has finished.
        self.end_requested: str | None = None
        self.action_count = 0
        self._out: list[Action] = []  # the actions of the call in progress, in order
        self._ended: list[Trial] = []  # trials ended whose outputs are not yet switched off
        self.held: dict[Output, int | None] = {}  # output -> trial that switched it on
        self.outputs: dict[Output, None] = {}  # every output used or declared

    # ----------------------------------------------------------------------------------------
    # Clock and session
    # ----------------------------------------------------------------------------------------

    def advance_clock(self, time_s: float | None) -> None:
        """Move the clock to ``time_s`` (never back: an older frame counts at the latest time)."""
        if time_s is None:
            return
        if not math.isfinite(time_s):
            raise ValueError(f"frame time must be finite, not {time_s!r}")
        self.now_s = float(time_s) if self.now_s is None else max(self.now_s, float(time_s))

    def begin(self, time_s: float) -> None:
        """Start the session at frame time ``time_s``."""
        self.started_s = time_s
        self.advance_clock(time_s)

    def session_over(self) -> bool:
        """Whether ``session_duration_s`` has passed since the start."""
        duration, started, now = self.options.session_duration_s, self.started_s, self.now_s
        if duration is None or started is None or now is None:
            return False
        return now - started >= duration - EPSILON_S

    @property
    def finished(self) -> bool:
        """Whether the session has finished."""
        return self.state == "finished"

    # ----------------------------------------------------------------------------------------
    # Trials
    # ----------------------------------------------------------------------------------------

    @property
    def can_start_trial(self) -> bool:
        """Whether :meth:`start_trial` would start one now."""
        return self.state == "waiting" and (
            self.options.max_trials is None or len(self.trials) < self.options.max_trials
        )

    def start_trial(self, cause: str) -> bool:
        """Start a trial now if the state allows it; return whether it started."""
        if not self.can_start_trial:
            return False
        assert self.now_s is not None
        trial = Trial(len(self.trials) + 1, cause or self._name(), self.now_s)
        self.trials.append(trial)
        self.trial = trial
        self.state = "in_trial"
        self._log("trial_start", trial.cause, "", trial=trial.index)
        return True

    def end_trial(self, reason: str) -> bool:
        """End the trial in progress now (its outputs go off in :meth:`close_ended_trials`)."""
        trial = self.trial
        if trial is None:
            return False
        assert self.now_s is not None
        trial.end_s, trial.end_reason = self.now_s, reason
        self.trial = None
        self._ended.append(trial)
        self._log("trial_end", trial.cause, reason, trial=trial.index)
        if self.state == "in_trial":
            self.state = "waiting" if self.options.inter_trial_interval_s <= 0 else "inter_trial"
        return True

    def advance(self) -> None:
        """End a trial that lasted ``trial_duration_s``; leave the inter-trial interval after it."""
        now = self.now_s
        assert now is not None
        trial, duration = self.trial, self.options.trial_duration_s
        if (
            trial is not None
            and duration is not None
            and duration > 0
            and now - trial.start_s >= duration - EPSILON_S
        ):
            self.end_trial(f"trial duration of {duration:g} s reached")
        if self.state == "inter_trial":
            last_end = self.trials[-1].end_s if self.trials else None
            interval_s = self.options.inter_trial_interval_s
            if last_end is None or now - last_end >= interval_s - EPSILON_S:
                self.state = "waiting"

    def end_instant_trial(self) -> None:
        """End a trial of ``trial_duration_s = 0`` in the update it started in."""
        if self.trial is not None and self.options.trial_duration_s == 0:
            self.end_trial("instant trial (trial duration 0)")

    def close_ended_trials(self) -> None:
        """Switch off what ended trials held, emit their end's actions, finish when it is time.

        Finishes after ``max_trials`` trials, or when the experiment asked to end the session
        (:meth:`request_end`): after the actions emitted so far in this call.
        """
        while self._ended:
            trial = self._ended.pop(0)
            if self.options.switch_off_at_trial_end:
                held = [o for o, owner in self.held.items() if owner == trial.index]
                self.switch_off(held, f"trial {trial.index} ended", trial.index)
            label = f"trial {trial.index} ended"
            for action in self._trial_ended(trial) or ():
                self.emit(action if action.reason else action.with_reason(label), trial.index)
        if self.state == "finished":
            return
        if self.end_requested is not None:
            self.finish(self.end_requested)
        elif (
            self.trial is None
            and self.options.max_trials is not None
            and len(self.trials) >= self.options.max_trials
        ):
            self.finish(f"{self.options.max_trials} trials done")

    def request_end(self, reason: str) -> None:
        """Finish the session once the actions of the call in progress are emitted."""
        if self.state != "finished" and self.end_requested is None:
            self.end_requested = reason

    def finish(self, reason: str) -> None:
        """End the trial, switch held outputs off, and finish (once) for ``reason``."""
        if self.state == "finished":
            return
        self.end_trial(reason)
        self.state = "finished"  # before closing trials: no second finish for max_trials
        self.close_ended_trials()
        self.switch_off(list(self.held), "finish", from_pose=False)
        self.finish_reason = reason
        self.ended_s = self.now_s
        self.end_requested = None
        self._log("finish", self._name(), reason)

    # ----------------------------------------------------------------------------------------
    # Pause, resume, stop
    # ----------------------------------------------------------------------------------------

    def pause(self) -> None:
        """End the trial in progress and switch held outputs off; the state becomes ``paused``."""
        self._log("pause", "pause", "")
        self.end_trial("paused")
        self.close_ended_trials()
        if self.state != "finished":
            self.switch_off(list(self.held), "pause", from_pose=False)
            self.state = "paused"

    def resume(self) -> None:
        """Leave ``paused`` (the inter-trial interval counts from the last trial's end)."""
        self._log("resume", "resume", "")
        ended = [t.end_s for t in self.trials if t.end_s is not None]
        pause = ended and self.options.inter_trial_interval_s > 0
        self.state = "inter_trial" if pause else "waiting"

    def stop(self, reason: str) -> None:
        """Finish (if not finished) and switch off every output used or declared.

        An experiment stopped before its first pose (Ctrl-C while the model loaded) decided
        nothing and switched nothing on: it sends nothing to its devices.
        """
        self.stopped = True
        if self.state != "finished":
            self.finish(reason)
        if self.started_s is None and not self.action_count:
            return
        done = {a.output for a in self._out if a.command == "off"}
        self.switch_off([o for o in self.outputs if o not in done], "stop", from_pose=False)

    # ----------------------------------------------------------------------------------------
    # Actions and outputs
    # ----------------------------------------------------------------------------------------

    def switch_off(
        self,
        outputs: list[Output],
        reason: str,
        trial: int | None = None,
        from_pose: bool = True,
    ) -> None:
        """Emit an ``off`` for each of ``outputs``.

        ``from_pose`` False: the machine's own switch-off (at a finish, pause or stop), which no
        pose decided: its event carries no keypoint, position or animal.
        """
        for device, channel in outputs:
            self.emit(Action.off(device, channel, reason=reason), trial, from_pose)

    def emit(self, action: Action, trial: int | None = None, from_pose: bool = True) -> None:
        """Log ``action``, follow which outputs it holds, and queue it for this call's return.

        ``from_pose``: whether a pose decided it (its event carries the deciding keypoint).
        """
        if trial is None:
            if self.trial is not None:
                trial = self.trial.index
            elif self._ended:
                trial = self._ended[-1].index
        output = action.output
        self.outputs[output] = None
        if action.holds:
            self.held[output] = self.trial.index if self.trial is not None else None
        else:
            self.held.pop(output, None)
        self.action_count += 1
        self._log_action(action, trial, from_pose)
        self._out.append(action)

    def default_reason(self, name: str) -> str:
        """Return the reason of an action returned without one: the trial's, else ``name``."""
        trial = self.trial or (self._ended[-1] if self._ended else None)
        return f"trial {trial.index}" if trial is not None else name

    def open_call(self) -> None:
        """Start collecting the actions of a new call (update, pause, stop)."""
        self._out = []

    def take_out(self) -> list[Action]:
        """Return the actions emitted in this call, in order, and forget them."""
        out, self._out = self._out, []
        return out

    def declare_output(self, output: Output) -> None:
        """Count ``output`` as used: :meth:`stop` switches it off."""
        self.outputs[output] = None


class ExperimentRuntime:
    """One experiment run: the machinery around the lab's hooks (docs/experiments-internals.md).

    Parameters
    ----------
    experiment
        The lab's experiment; a runtime takes it once (it answers its calls from then on).
    events
        The event log to record into (default: the one given to the experiment's
        ``super().__init__``, else a new in-memory :class:`EventLog`; attach a CSV writer with
        ``runtime.events.attach(EventCsvWriter(path))``).
    """

    def __init__(self, experiment: Experiment, events: EventLog | None = None) -> None:
        if not isinstance(experiment, Experiment):
            raise TypeError(f"ExperimentRuntime runs an Experiment, not {experiment!r}")
        setup = ExperimentSetup.of(experiment)
        options: ExperimentOptions = setup.options
        self.experiment = experiment
        self.keypoint_filter: KeypointFilter = options.keypoint_filter()
        self.machine = TrialMachine(
            options,
            name=lambda: experiment.name,
            log=self.log_event,
            log_action=self._log_action,
            trial_ended=self._trial_end_actions,
        )
        self.triggers = experiment.triggers
        log = events if events is not None else setup.events
        self.recording = EventRecorder(
            log if log is not None else EventLog(), options.event_keypoint, self.triggers
        )
        self.trigger_states = TriggerStates(
            self.triggers, setup.counter, self.recording, self.log_event
        )
        #: How often each trigger became true (docs/experiments.md's ``runtime.trigger_counts``).
        self.trigger_counts = self.trigger_states.counts
        # The experiment's forward prediction (None: off); the loop feeds its lead.
        self.prediction: PosePredictor | None = (
            PosePredictor(options.prediction, options.min_likelihood)
            if options.prediction.enabled
            else None
        )
        #: Why the experiment asked to end the whole session (None: it did not).
        self.session_end_requested: str | None = None
        self._hooks_running = 0  # > 0 while on_start, on_update or on_trial_end runs
        self._started_hook_done = False
        for output in setup.declared_outputs:
            self.machine.declare_output(output)
        setup.run_by(self, experiment.name)

    # --- what the loop, the window and session.json read ---------------------------------------

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name

    @property
    def events(self) -> EventLog:
        """The event log (``events.csv``)."""
        return self.recording.events

    @property
    def state(self) -> ExperimentState:
        """The trial machine's state (docs/experiments-internals.md)."""
        return self.machine.state

    @property
    def now_s(self) -> float | None:
        """The frame time of the latest update (None before the first)."""
        return self.machine.now_s

    @property
    def trial(self) -> Trial | None:
        """The trial in progress (None between trials)."""
        return self.machine.trial

    @property
    def trials(self) -> list[Trial]:
        """Every trial so far, in order."""
        return self.machine.trials

    # --- the loop's calls ----------------------------------------------------------------------

    def start(self, time_s: float | None = None) -> None:
        """Start the session at frame time ``time_s`` (None: at the first update's time)."""
        machine = self.machine
        if machine.state != "idle":
            raise RuntimeError(f"{self.name} has started already (state {machine.state})")
        machine.state = "waiting"
        if time_s is not None:
            self._begin(float(time_s))

    def update(self, observations: AnyObservation) -> list[Action]:
        """Feed one pose update (all cameras' latest observations); return actions to do now."""
        machine = self.machine
        if machine.state == "idle":
            raise RuntimeError(f"call start() before update() ({self.name})")
        self.events.commit()  # the previous update's events, their timing filled
        if machine.finished:
            return []
        if not isinstance(observations, Observation | Observations):
            raise TypeError(f"update() takes an Observation or Observations, not {observations!r}")
        if self.prediction is not None:  # before the triggers, which may read predictions
            observations = self.prediction.apply(observations)
        self.recording.begin_update(observations)
        machine.advance_clock(observations.time_s)
        if machine.started_s is None:
            self._begin(machine.now_s)  # type: ignore[arg-type]
        machine.open_call()
        if machine.session_over():
            reason = f"session duration of {machine.options.session_duration_s:g} s reached"
            self.session_end_requested = reason
            machine.finish(reason)
            return machine.take_out()
        if machine.end_requested is not None:  # an end asked for between updates
            machine.finish(machine.end_requested)
            return machine.take_out()
        triggers = self.trigger_states
        triggers.update(observations)
        if machine.state != "paused":
            machine.advance()
            machine.close_ended_trials()
            if not machine.finished:
                self._decide(observations)
        triggers.count_active(machine.now_s)
        return machine.take_out()

    def pause(self, time_s: float | None = None) -> list[Action]:
        """Pause: end the trial in progress, switch held outputs off, act no more until resume.

        Triggers keep updating while paused (their memory stays current), and the session
        duration keeps counting. ``time_s`` defaults to the latest frame time seen.
        """
        machine = self.machine
        if machine.state in ("idle", "finished", "paused"):
            return []
        machine.advance_clock(time_s)
        machine.open_call()
        machine.pause()
        return machine.take_out()

    def resume(self, time_s: float | None = None) -> list[Action]:
        """Resume after :meth:`pause` (the inter-trial interval counts from the last trial)."""
        machine = self.machine
        if machine.state != "paused":
            return []
        machine.advance_clock(time_s)
        machine.resume()
        return []

    def stop(self, time_s: float | None = None, reason: str = "stopped") -> list[Action]:
        """Finish (if not finished) and switch off every output used or declared.

        ``reason`` is the finish event's detail: ``stopped`` when the user stopped it, what went
        wrong when a failure stopped it. The events stay pending so their times can be filled;
        ``runtime.events.close()`` commits them to the writer and closes it.
        """
        machine = self.machine
        if self._hooks_running:  # from inside a hook: the experiment ends after the update
            self.machine.request_end(reason)
            return []
        if machine.stopped or machine.state == "idle":
            machine.stopped = True
            return []
        machine.advance_clock(time_s)
        machine.open_call()
        machine.stop(reason)
        return machine.take_out()

    def summary(self) -> dict[str, Any]:
        """Trials, event counts and per-trigger counts, for session.json."""
        actions: dict[str, int] = {}
        for event in self.events.of_kind("action"):
            reason = event.action.reason if event.action is not None else event.name
            actions[reason] = actions.get(reason, 0) + 1
        prediction, end = self.prediction, self.session_end_requested
        return {
            "name": self.name,
            "description": self.experiment.description,
            "state": self.state,
            "finish_reason": self.machine.finish_reason,
            "started_s": self.machine.started_s,
            "ended_s": self.machine.ended_s,
            "parameters": {
                **self.experiment.options.trial_timing(),
                **self.keypoint_filter.describe(),
                **({"prediction": prediction.describe()} if prediction else {}),
            },
            "trials": {"count": len(self.trials), "list": [t.as_dict() for t in self.trials]},
            "events": {"count": len(self.events), "by_kind": self.events.counts()},
            "triggers": {
                name: {"times_true": self.trigger_counts[name], "trigger": trigger.describe()}
                for name, trigger in self.triggers.items()
            },
            "actions": {"count": self.machine.action_count, "by_reason": actions},
            **({"session_end_requested": end} if end else {}),
        }

    # --- internals -----------------------------------------------------------------------------

    def _begin(self, time_s: float) -> None:
        self.machine.begin(time_s)
        self.log_event("start", self.name, self.experiment.description)

    @contextmanager
    def _hook_running(self) -> Iterator[None]:
        """Mark a hook of the lab's as running: a ``stop()`` inside it ends after the update."""
        self._hooks_running += 1
        try:
            yield
        finally:
            self._hooks_running -= 1

    def _decide(self, observations: AnyObservation) -> None:
        """Run on_start (once) and on_update; emit their actions; close trials; finish if asked."""
        machine = self.machine
        now = machine.now_s
        assert now is not None
        if not self._started_hook_done:
            self._started_hook_done = True
            with self._hook_running():
                returned = list(self.experiment.on_start(now) or ())
            self._emit_returned(returned, "on_start")
        if machine.end_requested is None:
            with self._hook_running():
                returned = list(self.experiment.on_update(observations, now) or ())
            self._emit_returned(returned, "on_update")
        machine.end_instant_trial()
        machine.close_ended_trials()  # and finishes here when an end was asked for

    def _emit_returned(self, returned: list[Action], hook: str) -> None:
        machine = self.machine
        default = machine.default_reason(self.name)
        for action in returned:
            if not isinstance(action, Action):
                raise TypeError(f"{self.name}.{hook} returned {action!r}, not an Action")
            machine.emit(action if action.reason else action.with_reason(default))

    def _trial_end_actions(self, trial: Trial) -> list[Action]:
        """Run the lab's on_trial_end as a hook."""
        with self._hook_running():
            return list(self.experiment.on_trial_end(trial) or ())

    def _log_action(self, action: Action, trial: int | None, from_pose: bool = True) -> None:
        """Log an ``action`` event, with the positions of the trigger that decided it."""
        self.log_event(
            "action",
            action.device,
            action.describe,
            trial=trial,
            action=action,
            positions=partial(self._action_positions, action) if from_pose else {},
            animal=None if from_pose else "",
        )

    def _action_animal(self, action: Action) -> str:
        """Return the ``animal`` cell of an action: its own, else its deciding trigger's."""
        source = self.recording.source
        if action.animal is not None:
            return animal_label((action.animal,), source)
        name = self.experiment.deciding_trigger(action)
        if name is None:
            return ""
        trigger = ExperimentSetup.of(self.experiment).asked(name)  # names the triggers if none
        changed = trigger.changed_animals()
        if not changed and trigger.animal_states() is None:
            changed = trigger.animals_named
        return animal_label(changed, source)

    def _action_positions(self, action: Action) -> dict[str, Any]:
        """Return the events.csv positions of an action: of the trigger that decided it, if any."""
        recording = self.recording
        name = self.experiment.deciding_trigger(action)
        trigger = self.triggers.get(name) if name is not None else None
        if trigger is None:
            return recording.positions(recording.source, None)
        animal = action.animal
        if animal is None and trigger.animal_states() is not None:
            changed = trigger.changed_animals()
            animal = changed[0] if changed else None
        return recording.trigger_positions(trigger, animal)

    def log_event(
        self,
        kind: EventKind,
        name: str,
        detail: str | Callable[[], str],
        *,
        trial: int | None = None,
        source: Observation | None = None,
        action: Action | None = None,
        positions: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        animal: str | Callable[[], str] | None = None,
    ) -> None:
        """Log an event now, in the trial in progress (experiments.events.EventRecorder).

        ``animal``: the ``animal`` column (None: an action's is found from the action).
        """
        if trial is None and self.machine.trial is not None:
            trial = self.machine.trial.index
        if animal is None:
            animal = partial(self._action_animal, action) if action is not None else ""
        self.recording.record(
            kind,
            name,
            detail,
            time_s=self.machine.now_s,
            trial=trial,
            source=source,
            action=action,
            positions=positions,
            animal=animal,
        )


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
