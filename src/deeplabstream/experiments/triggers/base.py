"""The one interface every trigger has, and the plumbing most of them share.

Its design: docs/experiments-internals.md (`experiments.triggers.base`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypedDict, Unpack, final

from deeplabstream.core.plugins.notices import deprecated
from deeplabstream.experiments.observation import (
    DEFAULT_HOLD_S,
    FilteredPoint,
    FilterOptions,
    KeypointFilter,
    Observation,
    Observations,
)
from deeplabstream.experiments.triggers.geometry import Shape

AnyObservation = Observation | Observations

_OLD_HOOKS = {"_step": "step(obs)", "_params": "params()", "_reset": "forget()"}
"""Release 0.4.0's hook names (deprecated in 0.5.0, removed in 0.8.0), and what to write now."""

_CALLED_ONLY = {"update": "step(obs)", "reset": "forget()"}
"""What a kind may no longer override (deprecated in 0.8.0, removed in 0.9.0), and what to write."""


def observation_time(obs: AnyObservation) -> float:
    """Return the frame time of an observation, or the reference time of paired observations."""
    return obs.time_s


def camera_problems(triggers: Mapping[str, Trigger], cameras: list[str]) -> list[str]:
    """Return what stops ``triggers`` from running on a session of ``cameras``.

    A one-camera trigger needs ``CAMERA`` when several cameras are analysed, and every camera
    a trigger names must be one of ``cameras``.
    """
    problems = []
    for name, trigger in triggers.items():
        read = trigger.cameras_read()
        if read is None and len(cameras) > 1:
            problems.append(
                f"trigger {name!r} reads one camera but the session analyses {len(cameras)} "
                f"({', '.join(cameras)}): give it CAMERA = one of them (in the config's "
                f"[Trigger {name}] section, or with the Regions tab's camera box)"
            )
        for camera in read or ():
            if camera not in cameras:
                problems.append(
                    f"trigger {name!r} reads camera {camera!r}, which the settings do not "
                    f"declare (cameras: {', '.join(cameras) or 'none'}): fix its CAMERA"
                )
    return problems


def animals_of(trigger: Trigger) -> tuple[int, ...]:
    """Return the animal numbers ``trigger`` and its children read, sorted (none: only animal 1)."""
    found = set(trigger.animals_read())
    for child in getattr(trigger, "children", ()):
        found.update(animals_of(child))
    return tuple(sorted(found))


def animal_problems(triggers: Mapping[str, Trigger], animal_count: int) -> list[str]:
    """Return the triggers that read an animal the model does not report.

    ``animal_count`` is how many animals the pose model reports per frame (1 for a
    single-animal model; a multi-animal model's ``max_animals``). Without this check the
    trigger fails on its first observation instead (:meth:`Observation.for_animal`).
    """
    problems = []
    for name, trigger in triggers.items():
        if animal_count == 1 and _least_identity_confidence(trigger) > 0:
            problems.append(
                f"trigger {name!r} asks for MIN_IDENTITY_CONFIDENCE, but the pose model reports "
                "one animal: identities (and their confidence) exist only for a multi-animal "
                "model ([Pose] MAX_ANIMALS >= 2); remove it or use a multi-animal model"
            )
        beyond = [number for number in animals_of(trigger) if number > animal_count]
        if beyond:
            problems.append(
                f"trigger {name!r} reads animal {', '.join(map(str, beyond))}, but the pose model "
                f"reports {animal_count} animal(s) (animals are numbered from 1): use a "
                "multi-animal model with [Pose] MAX_ANIMALS high enough, or fix its ANIMAL / "
                "ANIMALS"
            )
    return problems


