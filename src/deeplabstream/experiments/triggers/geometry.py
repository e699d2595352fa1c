"""Shapes in frame pixels: regions a keypoint can be in, and what the live view draws.

Its design: docs/experiments-internals.md (`experiments.triggers.geometry`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

GEOMETRY_SYNTAX = (
    "'circle CX CY R', 'rect X_MIN Y_MIN X_MAX Y_MAX', 'ellipse CX CY RX RY [ANGLE_DEG]' "
    "or 'polygon X,Y X,Y X,Y ...' (at least 3 points, not all on one line), in frame pixels"
)


def _num(value: float) -> str:
    """Return a number in the shortest text that reads back to the same float."""
    text = repr(float(value))
    return text.removesuffix(".0") if float(value).is_integer() else text


@dataclass(frozen=True)
class Circle:
    """All points within ``r`` of (``cx``, ``cy``)."""

    cx: float
    cy: float
    r: float

    def __post_init__(self) -> None:
        """Reject a radius that is not positive."""
        if not self.r > 0:
            raise ValueError(f"circle radius must be > 0, not {self.r!r}")

    @property
    def center(self) -> tuple[float, float]:
        """The centre."""
        return (self.cx, self.cy)

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) is inside or on the circle."""
        return math.hypot(x - self.cx, y - self.cy) <= self.r

    def distance_outside(self, x: float, y: float) -> float:
        """0 inside, else the distance to the circle."""
        return max(0.0, math.hypot(x - self.cx, y - self.cy) - self.r)

    def __str__(self) -> str:
        """``circle CX CY R``."""
        return f"circle {_num(self.cx)} {_num(self.cy)} {_num(self.r)}"


