"""The registry of trigger kinds: what a config's ``KIND = name`` builds, and from which keys.

Each trigger module declares, next to its trigger classes, the kinds they are built as: a
:class:`TriggerKind` (the name, the class, its parameters with their parsers, one line of
documentation, and for combinators how many children they take), handed to :func:`register`.
A new trigger is then one module (or one class in a module): the package finds every module of
``experiments/triggers`` (:func:`load_trigger_modules`), :func:`~experiments.triggers.make_trigger`
builds it and ``python -m deeplabstream.offline.reference.experiments`` documents it.

The parameter helpers here (:func:`number`, :func:`whole`, :func:`choice`, :func:`boolean`,
:func:`identifier`, :data:`FILTER`...) parse the text a config gives; each raises ValueError, which
the factory turns into a message that names the kind, the parameter and what is allowed.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deeplabstream.experiments.observation import POLICIES
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.geometry import (
    GEOMETRY_SYNTAX,
    Rectangle,
    parse_point,
    parse_shape,
)


@dataclass(frozen=True)
class Param:
    """One parameter of a trigger kind: how its text is parsed and what it accepts.

    Attributes
    ----------
    parse
        Text -> value; raises ValueError (with or without a message) for a bad value.
    expected
        What is allowed, in words, for messages and the reference.
    required
        Whether a config must give it (else the trigger's default applies).
    is_file
        Whether it names a file: a relative path in a config is taken from the config's folder.
    names_keypoints
        Whether its value is keypoint names (one, or several comma-separated): the window
        rewrites them when it maps an experiment's keypoints onto another model's.
    """

    parse: Callable[[str], Any]
    expected: str
    required: bool = False
    is_file: bool = False
    names_keypoints: bool = False


@dataclass(frozen=True)
class TriggerKind:
    """One kind of trigger a config can name.

    Attributes
    ----------
    name
        The ``KIND`` a config writes (lower case, ``_`` between words).
    factory
        The trigger class (or a function) called with the parsed parameters as keywords, and
        a combinator's children first.
    parameters
        Parameter name (lower case) -> :class:`Param`.
    description
        One line for the reference (docs/experiments.md).
    children
        ``(fewest, most)`` child triggers of a combinator (``most`` None: unbounded); None for
        a trigger that takes none.
    per_animal
        Whether the factory gives this kind the common :data:`ANIMAL` parameter (read animal N
        of a multi-animal model). True for every kind that reads one animal; False for kinds
        that name their animals themselves (:mod:`~experiments.triggers.social`). Combinators
        never take it: their children choose their animals.
    """

    name: str
    factory: Callable[..., Trigger]
    description: str
    parameters: Mapping[str, Param] = field(default_factory=dict)
    children: tuple[int, int | None] | None = None
    per_animal: bool = True

    @property
    def combines(self) -> bool:
        """Whether this kind combines other triggers (named in a config's ``OF``)."""
        return self.children is not None


_KINDS: dict[str, TriggerKind] = {}


def register(*kinds: TriggerKind) -> None:
    """Add ``kinds`` to the registry; a name registered twice is a programming error."""
    for kind in kinds:
        if kind.name in _KINDS and _KINDS[kind.name] is not kind:
            raise ValueError(f"trigger kind {kind.name!r} is registered twice")
        _KINDS[kind.name] = kind


def load_trigger_modules() -> None:
    """Import every module of ``experiments.triggers``, so that each registers its kinds."""
    import deeplabstream.experiments.triggers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def registered_kinds() -> dict[str, TriggerKind]:
    """Return every registered kind by name, sorted by name."""
    load_trigger_modules()
    return dict(sorted(_KINDS.items()))


# --- parameters ---------------------------------------------------------------------------------

SECONDS = "seconds of frame time"


def _number_parser(
    minimum: float | None, strict: bool, maximum: float | None
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError from None
        if not math.isfinite(value):
            raise ValueError
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise ValueError
        if maximum is not None and value > maximum:
            raise ValueError
        return value

    return parse


def _describe_range(minimum: float | None, strict: bool, maximum: float | None) -> str:
    if minimum is None:
        return "a number"
    if maximum is not None:
        return f"a number in {'(' if strict else '['}{minimum:g}, {maximum:g}]"
    return f"a number {'>' if strict else '>='} {minimum:g}"


def number(
    required: bool = False,
    minimum: float | None = 0.0,
    strict: bool = False,
    maximum: float | None = None,
    unit: str = "",
) -> Param:
    """Return a number parameter (``strict``: the minimum itself is not allowed)."""
    expected = _describe_range(minimum, strict, maximum) + (f" ({unit})" if unit else "")
    return Param(_number_parser(minimum, strict, maximum), expected, required)


def whole(minimum: int, maximum: int, unit: str = "") -> Param:
    """Return a whole-number parameter from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # "2.5", "two": the message says what is expected
            raise ValueError from None
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return Param(
        parse, f"a whole number from {minimum} to {maximum}" + (f" ({unit})" if unit else "")
    )


def choice(allowed: tuple[str, ...]) -> Param:
    """Return a parameter that takes one of ``allowed`` (exactly as written)."""

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError
        return text

    return Param(parse, "one of " + ", ".join(allowed))


_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _boolean_parse(text: str) -> bool:
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError


def boolean() -> Param:
    """Return a true/false parameter (also yes/no, on/off, 1/0)."""
    return Param(_boolean_parse, "true or false")


def _name_parse(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError
    return text


def identifier(required: bool = False) -> Param:
    """Return a parameter naming a keypoint or camera (no spaces)."""
    return Param(_name_parse, "a name without spaces", required)


def keypoint_name(required: bool = False) -> Param:
    """Return a parameter naming one keypoint of the pose model (no spaces)."""
    return Param(_name_parse, "a keypoint name without spaces", required, names_keypoints=True)


def keypoint_names(parse: Callable[[str], Any], expected: str) -> Param:
    """Return a parameter naming several keypoints, comma-separated, parsed by ``parse``."""
    return Param(parse, expected, names_keypoints=True)


def keypoint_parameters(kind: str) -> dict[str, str]:
    """Return the parameters of ``kind`` that name keypoints, with their defaults as config text.

    The default is what the trigger reads when a config leaves the key out (``""``: none, or
    every keypoint), so a mapping can write the key when the default is not the model's.
    """
    import inspect

    registered = registered_kinds()[kind]
    try:
        defaults = inspect.signature(registered.factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - every factory is a class or function
        defaults = {}  # type: ignore[assignment]
    found = {}
    for name, parameter in registered.parameters.items():
        if not parameter.names_keypoints:
            continue
        default = defaults[name].default if name in defaults else None
        if default is inspect.Parameter.empty or default is None:
            default = ""
        found[name] = default if isinstance(default, str) else ",".join(map(str, default))
    return found


def _roi_parse(text: str) -> Rectangle:
    words = text.split()
    shape = parse_shape(text if words and words[0].isalpha() else "rect " + text)
    if not isinstance(shape, Rectangle):
        kind = type(shape).__name__.lower()
        raise ValueError(f"an ROI is a rectangle, not a {kind}")
    return shape


def roi(required: bool = False) -> Param:
    """Return a rectangle parameter, with or without the word ``rect``."""
    return Param(
        _roi_parse, "'rect X_MIN Y_MIN X_MAX Y_MAX' or 'X_MIN Y_MIN X_MAX Y_MAX'", required
    )


_SHAPE_NAMES = ("circle", "rect", "rectangle", "ellipse", "polygon")


def _target_parse(text: str) -> Any:
    words = text.split()
    return parse_shape(text) if words and words[0].lower() in _SHAPE_NAMES else parse_point(text)


def target(required: bool = False) -> Param:
    """Return a parameter that takes a point ``X,Y`` or a geometry (its centre counts)."""
    return Param(_target_parse, "a point 'X,Y' or a geometry: " + GEOMETRY_SYNTAX, required)


def _file_parse(text: str) -> str:
    if not text.strip():
        raise ValueError
    return text.strip()


def file_path(required: bool = False) -> Param:
    """Return a parameter naming a file (relative paths: from the experiment config's folder)."""
    return Param(
        _file_parse,
        "a file path (a relative path is relative to the experiment config's folder)",
        required,
        is_file=True,
    )


GEOMETRY = Param(parse_shape, GEOMETRY_SYNTAX, required=True)
"""A required shape: circle, rectangle, ellipse or polygon."""

MAX_ANIMAL_NUMBER = 16
"""The highest animal number a config may name ([Pose] MAX_ANIMALS allows at most 16)."""

ANIMAL = whole(1, MAX_ANIMAL_NUMBER, "the animal, numbered from 1; default: animal 1")
"""The common parameter of every one-animal kind: read that animal of a multi-animal model."""

MIN_IDENTITY_CONFIDENCE = number(
    maximum=1.0,
    unit="several animals: an animal whose identity confidence is lower counts as not seen; "
    "default 0: off",
)
"""The common parameter of every kind that reads animals (not the combinators): with a
multi-animal model, an animal whose identity confidence (:mod:`pose.tracking.identities`) is lower
is seen as missing, so that a stimulus never goes to an animal that may be the other one."""

FILTER: dict[str, Param] = {
    "camera": identifier(),
    "min_likelihood": number(maximum=1.0),
    "policy": choice(POLICIES),
    "hold_s": number(unit=SECONDS),
    # Read forward-predicted positions (the experiment must predict: PREDICT in [Experiment]).
    "predicted": boolean(),
}
"""The keypoint filter every :class:`~experiments.triggers.base.KeypointTrigger` accepts."""
