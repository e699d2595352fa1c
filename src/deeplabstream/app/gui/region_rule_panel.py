"""The selected region's rule in the Regions tab: its camera, its keypoint and its action.

A region is a trigger (``[Trigger NAME]``, ``KIND = region``); this panel makes it a rule without
editing the file by hand: which camera's pixels it is drawn in (a choice only on a rig of several
cameras), which of the model's keypoints it watches, and optionally what it does: a pulse or a
train (a ``pattern``) on a device the rig declares, on entry, while inside or on exit, with a
refractory period (``[Rule NAME] REFRACTORY``) and the time a keypoint not seen keeps the
region's state (``[Trigger NAME] HOLD_S``, so that a blink of the model is no new entry). The
region editor writes it into the config (:class:`experiments.config_edit.RegionAction`) when it
saves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from deeplabstream.experiments.config_edit import EDGE_WORDS, NO_ACTION, RegionAction
from deeplabstream.experiments.observation import DEFAULT_HOLD_S

ACTION_CHOICES = (("No action", NO_ACTION), ("Pulse", "pulse"), ("Train", "pattern"))
DEFAULT_PULSE_MS = 100.0
DEFAULT_TRAIN = (10.0, 40.0, 10)  # on ms, off ms, count: 20 Hz for half a second
NOT_IN_MODEL = "(not in the model)"
NOT_DECLARED = "(not declared)"


class EditedRegion(Protocol):
    """What the panel reads and changes of a region (the editor's :class:`Region`)."""

    name: str
    camera: str | None
    keypoint: str | None
    action: RegionAction | None
    action_changed: bool


@dataclass(frozen=True)
class RigChoices:
    """What a region may choose from: the rig's cameras, the model's keypoints, its devices."""

    cameras: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


class RegionRulePanel(QWidget):
    """Camera, keypoint and action of one region; edits go straight into that region."""

    changed = pyqtSignal(str)
    """The region's keypoint or action changed: what, in words."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("region_rule")
        self.region: EditedRegion | None = None
        self.choices = RigChoices()
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)
        self.camera_box = self._combo("region_camera", "Camera:")
        self.keypoint_box = self._combo("region_keypoint", "Keypoint:")
        self.keypoint_box.setToolTip(
            "The keypoint of the pose model whose position the region tests"
        )
        self.keypoint_box.activated.connect(self._keypoint_chosen)
        self.action_box = self._combo("region_action", "Action:")
        for label, command in ACTION_CHOICES:
            self.action_box.addItem(label, command)
        self.device_box = self._combo("region_device", "Device:")
        self.channel_box = self._whole("region_channel", "Channel:", 0, 255)
        self.duration_box = self._number("region_duration", "Pulse:", (0.1, 6e5))
        self.on_box = self._number("region_train_on", "Train on:", (0.1, 6e5))
        self.off_box = self._number("region_train_off", "Train off:", (0.1, 6e5))
        self.count_box = self._whole("region_train_count", "Pulses:", 1, 100_000)
        for box in (self.duration_box, self.on_box, self.off_box):
            box.setSuffix(" ms")
            box.setDecimals(1)
        self.edge_box = self._combo("region_edge", "When:")
        for edge, words in EDGE_WORDS.items():
            self.edge_box.addItem(words, edge)
        self.refractory_box = self._number("region_refractory", "Refractory:", (0.0, 3600.0))
        self.refractory_box.setDecimals(3)
        self.refractory_box.setSuffix(" s")
        self.refractory_box.setSpecialValueText("none")
        self.refractory_box.setToolTip("After it fires, the rule rests this long (frame time)")
        self.hold_box = self._number("region_hold", "Hold through loss:", (0.0, 60.0))
        self.hold_box.setDecimals(3)
        self.hold_box.setSingleStep(0.1)
        self.hold_box.setSuffix(" s")
        self.hold_box.setToolTip(
            "While the keypoint is not seen (likelihood below the threshold), the region keeps "
            f"its state this long before it decides (HOLD_S; default {DEFAULT_HOLD_S:g} s): a "
            "blink of the model is then no new entry. 0: every frame decides alone."
        )
        for combo in (self.action_box, self.device_box, self.edge_box):
            combo.activated.connect(self._action_edited)
        for spin in (self.channel_box, self.duration_box, self.on_box, self.off_box):
            spin.valueChanged.connect(self._action_edited)
        self.count_box.valueChanged.connect(self._action_edited)
        self.refractory_box.valueChanged.connect(self._action_edited)
        self.hold_box.valueChanged.connect(self._action_edited)
        self.show_region(None, RigChoices(), editable=False)

    # ---------------------------------------------------------------------------- building

    def _combo(self, name: str, label: str) -> QComboBox:
        box = QComboBox()
        box.setObjectName(name)
        self._form.addRow(QLabel(label), box)
        return box

    def _whole(self, name: str, label: str, lowest: int, highest: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lowest, highest)
        self._add_spin(box, name, label)
        return box

    def _number(self, name: str, label: str, limits: tuple[float, float]) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(*limits)
        self._add_spin(box, name, label)
        return box

    def _add_spin(self, box: QSpinBox | QDoubleSpinBox, name: str, label: str) -> None:
        box.setObjectName(name)
        box.setKeyboardTracking(False)  # a value counts when typed out, not at every digit
        self._form.addRow(QLabel(label), box)

    def _row_visible(self, field: QWidget, visible: bool) -> None:
        label = self._form.labelForField(field)
        if label is not None:
            label.setVisible(visible)
        field.setVisible(visible)

    # ---------------------------------------------------------------------------- showing

    def show_region(self, region: EditedRegion | None, choices: RigChoices, editable: bool) -> None:
        """Show ``region``'s camera, keypoint and action (None: nothing selected)."""
        self.region, self.choices = region, choices
        widgets = [self.camera_box, self.keypoint_box, self.action_box, self.device_box]
        widgets += [self.channel_box, self.duration_box, self.on_box, self.off_box]
        widgets += [self.count_box, self.edge_box, self.refractory_box, self.hold_box]
        for widget in widgets:
            widget.blockSignals(True)
            widget.setEnabled(editable and region is not None)
        self._show_camera(region, choices.cameras)
        self._fill(self.keypoint_box, choices.keypoints, region.keypoint if region else None)
        action = region.action if region is not None else None
        command = action.command if action is not None else NO_ACTION
        self.action_box.setCurrentIndex(max(0, self.action_box.findData(command)))
        self._show_action(action)
        for widget in widgets:
            widget.blockSignals(False)

    def _show_camera(self, region: EditedRegion | None, cameras: tuple[str, ...]) -> None:
        """List the cameras; a rig of one camera shows no choice (unless the region's is gone)."""
        box = self.camera_box
        box.clear()
        box.addItem("(any camera)", None)
        for name in cameras:
            box.addItem(name, name)
        camera = region.camera if region is not None else None
        if camera is not None and camera not in cameras:
            box.addItem(f"{camera} (not open)", camera)
        box.setCurrentIndex(max(0, box.findData(camera)))
        stray = camera is not None and camera not in cameras and bool(cameras)
        self._row_visible(box, len(cameras) > 1 or stray)

    def _fill(self, box: QComboBox, names: tuple[str, ...], current: str | None) -> None:
        box.clear()
        for name in names:
            box.addItem(name, name)
        if current and current not in names:
            suffix = NOT_IN_MODEL if box is self.keypoint_box else NOT_DECLARED
            box.addItem(f"{current} {suffix}", current)
        box.setCurrentIndex(max(0, box.findData(current)) if current else 0)

    def _show_action(self, action: RegionAction | None) -> None:
        on = action is not None and action.command != NO_ACTION
        pulse = on and action is not None and action.command == "pulse"
        device = action.device if on and action is not None else None
        self._fill(self.device_box, self.choices.devices, device)
        shown = action if action is not None and on else RegionAction("")  # the defaults
        self.channel_box.setValue(shown.channel)
        self.duration_box.setValue(_ms(shown.duration_s, DEFAULT_PULSE_MS))
        self.on_box.setValue(_ms(shown.on_s, DEFAULT_TRAIN[0]))
        self.off_box.setValue(_ms(shown.off_s, DEFAULT_TRAIN[1]))
        self.count_box.setValue(shown.count or DEFAULT_TRAIN[2])
        self.edge_box.setCurrentIndex(max(0, self.edge_box.findData(shown.edge)))
        self.refractory_box.setValue(shown.refractory_s)
        self.hold_box.setValue(shown.hold_s)
        rule_rows = (self.device_box, self.channel_box, self.edge_box, self.refractory_box)
        for field in (*rule_rows, self.hold_box):
            self._row_visible(field, on)
        self._row_visible(self.duration_box, pulse)
        for field in (self.on_box, self.off_box, self.count_box):
            self._row_visible(field, on and not pulse)

    # ---------------------------------------------------------------------------- editing

    def action_from_widgets(self) -> RegionAction:
        """Return the action the widgets show (the region's rule and stimulation names kept)."""
        region = self.region
        old = region.action if region is not None else None
        command = self.action_box.currentData()
        if command == NO_ACTION:
            return RegionAction.removed(old)
        pulse = command == "pulse"
        action = RegionAction(
            device=self.device_box.currentData() or "",
            command=command,
            channel=self.channel_box.value(),
            duration_s=self.duration_box.value() / 1000 if pulse else None,
            on_s=None if pulse else self.on_box.value() / 1000,
            off_s=None if pulse else self.off_box.value() / 1000,
            count=None if pulse else self.count_box.value(),
            edge=self.edge_box.currentData() or "rising",
            refractory_s=self.refractory_box.value(),
            hold_s=self.hold_box.value(),
        )
        if old is not None:
            action = replace(action, rule=old.rule, stimulation=old.stimulation)
        return action

    def _action_edited(self) -> None:
        region = self.region
        if region is None:
            return
        shown = region.action is not None and region.action.command != NO_ACTION
        action = self.action_from_widgets()
        region.action, region.action_changed = action, True
        if (action.command != NO_ACTION) != shown:
            self.show_region(region, self.choices, editable=True)  # the rows of the command
        self.changed.emit(f"{region.name}: {action.describe()}")

    def _keypoint_chosen(self, index: int) -> None:
        region = self.region
        keypoint = self.keypoint_box.itemData(index)
        if region is None or not keypoint or keypoint == region.keypoint:
            return
        region.keypoint = keypoint
        self.changed.emit(f"{region.name} now watches keypoint {keypoint}")


def _ms(seconds: float | None, default: float) -> float:
    return default if seconds is None else seconds * 1000
