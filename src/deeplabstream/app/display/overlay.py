"""Drawing on a display copy of a frame (never on the frame that is recorded or analysed).

Poses (keypoints coloured by likelihood, hidden below the threshold, and the skeleton), trigger
shapes coloured by state, a flash when an action fires, and a caption line.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from deeplabstream.experiments.triggers.geometry import (
    Circle,
    Ellipse,
    Label,
    Line,
    Marker,
    Polygon,
    Rectangle,
    Shape,
)
from deeplabstream.live.processes.messages import TriggerView


def likelihood_colour(likelihood: float) -> tuple[int, int, int]:
    """BGR colour from red (just above the threshold) to green (certain)."""
    level = float(np.clip(likelihood, 0.0, 1.0))
    return (0, int(255 * level), int(255 * (1 - level)))


def draw_pose(
    image: np.ndarray,
    pose: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
) -> np.ndarray:
    """Draw keypoints (K, 3) above ``threshold`` on a BGR copy of ``image``; return the copy."""
    canvas = display_copy(image)
    draw_pose_on(canvas, pose, threshold, skeleton_indices)
    return canvas


def display_copy(image: np.ndarray) -> np.ndarray:
    """Return a BGR copy of a BGR or mono frame, to draw on (the frame itself is never touched)."""
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


def draw_pose_on(
    canvas: np.ndarray,
    pose: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
) -> None:
    """Draw keypoints (K, 3) above ``threshold`` and the skeleton on ``canvas`` in place."""
    radius = max(2, round(min(canvas.shape[:2]) / 120))
    visible = pose[:, 2] >= threshold
    for a, b in skeleton_indices:
        if visible[a] and visible[b]:
            start = (round(float(pose[a, 0])), round(float(pose[a, 1])))
            end = (round(float(pose[b, 0])), round(float(pose[b, 1])))
            cv2.line(canvas, start, end, (255, 200, 0), 1, cv2.LINE_AA)
    for x, y, likelihood in pose[visible]:
        centre = (round(float(x)), round(float(y)))
        cv2.circle(canvas, centre, radius, likelihood_colour(likelihood), -1, cv2.LINE_AA)


# One colour per identity (BGR), distinct from the likelihood ramp and the trigger colours;
# identities beyond the list reuse it in turn.
IDENTITY_COLOURS = (
    (255, 80, 255),  # magenta: animal 1
    (255, 255, 0),  # cyan: animal 2
    (0, 200, 255),  # yellow-orange: animal 3
    (255, 120, 60),  # blue: animal 4
    (120, 255, 120),  # light green: animal 5
    (60, 60, 255),  # red: animal 6
)


def identity_colour(identity: int) -> tuple[int, int, int]:
    """BGR colour of identity ``identity`` (0-based: animal 1 is identity 0)."""
    return IDENTITY_COLOURS[identity % len(IDENTITY_COLOURS)]


def draw_animals_on(
    canvas: np.ndarray,
    animals: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
    confidence: np.ndarray | None = None,
) -> None:
    """Draw every animal (A, K, 3) in its identity's colour, numbered from 1, on ``canvas``.

    Keypoints below ``threshold`` are hidden, as for one animal; the number is written beside
    the animal's first visible keypoint, so a swap of identities shows as swapped numbers.
    With ``confidence`` (A,), each identity's (:mod:`pose.tracking.identities`), the number is
    followed by it in percent while it is below :data:`SURE_IDENTITY` (``2 ?62%``): after two
    animals lay on each other, which is which is shown as uncertain until their looks tell.
    """
    radius = max(2, round(min(canvas.shape[:2]) / 120))
    for identity, pose in enumerate(animals):
        visible = np.isfinite(pose[:, 0]) & (pose[:, 2] >= threshold)
        if not visible.any():
            continue
        colour = identity_colour(identity)
        for a, b in skeleton_indices:
            if visible[a] and visible[b]:
                cv2.line(canvas, _point(*pose[a, :2]), _point(*pose[b, :2]), colour, 1, cv2.LINE_AA)
        for x, y, _ in pose[visible]:
            cv2.circle(canvas, _point(x, y), radius, colour, -1, cv2.LINE_AA)
        x, y = pose[np.argmax(visible), :2]
        label_at = (round(float(x)) + radius + 2, round(float(y)) - radius - 2)
        cv2.putText(
            canvas, _identity_label(identity, confidence), label_at, cv2.FONT_HERSHEY_SIMPLEX,
            0.5, colour, 1, cv2.LINE_AA,
        )  # fmt: skip


SURE_IDENTITY = 0.95
"""Identity confidence from which the live view shows an animal's number alone."""


