"""A coloured bar across the window with a message and its buttons: errors, losses, news.

A bar shows its whole text when the message area has room for it (:mod:`app.gui.messages`
shares the area's height among the bars shown); when it has not, the bar shows as many *whole*
lines as it is given (:meth:`BannerText.limit_to`: never a line cut in half, as the stop
summary's third line was at 1920x1080), and a **Show all** button (beside the bar's own button,
both at its top, always in sight) opens the whole text; hovering the bar shows it too. Its text
never widens the window: a long path is clipped at the bar's edge, not a reason for the window
to grow past the screen.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QResizeEvent, QShowEvent
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

UNLIMITED_PX = 16_777_215  # Qt's QWIDGETSIZE_MAX: no maximum height


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
        self.label = BannerText(self.refresh_show_all)
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

    def refresh_show_all(self) -> None:
        """Offer Show all when the bar shows only part of its message."""
        self.show_all.setVisible(bool(self.label.text()) and self.overflows())

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 - Qt's name
        """Decide Show all once the bar has its width."""
        super().showEvent(event)
        self.refresh_show_all()


class BannerText(QLabel):
    """A bar's text: wraps, shows whole lines only, never widens the window."""

    def __init__(self, on_resize: Callable[[], None] | None = None) -> None:
        super().__init__("")
        self._on_resize = on_resize
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)  # clipped at the bottom, read from the top
        self.setMinimumWidth(1)  # a long word (a path) is clipped, never a wider window
        self._metrics: dict[str, tuple[int, int]] = {}  # style sheet -> (line, padding) px

    def needed_height(self, width: int | None = None) -> int:
        """Return the height the whole text takes at ``width`` (the label's own by default)."""
        return self.heightForWidth(max(1, self.width() if width is None else width))

    def limit_to(self, height_px: int, width: int | None = None) -> int:
        """Show the whole text if it fits ``height_px``, else the whole lines that fit.

        At least one line shows. Returns the height the label then takes.
        """
        needed = self.needed_height(width)
        if needed <= height_px:
            limit = UNLIMITED_PX
        else:
            line, padding = self._line_metrics()
            limit = padding + max(1, (height_px - padding) // line) * line
        if limit != self.maximumHeight():
            self.setMaximumHeight(limit)
        return min(needed, limit)

    def shown_height(self, width: int) -> int:
        """Return the height the label takes at ``width``: its text's, at most its maximum."""
        return min(self.needed_height(width), self.maximumHeight())

    def drop_a_line(self, shown_px: int) -> bool:
        """Show one whole line less than ``shown_px`` shows (never less than one line).

        Returns False when it shows one line already.
        """
        line, padding = self._line_metrics()
        lines = (shown_px - padding) // line
        if lines <= 1:
            return False
        self.setMaximumHeight(padding + (lines - 1) * line)
        return True

    def _line_metrics(self) -> tuple[int, int]:
        """Return one wrapped line's height and the padding around the text, in pixels.

        Measured on a hidden label under the same style sheets (the bar's padding applies to
        its children), so the bar's colours and padding, and the font, are all counted.
        """
        window = self.window()
        key = "|".join(w.styleSheet() for w in (self, self.parentWidget(), window) if w)
        if key not in self._metrics:
            probe = QLabel(self)
            probe.hide()
            probe.setWordWrap(True)
            probe.setText("x")
            one = probe.heightForWidth(1000)
            probe.setText("x\nx")
            line = max(1, probe.heightForWidth(1000) - one)
            probe.deleteLater()
            self._metrics[key] = (line, max(0, one - line))
        return self._metrics[key]

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
