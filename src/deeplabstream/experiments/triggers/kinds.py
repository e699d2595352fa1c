"""The registry of trigger kinds: what a config's ``KIND = name`` builds, and from which keys.

Its design: docs/experiments-internals.md (`experiments.triggers.kinds`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from deeplabstream.core.plugins import PluginError, Registry, code_origin
from deeplabstream.core.schema import SettingSpec
from deeplabstream.experiments.observation import DEFAULT_HOLD_S, POLICIES
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.geometry import (
    GEOMETRY_SYNTAX,
    Rectangle,
    parse_point,
    parse_shape,
)

log = logging.getLogger(__name__)


def trigger_parameter(
    parse: Callable[[str], Any],
    expected: str,
    required: bool = False,
    is_file: bool = False,
    names_keypoints: bool = False,
) -> SettingSpec:
    """Return the :class:`~deeplabstream.core.schema.SettingSpec` of one trigger parameter.

    Parameters
    ----------
    parse
        Text -> value; raises ValueError (with or without a message) for a bad value.
    expected
        What is allowed, in words, for messages and the reference (the spec's ``allowed``).
    required
        Whether a config must give it (else the trigger's default applies).
    is_file
        Whether it names a file: a relative path in a config is taken from the config's folder.
    names_keypoints
        Whether its value is keypoint names (one, or several comma-separated): the window
        rewrites them when it maps an experiment's keypoints onto another model's.
    """
    return SettingSpec(
        parse=parse,
        allowed=expected,
        required=required,
        is_file=is_file,
        names_keypoints=names_keypoints,
    )


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
        Parameter name (lower case) -> its :class:`~deeplabstream.core.schema.SettingSpec`
        (:func:`trigger_parameter` and the helpers below make them).
    description
        One line for the reference (docs/experiments.md).
    children
        ``(fewest, most)`` child triggers of a combinator (``most`` None: unbounded); None for
        a trigger that takes none.
    per_animal
        Whether the factory gives this kind the common :data:`ANIMAL` parameter: True for every
        kind that reads one animal, False for kinds that name their animals themselves (social).
    """

    name: str
    factory: Callable[..., Trigger]
    description: str
    parameters: Mapping[str, SettingSpec] = field(default_factory=dict)
    children: tuple[int, int | None] | None = None
    per_animal: bool = True

    @property
    def combines(self) -> bool:
        """Whether this kind combines other triggers (named in a config's ``OF``)."""
        return self.children is not None


_PACKAGE = "deeplabstream.experiments.triggers"
_BUILTIN_MODULES = {
    "regions": ("region",),
    "direction": ("head_direction", "target_side"),
    "motion": ("speed_above", "speed_below", "freezing", "distance_above", "distance_below"),
    "timing": ("after", "every"),
    "features": ("motion_energy_above", "motion_energy_below", "pupil_above", "pupil_below"),
    "depth": ("height",),
    "light": ("light",),
    "classifier": ("classifier",),
    "social": ("distance", "approach", "contact", "following"),
    "space": (
        "distance3d_above",
        "distance3d_below",
        "height_above",
        "inside_box3d",
        "inside_sphere3d",
    ),
    "combinators": ("all", "and", "any", "or", "not", "rising", "debounce"),
}


def _select_kind(declared: Any, name: str) -> TriggerKind:
    """Return the kind ``name`` of a registered target (one kind, or a module's KINDS)."""
    if isinstance(declared, TriggerKind):
        return declared if declared.name == name else dataclasses.replace(declared, name=name)
    if isinstance(declared, tuple | list):
        for kind in declared:
            if isinstance(kind, TriggerKind) and kind.name == name:
                return kind
        raise ValueError(f"it declares no trigger kind named {name!r}")
    raise TypeError(
        f"expected a TriggerKind (deeplabstream.experiments.triggers.kinds), not {declared!r}"
    )


def _kinds_in(module: ModuleType) -> dict[str, TriggerKind]:
    """Return a lab module's kinds by name: its ``KINDS``, else every TriggerKind it holds."""
    declared = getattr(module, "KINDS", None)
    if declared is None:
        declared = [value for key, value in vars(module).items() if not key.startswith("_")]
    elif isinstance(declared, TriggerKind):
        declared = [declared]
    return {kind.name: kind for kind in declared if isinstance(kind, TriggerKind)}


TRIGGERS: Registry[TriggerKind] = Registry(
    "trigger kind",
    "deeplabstream.triggers",
    {
        name: f"{_PACKAGE}.{module}:KINDS"
        for module, names in _BUILTIN_MODULES.items()
        for name in names
    },
    advice="Set KIND to one of them; for the lab's own trigger, put its module (a TriggerKind, "
    "or a KINDS tuple of them) in the triggers/ folder beside the settings file (KIND = module, "
    "or module:kind), or install the package that provides it (its entry point in the group "
    "deeplabstream.triggers; docs/plugins.md).",
    lab_folder="triggers",
    normalise=lambda name: name.strip().lower().replace("-", "_"),
    find_in_module=lambda module: _kinds_in(module),
    select=_select_kind,
)
"""Every trigger kind by name: the built-ins (each module's ``KINDS``), then installed ones."""


def kind_origin(kind: str, factory: type) -> str:
    """Return where the trigger kind ``kind`` comes from, in ``core.plugins.code_origin``'s words.

    The kind's own module (``lab folder: /lab/triggers/x.py`` for a lab kind, even one that
    reuses a built-in trigger class), found by name without importing anything; its trigger
    class's module when the name is not found so (a kind made in code).
    """
    try:
        return TRIGGERS.origin(kind)
    except PluginError:
        return code_origin(factory)


def trigger_kind(kind: str) -> TriggerKind:
    """Return the kind a config's ``KIND = kind`` names (case and ``-``/``_`` do not matter).

    Raises
    ------
    ValueError
        ``unknown trigger kind 'x'; known: ...`` and what to do, or why an installed kind
        cannot be loaded (its name, distribution and error).
    """
    try:
        return TRIGGERS.get(kind)
    except PluginError as error:
        raise ValueError(str(error)) from None


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
) -> SettingSpec:
    """Return a number parameter (``strict``: the minimum itself is not allowed)."""
    expected = _describe_range(minimum, strict, maximum) + (f" ({unit})" if unit else "")
    return trigger_parameter(_number_parser(minimum, strict, maximum), expected, required)


def whole(minimum: int, maximum: int, unit: str = "") -> SettingSpec:
    """Return a whole-number parameter from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # "2.5", "two": the message says what is expected
            raise ValueError from None
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return trigger_parameter(
        parse, f"a whole number from {minimum} to {maximum}" + (f" ({unit})" if unit else "")
    )


def choice(allowed: tuple[str, ...]) -> SettingSpec:
    """Return a parameter that takes one of ``allowed`` (exactly as written)."""

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError
        return text

    return trigger_parameter(parse, "one of " + ", ".join(allowed))


_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _boolean_parse(text: str) -> bool:
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError


def boolean() -> SettingSpec:
    """Return a true/false parameter (also yes/no, on/off, 1/0)."""
    return trigger_parameter(_boolean_parse, "true or false")


def _name_parse(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError
    return text


def identifier(required: bool = False) -> SettingSpec:
    """Return a parameter naming a keypoint or camera (no spaces)."""
    return trigger_parameter(_name_parse, "a name without spaces", required)


def keypoint_name(required: bool = False) -> SettingSpec:
    """Return a parameter naming one keypoint of the pose model (no spaces)."""
    return trigger_parameter(
        _name_parse, "a keypoint name without spaces", required, names_keypoints=True
    )


def keypoint_names(parse: Callable[[str], Any], expected: str) -> SettingSpec:
    """Return a parameter naming several keypoints, comma-separated, parsed by ``parse``."""
    return trigger_parameter(parse, expected, names_keypoints=True)


def keypoint_parameters(kind: str) -> dict[str, str]:
    """Return the parameters of ``kind`` that name keypoints, with their defaults as config text.

    The default is what the trigger reads when a config leaves the key out (``""``: none, or
    every keypoint), so a mapping can write the key when the default is not the model's.
    """
    registered = trigger_kind(kind)
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


def roi(required: bool = False) -> SettingSpec:
    """Return a rectangle parameter, with or without the word ``rect``."""
    return trigger_parameter(
        _roi_parse, "'rect X_MIN Y_MIN X_MAX Y_MAX' or 'X_MIN Y_MIN X_MAX Y_MAX'", required
    )


_SHAPE_NAMES = ("circle", "rect", "rectangle", "ellipse", "polygon")


def _target_parse(text: str) -> Any:
    words = text.split()
    return parse_shape(text) if words and words[0].lower() in _SHAPE_NAMES else parse_point(text)


def target(required: bool = False) -> SettingSpec:
    """Return a parameter that takes a point ``X,Y`` or a geometry (its centre counts)."""
    return trigger_parameter(
        _target_parse, "a point 'X,Y' or a geometry: " + GEOMETRY_SYNTAX, required
    )


def _file_parse(text: str) -> str:
    if not text.strip():
        raise ValueError
    return text.strip()


def file_path(required: bool = False) -> SettingSpec:
    """Return a parameter naming a file (relative paths: from the experiment config's folder)."""
    return trigger_parameter(
        _file_parse,
        "a file path (a relative path is relative to the experiment config's folder)",
        required,
        is_file=True,
    )


GEOMETRY = trigger_parameter(parse_shape, GEOMETRY_SYNTAX, required=True)
"""A required shape: circle, rectangle, ellipse or polygon."""

MAX_ANIMAL_NUMBER = 16
"""The highest animal number a config may name ([Pose] MAX_ANIMALS allows at most 16)."""

ANIMAL_WORDS: tuple[str, ...] = ("any", "each")
"""What ``ANIMAL`` takes besides a number (:mod:`experiments.triggers.animals`)."""


def _animal_parse(text: str) -> int | str:
    word = text.strip().lower()
    if word in ANIMAL_WORDS:
        return word
    try:
        value = int(word)
    except ValueError:
        raise ValueError from None
    if not 1 <= value <= MAX_ANIMAL_NUMBER:
        raise ValueError
    return value


ANIMAL = trigger_parameter(
    _animal_parse,
    f"a whole number from 1 to {MAX_ANIMAL_NUMBER} (that animal), `any` (true while some animal "
    "is) or `each` (a state and edges per animal); default: animal 1",
)
"""The common parameter of every one-animal kind: read animal N of a multi-animal model, or any
animal (one state), or each animal (a state per animal)."""

MIN_IDENTITY_CONFIDENCE = number(
    maximum=1.0,
    unit="several animals: an animal whose identity confidence is lower counts as not seen; "
    "default 0: off",
)
"""The common parameter of every kind that reads animals (not the combinators): with a
multi-animal model, an animal whose identity confidence (:mod:`pose.tracking.identities`) is lower
is seen as missing, so that a stimulus never goes to an animal that may be the other one."""

HOLD = number(
    unit=f"seconds of frame time a keypoint not seen keeps the trigger's state; default "
    f"{DEFAULT_HOLD_S:g}, 0: decide on every frame alone"
)
"""``HOLD_S`` of every kind that reads keypoints (:class:`~experiments.triggers.base.LossHold`)."""

MAX_ENSEMBLE_STD = number(
    minimum=0.0,
    strict=True,
    unit="px; a camera running an ensemble of models: a keypoint whose spread across them is "
    "larger is not seen (held like one below MIN_LIKELIHOOD); default: the spread is not looked at",
)
"""``MAX_ENSEMBLE_STD`` of every kind that reads keypoints (docs/ensembles.md)."""

FILTER: dict[str, SettingSpec] = {
    "camera": identifier(),
    "min_likelihood": number(maximum=1.0),
    "policy": choice(POLICIES),
    "hold_s": HOLD,
    "max_ensemble_std": MAX_ENSEMBLE_STD,
    # Read forward-predicted positions (the experiment must predict: PREDICT in [Experiment]).
    "predicted": boolean(),
    # Read the causal Ensemble Kalman filter's positions ([Pose] ENSEMBLE_SMOOTHING = causal).
    "smoothed": boolean(),
}
"""The keypoint filter every :class:`~experiments.triggers.base.KeypointTrigger` accepts: the one
spec list of the :class:`~experiments.observation.KeypointFilter`'s keywords (their defaults are
the filter's) with the camera and the positions read."""

LAB_COMMON: dict[str, SettingSpec] = {
    key: FILTER[key] for key in ("camera", "min_likelihood", "policy", "hold_s", "max_ensemble_std")
}
"""The parameters every lab's kind takes without declaring them (besides ``ANIMAL`` and
``MIN_IDENTITY_CONFIDENCE``, which every kind that reads animals takes): the factory passes them
to a class that accepts them as keywords, and applies them itself to one that does not."""
