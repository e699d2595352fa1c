"""The experiment a lab writes: three hooks, a few calls, some read-only state.

What a lab writes and the calls it makes: docs/experiments.md (Writing an experiment class).
Each call is written once, here, against the parts of the runtime that runs the experiment
(:class:`ExperimentContext`: its trial machine, trigger states, keypoint filter, event log).
The trigger questions go to the trigger registered under the name (:class:`NamedTrigger`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol, cast

from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.events import EventKind, EventLog
from deeplabstream.experiments.observation import KeypointFilter
from deeplabstream.experiments.options import ExperimentOptions
from deeplabstream.experiments.prediction import PredictionSettings
from deeplabstream.experiments.trial import EPSILON_S, STATES, ExperimentState, Output, Trial
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    Trigger,
    animals_of,
    keypoint_of,
    keypoints_of,
    select_camera,
)
from deeplabstream.experiments.triggers.geometry import Shape

__all__ = [
    "EPSILON_S",
    "STATES",
    "Experiment",
    "ExperimentContext",
    "ExperimentState",
    "NamedTrigger",
    "Trial",
]


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


class TrialAnswers(Protocol):
    """The trial state and its calls (the engine's ``TrialMachine``)."""

    @property
    def state(self) -> ExperimentState: ...
    @property
    def now_s(self) -> float | None: ...
    @property
    def trial(self) -> Trial | None: ...
    @property
    def trials(self) -> list[Trial]: ...
    @property
    def held(self) -> Mapping[Output, int | None]: ...
    @property
    def can_start_trial(self) -> bool: ...
    def start_trial(self, cause: str) -> bool: ...
    def end_trial(self, reason: str) -> bool: ...
    def request_end(self, reason: str) -> None: ...
    def declare_output(self, output: Output) -> None: ...


class ExperimentContext(Protocol):
    """The parts of its runtime that an experiment's calls use; the runtime injects itself.

    The lab's calls are :class:`Experiment`'s methods, written once there against these parts.
    """

    session_end_requested: str | None

    @property
    def machine(self) -> TrialAnswers:
        """The state, the trials and the held outputs."""
        ...

    @property
    def keypoint_filter(self) -> KeypointFilter:
        """The experiment's likelihood policy, kept across updates."""
        ...

    def log_event(self, kind: EventKind, name: str, detail: str) -> None:
        """Record an event now, in the trial in progress."""
        ...


def _not_running(part: str) -> RuntimeError:
    """Return the error of a call to an experiment no runtime holds: it says how to run it."""
    return RuntimeError(
        f"the experiment is not running (its runtime's {part} answers this call): "
        "ExperimentRuntime(experiment).start(), then .update(obs) (docs/experiments.md)"
    )


class _NotRunning:
    """The context of an experiment no runtime holds: every question says how to run it."""

    def __getattr__(self, name: str) -> NoReturn:
        raise _not_running(name)


#: The runtime's own calls, which a lab's class once shared: what to use instead.
_RUNTIME_CALLS = frozenset({"start", "update", "pause", "resume", "summary", "events"})

#: Where an Experiment keeps its :class:`ExperimentSetup` (Python's private name of ``__setup``).
_SETUP_ATTRIBUTE = "_Experiment__setup"


class ExperimentSetup:
    """What the runtime reads of a lab's experiment and injects into it: none of it lab API.

    Made by ``super().__init__``; the runtime and the session's checks read it with :meth:`of`.
    """

    __slots__ = ("context", "counter", "declared", "events", "options", "triggers")

    def __init__(self, options: ExperimentOptions, events: EventLog | None) -> None:
        self.options = options
        #: The event log given to ``super().__init__`` (None: the runtime makes one).
        self.events = events
        self.triggers: dict[str, NamedTrigger] = {}
        #: The update count the registered triggers compare against (the runtime advances it).
        self.counter = UpdateCounter()
        self.declared: dict[Output, None] = {}
        # every part it is asked for raises, which no Protocol can say
        self.context = cast(ExperimentContext, _NotRunning())

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentSetup:
        """Return ``experiment``'s setup (it exists once ``super().__init__`` ran)."""
        setup = vars(experiment).get(_SETUP_ATTRIBUTE)
        if not isinstance(setup, cls):
            raise TypeError(
                f"{type(experiment).__name__}: the experiment is not set up; call "
                "super().__init__(...) at the start of __init__"
            )
        return setup

    @property
    def running(self) -> bool:
        """Whether a runtime answers the experiment's calls."""
        return not isinstance(self.context, _NotRunning)

    @property
    def declared_outputs(self) -> tuple[Output, ...]:
        """The outputs the experiment declared (the end switches them off)."""
        return tuple(self.declared)

    def register(self, name: str, trigger: Trigger) -> NamedTrigger:
        """Register ``trigger`` as ``name`` (see :meth:`Experiment.add_trigger`)."""
        if self.running:
            raise RuntimeError("add triggers in __init__, before the experiment runs")
        if not name or any(c.isspace() or c == "," for c in name):
            raise ValueError(f"trigger name must be a word without spaces or commas, not {name!r}")
        if name in self.triggers:
            raise ValueError(f"a trigger named {name!r} is registered already")
        if not isinstance(trigger, Trigger):
            raise TypeError(f"{name!r} must be a Trigger, not {trigger!r}")
        named = NamedTrigger(name, trigger, self.counter)
        self.triggers[name] = named
        return named

    def asked(self, name: str) -> NamedTrigger:
        """Return the registered trigger ``name``, asked about a running experiment's update."""
        if not self.running:
            raise _not_running("update of its triggers")
        trigger = self.triggers.get(name)
        if trigger is None:
            known = ", ".join(self.triggers) or "none"
            raise KeyError(f"no trigger named {name!r}; triggers: {known}")
        return trigger

    def declare(self, output: Output) -> None:
        """Declare ``output``, to the runtime too when one runs the experiment."""
        self.declared[output] = None
        if self.running:
            self.context.machine.declare_output(output)

    def run_by(self, context: ExperimentContext, name: str) -> None:
        """Be answered by ``context`` from now on (its runtime calls this once)."""
        if self.running:
            raise RuntimeError(f"experiment {name!r} is run by another runtime already")
        self.context = context


class Experiment(ABC):
    """Base class of every experiment: the hooks a lab writes and the calls it makes.

    The subclass contract: docs/experiments.md ("Writing an experiment class"). ``__init__`` takes
    no required arguments (the registry builds the class with none) and calls
    ``super().__init__(...)`` first; that takes :class:`~experiments.options.ExperimentOptions`'
    fields, ``name``, ``description`` (default: the class's name, its docstring's first line) and
    ``events``.
    """

    description: str = ""
    """One line saying what the experiment does (default: the docstring's first line)."""

    reads: ClassVar[tuple[str, ...]] = ()
    """What ``on_update`` reads of an observation besides keypoints: ``"frame"`` (the image),
    ``"depth"``; ``deeplabstream-verify`` re-derives decisions from the recorded keypoints and
    says what it could not re-derive."""

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        events: EventLog | None = None,
        prediction: PredictionSettings | str | None = None,
        **options: Any,
    ) -> None:
        self.__setup = ExperimentSetup(ExperimentOptions.of(prediction, **options), events)
        self.name = name or type(self).__name__
        doc = (type(self).__doc__ or "").strip().split("\n")[0]
        own = description if description is not None else (type(self).description or doc)
        self.description = own

    # --- the hooks ----------------------------------------------------------------------------

    @abstractmethod
    def on_update(self, obs: AnyObservation, t: float) -> Iterable[Action]:
        """Return the actions to perform now (``obs``: an Observation or Observations; ``t``: s)."""

    def on_start(self, t: float) -> Iterable[Action]:
        """Return the actions at the start: once, in the first update, before on_update."""
        return ()

    def on_trial_end(self, trial: Trial) -> Iterable[Action]:
        """Return the actions when ``trial`` ends (after its held outputs were switched off)."""
        return ()

    def deciding_trigger(self, action: Action) -> str | None:
        """Return the trigger that decided ``action``, for its ``events.csv`` positions.

        By default the first registered trigger that changed state in this update and reads a
        keypoint; None when there is none (the event then logs ``event_keypoint``).
        """
        for name, trigger in self.__setup.triggers.items():
            if trigger.state_changed() and trigger.logged_keypoint is not None:
                return name
        return None

    def shapes(self) -> list[Shape]:
        """Return what the live view draws: every trigger's shapes."""
        return [shape for trigger in self.__setup.triggers.values() for shape in trigger.shapes()]

    # --- triggers -----------------------------------------------------------------------------

    def add_trigger(self, name: str, trigger: Trigger) -> NamedTrigger:
        """Register ``trigger`` as ``name`` (in ``__init__``); it is updated once per update.

        Use the returned object (not ``trigger``) as the child of combinators registered later,
        so that it is still updated once per update.
        """
        return self.__setup.register(name, trigger)

    @property
    def triggers(self) -> Mapping[str, NamedTrigger]:
        """The registered triggers by name (read-only)."""
        return MappingProxyType(self.__setup.triggers)

    @property
    def likelihood(self) -> dict[str, Any]:
        """``min_likelihood``, ``policy``, ``hold_s`` as keyword arguments for keypoint triggers."""
        o = self.__setup.options
        return {"min_likelihood": o.min_likelihood, "policy": o.policy, "hold_s": o.hold_s}

    def is_true(self, name: str, animal: int | None = None) -> bool:
        """Return the state of trigger ``name`` after this update (of ``animal``, if given)."""
        return self.__setup.asked(name).is_true(animal)

    def rose(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from False to True in this update (``animal``'s own)."""
        return self.__setup.asked(name).rose(animal)

    def fell(self, name: str, animal: int | None = None) -> bool:
        """Whether trigger ``name`` went from True to False in this update (as :meth:`rose`)."""
        return self.__setup.asked(name).fell(animal)

    def animals_rose(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` rose in this update, in order."""
        return self.__setup.asked(name).animals_rose()

    def animals_fell(self, name: str) -> tuple[int, ...]:
        """Return the animals whose state of trigger ``name`` fell in this update, in order."""
        return self.__setup.asked(name).animals_fell()

    def point(
        self,
        obs: AnyObservation,
        keypoint: str,
        camera: str | None = None,
        predicted: bool = False,
    ) -> tuple[float, float] | None:
        """``(x, y)`` of ``keypoint`` after the likelihood policy (None: not seen).

        ``predicted=True``: where forward prediction puts it when the command is written.
        """
        keypoint_filter = self.__setup.context.keypoint_filter
        selected = select_camera(obs, camera, f"experiment {self.name!r}")
        if selected is None:
            return None
        return keypoint_filter.point(selected, keypoint, predicted)

    # --- trials and the end ---------------------------------------------------------------------

    def start_trial(self, cause: str = "") -> bool:
        """Start a trial now if one can start (``waiting``, fewer than ``max_trials``)."""
        return self.__setup.context.machine.start_trial(cause)

    def end_trial(self, reason: str = "ended by the experiment") -> bool:
        """End the trial in progress now (held outputs off, then on_trial_end): True if one ran."""
        return self.__setup.context.machine.end_trial(reason)

    def end_experiment(self, reason: str = "ended by the experiment") -> None:
        """Finish the experiment once this update's actions are out; streaming goes on.

        Between updates (from outside a hook) it finishes at the next update.
        """
        _request_end(self.__setup.context, self.name, reason)

    def end_session(self, reason: str = "ended by the experiment") -> None:
        """End the whole session: the experiment finishes, then streaming and recording stop.

        The experiment ends as with :meth:`end_experiment`; ``reason`` becomes the session's
        stop reason (session.json). In a replay, the replay goes on to the video's end.
        """
        context = self.__setup.context
        _request_end(context, self.name, reason)
        if context.session_end_requested is None:
            context.session_end_requested = str(reason) or "ended by the experiment"

    def log(self, name: str, detail: object = "") -> None:
        """Write a ``note`` event into ``events.csv`` now: ``name`` and ``detail``."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"log(name, detail): name must be a non-empty text, not {name!r}")
        context = self.__setup.context
        if context.machine.state == "idle":
            raise RuntimeError(
                f"{self.name}.log({name.strip()!r}): the session has not started; log from "
                "on_start, on_update or on_trial_end"
            )
        context.log_event("note", name.strip(), str(detail))

    def is_held(self, device: str, channel: int = 0) -> bool:
        """Whether the output is on until an ``off`` (after an ``on`` or an endless pattern)."""
        return (device, channel) in self.__setup.context.machine.held

    def declare_output(self, device: str, channel: int = 0) -> None:
        """Declare an output the end switches off even if no action has used it yet."""
        self.__setup.declare(Action.off(device, channel).output)

    # --- read-only state ------------------------------------------------------------------------

    @property
    def now_s(self) -> float | None:
        """The frame time of the latest update (None before the first)."""
        return self.__setup.context.machine.now_s

    @property
    def state(self) -> ExperimentState:
        """``idle``, ``waiting``, ``in_trial``, ``inter_trial``, ``paused`` or ``finished``."""
        return self.__setup.context.machine.state

    @property
    def in_trial(self) -> bool:
        """Whether a trial is in progress."""
        return self.__setup.context.machine.trial is not None

    @property
    def trial(self) -> Trial | None:
        """The trial in progress (None between trials)."""
        return self.__setup.context.machine.trial

    @property
    def trials(self) -> list[Trial]:
        """Every trial so far, in order; ``len(self.trials)`` counts them."""
        return self.__setup.context.machine.trials

    @property
    def can_start_trial(self) -> bool:
        """Whether :meth:`start_trial` would start one now."""
        return self.__setup.context.machine.can_start_trial

    @property
    def options(self) -> ExperimentOptions:
        """The options given to ``super().__init__`` (checked)."""
        return self.__setup.options

    if not TYPE_CHECKING:  # a type checker would stop reporting unknown attributes

        def __getattr__(self, name: str) -> Any:
            """Only for a missing attribute: release 0.5.0's ``stop``, else say what is wrong."""
            return _missing_attribute(self, name)


def _request_end(context: ExperimentContext, name: str, reason: object) -> None:
    """Ask ``context``'s machine to finish after this update (refused before the start)."""
    machine = context.machine
    if machine.state == "idle":
        raise RuntimeError(f"{name}: the experiment has not started; end it from a hook")
    machine.request_end(str(reason) or "ended by the experiment")


def _missing_attribute(experiment: Experiment, name: str) -> Callable[..., None]:
    """Answer ``experiment.<name>`` that its class lacks: the legacy ``stop``, or an error."""
    kind = type(experiment).__name__
    if _SETUP_ATTRIBUTE not in experiment.__dict__:
        raise AttributeError(
            f"{kind}.{name}: the experiment is not set up; call "
            "super().__init__(...) at the start of __init__"
        )
    if name == "stop":  # release 0.5.0's end inside a hook: end_session since 0.6.0

        def stop(reason: str = "stopped") -> None:
            experiment.end_session(reason)

        return stop
    if name in _RUNTIME_CALLS:
        raise AttributeError(
            f"{kind}.{name}: the loop's calls are the runtime's: "
            f"runtime = ExperimentRuntime(experiment); runtime.{name}(...) "
            "(deeplabstream.experiments.engine.runtime, docs/experiments.md)"
        )
    raise AttributeError(f"{kind!r} object has no attribute {name!r}")
