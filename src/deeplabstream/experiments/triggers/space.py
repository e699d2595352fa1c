"""3D triggers: where a keypoint is in the arena, from the live triangulation (millimetres).

Its design: docs/experiments-internals.md (`experiments.triggers.space`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Unpack

from deeplabstream.experiments.observation import Observations
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    HoldOptions,
    LossHold,
    Trigger,
    check_number,
)
from deeplabstream.experiments.triggers.kinds import (
    HOLD,
    TriggerKind,
    keypoint_name,
    number,
    trigger_parameter,
)

MM = "mm"


def reads_points3d(trigger: Trigger) -> bool:
    """Return whether ``trigger``, a trigger it wraps, or one of its children reads 3D keypoints.

    An experiment's named triggers wrap the built ones (``inner``); combinators have children.
    """
    if isinstance(trigger, SpaceTrigger):
        return True
    wrapped = [getattr(trigger, attribute, None) for attribute in ("inner", "trigger")]
    inside = [*(t for t in wrapped if isinstance(t, Trigger)), *getattr(trigger, "children", ())]
    return any(reads_points3d(child) for child in inside)


def _numbers(name: str, value: str | Sequence[float], count: int) -> tuple[float, ...]:
    """``count`` finite numbers from text (``1, 2, 3`` or ``1 2 3``) or a sequence."""
    words: list[Any] = (
        [w for w in re.split(r"[\s,]+", value.strip()) if w] if isinstance(value, str) else [*value]
    )
    if len(words) != count:
        raise ValueError(f"{name} must be {count} numbers (mm), not {value!r}")
    return tuple(check_number(name, word) for word in words)


def _point(name: str, value: str | Sequence[float]) -> tuple[float, float, float]:
    x, y, z = _numbers(name, value, 3)
    return (x, y, z)


def _box(value: str | Sequence[float]) -> tuple[float, float, float, float, float, float]:
    x0, y0, z0, x1, y1, z1 = _numbers("box", value, 6)
    if not (x0 < x1 and y0 < y1 and z0 < z1):
        raise ValueError(
            f"box must be x0 y0 z0 x1 y1 z1 with x0 < x1, y0 < y1 and z0 < z1 (mm), not {value!r}"
        )
    return (x0, y0, z0, x1, y1, z1)


class SpaceTrigger(Trigger):
    """A trigger on one keypoint's triangulated position (docs/experiments-internals.md).

    Subclasses implement :meth:`_holds` (the position in mm -> the condition) and
    :meth:`_space_params`.
    """

    whole_observation = True  # the triangulated set comes with paired observations

    def __init__(self, keypoint: str, **options: Unpack[HoldOptions]) -> None:
        super().__init__(None)
        if not isinstance(keypoint, str) or not keypoint:
            raise ValueError(f"keypoint must be a keypoint name, not {keypoint!r}")
        self.keypoint = keypoint
        self.loss_hold: LossHold | None = LossHold.of(options)
        self.last_xyz: tuple[float, float, float] | None = None

    def cameras_read(self) -> tuple[str, ...]:
        """Return no camera: the triangulated set combines every calibrated camera."""
        return ()

    def step(self, obs: AnyObservation) -> bool:
        """Return the state after an update (kept when it brings no new 3D set)."""
        points = obs.points3d if isinstance(obs, Observations) else None
        if points is None:  # a single camera's observation carries no 3D set: no news
            return self.state
        xyz = points.point(self.keypoint)
        hold = self.loss_hold
        assert hold is not None
        if xyz is not None:
            hold.seen(obs.time_s)
            self.holding = False
        elif hold.bridges(obs.time_s):
            self.holding = True  # not triangulated for a moment: the state holds
            return self.state
        self.last_xyz = xyz
        return False if xyz is None else bool(self._holds(xyz))

    @property
    def hold_s(self) -> float:
        """Seconds a loss of the keypoint's triangulation is bridged."""
        assert self.loss_hold is not None
        return self.loss_hold.hold_s

    def _holds(self, xyz: tuple[float, float, float]) -> bool:
        raise NotImplementedError

    def forget(self) -> None:
        self.last_xyz = None

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint whose triangulated position it reads."""
        return (self.keypoint,)

    def params(self) -> dict[str, Any]:
        return {"keypoint": self.keypoint, **self._space_params(), "hold_s": self.hold_s}

    def _space_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def measurement(self) -> str:
        """Return the keypoint's position at the last update (mm), for the event log."""
        if self.last_xyz is None:
            return ""
        x, y, z = self.last_xyz
        return f"{self.keypoint} at ({x:.1f}, {y:.1f}, {z:.1f}) mm"


class HeightAbove(SpaceTrigger):
    """True while ``keypoint`` is higher than ``threshold_mm`` above the floor (z > threshold).

    With ``hysteresis_mm`` > 0, once true it stays true until z falls to
    ``threshold_mm - hysteresis_mm`` or below, so a nose hovering at the threshold does not
    toggle the trigger at every frame.
    """

    kind = "height_above"

    def __init__(
        self,
        threshold_mm: float,
        keypoint: str = "nose",
        hysteresis_mm: float = 0.0,
        **options: Unpack[HoldOptions],
    ) -> None:
        super().__init__(keypoint, **options)
        self.threshold_mm = check_number("threshold_mm", threshold_mm)
        self.hysteresis_mm = check_number("hysteresis_mm", hysteresis_mm, 0.0)

    def _holds(self, xyz: tuple[float, float, float]) -> bool:
        height = xyz[2]
        if self.state and self.hysteresis_mm > 0:
            return height > self.threshold_mm - self.hysteresis_mm
        return height > self.threshold_mm

    def _space_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"threshold_mm": self.threshold_mm}
        if self.hysteresis_mm:
            params["hysteresis_mm"] = self.hysteresis_mm
        return params


