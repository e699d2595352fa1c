"""Plots over time of each camera's figures: rates, latency, skipped and dropped frames."""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from deeplabstream.app.gui.fitting import shrinkable
from deeplabstream.app.gui.keypoint_plot import TEXT_COLOUR, style_axes
from deeplabstream.live.session.runner import CameraFigures

HISTORY_S = 600.0  # ten minutes on screen
MAX_POINTS = 4096  # a bound whatever the rate points come in
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")

#: Plot object name -> (title, unit, the quantities it shows). A title fits a plot of a
#: laptop's window (a longer one widened its plot past its cell: the title and the axis's last
#: 10 s were cut); what it means in full is the plot's tooltip (:data:`PLOT_TIPS`).
PLOTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "plot_rate": ("frame rate", "fps", ("capture_fps", "analysed_fps")),
    "plot_latency": ("frame to pose latency", "ms", ("latency_p50_ms", "latency_p99_ms")),
    "plot_skipped": ("skipped by pose", "frames/s", ("skipped_per_s",)),
    "plot_dropped": ("dropped + lost", "frames/s", ("dropped_per_s",)),
}
PLOT_TIPS = {
    "plot_rate": "frames captured (solid) and analysed (dashed) per second, per camera",
    "plot_latency": "frame to pose latency, p50 (solid) and p99 (dashed), ms",
    "plot_skipped": "frames pose estimation passed over (it takes the newest frame), per second",
    "plot_dropped": "frames dropped by the camera + lost by the recorder, per second",
}
QUANTITIES: tuple[str, ...] = tuple(q for _, _, shown in PLOTS.values() for q in shown)
_DASHED = ("analysed_fps", "latency_p99_ms")  # the second curve of a plot: same colour, dashed
LOUD_BACKGROUND = "#ffcdd2"  # a plot whose losses raised an alert (app.gui.loss_alarm)
#: The figure of a loss alert -> the plot that shows it.
_ALERT_PLOTS = {
    "dropped": "plot_dropped",
    "recorder": "plot_dropped",
    "skipped": "plot_skipped",
    "late": "plot_latency",  # the loop's deadline missed
    "stalled": "plot_latency",  # no latency to plot: the curve has a gap (never a frozen value)
}


@dataclass
class _Series:
    """One camera's points: time and a value per quantity (NaN where there was none)."""

    time_s: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    values: dict[str, deque[float]] = field(
        default_factory=lambda: {q: deque(maxlen=MAX_POINTS) for q in QUANTITIES}
    )
    last_counts: tuple[float, int, int] | None = None  # time, skipped, dropped at the last point


