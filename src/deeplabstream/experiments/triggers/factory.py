"""Build triggers by name from string parameters, as a config file gives them.

Its design: docs/experiments-internals.md (`experiments.triggers.factory`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deeplabstream.core.schema import SettingSpec, parse_setting
from deeplabstream.experiments.triggers.animals import for_animals
from deeplabstream.experiments.triggers.base import FilteredTrigger, Trigger
from deeplabstream.experiments.triggers.kinds import (
    ANIMAL,
    LAB_COMMON,
    MIN_IDENTITY_CONFIDENCE,
    TRIGGERS,
    TriggerKind,
    trigger_kind,
)
from deeplabstream.experiments.triggers.social import require_identity_confidence

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


def is_lab_kind(entry: TriggerKind) -> bool:
    """Whether ``entry`` is a lab's kind (not built in): it gets :data:`LAB_COMMON` too."""
    return entry.name not in TRIGGER_KINDS


def _parameters(entry: TriggerKind) -> Mapping[str, SettingSpec]:
    """Return the parameters ``entry`` declares, with the common ones it takes."""
    if entry.combines:
        return entry.parameters
    common: dict[str, SettingSpec] = {}
    if is_lab_kind(entry):
        common.update({k: v for k, v in LAB_COMMON.items() if k not in entry.parameters})
    common["min_identity_confidence"] = MIN_IDENTITY_CONFIDENCE
    if entry.per_animal:
        common["animal"] = ANIMAL
    return {**entry.parameters, **common}


def make_trigger(kind: str, params: Mapping[str, str], children: Sequence[Trigger] = ()) -> Trigger:
    """Return a trigger of ``kind`` built from string parameters (docs/experiments-internals.md).

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
    applied = _lab_common(entry, kwargs)

    def build() -> Trigger:
        return _apply_common(entry.factory(*children, **kwargs), applied)

    try:
        trigger = build()
        if not entry.per_animal:  # social kinds name their animals themselves
            if min_confidence:
                require_identity_confidence(trigger, min_confidence)
            return trigger
        return for_animals(trigger, animal, min_confidence, build)
    except ValueError as error:
        raise ValueError(f"trigger {key!r}: {error}") from None


def _lab_common(entry: TriggerKind, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the common parameters a lab's class does not accept out of ``kwargs``; return them."""
    if entry.combines or not is_lab_kind(entry):
        return {}
    accepted = _keywords_of(entry.factory)
    return {
        name: kwargs.pop(name)
        for name in LAB_COMMON
        if name in kwargs and name not in entry.parameters and not accepted(name)
    }


def _keywords_of(factory: Callable[..., Trigger]) -> Callable[[str], bool]:
    """Return whether ``factory`` accepts a keyword of that name."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin with no signature
        return lambda name: False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return lambda name: True
    return lambda name: (
        name in parameters
        and parameters[name].kind
        in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    )


def _apply_common(trigger: Trigger, applied: Mapping[str, Any]) -> Trigger:
    """Give a lab's ``trigger`` the common parameters its class did not take."""
    if not isinstance(trigger, Trigger):
        raise ValueError(f"its factory made {trigger!r}, not a Trigger")
    if "camera" in applied:
        trigger.camera = applied["camera"]
    filtering = {k: v for k, v in applied.items() if k != "camera"}
    return FilteredTrigger(trigger, **filtering) if filtering else trigger


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
