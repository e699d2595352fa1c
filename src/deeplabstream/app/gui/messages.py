"""The window's message area: errors, losses and news in one place that never moves the controls.

Design: docs/gui.md, "Messages and errors".
"""

from __future__ import annotations

from collections.abc import Iterable

from PyQt5.QtCore import QEvent, QObject, Qt, QTimer
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from deeplabstream.app.gui.banner import Banner, BarColours
from deeplabstream.app.gui.session import SETTINGS_CAUSE, Part
from deeplabstream.app.gui.status_panel import ErrorBanner

ROWS = 2  # the area is two rows tall: one message of two lines, or two of one line each
BANNER_MARGIN_PX = 2  # above and below a banner's text in the area
BANNER_SPACING_PX = 2  # between two banners
FIT_EVENTS = (QEvent.ShowToParent, QEvent.HideToParent, QEvent.LayoutRequest)
INFO_SHOWN_S = 15.0
INFO_COLOURS = BarColours("#e3ecf5", "#1c2833")
#: What went wrong without being an error: a session's warnings, losses after a user's stop.
WARNING_COLOURS = BarColours("#fff3e0", "#3e2723")
EMPTY_TEXT = "Messages appear here: errors, lost frames, warnings and news."
PART_CAUSES = frozenset(part.value for part in Part)


class InfoBanner(Banner):
    """A neutral bar for information and success; it goes after a while unless told to stay.

    Messages that stay are kept one under the other; news meanwhile shows above them.
    """

    def __init__(self, name: str = "info_banner", colours: BarColours = INFO_COLOURS) -> None:
        super().__init__(name, colours, "Dismiss", f"dismiss_{name}", self.clear)
        self.label.setObjectName(f"{name}_text")
        self._staying: list[str] = []  # the texts that stay until dismissed, in order
        self._news = ""  # shown above them until its time is up
        self._normal = colours
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._expire)

    def show_text(
        self,
        text: str,
        stay: bool = False,
        warning: bool = False,
        add: bool = False,
        first: bool = False,
    ) -> None:
        """Show ``text``; it goes after :data:`INFO_SHOWN_S` unless ``stay``.

        A text that stays replaces those that stay, or goes under (``add``) or above (``first``).
        """
        if warning:
            self.use_colours(WARNING_COLOURS)
        if not stay:
            self._news = text
            self._timer.start(round(INFO_SHOWN_S * 1000))
        elif not (add or first):
            self._staying = [text]
        elif text not in self._staying:
            self._staying.insert(0 if first else len(self._staying), text)
        self._refresh()

    def clear(self) -> None:
        """Hide the bar (the Dismiss button)."""
        self._timer.stop()
        self._staying = []
        self._news = ""
        self.label.setText("")
        self.use_colours(self._normal)
        self.hide()

    @property
    def staying(self) -> str:
        """The messages shown until dismissed ("" when none)."""
        return "\n".join(self._staying)

    def drop_staying(self, prefix: str) -> None:
        """Take away the staying messages that start with ``prefix`` (an earlier verdict)."""
        self._staying = [text for text in self._staying if not text.startswith(prefix)]
        self._refresh()

    def withdraw(self, text: str) -> None:
        """Take back ``text`` shown without staying (it no longer holds); the rest stays."""
        if self._news == text:
            self._expire()

    def _expire(self) -> None:
        """Let the news go; the messages that stay are shown alone again."""
        self._timer.stop()
        self._news = ""
        self._refresh()

    def _refresh(self) -> None:
        shown = "\n".join(part for part in (self._news, self.staying) if part)
        if not shown:
            self.clear()
            return
        self.label.setText(shown)
        self.setToolTip(shown)
        self.show()


