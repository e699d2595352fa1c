"""Regions drawn and edited with the mouse on the live view's camera tiles.

The shape edits themselves are plain functions in frame pixels, without Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from PyQt5.QtCore import QEvent, QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPen, QPolygonF

from deeplabstream.app.display.overlay import name_anchor
from deeplabstream.app.gui.live_view import CameraView, paint_names
from deeplabstream.experiments.triggers.geometry import (
    Circle,
    Ellipse,
    Polygon,
    Rectangle,
    RegionShape,
    points_on_one_line,
)

HANDLE_PX = 7.0  # how near (widget pixels) a press must be to grab a handle
EDGE_PX = 4.0  # a press this near a region's border still selects it
MIN_DRAG_PX = 4.0  # a shorter drag with a drawing tool is a click: a default-size shape
Point = tuple[float, float]
#: Why a polygon was not drawn or its vertex stopped: as the config check says (its area is 0).
NO_AREA_TEXT = "a polygon needs an area: at least 3 points not on one line"

_REGION_PEN = QColor(0, 220, 255)
_SELECTED_PEN = QColor(255, 220, 0)
_DRAFT_PEN = QColor(255, 255, 255)


# --------------------------------------------------------------------------------------------------
# Shape editing, in frame pixels (no Qt)
# --------------------------------------------------------------------------------------------------


def handles(shape: RegionShape) -> list[Point]:
    """Return the points that resize ``shape`` when dragged."""
    if isinstance(shape, Circle):
        return [
            (shape.cx + shape.r, shape.cy),
            (shape.cx, shape.cy + shape.r),
            (shape.cx - shape.r, shape.cy),
            (shape.cx, shape.cy - shape.r),
        ]
    if isinstance(shape, Rectangle):
        return [
            (shape.x_min, shape.y_min),
            (shape.x_max, shape.y_min),
            (shape.x_max, shape.y_max),
            (shape.x_min, shape.y_max),
        ]
    if isinstance(shape, Ellipse):
        angle = math.radians(shape.angle_deg)
        cos, sin = math.cos(angle), math.sin(angle)
        return [
            (shape.cx + shape.rx * cos, shape.cy + shape.rx * sin),
            (shape.cx - shape.ry * sin, shape.cy + shape.ry * cos),
        ]
    return list(shape.points)


def moved(shape: RegionShape, dx: float, dy: float) -> RegionShape:
    """Return ``shape`` shifted by (dx, dy)."""
    if isinstance(shape, Circle):
        return Circle(shape.cx + dx, shape.cy + dy, shape.r)
    if isinstance(shape, Rectangle):
        return Rectangle(shape.x_min + dx, shape.y_min + dy, shape.x_max + dx, shape.y_max + dy)
    if isinstance(shape, Ellipse):
        return replace(shape, cx=shape.cx + dx, cy=shape.cy + dy)
    return Polygon(tuple((x + dx, y + dy) for x, y in shape.points))


def resized(shape: RegionShape, handle: int, x: float, y: float) -> RegionShape:
    """Return ``shape`` with handle number ``handle`` (of :func:`handles`) dragged to (x, y).

    Never degenerate: sizes stay at least one pixel; a polygon that would lose its area is
    returned as it was, the same object.
    """
    if isinstance(shape, Circle):
        return Circle(shape.cx, shape.cy, max(1.0, math.hypot(x - shape.cx, y - shape.cy)))
    if isinstance(shape, Rectangle):
        corners = handles(shape)
        fixed_x, fixed_y = corners[(handle + 2) % 4]  # the opposite corner stays
        x_min, x_max = sorted((fixed_x, x))
        y_min, y_max = sorted((fixed_y, y))
        return Rectangle(x_min, y_min, max(x_max, x_min + 1), max(y_max, y_min + 1))
    if isinstance(shape, Ellipse):
        angle = math.radians(shape.angle_deg)
        cos, sin = math.cos(angle), math.sin(angle)
        dx, dy = x - shape.cx, y - shape.cy
        if handle == 0:
            return replace(shape, rx=max(1.0, abs(dx * cos + dy * sin)))
        return replace(shape, ry=max(1.0, abs(-dx * sin + dy * cos)))
    points = list(shape.points)
    points[handle] = (x, y)
    return shape if points_on_one_line(points) else Polygon(tuple(points))


def rounded(shape: RegionShape) -> RegionShape:
    """Return ``shape`` in whole frame pixels (finer than any mouse on a scaled tile)."""
    if isinstance(shape, Circle):
        return Circle(round(shape.cx), round(shape.cy), max(1, round(shape.r)))
    if isinstance(shape, Rectangle):
        x_min, y_min = round(shape.x_min), round(shape.y_min)
        x_max, y_max = round(shape.x_max), round(shape.y_max)
        return Rectangle(x_min, y_min, max(x_max, x_min + 1), max(y_max, y_min + 1))
    if isinstance(shape, Ellipse):
        return Ellipse(
            round(shape.cx),
            round(shape.cy),
            max(1, round(shape.rx)),
            max(1, round(shape.ry)),
            round(shape.angle_deg, 1),
        )
    points = [(round(x), round(y)) for x, y in shape.points]
    return shape if points_on_one_line(points) else Polygon(tuple(points))  # a sliver stays


# --------------------------------------------------------------------------------------------------
# The mouse tools on the tiles
# --------------------------------------------------------------------------------------------------


class DrawnRegion(Protocol):
    """A region as the drawing sees it: where it is, on which camera."""

    name: str
    camera: str | None
    shape: RegionShape


class RegionHolder(Protocol):
    """What the drawing asks of the editor that holds the regions."""

    selected: str | None
    read_only: bool
    tool: str

    def region(self, name: str) -> DrawnRegion | None:
        """Return the region ``name``, or None."""

    def regions_on(self, camera: str) -> Sequence[DrawnRegion]:
        """Return the regions drawn on ``camera``'s tile, bottom first."""

    def select(self, name: str | None) -> None:
        """Select the region ``name`` (None: none)."""

    def delete_selected(self) -> bool:
        """Delete the selected region (refused while a rule names it)."""

    def add_drawn(self, camera: str, shape: RegionShape) -> None:
        """Add a region of ``shape`` drawn on ``camera``'s tile."""

    def report(self, message: str, *, edited: bool = False) -> None:
        """Say what the drawing did; ``edited``: a region changed."""

    def update_views(self) -> None:
        """Repaint the tiles."""


