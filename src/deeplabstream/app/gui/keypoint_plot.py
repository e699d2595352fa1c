"""Keypoints over time: x, y and likelihood of each keypoint of one camera and animal.

Design: docs/gui.md, "Watching the experiment: the Log, Plots and Keypoints tabs".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.fitting import shrinkable

DEFAULT_SPAN_S = 30.0
MAX_ROWS = 20_000  # per camera and animal: 30 s at 600 poses a second
REDRAW_MS = 250
KEYPOINT_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
)  # fmt: skip
TEXT_COLOUR = "#212121"  # axes, ticks and labels: dark on the white plots
PLOTTED = (
    ("x", "x (px)"),
    ("y", "y (px)"),
    ("likelihood", "likelihood"),
    ("spread", "ensemble std (px)"),  # an ensemble's cameras only
)


@dataclass
class _Track:
    """One camera's (and animal's) poses: time and (K, 3) rows, newest last."""

    keypoints: tuple[str, ...]
    times: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_ROWS))
    poses: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=MAX_ROWS))  # (K, 4)
    spread: bool = False  # an ensemble: the fourth column is each keypoint's spread


class KeypointPlot(QWidget):
    """Three plots (x, y, likelihood) of every keypoint of the chosen camera and animal."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("keypoint_plot")
        self._tracks: dict[tuple[str, int], _Track] = {}
        self._threshold: dict[str, float] = {}
        self._changed = False
        self.camera = QComboBox()
        self.camera.setObjectName("keypoint_plot_camera")
        self.animal = QComboBox()
        self.animal.setObjectName("keypoint_plot_animal")
        self.span = QDoubleSpinBox()
        self.span.setObjectName("keypoint_plot_span")
        self.span.setRange(2, 600)
        self.span.setValue(DEFAULT_SPAN_S)
        self.span.setSuffix(" s")
        self.span.setToolTip("How far back the plots reach")
        for widget in (self.camera, self.animal):
            widget.currentIndexChanged.connect(self._choice_changed)
        self.span.valueChanged.connect(self._choice_changed)
        row = QHBoxLayout()
        for text, widget in (("Camera", self.camera), ("Animal", self.animal),
                             ("Last", self.span)):  # fmt: skip
            row.addWidget(QLabel(text))
            row.addWidget(widget)
        row.addStretch(1)
        self.legend = shrinkable(QLabel("Start Analysis: each keypoint's position and likelihood"))
        self.legend.setObjectName("keypoint_plot_legend")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.legend)
        self.plots: dict[str, pg.PlotWidget] = {}
        for name, unit in PLOTTED:
            plot = pg.PlotWidget()
            plot.setObjectName(f"keypoint_plot_{name}")
            plot.setBackground("w")
            plot.setLabel("left", unit, color=TEXT_COLOUR)
            plot.setLabel("bottom", "time_s (as in events.csv)", color=TEXT_COLOUR)
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.setMinimumHeight(50)
            style_axes(plot)
            layout.addWidget(plot, 1)
            self.plots[name] = plot
        self.plots["likelihood"].setYRange(0, 1.05)
        self.plots["spread"].setVisible(False)  # until the chosen camera runs an ensemble
        self._curves: dict[str, list[pg.PlotDataItem]] = {name: [] for name, _ in PLOTTED}
        self._threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#b00020", style=Qt.DashLine))
        self.plots["likelihood"].addItem(self._threshold_line)
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def add_pose(
        self,
        camera: str,
        time_s: float,
        poses: np.ndarray,
        keypoints: tuple[str, ...],
        threshold: float,
        spread: np.ndarray | None = None,
    ) -> None:
        """Take one analysed frame: ``poses`` (A, K, 3) or (K, 3), at ``time_s``.

        ``spread`` (K,): an ensemble's spread of each keypoint (pixels); None for one model.
        """
        animals = poses[None] if poses.ndim == 2 else poses
        self._threshold[camera] = threshold
        for animal, pose in enumerate(animals):
            key = (camera, animal)
            track = self._tracks.get(key)
            if track is None or track.keypoints != keypoints:
                track = self._tracks[key] = _Track(keypoints)
                self._offer(camera, animal)
            row = np.full((len(pose), 4), np.nan)
            row[:, :3] = pose[:, :3]
            if spread is not None and animal == 0:  # an ensemble is of one animal
                row[:, 3] = spread[: len(pose)]
                track.spread = True
            track.times.append(float(time_s))
            track.poses.append(row)
        self._changed = True

    def clear(self) -> None:
        """Forget every pose (a new stream)."""
        self._tracks.clear()
        self.camera.clear()
        self.animal.clear()
        for name, _ in PLOTTED:
            for curve in self._curves[name]:
                self.plots[name].removeItem(curve)
            self._curves[name] = []
        self._changed = True

    def series(self, camera: str, animal: int, keypoint: str) -> tuple[np.ndarray, np.ndarray]:
        """Return times and (N, 3) x, y, likelihood of one keypoint (for tests)."""
        times, values = self._series(camera, animal, keypoint)
        return times, values[:, :3]

    def spread_series(self, camera: str, keypoint: str) -> tuple[np.ndarray, np.ndarray]:
        """Return times and (N,) spreads of one keypoint of an ensemble's camera (for tests)."""
        times, values = self._series(camera, 0, keypoint)
        return times, values[:, 3]

    def _series(self, camera: str, animal: int, keypoint: str) -> tuple[np.ndarray, np.ndarray]:
        track = self._tracks.get((camera, animal))
        if track is None:
            return np.empty(0), np.empty((0, 4))
        row = track.keypoints.index(keypoint)
        return np.fromiter(track.times, float), np.array([p[row] for p in track.poses])

    def redraw(self) -> None:
        """Redraw the chosen camera's and animal's curves (skipped while hidden or unchanged)."""
        if not self._changed or not self.isVisible():
            return
        self._changed = False
        track = self._tracks.get((self.camera.currentText(), max(self.animal.currentIndex(), 0)))
        if track is None or not track.times:
            return
        times = np.fromiter(track.times, float)
        poses = np.stack(track.poses)
        keep = times >= times[-1] - self.span.value()
        times, poses = times[keep], poses[keep]
        self.plots["spread"].setVisible(track.spread)
        self._ensure_curves(track.keypoints)
        for column, (name, _) in enumerate(PLOTTED):
            for row, curve in enumerate(self._curves[name]):
                curve.setData(times, poses[:, row, column], connect="finite")
        self._threshold_line.setValue(self._threshold.get(self.camera.currentText(), 0.0))

    def _ensure_curves(self, keypoints: tuple[str, ...]) -> None:
        if len(self._curves["x"]) == len(keypoints):
            return
        for name, _ in PLOTTED:
            for curve in self._curves[name]:
                self.plots[name].removeItem(curve)
            self._curves[name] = [
                self.plots[name].plot(
                    [], [], pen=pg.mkPen(KEYPOINT_PALETTE[i % len(KEYPOINT_PALETTE)], width=2)
                )
                for i in range(len(keypoints))
            ]
        self.legend.setText(
            "&nbsp;&nbsp;".join(
                f'<span style="color:{KEYPOINT_PALETTE[i % len(KEYPOINT_PALETTE)]}">&#9473;&#9473;'
                f"</span> {name}"
                for i, name in enumerate(keypoints)
            )
            + "&nbsp;&nbsp;&nbsp;dashed red: the likelihood threshold (below: not seen)"
        )

    def _offer(self, camera: str, animal: int) -> None:
        """Add ``camera`` and ``animal`` to the choices (the first ones become chosen)."""
        if self.camera.findText(camera) < 0:
            self.camera.addItem(camera)
        animals = 1 + max(a for c, a in self._tracks if c == self.camera.currentText())
        while self.animal.count() < animals:
            self.animal.addItem(f"animal {self.animal.count() + 1}")

    def _choice_changed(self) -> None:
        for name, _ in PLOTTED:
            for curve in self._curves[name]:
                curve.setData([], [])
        self._changed = True
        self.redraw()


def style_axes(plot: pg.PlotWidget) -> None:
    """Dark axes, ticks and labels on the white plot: pyqtgraph's light grey was hard to read."""
    dark = pg.mkPen(TEXT_COLOUR)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(dark)
        axis.setTextPen(dark)
