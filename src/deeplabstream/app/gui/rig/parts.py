"""Small pieces the Rig tab's boxes share: colours, a job's status line, a yes/no question."""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.fitting import shrinkable

PROBLEM_COLOUR = "#b00020"
NEWS_COLOUR = "#37474f"  # saved, checking: information, not alarm


def status_line(name: str) -> QLabel:
    """Return a line for a job's progress and outcome (hidden until there is something to say)."""
    label = shrinkable(QLabel(""))
    label.setObjectName(name)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.hide()
    return label


def job_box(box: QWidget, row: QHBoxLayout, status: QLabel, info_name: str) -> QPlainTextEdit:
    """Lay out a job's box: its row, the job's status line, what the job found (returned)."""
    info = QPlainTextEdit()
    info.setObjectName(info_name)
    info.setReadOnly(True)
    info.setMaximumHeight(120)
    layout = QVBoxLayout(box)
    layout.addLayout(row)
    layout.addWidget(status)
    layout.addWidget(info)
    return info


def confirm(parent: QWidget, title: str, question: str) -> bool:
    """Ask a yes/no question (No is the default); True when the user says yes."""
    box = QMessageBox(QMessageBox.Question, title, question, parent=parent)
    box.setObjectName("rig_confirm")
    box.setStandardButtons(QMessageBox.Yes | QMessageBox.No)
    box.setDefaultButton(QMessageBox.No)
    return box.exec_() == QMessageBox.Yes