class Distance3DBelow(SpaceTrigger):
    """True while ``keypoint`` is closer than ``threshold_mm`` to ``point`` (x, y, z in mm)."""

    kind = "distance3d_below"

    def __init__(
        self,
        point: str | Sequence[float],
        threshold_mm: float,
        keypoint: str = "nose",
        **options: Unpack[HoldOptions],
    ) -> None:
        super().__init__(keypoint, **options)
        self.point = _point("point", point)
        self.threshold_mm = check_number("threshold_mm", threshold_mm, 0.0)
        self.last_distance_mm: float | None = None

    def _holds(self, xyz: tuple[float, float, float]) -> bool:
        self.last_distance_mm = math.dist(xyz, self.point)
        return self._compare(self.last_distance_mm)

    def _compare(self, distance: float) -> bool:
        return distance < self.threshold_mm

    def _space_params(self) -> dict[str, Any]:
        return {"point": ", ".join(f"{v:g}" for v in self.point), "threshold_mm": self.threshold_mm}


class Distance3DAbove(Distance3DBelow):
    """True while ``keypoint`` is further than ``threshold_mm`` from ``point``."""

    kind = "distance3d_above"

    def _compare(self, distance: float) -> bool:
        return distance > self.threshold_mm


class InsideBox3D(SpaceTrigger):
    """True while ``keypoint`` is inside ``box`` = x0 y0 z0 x1 y1 z1 (mm, edges included)."""

    kind = "inside_box3d"

    def __init__(
        self, box: str | Sequence[float], keypoint: str = "nose", **options: Unpack[HoldOptions]
    ) -> None:
        super().__init__(keypoint, **options)
        self.box = _box(box)

    def _holds(self, xyz: tuple[float, float, float]) -> bool:
        x0, y0, z0, x1, y1, z1 = self.box
        return x0 <= xyz[0] <= x1 and y0 <= xyz[1] <= y1 and z0 <= xyz[2] <= z1

    def _space_params(self) -> dict[str, Any]:
        return {"box": " ".join(f"{v:g}" for v in self.box)}


class InsideSphere3D(SpaceTrigger):
    """True while ``keypoint`` is within ``radius_mm`` of ``center`` (x, y, z in mm)."""

    kind = "inside_sphere3d"

    def __init__(
        self,
        center: str | Sequence[float],
        radius_mm: float,
        keypoint: str = "nose",
        **options: Unpack[HoldOptions],
    ) -> None:
        super().__init__(keypoint, **options)
        self.center = _point("center", center)
        self.radius_mm = check_number("radius_mm", radius_mm, 0.0, strict=True)

    def _holds(self, xyz: tuple[float, float, float]) -> bool:
        return math.dist(xyz, self.center) <= self.radius_mm

    def _space_params(self) -> dict[str, Any]:
        return {"center": ", ".join(f"{v:g}" for v in self.center), "radius_mm": self.radius_mm}


def _parse_point(text: str) -> tuple[float, float, float]:
    return _point("point", text)


_POINT = trigger_parameter(_parse_point, "three numbers 'X, Y, Z' (mm)", required=True)
# HOLD_S: how long a keypoint not triangulated keeps the state (LossHold).
_KEYPOINT = {"keypoint": keypoint_name(), "hold_s": HOLD}
_NEEDS = (
    " Needs `[Triangulation] CALIBRATION` in the settings (docs/3d.md); unknown (the state is "
    "kept) while no new 3D set comes, and for `HOLD_S` (0.5 s) while the keypoint is not "
    "triangulated; false after that."
)

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "height_above",
        HeightAbove,
        "A keypoint (default `nose`) is more than `THRESHOLD_MM` above the floor (its "
        "triangulated z); with `HYSTERESIS_MM`, it stays true until z falls to `THRESHOLD_MM - "
        "HYSTERESIS_MM`." + _NEEDS,
        {
            "threshold_mm": number(required=True, minimum=None, unit=MM),
            "hysteresis_mm": number(unit=MM),
            **_KEYPOINT,
        },
        per_animal=False,
    ),
    TriggerKind(
        "distance3d_below",
        Distance3DBelow,
        "A keypoint (default `nose`) is closer than `THRESHOLD_MM` to `POINT = X, Y, Z` (mm, "
        "the calibration's world frame)." + _NEEDS,
        {"point": _POINT, "threshold_mm": number(required=True, unit=MM), **_KEYPOINT},
        per_animal=False,
    ),
    TriggerKind(
        "distance3d_above",
        Distance3DAbove,
        "A keypoint (default `nose`) is further than `THRESHOLD_MM` from `POINT = X, Y, Z`."
        + _NEEDS,
        {"point": _POINT, "threshold_mm": number(required=True, unit=MM), **_KEYPOINT},
        per_animal=False,
    ),
    TriggerKind(
        "inside_box3d",
        InsideBox3D,
        "A keypoint (default `nose`) is inside the box `BOX = X0 Y0 Z0 X1 Y1 Z1` (mm, edges "
        "included)." + _NEEDS,
        {
            "box": trigger_parameter(_box, "six numbers 'X0 Y0 Z0 X1 Y1 Z1' (mm)", required=True),
            **_KEYPOINT,
        },
        per_animal=False,
    ),
    TriggerKind(
        "inside_sphere3d",
        InsideSphere3D,
        "A keypoint (default `nose`) is within `RADIUS_MM` of `CENTER = X, Y, Z` (mm)." + _NEEDS,
        {
            "center": _POINT,
            "radius_mm": number(required=True, strict=True, unit=MM),
            **_KEYPOINT,
        },
        per_animal=False,
    ),
)
