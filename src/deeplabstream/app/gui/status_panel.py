"""The live figures under the view: per camera rates and losses, recording, experiment, errors."""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from deeplabstream.app.gui.banner import Banner, BarColours
from deeplabstream.app.gui.fitting import ElidedLabel, compact_rows
from deeplabstream.live.processes.messages import ExperimentStatus
from deeplabstream.live.session.runner import CameraFigures

LOUD_COLOUR = QColor("#e65100")  # the loss banner's colour
ERROR_COLOURS = BarColours("#b00020", "white")
CAMERA_COLUMNS = (
    "camera",
    "capture fps",
    "analysed fps",
    "skipped",
    "dropped",
    "latency p50/p99 ms",
    "late",
    "recorded",
)
#: What a column counts, on hover: the same words as the session's summary.
COLUMN_TIPS = {
    "skipped": "frames pose estimation passed over (it takes the newest frame): not analysed",
    "dropped": "frames the camera dropped (session.json: frames_dropped_by_camera)",
    "late": "analysed frames that missed the loop's deadline",
    "recorded": "frames recorded, + those the recorder lost (missing from the video; "
    "session.json: frames_lost_in_recording)",
}


def format_duration(seconds: float) -> str:
    """``h:mm:ss``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_size(size_bytes: int) -> str:
    """Bytes in the unit a user reads at a glance."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def camera_row(figures: CameraFigures) -> list[str]:
    """Return the table cells of one camera, in the order of :data:`CAMERA_COLUMNS`."""
    analysed = "-" if figures.analysed_fps is None else f"{figures.analysed_fps:.1f}"
    latency = "-"
    if figures.stalled_s is not None:  # a stalled loop shows as stalled, never its last figure
        latency = f"STALLED {figures.stalled_s:.0f} s"
    elif figures.loop_latency_ms is not None:  # with an experiment: frame -> decision
        latency = f"{figures.loop_latency_ms[0]:.1f} / {figures.loop_latency_ms[1]:.1f} (loop)"
    elif figures.latency_ms is not None:
        latency = f"{figures.latency_ms[0]:.1f} / {figures.latency_ms[1]:.1f}"
    capture = f"{figures.capture_fps:.1f}"
    if figures.below_framerate is not None:  # as the warning says: below its FRAMERATE
        capture += f" (below {figures.below_framerate:g})"
    return [
        figures.name,
        capture,
        analysed,
        str(figures.skipped) if figures.analysed_fps is not None else "-",
        str(figures.dropped),
        latency,
        str(figures.late) if figures.analysed_fps is not None else "-",
        recorded_text(figures),
    ]


def recorded_text(figures: CameraFigures) -> str:
    """Return the frames recorded, and those the recorder lost (as the summary says them)."""
    if figures.record_lost:
        return f"{figures.recorded} + {figures.record_lost} lost"
    return str(figures.recorded)


def experiment_text(status: ExperimentStatus | None, running: bool) -> str:
    """One line about the experiment."""
    if not running:
        return "not running"
    if status is None:
        return "started, waiting for the first poses"
    trial = f"trial {status.trial} in progress" if status.trial is not None else "no trial"
    text = f"{status.name}: {status.state}, {trial}, {status.trials} trial(s), "
    text += f"{status.actions} action(s)"
    return text


class ErrorBanner(Banner):
    """A red bar with the latest error and what to do; stays until dismissed."""

    def __init__(self) -> None:
        super().__init__(
            "error_banner",
            ERROR_COLOURS,
            "Dismiss",
            "dismiss_error",
            self.clear,
        )

    def show_error(self, text: str) -> None:
        """Show ``text`` (replacing an older error)."""
        self.label.setText(text)
        self.show()

    def clear(self) -> None:
        """Hide the banner."""
        self.label.setText("")
        self.hide()