@dataclass
class _Drag:
    """A mouse drag in progress on one tile."""

    camera: str
    action: str  # "move", "handle", "circle" or "rectangle"
    start: Point
    original: RegionShape | None = None
    handle: int = 0
    changed: bool = False
    no_area: bool = False  # the pointer is where the polygon would have no area: it stopped


@dataclass
class _Draft:
    """A shape being drawn: its tile, and the points so far (polygon) or its preview."""

    camera: str
    points: list[Point] = field(default_factory=list)
    preview: RegionShape | None = None
    hover: Point | None = None


class RegionDrawing:
    """The drag or the shape being drawn on a tile, and the painting of the regions on it."""

    def __init__(self, editor: RegionHolder) -> None:
        self._editor = editor
        self._drag: _Drag | None = None
        self._draft: _Draft | None = None

    def cancel(self) -> None:
        """Forget the drag or the shape being drawn (a new tool, file or set of tiles)."""
        self._drag = None
        self._draft = None

    def paint(self, view: CameraView, painter: QPainter) -> None:
        """Draw the regions of ``view``'s camera, the selection's handles and any draft."""
        scale = view.scale()
        if scale <= 0:
            return
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        names = []
        for region in self._editor.regions_on(view.name):
            chosen = region.name == self._editor.selected
            painter.setPen(QPen(_SELECTED_PEN if chosen else _REGION_PEN, 3 if chosen else 2))
            painter.setBrush(Qt.NoBrush)
            _draw_shape(painter, view, region.shape)
            anchor = name_anchor(region.shape) or region.shape.center
            names.append((view.to_widget(*anchor), region.name))
            if chosen and not self._editor.read_only:
                painter.setBrush(_SELECTED_PEN)
                for x, y in handles(region.shape):
                    point = view.to_widget(x, y)
                    painter.drawRect(QRectF(point.x() - 4, point.y() - 4, 8, 8))
        paint_names(painter, names)  # under their top edges, as while an experiment runs
        if self._draft is not None and self._draft.camera == view.name:
            painter.setPen(QPen(_DRAFT_PEN, 2, Qt.DashLine))
            painter.setBrush(Qt.NoBrush)
            if self._draft.preview is not None:
                _draw_shape(painter, view, self._draft.preview)
            points = [view.to_widget(x, y) for x, y in self._draft.points]
            if self._draft.hover is not None and points:
                points.append(view.to_widget(*self._draft.hover))
            painter.drawPolyline(QPolygonF(points))
        painter.restore()

    def event(self, view: CameraView, event: QEvent) -> bool:
        """Handle a tile's mouse or key event; return whether it was used."""
        if isinstance(event, QKeyEvent):
            return self.key(event)
        if not isinstance(event, QMouseEvent) or self._editor.read_only:
            return False
        point = view.to_frame(event.localPos())
        if point is None:
            return False
        kind = event.type()
        if kind == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            self._press(view, point)
        elif kind == QEvent.MouseMove:
            self._move(view, point)
        elif kind == QEvent.MouseButtonRelease and event.button() == Qt.LeftButton:
            self._release(view, point)
        elif kind == QEvent.MouseButtonDblClick and event.button() == Qt.LeftButton:
            self._double_click(view, point)
        else:
            return False
        return True

    def key(self, event: QKeyEvent) -> bool:
        """Delete (or Backspace) deletes the selected region; Escape cancels a drawing."""
        if event.key() in (Qt.Key_Delete, Qt.Key_Backspace):
            self._editor.delete_selected()
            return True
        if event.key() == Qt.Key_Escape and (self._draft is not None or self._drag is not None):
            self._draft = None
            self._drag = None
            self._editor.update_views()
            return True
        return False

    def _press(self, view: CameraView, point: Point) -> None:
        if self._editor.tool == "polygon":
            self._polygon_click(view, point)
            return
        if self._editor.tool in ("circle", "rectangle"):
            self._drag = _Drag(view.name, self._editor.tool, point)
            self._draft = _Draft(view.name)
            return
        selected = self._editor.region(self._editor.selected or "")
        if selected is not None and selected in self._editor.regions_on(view.name):
            index = _handle_at(view, selected.shape, point)
            if index is not None:
                self._drag = _Drag(view.name, "handle", point, selected.shape, index)
                return
        hit = self._region_at(view, point)
        self._editor.select(hit.name if hit is not None else None)
        if hit is not None:
            self._drag = _Drag(view.name, "move", point, hit.shape)

    def _move(self, view: CameraView, point: Point) -> None:
        drag = self._drag
        if drag is None:
            if self._draft is not None and self._draft.camera == view.name:
                self._draft.hover = point  # the polygon's next edge follows the mouse
                view.update()
            return
        if drag.camera != view.name:
            return
        x, y = point
        if drag.action in ("circle", "rectangle"):
            assert self._draft is not None
            self._draft.preview = drawn(drag.action, drag.start, point)
        else:
            region = self._editor.region(self._editor.selected or "")
            if region is None or drag.original is None:
                return
            if drag.action == "move":
                region.shape = moved(drag.original, x - drag.start[0], y - drag.start[1])
            else:
                shape = resized(drag.original, drag.handle, x, y)
                drag.no_area = shape is drag.original and isinstance(shape, Polygon)
                if not drag.no_area:  # else the vertex stays where the polygon had an area
                    region.shape = shape
            drag.changed = True
        view.update()

    def _release(self, view: CameraView, point: Point) -> None:
        drag = self._drag
        if drag is not None and drag.action in ("move", "handle") and point != drag.start:
            self._move(view, point)  # the release point counts even if no move came
        self._drag = None
        if drag is None or drag.camera != view.name:
            return
        if drag.action in ("circle", "rectangle"):
            self._draft = None
            distance = math.dist(drag.start, point) * view.scale()
            shape = (
                drawn(drag.action, drag.start, point)
                if distance >= MIN_DRAG_PX
                else _default_shape(drag.action, drag.start, view)
            )
            self._editor.add_drawn(view.name, shape)
            return
        region = self._editor.region(self._editor.selected or "")
        if drag.changed and region is not None:
            region.shape = rounded(region.shape)
            verb = "Moved" if drag.action == "move" else "Resized"
            stopped = (
                f"; the vertex stopped where the polygon still has an area ({NO_AREA_TEXT})"
                if drag.no_area
                else ""
            )
            self._editor.report(f"{verb} {region.name}: {region.shape}{stopped}", edited=True)

    def _double_click(self, view: CameraView, point: Point) -> None:
        draft = self._draft
        if self._editor.tool != "polygon" or draft is None or draft.camera != view.name:
            return
        if not draft.points or _widget_distance(view, draft.points[-1], point) > HANDLE_PX:
            draft.points.append(point)
        self._close_polygon(view)

    def _polygon_click(self, view: CameraView, point: Point) -> None:
        draft = self._draft
        if draft is None:
            self._draft = _Draft(view.name, [point])
            view.update()
            return
        if draft.camera != view.name:
            return  # a polygon lies on the tile it was begun on
        if len(draft.points) >= 3 and _widget_distance(view, draft.points[0], point) <= HANDLE_PX:
            self._close_polygon(view)
            return
        if _widget_distance(view, draft.points[-1], point) > 2:
            draft.points.append(point)
        view.update()

    def _close_polygon(self, view: CameraView) -> None:
        draft = self._draft
        if draft is None:
            return
        if len(draft.points) < 3:
            self._editor.report(
                "A polygon needs at least 3 vertices: click more, then double-click."
            )
            return
        if points_on_one_line(draft.points):  # the draft stays: a vertex off the line closes it
            self._editor.report(
                f"Not added: this polygon has no area (its points lie on one line); "
                f"{NO_AREA_TEXT}. Click a vertex off that line, then double-click."
            )
            return
        self._draft = None
        self._editor.add_drawn(view.name, Polygon(tuple(draft.points)))

    def _region_at(self, view: CameraView, point: Point) -> DrawnRegion | None:
        """Return the topmost (last drawn) region of ``view`` at ``point``."""
        scale = view.scale()
        for region in reversed(self._editor.regions_on(view.name)):
            if region.shape.distance_outside(*point) * scale <= EDGE_PX:
                return region
        return None