def _identity_label(identity: int, confidence: np.ndarray | None) -> str:
    """Return ``"2"``, or ``"2 ?62%"`` while identity 2's confidence is below SURE_IDENTITY."""
    if confidence is None or identity >= len(confidence):
        return str(identity + 1)
    value = float(confidence[identity])
    if not np.isfinite(value) or value >= SURE_IDENTITY:
        return str(identity + 1)
    return f"{identity + 1} ?{round(100 * value)}%"


# Trigger colours (BGR): a true trigger stands out in orange, an idle one is a quiet blue.
ACTIVE_COLOUR = (0, 140, 255)
IDLE_COLOUR = (200, 120, 40)
FLASH_COLOUR = (0, 255, 255)


def _point(x: float, y: float) -> tuple[int, int]:
    return round(float(x)), round(float(y))


def draw_shape(canvas: np.ndarray, shape: Shape, colour: tuple[int, int, int]) -> None:
    """Draw one trigger shape (frame pixels) on ``canvas`` in place."""
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    if isinstance(shape, Circle):
        centre, radius = _point(shape.cx, shape.cy), round(shape.r)
        cv2.circle(canvas, centre, radius, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Rectangle):
        top_left, bottom_right = _point(shape.x_min, shape.y_min), _point(shape.x_max, shape.y_max)
        cv2.rectangle(canvas, top_left, bottom_right, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Ellipse):
        axes = (round(shape.rx), round(shape.ry))
        centre = _point(shape.cx, shape.cy)
        cv2.ellipse(canvas, centre, axes, shape.angle_deg, 0, 360, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Polygon):
        points = np.array([_point(x, y) for x, y in shape.points], np.int32)
        cv2.polylines(canvas, [points], True, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Line):
        start, end = _point(shape.x0, shape.y0), _point(shape.x1, shape.y1)
        cv2.line(canvas, start, end, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Marker):
        cv2.drawMarker(canvas, _point(shape.x, shape.y), colour, cv2.MARKER_CROSS, 12, thickness)
    elif isinstance(shape, Label):
        scale = max(0.45, min(canvas.shape[:2]) / 900)
        cv2.putText(
            canvas, shape.text, _point(shape.x, shape.y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
            thickness, cv2.LINE_AA,
        )  # fmt: skip


def name_anchor(shape: Shape) -> tuple[float, float] | None:
    """Return where a shape's name goes (frame pixels): the middle of its top edge.

    On the edge, not the centre: a name at a region's centre hid the keypoint inside it, the
    very thing the region watches. None for a line, marker or label.
    """
    if isinstance(shape, Circle):
        return float(shape.cx), float(shape.cy - shape.r)
    if isinstance(shape, Ellipse):
        return float(shape.cx), float(shape.cy - max(shape.rx, shape.ry))
    if isinstance(shape, Rectangle):
        return (shape.x_min + shape.x_max) / 2, float(shape.y_min)
    if isinstance(shape, Polygon) and shape.points:
        xs, ys = zip(*shape.points, strict=True)
        return sum(xs) / len(xs), float(min(ys))
    return None


def draw_triggers(canvas: np.ndarray, triggers: Sequence[TriggerView]) -> None:
    """Every trigger's shapes on ``canvas`` in place, coloured by the trigger's state."""
    for trigger in triggers:
        colour = ACTIVE_COLOUR if trigger.active else IDLE_COLOUR
        for shape in trigger.shapes:
            draw_shape(canvas, shape, colour)


def draw_flash(canvas: np.ndarray) -> None:
    """Draw a thick border: an action has just fired."""
    border = max(4, round(min(canvas.shape[:2]) / 40))
    height, width = canvas.shape[:2]
    cv2.rectangle(canvas, (0, 0), (width - 1, height - 1), FLASH_COLOUR, border)


def draw_caption(canvas: np.ndarray, text: str, bottom: bool = False) -> None:
    """Draw a line of white text on a dark strip at the top left, readable on any floor.

    ``bottom`` puts it at the bottom left instead (a second line that never hides the first).
    """
    scale = max(0.45, min(canvas.shape[:2]) / 900)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = canvas.shape[0] - (height + baseline + 10) if bottom else 0
    cv2.rectangle(canvas, (0, top), (width + 12, top + height + baseline + 10), (40, 40, 40), -1)
    origin = (6, top + height + 5)
    cv2.putText(
        canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
