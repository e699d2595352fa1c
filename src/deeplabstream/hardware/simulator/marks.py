"""Marks that tell simulated mice apart, as labs mark theirs: a tail mark, a bleached patch, size.

docs/settings.md, ``MARKS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

from deeplabstream.hardware.simulator.arena import _SCALE, _SHIFT, BODY_PLAN, Pose, tail_polyline

PatchPlace = Literal["", "rump", "head"]


@dataclass(frozen=True)
class Marks:
    """How one animal is marked: ``scale``, ``tail_bands`` (0 base .. 1 tip), ``patch``."""

    scale: float = 1.0
    tail_bands: tuple[float, ...] = ()
    patch: PatchPlace = ""

    def __post_init__(self) -> None:
        """Reject sizes and band places the drawing cannot honour."""
        if not 0.5 <= self.scale <= 1.0:
            # Larger than the arena's body length would let the random walk reach the walls.
            raise ValueError(f"scale must be in [0.5, 1], not {self.scale}")
        if any(not 0.0 <= band <= 1.0 for band in self.tail_bands):
            raise ValueError(f"tail bands must lie in [0, 1] along the tail, not {self.tail_bands}")

    @property
    def marked(self) -> bool:
        """Whether anything tells this animal apart from an unmarked one."""
        return self.scale != 1.0 or bool(self.tail_bands) or bool(self.patch)


UNMARKED = Marks()
MARKED: tuple[Marks, ...] = (
    Marks(tail_bands=(0.33,)),
    Marks(scale=0.9, patch="rump"),
    Marks(tail_bands=(0.25, 0.55), patch="head"),
)
"""The marks of animals 1, 2 and 3 when the herd is marked."""

_BAND_HALF_LENGTH = 0.05  # of the tail: a band covers a tenth of it
_BAND_THICKNESS = 0.06  # BL: wider than the tail, as marker ink spreads on the fur
_BAND_BGR = (16, 16, 18)  # permanent marker
# Bleached fur on a dark mouse: a brownish grey, clearly lighter than the body (34-53) but far
# from the floor. (A near-white patch changes the mouse's outline so much that a pose model
# trained on unmarked mice misplaces its keypoints; labs train on their marked animals.)
_PATCH_BGR = (66, 74, 82)
# The patches, in BL: (centre ahead of the body centre along the body axis, half length,
# half width). The rump patch sits on the back half of the trunk; the head patch is measured
# from the neck along the head's axis.
_RUMP_PATCH = (-0.25, 0.10, 0.09)
_HEAD_PATCH = (0.06, 0.07, 0.07)


def marks_of(animals: int, marked: bool) -> tuple[Marks, ...]:
    """Return the marks of ``animals`` animals: :data:`MARKED`'s, or none; a lone one has none."""
    if not marked or animals < 2:
        return (UNMARKED,) * animals
    return MARKED[:animals]


def _bgr(bgr: tuple[int, int, int], color: bool) -> tuple[float, ...]:
    """Return a drawing colour in the frame's format (a BGR colour's grey for mono frames)."""
    if color:
        return tuple(float(c) for c in bgr)
    blue, green, red = bgr
    return (float(round(0.114 * blue + 0.587 * green + 0.299 * red)),)


def _fixed(x: float, y: float) -> tuple[int, int]:
    return (round(x * _SCALE), round(y * _SCALE))


def draw_marks(
    cv2: ModuleType,
    image: np.ndarray,
    pose: Pose,
    marks: Marks,
    length: float,
    arena_rect: tuple[float, float, float, float],
) -> None:
    """Draw ``marks`` on the animal at ``pose`` just drawn into ``image`` (before lighting)."""
    color = image.ndim == 3
    if marks.patch:
        _draw_patch(cv2, image, pose, marks.patch, length, _bgr(_PATCH_BGR, color))
    if marks.tail_bands:
        tail = tail_polyline(pose, length, arena_rect)
        ink = _bgr(_BAND_BGR, color)
        thickness = max(1, round(_BAND_THICKNESS * length))
        for band in marks.tail_bands:
            part = _along(tail, band - _BAND_HALF_LENGTH, band + _BAND_HALF_LENGTH)
            points = np.rint(part * _SCALE).astype(np.int32)
            cv2.polylines(image, [points], False, ink, thickness, cv2.LINE_AA, _SHIFT)


def _draw_patch(
    cv2: ModuleType,
    image: np.ndarray,
    pose: Pose,
    place: PatchPlace,
    length: float,
    color: tuple[float, ...],
) -> None:
    """Draw a bleached patch (an ellipse along the body or head axis)."""
    plan = BODY_PLAN
    axis = length * pose.stretch
    if place == "rump":
        ahead, half_length, half_width = _RUMP_PATCH
        angle = pose.heading
        x = pose.x + ahead * axis * math.cos(angle)
        y = pose.y + ahead * axis * math.sin(angle)
    else:
        ahead, half_length, half_width = _HEAD_PATCH
        angle = pose.heading + pose.head_turn
        neck_x = pose.x + plan.neck_ahead * axis * math.cos(pose.heading)
        neck_y = pose.y + plan.neck_ahead * axis * math.sin(pose.heading)
        x = neck_x + ahead * axis * math.cos(angle)
        y = neck_y + ahead * axis * math.sin(angle)
    axes = (round(half_length * axis * _SCALE), round(half_width * length * _SCALE))
    cv2.ellipse(
        image, _fixed(x, y), axes, math.degrees(angle), 0, 360, color, -1, cv2.LINE_AA, _SHIFT
    )


def _along(polyline: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Return the part of ``polyline`` (N, 2) from fraction ``start`` to ``stop`` of it."""
    steps = np.hypot(*np.diff(polyline, axis=0).T)
    travelled = np.concatenate(([0.0], np.cumsum(steps)))
    total = travelled[-1]
    wanted = np.linspace(max(start, 0.0), min(stop, 1.0), 5) * total
    xs = np.interp(wanted, travelled, polyline[:, 0])
    return np.stack((xs, np.interp(wanted, travelled, polyline[:, 1])), axis=1)
