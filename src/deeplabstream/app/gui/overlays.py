"""What the live view draws besides poses and triggers: the trail and the occupancy heatmap."""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QCheckBox, QHBoxLayout, QWidget

from deeplabstream.app.display.occupancy import DEFAULT_BIN_PX, DEFAULT_TRAIL_S
from deeplabstream.app.gui.button_row import named_button


@dataclass
class OverlayOptions:
    """Which extra overlays the live view draws; both are kept whether shown or not."""

    show_trail: bool = False
    show_heatmap: bool = False
    trail_keypoint: str | None = None  # None: body_center, center or body, else the first
    trail_s: float = DEFAULT_TRAIL_S
    heatmap_alpha: float = 0.4
    bin_px: int = DEFAULT_BIN_PX


class OverlayToggles(QWidget):
    """Check boxes for the trail and the heatmap, and a reset; ``options`` is changed in place."""

    changed = pyqtSignal()  # a box was ticked or cleared
    reset_requested = pyqtSignal()  # the user wants the trail and the heatmap to start again

    def __init__(self, options: OverlayOptions | None = None) -> None:
        super().__init__()
        self.setObjectName("overlay_toggles")
        self.options = options if options is not None else OverlayOptions()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.trail = self._box("show_trail", "Trail", self.options.show_trail)
        self.heatmap = self._box("show_heatmap", "Occupancy heatmap", self.options.show_heatmap)
        self.reset = named_button("Reset", "reset_overlays", self.reset_requested.emit)
        self.reset.setToolTip("Start the trail and the occupancy heatmap again from now")
        for widget in (self.trail, self.heatmap, self.reset):
            row.addWidget(widget)
        row.addStretch(1)

    def use(self, options: OverlayOptions) -> None:
        """Set ``options`` (a new live view's) from the boxes as they are now ticked."""
        options.show_trail = self.trail.isChecked()
        options.show_heatmap = self.heatmap.isChecked()
        self.options = options

    def _box(self, name: str, text: str, checked: bool) -> QCheckBox:
        box = QCheckBox(text)
        box.setObjectName(name)
        box.setChecked(checked)
        box.toggled.connect(self._toggled)
        return box

    def _toggled(self, _checked: bool) -> None:
        self.options.show_trail = self.trail.isChecked()
        self.options.show_heatmap = self.heatmap.isChecked()
        self.changed.emit()
