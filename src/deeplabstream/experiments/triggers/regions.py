"""Region triggers: where a keypoint is relative to a circle, rectangle, ellipse or polygon.

Its design: docs/experiments-internals.md (`experiments.triggers.regions`).
"""

from __future__ import annotations

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
from deeplabstream.experiments.triggers.geometry import RegionShape, Shape
from deeplabstream.experiments.triggers.kinds import (
    FILTER,
    GEOMETRY,
    SECONDS,
    TriggerKind,
    choice,
    keypoint_name,
    number,
)

REGION_MODES: tuple[str, ...] = ("inside", "outside", "entered", "left")


class Region(KeypointTrigger):
    """A keypoint inside / outside / entering / leaving a region (docs/experiments-internals.md).

    Parameters
    ----------
    shape
        A :class:`~experiments.triggers.geometry.Circle`, ``Rectangle``, ``Ellipse`` or
        ``Polygon`` in frame pixels.
    mode
        ``"inside"``, ``"outside"``, ``"entered"`` or ``"left"``.
    keypoint
        Which keypoint (default the nose).
    min_dwell_s
        Seconds of frame time the keypoint must stay on a side before it counts (>= 0).
    margin_px
        Hysteresis: once inside, inside until more than this far outside the boundary (>= 0).
    camera, **options
        See :class:`~experiments.triggers.base.KeypointTrigger`.
    """

    kind = "region"

    def __init__(
        self,
        shape: RegionShape,
        mode: str = "inside",
        keypoint: str = "nose",
        min_dwell_s: float = 0.0,
        margin_px: float = 0.0,
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(camera, **options)
        if not hasattr(shape, "contains"):
            raise ValueError(f"shape must be a circle, rect, ellipse or polygon, not {shape!r}")
        self.shape = shape
        self.mode = check_choice("mode", mode, REGION_MODES)
        self.keypoint = keypoint
        self.min_dwell_s = check_number("min_dwell_s", min_dwell_s, 0.0)
        self.margin_px = check_number("margin_px", margin_px, 0.0)
        self.is_event = self.mode in ("entered", "left")
        self.forget()

    def forget(self) -> None:
        self._inside: bool | None = None  # the side, after hysteresis; None = unknown
        self._last_frame: int | None = None  # the frame index of the last sighting
        # The last entry's frames between the last sighting outside and the first inside (0:
        # seen on consecutive frames): how late it was decided at most.
        self.late_frames = 0
        self._since = 0.0  # time of the first observation on the current side
        self._from_outside = False  # the current visit began by crossing in from outside
        self._entry_reported = False
        self._dwelt_inside = False  # the current visit has lasted min_dwell_s
        self.last_point: tuple[float, float] | None = None
        # The side every unnamed animal's keypoint was on (:meth:`_decides_unnamed`), for step.
        self._agreed: bool | None = None
        self.unnamed_candidates = 0  # the rows the last decision while unnamed agreed on

    def _side(self, x: float, y: float) -> bool:
        """Whether ``(x, y)`` is inside, with the hysteresis of the current side."""
        if self._inside:
            return self.shape.distance_outside(x, y) <= self.margin_px
        return self.shape.contains(x, y)

    def _decides_unnamed(self, obs: Observation) -> bool:
        """Whether every row the unnamed animal may be has its keypoint on one side."""
        points = obs.candidates(self.keypoint, self.filter.min_likelihood)
        sides = set() if points is None else {self._side(x, y) for x, y in points.tolist()}
        self._agreed = sides.pop() if len(sides) == 1 else None
        if points is not None and self._agreed is not None:
            self.unnamed_candidates = len(points)
        return self._agreed is not None

    def step(self, obs: Observation) -> bool:
        t = obs.time_s
        inside, self._agreed = self._agreed, None  # decided while unnamed: no point of its own
        self.last_point = point = None if inside is not None else self._point(obs, self.keypoint)
        if point is not None:
            inside, self.unnamed_candidates = self._side(*point), 0
        elif inside is None:
            self._inside = None
            return False
        was_inside = self._inside
        last_frame, self._last_frame = self._last_frame, obs.frame_index
        if inside != was_inside:
            self._since = t
            self._inside = inside
            if inside:
                self._from_outside = was_inside is False
                self._entry_reported = False
                self._dwelt_inside = False
                gap = 0 if last_frame is None else obs.frame_index - last_frame - 1
                self.late_frames = max(gap, 0) if self._from_outside else 0
        dwelt = t - self._since >= self.min_dwell_s
        if self.mode == "inside":
            return inside and dwelt
        if self.mode == "outside":
            return not inside and dwelt
        if self.mode == "left":
            left = was_inside is True and not inside and self._dwelt_inside
            if inside and dwelt:
                self._dwelt_inside = True
            return left
        # entered
        if inside and dwelt and self._from_outside and not self._entry_reported:
            self._entry_reported = True
            return True
        return False

    def measurement(self) -> str:
        """Say how a decision was made while unnamed, or an entry decided late."""
        if self.state and self.unnamed_candidates:
            count = self.unnamed_candidates
            return f"decided while unnamed: the {self.keypoint} of all {count} unnamed animals"
        if self.mode != "entered" or not self.state or not self.late_frames:
            return ""
        return f"decided late: {self.late_frames} frame(s) unknown or not seen before it"

    @property
    def inside(self) -> bool | None:
        """The keypoint's side after the last observation (None: unknown)."""
        return self._inside

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint it places in the region."""
        return (self.keypoint,)

    def params(self) -> dict[str, Any]:
        return {
            "shape": str(self.shape),
            "mode": self.mode,
            "keypoint": self.keypoint,
            "min_dwell_s": self.min_dwell_s,
            "margin_px": self.margin_px,
        }

    def shapes(self) -> list[Shape]:
        """Return the region."""
        return [self.shape]


#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "region",
        Region,
        "A keypoint (default `nose`) relative to a circle, rectangle, ellipse or polygon: "
        "`MODE = inside` (default), `outside`, `entered` or `left` (one-update events). "
        "`MIN_DWELL_S`: it must stay that long first; `MARGIN_PX`: hysteresis at the border; "
        "`HOLD_S` (0.5 s): a keypoint not seen keeps the state that long (neither in nor out).",
        {
            "shape": GEOMETRY,
            "mode": choice(REGION_MODES),
            "keypoint": keypoint_name(),
            "min_dwell_s": number(unit=SECONDS),
            "margin_px": number(unit="px"),
            **FILTER,
        },
    ),
)
