"""Drawing on a display copy of a frame (never on the frame that is recorded or analysed)."""

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
from deeplabstream.outputs.pose.drawing import pixel_point as _point

# Trigger colours (BGR): a true trigger stands out in orange, an idle one is a quiet blue.
ACTIVE_COLOUR = (0, 140, 255)
IDLE_COLOUR = (200, 120, 40)
FLASH_COLOUR = (0, 255, 255)


def draw_shape(canvas: np.ndarray, shape: Shape, colour: tuple[int, int, int]) -> None:
    """Draw one trigger shape (frame pixels) on ``canvas`` in place."""
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    if isinstance(shape, Circle):
        centre, radius = _point(shape.cx, shape.cy), round(shape.r)
        cv2.circle(canvas, centre, radius, colour, thickness, cv2.LINE_AA)
    elif isinstance(shape, Rectangle):
        top_left, bottom_right = (
            _point(shape.x_min, shape.y_min),
            _point(shape.x_max, shape.y_max),
        )
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
        cv2.drawMarker(
            canvas, _point(shape.x, shape.y), colour, cv2.MARKER_CROSS, 12, thickness
        )
    elif isinstance(shape, Label):
        scale = max(0.45, min(canvas.shape[:2]) / 900)
        cv2.putText(
            canvas, shape.text, _point(shape.x, shape.y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
            thickness, cv2.LINE_AA,
        )  # fmt: skip


def name_anchor(shape: Shape) -> tuple[float, float] | None:
    """Return where a shape's name goes (frame pixels): the middle of its top edge (None: none)."""
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


def trigger_label(trigger: TriggerView) -> str:
    """Return what is written on a trigger's shape: its name, and each animal's own state."""
    if not trigger.animal_states:
        return trigger.name
    states = ", ".join(f"{animal} {'on' if on else 'off'}" for animal, on in trigger.animal_states)
    return f"{trigger.name}: {states}"


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
