"""The live view: one tile per camera with poses, trigger shapes, action flashes and the trial.

Each tile reads its camera's DISPLAY channel (newest frame only) when the window's display timer
fires (at most ``[Streaming] DISPLAY_RATE`` times a second) and draws on a copy of the frame, so
recorded and analysed frames are never touched and a slow window only skips display frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QImage, QPainter
from PyQt5.QtWidgets import QGridLayout, QWidget

from display.overlay import display_copy, draw_caption, draw_flash, draw_pose_on, draw_triggers
from gui.preview import to_qimage
from processes.messages import ExperimentStatus
from session.live import LiveSession
from transport.readers import NewestFrameReader

FLASH_S = 0.3  # how long the border shows after an action fired


class CameraView(QWidget):
    """Paints one camera's newest annotated frame, scaled to fit and centred."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.setObjectName(f"view_{name}")
        self.setMinimumSize(320, 240)
        self.image: QImage | None = None
        self.pose_frame_index: int | None = None  # the frame whose pose is drawn

    def show_frame(self, frame: np.ndarray) -> None:
        """Show ``frame`` (BGR or mono) at the next paint."""
        self.image = to_qimage(frame)
        self.update()

    def image_rect(self) -> QRectF:
        """Where the frame is drawn in the widget (aspect kept, centred)."""
        if self.image is None:
            return QRectF()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        width, height = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)

    def to_widget(self, x: float, y: float) -> QPointF:
        """Frame pixel (x, y) -> widget coordinates (for tests and mouse tools)."""
        rect = self.image_rect()
        assert self.image is not None
        scale = rect.width() / self.image.width()
        return QPointF(rect.x() + (x + 0.5) * scale, rect.y() + (y + 0.5) * scale)

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        """Black background, the frame scaled to fit."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("black"))
        if self.image is None:
            painter.setPen(QColor("white"))
            painter.drawText(self.rect(), Qt.AlignCenter, f"{self.name}: waiting for frames")
        else:
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawImage(self.image_rect(), self.image)
        painter.end()


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
        """Show each camera's newest frame (if a new one arrived) with its annotations."""
        status = self._experiment_status()
        flashing = self._flashing(status)
        for name, reader in self._readers.items():
            if reader.poll():
                self.views[name].show_frame(self._annotated(name, reader.frame, status, flashing))

    def close_readers(self) -> None:
        """Let go of the display channels (before the stream stops and its rings go away)."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def _experiment_status(self) -> ExperimentStatus | None:
        analysis = self._stream.analysis
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
        analysis = self._stream.analysis
        if status is not None:
            draw_triggers(canvas, [t for t in status.triggers if t.camera in (None, name)])
        if analysis is not None and analysis.finished is None and name in analysis.latest:
            record = analysis.latest[name]
            index = {keypoint: i for i, keypoint in enumerate(analysis.keypoints_of(name))}
            skeleton = tuple((index[a], index[b]) for a, b in analysis.skeleton_of(name))
            threshold = self._stream.likelihood_threshold(name)
            draw_pose_on(canvas, record.pose, threshold, skeleton)
            self.views[name].pose_frame_index = record.frame_index
        if status is not None:
            trial = f"trial {status.trial}" if status.trial is not None else "no trial"
            draw_caption(canvas, f"{status.name}: {status.state}, {trial}, {status.trials} so far")
            if flashing:
                draw_flash(canvas)
        return canvas