class MessageArea(QScrollArea):
    """The area holding the window's banners, one under the other; always :data:`ROWS` rows tall.

    ``banners`` most important first; each shows and hides itself.
    """

    def __init__(self, banners: Iterable[Banner]) -> None:
        super().__init__()
        self.setObjectName("message_area")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # text wraps, never sideways
        holder = QWidget()
        self._layout = QVBoxLayout(holder)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(BANNER_SPACING_PX)
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setObjectName("no_messages")
        self.empty.setStyleSheet("color: #8a8a8a;")
        self.empty.setMinimumWidth(1)  # never widens the window
        self._layout.addWidget(self.empty)
        self._layout.addStretch(1)  # banners stay at the top
        self._banners: list[Banner] = []
        self._refit = QTimer(self)  # once per turn of the event loop, however many changes
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self.fit)
        for banner in banners:
            self.add(banner)
        self.setWidget(holder)
        self.setFixedHeight(self.rows_height())

    def add(self, banner: Banner) -> None:
        """Hold ``banner`` too, under the others."""
        layout = banner.layout()
        if layout is not None:
            layout.setContentsMargins(6, BANNER_MARGIN_PX, 6, BANNER_MARGIN_PX)
        banner.label.installEventFilter(self)  # its text's width and height
        self._layout.insertWidget(self._layout.count() - 1, banner)
        self._banners.append(banner)
        banner.installEventFilter(self)
        self._refit.start()

    def rows_height(self) -> int:
        """Return the area's height: :data:`ROWS` one-line banners, or one of ROWS lines."""
        row = max(self._banner_height(banner, 1) for banner in self._banners)
        lines = max(self._banner_height(banner, ROWS) for banner in self._banners)
        return max(ROWS * row + (ROWS - 1) * BANNER_SPACING_PX, lines) + 2 * self.frameWidth()

    @staticmethod
    def _banner_height(banner: Banner, lines: int) -> int:
        """Return the height of ``banner`` showing ``lines`` lines (its buttons, its margins)."""
        banner.ensurePolished()
        buttons = max(banner.button.sizeHint().height(), banner.show_all.sizeHint().height())
        return max(banner.label.lines_height(lines), buttons) + 2 * BANNER_MARGIN_PX

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Fit again when a banner shows, hides, or its text changes (never takes the event)."""
        if event is not None and event.type() in FIT_EVENTS:
            self._refit.start()
        return False

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 - Qt's name
        """Fit again: a new width wraps the texts differently."""
        super().resizeEvent(event)
        self._refit.start()

    def shown_banners(self) -> list[Banner]:
        """Return the banners shown now, top to bottom."""
        return [banner for banner in self._banners if not banner.isHidden()]

    def fit(self) -> None:
        """Give each shown banner its lines: two when it is alone, one each otherwise."""
        shown = self.shown_banners()
        self.empty.setVisible(not shown)
        viewport = self.viewport()
        width = viewport.width() if viewport is not None else self.width()
        lines = ROWS if len(shown) == 1 else 1
        for banner in shown:
            label = banner.label
            whole = _label_width(banner, width, show_all=False)
            if label.needed_height(whole) > label.lines_height(lines):
                whole = _label_width(banner, width, show_all=True)  # Show all takes its room
            label.limit_to_lines(lines, whole)
            banner.refresh_show_all()

    def showing(self) -> list[str]:
        """Return the texts shown now, top to bottom (for tests and the log)."""
        return [banner.full_text() for banner in self.shown_banners()]


def _label_width(banner: Banner, area_width: int, show_all: bool) -> int:
    """Return the width ``banner``'s text has in an area ``area_width`` wide (its own is stale)."""
    layout = banner.layout()
    if layout is None:
        return banner.label.width()
    margins = layout.contentsMargins()
    used = margins.left() + margins.right()
    buttons = [banner.button, banner.show_all] if show_all else [banner.button]
    for button in buttons:
        used += button.sizeHint().width() + layout.spacing()
    return max(1, area_width - used)


class WindowMessages:
    """What the window says in its message area, in which colour, and until when.

    Errors stay until what fixes them (``cause``) happens; news goes by itself.
    """

    def __init__(self, banner: ErrorBanner, info: InfoBanner) -> None:
        self.banner = banner
        self.info = info
        self.error_cause = ""  # what fixes the error shown (a part, or the settings)
        # The greyed button whose refusal is shown: its tooltip (the reason) then, the text.
        self._refusal: tuple[QPushButton, str, str] | None = None

    def error(self, text: str, cause: str = "") -> None:
        """Show an error in red; ``cause`` says what fixes it (the banner then goes by itself)."""
        self.error_cause = cause
        self.banner.show_error(text)
        self.banner.setToolTip(text)

    def resolve(self, cause: str) -> None:
        """``cause`` is fixed (a part started well): its error, and a settings error, go."""
        if cause == Part.STREAM.value:
            self.info.clear()  # "the stream stopped by itself" was about the previous stream
        if self.banner.isHidden():
            return
        fixes_settings = cause in PART_CAUSES and self.error_cause == SETTINGS_CAUSE
        if self.error_cause == cause or fixes_settings:
            self.banner.clear()

    def notice(self, text: str, stay: bool = False) -> None:
        """Show information (neutral colours); what stays goes under what stays already."""
        self.info.show_text(text, stay, add=stay)

    def summary(self, summary: str, warning: bool = False) -> None:
        """Show a session's summary above what stays, until dismissed or the next start.

        ``warning``: a user's stop with losses, in the warning colour (never the error red).
        """
        self.info.show_text(summary, stay=True, warning=warning, first=True)

    def warning(self, text: str) -> None:
        """Show a session's warning (warning colour, under the earlier ones) until dismissed."""
        self.info.show_text(text, stay=True, warning=True, add=True)

    def stream_ended(self, reason: str) -> None:
        """Say why the stream stopped by itself, until dismissed (its summary follows)."""
        hint = ""
        if "every camera has ended" in reason:
            hint = (
                " A video file ends the stream at its last frame; LOOP = true in its camera's "
                "keys (Rig tab) plays it again from the start."
            )
        self.notice(f"The stream stopped by itself: {reason}.{hint}", stay=True)

    def explain_refusal(self, button: QPushButton) -> None:
        """Say why the greyed ``button`` clicked cannot be pressed now, until it no longer holds."""
        reason = button.toolTip() or "it cannot be pressed now"
        text = f"{button.text()}: {reason}"
        self._refusal = (button, button.toolTip(), text)
        self.notice(text)

    def withdraw_stale_refusal(self) -> None:
        """Take back the explanation of a greyed button once its reason has changed."""
        if self._refusal is None:
            return
        button, reason, text = self._refusal
        if button.isEnabled() or button.toolTip() != reason:
            self._refusal = None
            self.info.withdraw(text)
