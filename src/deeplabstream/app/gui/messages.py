"""The window's message area: errors, losses and news in one place that never moves the controls.

Banners used to be inserted above the tabs and the live view, pushing them down 45-60 px
whenever a message came or went, so a click meant for a table cell landed in the next one; then
a fixed-height area above them, reserved whether or not there was anything to say, took 80 px
of a 1366x768 screen and cut the lines of long messages. The :class:`MessageArea` now sits
under the live view and the tabs (a message never moves them, nor anything at their top), is
hidden when there is nothing to say, and is as tall as its messages up to a share of the
window (each keeps its whole text: select it, hover it for a tooltip, or Show all).

Colours say what a message is: red for an error (stays until its cause is fixed or it is
dismissed), orange for lost frames and the loop's health (stays until acknowledged), and a
neutral grey-blue for information and success (``Settings saved``, the stream ended, why a click
could not be honoured), which goes by itself after :data:`INFO_SHOWN_S` unless it must stay.
"""

from __future__ import annotations

from collections.abc import Iterable

from PyQt5.QtCore import QEvent, QObject, Qt, QTimer
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from deeplabstream.app.gui.banner import Banner

AREA_SHARE = 0.4  # of the window's height the messages take at most (the tabs keep the rest)
LEAST_CAP_PX = 120  # the cap on a very small window: a few lines and the buttons
BANNER_MARGIN_PX = 2  # above and below a banner's text in the area
BANNER_SPACING_PX = 2  # between two banners
MAX_TRIMS = 40  # lines taken from the tallest texts at most, when the bars ask more than the cap
FIT_EVENTS = (QEvent.ShowToParent, QEvent.HideToParent, QEvent.LayoutRequest, QEvent.Resize)
INFO_SHOWN_S = 15.0
INFO_STYLE = "background: #e3ecf5; color: #1c2833; padding: 2px;"
ADVICE_STYLE = "background: #fff3e0; color: #3e2723; padding: 2px;"
WARNING_STYLE = ADVICE_STYLE  # what went wrong without being an error: losses after a user's stop

#: What to do when pose estimation skips more than its share of the frames.
SKIPPING_ADVICE = (
    "What to do about skipped frames: pose estimation cannot keep up with the camera. Use a "
    "lighter model, turn on dynamic cropping ([Pose] DYNAMIC_CROP = on: the network sees only "
    "the animal's surroundings), run the model on a GPU ([Pose] DEVICE = cuda), or lower the "
    "camera's frame rate (its FRAMERATE)."
)
RECORDING_KEEPS_ALL = "Recording keeps every frame whatever analysis skips."
RECORDER_LOST_TOO = (
    "Analysis skipping costs the recording nothing, but the recorder lost frames of its own "
    "(said above): those are missing from the video."
)


def skipping_advice(recording: bool, recorder_lost: bool) -> str:
    """Return the advice for skipped frames, with what it means for the recording now.

    "Recording keeps every frame" is said only while it holds: it stood under "the recorder
    lost 155 frames" (issue 53).
    """
    if recorder_lost:
        return f"{SKIPPING_ADVICE} {RECORDER_LOST_TOO}"
    return f"{SKIPPING_ADVICE} {RECORDING_KEEPS_ALL}" if recording else SKIPPING_ADVICE


