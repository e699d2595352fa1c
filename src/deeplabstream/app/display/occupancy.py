"""Where the animal has been: a fading trail of one keypoint and a coarse occupancy heatmap.

Drawn on a display copy of a frame, with numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

DEFAULT_TRAIL_S = 5.0
MAX_TRAIL_POINTS = 4096  # a bound whatever the pose rate (5 s at 800 poses/s)
DEFAULT_BIN_PX = 32
TRAIL_COLOUR = (255, 0, 255)  # BGR magenta: stands out on a grey floor and beside the pose colours


TRAIL_KEYPOINTS = ("body_center", "center", "body")  # preferred, in order: the body's middle


def trail_keypoint(keypoints: Sequence[str], chosen: str | None = None) -> str | None:
    """Return the keypoint a trail follows: ``chosen`` if the model has it, else a default.

    The first of :data:`TRAIL_KEYPOINTS` the model has, else its first (None: no keypoints).
    """
    if chosen is not None and chosen in keypoints:
        return chosen
    for name in TRAIL_KEYPOINTS:
        if name in keypoints:
            return name
    return keypoints[0] if keypoints else None


class Trail:
    """The positions of one keypoint over the last ``seconds`` of frame time (newest last)."""

    def __init__(self, seconds: float = DEFAULT_TRAIL_S) -> None:
        if not seconds > 0:
            raise ValueError(f"a trail must keep some time, not {seconds!r} s")
        self.seconds = float(seconds)
        self._points: deque[tuple[float, float, float]] = deque(maxlen=MAX_TRAIL_POINTS)

    def add(self, time_s: float, x: float, y: float) -> None:
        """Append a position at ``time_s``; NaN ``x`` or ``y`` (not seen) breaks the line there."""
        if self._points and time_s < self._points[-1][0]:
            self._points.clear()  # time went back: another recording or a restart, not the past
        self._points.append((float(time_s), float(x), float(y)))
        oldest = time_s - self.seconds
        while self._points and self._points[0][0] < oldest:
            self._points.popleft()

    def points(self) -> np.ndarray:
        """Return the positions kept, (N, 3): time_s, x, y (NaN x, y where not seen)."""
        kept = list(self._points)  # one C-level copy: safe while another thread adds
        if not kept:
            return np.empty((0, 3))
        return np.array(kept, dtype=np.float64)

    def clear(self) -> None:
        """Forget every position."""
        self._points.clear()

    def __len__(self) -> int:
        """Count the positions kept (gaps included)."""
        return len(self._points)


class OccupancyMap:
    """How many poses fell in each ``bin_px`` square (frame pixels): a coarse 2D histogram.

    The grid grows with the positions it is given: no frame size up front.
    """

    def __init__(self, bin_px: int = DEFAULT_BIN_PX) -> None:
        if bin_px < 1:
            raise ValueError(f"a bin must be at least 1 px wide, not {bin_px!r}")
        self.bin_px = int(bin_px)
        self.counts = np.zeros((0, 0), dtype=np.int64)  # rows (y), columns (x)
        self.total = 0

    def add(self, x: float, y: float) -> bool:
        """Count one pose at (``x``, ``y``); False (not counted) when off the frame or NaN."""
        if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
            return False
        column, row = int(x // self.bin_px), int(y // self.bin_px)
        if row >= self.counts.shape[0] or column >= self.counts.shape[1]:
            self._grow(row + 1, column + 1)
        self.counts[row, column] += 1
        self.total += 1
        return True

    def _grow(self, rows: int, columns: int) -> None:
        """Enlarge the grid to hold at least ``rows`` x ``columns`` bins (counts kept)."""
        grown = np.zeros(
            (max(rows, self.counts.shape[0]), max(columns, self.counts.shape[1])), np.int64
        )
        grown[: self.counts.shape[0], : self.counts.shape[1]] = self.counts
        self.counts = grown

    def fraction(self, x: float, y: float) -> float:
        """Return the share of all poses counted in the bin that holds (``x``, ``y``)."""
        column, row = int(x // self.bin_px), int(y // self.bin_px)
        inside = 0 <= row < self.counts.shape[0] and 0 <= column < self.counts.shape[1]
        if not inside or self.total == 0:
            return 0.0
        return float(self.counts[row, column]) / self.total

    def clear(self) -> None:
        """Forget every count."""
        self.counts = np.zeros((0, 0), dtype=np.int64)
        self.total = 0


def draw_trail(
    canvas: np.ndarray, trail: Trail, colour: tuple[int, int, int] = TRAIL_COLOUR
) -> None:
    """Draw ``trail`` on ``canvas`` (BGR or mono) in place: a line that fades with age."""
    points = trail.points()
    if len(points) < 2:
        return
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    count = len(points) - 1
    for index in range(count):
        (_, x0, y0), (_, x1, y1) = points[index], points[index + 1]
        if not (
            math.isfinite(x0) and math.isfinite(y0) and math.isfinite(x1) and math.isfinite(y1)
        ):
            continue  # the keypoint was not seen: no line across the gap
        weight = 0.25 + 0.75 * (index + 1) / count  # the oldest quarter-bright, the newest full
        shade = _shade(canvas, colour, weight)
        start, end = (round(x0), round(y0)), (round(x1), round(y1))
        cv2.line(canvas, start, end, shade, thickness, cv2.LINE_AA)


def _shade(
    canvas: np.ndarray, colour: tuple[int, int, int], weight: float
) -> tuple[int, int, int] | int:
    """Return ``colour`` dimmed by ``weight``, as a grey level on a mono canvas."""
    if canvas.ndim == 2:
        return round(255 * weight)
    b, g, r = colour
    return (round(b * weight), round(g * weight), round(r * weight))


def heatmap_image(
    occupancy: OccupancyMap, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the occupancy as a BGR image of ``height`` x ``width`` and the mask of visited bins.

    Colours follow the square root of the counts, so rarely visited places still show.
    """
    size = occupancy.bin_px
    rows, columns = -(-height // size), -(-width // size)
    grid = np.zeros((rows, columns), np.float64)
    kept_rows = min(rows, occupancy.counts.shape[0])
    kept_columns = min(columns, occupancy.counts.shape[1])
    grid[:kept_rows, :kept_columns] = occupancy.counts[:kept_rows, :kept_columns]
    peak = grid.max(initial=0.0)
    level = np.sqrt(grid / peak) if peak > 0 else grid
    coloured = cv2.applyColorMap(np.round(level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    big = cv2.resize(coloured, (columns * size, rows * size), interpolation=cv2.INTER_NEAREST)
    mask = np.repeat(np.repeat(grid > 0, size, axis=0), size, axis=1)
    return big[:height, :width], mask[:height, :width]


def draw_heatmap(canvas: np.ndarray, occupancy: OccupancyMap, alpha: float = 0.4) -> None:
    """Blend the occupancy heatmap onto ``canvas`` (BGR or mono) in place, visited bins only."""
    if occupancy.total == 0:
        return
    alpha = float(np.clip(alpha, 0.0, 1.0))
    height, width = canvas.shape[:2]
    colours, mask = heatmap_image(occupancy, height, width)
    if canvas.ndim == 2:
        colours = cv2.cvtColor(colours, cv2.COLOR_BGR2GRAY)
    under = canvas[mask].astype(np.float32)
    blended = (1.0 - alpha) * under + alpha * colours[mask].astype(np.float32)
    canvas[mask] = np.clip(np.round(blended), 0, 255).astype(canvas.dtype)
