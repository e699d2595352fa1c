"""The live view: one tile per camera with poses, trigger shapes, action flashes and the trial.

Each tile draws on a copy of its camera's newest DISPLAY frame at most ``[Streaming]
DISPLAY_RATE`` times a second, so a slow window only skips display frames (docs/gui.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PyQt5.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PyQt5.QtGui import (
    QColor,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
)
from PyQt5.QtWidgets import QGridLayout, QWidget

from deeplabstream.app.display.occupancy import (
    TRAIL_COLOUR,
    OccupancyMap,
    Trail,
    draw_heatmap,
    draw_trail,
    trail_keypoint,
)
from deeplabstream.app.display.overlay import (
    draw_flash,
    draw_triggers,
    name_anchor,
    trigger_label,
)
from deeplabstream.app.gui.keypoint_plot import KeypointPlot
from deeplabstream.app.gui.overlays import OverlayOptions
from deeplabstream.app.gui.preview import to_qimage
from deeplabstream.live.processes.messages import ExperimentStatus, PoseRecord
from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.report.rates import frame_time_s
from deeplabstream.outputs.pose.drawing import (
    display_copy,
    draw_animals_on,
    draw_pose_on,
    identity_colour,
)
from deeplabstream.transport.channel import FrameRecord
from deeplabstream.transport.readers import NewestFrameReader

FLASH_S = 0.3  # how long the border shows after an action fired
LABEL_BACKGROUND = QColor(0, 0, 0, 170)  # under a label: readable on a grey or bright floor
NAME_BELOW_EDGE_PX = 7  # a region's name starts this far under its top edge: its handle stays free
TILE_LEAST_SIZE = (160, 120)  # px: a camera tile never asks for more (the frame is scaled)


def paint_label(painter: QPainter, at: QPointF, text: str) -> None:
    """Write ``text`` in white on a dark box centred on ``at`` (readable on any arena)."""
    width, height = _label_size(painter.fontMetrics(), text)
    _paint_box(painter, QRectF(at.x() - width / 2, at.y() - height / 2, width, height), text)


def paint_names(painter: QPainter, names: list[tuple[QPointF, str]]) -> None:
    """Write each region's name just under the middle of its top edge (``names``: where, what)."""
    for box, (_, text) in zip(name_boxes(painter.fontMetrics(), names), names, strict=True):
        _paint_box(painter, box, text)


def name_boxes(metrics: QFontMetrics, names: list[tuple[QPointF, str]]) -> list[QRectF]:
    """Return where each name goes: under its top edge's middle, below the names before it."""
    boxes: list[QRectF] = []
    for at, text in names:
        width, height = _label_size(metrics, text)
        box = QRectF(at.x() - width / 2, at.y() + NAME_BELOW_EDGE_PX, width, height)
        placed = False
        while not placed:  # each move goes strictly lower: it ends
            covered = [other for other in boxes if other.intersects(box)]
            placed = not covered
            if covered:
                box.moveTop(max(other.bottom() for other in covered) + 1)
        boxes.append(box)
    return boxes


def _label_size(metrics: QFontMetrics, text: str) -> tuple[float, float]:
    return metrics.horizontalAdvance(text) + 8, metrics.height() + 4


def _paint_box(painter: QPainter, box: QRectF, text: str) -> None:
    """Paint ``text`` white on a dark rounded box."""
    painter.save()
    painter.setPen(Qt.NoPen)
    painter.setBrush(LABEL_BACKGROUND)
    painter.drawRoundedRect(box, 3, 3)
    painter.setPen(QColor("white"))
    painter.drawText(box, Qt.AlignCenter, text)
    painter.restore()


class ViewOverlay(Protocol):
    """Something drawn on top of a :class:`CameraView`'s frame that also gets its mouse and keys."""

    def paint_overlay(self, view: CameraView, painter: QPainter) -> None:
        """Paint on ``view`` (widget coordinates) after its frame."""

    def overlay_event(self, view: CameraView, event: QEvent) -> bool:
        """Handle a mouse or key event of ``view``; return whether it was used."""


