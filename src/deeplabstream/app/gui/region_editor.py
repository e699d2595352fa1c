"""The region editor: draw, move, resize and delete an experiment's regions on the live view.

Design: docs/gui.md, "The Regions tab: drawing regions on the live view".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PyQt5 import sip
from PyQt5.QtCore import QEvent, Qt, pyqtSignal
from PyQt5.QtGui import QKeyEvent, QPainter
from PyQt5.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.fitting import shrinkable
from deeplabstream.app.gui.live_view import CameraView
from deeplabstream.app.gui.region_drawing import RegionDrawing, rounded
from deeplabstream.app.gui.region_rule_panel import RegionRulePanel, RigChoices
from deeplabstream.experiments.config.edit import (
    FIRST_ANIMAL,
    ConfigEditError,
    ConfigText,
    RegionAction,
    RegionSpec,
    animal_words,
    save_regions,
)
from deeplabstream.experiments.config.parse import RULE_PREFIX
from deeplabstream.experiments.triggers.geometry import (
    Circle,
    Ellipse,
    Polygon,
    Rectangle,
    RegionShape,
)
from deeplabstream.live.processes.messages import ExperimentStatus

TOOLS = ("select", "circle", "rectangle", "polygon")
LIST_LEAST_ROWS = 3  # the region list never shrinks below this many lines
_REGION_TYPES = (Circle, Rectangle, Ellipse, Polygon)


# --------------------------------------------------------------------------------------------------
# Regions as the editor holds them
# --------------------------------------------------------------------------------------------------


def unique_name(taken: Sequence[str], stem: str = "region") -> str:
    """Return ``stem_N`` with the smallest N >= 1 not in ``taken``."""
    number = 1
    while f"{stem}_{number}" in taken:
        number += 1
    return f"{stem}_{number}"


def regions_of_status(status: ExperimentStatus | None) -> list[RegionSpec]:
    """Return the regions a running experiment reports (``name``, ``name_2``, ... per shape)."""
    found: list[RegionSpec] = []
    for trigger in status.triggers if status is not None else ():
        shapes = [s for s in trigger.shapes if isinstance(s, _REGION_TYPES)]
        for number, shape in enumerate(shapes, start=1):
            name = trigger.name if number == 1 else f"{trigger.name}_{number}"
            found.append(RegionSpec(name, trigger.camera, shape, None))
    return found


@dataclass
class Region:
    """A region as the editor holds it (mutable while it is dragged or its rule is edited)."""

    name: str
    camera: str | None
    shape: RegionShape
    keypoint: str | None
    kind: str = "region"
    action: RegionAction | None = None
    action_changed: bool = False  # Save writes the action (else the file's rules stay as they are)
    animal: str | None = None  # ANIMAL: a number, any or each (None: not written, animal 1)

    @classmethod
    def of(cls, spec: RegionSpec, action: RegionAction | None = None) -> Region:
        """Return the editor's copy of ``spec`` with the action the file gives it."""
        return cls(
            spec.trigger, spec.camera, spec.shape, spec.keypoint, spec.kind, action,
            animal=spec.animal,
        )  # fmt: skip

    def spec(self) -> RegionSpec:
        """Return the region as config data."""
        action = self.action if self.action_changed else None
        return RegionSpec(
            self.name, self.camera, self.shape, self.keypoint, self.kind, action, self.animal
        )


