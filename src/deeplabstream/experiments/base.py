"""The experiment: named triggers, trials and timing around one small hook, ``on_update``.

An experiment is pure logic: it receives observations and returns the :class:`~experiments.actions.
Action` objects to perform now. It never touches a device, never sleeps and never reads the wall
clock: all time is frame time (:attr:`Observation.time_s`), so replaying a recorded session gives
the same events as the live run.

Lifecycle (each call returns the actions to perform at once, where it can have any)::

    experiment.start(time_s=None)           # None: the session starts at the first update
    actions = experiment.update(obs)        # once per pose update: Observation or Observations
    actions = experiment.pause()            # switches held outputs off; triggers keep updating
    actions = experiment.resume()
    actions = experiment.stop()             # switches every output it used off

States: ``idle`` (before :meth:`Experiment.start`), ``waiting`` (a trial may start),
``in_trial``, ``inter_trial`` (a trial ended less than ``inter_trial_interval_s`` ago), ``paused``
and ``finished`` (``max_trials`` trials done, ``session_duration_s`` reached, or stopped).

One update, in order:

1. If ``session_duration_s`` has passed since the start, the experiment finishes: nothing else.
2. Every named trigger is updated exactly once (also while paused, so that dwell timers and speed
   windows stay current); each change of state is logged.
3. Paused: nothing more. Otherwise trial timing: a trial that has lasted ``trial_duration_s``
   ends; after ``inter_trial_interval_s`` the state goes from ``inter_trial`` to ``waiting``.
4. :meth:`Experiment.on_update` (the subclass) returns actions, and may call
   :meth:`Experiment.start_trial` / :meth:`Experiment.end_trial`.
5. A trial with ``trial_duration_s = 0`` ends in the update it started in. Outputs that a trial
   switched on (``on``, endless ``pattern``) are switched off when it ends. After ``max_trials``
   trials have ended, the experiment finishes.

Durations compare with a tolerance of 1 ns, so that "30 s after" is exactly 30 s of frame time
despite floating-point sums.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.events import EventKind, EventLog, ExperimentEvent
from deeplabstream.experiments.observation import (
    DEFAULT_HOLD_S,
    DEFAULT_MIN_LIKELIHOOD,
    KeypointFilter,
    Observation,
    Observations,
    Policy,
)
from deeplabstream.experiments.prediction import PosePredictor, PredictionSettings
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    camera_of,
    keypoint_of,
    keypoints_of,
    select_camera,
)
from deeplabstream.experiments.triggers.geometry import Shape

ExperimentState = Literal["idle", "waiting", "in_trial", "inter_trial", "paused", "finished"]
STATES: tuple[str, ...] = ("idle", "waiting", "in_trial", "inter_trial", "paused", "finished")
EPSILON_S = 1e-9
"""Tolerance of duration comparisons (seconds)."""


@dataclass
class Trial:
    """One trial: when it started and ended, what started it and why it ended."""

    index: int
    cause: str
    start_s: float
    end_s: float | None = None
    end_reason: str = ""

    @property
    def duration_s(self) -> float | None:
        """How long it lasted (None while running)."""
        return None if self.end_s is None else self.end_s - self.start_s

    def as_dict(self) -> dict[str, Any]:
        """For session.json."""
        return {
            "index": self.index,
            "cause": self.cause,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "end_reason": self.end_reason,
        }


class _Counter:
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

    def __init__(self, name: str, inner: Trigger, counter: _Counter) -> None:
        super().__init__(inner.camera)
        self.name = name
        self.inner = inner
        self.kind = inner.kind  # type: ignore[misc]
        self.is_event = inner.is_event
        self._counter = counter
        self._seen = -1

    def cameras_read(self) -> tuple[str, ...] | None:
        """Return the wrapped trigger's cameras."""
        return self.inner.cameras_read()

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoints the registered trigger (and its children) read."""
        return keypoints_of(self.inner)

    def animals_read(self) -> tuple[int, ...]:
        """Return the animals its trigger (and the trigger's children) read."""
        return animals_of(self.inner)

    def update(self, obs: AnyObservation) -> bool:
        """Return the wrapped trigger's state, updated on the first call of an experiment update."""
        if self._seen != self._counter.tick:
            self._seen = self._counter.tick
            self.state = bool(self.inner.update(obs))
        return self.state

    def _step(self, obs: Observation) -> bool:  # pragma: no cover - update() is overridden
        raise NotImplementedError

    def reset(self) -> None:
        """Reset the wrapped trigger."""
        self.inner.reset()
        self.state = False
        self._seen = -1

    def describe(self) -> dict[str, Any]:
        """Return the wrapped trigger's description."""
        return self.inner.describe()

    def measurement(self) -> str:
        """Return the wrapped trigger's last measurement."""
        return self.inner.measurement()

    def _params(self) -> dict[str, Any]:
        return {}

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


def _check_seconds(name: str, value: float | None, allow_none: bool, positive: bool = False) -> Any:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a number of seconds, not None")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} s, not {value!r}")
    return float(value)


