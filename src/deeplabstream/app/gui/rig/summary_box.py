"""The Rig tab's "What Start will run" box: the problems, then the plan of a start."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from deeplabstream.app.gui.fitting import shrinkable
from deeplabstream.app.gui.rig.parts import NEWS_COLOUR, PROBLEM_COLOUR
from deeplabstream.app.gui.rig_check import summary_lines
from deeplabstream.settings.sections import Settings

BOX_MARGIN_PX = 4


class SummaryBox(QGroupBox):
    """What Start will run, under the problems (or news: checking, saved) of the last check."""

    def __init__(self) -> None:
        super().__init__("What Start will run")
        self.setObjectName("rig_summary_box")
        self.summary = shrinkable(QLabel(""))
        self.summary.setObjectName("rig_summary")
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem_label = shrinkable(QLabel(""))
        self.problem_label.setObjectName("rig_problems")
        self.problem_label.setStyleSheet(f"color: {PROBLEM_COLOUR};")
        self.problem_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # The text scrolls in its own box: the panel's splitter gives it part of the height.
        text = QWidget()
        text_layout = QVBoxLayout(text)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.problem_label)  # first: what stops a start, in sight
        text_layout.addWidget(self.summary)
        text_layout.addStretch(1)
        scroll = self._scroll = QScrollArea()
        scroll.setObjectName("rig_summary_area")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the text wraps
        scroll.setWidget(text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(*[BOX_MARGIN_PX] * 4)  # each line of room is a line of the plan
        layout.addWidget(scroll)

    def needed_height(self) -> int:
        """Return the box's height that shows the problems and the plan whole at its width."""
        text, viewport = self._scroll.widget(), self._scroll.viewport()
        if text is None or viewport is None:
            return self.height()
        chrome = self.height() - viewport.height()  # the title, margins and frame
        return chrome + text.heightForWidth(viewport.width())

    def say(self, text: str, *, problem: bool) -> None:
        """Write above the summary: problems in red, news (checking, saved) in a neutral colour."""
        self.problem_label.setStyleSheet(f"color: {PROBLEM_COLOUR if problem else NEWS_COLOUR};")
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))  # empty, it left a blank first line

    def show_plan(self, settings: Settings | None, output_override: Path | None) -> None:
        """Say what Start will run with ``settings`` ("-" when they cannot be read)."""
        self.summary.setText("\n".join(plan_lines(settings, output_override)) if settings else "-")


def plan_lines(settings: Settings, output_override: Path | None) -> list[str]:
    """Return what Start will run, with the folder sessions really go to."""
    lines = summary_lines(settings)
    if output_override is None:
        return lines
    where = (
        f"sessions go to: {output_override} (app.py --output-dir; the settings say "
        f"{settings.output.directory})"
    )
    return [where if line.startswith("sessions go to:") else line for line in lines]
