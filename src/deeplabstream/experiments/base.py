"""The experiment: named triggers, trials and timing around a few small hooks.

An experiment is pure logic: it receives observations and returns the :class:`~experiments.actions.
Action` objects to perform now. It never touches a device, never sleeps and never reads the wall
clock: all time is frame time (:attr:`Observation.time_s`), so replaying a recorded session gives
the same events as the live run.

**What a lab writes** (a subclass of :class:`Experiment`): ``__init__`` (the trial timing, its
triggers), the hooks :meth:`~Experiment.on_start`, :meth:`~Experiment.on_update` (required) and
:meth:`~Experiment.on_trial_end`, which return actions, and in them the calls
:meth:`~Experiment.add_trigger`, :meth:`~Experiment.is_true` / :meth:`~Experiment.rose` /
:meth:`~Experiment.fell`, :meth:`~Experiment.point`, :meth:`~Experiment.start_trial`,
:meth:`~Experiment.end_trial`, :meth:`~Experiment.end_session` and :meth:`~Experiment.log`, and the
read-only state (``now_s``, ``in_trial``, ``trials``, ``state``). The machinery (the trial
machine, :mod:`experiments.trials`; the event log, :mod:`experiments.recording` and
:mod:`experiments.events`; prediction, :mod:`experiments.prediction`; the registered triggers)
lives in one private attribute: a lab's own attribute cannot
shadow it (assigning a name the machinery uses, or defining a method of that name, is refused
with a message saying what to call instead).

Lifecycle (the live loop's calls; each returns the actions to perform at once, where it can have
any)::

    experiment.start(time_s=None)           # None: the session starts at the first update
    actions = experiment.update(obs)        # once per pose update: Observation or Observations
    actions = experiment.pause()            # switches held outputs off; triggers keep updating
    actions = experiment.resume()
    actions = experiment.stop()             # switches every output it used off

States: ``idle`` (before :meth:`Experiment.start`), ``waiting`` (a trial may start),
``in_trial``, ``inter_trial`` (a trial ended less than ``inter_trial_interval_s`` ago), ``paused``
and ``finished`` (``max_trials`` trials done, ``session_duration_s`` reached,
:meth:`Experiment.end_session`, or stopped).

One update, in order:

1. If ``session_duration_s`` has passed since the start, the experiment finishes: nothing else.
2. Every named trigger is updated exactly once (also while paused, so that dwell timers and speed
   windows stay current); each change of state is logged.
3. Paused: nothing more. Otherwise trial timing: a trial that has lasted ``trial_duration_s``
   ends; after ``inter_trial_interval_s`` the state goes from ``inter_trial`` to ``waiting``.
4. :meth:`Experiment.on_start` (the first time only), then :meth:`Experiment.on_update` return
   actions, and may call :meth:`Experiment.start_trial`, :meth:`Experiment.end_trial` and
   :meth:`Experiment.end_session`.
5. A trial with ``trial_duration_s = 0`` ends in the update it started in. Outputs that a trial
   switched on (``on``, endless ``pattern``) are switched off when it ends. After ``max_trials``
   trials have ended, or when the experiment called :meth:`Experiment.end_session`, the
   experiment finishes: its held outputs are switched off after the update's own actions.

Durations compare with a tolerance of 1 ns, so that "30 s after" is exactly 30 s of frame time
despite floating-point sums.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.events import EventKind, EventLog
from deeplabstream.experiments.observation import (
    DEFAULT_HOLD_S,
    DEFAULT_MIN_LIKELIHOOD,
    KeypointFilter,
    Observation,
    Observations,
    Policy,
)
from deeplabstream.experiments.prediction import PosePredictor, PredictionSettings
from deeplabstream.experiments.recording import (
    EventRecorder,
    EventTarget,
    animal_detail,
    animal_label,
    trigger_detail,
)
from deeplabstream.experiments.trials import (
    EPSILON_S,
    STATES,
    ExperimentState,
    Trial,
    TrialMachine,
)
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    keypoints_of,
    select_camera,
)
from deeplabstream.experiments.triggers.geometry import Shape

__all__ = [
    "EPSILON_S",
    "STATES",
    "Experiment",
    "ExperimentState",
    "NamedTrigger",
    "Trial",
]


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


@dataclass
class _TriggerState:
    """The registered triggers and their states (the trigger part of the machinery)."""

    triggers: dict[str, NamedTrigger] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # False -> True transitions per trigger
    states: dict[str, bool] = field(default_factory=dict)
    previous: dict[str, bool] = field(default_factory=dict)
    counter: _Counter = field(default_factory=_Counter)


@dataclass
class _Parts:
    """Everything an experiment's machinery keeps: one private attribute of :class:`Experiment`.

    A lab's class shares the experiment's namespace; keeping the machinery's state here means no
    attribute of the lab's can replace a part of it by accident.
    """

    trials: TrialMachine
    triggers: _TriggerState
    recording: EventRecorder
    keypoint_filter: KeypointFilter
    prediction_settings: PredictionSettings
    prediction: PosePredictor | None
    hooks_running: int = 0  # > 0 while on_start, on_update or on_trial_end runs
    started_hook_done: bool = False


class Experiment(ABC):
    """Base class of every experiment (see the module docstring for the lifecycle).

    The subclass contract (docs/experiments.md, "Writing an experiment class"):

    * ``__init__`` takes no required arguments (the registry builds the class with none), calls
      ``super().__init__(...)`` with the trial timing, then registers its triggers with
      :meth:`add_trigger` (pass :attr:`likelihood` to keypoint triggers to use the experiment's
      likelihood threshold and policy).
    * :meth:`on_update` ``(obs, t) -> list[Action]`` is called on every update while the
      experiment runs (not while paused or finished). It reads triggers with :meth:`rose`,
      :meth:`fell` and :meth:`is_true`, may call :meth:`start_trial` (True when a trial could
      start), :meth:`end_trial`, :meth:`end_session` and :meth:`log`, and returns the actions to
      perform now.
    * Optionally :meth:`on_start` ``(t) -> list[Action]`` once, in the first update, and
      :meth:`on_trial_end` ``(trial) -> list[Action]`` when a trial ends, whatever ended it.

    The machinery's names (``events``, ``trials``, ``state``, ``update``, ``stop``, ...) are
    reserved: a subclass that defines one, or an assignment ``self.events = ...``, is refused with
    a message saying what to call instead. The hooks and :meth:`deciding_trigger`,
    :meth:`shapes` and ``description`` are the names a subclass may define.

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

    __parts: _Parts  # the machinery (set once in __init__; name-mangled, out of a lab's way)

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
        keypoint_filter = KeypointFilter(min_likelihood, policy, hold_s)
        if isinstance(prediction, str):
            prediction = PredictionSettings(prediction)  # type: ignore[arg-type]
        prediction_settings = prediction or PredictionSettings()
        if event_keypoint is not None and not (isinstance(event_keypoint, str) and event_keypoint):
            raise ValueError(f"event_keypoint must be a keypoint name, not {event_keypoint!r}")
        trials = TrialMachine(
            max_trials=max_trials,
            inter_trial_interval_s=inter_trial_interval_s,
            trial_duration_s=trial_duration_s,
            session_duration_s=session_duration_s,
            switch_off_at_trial_end=switch_off_at_trial_end,
            name=self._experiment_name,
            log=self._log,
            log_action=self._log_action,
            trial_ended=self._trial_end_actions,
        )
        trigger_state = _TriggerState()
        parts = _Parts(
            trials=trials,
            triggers=trigger_state,
            recording=EventRecorder(
                events if events is not None else EventLog(), event_keypoint, trigger_state.triggers
            ),
            keypoint_filter=keypoint_filter,
            prediction_settings=prediction_settings,
            # The experiment's forward prediction (None: off); the runtime feeds its lead.
            prediction=PosePredictor(prediction_settings, keypoint_filter.min_likelihood)
            if prediction_settings.enabled
            else None,
        )
        object.__setattr__(self, "_Experiment__parts", parts)  # past the guard, once
        self.name = name or type(self).__name__
        doc = (type(self).__doc__ or "").strip().split("\n")[0]
        self.description = (
            description if description is not None else (type(self).description or doc)
        )

    # ----------------------------------------------------------------------------------------
    # A lab's attribute cannot shadow the machinery
    # ----------------------------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a subclass that defines a name the machinery uses (``stop``, ``events``...)."""
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__:
            if name in _RESERVED:
                raise TypeError(_shadow_message(cls, name, defined=True))

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse ``self.events = ...`` and the like: say what the name is and what to use."""
        if name in _READ_ONLY:
            raise AttributeError(_shadow_message(type(self), name, defined=False))
        object.__setattr__(self, name, value)

    if not TYPE_CHECKING:  # a type checker keeps reporting unknown attributes

        def __getattr__(self, name: str) -> NoReturn:
            """Only for a missing attribute: say so, or that super().__init__() was not called."""
            if "_Experiment__parts" not in self.__dict__:
                raise AttributeError(
                    f"{type(self).__name__}.{name}: the experiment's machinery is missing; call "
                    "super().__init__(...) at the start of __init__"
                )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _experiment_name(self) -> str:
        return self.name

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

    def on_start(self, t: float) -> Iterable[Action]:
        """Return the actions at the session's start (none by default).

        Called once, in the first update that runs the experiment's logic, before
        :meth:`on_update`; the triggers have been read (:meth:`is_true` works). ``t`` is that
        update's frame time.
        """
        return ()

    def on_trial_end(self, trial: Trial) -> Iterable[Action]:
        """Return the actions when ``trial`` ends, whatever ended it (none by default).

        Called after the trial's held outputs were switched off; ``trial.end_reason`` says why
        it ended.
        """
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
        return self._states[name] and animal in self._animals_named(name)

    def rose(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from False to True in this update.

        For an ``ANIMAL = each`` trigger, whether some animal's own state rose (animal
        ``animal``'s, if given; :meth:`animals_rose` says which). ``ANIMAL = any``: its one
        state, or animal ``animal``'s own. Another trigger with ``animal``: its edge, if it reads
        that animal.
        """
        name = self._known(name)
        if animal is None and not self.triggers[name].edges_per_animal:
            return self._states[name] and not self._previous[name]
        rose = self.animals_rose(name)
        return bool(rose) if animal is None else animal in rose

    def fell(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from True to False in this update (as :meth:`rose`)."""
        name = self._known(name)
        if animal is None and not self.triggers[name].edges_per_animal:
            return self._previous[name] and not self._states[name]
        fell = self.animals_fell(name)
        return bool(fell) if animal is None else animal in fell

    def animals_rose(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` rose in this update, in order.

        For ``ANIMAL = any`` and ``each``, each animal's own edge; for another trigger that rose,
        the animals it reads (``ANIMAL = N``: N; a social trigger: its two; else animal 1).
        """
        trigger = self.triggers[self._known(name)]
        if trigger.animal_states() is not None:
            return tuple(trigger.rose_animals())
        rose = self._states[name] and not self._previous[name]
        return self._animals_named(name) if rose else ()

    def animals_fell(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` fell in this update (as above)."""
        trigger = self.triggers[self._known(name)]
        if trigger.animal_states() is not None:
            return tuple(trigger.fell_animals())
        fell = self._previous[name] and not self._states[name]
        return self._animals_named(name) if fell else ()

    def _animals_named(self, name: str) -> tuple[int, ...]:
        """Return the animals a trigger without per-animal states reads (none named: 1)."""
        return self.__parts.recording.target(self.triggers[name]).animals or (1,)

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
            if changed and self.__parts.recording.target(trigger).keypoint is not None:
                return name
        return None

    def shapes(self) -> list[Shape]:
        """Return what the live view draws: every trigger's shapes."""
        return [shape for trigger in self.triggers.values() for shape in trigger.shapes()]

    def is_held(self, device: str, channel: int = 0) -> bool:
        """Whether the output is on until an ``off`` (after an ``on`` or an endless pattern)."""
        return (device, channel) in self.__parts.trials.held

    @property
    def outputs(self) -> tuple[tuple[str, int], ...]:
        """Every (device, channel) used or declared so far (config experiments declare all)."""
        return tuple(self.__parts.trials.outputs)

    def declare_output(self, device: str, channel: int = 0) -> None:
        """Declare an output :meth:`stop` switches off even if no action has used it yet."""
        self.__parts.trials.declare_output(Action.off(device, channel).output)

    # ----------------------------------------------------------------------------------------
    # Trials and the session's end (the trial machine, experiments.trials)
    # ----------------------------------------------------------------------------------------

    @property
    def state(self) -> ExperimentState:
        """``idle``, ``waiting``, ``in_trial``, ``inter_trial``, ``paused`` or ``finished``."""
        return self.__parts.trials.state

    @property
    def in_trial(self) -> bool:
        """Whether a trial is in progress."""
        return self.__parts.trials.trial is not None

    @property
    def trial(self) -> Trial | None:
        """The trial in progress (None between trials)."""
        return self.__parts.trials.trial

    @property
    def trials(self) -> list[Trial]:
        """Every trial so far (started ones included), in order; ``len(self.trials)`` counts."""
        return self.__parts.trials.trials

    @property
    def can_start_trial(self) -> bool:
        """Whether :meth:`start_trial` would start one now."""
        return self.__parts.trials.can_start_trial

    def start_trial(self, cause: str = "") -> bool:
        """Start a trial now if the state allows it (``waiting``, fewer than ``max_trials``).

        Returns whether it started. ``cause`` (a rule's or trigger's name) is logged.
        """
        return self.__parts.trials.start_trial(cause)

    def end_trial(self, reason: str = "ended by the experiment") -> bool:
        """End the trial in progress now; returns whether there was one.

        Its held outputs are switched off (after this update's actions) and
        :meth:`on_trial_end` is called. ``reason`` is the ``trial_end`` event's detail.
        """
        return self.__parts.trials.end_trial(reason)

    def end_session(self, reason: str = "ended by the experiment") -> None:
        """Finish the experiment once this update's actions are out (``reason``: why).

        From :meth:`on_update` (or :meth:`on_start`, :meth:`on_trial_end`): the actions the hook
        returns are performed first, then the trial in progress ends, its held outputs are
        switched off and the experiment finishes (``finish`` event, ``reason``); it acts no more.
        Called outside an update, the experiment finishes at the start of the next one. A
        ``stop()`` inside a hook means the same (``reason`` ``stopped``).
        """
        machine = self.__parts.trials
        if machine.state == "idle":
            raise RuntimeError(f"{self.name}.end_session(): the session has not started")
        machine.request_end(str(reason) or "ended by the experiment")

    def log(self, name: str, detail: object = "") -> None:
        """Write a ``note`` event into ``events.csv`` now: ``name`` and ``detail``.

        For what the experiment decides that is not an action: a staircase's new level, a
        block's change. The row has the update's time, trial and frame, like every event.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"log(name, detail): name must be a non-empty text, not {name!r}")
        if self.__parts.trials.state == "idle":
            raise RuntimeError(
                f"{self.name}.log({name!r}): the session has not started; log from on_start, "
                "on_update or on_trial_end"
            )
        self._log("note", name.strip(), str(detail))

    @property
    def now_s(self) -> float | None:
        """The frame time of the latest update (None before the first); the experiment's clock."""
        return self.__parts.trials.now_s

    @property
    def started_s(self) -> float | None:
        """Frame time of the session's start (None until the first update)."""
        return self.__parts.trials.started_s

    @property
    def ended_s(self) -> float | None:
        """Frame time the experiment finished (None while it runs)."""
        return self.__parts.trials.ended_s

    @property
    def finish_reason(self) -> str:
        """Why it finished (empty while it runs)."""
        return self.__parts.trials.finish_reason

    @property
    def finished(self) -> bool:
        """Whether the experiment has finished (it acts no more)."""
        return self.__parts.trials.finished

    @property
    def max_trials(self) -> int | None:
        """Finish after this many trials (None: no limit)."""
        return self.__parts.trials.max_trials

    @property
    def inter_trial_interval_s(self) -> float:
        """No new trial before this many seconds after one ended."""
        return self.__parts.trials.inter_trial_interval_s

    @property
    def trial_duration_s(self) -> float | None:
        """A trial ends this long after it started (0: one moment; None: until end_trial)."""
        return self.__parts.trials.trial_duration_s

    @property
    def session_duration_s(self) -> float | None:
        """The experiment finishes this long after its start (None: never)."""
        return self.__parts.trials.session_duration_s

    @property
    def switch_off_at_trial_end(self) -> bool:
        """Whether a trial's held outputs are switched off when it ends."""
        return self.__parts.trials.switch_off_at_trial_end

    # ----------------------------------------------------------------------------------------
    # The machinery's other parts: triggers, event log, prediction (read through these names)
    # ----------------------------------------------------------------------------------------

    @property
    def events(self) -> EventLog:
        """The event log (``events.csv``); replace it only before :meth:`start`."""
        return self.__parts.recording.events

    @events.setter
    def events(self, log: EventLog) -> None:
        if not isinstance(log, EventLog) or self.__parts.trials.state != "idle":
            raise AttributeError(_shadow_message(type(self), "events", defined=False))
        self.__parts.recording.events = log

    @property
    def triggers(self) -> dict[str, NamedTrigger]:
        """The registered triggers by name (register with :meth:`add_trigger`)."""
        return self.__parts.triggers.triggers

    @property
    def trigger_counts(self) -> dict[str, int]:
        """How many times each trigger became true."""
        return self.__parts.triggers.counts

    @property
    def keypoint_filter(self) -> KeypointFilter:
        """The experiment's likelihood threshold and policy (``min_likelihood`` ...)."""
        return self.__parts.keypoint_filter

    @property
    def event_keypoint(self) -> str | None:
        """The keypoint events no keypoint trigger decided give positions of (None: default)."""
        return self.__parts.recording.event_keypoint

    @property
    def defer_event_details(self) -> bool:
        """Whether events are made when the loop settles them (the live loop sets it)."""
        return self.__parts.recording.defer_details

    @defer_event_details.setter
    def defer_event_details(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise AttributeError(_shadow_message(type(self), "defer_event_details", defined=False))
        self.__parts.recording.defer_details = value

    @property
    def prediction(self) -> PosePredictor | None:
        """The experiment's forward prediction (None: off); the runtime feeds its lead."""
        return self.__parts.prediction

    @prediction.setter
    def prediction(self, predictor: PosePredictor | None) -> None:
        if predictor is not None and not isinstance(predictor, PosePredictor):
            raise AttributeError(_shadow_message(type(self), "prediction", defined=False))
        self.__parts.prediction = predictor

    @property
    def prediction_settings(self) -> PredictionSettings:
        """How the experiment predicts (``super().__init__(prediction=...)``)."""
        return self.__parts.prediction_settings

    @prediction_settings.setter
    def prediction_settings(self, settings: PredictionSettings) -> None:
        if not isinstance(settings, PredictionSettings):
            raise AttributeError(_shadow_message(type(self), "prediction_settings", defined=False))
        self.__parts.prediction_settings = settings

    # The trigger part's and the event part's own state, under the names their code uses.
    @property
    def _state(self) -> ExperimentState:
        return self.__parts.trials.state

    @property
    def _states(self) -> dict[str, bool]:
        return self.__parts.triggers.states

    @property
    def _previous(self) -> dict[str, bool]:
        return self.__parts.triggers.previous

    @property
    def _counter(self) -> _Counter:
        return self.__parts.triggers.counter

    @property
    def _event_targets(self) -> dict[int, EventTarget]:
        return self.__parts.recording.event_targets

    @property
    def _source(self) -> Observation | None:
        return self.__parts.recording.source

    @property
    def _current(self) -> AnyObservation | None:
        return self.__parts.recording.current

    @property
    def _outputs(self) -> dict[tuple[str, int], None]:
        return self.__parts.trials.outputs

    # ----------------------------------------------------------------------------------------
    # Lifecycle (the live loop's calls)
    # ----------------------------------------------------------------------------------------

    def start(self, time_s: float | None = None) -> None:
        """Start the session at frame time ``time_s`` (None: at the first update's time)."""
        machine = self.__parts.trials
        if machine.state != "idle":
            raise RuntimeError(f"{self.name} has started already (state {machine.state})")
        machine.state = "waiting"
        if time_s is not None:
            self._begin(float(time_s))

    def update(self, observations: AnyObservation) -> list[Action]:
        """Feed one pose update (all cameras' latest observations); return actions to do now."""
        parts = self.__parts
        machine = parts.trials
        if machine.state == "idle":
            raise RuntimeError(f"call {self.name}.start() before update()")
        parts.recording.events.commit()  # the previous update's events, their timing filled
        if machine.finished:
            return []
        if not isinstance(observations, Observation | Observations):
            raise TypeError(f"update() takes an Observation or Observations, not {observations!r}")
        if parts.prediction is not None:  # before the triggers, which may read predictions
            observations = parts.prediction.apply(observations)
        parts.recording.begin_update(observations)
        machine.advance_clock(observations.time_s)
        if machine.started_s is None:
            self._begin(machine.now_s)  # type: ignore[arg-type]
        machine.open_call()
        if machine.session_over():
            machine.finish(f"session duration of {machine.session_duration_s:g} s reached")
            return machine.take_out()
        if machine.end_requested is not None:  # end_session() called between updates
            machine.finish(machine.end_requested)
            return machine.take_out()
        self._update_triggers(observations)
        if machine.state == "paused":
            return machine.take_out()
        machine.advance()
        machine.close_ended_trials()
        if not machine.finished:
            self._decide(observations)
        return machine.take_out()

    def pause(self, time_s: float | None = None) -> list[Action]:
        """Pause: end the trial in progress, switch held outputs off, act no more until resume.

        Triggers keep updating while paused (their memory stays current), and the session
        duration keeps counting. ``time_s`` defaults to the latest frame time seen.
        """
        machine = self.__parts.trials
        if machine.state in ("idle", "finished", "paused"):
            return []
        machine.advance_clock(time_s)
        machine.open_call()
        machine.pause()
        return machine.take_out()

    def resume(self, time_s: float | None = None) -> list[Action]:
        """Resume after :meth:`pause` (the inter-trial interval counts from the last trial)."""
        machine = self.__parts.trials
        if machine.state != "paused":
            return []
        machine.advance_clock(time_s)
        machine.resume()
        return []

    def stop(self, time_s: float | None = None, reason: str = "stopped") -> list[Action]:
        """Finish (if not finished) and switch off every output used or declared.

        ``reason`` is the finish event's detail: ``stopped`` when the user stopped it, what went
        wrong when a failure stopped it. The events stay pending so their times can be filled;
        ``experiment.events.close()`` commits them to the writer and closes it.

        Called from inside a hook (:meth:`on_update`...), it is :meth:`end_session`: the
        update's actions go out first, then the switch-offs, and it returns nothing itself.
        """
        parts = self.__parts
        machine = parts.trials
        if parts.hooks_running:
            self.end_session(reason)
            return []
        if machine.stopped or machine.state == "idle":
            machine.stopped = True
            return []
        machine.advance_clock(time_s)
        machine.open_call()
        machine.stop(reason)
        # Not committed here: the caller fills the switch-off actions' times, then closes the
        # log (``experiment.events.close()`` commits what is pending).
        return machine.take_out()

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
            "state": self.state,
            "finish_reason": self.finish_reason,
            "started_s": self.started_s,
            "ended_s": self.ended_s,
            "parameters": {
                **self.__parts.trials.describe(),
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
            "actions": {"count": self.__parts.trials.action_count, "by_reason": actions},
        }

    # ----------------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------------

    def _begin(self, time_s: float) -> None:
        self.__parts.trials.begin(time_s)
        self._log("start", self.name, self.description)

    @contextmanager
    def _hook_running(self) -> Iterator[None]:
        """Mark a hook of the lab's as running: a ``stop()`` inside it is :meth:`end_session`."""
        parts = self.__parts
        parts.hooks_running += 1
        try:
            yield
        finally:
            parts.hooks_running -= 1

    def _decide(self, observations: AnyObservation) -> None:
        """Run on_start (once) and on_update; emit their actions; close trials; finish if asked."""
        parts = self.__parts
        machine = parts.trials
        now = machine.now_s
        assert now is not None
        if not parts.started_hook_done:
            parts.started_hook_done = True
            with self._hook_running():
                returned = list(self.on_start(now) or ())
            self._emit_returned(returned, "on_start")
        if machine.end_requested is None:
            with self._hook_running():
                returned = list(self.on_update(observations, now) or ())
            self._emit_returned(returned, "on_update")
        machine.end_instant_trial()
        machine.close_ended_trials()  # and finishes here when end_session was called

    def _emit_returned(self, returned: list[Action], hook: str) -> None:
        machine = self.__parts.trials
        default = machine.default_reason(self.name)
        for action in returned:
            if not isinstance(action, Action):
                raise TypeError(f"{self.name}.{hook} returned {action!r}, not an Action")
            machine.emit(action if action.reason else action.with_reason(default))

    def _trial_end_actions(self, trial: Trial) -> list[Action]:
        """Run the lab's on_trial_end as a hook (a stop() inside it is end_session)."""
        with self._hook_running():
            return list(self.on_trial_end(trial) or ())

    def _log_action(self, action: Action, trial: int | None, from_pose: bool = True) -> None:
        """Log an ``action`` event, with the positions of the trigger that decided it.

        One the machine made itself (``from_pose`` False: a finish's, pause's or stop's
        switch-off) was decided by no pose: no keypoint, position or animal is logged for it.
        """
        self._log(
            "action",
            action.device,
            action.describe,
            trial=trial,
            action=action,
            positions=partial(self._action_positions, action) if from_pose else {},
            animal=None if from_pose else "",
        )

    def _update_triggers(self, observations: AnyObservation) -> None:
        self._counter.tick += 1
        for name, trigger in self.triggers.items():
            before = self._states[name]
            now = trigger.update(observations)
            self._previous[name], self._states[name] = before, now
            source = self._source
            if trigger.camera is not None and isinstance(observations, Observations):
                source = observations.by_camera.get(trigger.camera, source)
            if trigger.edges_per_animal:  # ANIMAL = each: every animal's change is an event
                self._log_animal_changes(name, trigger, source)
            elif now != before:
                if now:
                    self.trigger_counts[name] += 1
                changed = self.animals_rose(name) if now else self.animals_fell(name)
                animal = changed[0] if changed and trigger.animal_states() is not None else None
                self._log(
                    "trigger",
                    name,
                    partial(trigger_detail, trigger, now),
                    source=source,
                    positions=partial(self._trigger_positions, trigger, animal),
                    animal=animal_label(changed, source),
                )

    def _log_animal_changes(self, name: str, trigger: Trigger, source: Observation | None) -> None:
        """Log each animal's change of an ``ANIMAL = each`` trigger, in animal order."""
        rose = set(self.animals_rose(name))
        for animal in sorted(rose.union(self.animals_fell(name))):
            now = animal in rose
            if now:
                self.trigger_counts[name] += 1
            self._log(
                "trigger",
                name,
                partial(animal_detail, trigger, animal, now),
                source=source,
                positions=partial(self._trigger_positions, trigger, animal),
                animal=animal_label((animal,), source),
            )

    def _animal_of(self, action: Action | None) -> str | Callable[[], str]:
        """Return the ``animal`` cell of an event: an action's (made later), else empty."""
        return partial(self._action_animal, action) if action is not None else ""

    def _action_animal(self, action: Action) -> str:
        """Return the ``animal`` cell of an action: its own, else its deciding trigger's."""
        if action.animal is not None:
            return animal_label((action.animal,), self._source)
        name = self.deciding_trigger(action)
        if name is None:
            return ""
        changed = self.animals_rose(name) or self.animals_fell(name)
        if not changed and self.triggers[name].animal_states() is None:
            changed = self._animals_named(name)
        return animal_label(changed, self._source)

    def _trigger_positions(self, trigger: Trigger, animal: int | None = None) -> dict[str, Any]:
        """Return the events.csv positions of a trigger's change: of the keypoint it reads."""
        return self.__parts.recording.trigger_positions(trigger, animal)

    def _action_positions(self, action: Action) -> dict[str, Any]:
        """Return the events.csv positions of an action: of the trigger that decided it, if any.

        Of its animal (:attr:`Action.animal`), else of the animal whose change of a per-animal
        trigger (``ANIMAL = any``, ``each``) decided it.
        """
        recording = self.__parts.recording
        name = self.deciding_trigger(action)
        trigger = self.triggers.get(name) if name is not None else None
        if trigger is None:
            return recording.positions(recording.source, None)
        animal = action.animal
        if animal is None and trigger.animal_states() is not None:
            changed = self.animals_rose(trigger.name) or self.animals_fell(trigger.name)
            animal = changed[0] if changed else None
        return recording.trigger_positions(trigger, animal)

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
        animal: str | None = None,
    ) -> None:
        """Log an event now, in the trial in progress (experiments.recording.EventRecorder).

        ``animal``: the ``animal`` column (None: an action's is found from the action).
        """
        if trial is None and self.trial is not None:
            trial = self.trial.index
        self.__parts.recording.record(
            kind,
            name,
            detail,
            time_s=self.now_s,
            trial=trial,
            source=source,
            action=action,
            positions=positions,
            animal=animal if animal is not None else self._animal_of(action),
        )


OVERRIDABLE: frozenset[str] = frozenset(
    {"on_start", "on_update", "on_trial_end", "deciding_trigger", "shapes", "description"}
)
"""The names of :class:`Experiment` a subclass may define: the hooks and two refinements."""

_RESERVED: frozenset[str] = (
    frozenset(
        name
        for name in vars(Experiment)
        if not (name.startswith("__") and name.endswith("__")) and name != "_abc_impl"
    )
    - OVERRIDABLE
)
"""Every name of the machinery: a subclass defining one is refused."""

_READ_ONLY: frozenset[str] = frozenset(
    name
    for name in _RESERVED
    if not (isinstance(vars(Experiment)[name], property) and vars(Experiment)[name].fset)
)
"""The machinery's names an assignment ``self.NAME = ...`` may not replace."""

_WHAT_IT_IS: dict[str, str] = {
    "events": "the experiment's event log (events.csv, an EventLog); write a row of your own "
    "with self.log(name, detail), and keep your own list under another name",
    "trials": "the list of trials so far (count them with len(self.trials)); keep your own "
    "count under another name, e.g. self.rewards_given",
    "trial": "the trial in progress (None between trials); start one with self.start_trial()",
    "state": "the trial machine's state (idle, waiting, in_trial, inter_trial, paused, "
    "finished); keep your own under another name, e.g. self.phase",
    "in_trial": "whether a trial is in progress (start_trial / end_trial change it)",
    "now_s": "the latest update's frame time (on_update's t)",
    "triggers": "the registered triggers; register one with self.add_trigger(name, trigger)",
    "update": "the live loop's call; write on_update(self, obs, t) instead",
    "start": "the live loop's call; write on_start(self, t) for actions at the start",
    "stop": "the live loop's call; to end the session from a hook call self.end_session(reason)",
    "pause": "the window's pause; it ends the trial and switches held outputs off",
    "resume": "the window's resume",
    "summary": "session.json's summary, made by the machinery; log your own figures with "
    "self.log(name, detail)",
    "log": "the call that writes a note into events.csv: self.log(name, detail)",
    "end_trial": "the call that ends the trial in progress: self.end_trial(reason)",
    "end_session": "the call that ends the session after this update: self.end_session(reason)",
}


def _shadow_message(cls: type, name: str, defined: bool) -> str:
    """Say that ``name`` belongs to the experiment's machinery, what it is, and what to do."""
    what = _WHAT_IT_IS.get(name, "part of the experiment's machinery")
    own = f"my_{name.lstrip('_')}"
    if defined:
        return (
            f"{cls.__qualname__} defines {name!r}, which Experiment reserves: {name!r} is {what}. "
            f"Rename yours (e.g. {own}); a subclass defines only "
            f"{', '.join(sorted(OVERRIDABLE))} and names of its own."
        )
    return (
        f"{cls.__qualname__}: self.{name} cannot be assigned: {name!r} is {what}. "
        f"Give your attribute another name (e.g. self.{own})."
    )