@dataclass(frozen=True)
class Rectangle:
    """The axis-aligned rectangle ``x_min <= x <= x_max``, ``y_min <= y <= y_max``."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        """Reject an empty rectangle."""
        if not (self.x_max > self.x_min and self.y_max > self.y_min):
            raise ValueError(
                f"rect needs X_MIN < X_MAX and Y_MIN < Y_MAX, got {self.x_min:g} {self.y_min:g} "
                f"{self.x_max:g} {self.y_max:g}"
            )

    @property
    def center(self) -> tuple[float, float]:
        """The centre."""
        return ((self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2)

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) is inside or on the rectangle."""
        return self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max

    def distance_outside(self, x: float, y: float) -> float:
        """0 inside, else the distance to the rectangle."""
        dx = max(self.x_min - x, 0.0, x - self.x_max)
        dy = max(self.y_min - y, 0.0, y - self.y_max)
        return math.hypot(dx, dy)

    def __str__(self) -> str:
        """``rect X_MIN Y_MIN X_MAX Y_MAX``."""
        values = (self.x_min, self.y_min, self.x_max, self.y_max)
        return "rect " + " ".join(_num(v) for v in values)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse with semi-axes ``rx`` (along ``angle_deg``) and ``ry``, centred on (cx, cy)."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle_deg: float = 0.0

    def __post_init__(self) -> None:
        """Reject semi-axes that are not positive."""
        if not (self.rx > 0 and self.ry > 0):
            raise ValueError(f"ellipse semi-axes must be > 0, not {self.rx!r}, {self.ry!r}")

    @property
    def center(self) -> tuple[float, float]:
        """The centre."""
        return (self.cx, self.cy)

    def _local(self, x: float, y: float) -> tuple[float, float]:
        """(x, y) in the ellipse's own axes."""
        angle = math.radians(self.angle_deg)
        cos, sin = math.cos(angle), math.sin(angle)
        dx, dy = x - self.cx, y - self.cy
        return (dx * cos + dy * sin, -dx * sin + dy * cos)

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) is inside or on the ellipse."""
        u, v = self._local(x, y)
        return (u / self.rx) ** 2 + (v / self.ry) ** 2 <= 1.0

    def distance_outside(self, x: float, y: float) -> float:
        """0 inside, else the exact distance to the ellipse (Eberly's robust bisection)."""
        if self.contains(x, y):
            return 0.0
        u, v = self._local(x, y)
        return _distance_to_ellipse(self.rx, self.ry, abs(u), abs(v))

    def __str__(self) -> str:
        """``ellipse CX CY RX RY ANGLE_DEG``."""
        values = (self.cx, self.cy, self.rx, self.ry, self.angle_deg)
        return "ellipse " + " ".join(_num(v) for v in values)


def _distance_to_ellipse(a: float, b: float, u: float, v: float) -> float:
    """Distance from (u, v) >= 0 outside the ellipse (u/a)^2 + (v/b)^2 = 1 to it, by bisection."""
    if v == 0.0 and u > a:
        return u - a
    if u == 0.0 and v > b:
        return v - b

    def excess(t: float) -> float:
        return (a * u / (t + a * a)) ** 2 + (b * v / (t + b * b)) ** 2 - 1.0

    low, high = 0.0, max(a, b) * math.hypot(u, v)
    while excess(high) > 0.0:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if excess(middle) > 0.0:
            low = middle
        else:
            high = middle
    t = 0.5 * (low + high)
    px, py = a * a * u / (t + a * a), b * b * v / (t + b * b)
    return math.hypot(u - px, v - py)


@dataclass(frozen=True)
class Polygon:
    """A simple polygon through ``points`` (closed automatically); even-odd rule inside."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        """Keep the points as a tuple of float pairs; reject fewer than 3, or no area."""
        points = tuple((float(x), float(y)) for x, y in self.points)
        if len(points) < 3:
            raise ValueError(f"polygon needs at least 3 points, got {len(points)}")
        if points_on_one_line(points):  # as a circle of radius 0: nothing can ever be inside
            raise ValueError(
                "polygon has no area: its points lie on one line or on one another; "
                "give at least 3 points not on one line"
            )
        object.__setattr__(self, "points", points)

    @property
    def center(self) -> tuple[float, float]:
        """The area centroid (the vertex mean for a degenerate polygon)."""
        area = cx = cy = 0.0
        for (x0, y0), (x1, y1) in self._edges():
            cross = x0 * y1 - x1 * y0
            area += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
        if abs(area) < 1e-12:
            xs, ys = zip(*self.points, strict=True)
            return (sum(xs) / len(xs), sum(ys) / len(ys))
        return (cx / (3.0 * area), cy / (3.0 * area))

    def _edges(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        points = self.points
        return [(points[i - 1], points[i]) for i in range(len(points))]

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) is inside (even-odd rule) or on an edge."""
        inside = False
        for (x0, y0), (x1, y1) in self._edges():
            if _segment_distance(x, y, x0, y0, x1, y1) == 0.0:
                return True
            if (y0 > y) != (y1 > y):
                x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
                if x < x_cross:
                    inside = not inside
        return inside

    def distance_outside(self, x: float, y: float) -> float:
        """0 inside, else the distance to the nearest edge."""
        if self.contains(x, y):
            return 0.0
        return min(_segment_distance(x, y, *p0, *p1) for p0, p1 in self._edges())

    def __str__(self) -> str:
        """``polygon X,Y X,Y ...``."""
        return "polygon " + " ".join(f"{_num(x)},{_num(y)}" for x, y in self.points)


def points_on_one_line(points: Sequence[tuple[float, float]]) -> bool:
    """Whether every point lies on one line (repeated points and a single point included).

    The line runs from the first point to the one farthest from it; a point counts as on it
    within a billionth of that length (rounding, never a visible pixel).
    """
    x0, y0 = points[0]
    far_x, far_y = max(points, key=lambda p: math.hypot(p[0] - x0, p[1] - y0))
    length = math.hypot(far_x - x0, far_y - y0)
    if length == 0.0:
        return True
    # the distance of each point from the line: |cross product| / length
    offsets = (abs((far_x - x0) * (y - y0) - (far_y - y0) * (x - x0)) for x, y in points)
    return max(offsets) / length <= 1e-9 * length


def _segment_distance(x: float, y: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """Distance from (x, y) to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0.0 else max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / length2))
    return math.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


@dataclass(frozen=True)
class Line:
    """A segment to draw (for example a head-direction ray); not a region."""

    x0: float
    y0: float
    x1: float
    y1: float

    kind: ClassVar[str] = "line"


@dataclass(frozen=True)
class Marker:
    """A point to draw (for example a head-direction target); not a region."""

    x: float
    y: float

    kind: ClassVar[str] = "marker"


@dataclass(frozen=True)
class Label:
    """A line of text to draw with its left end at a point (a classifier's current behaviour)."""

    x: float
    y: float
    text: str

    kind: ClassVar[str] = "label"


RegionShape = Circle | Rectangle | Ellipse | Polygon
Shape = Circle | Rectangle | Ellipse | Polygon | Line | Marker | Label
"""What :meth:`Trigger.shapes` returns, all in frame pixels."""


def _numbers(words: list[str], text: str) -> list[float]:
    try:
        values = [float(w) for w in words]
    except ValueError:
        raise ValueError(
            f"{text!r} has a value that is not a number; expected {GEOMETRY_SYNTAX}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r} has a value that is not finite; expected {GEOMETRY_SYNTAX}")
    return values


def parse_shape(text: str) -> RegionShape:
    """Parse a region from its text form (``str(shape)``); ValueError with the syntax."""
    words = text.replace(";", " ").split()
    if not words:
        raise ValueError(f"empty geometry; expected {GEOMETRY_SYNTAX}")
    name, rest = words[0].lower(), words[1:]
    try:
        if name == "circle" and len(rest) == 3:
            return Circle(*_numbers(rest, text))
        if name in ("rect", "rectangle") and len(rest) == 4:
            return Rectangle(*_numbers(rest, text))
        if name == "ellipse" and len(rest) in (4, 5):
            return Ellipse(*_numbers(rest, text))
        if name == "polygon" and len(rest) >= 3 and all(w.count(",") == 1 for w in rest):
            numbers = _numbers([part for w in rest for part in w.split(",")], text)
            return Polygon(tuple(zip(numbers[0::2], numbers[1::2], strict=True)))
    except ValueError as error:
        if "expected" in str(error):
            raise
        raise ValueError(f"{text!r}: {error}; expected {GEOMETRY_SYNTAX}") from None
    raise ValueError(f"{text!r} is not a geometry; expected {GEOMETRY_SYNTAX}")


def parse_point(text: str) -> tuple[float, float]:
    """``"X,Y"`` or ``"X Y"`` as a point; ``ValueError`` with the syntax."""
    words = text.replace(",", " ").split()
    try:
        x, y = (float(w) for w in words)
    except ValueError:
        raise ValueError(f"{text!r} is not a point; expected 'X,Y' in frame pixels") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"{text!r} is not a finite point; expected 'X,Y' in frame pixels")
    return (x, y)
