"""A coloured bar across the window with a message and its buttons: errors, losses, news.

A bar never grows past :data:`BANNER_LINES` lines, whatever it is told: a session's summary of
nine lines, or four cameras' losses, used to fill the message area and push the bar's button
out of sight. The first lines show; when there is more, a **Show all** button (beside the bar's
own button, both at its top, always in sight) opens the whole text, and hovering the bar shows
it too. Its text never widens the window: a long path is clipped at the bar's edge, not a reason
for the window to grow past the screen.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QResizeEvent, QShowEvent
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

BANNER_LINES = 2  # lines a bar shows; the rest is one click (Show all) or a hover away
TEXT_PADDING_PX = 14  # the style sheets' padding above and below the text, and a margin


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
        self.label = BannerText(self._fit)
        self.show_all = QPushButton("Show all")
        self.show_all.setObjectName(f"{name}_show_all")
        self.show_all.setToolTip("The whole message, in a window of its own (it can be copied)")
        self.show_all.clicked.connect(self.open_whole_text)
        self.show_all.hide()
        self.button = QPushButton(button_text)
        self.button.setObjectName(button_name)
        self.button.clicked.connect(on_button)
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        # At the top: a bar of many lines keeps its buttons in the area's first line.
        layout.addWidget(self.show_all, 0, Qt.AlignTop)
        layout.addWidget(self.button, 0, Qt.AlignTop)
        self.whole_text_box: QMessageBox | None = None
        self.hide()

    def full_text(self) -> str:
        """Return the whole message (the bar may show only its first lines)."""
        return self.label.text()

    def set_message(self, text: str) -> None:
        """Show ``text`` (its first lines; all of it on hover and with Show all)."""
        self.label.setText(text)
        self.setToolTip(text)
        self._fit()

    def open_whole_text(self) -> None:
        """Show the whole message in a window of its own (not modal: the session goes on)."""
        box = QMessageBox(QMessageBox.Information, "Message", self.full_text(), parent=self)
        box.setObjectName(f"{self.objectName()}_whole_text")
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.setModal(False)
        box.show()
        self.whole_text_box = box

    def overflows(self) -> bool:
        """Whether the bar shows only part of its message (Show all is offered then)."""
        label = self.label
        width = max(label.width(), 1)
        return label.heightForWidth(width) > label.maximumHeight()

    def _fit(self) -> None:
        self.show_all.setVisible(bool(self.label.text()) and self.overflows())

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 - Qt's name
        """Decide Show all once the bar has its width."""
        super().showEvent(event)
        self._fit()


class BannerText(QLabel):
    """A bar's text: wraps, shows at most :data:`BANNER_LINES` lines, never widens the window."""

    def __init__(self, on_resize: Callable[[], None] | None = None) -> None:
        super().__init__("")
        self._on_resize = on_resize
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)  # clipped at the bottom, read from the top
        self.setMinimumWidth(1)  # a long word (a path) is clipped, never a wider window
        lines = self.fontMetrics().lineSpacing()
        # the bar's style sheet pads its children too (4 px above and below)
        self.setMaximumHeight(BANNER_LINES * lines + TEXT_PADDING_PX)

    def setText(self, text: str | None) -> None:  # noqa: N802 - Qt's name
        """Show ``text``; its whole text is also the tooltip."""
        super().setText(text or "")
        self.setToolTip(text or "")
        if self._on_resize is not None:
            self._on_resize()

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 - Qt's name
        """Offer Show all again: a new width wraps the text differently."""
        super().resizeEvent(event)
        if self._on_resize is not None:
            self._on_resize()