class SessionPlots(QWidget):
    """Four small plots of every camera's figures over the last ``history_s`` seconds."""

    def __init__(self, history_s: float = HISTORY_S) -> None:
        super().__init__()
        self.setObjectName("session_plots")
        self.history_s = float(history_s)
        self.plots: dict[str, pg.PlotWidget] = {}
        self._series: dict[str, _Series] = {}
        self._curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.loud_plots: set[str] = set()  # plots tinted by a latched loss alert
        self.legend = QLabel("")
        self.legend.setObjectName("plots_legend")
        shrinkable(self.legend)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.legend)
        grid = QGridLayout()
        outer.addLayout(grid, 1)
        for position, (name, (title, unit, _)) in enumerate(PLOTS.items()):
            plot = pg.PlotWidget()
            plot.setObjectName(name)
            plot.setBackground("w")
            # Dark on white: pyqtgraph's light grey labels could hardly be read.
            plot.setTitle(title, color=TEXT_COLOUR)
            plot.setToolTip(PLOT_TIPS[name])
            plot.setLabel("left", unit, color=TEXT_COLOUR)
            plot.setLabel("bottom", "s since Start Stream", color=TEXT_COLOUR)
            style_axes(plot)
            plot.showGrid(x=True, y=True, alpha=0.3)
            # Every figure is >= 0; without a floor, a flat 0 autoscales to +-0.5 "x0.001".
            plot.setLimits(yMin=0)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setMinimumHeight(120)
            grid.addWidget(plot, position // 2, position % 2)
            self.plots[name] = plot

    def add(self, figures: Sequence[CameraFigures], t_s: float) -> None:
        """Add one point per camera at time ``t_s`` (seconds, any origin) and redraw."""
        for camera in figures:
            series = self._series.get(camera.name)
            if series is None:
                series = self._series[camera.name] = _Series()
                self._add_curves(camera.name, len(self._series) - 1)
            self._append(series, camera, float(t_s))
        self._redraw()

    def series(self, camera: str, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the times and values of one camera's ``quantity`` (one of :data:`QUANTITIES`)."""
        if quantity not in QUANTITIES:
            raise KeyError(f"no quantity {quantity!r}; plotted: {', '.join(QUANTITIES)}")
        found = self._series.get(camera)
        if found is None:
            return np.empty(0), np.empty(0)
        return np.fromiter(found.time_s, float), np.fromiter(found.values[quantity], float)

    def curve(self, camera: str, quantity: str) -> pg.PlotDataItem:
        """Return the curve that draws one camera's ``quantity`` (for tests)."""
        return self._curves[(camera, quantity)]

    def cameras(self) -> list[str]:
        """Return the cameras plotted, in the order they first came."""
        return list(self._series)

    def show_alerts(self, figures: Iterable[str]) -> None:
        """Tint the plots of the figures with a latched loss alert (empty: none tinted)."""
        loud = {_ALERT_PLOTS[figure] for figure in figures if figure in _ALERT_PLOTS}
        for name, plot in self.plots.items():
            if (name in loud) != (name in self.loud_plots):
                plot.setBackground(LOUD_BACKGROUND if name in loud else "w")
        self.loud_plots = loud

    def clear(self) -> None:
        """Remove every curve and point: a new session starts with empty plots."""
        for plot in self.plots.values():
            plot.clear()
        self._curves.clear()
        self._series.clear()
        self._show_legend()

    def _add_curves(self, camera: str, index: int) -> None:
        colour = PALETTE[index % len(PALETTE)]
        for name, (_, _, quantities) in PLOTS.items():
            for quantity in quantities:
                style = Qt.DashLine if quantity in _DASHED else Qt.SolidLine
                pen = pg.mkPen(colour, width=2, style=style)
                label = camera if len(quantities) == 1 else f"{camera} {_short(quantity)}"
                self._curves[(camera, quantity)] = self.plots[name].plot(
                    [], [], pen=pen, name=label
                )
        self._show_legend()

    def _show_legend(self) -> None:
        """Name each camera's colour, and what solid and dashed curves are, above the plots."""
        if not self._series:
            self.legend.setText("")
            return
        cameras = "&nbsp;&nbsp;".join(
            f'<span style="color:{PALETTE[index % len(PALETTE)]}">&#9473;&#9473;</span> '
            f"{html.escape(camera)}"
            for index, camera in enumerate(self._series)
        )
        self.legend.setText(
            f"{cameras}&nbsp;&nbsp;&nbsp;&nbsp;solid: captured rate, latency p50; "
            "dashed: analysed rate, latency p99"
        )

    def _append(self, series: _Series, camera: CameraFigures, t_s: float) -> None:
        """Append one point of every quantity; counters become rates since the last point."""
        p50, p99 = camera.latency_ms if camera.latency_ms else (np.nan, np.nan)
        skipped_rate = dropped_rate = np.nan
        last = series.last_counts
        if last is not None and t_s > last[0]:
            interval = t_s - last[0]
            # A counter that went back belongs to a new stream: its rate starts again at 0.
            skipped_rate = max(camera.skipped - last[1], 0) / interval
            dropped_rate = max(camera.dropped + camera.record_lost - last[2], 0) / interval
        series.last_counts = (t_s, camera.skipped, camera.dropped + camera.record_lost)
        point = {
            "capture_fps": camera.capture_fps,
            "analysed_fps": np.nan if camera.analysed_fps is None else camera.analysed_fps,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "skipped_per_s": skipped_rate,
            "dropped_per_s": dropped_rate,
        }
        series.time_s.append(t_s)
        for quantity, value in point.items():
            series.values[quantity].append(float(value))
        while series.time_s and series.time_s[0] < t_s - self.history_s:
            series.time_s.popleft()
            for values in series.values.values():
                values.popleft()

    def _redraw(self) -> None:
        for (camera, quantity), curve in self._curves.items():
            times, values = self.series(camera, quantity)
            # connect="finite": a gap (no analysis, no latency yet) is a gap, not a line to 0.
            curve.setData(times, values, connect="finite")


def _short(quantity: str) -> str:
    """Return the legend's word for a quantity of a two-curve plot."""
    return {
        "capture_fps": "captured",
        "analysed_fps": "analysed",
        "latency_p50_ms": "p50",
        "latency_p99_ms": "p99",
    }.get(quantity, quantity)