class InfoBanner(Banner):
    """A neutral bar for information and success; it goes after a while unless told to stay.

    News that comes while a message that stays is shown is added under it (the stream ended,
    then what its session holds), so neither hides the other.
    """

    def __init__(self, name: str = "info_banner", style: str = INFO_STYLE) -> None:
        super().__init__(name, style, "Dismiss", f"dismiss_{name}", self.clear)
        self.label.setObjectName(f"{name}_text")
        self._staying = ""  # the text that stays until dismissed, if any
        self._style = style
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._expire)

    def show_text(
        self, text: str, stay: bool = False, warning: bool = False, add: bool = False
    ) -> None:
        """Show ``text``; it goes after :data:`INFO_SHOWN_S` unless ``stay``.

        In the warning colour when ``warning`` (until cleared). With ``add``, a text that stays
        is added under the one that stays already (a session's warnings, one after the other).
        """
        if warning:
            self.setStyleSheet(WARNING_STYLE)
        if stay and add and self._staying and text in self._staying.split("\n"):
            text = self._staying  # said already
        elif stay and add and self._staying:
            text = f"{self._staying}\n{text}"
        if stay:
            self._staying = text
            self._timer.stop()
        else:
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
        self.setStyleSheet(self._style)
        self.hide()

    @property
    def staying(self) -> str:
        """The message shown until dismissed ("" when none)."""
        return self._staying

    def withdraw(self, text: str) -> None:
        """Take back ``text`` shown without staying (it no longer holds); the rest stays."""
        if self._staying and self.label.text() == f"{self._staying}\n{text}":
            self._expire()
        elif not self._staying and self.label.text() == text:
            self.clear()

    def _expire(self) -> None:
        """Let the news shown without staying go; a message that stays is shown alone again.

        News added under a message that stays used to stay with it until it was dismissed
        ("Start Experiment: wait: starting recording" for a whole run, issue 53).
        """
        if not self._staying:
            self.clear()
        elif self.label.text() != self._staying:
            self.label.setText(self._staying)
            self.setToolTip(self._staying)


