"""Text that fits the window instead of widening it: elided lines and wrapped labels that shrink.

A QLabel asks for its longest line or word, and a window gives it.
"""

from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, QSize, Qt
from PyQt5.QtGui import QPainter, QPaintEvent
from PyQt5.QtWidgets import (
    QApplication,
    QComboBox,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QWidget,
)

MIN_TEXT_WIDTH_PX = 40  # an elided line never asks for more than this
CHOICE_CHARACTERS = 16  # a drop-down's width, in characters, whatever its items' length
ROW_PADDING_PX = 6  # a compact table row: one line of text and this much
POPUP_PADDING_PX = 40  # an opened drop-down's list: its longest item, a scroll bar and margins


class ElidedLabel(QLabel):
    """One line of text, cut with "..." to its width (:meth:`text` is whole; hover shows it)."""

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        mode: Qt.TextElideMode = Qt.ElideRight,
    ) -> None:
        super().__init__(parent)
        self.mode = mode  # Qt.ElideMiddle for a path: its start and its file name stay
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setTextInteractionFlags(Qt.NoTextInteraction)
        self.setText(text)

    def setText(self, text: str | None) -> None:  # noqa: N802 - Qt's name
        """Show ``text`` (one line; line breaks become spaces), whole in the tooltip."""
        whole = text or ""
        super().setText(whole)
        self.setToolTip(whole)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """As narrow as :data:`MIN_TEXT_WIDTH_PX`: the text is cut, the window never widened."""
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), MIN_TEXT_WIDTH_PX), self._one_line_height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Return one line's height whatever the text (it is painted as one line)."""
        return QSize(super().sizeHint().width(), self._one_line_height())

    def _one_line_height(self) -> int:
        margins = self.contentsMargins()
        return self.fontMetrics().height() + margins.top() + margins.bottom() + 2 * self.margin()

    def elided(self) -> str:
        """Return the text as painted at the current width."""
        one_line = " ".join(self.text().split("\n"))
        return self.fontMetrics().elidedText(one_line, self.mode, self.contentsRect().width())

    def is_cut(self) -> bool:
        """Whether the painted text is shorter than the whole text."""
        return self.elided() != " ".join(self.text().split("\n"))

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt's name
        """Paint the elided line (the style sheet's colours, the label's alignment)."""
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        align = int(self.alignment()) or int(Qt.AlignLeft | Qt.AlignVCenter)
        painter.drawText(self.contentsRect(), align, self.elided())
        painter.end()


def shrinkable(label: QLabel) -> QLabel:
    """Let a wrapped ``label`` be narrower than its longest word (tooltip: the text); return it."""
    label.setWordWrap(True)
    label.setMinimumWidth(1)
    return label


def narrow_choice(choice: QComboBox) -> QComboBox:
    """Let ``choice`` be narrower than its longest item, its opened list still whole; return it."""
    choice.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    choice.setMinimumContentsLength(CHOICE_CHARACTERS)
    view = choice.view()
    if view is not None:
        view.installEventFilter(_WholeItems(choice))
    return choice


class _WholeItems(QObject):
    """Widen a drop-down's list to its longest item when it opens (at most the screen's width)."""

    def __init__(self, choice: QComboBox) -> None:
        super().__init__(choice)
        self._choice = choice

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Before the list shows: as wide as its longest item (never takes the event)."""
        if event is None or event.type() != QEvent.Show:
            return False
        view = self._choice.view()
        if view is not None:
            metrics = view.fontMetrics()
            texts = (self._choice.itemText(i) for i in range(self._choice.count()))
            widest = max((metrics.horizontalAdvance(text) for text in texts), default=0)
            screen = self._choice.screen() or QApplication.primaryScreen()
            most = screen.availableGeometry().width() if screen is not None else widest
            wanted = min(widest + POPUP_PADDING_PX, most)
            popup = view.window()
            if popup is not None and popup.width() < wanted:
                popup.setMinimumWidth(wanted)
        return False


def compact_rows(table: QTableWidget) -> QTableWidget:
    """Make ``table``'s rows one line of text tall (a readable padding); returns the table."""
    header = table.verticalHeader()
    if header is not None:
        header.setSectionResizeMode(QHeaderView.Fixed)
        header.setDefaultSectionSize(table.fontMetrics().height() + ROW_PADDING_PX)
    return table
