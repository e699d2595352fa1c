"""Build triggers by name from string parameters, as a config file gives them.

``make_trigger("region", {"shape": "circle 320 240 50", "mode": "entered"})``. Numbers are parsed,
geometry is read by :func:`~experiments.triggers.geometry.parse_shape`, points are ``"X,Y"``.
Every mistake is a ``ValueError`` that names the trigger kind, the parameter, the bad value and
what is allowed; an unknown kind lists the kinds there are. Combinators (``all``/``and``,
``any``/``or``, ``not``, ``rising``, ``debounce``) take their children, built first, through
``children``. :meth:`Trigger.describe` gives parameters that this function reads back.

Every kind that reads one animal (not the combinators, not the social kinds, which name their
animals) also takes ``animal = N``: the trigger is then built as usual and wrapped in a
:class:`~experiments.triggers.social.ForAnimal`, which feeds it animal N's keypoints
(:meth:`~experiments.observation.Observation.for_animal`). This is done here, once, for every
kind; the kinds do not declare it. Likewise every kind that reads animals (the one-animal kinds
and the social ones) takes ``min_identity_confidence = P``: with a multi-animal model, an animal
whose identity confidence is below P is seen as not there (a one-animal kind is then wrapped in
a :class:`~experiments.triggers.social.ForAnimal` of animal 1 when no ``animal`` is given).

The kinds and their parameters are declared by the trigger modules themselves, and by installed
packages (:data:`experiments.triggers.kinds.TRIGGERS`); this module only reads the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deeplabstream.core.schema import SettingSpec, parse_setting
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import (
    ANIMAL,
    MIN_IDENTITY_CONFIDENCE,
    TRIGGERS,
    TriggerKind,
    trigger_kind,
)
from deeplabstream.experiments.triggers.social import ForAnimal, require_identity_confidence

TRIGGER_KINDS: tuple[str, ...] = tuple(sorted(TRIGGERS.builtin_names()))
"""Every built-in kind :func:`make_trigger` builds, sorted (installed ones: :data:`TRIGGERS`)."""

COMBINATOR_KINDS: tuple[str, ...] = tuple(
    name for name in TRIGGER_KINDS if trigger_kind(name).combines
)
"""The built-in kinds that combine other triggers (a config names them in ``OF``)."""


def parameters_of(kind: str) -> dict[str, str]:
    """Return the parameters of ``kind`` and what each accepts (``" (required)"`` marks them)."""
    return {
        name: param.allowed + (" (required)" if param.required else "")
        for name, param in parameter_specs(kind).items()
    }


def parameter_specs(kind: str) -> dict[str, SettingSpec]:
    """Return the settings-schema spec of every parameter of ``kind`` (the common ones too)."""
    return dict(_parameters(trigger_kind(kind)))


def file_parameters_of(kind: str) -> tuple[str, ...]:
    """Return the parameters of ``kind`` that name files (relative to the config's folder)."""
    return tuple(name for name, param in trigger_kind(kind).parameters.items() if param.is_file)


def _parameters(entry: TriggerKind) -> Mapping[str, SettingSpec]:
    """Return the parameters ``entry`` declares, with ``animal`` and ``min_identity_confidence``.

    ``animal`` where it reads one animal; ``min_identity_confidence`` where it reads animals
    (every kind but the combinators).
    """
    if entry.combines:
        return entry.parameters
    common = {"min_identity_confidence": MIN_IDENTITY_CONFIDENCE}
    if entry.per_animal:
        common["animal"] = ANIMAL
    return {**entry.parameters, **common}


def make_trigger(kind: str, params: Mapping[str, str], children: Sequence[Trigger] = ()) -> Trigger:
    """Return a trigger of ``kind`` built from string parameters (see the module docstring).

    Parameters
    ----------
    kind
        A name of :data:`~experiments.triggers.kinds.TRIGGERS`: a built-in kind
        (:data:`TRIGGER_KINDS`) or an installed one (case and ``-``/``_`` do not matter).
    params
        Parameter name -> its text (values that are not text are converted with ``str``).
        Parameters left out take the trigger's defaults.
    children
        The child triggers of a combinator (none for the other kinds).

    Raises
    ------
    ValueError
        Naming the kind, the parameter, the bad value and what is allowed.
    """
    key = str(kind).strip().lower().replace("-", "_")
    entry = trigger_kind(key)
    kwargs = _parse_parameters(key, entry, params)
    animal = kwargs.pop("animal", None)
    min_confidence = kwargs.pop("min_identity_confidence", 0.0)
    if entry.children is not None:
        fewest, most = entry.children
        if len(children) < fewest or (most is not None and len(children) > most):
            wanted = f"exactly {fewest}" if most == fewest else f"at least {fewest}"
            raise ValueError(
                f"trigger {key!r} combines {wanted} child trigger(s), got {len(children)}"
            )
    elif children:
        raise ValueError(f"trigger {key!r} takes no child triggers (got {len(children)})")
    try:
        trigger = entry.factory(*children, **kwargs)
        if not entry.per_animal:  # social kinds name their animals themselves
            if min_confidence:
                require_identity_confidence(trigger, min_confidence)
            return trigger
        if animal is None and not min_confidence:
            return trigger
        return ForAnimal(trigger, animal or 1, min_confidence)
    except ValueError as error:
        raise ValueError(f"trigger {key!r}: {error}") from None


def _animal_hint(entry: TriggerKind, name: str) -> str:
    """Why a kind without ``animal`` has none, when that is the parameter a config gave."""
    if name not in ("animal", "min_identity_confidence"):
        return ""
    if entry.combines:
        return (
            " (a combinator reads no animal itself: give animal and min_identity_confidence to "
            "the triggers it combines)"
        )
    return " (it reads two animals, named with animals = A,B)"


def _parse_parameters(key: str, entry: TriggerKind, params: Mapping[str, str]) -> dict[str, Any]:
    """Parse ``params`` by ``entry``'s declarations; ValueError names the parameter and value."""
    spec = _parameters(entry)
    for name in params:
        if name not in spec:
            allowed = ", ".join(spec) if spec else "none"
            raise ValueError(
                f"trigger {key!r} has no parameter {name!r}; its parameters are: {allowed}"
                + _animal_hint(entry, name)
            )
    for name, param in spec.items():
        if param.required and name not in params:
            raise ValueError(f"trigger {key!r} needs parameter {name!r}: {param.allowed}")
    kwargs: dict[str, Any] = {}
    for name, raw in params.items():
        text = str(raw).strip()
        try:
            # File parameters stay text here: the config resolves them from its own folder.
            kwargs[name] = parse_setting(text, str, spec[name], Path())
        except ValueError as error:
            raise ValueError(
                f"trigger {key!r}: parameter {name!r} = {text!r} is not valid: {error}"
            ) from None
    return kwargs