class StatusPanel(QWidget):
    """The camera table and the session's lines."""

    def __init__(self) -> None:
        super().__init__()
        self.table = QTableWidget(0, len(CAMERA_COLUMNS))
        self.table.setObjectName("camera_table")
        self.table.setHorizontalHeaderLabels(CAMERA_COLUMNS)
        for column, name in enumerate(CAMERA_COLUMNS):
            item = self.table.horizontalHeaderItem(column)
            if item is not None and name in COLUMN_TIPS:
                item.setToolTip(COLUMN_TIPS[name])
        vertical = self.table.verticalHeader()
        header = self.table.horizontalHeader()
        # A QTableWidget always has both headers; the stubs allow None for any QTableView.
        assert vertical is not None and header is not None
        vertical.setVisible(False)
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        compact_rows(self.table)  # four cameras' rows in sight (two at the old row height)
        self.table.setMaximumHeight(110)
        self.recording = ElidedLabel("not recording")
        self.recording.setObjectName("recording_status")
        self.experiment = ElidedLabel("not running")
        self.experiment.setObjectName("experiment_status")
        self.last_event = ElidedLabel("-")
        self.last_event.setObjectName("last_event")
        self._loud: set[str] = set()  # cameras whose losses raised a latched alarm
        self.latency_test = ElidedLabel("not run", mode=Qt.ElideMiddle)
        self.latency_test.setObjectName("latency_test_status")
        lines = QFormLayout()
        lines.addRow("Recording:", self.recording)
        lines.addRow("Experiment:", self.experiment)
        lines.addRow("Last event:", self.last_event)
        lines.addRow("Latency test:", self.latency_test)
        # Side by side: the window's height goes to the live view and the tabs.
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 3)
        layout.addLayout(lines, 2)

    def show_cameras(self, rows: list[CameraFigures]) -> None:
        """Fill the camera table (rows of cameras with latched losses in the alarm colour)."""
        self.table.setRowCount(len(rows))
        for row, figures in enumerate(rows):
            loud = figures.name in self._loud
            for column, text in enumerate(camera_row(figures)):
                item = QTableWidgetItem(text)
                if loud:
                    item.setBackground(QBrush(LOUD_COLOUR))
                    item.setForeground(QBrush(QColor("white")))
                self.table.setItem(row, column, item)

    def show_final_recorded(self, counts: dict[str, tuple[int, int]]) -> None:
        """Put the session's final frames recorded (+ lost) in each camera's "recorded" cell."""
        column = CAMERA_COLUMNS.index("recorded")
        for row in range(self.table.rowCount()):
            name_item = self.table.item(row, 0)
            counts_of = counts.get(name_item.text()) if name_item is not None else None
            if counts_of is None:
                continue
            recorded, lost = counts_of
            cell = self.table.item(row, column)
            text = f"{recorded} + {lost} lost" if lost else str(recorded)
            if cell is None:
                self.table.setItem(row, column, QTableWidgetItem(text))
            else:
                cell.setText(text)

    def mark_loud(self, cameras: set[str]) -> None:
        """Show the rows of ``cameras`` in the alarm colour from the next refresh on."""
        self._loud = set(cameras)

    def clear_experiment(self) -> None:
        """Forget the last experiment's line and last event (a new one starts)."""
        self.experiment.setText("not running")
        self.last_event.setText("-")

    def show_recording(self, seconds: float | None, size_bytes: int) -> None:
        """Show the recording duration and size (``seconds`` None: not recording)."""
        if seconds is None:
            self.recording.setText("not recording")
        else:
            self.recording.setText(f"{format_duration(seconds)}, {format_size(size_bytes)}")

    def show_experiment(self, status: ExperimentStatus | None, running: bool) -> None:
        """Show the experiment's state, trials and last event."""
        self.experiment.setText(experiment_text(status, running))
        if status is not None and status.last_event:
            self.last_event.setText(status.last_event)

    def show_latency_test(self, text: str) -> None:
        """Show the latency test's line: running, or where its figures were written."""
        self.latency_test.setText(text)