def drawn(tool: str, start: Point, end: Point) -> RegionShape:
    """Return the circle (centre ``start``) or rectangle (corners) a drag start -> end draws."""
    if tool == "circle":
        return Circle(start[0], start[1], max(1.0, math.dist(start, end)))
    x_min, x_max = sorted((start[0], end[0]))
    y_min, y_max = sorted((start[1], end[1]))
    return Rectangle(x_min, y_min, max(x_max, x_min + 1), max(y_max, y_min + 1))


def _default_shape(tool: str, at: Point, view: CameraView) -> RegionShape:
    """Return the shape a click (no drag) draws: a tenth of the frame's smaller side in size."""
    image = view.image
    size = 0.1 * min(image.width(), image.height()) if image is not None else 20.0
    x, y = at
    if tool == "circle":
        return Circle(x, y, max(1.0, size))
    return Rectangle(x - size, y - size, x + size, y + size)


def _widget_distance(view: CameraView, a: Point, b: Point) -> float:
    return math.dist(a, b) * view.scale()


def _handle_at(view: CameraView, shape: RegionShape, point: Point) -> int | None:
    """Return the index of the handle of ``shape`` nearest ``point`` within reach, or None."""
    reach = [(_widget_distance(view, h, point), i) for i, h in enumerate(handles(shape))]
    distance, index = min(reach)
    return index if distance <= HANDLE_PX else None


def _draw_shape(painter: QPainter, view: CameraView, shape: RegionShape) -> None:
    """Draw ``shape`` (frame pixels) on ``view`` in widget coordinates."""
    scale = view.scale()
    if isinstance(shape, Circle):
        painter.drawEllipse(view.to_widget(shape.cx, shape.cy), shape.r * scale, shape.r * scale)
    elif isinstance(shape, Rectangle):
        corners = [view.to_widget(x, y) for x, y in handles(shape)]
        painter.drawPolygon(QPolygonF(corners))
    elif isinstance(shape, Ellipse):
        painter.save()
        painter.translate(view.to_widget(shape.cx, shape.cy))
        painter.rotate(shape.angle_deg)  # clockwise on screen, as cv2.ellipse
        painter.drawEllipse(QPointF(0, 0), shape.rx * scale, shape.ry * scale)
        painter.restore()
    else:
        painter.drawPolygon(QPolygonF([view.to_widget(x, y) for x, y in shape.points]))