class RegionFile:
    """The config file the editor reads and writes (None: none), and the next Save's deletions."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.deleted_rules: list[str] = []  # rules deleted in the panel, not saved yet
        self.other_triggers: list[str] = []  # names taken by triggers that are not regions

    def read(self) -> list[Region]:
        """Return the file's regions with their actions; raises ConfigEditError or OSError."""
        if self.path is None:
            return []
        text = ConfigText(self.path.read_text(encoding="utf-8"))
        regions = [Region.of(spec, text.region_action(spec.trigger)) for spec in text.regions()]
        self.other_triggers = text.trigger_names()
        return regions

    def text(self) -> ConfigText | None:
        """Return the file's text with the rules deleted but not saved yet taken out."""
        if self.path is None:
            return None
        try:
            text = ConfigText(self.path.read_text(encoding="utf-8"))
        except OSError:
            return None
        for rule in self.deleted_rules:
            text.delete_rule(rule)
        return text

    def write(self, regions: list[Region], before_save: Callable[[Path], Path] | None) -> Path:
        """Write into the file ``before_save`` gives; may raise OSError, or ConfigEditError."""
        assert self.path is not None, "the editor writes only a file it read"
        if before_save is not None:
            self.path = before_save(self.path)
        save_regions(self.path, [r.spec() for r in regions], deleted_rules=self.deleted_rules)
        self.deleted_rules = []
        text = self.text()
        for region in regions:  # the file now holds them: read them back as written
            region.action_changed = False
            region.action = text.region_action(region.name) if text is not None else region.action
        return self.path

    def rules_of(self, name: str) -> tuple[tuple[str, str], ...]:
        """Return the rules (name, in words) that name region ``name``, deleted ones left out."""
        text = self.text()
        if text is None:
            return ()
        return tuple((rule, text.describe_rule(rule)) for rule in text.rules_of(name))

    def users_of(self, name: str) -> list[str]:
        """Return the rules and combinators of the file that name ``name``, but its own action."""
        text = self.text()
        if text is None:
            return []
        users = text.users_of(name)
        own = text.region_action(name)
        if own is not None and text.is_action_only(own):
            users = [u for u in users if not u.startswith(f"[Rule {own.rule}]")]
        return users


# --------------------------------------------------------------------------------------------------
# The editor
# --------------------------------------------------------------------------------------------------