def ensemble_problems(
    triggers: Mapping[str, Trigger],
    cameras: list[str],
    ensembles: set[str],
    smoothed: set[str],
) -> list[str]:
    """Return the triggers that read an ensemble's spread or smoothed positions where there is none.

    ``cameras``: every camera analysed; ``ensembles``: those that run an ensemble; ``smoothed``:
    those whose ensemble runs the causal filter (``[Pose] ENSEMBLE_SMOOTHING = causal``).
    Without this check the trigger fails on its first observation instead.
    """
    problems = []
    for name, trigger in triggers.items():
        spread, positions = _ensemble_needs(trigger)
        read = trigger.cameras_read() or tuple(cameras)
        lacking = [camera for camera in read if camera not in ensembles]
        if spread and lacking:
            problems.append(
                f"trigger {name!r} asks for MAX_ENSEMBLE_STD, but camera "
                f"{', '.join(lacking)} runs one pose model: the spread needs an ensemble; name "
                "several models in MODEL_PATH ([Pose] or the camera's section), or remove "
                "MAX_ENSEMBLE_STD (docs/ensembles.md)"
            )
        unsmoothed = [camera for camera in read if camera not in smoothed]
        if positions and unsmoothed:
            problems.append(
                f"trigger {name!r} reads SMOOTHED positions, but camera "
                f"{', '.join(unsmoothed)} has none: name several models in MODEL_PATH and set "
                "[Pose] ENSEMBLE_SMOOTHING = causal, or remove SMOOTHED (docs/ensembles.md)"
            )
    return problems


def _ensemble_needs(trigger: Trigger) -> tuple[bool, bool]:
    """Return whether ``trigger`` or a child reads the spread, and smoothed positions."""
    keypoint_filter = getattr(trigger, "filter", None)
    spread = getattr(keypoint_filter, "max_ensemble_std", None) is not None
    positions = bool(getattr(trigger, "smoothed", False))
    for child in getattr(trigger, "children", ()):
        child_spread, child_positions = _ensemble_needs(child)
        spread, positions = spread or child_spread, positions or child_positions
    return spread, positions


def _least_identity_confidence(trigger: Trigger) -> float:
    """Return the highest MIN_IDENTITY_CONFIDENCE ``trigger`` or any of its children asks for."""
    found = float(getattr(trigger, "min_identity_confidence", 0.0))
    for child in getattr(trigger, "children", ()):
        found = max(found, _least_identity_confidence(child))
    return found


def select_camera(obs: AnyObservation, camera: str | None, who: str) -> Observation | None:
    """Return the observation a single-camera trigger uses, or None when ``obs`` is not for it."""
    if isinstance(obs, Observation):
        return obs if camera is None or obs.camera == camera else None
    if camera is not None:
        return obs.by_camera.get(camera)
    if len(obs) == 1:
        return next(iter(obs.by_camera.values()))
    if not obs:
        return None
    raise ValueError(
        f"{who} reads one camera but the observations hold {', '.join(obs)}; give it camera="
    )


