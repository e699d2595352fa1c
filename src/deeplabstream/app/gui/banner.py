"""A coloured bar across the window with a message and its buttons: errors, losses, news.

Design: docs/gui.md, "Messages and errors".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QResizeEvent, QShowEvent
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QWidget

from deeplabstream.app.gui.button_row import named_button

UNLIMITED_PX = 16_777_215  # Qt's QWIDGETSIZE_MAX: no maximum height
BUTTON_PADDING = "1px 8px"  # a bar's buttons are one text line tall: a row is a line


@dataclass(frozen=True)
class BarColours:
    """What a bar looks like: its background, its text's colour, bold or not."""

    background: str
    text: str
    bold: bool = False

    def style(self, name: str) -> str:
        """Return the style sheet of the bar named ``name`` (its text, its compact buttons)."""
        weight = "bold" if self.bold else "normal"
        return (
            f"QWidget#{name} {{ background: {self.background}; }}\n"
            f"QWidget#{name} QLabel {{ color: {self.text}; font-weight: {weight}; "
            "padding: 0px; }\n"
            f"QWidget#{name} QPushButton {{ padding: {BUTTON_PADDING}; }}"
        )


class Banner(QWidget):
    """A bar with selectable text and one button; hidden until it has something to say.

    ``name`` is its object name (tests find it by that); ``button_*``, ``on_button``: its button.
    """

    def __init__(
        self,
        name: str,
        colours: BarColours,
        button_text: str,
        button_name: str,
        on_button: Callable[[], None],
    ) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setAttribute(Qt.WA_StyledBackground, True)  # its background is its style's
        self.colours = colours
        self.setStyleSheet(colours.style(name))
        self.label = BannerText(self.refresh_show_all)
        self.show_all = named_button("Show all", f"{name}_show_all", self.open_whole_text)
        self.show_all.setToolTip("The whole message, in a window of its own (it can be copied)")
        self.show_all.hide()
        self.button = named_button(button_text, button_name, on_button)
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        # At the top: a bar of many lines keeps its buttons in the area's first line.
        layout.addWidget(self.show_all, 0, Qt.AlignTop)
        layout.addWidget(self.button, 0, Qt.AlignTop)
        self.whole_text_box: QMessageBox | None = None
        self.hide()

    def use_colours(self, colours: BarColours) -> None:
        """Show the bar in ``colours`` from now on (a warning, after news)."""
        if colours != self.colours:
            self.colours = colours
            self.setStyleSheet(colours.style(self.objectName()))

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
        self._measure: QLabel | None = None  # measures starts of the text (see _probe)

    def needed_height(self, width: int | None = None) -> int:
        """Return the height the whole text takes at ``width`` (the label's own by default)."""
        return self.heightForWidth(max(1, self.width() if width is None else width))

    def lines_height(self, lines: int) -> int:
        """Return the height of ``lines`` lines of text in this label (the tallest kind)."""
        probe = self._probe()
        # Lines that each begin a paragraph: with a negative leading a wrapped line is shorter.
        probe.setText("\n".join(["Xg"] * max(1, lines)))
        return probe.heightForWidth(1000)

    def limit_to_lines(self, lines: int, width: int | None = None) -> int:
        """Show the whole text if it fits ``lines`` lines, else the whole lines that fit (1+).

        Returns the height the label then takes.
        """
        height_px = self.lines_height(lines)
        needed = self.needed_height(width)
        limit = UNLIMITED_PX if needed <= height_px else self.whole_lines_height(height_px, width)
        if limit != self.maximumHeight():
            self.setMaximumHeight(limit)
        return min(needed, limit)

    def shows_whole_lines(self) -> bool:
        """Whether the label shows its whole text, or whole lines of it (none cut in half)."""
        height = self.height()
        return height >= self.needed_height() or self.whole_lines_height(height) == height

    def whole_lines_height(self, height_px: int, width: int | None = None) -> int:
        """Return the height of the most whole lines of the text in ``height_px`` (at least 1)."""
        # Measured on the text itself: a paragraph's first line is taller than a wrapped one
        # where the font has a negative leading, so a line's height times a count cuts lines.
        text = self.text()
        width = max(1, self.width() if width is None else width)
        probe = self._probe()
        ends = [m.start() for m in re.finditer(r"\s+", text.rstrip())] + [len(text.rstrip())]
        below = self._room_below_last_line()

        def height_to(index: int) -> int:
            probe.setText(text[: ends[index]])
            return probe.heightForWidth(width) - below

        low, high = 0, len(ends) - 1  # ends[low] fits (the first word: one line at least)
        while low < high:
            middle = (low + high + 1) // 2
            if height_to(middle) <= height_px:
                low = middle
            else:
                high = middle - 1
        return height_to(low)

    def _room_below_last_line(self) -> int:
        """Return the document's margin under the last line, where a cut text's next line shows."""
        probe = self._probe()
        probe.setText("x")
        margins = probe.contentsMargins()
        document = probe.heightForWidth(1000) - probe.fontMetrics().height()
        document -= margins.top() + margins.bottom()
        return max(0, document) // 2

    def _probe(self) -> QLabel:
        """Return a hidden label laid out as this one (margins, padding), to measure with."""
        if self._measure is None:
            self._measure = QLabel(self)
            self._measure.hide()
            self._measure.setWordWrap(True)
            self._measure.setTextInteractionFlags(self.textInteractionFlags())
            self._measure.setAlignment(self.alignment())
        self._measure.ensurePolished()
        return self._measure

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
