"""Head direction: where the head points relative to a target, allocentric and egocentric.

Its design: docs/experiments-internals.md (`experiments.triggers.direction`).
"""

from __future__ import annotations

import math
from typing import Any, Unpack

from deeplabstream.experiments.observation import (
    Observation,
)
from deeplabstream.experiments.triggers.base import (
    KeypointOptions,
    KeypointTrigger,
    check_choice,
    check_number,
)
from deeplabstream.experiments.triggers.geometry import Line, Marker, RegionShape, Shape
from deeplabstream.experiments.triggers.kinds import (
    FILTER,
    TriggerKind,
    choice,
    keypoint_name,
    number,
    target,
)

SIDES: tuple[str, ...] = ("left", "right")


def bearing_deg(
    origin: tuple[float, float], tip: tuple[float, float], target: tuple[float, float]
) -> float | None:
    """Signed angle from the vector origin->tip to origin->target, degrees in (-180, 180].

    Negative: the target is on the animal's left; positive: on its right (the sign
    convention: docs/experiments-internals.md).
    None when either vector has zero length.
    """
    hx, hy = tip[0] - origin[0], tip[1] - origin[1]
    ux, uy = target[0] - origin[0], target[1] - origin[1]
    if (hx == 0.0 and hy == 0.0) or (ux == 0.0 and uy == 0.0):
        return None
    angle = math.degrees(math.atan2(hx * uy - hy * ux, hx * ux + hy * uy))
    return 180.0 if angle == -180.0 else angle


def _target_point(target: tuple[float, float] | RegionShape) -> tuple[float, float]:
    if isinstance(target, tuple):
        return (float(target[0]), float(target[1]))
    return target.center


def _target_text(target: tuple[float, float] | RegionShape) -> str:
    if isinstance(target, tuple):
        return f"{target[0]!r},{target[1]!r}"
    return str(target)


class _Bearing(KeypointTrigger):
    """Shared parts: the target, the head keypoints, and the last bearing for drawing."""

    def __init__(
        self,
        target: tuple[float, float] | RegionShape,
        origin: str,
        tip: str,
        camera: str | None,
        options: KeypointOptions,
    ) -> None:
        super().__init__(camera, **options)
        if not hasattr(target, "contains"):
            try:
                x, y = (float(v) for v in target)
            except (TypeError, ValueError):
                raise ValueError(
                    f"target must be a point (x, y) or a region, not {target!r}"
                ) from None
            target = (x, y)
        self.target = target
        self.target_point = _target_point(target)
        self.origin = origin
        self.tip = tip
        self.forget()

    def forget(self) -> None:
        self.last_bearing: float | None = None
        self._head: tuple[tuple[float, float], tuple[float, float]] | None = None

    def bearing(self, obs: Observation) -> float | None:
        """Return the target's bearing in this observation (None when a keypoint is missing)."""
        origin, tip = self._point(obs, self.origin), self._point(obs, self.tip)
        if origin is None or tip is None:
            self._head = None
            self.last_bearing = None
            return None
        self._head = (origin, tip)
        self.last_bearing = bearing_deg(origin, tip, self.target_point)
        return self.last_bearing

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the head's two keypoints (origin, tip)."""
        return (self.origin, self.tip)

    def params(self) -> dict[str, Any]:
        return {"target": _target_text(self.target), "origin": self.origin, "tip": self.tip}

    def shapes(self) -> list[Shape]:
        """Return the target (point or region), and the head's line of sight at the last update."""
        drawn: list[Shape] = [
            Marker(*self.target_point) if isinstance(self.target, tuple) else self.target
        ]
        if self._head is not None:
            (x0, y0), (x1, y1) = self._head
            drawn.append(Line(x0, y0, *self.target_point))
            drawn.append(Line(x0, y0, x1, y1))
        return drawn


class HeadDirection(_Bearing):
    """True while the head points at the target within +-``angle_deg``.

    Parameters
    ----------
    target
        A point ``(x, y)`` in frame pixels, or a region (its centre is the target).
    angle_deg
        Half-width of the cone, degrees in (0, 180]: True when ``|bearing| <= angle_deg``.
    origin, tip
        The head vector's keypoints (default neck -> nose); the target vector starts at origin.
    camera, **options
        See :class:`~experiments.triggers.base.KeypointTrigger`.

    False when a keypoint is missing or the head vector has zero length.
    """

    kind = "head_direction"

    def __init__(
        self,
        target: tuple[float, float] | RegionShape,
        angle_deg: float = 30.0,
        origin: str = "neck",
        tip: str = "nose",
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(target, origin, tip, camera, options)
        self.angle_deg = check_number("angle_deg", angle_deg, 0.0, strict=True)
        if self.angle_deg > 180.0:
            raise ValueError(f"angle_deg must be <= 180, not {angle_deg!r}")

    def step(self, obs: Observation) -> bool:
        bearing = self.bearing(obs)
        return bearing is not None and abs(bearing) <= self.angle_deg

    def params(self) -> dict[str, Any]:
        return {**super().params(), "angle_deg": self.angle_deg}


class TargetSide(_Bearing):
    """Egocentric: True while the target is on the animal's ``side`` (``"left"`` or ``"right"``).

    Left means ``-180 < bearing < 0``, right ``0 < bearing < 180`` (the sign convention:
    docs/experiments-internals.md). A target exactly ahead or behind is on neither side.
    ``max_angle_deg`` (default 180) narrows it to ``|bearing| <= max_angle_deg``.
    """

    kind = "target_side"

    def __init__(
        self,
        target: tuple[float, float] | RegionShape,
        side: str = "left",
        origin: str = "neck",
        tip: str = "nose",
        max_angle_deg: float = 180.0,
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(target, origin, tip, camera, options)
        self.side = check_choice("side", side, SIDES)
        self.max_angle_deg = check_number("max_angle_deg", max_angle_deg, 0.0, strict=True)
        if self.max_angle_deg > 180.0:
            raise ValueError(f"max_angle_deg must be <= 180, not {max_angle_deg!r}")

    def step(self, obs: Observation) -> bool:
        bearing = self.bearing(obs)
        if bearing is None or abs(bearing) >= 180.0 or abs(bearing) > self.max_angle_deg:
            return False
        return bearing < 0.0 if self.side == "left" else bearing > 0.0

    def params(self) -> dict[str, Any]:
        return {**super().params(), "side": self.side, "max_angle_deg": self.max_angle_deg}


_HEAD_PARAMETERS = {
    "target": target(required=True),
    "origin": keypoint_name(),
    "tip": keypoint_name(),
    **FILTER,
}

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "head_direction",
        HeadDirection,
        "The head (`ORIGIN` -> `TIP`, default `neck` -> `nose`) points at `TARGET` (a point "
        "`X,Y` or a shape's centre) within +-`ANGLE_DEG` (default 30).",
        {**_HEAD_PARAMETERS, "angle_deg": number(strict=True, maximum=180.0, unit="degrees")},
    ),
    TriggerKind(
        "target_side",
        TargetSide,
        "`TARGET` is on the animal's own `SIDE` (`left` or `right`, egocentric), within "
        "`MAX_ANGLE_DEG` of straight ahead.",
        {
            **_HEAD_PARAMETERS,
            "side": choice(SIDES),
            "max_angle_deg": number(strict=True, maximum=180.0, unit="degrees"),
        },
    ),
)