def check_number(
    name: str, value: float, minimum: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float, or ``ValueError`` naming the parameter and what is allowed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, not {value!r}")
    return number


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


class KeypointOptions(FilterOptions, total=False):
    """What every keypoint trigger takes besides its own parameters, as ``**options``.

    The keypoint filter's keywords (:class:`~experiments.observation.FilterOptions`:
    ``min_likelihood``, ``policy``, ``hold_s``, ``max_ensemble_std``, their defaults in
    :class:`~experiments.observation.KeypointFilter`) and which positions it reads.
    """

    predicted: bool  # forward-predicted positions (the experiment must predict)
    smoothed: bool  # the causal Ensemble Kalman filter's positions (an ensemble's cameras)


class HoldOptions(TypedDict, total=False):
    """What a trigger that reads keypoints without a filter takes: only ``hold_s``."""

    hold_s: float


#: The order in which :class:`KeypointTrigger` took the filter's keywords positionally before
#: they were declared once (a lab's subclass calling ``super().__init__(camera, 0.5, ...)``).
_POSITIONAL_OPTIONS = ("min_likelihood", "policy", "hold_s", "predicted")


class LossHold:
    """How long a trigger keeps its state while what it reads is not seen.

    Short losses: docs/experiments-internals.md (`experiments.triggers.base`).

    Parameters
    ----------
    hold_s
        Seconds of frame time after the last sighting during which a loss is bridged (>= 0;
        0: a loss is decided on at once, as before holds existed).

    Feed it with :meth:`seen` on every observation in which the trigger's keypoints were seen;
    :meth:`bridges` says whether a loss at time ``t`` is still within the hold. Time going
    backwards (a new replay) forgets the last sighting.
    """

    __slots__ = ("hold_s", "last_seen_s")

    def __init__(self, hold_s: float) -> None:
        self.hold_s = check_number("hold_s", hold_s, 0.0)
        self.last_seen_s: float | None = None

    @classmethod
    def of(cls, options: HoldOptions) -> LossHold:
        """Return the hold a trigger's ``hold_s`` keyword asks for (the filter's default)."""
        return cls(options.get("hold_s", DEFAULT_HOLD_S))

    def seen(self, t: float) -> None:
        """Note that what the trigger reads was seen at frame time ``t``."""
        self.last_seen_s = t

    def bridges(self, t: float) -> bool:
        """Whether a loss at frame time ``t`` is within ``hold_s`` of the last sighting."""
        last = self.last_seen_s
        if last is None or self.hold_s <= 0.0:
            return False
        if t < last:  # time went backwards: a new replay
            self.last_seen_s = None
            return False
        return t - last <= self.hold_s

    def reset(self) -> None:
        """Forget the last sighting."""
        self.last_seen_s = None


class Trigger:
    """A condition on the stream of observations that keeps its own state across them.

    A kind writes :meth:`step` (an observation -> the new state; the one override point),
    :meth:`params` (what rebuilds it) and :meth:`keypoints_read`; one with memory writes
    :meth:`forget`. Its callers call :meth:`update` and :meth:`reset`, which no kind writes.
    ``is_event`` marks triggers whose True lasts one observation (a transition), which are
    False on observations not for them.
    """

    kind: ClassVar[str] = ""
    is_event: bool = False
    #: True for a trigger whose every animal has its own edges (``ANIMAL = each``,
    #: :class:`~experiments.triggers.animals.EachAnimal`): an experiment logs each animal's
    #: change as its own event, and a config rule fires on each animal's own edge.
    edges_per_animal: bool = False
    #: Triggers that read keypoints set one (and implement :meth:`_inputs_seen`): a short loss
    #: of what they read keeps their state (docs/experiments-internals.md). None: no hold.
    loss_hold: LossHold | None = None
    #: What a kind reads besides keypoints: ``"frame"`` (the image: motion energy, a light),
    #: ``"depth"``. ``deeplabstream-verify`` re-derives decisions from the recorded keypoints;
    #: a kind that reads more must say so here (a lab's kind too), so that it is told apart.
    reads: ClassVar[tuple[str, ...]] = ()
    #: False: :meth:`step` gets the observation of this trigger's camera, only when it brings news
    #: (the camera's, what it reads seen or lost past the hold). True: :meth:`step` gets every
    #: observation as it came, one camera's or paired, with no hold applied: a trigger made of
    #: others (combinators, animal choices), or one that reads several cameras or the 3D set.
    whole_observation: bool = False
    #: The keypoint filters whose memory (held positions) :meth:`reset` forgets.
    keypoint_filters: tuple[KeypointFilter, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse release 0.4.0's hook names; warn of an override of ``update`` or ``reset``.

        ``_step``, ``_params`` and ``_reset`` were deprecated in release 0.5.0 and removed in
        0.8.0: a kind defining them would never be called, so it is refused when defined (a
        lab's module then fails to load, naming its file). One overriding :meth:`update` or
        :meth:`reset` works until release 0.9.0, said once.
        """
        super().__init_subclass__(**kwargs)
        where = f"trigger class {cls.__qualname__} ({cls.__module__})"
        old = [name for name in _OLD_HOOKS if name in vars(cls)]
        if old:
            new = ", ".join(_OLD_HOOKS[name] for name in old)
            raise TypeError(
                f"{where} defines {', '.join(old)}, release 0.4.0's hook names, which release "
                f"0.8.0 removed: write {new} instead (docs/plugins.md, Triggers)"
            )
        overridden = [name for name in _CALLED_ONLY if name in vars(cls)]
        if overridden:
            deprecated(
                f"{where} overrides {', '.join(f'{name}()' for name in overridden)}, which a "
                f"trigger's callers call and no kind writes since release 0.8.0: write "
                f"{', '.join(_CALLED_ONLY[name] for name in overridden)} instead (a kind made of "
                "other triggers, or reading several cameras, sets whole_observation = True; "
                "docs/plugins.md, Triggers)",
                removed_in="0.9.0",
                stacklevel=3,
            )

    def __init__(self, camera: str | None = None) -> None:
        self.camera = camera
        self.state = False
        self.holding = False  # the last update kept the state through a loss (LossHold)

    def cameras_read(self) -> tuple[str, ...] | None:
        """Return the cameras this trigger reads; None when it must be told (``camera=``).

        A trigger of one camera given none reads any camera while the session has one, and
        cannot choose when it has several: the check before a start reports that.
        Combinators and clocks read no camera themselves (an empty tuple).
        """
        return None if self.camera is None else (self.camera,)

    def animals_read(self) -> tuple[int, ...]:
        """Return the animals (numbered from 1) this trigger reads itself; none: animal 1 only.

        Per-animal views and social triggers name theirs; combinators leave it to their
        children (see :func:`animal_problems`).
        """
        return ()

    def animal_states(self) -> dict[int, bool] | None:
        """Return each animal's state after the last update, ``{animal number: state}``.

        None for a trigger without a state per animal (every trigger but ``ANIMAL = any`` and
        ``each``, :mod:`~experiments.triggers.animals`); the live view draws each animal's.
        """
        return None

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint names this trigger itself reads (not its children's); none here.

        Every trigger that reads keypoints by name says which, so that a run can be refused
        before it starts when the pose model lacks one (``live/session/preflight.py``), instead of
        failing on the first pose. :func:`keypoints_of` adds the children's.
        """
        return ()

    @final
    def update(self, obs: AnyObservation) -> bool:
        """Feed the next observation; return the condition's state after it (:meth:`step`'s)."""
        if self.whole_observation:
            self.state = bool(self.step(obs))  # type: ignore[arg-type]  # declared by the kind
            return self.state
        selected = select_camera(obs, self.camera, self._who())
        if selected is None or self._bridged(selected):
            if self.is_event:
                self.state = False  # an event needs news, and its keypoints seen
            return self.state
        self.state = bool(self.step(selected))
        return self.state

    def _bridged(self, obs: Observation) -> bool:
        """Whether ``obs`` is a loss the :attr:`loss_hold` bridges (then no :meth:`step`)."""
        hold = self.loss_hold
        if hold is None:
            return False
        withheld = obs.withheld is not None and bool(obs.withheld.any())
        if hold.hold_s <= 0.0 and not withheld:  # nothing to bridge: no need to look
            return False
        if self._inputs_seen(obs) or (withheld and self._decides_unnamed(obs)):
            hold.seen(obs.time_s)
            self.holding = False
        elif withheld and self._inputs_withheld(obs):
            # Unknown, not lost: the identity step could not name what this trigger reads (a
            # merge, a borrowed keypoint). The state holds however long that lasts, and a loss
            # after it is bridged for hold_s from here.
            hold.seen(obs.time_s)
            self.holding = True
        else:
            self.holding = hold.bridges(obs.time_s)
        return self.holding

    def _inputs_withheld(self, obs: Observation) -> bool:
        """Whether a keypoint this trigger (or what it wraps) reads was withheld in ``obs``."""
        return any(name in obs.names and obs.is_withheld(name) for name in keypoints_of(self))

    def _inputs_seen(self, obs: Observation) -> bool:
        """Whether what this trigger reads is seen in ``obs`` (for :attr:`loss_hold`)."""
        return True

    def _decides_unnamed(self, obs: Observation) -> bool:
        """Whether :meth:`step` decides ``obs`` though its animal is unnamed (all rows agree)."""
        return False

    def end_hold(self) -> None:
        """Decide the next loss at once: forget the last sighting (an animal's doubtful identity).

        A loss bridged by the hold is a blink of the model on an animal that is where it was; an
        animal whose identity is in doubt may be another one, and a stimulus waits rather than go
        to it (:class:`~experiments.triggers.social.ForAnimal`).
        """
        if self.loss_hold is not None:
            self.loss_hold.reset()

    def step(self, obs: Observation) -> bool:
        """Return the state after one observation: a kind writes it (the one override point).

        Called on every update with news for the trigger (its camera's observation, what it
        reads seen or its loss past ``HOLD_S``); with :attr:`whole_observation`, on every update
        with the observation as it came (:class:`Observation` or :class:`Observations`), which
        a trigger made of others passes to each child's :meth:`update`. A few operations, never
        a wait.
        """
        raise NotImplementedError(f"{type(self).__name__} must define step(obs) -> bool")

    @final
    def reset(self) -> None:
        """Forget all memory, as if just built: children, filters, hold, then :meth:`forget`."""
        for child in self.__dict__.get("children", ()):  # its own, never a wrapped one's
            child.reset()
        for keypoint_filter in self.keypoint_filters:
            keypoint_filter.reset()
        self.state = False
        self.holding = False
        if self.loss_hold is not None:
            self.loss_hold.reset()
        self.forget()

    def forget(self) -> None:
        """Forget the kind's own memory (a count, a timer): a kind with memory writes it.

        Its children (``children``) and keypoint filters are reset before it is called.
        """

    def describe(self) -> dict[str, Any]:
        """``{"kind": ..., **parameters}`` for the event log (factory-compatible)."""
        described: dict[str, Any] = {"kind": self.kind}
        if self.camera is not None:
            described["camera"] = self.camera
        described.update(self.params())
        return described

    def params(self) -> dict[str, Any]:
        """Return the parameters that rebuild this trigger (numbers, names): a kind writes it.

        The event log and ``session.json`` show them; the factory rebuilds the trigger from
        them (:meth:`describe`). None by default.
        """
        return {}

    def shapes(self) -> list[Shape]:
        """Return what to draw for this trigger, in frame pixels (nothing by default)."""
        return []

    def measurement(self) -> str:
        """Return what the trigger measured in its last update, for the event log ("" for nothing).

        Logged after "true"/"false" in the ``detail`` of each change of state, e.g. the
        brightness of a light trigger's region, so that the log shows why it changed.
        """
        return ""

    def _who(self) -> str:
        return f"trigger {self.kind!r}"

    def __repr__(self) -> str:
        """Return the kind and parameters."""
        params = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({params})"


class KeypointTrigger(Trigger):
    """A trigger that reads keypoints through a :class:`KeypointFilter` (likelihood policy).

    Parameters
    ----------
    camera
        Which camera's observations to use (None: see docs/experiments-internals.md).
    **options
        :class:`KeypointOptions`, each with the :class:`KeypointFilter`'s default:
        ``min_likelihood``, ``policy``, ``hold_s``: keypoints below ``min_likelihood`` are not
        seen; for ``hold_s`` seconds after the keypoints it reads were last seen (default 0.5),
        the trigger keeps its state (``policy="missing"``: a :class:`LossHold`) or reads each
        keypoint where it was last seen (``policy="hold"``, the filter); after that, a keypoint
        not seen is missing. ``hold_s = 0`` decides on every frame alone.
        ``max_ensemble_std``: on a camera that runs an ensemble, a keypoint whose spread across
        the models is larger (pixels) is not seen either, with the same policy and hold.
        ``predicted``: read the predicted positions (:attr:`Observation.predicted`, forward
        prediction) instead of the measured ones; the experiment must predict (else updating
        raises ValueError). ``smoothed``: read the causal Ensemble Kalman filter's positions
        (:attr:`Observation.smoothed`; ``[Pose] ENSEMBLE_SMOOTHING = causal``).

    Subclasses whose keypoints are not simply :meth:`keypoints_read`, all seen, override
    :meth:`_inputs_seen`. Every kind passes its own ``camera`` and ``**options`` on; a subclass
    written before the options were declared once, passing them positionally in the order
    ``min_likelihood, policy, hold_s, predicted``, still works.
    """

    def __init__(
        self, camera: str | None = None, *positional: Any, **options: Unpack[KeypointOptions]
    ) -> None:
        super().__init__(camera)
        if len(positional) > len(_POSITIONAL_OPTIONS):
            raise TypeError(
                f"{type(self).__name__}: at most {len(_POSITIONAL_OPTIONS) + 1} positional "
                f"arguments (camera, {', '.join(_POSITIONAL_OPTIONS)}); give the rest by name"
            )
        merged: dict[str, Any] = dict(zip(_POSITIONAL_OPTIONS, positional, strict=False))
        merged.update(options)
        predicted = merged.pop("predicted", False)
        smoothed = merged.pop("smoothed", False)
        self.filter = KeypointFilter(**merged)
        self.keypoint_filters = (self.filter,)
        # With policy "hold" the filter bridges a loss (it reads the last position instead).
        self.loss_hold: LossHold | None = LossHold(
            self.filter.hold_s if self.filter.policy == "missing" else 0.0
        )
        for name, value in (("predicted", predicted), ("smoothed", smoothed)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, not {value!r}")
        if predicted and smoothed:
            raise ValueError("read predicted or smoothed positions, not both")
        self.predicted = predicted
        self.smoothed = smoothed

    def _inputs_seen(self, obs: Observation) -> bool:
        """Whether every keypoint this trigger reads is seen in ``obs`` (policy ``missing``)."""
        sees, predicted, smoothed = self.filter.sees, self.predicted, self.smoothed
        return all(
            sees(obs, name, predicted, smoothed) is not None for name in self.keypoints_read()
        )

    @property
    def hold_s(self) -> float:
        """Seconds a loss of its keypoints is bridged."""
        return self.filter.hold_s

    def _lookup(self, obs: Observation, name: str) -> FilteredPoint | None:
        return self.filter.lookup(obs, name, self.predicted, self.smoothed)

    def _point(self, obs: Observation, name: str) -> tuple[float, float] | None:
        return self.filter.point(obs, name, self.predicted, self.smoothed)

    def describe(self) -> dict[str, Any]:
        """Return the parameters, the filter's too (and ``predicted``, ``smoothed`` when set)."""
        described = {**super().describe(), **self.filter.describe()}
        if self.predicted:
            described["predicted"] = True
        if self.smoothed:
            described["smoothed"] = True
        return described


def keypoints_of(trigger: Trigger) -> tuple[str, ...]:
    """Return every keypoint ``trigger`` and its children read, in order, each once."""
    found = list(trigger.keypoints_read())
    for child in getattr(trigger, "children", ()):
        found += keypoints_of(child)
    return tuple(dict.fromkeys(found))


def keypoint_of(trigger: Trigger) -> str | None:
    """Return the keypoint a trigger decides on, for the event log; None for no keypoint.

    ``keypoint`` where the trigger has one (region, speed, freezing, height), the head's ``tip``
    (head direction, target side), ``a`` (distance), else the first child's that has one
    (combinators).
    """
    for attribute in ("keypoint", "tip", "a"):
        value = getattr(trigger, attribute, None)
        if isinstance(value, str):
            return value
    for child in getattr(trigger, "children", ()):
        found = keypoint_of(child)
        if found is not None:
            return found
    return None


def camera_of(trigger: Trigger) -> str | None:
    """Return the camera whose keypoint :func:`keypoint_of` names (None: the prompting camera's)."""
    camera = getattr(trigger, "camera_a", None) or trigger.camera
    if camera is None:
        for child in getattr(trigger, "children", ()):
            if keypoint_of(child) is not None:
                return camera_of(child)
    return camera


class Condition(Trigger):
    """Any function of one observation as a trigger (for custom logic in Python code).

    Parameters
    ----------
    func
        ``func(obs) -> bool`` for an observation of this trigger's camera.
    name
        What :meth:`describe` calls it.
    """

    kind = "condition"

    def __init__(
        self, func: Callable[[Observation], bool], name: str = "", camera: str | None = None
    ) -> None:
        super().__init__(camera)
        self.func = func
        self.name = name or getattr(func, "__name__", "condition")

    def step(self, obs: Observation) -> bool:
        return bool(self.func(obs))

    def params(self) -> dict[str, Any]:
        return {"name": self.name}


class WrappingTrigger(Trigger):
    """A trigger that changes what one other trigger sees, and is otherwise that trigger.

    Its kind, cameras, shapes and measurement are the wrapped trigger's, and the event log and
    the checks before a start look through :attr:`children` to it (its keypoints, its camera).
    The wrappers are :class:`FilteredTrigger` (a lab kind's likelihood keys) and the animal
    choices of :mod:`~experiments.triggers.animals`; each implements :meth:`step` (on the whole
    observation) and :meth:`describe`.
    """

    whole_observation = True

    def __init__(self, trigger: Trigger) -> None:
        super().__init__(trigger.camera)
        self.trigger = trigger
        self.is_event = trigger.is_event
        self.children: tuple[Trigger, ...] = (trigger,)

    @property
    def kind(self) -> str:  # type: ignore[override]  # the wrapped kind, per instance
        """The wrapped trigger's kind (what a config writes)."""
        return self.trigger.kind

    def cameras_read(self) -> tuple[str, ...] | None:
        """Return the wrapped trigger's cameras."""
        return self.trigger.cameras_read()

    def shapes(self) -> list[Shape]:
        """Return the wrapped trigger's shapes."""
        return self.trigger.shapes()

    def measurement(self) -> str:
        """Return the wrapped trigger's measurement."""
        return self.trigger.measurement()


class FilteredTrigger(WrappingTrigger):
    """A trigger given the common likelihood keys it does not take itself (a lab's kind).

    The factory wraps a lab's kind whose class does not accept ``min_likelihood``, ``policy``,
    ``hold_s`` or ``max_ensemble_std`` as keywords, so that they apply to it all the same.
    :meth:`describe` is the wrapped trigger's with the filter's keys, so the factory rebuilds it.
    """

    def __init__(self, trigger: Trigger, **filtering: Unpack[FilterOptions]) -> None:
        if not isinstance(trigger, Trigger):
            raise ValueError(f"FilteredTrigger wraps a trigger, not {trigger!r}")
        super().__init__(trigger)
        self.filter = KeypointFilter(**filtering)
        self.keypoint_filters = (self.filter,)
        self.loss_hold = LossHold(self.filter.hold_s if self.filter.policy == "missing" else 0.0)

    def step(self, obs: AnyObservation) -> bool:
        """Feed the wrapped trigger ``obs`` with the filter applied (see the class docstring)."""
        selected = _own_camera(obs, self.camera)
        if selected is not None and self._bridged(selected):
            return False if self.is_event else self.state
        return self.trigger.update(self._view(obs))

    def _inputs_seen(self, obs: Observation) -> bool:
        sees = self.filter.sees
        return all(sees(obs, name) is not None for name in keypoints_of(self.trigger))

    def _view(self, obs: AnyObservation) -> AnyObservation:
        if isinstance(obs, Observation):
            return self._filtered(obs)
        return Observations(
            obs.time_s, {camera: self._filtered(one) for camera, one in obs.by_camera.items()}
        )

    def _filtered(self, obs: Observation) -> Observation:
        """``obs`` with its keypoints after the filter (not seen: NaN, likelihood 0)."""
        keypoints = obs.keypoints.copy()
        for row, name in enumerate(obs.names):
            found = self.filter.lookup(obs, name)
            if found is None:
                keypoints[row] = (math.nan, math.nan, 0.0)
            elif found.held:
                keypoints[row] = (found.x, found.y, self.filter.min_likelihood)
        return dataclasses.replace(obs, keypoints=keypoints)

    def describe(self) -> dict[str, Any]:
        """Return the wrapped trigger's description with the filter's keys."""
        return {**self.trigger.describe(), **self.filter.describe()}


def _own_camera(obs: AnyObservation, camera: str | None) -> Observation | None:
    """Return the observation of ``camera`` in ``obs`` (None: not there, or several, unnamed)."""
    if isinstance(obs, Observation):
        return obs if camera is None or obs.camera == camera else None
    if camera is not None:
        return obs.by_camera.get(camera)
    return next(iter(obs.by_camera.values())) if len(obs) == 1 else None
