"""Build triggers by name from string parameters, as a config file gives them.

``make_trigger("region", {"shape": "circle 320 240 50", "mode": "entered"})``. Numbers are parsed,
geometry is read by :func:`~experiments.triggers.geometry.parse_shape`, points are ``"X,Y"``.
Every mistake is a ``ValueError`` that names the trigger kind, the parameter, the bad value and
what is allowed; an unknown kind lists the kinds there are. Combinators (``all``/``and``,
``any``/``or``, ``not``, ``rising``, ``debounce``) take their children, built first, through
``children``. :meth:`Trigger.describe` gives parameters that this function reads back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.observation import POLICIES
from experiments.triggers import combinators
from experiments.triggers.base import Trigger
from experiments.triggers.depth import MAX_RADIUS_PX, Height
from experiments.triggers.direction import SIDES, HeadDirection, TargetSide
from experiments.triggers.features import (
    MotionEnergyAbove,
    MotionEnergyBelow,
    PupilDiameterAbove,
    PupilDiameterBelow,
)
from experiments.triggers.geometry import GEOMETRY_SYNTAX, Rectangle, parse_point, parse_shape
from experiments.triggers.light import LightOn
from experiments.triggers.motion import (
    DistanceAbove,
    DistanceBelow,
    Freezing,
    SpeedAbove,
    SpeedBelow,
)
from experiments.triggers.regions import REGION_MODES, Region
from experiments.triggers.timing import After, Every


@dataclass(frozen=True)
class _Param:
    parse: Callable[[str], Any]
    expected: str
    required: bool = False


def _number(minimum: float | None = None, strict: bool = False, maximum: float | None = None):
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


def _num(
    required: bool = False,
    minimum: float | None = 0.0,
    strict: bool = False,
    maximum: float | None = None,
    unit: str = "",
) -> _Param:
    expected = _describe_range(minimum, strict, maximum) + (f" ({unit})" if unit else "")
    return _Param(_number(minimum, strict, maximum), expected, required)


def _whole(minimum: int, maximum: int, unit: str = "") -> _Param:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # "2.5", "two": the message says what is expected
            raise ValueError from None
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return _Param(
        parse, f"a whole number from {minimum} to {maximum}" + (f" ({unit})" if unit else "")
    )


def _choice(allowed: tuple[str, ...]) -> _Param:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError
        return text

    return _Param(parse, "one of " + ", ".join(allowed))


_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _boolean_parse(text: str) -> bool:
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError


def _boolean() -> _Param:
    return _Param(_boolean_parse, "true or false")


def _name_parse(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError
    return text


def _name(required: bool = False) -> _Param:
    return _Param(_name_parse, "a name without spaces", required)


def _roi(text: str) -> Rectangle:
    words = text.split()
    shape = parse_shape(text if words and words[0].isalpha() else "rect " + text)
    if not isinstance(shape, Rectangle):
        kind = type(shape).__name__.lower()
        raise ValueError(f"an ROI is a rectangle, not a {kind}")
    return shape


_SHAPE_NAMES = ("circle", "rect", "rectangle", "ellipse", "polygon")


def _target(text: str) -> Any:
    words = text.split()
    return parse_shape(text) if words and words[0].lower() in _SHAPE_NAMES else parse_point(text)


def _four_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 4 or not all(names):
        raise ValueError
    return names


_GEOMETRY = _Param(parse_shape, GEOMETRY_SYNTAX, required=True)
_SECONDS = "seconds of frame time"
_FILTER = {
    "camera": _name(),
    "min_likelihood": _num(maximum=1.0),
    "policy": _choice(POLICIES),
    "hold_s": _num(unit=_SECONDS),
    # Read forward-predicted positions (the experiment must predict: PREDICT in [Experiment]).
    "predicted": _boolean(),
}
_SPEED = {
    "threshold": _num(required=True, unit="px/s, or mm/s with mm_per_px"),
    "keypoint": _name(),
    "window_s": _num(strict=True, unit=_SECONDS),
    "mm_per_px": _num(strict=True),
    **_FILTER,
}
_DISTANCE = {
    "a": _name(required=True),
    "b": _name(required=True),
    "threshold": _num(required=True, unit="px, or mm with mm_per_px"),
    "camera_a": _name(),
    "camera_b": _name(),
    "mm_per_px": _num(strict=True),
    **_FILTER,
}
_HEAD = {
    "target": _Param(_target, "a point 'X,Y' or a geometry: " + GEOMETRY_SYNTAX, required=True),
    "origin": _name(),
    "tip": _name(),
    **_FILTER,
}
_ME = {
    "roi": _Param(_roi, "'rect X_MIN Y_MIN X_MAX Y_MAX' or 'X_MIN Y_MIN X_MAX Y_MAX'", True),
    "threshold": _num(required=True, unit="grey levels"),
    "camera": _name(),
}
_PUPIL = {
    "threshold": _num(required=True, unit="px, or mm with mm_per_px"),
    "keypoints": _Param(_four_names, "4 keypoint names 'TOP,RIGHT,BOTTOM,LEFT'"),
    "min_likelihood": _num(maximum=1.0),
    "mm_per_px": _num(strict=True),
    "camera": _name(),
}

_HEIGHT = {
    "floor_m": _num(required=True, strict=True, unit="m, the floor's distance from the camera"),
    "above_m": _num(unit="m above the floor"),
    "below_m": _num(strict=True, unit="m above the floor"),
    "keypoint": _name(),
    "radius_px": _whole(0, MAX_RADIUS_PX, unit="px"),
    **_FILTER,
}

_KINDS: dict[str, tuple[Callable[..., Trigger], dict[str, _Param]]] = {
    "region": (
        Region,
        {
            "shape": _GEOMETRY,
            "mode": _choice(REGION_MODES),
            "keypoint": _name(),
            "min_dwell_s": _num(unit=_SECONDS),
            "margin_px": _num(unit="px"),
            **_FILTER,
        },
    ),
    "head_direction": (
        HeadDirection,
        {**_HEAD, "angle_deg": _num(strict=True, maximum=180.0, unit="degrees")},
    ),
    "target_side": (
        TargetSide,
        {
            **_HEAD,
            "side": _choice(SIDES),
            "max_angle_deg": _num(strict=True, maximum=180.0, unit="degrees"),
        },
    ),
    "speed_above": (SpeedAbove, _SPEED),
    "speed_below": (SpeedBelow, _SPEED),
    "freezing": (Freezing, {**_SPEED, "duration_s": _num(required=True, unit=_SECONDS)}),
    "distance_above": (DistanceAbove, _DISTANCE),
    "distance_below": (DistanceBelow, _DISTANCE),
    "after": (After, {"seconds": _num(required=True, unit=_SECONDS), "camera": _name()}),
    "every": (
        Every,
        {
            "period_s": _num(required=True, strict=True, unit=_SECONDS),
            "duration_s": _num(required=True, strict=True, unit=_SECONDS),
            "phase_s": _num(unit=_SECONDS),
            "camera": _name(),
        },
    ),
    "motion_energy_above": (MotionEnergyAbove, _ME),
    "motion_energy_below": (MotionEnergyBelow, _ME),
    "pupil_above": (PupilDiameterAbove, _PUPIL),
    "pupil_below": (PupilDiameterBelow, _PUPIL),
    "height": (Height, _HEIGHT),
    "light": (
        LightOn,
        {
            "roi": _Param(_roi, "'rect X_MIN Y_MIN X_MAX Y_MAX' or 'X_MIN Y_MIN X_MAX Y_MAX'"),
            "threshold": _num(strict=True, maximum=1.0, unit="fraction of the on level"),
            "search_s": _num(strict=True, unit=_SECONDS),
            "camera": _name(),
        },
    ),
}

# kind -> (class, parameters, (fewest, most) children; most None = unbounded)
_COMBINATORS: dict[str, tuple[Callable[..., Trigger], dict[str, _Param], int, int | None]] = {
    "all": (combinators.All, {}, 1, None),
    "and": (combinators.All, {}, 1, None),
    "any": (combinators.Any, {}, 1, None),
    "or": (combinators.Any, {}, 1, None),
    "not": (combinators.Not, {}, 1, 1),
    "rising": (combinators.Rising, {}, 1, 1),
    "debounce": (
        combinators.Debounce,
        {"on_s": _num(unit=_SECONDS), "off_s": _num(unit=_SECONDS)},
        1,
        1,
    ),
}

TRIGGER_KINDS: tuple[str, ...] = tuple(sorted({*_KINDS, *_COMBINATORS}))
"""Every kind :func:`make_trigger` builds."""


def parameters_of(kind: str) -> dict[str, str]:
    """The parameters of ``kind`` and what each accepts (``" (required)"`` marks the required)."""
    _, spec = _spec(kind)
    return {
        name: param.expected + (" (required)" if param.required else "")
        for name, param in spec.items()
    }


def _spec(kind: str) -> tuple[Callable[..., Trigger], dict[str, _Param]]:
    if kind in _KINDS:
        return _KINDS[kind]
    if kind in _COMBINATORS:
        return _COMBINATORS[kind][:2]  # type: ignore[return-value]
    raise ValueError(f"unknown trigger kind {kind!r}; known kinds: {', '.join(TRIGGER_KINDS)}")


def make_trigger(kind: str, params: Mapping[str, str], children: Sequence[Trigger] = ()) -> Trigger:
    """A trigger of ``kind`` built from string parameters (see the module docstring).

    Parameters
    ----------
    kind
        One of :data:`TRIGGER_KINDS` (case and ``-``/``_`` do not matter).
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
    factory, spec = _spec(key)
    for name in params:
        if name not in spec:
            allowed = ", ".join(spec) if spec else "none"
            raise ValueError(
                f"trigger {key!r} has no parameter {name!r}; its parameters are: {allowed}"
            )
    for name, param in spec.items():
        if param.required and name not in params:
            raise ValueError(f"trigger {key!r} needs parameter {name!r}: {param.expected}")
    kwargs: dict[str, Any] = {}
    for name, raw in params.items():
        text = str(raw).strip()
        try:
            kwargs[name] = spec[name].parse(text)
        except ValueError as error:
            detail = str(error) or f"expected {spec[name].expected}"
            raise ValueError(
                f"trigger {key!r}: parameter {name!r} = {text!r} is not valid: {detail}"
            ) from None
    if key in _COMBINATORS:
        fewest, most = _COMBINATORS[key][2:]
        if len(children) < fewest or (most is not None and len(children) > most):
            wanted = f"exactly {fewest}" if most == fewest else f"at least {fewest}"
            raise ValueError(
                f"trigger {key!r} combines {wanted} child trigger(s), got {len(children)}"
            )
        try:
            return factory(*children, **kwargs)
        except ValueError as error:
            raise ValueError(f"trigger {key!r}: {error}") from None
    if children:
        raise ValueError(f"trigger {key!r} takes no child triggers (got {len(children)})")
    try:
        return factory(**kwargs)
    except ValueError as error:
        raise ValueError(f"trigger {key!r}: {error}") from None