class Experiment(ABC):
    """Base class of every experiment (see the module docstring for the lifecycle).

    The subclass contract:

    * ``__init__`` takes no required arguments (the registry builds the class with none), calls
      ``super().__init__(...)`` with the trial timing, then registers its triggers with
      :meth:`add_trigger` (pass :attr:`likelihood` to keypoint triggers to use the experiment's
      likelihood threshold and policy).
    * :meth:`on_update` ``(obs, t) -> list[Action]`` is called on every update while the
      experiment runs (not while paused or finished). It reads triggers with :meth:`rose`,
      :meth:`fell` and :meth:`is_true`, may call :meth:`start_trial` (True when a trial could
      start) and :meth:`end_trial`, and returns the actions to perform now.
    * Optionally :meth:`on_trial_end` ``(trial) -> list[Action]`` for actions when a trial ends,
      whatever ended it.

    Parameters
    ----------
    max_trials
        Finish after this many trials (None: no limit).
    inter_trial_interval_s
        After a trial ends, no new trial before this many seconds of frame time.
    trial_duration_s
        A trial ends this long after it started. 0: a trial is one moment (it ends in the update
        it started in). None: it lasts until :meth:`end_trial` (or the end of the session).
    session_duration_s
        The experiment finishes itself this long after its start (None: never).
    min_likelihood, policy, hold_s
        Keypoints below ``min_likelihood`` are not seen; for ``hold_s`` seconds (default 0.5)
        after a keypoint was last seen, a trigger keeps its state (``policy="missing"``) or
        reads the last position (``"hold"``), as in :class:`~experiments.triggers.base.
        KeypointTrigger`. Offered to triggers via :attr:`likelihood`; :meth:`point` applies
        the :class:`~experiments.observation.KeypointFilter` (positions only).
    switch_off_at_trial_end
        Switch off, when a trial ends, the outputs it switched on (``on``, endless ``pattern``).
    name, description
        For the event log and session.json (default: the class's name and docstring line).
    events
        The event log to record into (default: a new in-memory :class:`EventLog`; attach a CSV
        writer with ``experiment.events.attach(EventCsvWriter(path))``).
    prediction
        Forward prediction (:mod:`experiments.prediction`): a
        :class:`~experiments.prediction.PredictionSettings`, or a method name
        (``"constant-velocity"``, ``"kalman"``) with the default parameters; None or ``"off"``:
        none. With it, every observation carries :attr:`Observation.predicted`, triggers built
        with ``predicted=True`` read it, and ``events.csv`` logs it.
    event_keypoint
        The keypoint ``events.csv`` gives positions of for events no keypoint trigger decided
        (None: the first keypoint a registered trigger reads, else the camera's first).
    """

    description: str = ""
    """One line saying what the experiment does (default: the docstring's first line)."""

    def __init__(
        self,
        *,
        max_trials: int | None = None,
        inter_trial_interval_s: float = 0.0,
        trial_duration_s: float | None = 0.0,
        session_duration_s: float | None = None,
        min_likelihood: float = DEFAULT_MIN_LIKELIHOOD,
        policy: Policy = "missing",
        hold_s: float = DEFAULT_HOLD_S,
        switch_off_at_trial_end: bool = True,
        name: str | None = None,
        description: str | None = None,
        events: EventLog | None = None,
        prediction: PredictionSettings | str | None = None,
        event_keypoint: str | None = None,
    ) -> None:
        if max_trials is not None and (
            isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1
        ):
            raise ValueError(f"max_trials must be a whole number >= 1 or None, not {max_trials!r}")
        self.max_trials = max_trials
        self.inter_trial_interval_s = _check_seconds(
            "inter_trial_interval_s", inter_trial_interval_s, False
        )
        self.trial_duration_s = _check_seconds("trial_duration_s", trial_duration_s, True)
        self.session_duration_s = _check_seconds(
            "session_duration_s", session_duration_s, True, positive=True
        )
        self.keypoint_filter = KeypointFilter(min_likelihood, policy, hold_s)
        self.switch_off_at_trial_end = bool(switch_off_at_trial_end)
        self.name = name or type(self).__name__
        doc = (type(self).__doc__ or "").strip().split("\n")[0]
        self.description = (
            description if description is not None else (type(self).description or doc)
        )
        self.events = events if events is not None else EventLog()
        if isinstance(prediction, str):
            prediction = PredictionSettings(prediction)  # type: ignore[arg-type]
        self.prediction_settings = prediction or PredictionSettings()
        # The experiment's forward prediction (None: off); the runtime feeds its lead estimator.
        self.prediction: PosePredictor | None = (
            PosePredictor(self.prediction_settings, self.keypoint_filter.min_likelihood)
            if self.prediction_settings.enabled
            else None
        )
        if event_keypoint is not None and not (isinstance(event_keypoint, str) and event_keypoint):
            raise ValueError(f"event_keypoint must be a keypoint name, not {event_keypoint!r}")
        self.event_keypoint = event_keypoint

        self.triggers: dict[str, NamedTrigger] = {}
        self.trigger_counts: dict[str, int] = {}  # False -> True transitions per trigger
        self._states: dict[str, bool] = {}
        self._previous: dict[str, bool] = {}
        self._event_targets: dict[int, _EventTarget] = {}  # by id(trigger): _event_target
        # Set by a loop that settles the events itself once the update's commands are out
        # (live.processes.dispatch); off, every event is made when it is logged.
        self.defer_event_details = False
        self._counter = _Counter()

        self.trials: list[Trial] = []
        self.trial: Trial | None = None  # the trial in progress
        self.started_s: float | None = None
        self.ended_s: float | None = None
        self.finish_reason = ""
        self.now_s: float | None = None  # the latest frame time seen
        self._state: ExperimentState = "idle"
        self._stopped = False
        self._source: Observation | None = None  # the observation that prompted this update
        self._current: AnyObservation | None = None  # this update's observations (predicted)
        self._out: list[Action] = []
        self._ended: list[Trial] = []  # trials ended whose outputs are not yet switched off
        self._held: dict[tuple[str, int], int | None] = {}  # output -> trial that switched it on
        self._outputs: dict[tuple[str, int], None] = {}  # every output used or declared
        self._action_count = 0

    # ----------------------------------------------------------------------------------------
    # The subclass contract
    # ----------------------------------------------------------------------------------------

    @abstractmethod
    def on_update(self, obs: AnyObservation, t: float) -> Iterable[Action]:
        """Return the experiment's logic for one update; return the actions to perform now.

        Parameters
        ----------
        obs
            What :meth:`update` received: one camera's :class:`Observation`, or
            :class:`Observations` of several cameras paired by time.
        t
            The frame time of this update, seconds (the experiment's clock).
        """

    def on_trial_end(self, trial: Trial) -> Iterable[Action]:
        """Actions when ``trial`` ends, whatever ended it (none by default)."""
        return ()

    # ----------------------------------------------------------------------------------------
    # Triggers
    # ----------------------------------------------------------------------------------------

    def add_trigger(self, name: str, trigger: Trigger) -> NamedTrigger:
        """Register ``trigger`` as ``name``; the experiment updates it once per update.

        Use the returned object (not ``trigger``) as the child of combinators registered later,
        so that it is still updated once per update. Its state changes are logged and its
        False -> True transitions counted in :meth:`summary`.
        """
        if self._state != "idle":
            raise RuntimeError("add triggers before start()")
        if not name or any(c.isspace() or c == "," for c in name):
            raise ValueError(f"trigger name must be a word without spaces or commas, not {name!r}")
        if name in self.triggers:
            raise ValueError(f"a trigger named {name!r} is registered already")
        if not isinstance(trigger, Trigger):
            raise TypeError(f"{name!r} must be a Trigger, not {trigger!r}")
        named = NamedTrigger(name, trigger, self._counter)
        self.triggers[name] = named
        self.trigger_counts[name] = 0
        self._states[name] = self._previous[name] = False
        return named

    def is_true(self, name: str) -> bool:
        """Return the state of trigger ``name`` after this update."""
        return self._states[self._known(name)]

    def rose(self, name: str) -> bool:
        """Whether trigger ``name`` went from False to True in this update."""
        name = self._known(name)
        return self._states[name] and not self._previous[name]

    def fell(self, name: str) -> bool:
        """Whether trigger ``name`` went from True to False in this update."""
        name = self._known(name)
        return self._previous[name] and not self._states[name]

    def _known(self, name: str) -> str:
        if name not in self._states:
            known = ", ".join(self.triggers) or "none"
            raise KeyError(f"no trigger named {name!r}; triggers: {known}")
        return name

    @property
    def likelihood(self) -> dict[str, Any]:
        """``min_likelihood``, ``policy``, ``hold_s`` as keyword arguments for keypoint triggers."""
        f = self.keypoint_filter
        return {"min_likelihood": f.min_likelihood, "policy": f.policy, "hold_s": f.hold_s}

    def point(
        self,
        obs: AnyObservation,
        keypoint: str,
        camera: str | None = None,
        predicted: bool = False,
    ) -> tuple[float, float] | None:
        """``(x, y)`` of ``keypoint`` after the experiment's likelihood policy (None: not seen).

        ``predicted=True``: where forward prediction puts it when the command reaches the
        device (the experiment must predict).
        """
        selected = select_camera(obs, camera, f"experiment {self.name!r}")
        if selected is None:
            return None
        return self.keypoint_filter.point(selected, keypoint, predicted)

    def deciding_trigger(self, action: Action) -> str | None:
        """Return the name of the trigger that decided ``action``, for its ``events.csv`` positions.

        By default the first registered trigger that changed state in this update and reads a
        keypoint; None when there is none (the event then logs :attr:`event_keypoint`).
        Subclasses that know better (a config's rules) override it.
        """
        for name, trigger in self.triggers.items():
            changed = self._states[name] != self._previous[name]
            if changed and self._event_target(trigger).keypoint is not None:
                return name
        return None

    def shapes(self) -> list[Shape]:
        """Return what the live view draws: every trigger's shapes."""
        return [shape for trigger in self.triggers.values() for shape in trigger.shapes()]

    def is_held(self, device: str, channel: int = 0) -> bool:
        """Whether the output is on until an ``off`` (after an ``on`` or an endless pattern)."""
        return (device, channel) in self._held

    @property
    def outputs(self) -> tuple[tuple[str, int], ...]:
        """Every (device, channel) used or declared so far (config experiments declare all)."""
        return tuple(self._outputs)

    def declare_output(self, device: str, channel: int = 0) -> None:
        """Return an output :meth:`stop` switches off even if no action has used it yet."""
        self._outputs[Action.off(device, channel).output] = None

    # ----------------------------------------------------------------------------------------
    # Trials
    # ----------------------------------------------------------------------------------------

    @property
    def state(self) -> ExperimentState:
        """``idle``, ``waiting``, ``in_trial``, ``inter_trial``, ``paused`` or ``finished``."""
        return self._state

    @property
    def in_trial(self) -> bool:
        """Whether a trial is in progress."""
        return self.trial is not None

    @property
    def can_start_trial(self) -> bool:
        """Whether :meth:`start_trial` would start one now."""
        return self._state == "waiting" and (
            self.max_trials is None or len(self.trials) < self.max_trials
        )

    def start_trial(self, cause: str = "") -> bool:
        """Start a trial now if the state allows it (``waiting``, fewer than ``max_trials``).

        Returns whether it started. ``cause`` (a rule's or trigger's name) is logged.
        """
        if not self.can_start_trial:
            return False
        assert self.now_s is not None
        trial = Trial(len(self.trials) + 1, cause or self.name, self.now_s)
        self.trials.append(trial)
        self.trial = trial
        self._state = "in_trial"
        self._log("trial_start", trial.cause, "", trial=trial.index)
        return True

    def end_trial(self, reason: str = "ended by the experiment") -> bool:
        """End the trial in progress now; returns whether there was one.

        Its held outputs are switched off (after this update's actions) and
        :meth:`on_trial_end` is called.
        """
        trial = self.trial
        if trial is None:
            return False
        assert self.now_s is not None
        trial.end_s, trial.end_reason = self.now_s, reason
        self.trial = None
        self._ended.append(trial)
        self._log("trial_end", trial.cause, reason, trial=trial.index)
        if self._state == "in_trial":
            self._state = "waiting" if self.inter_trial_interval_s <= 0 else "inter_trial"
        return True

    # ----------------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------------

    def start(self, time_s: float | None = None) -> None:
        """Start the session at frame time ``time_s`` (None: at the first update's time)."""
        if self._state != "idle":
            raise RuntimeError(f"{self.name} has started already (state {self._state})")
        self._state = "waiting"
        if time_s is not None:
            self._begin(float(time_s))

    def update(self, observations: AnyObservation) -> list[Action]:
        """Feed one pose update (all cameras' latest observations); return actions to do now."""
        if self._state == "idle":
            raise RuntimeError(f"call {self.name}.start() before update()")
        self.events.commit()  # the previous update's events, their timing filled in by now
        if self._state == "finished":
            return []
        if not isinstance(observations, Observation | Observations):
            raise TypeError(f"update() takes an Observation or Observations, not {observations!r}")
        if self.prediction is not None:  # before the triggers, which may read predictions
            observations = self.prediction.apply(observations)
        self._source = _prompting(observations)
        self._current = observations
        self._advance_clock(observations.time_s)
        if self.started_s is None:
            self._begin(self.now_s)  # type: ignore[arg-type]
        self._out = []
        assert self.started_s is not None and self.now_s is not None
        if (
            self.session_duration_s is not None
            and self.now_s - self.started_s >= self.session_duration_s - EPSILON_S
        ):
            self._finish(f"session duration of {self.session_duration_s:g} s reached")
            return self._take_out()
        self._update_triggers(observations)
        if self._state == "paused":
            return self._take_out()
        self._advance_trials()
        self._close_ended_trials()
        if self._state != "finished":
            returned = list(self.on_update(observations, self.now_s) or ())
            trial = self.trial or (self._ended[-1] if self._ended else None)
            default = f"trial {trial.index}" if trial is not None else self.name
            for action in returned:
                if not isinstance(action, Action):
                    raise TypeError(f"{self.name}.on_update returned {action!r}, not an Action")
                self._emit(action if action.reason else action.with_reason(default))
            if self.trial is not None and self.trial_duration_s == 0:
                self.end_trial("instant trial (trial duration 0)")
            self._close_ended_trials()
        return self._take_out()

    def pause(self, time_s: float | None = None) -> list[Action]:
        """Pause: end the trial in progress, switch held outputs off, act no more until resume.

        Triggers keep updating while paused (their memory stays current), and the session
        duration keeps counting. ``time_s`` defaults to the latest frame time seen.
        """
        if self._state in ("idle", "finished", "paused"):
            return []
        self._advance_clock(time_s)
        self._out = []
        self._log("pause", "pause", "")
        self.end_trial("paused")
        self._close_ended_trials()
        if self._state != "finished":
            self._switch_off(list(self._held), "pause")
            self._state = "paused"
        return self._take_out()

    def resume(self, time_s: float | None = None) -> list[Action]:
        """Resume after :meth:`pause` (the inter-trial interval counts from the last trial)."""
        if self._state != "paused":
            return []
        self._advance_clock(time_s)
        self._log("resume", "resume", "")
        ended = [t.end_s for t in self.trials if t.end_s is not None]
        self._state = "inter_trial" if ended and self.inter_trial_interval_s > 0 else "waiting"
        return []

    def stop(self, time_s: float | None = None, reason: str = "stopped") -> list[Action]:
        """Finish (if not finished) and switch off every output used or declared.

        ``reason`` is the finish event's detail: ``stopped`` when the user stopped it, what went
        wrong when a failure stopped it. The events stay pending so their times can be filled;
        ``experiment.events.close()`` commits them to the writer and closes it.
        """
        if self._stopped or self._state == "idle":
            self._stopped = True
            return []
        self._stopped = True
        self._advance_clock(time_s)
        self._out = []
        if self._state != "finished":
            self._finish(reason)
        done = {a.output for a in self._out if a.command == "off"}
        self._switch_off([o for o in self._outputs if o not in done], "stop")
        # Not committed here: the caller fills the switch-off actions' times, then closes the
        # log (``experiment.events.close()`` commits what is pending).
        return self._take_out()

    @property
    def finished(self) -> bool:
        """Whether the experiment has finished (it acts no more)."""
        return self._state == "finished"

    # ----------------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Trials, event counts and per-trigger counts, for session.json."""
        actions: dict[str, int] = {}
        for event in self.events.of_kind("action"):
            reason = event.action.reason if event.action is not None else event.name
            actions[reason] = actions.get(reason, 0) + 1
        return {
            "name": self.name,
            "description": self.description,
            "state": self._state,
            "finish_reason": self.finish_reason,
            "started_s": self.started_s,
            "ended_s": self.ended_s,
            "parameters": {
                "max_trials": self.max_trials,
                "inter_trial_interval_s": self.inter_trial_interval_s,
                "trial_duration_s": self.trial_duration_s,
                "session_duration_s": self.session_duration_s,
                "switch_off_at_trial_end": self.switch_off_at_trial_end,
                **self.keypoint_filter.describe(),
                **({"prediction": self.prediction.describe()} if self.prediction else {}),
            },
            "trials": {
                "count": len(self.trials),
                "list": [trial.as_dict() for trial in self.trials],
            },
            "events": {"count": len(self.events), "by_kind": self.events.counts()},
            "triggers": {
                name: {"times_true": self.trigger_counts[name], "trigger": trigger.describe()}
                for name, trigger in self.triggers.items()
            },
            "actions": {"count": self._action_count, "by_reason": actions},
        }

    # ----------------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------------

    def _begin(self, time_s: float) -> None:
        self.started_s = time_s
        self._advance_clock(time_s)
        self._log("start", self.name, self.description)

    def _advance_clock(self, time_s: float | None) -> None:
        if time_s is None:
            return
        if not math.isfinite(time_s):
            raise ValueError(f"frame time must be finite, not {time_s!r}")
        self.now_s = float(time_s) if self.now_s is None else max(self.now_s, float(time_s))

    def _update_triggers(self, observations: AnyObservation) -> None:
        self._counter.tick += 1
        for name, trigger in self.triggers.items():
            before = self._states[name]
            now = trigger.update(observations)
            self._previous[name], self._states[name] = before, now
            if now != before:
                if now:
                    self.trigger_counts[name] += 1
                source = self._source
                if trigger.camera is not None and isinstance(observations, Observations):
                    source = observations.by_camera.get(trigger.camera, source)
                self._log(
                    "trigger",
                    name,
                    partial(_trigger_detail, trigger, now),
                    source=source,
                    positions=partial(self._trigger_positions, trigger),
                )

    def _advance_trials(self) -> None:
        now = self.now_s
        assert now is not None
        trial = self.trial
        duration = self.trial_duration_s
        if (
            trial is not None
            and duration is not None
            and duration > 0
            and now - trial.start_s >= duration - EPSILON_S
        ):
            self.end_trial(f"trial duration of {duration:g} s reached")
        if self._state == "inter_trial":
            last_end = self.trials[-1].end_s if self.trials else None
            if last_end is None or now - last_end >= self.inter_trial_interval_s - EPSILON_S:
                self._state = "waiting"

    def _close_ended_trials(self) -> None:
        """Switch off what ended trials held, run on_trial_end, finish after max_trials."""
        while self._ended:
            trial = self._ended.pop(0)
            if self.switch_off_at_trial_end:
                held = [o for o, owner in self._held.items() if owner == trial.index]
                self._switch_off(held, f"trial {trial.index} ended", trial.index)
            for action in self.on_trial_end(trial) or ():
                label = f"trial {trial.index} ended"
                self._emit(action if action.reason else action.with_reason(label), trial.index)
        if (
            self._state != "finished"
            and self.trial is None
            and self.max_trials is not None
            and len(self.trials) >= self.max_trials
        ):
            self._finish(f"{self.max_trials} trials done")

    def _finish(self, reason: str) -> None:
        if self._state == "finished":
            return
        self.end_trial(reason)
        self._state = "finished"  # before closing trials: no second finish for max_trials
        self._close_ended_trials()
        self._switch_off(list(self._held), "finish")
        self.finish_reason = reason
        self.ended_s = self.now_s
        self._log("finish", self.name, reason)

    def _switch_off(
        self, outputs: list[tuple[str, int]], reason: str, trial: int | None = None
    ) -> None:
        for device, channel in outputs:
            self._emit(Action.off(device, channel, reason=reason), trial)

    def _emit(self, action: Action, trial: int | None = None) -> None:
        """Log ``action``, follow which outputs it holds, and queue it for this call's return."""
        if trial is None:
            if self.trial is not None:
                trial = self.trial.index
            elif self._ended:
                trial = self._ended[-1].index
        output = action.output
        self._outputs[output] = None
        if action.holds:
            self._held[output] = self.trial.index if self.trial is not None else None
        else:
            self._held.pop(output, None)
        self._action_count += 1
        self._log(
            "action",
            action.device,
            action.describe,
            trial=trial,
            action=action,
            positions=partial(self._action_positions, action),
        )
        self._out.append(action)

    def _trigger_positions(self, trigger: Trigger) -> dict[str, Any]:
        """Return the events.csv positions of a trigger's change: of the keypoint it reads."""
        return self._positions(self._source_of(trigger), self._event_target(trigger).keypoint)

    def _action_positions(self, action: Action) -> dict[str, Any]:
        """Return the events.csv positions of an action: of the trigger that decided it, if any."""
        name = self.deciding_trigger(action)
        trigger = self.triggers.get(name) if name is not None else None
        if trigger is None:
            return self._positions(self._source, None)
        return self._positions(self._source_of(trigger), self._event_target(trigger).keypoint)

    def _source_of(self, trigger: Trigger) -> Observation | None:
        """Return this update's observation of the keypoint that ``trigger`` names (keypoint_of).

        A trigger of another animal than animal 1 (``ANIMAL = 2``, or a social trigger whose
        first animal is not 1) gets that animal's keypoints, so the logged position is its own.
        """
        target = self._event_target(trigger)
        source = self._source
        if target.camera is not None and isinstance(self._current, Observations):
            source = self._current.by_camera.get(target.camera, self._source)
        animals = target.animals
        if source is not None and animals and animals[0] != 1 and source.animals is not None:
            return source.for_animal(animals[0])
        return source

    def _event_target(self, trigger: Trigger) -> _EventTarget:
        """Return what ``trigger``'s events log: its keypoint, camera and animals (cached).

        They never change while a trigger lives, and finding them walks the trigger's
        attributes and children: done once, not on every event (an event is logged before
        the update's decision, so its cost is the loop's).
        """
        target = self._event_targets.get(id(trigger))
        if target is None or target.trigger is not trigger:
            target = _EventTarget(
                trigger, keypoint_of(trigger), camera_of(trigger), animals_of(trigger)
            )
            self._event_targets[id(trigger)] = target
        return target

    def _positions(self, source: Observation | None, keypoint: str | None) -> dict[str, Any]:
        """``keypoint``'s measured and predicted position in ``source`` (event columns).

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
        for trigger in self.triggers.values():
            found = self._event_target(trigger).keypoint
            if found is not None and found in source.names:
                return found
        return source.names[0] if source.names else ""

    def _take_out(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _log(
        self,
        kind: EventKind,
        name: str,
        detail: str | Callable[[], str],
        *,
        trial: int | None = None,
        source: Observation | None = None,
        action: Action | None = None,
        positions: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Log an event; ``detail`` and ``positions`` may be given as functions that make them.

        With :attr:`defer_event_details` (the live loop sets it), such functions run only when
        the loop settles the events, after the update's commands are out: the decision does not
        wait for formatting. They read the update's state, which holds until the next update.
        """
        if trial is None and self.trial is not None:
            trial = self.trial.index
        source = source if source is not None else self._source
        time_s = self.now_s if self.now_s is not None else math.nan

        def make() -> ExperimentEvent:
            where = positions() if callable(positions) else positions
            return ExperimentEvent(
                time_s,
                kind,
                name,
                detail() if callable(detail) else detail,
                trial,
                camera=source.camera if source is not None else "",
                frame_index=source.frame_index if source is not None else None,
                camera_timestamp=source.time_s if source is not None else None,
                host_timestamp=getattr(source, "host_time_s", None),
                action=action,
                **(where or {}),
            )

        if self.defer_event_details and (callable(detail) or callable(positions)):
            self.events.defer(make)
        else:
            self.events.record(make())


def _trigger_detail(trigger: Trigger, state: bool) -> str:
    """``true``/``false`` and what the trigger measured (a light's levels...)."""
    measured = trigger.measurement()
    return ("true" if state else "false") + (f" {measured}" if measured else "")


@dataclass(frozen=True)
class _EventTarget:
    """What a trigger's events name: its keypoint, its camera and the animals it reads."""

    trigger: Trigger
    keypoint: str | None
    camera: str | None
    animals: tuple[int, ...]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _prompting(observations: AnyObservation) -> Observation | None:
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