class MessageArea(QScrollArea):
    """The area holding the window's banners, one under the other; as tall as they need.

    Parameters
    ----------
    banners
        The banners it holds, most important first (errors, losses...). Each shows and hides
        itself; the area follows.

    With nothing to say the area is hidden: at 1366x768 an empty area used to reserve 80 px
    above the tabs, which then showed three rows of a table. With messages it is as tall as
    they are, up to :data:`AREA_SHARE` of the window's height: when they need more, each bar is
    given an equal share (a short one keeps all its lines, the rest go to the others) and shows
    the whole lines that fit, with Show all; so every bar's buttons stay in sight and no line
    is ever cut in half. The window puts the area under the live view and the tabs, so a
    message that comes or goes never moves them, nor anything at their top.
    """

    def __init__(self, banners: Iterable[QWidget]) -> None:
        super().__init__()
        self.setObjectName("message_area")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # text wraps, never sideways
        holder = QWidget()
        self._layout = QVBoxLayout(holder)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(BANNER_SPACING_PX)
        self._layout.addStretch(1)  # banners stay at the top
        self._banners: list[QWidget] = []
        self._refit = QTimer(self)  # once per turn of the event loop, however many changes
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self.fit)
        for banner in banners:
            self.add(banner)
        self.setWidget(holder)
        self.hide()

    def add(self, banner: QWidget) -> None:
        """Hold ``banner`` too, under the others."""
        layout = banner.layout()
        if isinstance(banner, Banner) and layout is not None:
            layout.setContentsMargins(6, BANNER_MARGIN_PX, 6, BANNER_MARGIN_PX)
            banner.label.installEventFilter(self)  # its text's width and height
        self._layout.insertWidget(self._layout.count() - 1, banner)
        self._banners.append(banner)
        banner.installEventFilter(self)
        self._refit.start()

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        """Fit again when a banner shows, hides, or its text changes (never takes the event)."""
        if event is None or event.type() not in FIT_EVENTS:
            return False
        if event.type() == QEvent.ShowToParent and self.isHidden():
            self.show()  # at once: a banner shown is visible now; its height follows
        self._refit.start()
        return False

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 - Qt's name
        """Fit again: a new width wraps the texts differently."""
        super().resizeEvent(event)
        self._refit.start()

    def shown_banners(self) -> list[Banner]:
        """Return the banners shown now, top to bottom."""
        return [b for b in self._banners if isinstance(b, Banner) and not b.isHidden()]

    def height_cap(self) -> int:
        """Return the most height the area takes: :data:`AREA_SHARE` of the window's.

        Never so much that the window must grow past its size: the others keep their least.
        """
        holder = self.parentWidget()
        layout = holder.layout() if holder is not None else None
        if holder is None or layout is None:
            return LEAST_CAP_PX
        own = self.height() if not self.isHidden() else 0
        others_least = layout.minimumSize().height() - own
        room = holder.height() - others_least - layout.spacing()
        return max(LEAST_CAP_PX, min(round(AREA_SHARE * holder.height()), room))

    def fit(self) -> None:
        """Take the height the shown banners need (hidden when none), sharing the cap."""
        shown = self.shown_banners()
        if not shown:
            self.hide()
            return
        viewport = self.viewport()
        width = viewport.width() if viewport is not None and self.isVisible() else self.width()
        cap = self.height_cap()
        chrome = [2 * BANNER_MARGIN_PX for _ in shown]
        spacing = self._layout.spacing() * (len(shown) - 1)
        widths = [_label_width(banner, width) for banner in shown]
        needs = [b.label.needed_height(w) for b, w in zip(shown, widths, strict=True)]
        budget = cap - spacing - sum(chrome)
        for banner, label_width, share in zip(
            shown, widths, share_heights(needs, budget), strict=True
        ):
            banner.label.limit_to(share, label_width)
            banner.refresh_show_all()
        total = self._banners_height(width)
        # The bars' own padding and buttons can ask more than the estimate: take a whole line
        # from the tallest text until they fit (a line is never cut at the area's bottom).
        for _ in range(MAX_TRIMS):
            if total <= cap:
                break
            shown_at = {b: b.label.shown_height(w) for b, w in zip(shown, widths, strict=True)}
            tallest = max(shown, key=shown_at.__getitem__)
            if not tallest.label.drop_a_line(shown_at[tallest]):
                break
            tallest.refresh_show_all()
            total = self._banners_height(width)
        holder = self.widget()
        if holder is not None:
            # Never squeezed: when even one line per bar asks more than the cap, the bars
            # scroll; a layout that shrank them cut their lines in half (issue 53).
            holder.setMinimumHeight(total)
        height = min(total + 2 * self.frameWidth(), cap)
        if height != self.height() or self.isHidden():
            self.setFixedHeight(height)
        self.show()

    def _banners_height(self, width: int) -> int:
        """Return the height the shown banners take at ``width``, as the layout places them."""
        holder = self.widget()
        layout = holder.layout() if holder is not None else None
        if layout is None:
            return 0
        layout.invalidate()
        return (
            layout.totalHeightForWidth(width)
            if layout.hasHeightForWidth()
            else (layout.totalSizeHint().height())
        )

    def showing(self) -> list[str]:
        """Return the texts shown now, top to bottom (for tests and the log)."""
        return [banner.full_text() for banner in self.shown_banners()]


def _label_width(banner: Banner, area_width: int) -> int:
    """Return the width ``banner``'s text has in an area ``area_width`` wide.

    The label's own width is stale while the bar was hidden: it is the area's less the bar's
    margins, spacing and visible buttons.
    """
    layout = banner.layout()
    if layout is None:
        return banner.label.width()
    margins = layout.contentsMargins()
    used = margins.left() + margins.right()
    for button in (banner.show_all, banner.button):
        if not button.isHidden():
            used += button.sizeHint().width() + layout.spacing()
    return max(1, area_width - used)


def share_heights(needs: list[int], budget: int) -> list[int]:
    """Share ``budget`` pixels among texts needing ``needs``.

    All they need when it fits; otherwise the shortest keep theirs, the others share the rest.
    """
    given = [0] * len(needs)
    left = max(0, budget)
    order = sorted(range(len(needs)), key=needs.__getitem__)
    for rank, index in enumerate(order):
        fair = left // (len(needs) - rank)
        given[index] = min(needs[index], fair)
        left -= given[index]
    return given
