"""The window's message area: errors, losses and news in one place that never moves the controls.

Banners used to be inserted above the tabs and the live view, pushing them down 45-60 px
whenever a message came or went, so a click meant for a table cell landed in the next one. The
:class:`MessageArea` has a fixed height, reserved whether or not there is anything to say; its
messages scroll inside it when there are more than fit, and each keeps its whole text (select
it, or hover it for a tooltip).

Colours say what a message is: red for an error (stays until its cause is fixed or it is
dismissed), orange for lost frames and the loop's health (stays until acknowledged), and a
neutral grey-blue for information and success (``Settings saved``, the stream ended, why a click
could not be honoured), which goes by itself after :data:`INFO_SHOWN_S` unless it must stay.
"""

from __future__ import annotations

from collections.abc import Iterable

from PyQt5.QtCore import QEvent, QObject, QTimer
from PyQt5.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from deeplabstream.app.gui.banner import Banner

AREA_HEIGHT_PX = 64  # the least height: two lines of one banner (the font may ask for more)
BANNER_MARGIN_PX = 2  # above and below a banner's text in the area
INFO_SHOWN_S = 15.0
INFO_STYLE = "background: #e3ecf5; color: #1c2833; padding: 2px;"
ADVICE_STYLE = "background: #fff3e0; color: #3e2723; padding: 2px;"

#: What to do when pose estimation skips more than its share of the frames.
SKIPPING_ADVICE = (
    "What to do about skipped frames: pose estimation cannot keep up with the camera. Use a "
    "lighter model, turn on dynamic cropping ([Pose] DYNAMIC_CROP = on: the network sees only "
    "the animal's surroundings), run the model on a GPU ([Pose] DEVICE = cuda), or lower the "
    "camera's frame rate (its FRAMERATE). Recording keeps every frame whatever analysis skips."
)


class InfoBanner(Banner):
    """A neutral bar for information and success; it goes after a while unless told to stay.

    News that comes while a message that stays is shown is added under it (the stream ended,
    then what its session holds), so neither hides the other.
    """

    def __init__(self, name: str = "info_banner", style: str = INFO_STYLE) -> None:
        super().__init__(name, style, "Dismiss", f"dismiss_{name}", self.clear)
        self.label.setObjectName(f"{name}_text")
        self._staying = ""  # the text that stays until dismissed, if any
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._expire)

    def show_text(self, text: str, stay: bool = False) -> None:
        """Show ``text``; it goes after :data:`INFO_SHOWN_S` unless ``stay``."""
        if stay:
            self._staying = text
            self._timer.stop()
        elif not self._staying:
            self._timer.start(round(INFO_SHOWN_S * 1000))
        shown = text if stay or not self._staying else f"{self._staying}\n{text}"
        self.label.setText(shown)
        self.setToolTip(shown)
        self.show()

    def clear(self) -> None:
        """Hide the bar (the Dismiss button)."""
        self._timer.stop()
        self._staying = ""
        self.label.setText("")
        self.hide()

    def _expire(self) -> None:
        if not self._staying:
            self.clear()


class MessageArea(QScrollArea):
    """A fixed-height area holding the window's banners, one under the other.

    Parameters
    ----------
    banners
        The banners it holds, most important first (errors, losses...). Each shows and hides
        itself; the area's height never changes.
    """

    def __init__(self, banners: Iterable[QWidget]) -> None:
        super().__init__()
        self.setObjectName("message_area")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        holder = QWidget()
        self._layout = QVBoxLayout(holder)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        # Said while there is nothing else, so the empty area reads as a place, not a gap.
        self.placeholder = QLabel("Errors, lost frames and news appear here.")
        self.placeholder.setObjectName("message_placeholder")
        self.placeholder.setStyleSheet("color: #8a8a8a; padding: 4px 6px;")
        self._layout.addWidget(self.placeholder)
        self._layout.addStretch(1)  # banners stay at the top
        self._banners: list[QWidget] = []
        for banner in banners:
            self.add(banner)
        self.setWidget(holder)
        self.setFixedHeight(self._fixed_height())

    def _fixed_height(self) -> int:
        """Return a height that shows one banner whole and the next one's buttons.

        Each banner shows at most :data:`app.gui.banner.BANNER_LINES` lines, so the height is
        known from the font: it never changes afterwards (messages never move the controls).
        """
        tallest, button = AREA_HEIGHT_PX // 2, 0
        for banner in self._banners:
            if isinstance(banner, Banner):
                text = banner.label.maximumHeight()
                button = max(button, banner.button.sizeHint().height())
                tallest = max(tallest, max(text, button) + 2 * BANNER_MARGIN_PX)
        # One banner whole, and the next one's first line with its buttons (top-aligned).
        second = button + BANNER_MARGIN_PX
        height = tallest + self._layout.spacing() + second + 2 * self.frameWidth()
        return max(AREA_HEIGHT_PX, height)

    def add(self, banner: QWidget) -> None:
        """Hold ``banner`` too, under the others."""
        layout = banner.layout()
        if isinstance(banner, Banner) and layout is not None:
            # compact: two banners fit the area
            layout.setContentsMargins(6, BANNER_MARGIN_PX, 6, BANNER_MARGIN_PX)
        self._layout.insertWidget(self._layout.count() - 1, banner)
        self._banners.append(banner)
        banner.installEventFilter(self)
        self._show_placeholder()

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Follow the banners' showing and hiding (never takes the event)."""
        if event is not None and event.type() in (QEvent.Show, QEvent.Hide):
            self._show_placeholder()
        return False

    def _show_placeholder(self) -> None:
        self.placeholder.setVisible(all(banner.isHidden() for banner in self._banners))

    def showing(self) -> list[str]:
        """Return the texts shown now, top to bottom (for tests and the log)."""
        texts = []
        for index in range(self._layout.count()):
            item = self._layout.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, Banner) and not widget.isHidden():
                texts.append(widget.full_text())
        return texts
