"""The selected region's rule in the Regions tab: its camera, keypoint, animal, action and rules.

Design: docs/gui.md, "The Regions tab: drawing regions on the live view".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QWidget,
)

from deeplabstream.app.gui.fitting import narrow_choice
from deeplabstream.experiments.config.edit import (
    EDGE_WORDS,
    FIRST_ANIMAL,
    NO_ACTION,
    RegionAction,
    animal_words,
)
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
    animal: str | None


@dataclass(frozen=True)
class RigChoices:
    """What a region may choose from: the rig's cameras, devices, the model's keypoints, animals.

    ``rules``: the config's rules that name the region (name, in words).
    """

    cameras: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    animals: int = 1
    rules: tuple[tuple[str, str], ...] = ()


def animal_options(animals: int, current: str | None) -> list[tuple[str, str]]:
    """Return the animal choices (words, ``ANIMAL`` value) for a model of ``animals`` animals.

    A value the region has that the model does not report stays listed.
    """
    options = [(f"animal {number}", str(number)) for number in range(1, animals + 1)]
    options += [("any animal", "any"), ("each animal (a rule per animal)", "each")]
    value = (current or FIRST_ANIMAL).strip().lower()
    if value not in {v for _, v in options}:
        options.append((f"{animal_words(value)} (not in the model)", value))
    return options


class RegionRulePanel(QWidget):
    """Camera, keypoint, animal and action of one region, and the rules that name it."""

    changed = pyqtSignal(str)
    """The region's keypoint, animal or action changed: what, in words."""
    rule_deleted = pyqtSignal(str)
    """Delete rule was clicked: the name of the rule (the editor deletes it; Save writes it)."""

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
        self.animal_box = self._combo("region_animal", "Animal:")
        self.animal_box.setToolTip(
            "Whose keypoint the region tests (ANIMAL): one animal by its number; any animal (the "
            "region is true while some animal is in it); or each animal (a state of its own for "
            "each, and its rule fires on each animal's own entry and exit)"
        )
        self.animal_box.activated.connect(self._animal_chosen)
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
        self._add_rule_row()
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
        box = narrow_choice(QComboBox())  # a long keypoint or device name never widens the tab
        box.setObjectName(name)
        self._form.addRow(QLabel(label), box)
        return box

    def _add_rule_row(self) -> None:
        """Add the row of the rules that name the region, with a button to delete the one chosen."""
        # A rule in words is long ("left_entry: when nose_in_left rises, ..."): it made the
        # Regions tab 500 px wide and moved the window's tabs sideways.
        self.rule_box = narrow_choice(QComboBox())
        self.rule_box.setObjectName("region_rules")
        self.rule_box.setToolTip("The config's rules that name this region (WHEN)")
        self.delete_rule_button = QToolButton()
        self.delete_rule_button.setObjectName("region_rule_delete")
        self.delete_rule_button.setText("Delete rule")
        self.delete_rule_button.setToolTip(
            "Delete the rule chosen (with its stimulations no other rule does); Save writes it. "
            "A region is deleted only once no rule names it."
        )
        self.delete_rule_button.clicked.connect(self._delete_rule_clicked)
        self._rule_row = QWidget()
        row = QHBoxLayout(self._rule_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.rule_box, 1)
        row.addWidget(self.delete_rule_button)
        self._form.addRow(QLabel("Rules:"), self._rule_row)

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
        widgets += [self.animal_box, self.rule_box, self.delete_rule_button]
        for widget in widgets:
            widget.blockSignals(True)
            widget.setEnabled(editable and region is not None)
        self._show_camera(region, choices.cameras)
        self._fill(self.keypoint_box, choices.keypoints, region.keypoint if region else None)
        self._show_animal(region, choices.animals)
        self._show_rules(choices.rules if region is not None else ())
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

    def _show_animal(self, region: EditedRegion | None, animals: int) -> None:
        """List the animals; a model of one animal shows no choice (unless the region has one)."""
        box = self.animal_box
        box.clear()
        current = region.animal if region is not None else None
        for words, value in animal_options(animals, current):
            box.addItem(words, value)
        box.setCurrentIndex(max(0, box.findData((current or FIRST_ANIMAL).strip().lower())))
        chosen = (current or FIRST_ANIMAL).strip().lower() != FIRST_ANIMAL
        self._row_visible(box, region is not None and (animals > 1 or chosen))

    def _show_rules(self, rules: tuple[tuple[str, str], ...]) -> None:
        self.rule_box.clear()
        for name, words in rules:
            self.rule_box.addItem(words, name)
            self.rule_box.setItemData(self.rule_box.count() - 1, words, Qt.ToolTipRole)
        self._row_visible(self._rule_row, bool(rules))

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

    def _animal_chosen(self, index: int) -> None:
        region = self.region
        animal = self.animal_box.itemData(index)
        if region is None or not animal:
            return
        if animal == (region.animal or FIRST_ANIMAL).strip().lower():
            return
        region.animal = animal
        self.changed.emit(f"{region.name} now watches {animal_words(animal)}")

    def _delete_rule_clicked(self) -> None:
        rule = self.rule_box.currentData()
        if self.region is not None and rule:
            self.rule_deleted.emit(rule)

    def _keypoint_chosen(self, index: int) -> None:
        region = self.region
        keypoint = self.keypoint_box.itemData(index)
        if region is None or not keypoint or keypoint == region.keypoint:
            return
        region.keypoint = keypoint
        self.changed.emit(f"{region.name} now watches keypoint {keypoint}")


def _ms(seconds: float | None, default: float) -> float:
    return default if seconds is None else seconds * 1000
