"""The row of Start/Stop buttons, which answers a click on a greyed button with the reason.

Design: docs/gui.md, "The buttons".
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import QEvent, QObject, pyqtSignal
from PyQt5.QtWidgets import QAbstractButton, QHBoxLayout, QPushButton, QWidget


def named_button(text: str, name: str, clicked: Callable[..., None]) -> QPushButton:
    """Return a push button showing ``text``, named ``name``, calling ``clicked`` when clicked."""
    button = QPushButton(text)
    button.setObjectName(name)
    button.clicked.connect(clicked)
    return button


def as_wide_as_widest(button: QAbstractButton, labels: tuple[str, ...]) -> None:
    """Fix ``button``'s width to its widest of ``labels``: a new text never moves its row."""
    shown = button.text()
    widths = []
    for label in labels:
        button.setText(label)
        widths.append(button.sizeHint().width())
    button.setText(shown)
    button.setFixedWidth(max(widths))


class ButtonRow(QWidget):
    """A horizontal row of buttons; a press on a disabled one emits :attr:`refused`."""

    refused = pyqtSignal(QAbstractButton)  # the greyed button that was clicked

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("button_row")
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)

    def add_button(self, button: QAbstractButton, labels: tuple[str, ...] = ()) -> None:
        """Put ``button`` in the row, as wide as its widest ``labels``; watch it while greyed."""
        self.row.addWidget(button)
        button.installEventFilter(self)
        if labels:
            as_wide_as_widest(button, labels)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Emit :attr:`refused` for a press on a greyed button; never take the event."""
        if (
            event is not None
            and event.type() == QEvent.MouseButtonPress
            and isinstance(watched, QAbstractButton)
            and not watched.isEnabled()
        ):
            self.refused.emit(watched)
        return False