class RegionEditor(QWidget):
    """Tools, camera chooser, region list and status; draws and edits on attached tiles.

    Use :meth:`attach` with the live view's tiles and :meth:`load` with the experiment's config
    file (None: a Python experiment, read-only); it reads the file, never the running experiment.
    """

    saved = pyqtSignal(Path)
    """The config file was written (its path)."""
    failed = pyqtSignal(str)
    """A save or delete was refused; the message is also in the status line."""
    dirty_changed = pyqtSignal(bool)
    """Whether there are unsaved changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("region_editor")
        self.file = RegionFile()  # the config file, None: a Python experiment (read-only)
        self.cameras: list[str] = []
        self.keypoints: list[str] = []
        self.devices: list[str] = []  # the rig's stimulation devices, for actions
        self._rig_keypoints: dict[str | None, list[str]] = {}  # each camera's model's keypoints
        self._rig_animals: dict[str | None, int] = {}  # how many animals each camera's model has
        self.before_save: Callable[[Path], Path] | None = None
        """Called with the config file before a save; returns the file to write (a copy)."""
        self.regions: list[Region] = []
        self.selected: str | None = None
        self.tool = "select"
        self.read_only = True
        self._dirty = False
        self._views: dict[str, CameraView] = {}
        self._drawing = RegionDrawing(self)  # the mouse tools on the attached tiles
        self._build()
        self._show_state()

    # ---------------------------------------------------------------------------- widgets

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self._tool_group = QButtonGroup(self)
        self._tool_group.setExclusive(True)
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool in TOOLS:
            button = self._button(f"region_{tool}", tool.capitalize(), row)
            button.setCheckable(True)
            self._tool_group.addButton(button)
            self.tool_buttons[tool] = button
        self.tool_buttons["select"].setChecked(True)
        tool_of = {button: tool for tool, button in self.tool_buttons.items()}
        self._tool_group.buttonClicked.connect(lambda button: self.set_tool(tool_of[button]))
        self.delete_button = self._button("region_delete", "Delete", row)
        self.delete_button.clicked.connect(self._delete_clicked)
        self.save_button = self._button("region_save", "Save", row)
        self.save_button.clicked.connect(self._save_clicked)
        self.revert_button = self._button("region_revert", "Revert", row)
        self.revert_button.clicked.connect(self.revert)
        layout.addLayout(row)
        self.region_list = QListWidget()
        self.region_list.setObjectName("region_list")
        self.region_list.currentRowChanged.connect(self._row_chosen)
        self.region_list.setMinimumHeight(LIST_LEAST_ROWS * self.fontMetrics().height())
        layout.addWidget(self.region_list, 1)
        self.rule_panel = RegionRulePanel()
        self.rule_panel.changed.connect(lambda message: self.report(message, edited=True))
        self.rule_panel.rule_deleted.connect(self._rule_deleted)
        self.camera_box: QComboBox = self.rule_panel.camera_box
        self.camera_box.activated.connect(self._camera_chosen)
        layout.addWidget(self._rule_area(), 2)
        self.status = shrinkable(QLabel())
        self.status.setObjectName("region_status")
        # Always two lines tall: a save message that wrapped to a second line grew the label
        # and moved the rule form above it 5 px. Longer: whole in its tooltip.
        margins = self.status.contentsMargins()
        self.status.setFixedHeight(
            2 * self.status.fontMetrics().lineSpacing() + margins.top() + margins.bottom()
        )
        self.status.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        layout.addWidget(self.status)

    def _rule_area(self) -> QScrollArea:
        """Return the rule panel in a scroll area of its own, scrolling in height only."""
        # A pulse's ten rows laid out whole made the window taller than a 768 px screen.
        area = QScrollArea()
        area.setObjectName("region_rule_area")
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        area.setWidget(self.rule_panel)
        return area

    def _button(self, name: str, text: str, row: QHBoxLayout) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setText(text)
        row.addWidget(button)
        return button

    # ---------------------------------------------------------------------------- public API

    @property
    def dirty(self) -> bool:
        """Whether the regions differ from the file (unsaved changes)."""
        return self._dirty

    def attach(self, views: dict[str, CameraView]) -> None:
        """Draw on ``views`` (camera name -> tile) and take their mouse and keys."""
        self.detach()
        self._views = dict(views)
        for view in self._views.values():
            view.set_overlay(self)

    def detach(self) -> None:
        """Give the tiles back (before they are deleted, or to hide the regions)."""
        for view in self._live_views():
            if view.overlay is self:
                view.set_overlay(None)
        self._views = {}
        self._drawing.cancel()

    def load(
        self,
        config_path: Path | None,
        cameras: list[str],
        keypoints: list[str],
        running: Sequence[RegionSpec] = (),
    ) -> None:
        """Read the regions of ``config_path``; None: a Python experiment, shown read-only.

        ``cameras``: the stream's analysed cameras; ``running``: a Python experiment's regions.
        """
        self.file = RegionFile(Path(config_path) if config_path is not None else None)
        self.cameras = list(cameras)
        self.keypoints = list(keypoints)
        self.read_only = config_path is None
        self._drawing.cancel()
        self.selected = None
        if self.file.path is None:
            self.regions = [Region.of(spec) for spec in running]
            message = (
                "This experiment is a Python class: it has no config file to edit (read-only)."
            )
        else:
            try:
                self.regions = self.file.read()
                message = f"{len(self.regions)} region(s) in {self.file.path.name}"
            except (ConfigEditError, OSError) as error:  # OSError: the file cannot be read
                self.regions, self.read_only = [], True
                message = f"Cannot read {self.file.path}: {error}"
        self._set_dirty(False)
        self._refresh(message)

    def use_rig(
        self,
        keypoints: dict[str | None, list[str]],
        devices: list[str],
        animals: dict[str | None, int] | None = None,
    ) -> None:
        """Offer each camera's model's keypoints (None: a model for any camera) and the devices.

        ``animals``: how many animals each camera's model reports (several: a choice per region).
        """
        self._rig_keypoints = {camera: list(names) for camera, names in keypoints.items()}
        self._rig_animals = dict(animals or {})
        self.devices = list(devices)
        self._refresh()

    def rename_keypoints(self, config_path: Path, mapping: dict[str, str]) -> None:
        """Follow a keypoint mapping just saved into ``config_path``, keeping unsaved edits."""
        self.file.path = config_path
        for region in self.regions:
            keypoint = region.keypoint or "nose"  # the region kind's default
            region.keypoint = mapping.get(keypoint, region.keypoint)
        self._refresh()

    def keypoints_for(self, camera: str | None) -> list[str]:
        """Return the keypoints a region of ``camera`` may watch: its model's, else any known."""
        if camera in self._rig_keypoints:
            return self._rig_keypoints[camera]
        for names in self._rig_keypoints.values():
            return names
        return self.keypoints

    def animals_for(self, camera: str | None) -> int:
        """Return how many animals the model of ``camera`` reports (any camera's most; 1: none)."""
        if camera in self._rig_animals:
            return self._rig_animals[camera]
        return max(self._rig_animals.values(), default=1)

    def set_tool(self, tool: str) -> None:
        """Choose a tool: one of :data:`TOOLS`."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)
        self._drawing.cancel()
        self.update_views()

    def select(self, name: str | None) -> None:
        """Select the region ``name`` (None: none)."""
        self.selected = name if name in {r.name for r in self.regions} else None
        self._refresh()

    def region(self, name: str) -> Region | None:
        """Return the region ``name``, or None."""
        return next((r for r in self.regions if r.name == name), None)

    def set_camera(self, name: str, camera: str | None) -> None:
        """Make region ``name`` read ``camera``'s pixels (None: any one camera)."""
        region = self.region(name)
        if region is None or self.read_only or region.camera == camera:
            return
        region.camera = camera
        self._set_dirty(True)
        self._refresh(f"{name} now reads camera {camera or 'any'}")

    def delete_selected(self) -> bool:
        """Delete the selected region; refused (status, ``failed``) while a rule names it."""
        region = self.region(self.selected or "")
        if region is None or self.read_only:
            return False
        users = self.file.users_of(region.name)
        if users:
            rules = " (Rules, below: Delete rule)" if self.file.rules_of(region.name) else ""
            self._fail(
                f"Cannot delete region {region.name!r}: it is used by {'; '.join(users)}. "
                f"Change or delete those first{rules}."
            )
            return False
        self.regions.remove(region)
        self.selected = None
        self._set_dirty(True)
        self._refresh(f"Deleted {region.name} (not saved yet)")
        return True

    def save(self) -> bool:
        """Write the regions into the config file; errors go to the status and ``failed``."""
        if self.read_only:
            self._fail("Nothing to save: this experiment has no config file.")
            return False
        try:
            path = self.file.write(self.regions, self.before_save)
        except (ConfigEditError, OSError) as error:  # OSError: the copy or the write failed
            self._fail(str(error))
            return False
        self._set_dirty(False)
        self._refresh(f"Saved to {path} (previous file: {path.name}.bak)")
        self.saved.emit(path)
        return True

    def delete_rule(self, rule: str) -> bool:
        """Delete ``[Rule rule]`` (with the stimulations only it does) at the next Save."""
        text = self.file.text()
        if self.read_only or text is None or rule in self.file.deleted_rules:
            return False
        if rule not in text.section_names(RULE_PREFIX):
            self._fail(f"No rule {rule!r} in {self.file.path}: read the file again (Revert).")
            return False
        removed = text.delete_rule(rule)
        self.file.deleted_rules.append(rule)
        for region in self.regions:
            if region.action is not None and region.action.rule == rule:
                region.action, region.action_changed = RegionAction.removed(region.action), True
        self._set_dirty(True)
        self._refresh(f"Deleted {', '.join(removed)} (not saved yet)")
        return True

    def revert(self) -> None:
        """Drop unsaved changes: read the file again."""
        self.load(self.file.path, self.cameras, self.keypoints)

    # ---------------------------------------------------------------------------- overlay

    def paint_overlay(self, view: CameraView, painter: QPainter) -> None:
        """Draw the regions of ``view``'s camera, the selection's handles and any draft."""
        self._drawing.paint(view, painter)

    def overlay_event(self, view: CameraView, event: QEvent) -> bool:
        """Handle a tile's mouse or key event; return whether it was used."""
        return self._drawing.event(view, event)

    def keyPressEvent(self, event: QKeyEvent | None) -> None:  # noqa: N802 - Qt's name
        """Delete (or Backspace) deletes the selected region; Escape cancels a drawing."""
        if event is None or not self._drawing.key(event):
            super().keyPressEvent(event)

    # ---------------------------------------------------------------------------- for the drawing

    def add_drawn(self, camera: str, shape: RegionShape) -> None:
        """Add a new region drawn on ``camera``'s tile; select it and go back to select."""
        taken = [*self.file.other_triggers, *(r.name for r in self.regions)]
        region = Region(
            name=unique_name(taken),
            camera=camera,  # its coordinates are this camera's pixels
            shape=rounded(shape),
            keypoint=self._keypoint(camera),
        )
        self.regions.append(region)
        self.selected = region.name
        self._set_dirty(True)
        self.set_tool("select")
        self._refresh(f"Added {region.name}: {region.shape} (not saved yet)")

    def _keypoint(self, camera: str | None) -> str | None:
        """Return the keypoint a new region watches: the model's first, or the regions' own."""
        names = self.keypoints_for(camera)
        if names:
            return names[0]
        return next((r.keypoint for r in self.regions if r.keypoint), None)

    # ---------------------------------------------------------------------------- helpers

    def regions_on(self, camera: str) -> list[Region]:
        """Return the regions drawn on ``camera``'s tile (those without CAMERA on every tile)."""
        return [r for r in self.regions if r.camera in (None, camera)]

    def report(self, message: str, *, edited: bool = False) -> None:
        """Say what the drawing did; ``edited``: a region changed (unsaved changes)."""
        if edited:
            self._set_dirty(True)
        self._refresh(message)

    def _delete_clicked(self) -> None:
        self.delete_selected()

    def _rule_deleted(self, rule: str) -> None:
        self.delete_rule(rule)  # the outcome is in the status line

    def _save_clicked(self) -> None:
        self.save()

    def _fail(self, message: str) -> None:
        self._say(message)
        self.failed.emit(message)

    def _say(self, message: str) -> None:
        """Show ``message`` in the status line (two lines), whole in its tooltip."""
        self.status.setText(message)
        self.status.setToolTip(message)

    def _set_dirty(self, dirty: bool) -> None:
        changed = dirty != self._dirty
        self._dirty = dirty
        if changed:
            self.dirty_changed.emit(dirty)

    def _row_chosen(self, row: int) -> None:
        if 0 <= row < len(self.regions) and self.regions[row].name != self.selected:
            # the list already shows the choice: no rebuild of it inside its own signal
            self.selected = self.regions[row].name
            self._show_camera()
            self._show_state()
            self.update_views()

    def _camera_chosen(self, index: int) -> None:
        if self.selected is not None:
            self.set_camera(self.selected, self.camera_box.itemData(index))

    def _label(self, region: Region) -> str:
        """``name (camera): shape, keypoint, action``; the camera only where there is a choice."""
        camera = ""
        if region.camera is None:
            camera = " (camera?)" if len(self.cameras) > 1 else ""
        elif self.cameras and region.camera not in self.cameras:
            camera = f" ({region.camera}: not open)"
        elif len(self.cameras) > 1:
            camera = f" ({region.camera})"
        if self.file.path is None:  # a running Python experiment's: its shape is all we know
            return f"{region.name}{camera}: {region.shape}"
        keypoint = region.keypoint or "nose"  # the region kind's default
        if keypoint not in self.keypoints_for(region.camera) and self._rig_keypoints:
            keypoint += " (not in the model)"
        animal = (region.animal or FIRST_ANIMAL).strip().lower()
        if self.animals_for(region.camera) > 1 or animal != FIRST_ANIMAL:
            keypoint += f" of {animal_words(animal)}"
        action = region.action.describe() if region.action is not None else "no action"
        return f"{region.name}{camera}: {region.shape}, {keypoint}, {action}"

    def _refresh(self, message: str | None = None) -> None:
        """Show the list, the camera chooser, the buttons and the tiles as the state is now."""
        self.region_list.blockSignals(True)
        self.region_list.clear()
        for region in self.regions:
            self.region_list.addItem(QListWidgetItem(self._label(region)))
        names = [r.name for r in self.regions]
        if self.selected in names:
            self.region_list.setCurrentRow(names.index(self.selected))
        self.region_list.blockSignals(False)
        self._show_camera()
        if message is not None:
            self._say(message + (" - unsaved changes" if self._dirty else ""))
        self._show_state()
        self.update_views()

    def _show_camera(self) -> None:
        """Show the selected region's camera, keypoint and action in the rule panel."""
        region = self.region(self.selected or "")
        camera = region.camera if region is not None else None
        choices = RigChoices(
            tuple(self.cameras),
            tuple(self.keypoints_for(camera)),
            tuple(self.devices),
            self.animals_for(camera),
            self.file.rules_of(region.name) if region is not None and not self.read_only else (),
        )
        self.rule_panel.show_region(region, choices, editable=not self.read_only)

    def _show_state(self) -> None:
        editable = not self.read_only
        for tool, button in self.tool_buttons.items():
            button.setEnabled(editable or tool == "select")
        has_selection = self.region(self.selected or "") is not None
        self.delete_button.setEnabled(editable and has_selection)
        self.save_button.setEnabled(editable and self._dirty)
        self.revert_button.setEnabled(editable and self._dirty)

    def _live_views(self) -> list[CameraView]:
        """Return the attached tiles that still exist (a closed live view deletes its tiles)."""
        return [view for view in self._views.values() if not sip.isdeleted(view)]

    def update_views(self) -> None:
        """Repaint the attached tiles."""
        for view in self._live_views():
            view.update()
