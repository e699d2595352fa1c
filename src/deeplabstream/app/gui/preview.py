"""A plain live view of every camera for ``DeepLabStream.py`` (the full GUI is ``app.py``).

It draws on its own copy of the newest DISPLAY frame; ``q`` or closing the window stops the run.
"""

from __future__ import annotations

import math

import numpy as np
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QCloseEvent, QImage, QKeyEvent, QPixmap
from PyQt5.QtWidgets import QApplication, QGridLayout, QLabel, QVBoxLayout, QWidget

from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.outputs.pose.drawing import draw_pose
from deeplabstream.transport.readers import NewestFrameReader


def to_qimage(frame: np.ndarray) -> QImage:
    """Wrap a BGR or mono frame as a QImage (copied, so the frame buffer can be reused)."""
    height, width = frame.shape[:2]
    if frame.ndim == 2:
        image = QImage(frame.data, width, height, frame.strides[0], QImage.Format_Grayscale8)
    else:
        image = QImage(frame.data, width, height, frame.strides[0], QImage.Format_BGR888)
    return image.copy()


class PreviewWindow(QWidget):
    """One tile per camera plus a status line."""

    def __init__(self, stream: LiveSession, runner: SessionRunner) -> None:
        super().__init__()
        self.setWindowTitle("DeepLabStream - camera check (press q to stop)")
        self._runner = runner
        self._stream = stream
        self._readers: dict[str, NewestFrameReader] = {}
        self._tiles: dict[str, QLabel] = {}
        grid = QGridLayout()
        columns = max(1, math.ceil(math.sqrt(len(stream.camera_names))))
        for position, name in enumerate(stream.camera_names):
            tile = QLabel(f"{name}: waiting for frames")
            tile.setObjectName(f"tile_{name}")
            tile.setAlignment(Qt.AlignCenter)
            tile.setMinimumSize(320, 240)
            grid.addWidget(tile, position // columns, position % columns)
            self._tiles[name] = tile
            self._readers[name] = stream.display_reader(name)
        self._status = QLabel("")
        self._status.setObjectName("status")
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self._status)
        refresh_ms = max(1, round(1000 / stream.settings.streaming.display_rate))
        self._frame_timer = QTimer(self)
        self._frame_timer.setInterval(refresh_ms)
        self._frame_timer.timeout.connect(self._show_frames)
        self._service_timer = QTimer(self)
        self._service_timer.setInterval(50)
        self._service_timer.timeout.connect(self._service)
        self._frame_timer.start()
        self._service_timer.start()

    def _show_frames(self) -> None:
        for name, reader in self._readers.items():
            if reader.poll():
                tile = self._tiles[name]
                pixmap = QPixmap.fromImage(to_qimage(self._annotated(name, reader.frame)))
                tile.setPixmap(pixmap.scaled(tile.size(), Qt.KeepAspectRatio))

    def _annotated(self, name: str, frame: np.ndarray) -> np.ndarray:
        """Return the frame with the newest pose of this camera drawn on a copy (if analysing)."""
        analysis = self._stream.pose.analysis
        if analysis is None or name not in analysis.latest:
            return frame
        index = {keypoint: i for i, keypoint in enumerate(analysis.keypoints_of(name))}
        skeleton = tuple((index[a], index[b]) for a, b in analysis.skeleton_of(name))
        threshold = self._stream.likelihood_threshold(name)
        return draw_pose(frame, analysis.latest[name].pose, threshold, skeleton)

    def _service(self) -> None:
        if not self._runner.tick(0.0):
            self.close()
            return
        self._status.setText("  |  ".join(self._runner.last_status))

    def keyPressEvent(self, event: QKeyEvent | None) -> None:  # noqa: N802 - Qt's name
        """``q`` stops the run."""
        if event is not None and event.key() == Qt.Key_Q:
            self._runner.request_stop("q pressed")
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop the run when the window closes."""
        self._runner.request_stop("window closed")
        self._frame_timer.stop()
        self._service_timer.stop()
        for reader in self._readers.values():
            reader.close()
        super().closeEvent(event)


def run_preview(stream: LiveSession, runner: SessionRunner) -> None:
    """Show the window until the run ends."""
    app = QApplication.instance() or QApplication([])
    window = PreviewWindow(stream, runner)
    window.show()
    app.exec_()