class CameraView(QWidget):
    """Paints one camera's newest annotated frame, scaled to fit and centred.

    An optional :class:`ViewOverlay` (:meth:`set_overlay`) paints after it and gets its input.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.setObjectName(f"view_{name}")
        # Small: a rig of three or four cameras lays its tiles out 2 x 2, and tiles of 320 x 240
        # at least would make the window taller than a laptop's screen. The frame is
        # scaled to whatever size the tile has.
        self.setMinimumSize(*TILE_LEAST_SIZE)
        self.image: QImage | None = None
        self.pose_frame_index: int | None = None  # the frame whose pose is drawn
        self.overlay: ViewOverlay | None = None
        # Lines written at the bottom of the tile (the experiment's state, the pose's lag): in
        # the widget, not on the frame, so they never cover the top of the arena.
        self.captions: list[str] = []
        # Names written on the shapes of a running experiment: (x, y) in frame pixels, text.
        self.names: list[tuple[float, float, str]] = []

    def show_frame(self, frame: np.ndarray) -> None:
        """Show ``frame`` (BGR or mono) at the next paint."""
        self.image = to_qimage(frame)
        self.update()

    def set_overlay(self, overlay: ViewOverlay | None) -> None:
        """Draw ``overlay`` on top of the frame and give it the mouse and keys (None: remove)."""
        self.overlay = overlay
        # moves without a button pressed feed a tool's preview (a polygon's next edge);
        # click focus lets the overlay have the Delete key after a click on the tile
        self.setMouseTracking(overlay is not None)
        self.setFocusPolicy(Qt.ClickFocus if overlay is not None else Qt.NoFocus)
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is drawn in the widget (aspect kept, centred)."""
        if self.image is None:
            return QRectF()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        width, height = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)

    def scale(self) -> float:
        """Widget pixels per frame pixel (0 before the first frame)."""
        if self.image is None or self.image.width() == 0:
            return 0.0
        return self.image_rect().width() / self.image.width()

    def to_widget(self, x: float, y: float) -> QPointF:
        """Frame pixel (x, y) -> widget coordinates (for tests and mouse tools)."""
        rect = self.image_rect()
        assert self.image is not None
        scale = rect.width() / self.image.width()
        return QPointF(rect.x() + (x + 0.5) * scale, rect.y() + (y + 0.5) * scale)

    def to_frame(self, point: QPointF | QPoint) -> tuple[float, float] | None:
        """Widget coordinates -> frame pixel (x, y) (None before the first frame)."""
        scale = self.scale()
        if scale <= 0:
            return None
        rect = self.image_rect()
        return ((point.x() - rect.x()) / scale - 0.5, (point.y() - rect.y()) / scale - 0.5)

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt's name
        """Black background, the frame scaled to fit, then the overlay (if any)."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("black"))
        if self.image is None:
            painter.setPen(QColor("white"))
            painter.drawText(self.rect(), Qt.AlignCenter, f"{self.name}: waiting for frames")
        else:
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawImage(self.image_rect(), self.image)
            if self.overlay is not None:
                self.overlay.paint_overlay(self, painter)
            else:
                paint_names(painter, [(self.to_widget(x, y), text) for x, y, text in self.names])
            self._paint_name(painter)
            self._paint_captions(painter)
        painter.end()

    def _paint_captions(self, painter: QPainter) -> None:
        """Write :attr:`captions` at the bottom left of the frame, the last one lowest."""
        if not self.captions:
            return
        metrics = painter.fontMetrics()
        rect = self.image_rect()
        bottom = rect.bottom()
        for text in reversed(self.captions):
            shown = metrics.elidedText(text, Qt.ElideRight, max(int(rect.width()) - 12, 20))
            width, height = metrics.horizontalAdvance(shown) + 12, metrics.height() + 6
            box = QRectF(rect.left(), bottom - height, width, height)
            painter.fillRect(box, LABEL_BACKGROUND)
            painter.setPen(QColor("white"))
            painter.drawText(box, Qt.AlignCenter, shown)
            bottom -= height

    def _paint_name(self, painter: QPainter) -> None:
        """Write the camera's name at the tile's top right, on a dark strip (any floor)."""
        metrics = painter.fontMetrics()
        width, height = metrics.horizontalAdvance(self.name) + 12, metrics.height() + 6
        box = QRectF(self.width() - width - 4, 4, width, height)
        painter.fillRect(box, QColor(0, 0, 0, 160))
        painter.setPen(QColor("white"))
        painter.drawText(box, Qt.AlignCenter, self.name)

    def _to_overlay(self, event: QEvent) -> bool:
        """Offer ``event`` to the overlay; True when it used it."""
        if self.overlay is not None and self.overlay.overlay_event(self, event):
            event.accept()
            return True
        return False

    def mousePressEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Give the press to the overlay (if any)."""
        if event is not None and not self._to_overlay(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Give the move to the overlay (if any)."""
        if event is not None and not self._to_overlay(event):
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Give the release to the overlay (if any)."""
        if event is not None and not self._to_overlay(event):
            super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Give the double-click to the overlay (if any)."""
        if event is not None and not self._to_overlay(event):
            super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent | None) -> None:  # noqa: N802 - Qt's name
        """Give the key to the overlay (if any)."""
        if event is not None and not self._to_overlay(event):
            super().keyPressEvent(event)


@dataclass
class _Flash:
    actions: int = 0
    until: float = 0.0


class LiveView(QWidget):
    """The tiles of every camera of a stream, drawn from the stream's newest frames and poses."""

    def __init__(self, stream: LiveSession) -> None:
        super().__init__()
        self._stream = stream
        self.views: dict[str, CameraView] = {}
        self._readers: dict[str, NewestFrameReader] = {}
        self._flash = _Flash()
        # The trails (one per animal) and the occupancy map of each camera, fed by every pose
        # (drawn on request); the occupancy map counts every animal.
        self.overlays = OverlayOptions()
        self.trails: dict[str, list[Trail]] = {}
        self.occupancy: dict[str, OccupancyMap] = {}
        self._listening_to: Analysis | None = None  # the analysis whose poses feed them
        self._trail_rows: dict[str, tuple[int, float]] = {}  # keypoint row, threshold
        self._pose_frames: dict[str, np.ndarray] = {}  # per camera: the frame of its pose
        # Host arrival minus camera time of each camera's frames (the least seen: the least
        # delay), to give a pose, which carries its host arrival time, its camera time.
        self._clock_offsets: dict[str, float] = {}
        self.keypoint_plot: KeypointPlot | None = None  # fed every pose when set
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        names = stream.camera_names
        columns = max(1, math.ceil(math.sqrt(len(names))))
        for position, name in enumerate(names):
            view = CameraView(name)
            grid.addWidget(view, position // columns, position % columns)
            self.views[name] = view
            self._readers[name] = stream.display_reader(name)

    def refresh(self) -> None:
        """Show each camera's newest frame (if a new one arrived) with its annotations.

        While poses arrive, the frame shown is the one the newest pose was computed from; once the
        ring has dropped it, the newest frame with a line saying how far the pose lags.
        """
        status = self._experiment_status()
        flashing = self._flashing(status)
        for name, reader in self._readers.items():
            if not reader.poll():
                continue
            self._learn_clock(name, reader.last_seen)
            frame, behind = self._frame_of_pose(name, reader)
            canvas = self._annotated(name, frame, status, flashing)
            view = self.views[name]
            view.captions = self._captions(status, behind)
            view.names = _trigger_names(status, name)
            view.show_frame(canvas)

    def _frame_of_pose(self, name: str, reader: NewestFrameReader) -> tuple[np.ndarray, int]:
        """Return the frame to draw ``name``'s newest pose on, and how many frames it lags."""
        analysis = self._stream.pose.analysis
        newest = reader.record
        if analysis is None or analysis.finished is not None or newest is None:
            return reader.frame, 0
        record = analysis.latest.get(name)
        if record is None or record.frame_index >= newest.frame_index:
            return reader.frame, 0
        held = self._pose_frames.get(name)
        if held is None or held.shape != reader.frame.shape:
            held = self._pose_frames[name] = np.empty_like(reader.frame)
        if reader.copy_frame_index(record.frame_index, held) is not None:
            return held, 0
        return reader.frame, newest.frame_index - record.frame_index

    def _learn_clock(self, name: str, record: FrameRecord | None) -> None:
        if record is None:
            return
        offset = record.host_timestamp_ns / 1e9 - frame_time_s(
            record.camera_timestamp, record.host_timestamp_ns
        )
        known = self._clock_offsets.get(name)
        self._clock_offsets[name] = offset if known is None else min(known, offset)

    def frame_time_of(self, camera: str, host_timestamp_ns: int) -> float:
        """Return a frame's time as ``events.csv``'s ``time_s`` gives it."""
        if len(self._readers) > 1:
            return host_timestamp_ns / 1e9
        return host_timestamp_ns / 1e9 - self._clock_offsets.get(camera, 0.0)

    def newest_frames(self) -> dict[str, FrameRecord]:
        """Return each camera's newest frame announced to the view (its stamps, its sequence)."""
        newest = {}
        for name, reader in self._readers.items():
            if reader.last_seen is not None:
                newest[name] = reader.last_seen
        return newest

    def close_readers(self) -> None:
        """Let go of the display channels (before the stream stops and its rings go away)."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def reset_overlays(self) -> None:
        """Start every trail and occupancy map again from now (the options are read again)."""
        self.trails.clear()
        self.occupancy.clear()
        self._trail_rows.clear()

    def stop_listening(self) -> None:
        """Stop taking the analysis's poses (before the view goes away)."""
        self._follow(None)

    def _follow(self, analysis: Analysis | None) -> None:
        """Listen to the poses of the stream's analysis; a new analysis starts new overlays."""
        if analysis is self._listening_to:
            return
        previous = self._listening_to
        if previous is not None and self._on_pose in previous.pose_listeners:
            previous.pose_listeners.remove(self._on_pose)
        self._listening_to = analysis
        self.reset_overlays()
        if analysis is not None:
            analysis.pose_listeners.append(self._on_pose)

    def _on_pose(self, camera: str, record: PoseRecord) -> None:
        """Add each animal's trail keypoint to its trail and the camera's occupancy (cheap)."""
        plot, analysis = self.keypoint_plot, self._listening_to
        if plot is not None and analysis is not None and camera in self._clock_offsets:
            poses = record.animals if record.animals is not None else record.pose
            plot.add_pose(
                camera,
                self.frame_time_of(camera, record.host_timestamp_ns),
                poses,
                tuple(analysis.keypoints_of(camera)),
                self._stream.likelihood_threshold(camera),
                record.ensemble_std,  # an ensemble's spread (None: one model)
            )
        found = self._trail_rows.get(camera)
        if found is None:
            found = self._trail_rows[camera] = self._trail_row(camera)
        row, threshold = found
        if not 0 <= row < len(record.pose):
            return
        animals = record.animals if record.animals is not None else record.pose[None]
        trails = self.trails.setdefault(camera, [])
        while len(trails) < len(animals):  # one trail per identity, in identity order
            trails.append(Trail(self.overlays.trail_s))
        occupancy = self.occupancy.get(camera)
        if occupancy is None:
            occupancy = self.occupancy[camera] = OccupancyMap(self.overlays.bin_px)
        time_s = record.host_timestamp_ns / 1e9
        for trail, pose in zip(trails, animals, strict=False):
            x, y, likelihood = (float(value) for value in pose[row, :3])
            if likelihood >= threshold and math.isfinite(x) and math.isfinite(y):
                trail.add(time_s, x, y)
                occupancy.add(x, y)
            else:  # not seen: the trail breaks rather than jumping to where it is found again
                trail.add(time_s, math.nan, math.nan)

    def _trail_row(self, camera: str) -> tuple[int, float]:
        """Return the row of the camera's trail keypoint (-1: none) and its likelihood threshold."""
        analysis = self._listening_to
        keypoints = analysis.keypoints_of(camera) if analysis is not None else ()
        chosen = trail_keypoint(keypoints, self.overlays.trail_keypoint)
        row = keypoints.index(chosen) if chosen is not None else -1
        return row, self._stream.likelihood_threshold(camera)

    def _experiment_status(self) -> ExperimentStatus | None:
        analysis = self._stream.pose.analysis
        if analysis is None or not analysis.experiment_running:
            return None
        return analysis.experiment_status

    def _flashing(self, status: ExperimentStatus | None) -> bool:
        now = time.monotonic()
        if status is not None and status.actions > self._flash.actions:
            self._flash.until = now + FLASH_S
        self._flash.actions = status.actions if status is not None else 0
        return now < self._flash.until

    def _annotated(
        self, name: str, frame: np.ndarray, status: ExperimentStatus | None, flashing: bool
    ) -> np.ndarray:
        """Return a display copy of ``frame`` with everything the experimenter needs to see."""
        canvas = display_copy(frame)  # the one copy: the shared-memory slot is never drawn on
        analysis = self._stream.pose.analysis
        self._follow(analysis)
        options = self.overlays
        if options.show_heatmap and name in self.occupancy:  # under everything else
            draw_heatmap(canvas, self.occupancy[name], options.heatmap_alpha)
        if status is not None:
            draw_triggers(canvas, [t for t in status.triggers if t.camera in (None, name)])
        if options.show_trail and name in self.trails:
            trails = self.trails[name]
            for identity, trail in enumerate(trails):  # several animals: each its own colour
                colour = identity_colour(identity) if len(trails) > 1 else TRAIL_COLOUR
                draw_trail(canvas, trail, colour)
        if analysis is not None and analysis.finished is None and name in analysis.latest:
            record = analysis.latest[name]
            index = {keypoint: i for i, keypoint in enumerate(analysis.keypoints_of(name))}
            skeleton = tuple((index[a], index[b]) for a, b in analysis.skeleton_of(name))
            threshold = self._stream.likelihood_threshold(name)
            if record.animals is not None:  # a multi-animal model: each identity its colour
                draw_animals_on(
                    canvas, record.animals, threshold, skeleton, record.identity_confidence
                )
            else:
                draw_pose_on(canvas, record.pose, threshold, skeleton)
            self.views[name].pose_frame_index = record.frame_index
        if status is not None and flashing:
            draw_flash(canvas)
        return canvas

    @staticmethod
    def _captions(status: ExperimentStatus | None, behind: int) -> list[str]:
        """Return the lines under a tile: the experiment's state, then how far the pose lags."""
        lines = []
        if status is not None:
            trial = f"trial {status.trial}" if status.trial is not None else "no trial"
            lines.append(f"{status.name}: {status.state}, {trial}, {status.trials} so far")
        if behind:
            lines.append(f"pose {behind} frame(s) behind this frame")
        return lines


def _trigger_names(status: ExperimentStatus | None, camera: str) -> list[tuple[float, float, str]]:
    """Return where to write each trigger's name on ``camera`` (its first shape's top)."""
    if status is None:
        return []
    names = []
    for trigger in status.triggers:
        if trigger.camera not in (None, camera) or not trigger.shapes:
            continue
        anchor = name_anchor(trigger.shapes[0])
        if anchor is not None:
            names.append((anchor[0], anchor[1], trigger_label(trigger)))
    return names
