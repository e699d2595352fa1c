"""A coloured bar across the window with a message and one button: errors, losses."""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class Banner(QWidget):
    """A bar with selectable text and one button; hidden until it has something to say.

    Parameters
    ----------
    name
        The bar's object name (tests find it by that).
    style
        Its style sheet (colours).
    button_text, button_name, on_button
        The button's label, object name and what it does.
    """

    def __init__(
        self,
        name: str,
        style: str,
        button_text: str,
        button_name: str,
        on_button: Callable[[], None],
    ) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setStyleSheet(style)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.button = QPushButton(button_text)
        self.button.setObjectName(button_name)
        self.button.clicked.connect(on_button)
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()
