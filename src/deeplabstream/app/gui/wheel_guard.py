"""The mouse wheel scrolls the page, never the drop-down or number field it passes over."""

from __future__ import annotations

from PyQt5.QtCore import QCoreApplication, QEvent, QObject, Qt
from PyQt5.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QScrollBar,
    QWidget,
)

GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


class WheelGuard(QObject):
    """An application event filter: value widgets take the wheel only when focused."""

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Give guarded widgets strong focus when polished; pass an unfocused one's wheel on."""
        if event is None or not _guarded(watched):
            return False
        assert isinstance(watched, QWidget)
        if event.type() == QEvent.Polish:
            # Before any wheel: with Qt.WheelFocus the wheel itself would give it the focus.
            watched.setFocusPolicy(Qt.StrongFocus)
        elif event.type() == QEvent.Wheel and not watched.hasFocus() and _in_scroll_area(watched):
            event.ignore()  # ignored and filtered: Qt hands the wheel to the parents
            return True
        return False


def install_wheel_guard(window: QWidget) -> WheelGuard | None:
    """Guard every value widget while ``window`` lives; :func:`remove_wheel_guard` when it goes.

    Remove it before the window is destroyed: a Python event filter called while Qt tears
    objects down crashed the process.
    """
    app = QCoreApplication.instance()
    if app is None:
        return None
    guard = WheelGuard(window)
    app.installEventFilter(guard)
    return guard


def remove_wheel_guard(guard: WheelGuard | None) -> None:
    """Stop filtering the application's events with ``guard`` (None: nothing to do)."""
    app = QCoreApplication.instance()
    if guard is not None and app is not None:
        app.removeEventFilter(guard)


def _guarded(widget: QObject | None) -> bool:
    return isinstance(widget, GUARDED) and not isinstance(widget, QScrollBar)


def _in_scroll_area(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False
