"""The experiment's events as they happen, the trials so far, and time and entries per region.

Design: docs/gui.md, "Watching the experiment: the Log, Plots and Keypoints tabs".
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QBrush, QColor, QFont, QShowEvent
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.fitting import ElidedLabel, compact_rows, shrinkable
from deeplabstream.experiments.events import EVENT_COLUMNS as CSV_COLUMNS
from deeplabstream.live.processes.messages import EventView, ExperimentStatus, TriggerView

MAX_ROWS = 5000  # the table stays responsive; events.csv keeps everything
# The first column is events.csv's own: the same name, the same clock (experiments/events.py).
EVENT_COLUMNS = (CSV_COLUMNS[0], "kind", "name", "detail", "trial", "animal")
REGION_COLUMNS = ("trigger", "camera", "entries", "time s", "% of session")
REGION_ROWS_SHOWN = 5  # the region table's rows in sight; the events get the rest of the tab
# Row tints by kind (light, so the text stays readable): what the experimenter looks for.
KIND_COLOURS = {
    "action": QColor(255, 236, 179),
    "trial_start": QColor(200, 230, 201),
    "trial_end": QColor(225, 225, 225),
    "finish": QColor(255, 205, 210),
}
ACTIVE_REGION = QColor(255, 204, 128)  # a region the animal is in now (orange, as in the view)


class EventLogPanel(QWidget):
    """The live event log (``event_table``), a trial line and the per-region table."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("event_log")
        self._status: ExperimentStatus | None = None  # the last status shown
        # Follow the newest row unless the user scrolled back to read (then stay there).
        self.following = True
        self._received = 0  # events taken from statuses
        self._missed = 0  # events the statuses did not carry (count only)
        self._removed = 0  # rows removed from the top to keep MAX_ROWS
        self._seen_total = 0  # events_total of the last status
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.trial_summary = shrinkable(QLabel("no experiment"))
        self.trial_summary.setObjectName("trial_summary")
        self.events = _table("event_table", EVENT_COLUMNS)
        # Each column as wide as its text, the detail the rest: five columns of 100 px left
        # "pulse ch..." of the detail on a laptop; its whole text is its tooltip.
        _header(self.events).setSectionResizeMode(QHeaderView.ResizeToContents)
        _header(self.events).setSectionResizeMode(3, QHeaderView.Stretch)  # detail
        self.note = ElidedLabel("")
        self.note.setObjectName("event_log_note")
        self.regions = _table("region_table", REGION_COLUMNS)
        _header(self.regions).setSectionResizeMode(0, QHeaderView.Stretch)  # trigger
        self._fit_regions(0)
        bar = self.events.verticalScrollBar()
        assert bar is not None  # a table always has its scroll bars
        # Only the user's own scrolling (wheel, drag, click, keys) decides whether to follow.
        bar.actionTriggered.connect(lambda _action: self._user_scrolled())
        bar.sliderReleased.connect(self._user_scrolled)
        for widget in (self.trial_summary, self.events, self.note, self.regions):
            layout.addWidget(widget)
        layout.setStretch(1, 1)

    def show_status(self, status: ExperimentStatus | None) -> None:
        """Show ``status``'s new events, trial line and regions (None: leave what is shown)."""
        if status is None or status is self._status:
            return
        if status.events_total < self._seen_total:
            self.clear()  # counting from zero again: another experiment's statuses
        self._status = status
        self._missed += max(0, status.events_total - self._seen_total - len(status.new_events))
        self._seen_total = status.events_total
        self._append(status.new_events)
        self._show_summary(status)
        self._show_regions(status.triggers, status.elapsed_s)

    def clear(self) -> None:
        """Empty the log, the trial line and the regions: a new experiment starts from nothing."""
        self._status = None
        self.following = True
        self._received = self._missed = self._removed = self._seen_total = 0
        self.events.setRowCount(0)
        self.regions.setRowCount(0)
        self._fit_regions(0)
        self.trial_summary.setText("no experiment")
        self.trial_summary.setStyleSheet("")
        self.note.setText("")

    @property
    def received(self) -> int:
        """Return how many events the log has taken (rows shown plus rows removed)."""
        return self._received

    @property
    def missed(self) -> int:
        """Return how many events never reached the log (the statuses carried only the newest)."""
        return self._missed

    def _append(self, events: Sequence[EventView]) -> None:
        if not events:
            return
        table = self.events
        table.setUpdatesEnabled(False)
        try:
            for event in events:
                self._add_row(event)
            surplus = table.rowCount() - MAX_ROWS
            if surplus > 0:
                model = table.model()
                assert model is not None  # a QTableWidget always has its model
                model.removeRows(0, surplus)
                self._removed += surplus
        finally:
            table.setUpdatesEnabled(True)
        self._received += len(events)
        self._show_note()
        if self.following:
            table.scrollToBottom()

    def _user_scrolled(self) -> None:
        """Follow again once the user is back at the newest row; stay where they read otherwise."""
        # Judged on the event loop: actionTriggered comes before the scroll bar has moved.
        QTimer.singleShot(0, self._judge_following)

    def _judge_following(self) -> None:
        bar = self.events.verticalScrollBar()
        if bar is not None:
            self.following = bar.value() >= bar.maximum()

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 - Qt's name
        """Rows added while the tab was hidden: show the newest when following."""
        super().showEvent(event)
        if self.following:
            self.events.scrollToBottom()

    def _add_row(self, event: EventView) -> None:
        table = self.events
        row = table.rowCount()
        table.insertRow(row)
        cells = (
            f"{event.time_s:.3f}",  # as events.csv writes it: frame time, the stream's clock
            event.kind,
            event.name,
            event.detail,
            "" if event.trial is None else str(event.trial),
            event.animal,  # events.csv's animal: who made it (several animals only)
        )
        tint = KIND_COLOURS.get(event.kind)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)  # a cell cut at the table's edge still says it whole
            if tint is not None:
                item.setBackground(QBrush(tint))
            table.setItem(row, column, item)

    def _show_note(self) -> None:
        parts = []
        if self._removed:
            parts.append(f"{self._removed} older rows removed (events.csv has them)")
        if self._missed:
            parts.append(f"{self._missed} events not received (events.csv has them)")
        self.note.setText("; ".join(parts))

    def _show_summary(self, status: ExperimentStatus) -> None:
        trial = f"trial {status.trial} in progress" if status.trial is not None else "no trial"
        text = (
            f"{status.name}: {status.state}, {trial}; {status.trials} trials, "
            f"{status.actions} actions, {status.events_total} events "
            f"in {status.elapsed_s:.1f} s"
        )
        if status.error:
            text += f"\n{status.error}"
        self.trial_summary.setText(text)
        self.trial_summary.setToolTip(text)  # a device's error may hold a path wider than the tab
        loud = "color: #b71c1c; font-weight: bold"  # a failed device: the line turns red
        self.trial_summary.setStyleSheet(loud if status.error else "")

    def _fit_regions(self, rows: int) -> None:
        """Make the region table as tall as its rows (up to :data:`REGION_ROWS_SHOWN`)."""
        table = self.regions
        vertical = table.verticalHeader()
        row = vertical.defaultSectionSize() if vertical is not None else 24
        shown = min(max(rows, 1), REGION_ROWS_SHOWN)
        height = _header(table).sizeHint().height() + shown * row + 2 * table.frameWidth()
        if table.height() != height or table.minimumHeight() != height:
            table.setFixedHeight(height)

    def _show_regions(self, triggers: Sequence[TriggerView], elapsed_s: float) -> None:
        table = self.regions
        if table.rowCount() != len(triggers):
            self._fit_regions(len(triggers))
        table.setRowCount(len(triggers))
        for row, trigger in enumerate(triggers):
            share = 100.0 * trigger.seconds_active / elapsed_s if elapsed_s > 0 else 0.0
            cells = (
                trigger.name,
                trigger.camera or "any",
                str(trigger.entries),
                f"{trigger.seconds_active:.1f}",
                f"{share:.1f}",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if trigger.active:
                    item.setBackground(QBrush(ACTIVE_REGION))
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, column, item)


def _table(name: str, columns: Sequence[str]) -> QTableWidget:
    """Return a read-only table with ``columns``, rows selectable whole."""
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    vertical = table.verticalHeader()
    assert vertical is not None  # a table always has its headers
    vertical.setVisible(False)
    table.setWordWrap(False)
    return compact_rows(table)


def _header(table: QTableWidget) -> QHeaderView:
    """Return the table's column header (always there; the stubs allow None)."""
    header = table.horizontalHeader()
    assert header is not None
    return header
