"""Depth triggers: how high a body part is above the floor, from a depth camera's image.

Its design: docs/experiments-internals.md (`experiments.triggers.depth`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Unpack

from deeplabstream.experiments.observation import (
    DEPTH_RADIUS_PX,
    Observation,
)
from deeplabstream.experiments.triggers.base import KeypointOptions, KeypointTrigger, check_number
from deeplabstream.experiments.triggers.kinds import (
    FILTER,
    TriggerKind,
    keypoint_name,
    number,
    whole,
)

MAX_RADIUS_PX = 20
NO_DEPTH_HINT = (
    "it needs a RealSense camera (SOURCE = realsense) with DEPTH = true and ALIGN_DEPTH = true "
    "(docs/cameras.md)"
)


class Height(KeypointTrigger):
    """A keypoint's height above the floor is at least ``above_m`` and/or below ``below_m``.

    Parameters
    ----------
    floor_m
        The floor's distance from the camera, metres (> 0).
    above_m
        True while the height is at least this (metres, >= 0, below ``floor_m``).
    below_m
        True while the height is known and less than this (metres, > 0). With ``above_m`` too:
        true while ``above_m <= height < below_m`` (a band; ``above_m < below_m``).
    keypoint
        Which keypoint (default the nose).
    radius_px
        Half-width of the square of depth pixels whose median is the keypoint's depth (0-20;
        default 2: 5 x 5 pixels).
    camera, **options
        See :class:`~experiments.triggers.base.KeypointTrigger`.

    :attr:`last_height_m` is the height after the last update (None: unknown).

    Raises
    ------
    ValueError
        Bad parameters; on update, an observation of a camera without a depth image (the message
        names the camera and what it needs).
    """

    reads: ClassVar[tuple[str, ...]] = ("depth",)  # besides keypoints

    kind = "height"

    def __init__(
        self,
        floor_m: float,
        above_m: float | None = None,
        below_m: float | None = None,
        keypoint: str = "nose",
        radius_px: int = DEPTH_RADIUS_PX,
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(camera, **options)
        self.floor_m = check_number("floor_m", floor_m, 0.0, strict=True)
        if above_m is None and below_m is None:
            raise ValueError(
                "give above_m (true while at least this high), below_m (true while lower) or "
                "both (a band), in metres above the floor"
            )
        self.above_m = None if above_m is None else check_number("above_m", above_m, 0.0)
        self.below_m = (
            None if below_m is None else check_number("below_m", below_m, 0.0, strict=True)
        )
        for name, value in (("above_m", self.above_m), ("below_m", self.below_m)):
            if value is not None and value >= self.floor_m:
                raise ValueError(
                    f"{name} = {value:g} m is not below the floor's distance from the camera "
                    f"(floor_m = {self.floor_m:g} m): the keypoint would be at or above the camera"
                )
        if self.above_m is not None and self.below_m is not None and self.above_m >= self.below_m:
            raise ValueError(
                f"above_m = {self.above_m:g} m must be less than below_m = {self.below_m:g} m "
                "(true while above_m <= height < below_m)"
            )
        radius = check_number("radius_px", radius_px, 0.0)
        if radius != int(radius) or radius > MAX_RADIUS_PX:
            raise ValueError(
                f"radius_px must be a whole number from 0 to {MAX_RADIUS_PX}, not {radius_px!r}"
            )
        self.keypoint = keypoint
        self.radius_px = int(radius)
        self.last_height_m: float | None = None

    def forget(self) -> None:
        self.last_height_m = None

    def height_m(self, obs: Observation) -> float | None:
        """Return the keypoint's height above the floor in ``obs`` (None: missing, not measured)."""
        if obs.depth is None:
            raise ValueError(
                f"trigger {self.kind!r} reads depth, but camera {obs.camera!r} delivers no depth "
                f"image aligned to its frames: {NO_DEPTH_HINT}"
            )
        point = self._point(obs, self.keypoint)
        if point is None:
            return None
        depth = obs.depth_m(point[0], point[1], self.radius_px)
        if depth is None or not math.isfinite(depth):
            return None
        return self.floor_m - depth

    def step(self, obs: Observation) -> bool:
        height = self.height_m(obs)
        self.last_height_m = height
        if height is None:
            return False
        if self.above_m is not None and not height >= self.above_m:
            return False
        return self.below_m is None or height < self.below_m

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint whose height it measures."""
        return (self.keypoint,)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"floor_m": self.floor_m}
        if self.above_m is not None:
            params["above_m"] = self.above_m
        if self.below_m is not None:
            params["below_m"] = self.below_m
        params["keypoint"] = self.keypoint
        params["radius_px"] = self.radius_px
        return params


#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "height",
        Height,
        "A keypoint (default `nose`) stands at least `ABOVE_M` metres above the floor (and/or "
        "less than `BELOW_M`; both: a band), from the camera's depth image: height = `FLOOR_M` "
        "(the floor's distance from the camera) minus the depth under the keypoint (the median "
        "of the measured pixels within `RADIUS_PX`, default 2). Needs a RealSense camera with "
        "`DEPTH = true` and `ALIGN_DEPTH = true`; false while nothing under the keypoint was "
        "measured, or once it has not been seen for `HOLD_S` (0.5 s).",
        {
            "floor_m": number(
                required=True, strict=True, unit="m, the floor's distance from the camera"
            ),
            "above_m": number(unit="m above the floor"),
            "below_m": number(strict=True, unit="m above the floor"),
            "keypoint": keypoint_name(),
            "radius_px": whole(0, MAX_RADIUS_PX, unit="px"),
            **FILTER,
        },
    ),
)
