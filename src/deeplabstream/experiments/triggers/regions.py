"""Region triggers: where a keypoint is relative to a circle, rectangle, ellipse or polygon.

The trigger follows which side of the region the keypoint is on, observation by observation:

* Hysteresis (``margin_px``): a keypoint outside becomes *inside* when it is in the region (the
  boundary counts as in); once inside it stays inside until it is more than ``margin_px`` outside
  the boundary. A keypoint wandering along the edge therefore does not flicker in and out.
* A keypoint not seen (below the likelihood threshold) is neither inside nor outside. For
  ``hold_s`` seconds after it was last seen (default 0.5) the trigger keeps its state and its
  side (:class:`~experiments.triggers.base.LossHold`): ``inside`` stays true through a blink of
  the model, and a keypoint seen inside again has not entered. Entries and exits need the
  keypoint seen on both sides: seen outside before a short loss and inside after it is an
  entry. A keypoint the identity step withheld (the animal unnamed, or the keypoint maybe
  another animal's: :attr:`~experiments.observation.Observation.withheld`) keeps the side
  however long that lasts: unknown is not "left", and an animal named again inside after being
  outside has entered, decided late (:attr:`Region.late_frames`, in the event's detail). A
  loss longer than ``hold_s`` makes the side unknown: every mode is False and
  continuity is broken (dwell restarts, the next sighting is not a crossing). ``hold_s = 0``
  decides on every frame alone. Policy ``"hold"`` bridges the loss by keeping the last position
  instead.
* Dwell (``min_dwell_s``): a side counts only once the keypoint has been on it continuously for at
  least that many seconds of frame time, measured from the first observation on that side.

Modes, for the state :meth:`Trigger.update` returns:

``inside``
    True while the keypoint is inside and has dwelt there ``min_dwell_s``.
``outside``
    True while the keypoint is (seen) outside and has been so for ``min_dwell_s``.
``entered``
    An event: True on the one observation where the keypoint, having been seen outside, is
    inside (with a dwell, on the observation where the dwell is reached; once per visit). A
    keypoint first seen inside, or seen again inside after a dropout, has not entered.
``left``
    An event: True on the observation where the keypoint, having been inside (for at least
    ``min_dwell_s``), is seen outside (beyond the hysteresis margin).
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
    """A keypoint inside / outside / entering / leaving a region (see the module docstring).

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

    def step(self, obs: Observation) -> bool:
        t = obs.time_s
        point = self._point(obs, self.keypoint)
        self.last_point = point
        if point is None:
            self._inside = None
            return False
        x, y = point
        was_inside = self._inside
        last_frame, self._last_frame = self._last_frame, obs.frame_index
        if was_inside:
            inside = self.shape.distance_outside(x, y) <= self.margin_px
        else:
            inside = self.shape.contains(x, y)
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
        """Say when the last entry was decided late (what it reads was unknown or not seen)."""
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
