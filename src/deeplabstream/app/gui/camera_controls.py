"""Live camera controls: exposure, gain, frame rate... of each streaming camera, within its limits.

Design: docs/gui.md, "The Camera tab: exposure, gain, frame rate".
"""

from __future__ import annotations

import dataclasses
import math

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.messages import WindowMessages
from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.session import SETTINGS_CAUSE, SessionController
from deeplabstream.core.schema import key_of, settings_fields
from deeplabstream.hardware.cameras.base import CameraControl, CameraError, short_number
from deeplabstream.hardware.cameras.orientation import mirror_setting
from deeplabstream.live.session.live import LiveSession
from deeplabstream.settings.sections import CameraCommonSettings

NOT_LIVE_NOTE = "applies at next Start Stream"


class CameraControlsPanel(QWidget):
    """Spin boxes for every camera's controls; applies live ones to the running stream."""

    #: A control could not be set: the camera's message (it names the allowed range).
    failed = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("camera_controls")
        self._session: LiveSession | None = None
        self._controls: dict[tuple[str, str], CameraControl] = {}
        self._boxes: dict[tuple[str, str], QDoubleSpinBox] = {}
        self._switches: dict[tuple[str, str], QCheckBox] = {}  # on/off controls
        self._groups: list[QGroupBox] = []
        self._layout = QVBoxLayout(self)
        self._hint = QLabel("Start Stream to change the cameras' settings.")
        self._error = QLabel("")
        self._error.setObjectName("camera_controls_error")
        self._error.setWordWrap(True)
        self._error.setStyleSheet("color: #b00020;")
        self._layout.addWidget(self._hint)
        self._layout.addWidget(self._error)
        self._layout.addStretch(1)

    def attach(self, session: LiveSession | None) -> None:
        """Show the controls of ``session``'s cameras (opened); None clears the panel."""
        for group in self._groups:
            self._layout.removeWidget(group)
            group.setParent(None)  # out of the panel now (findChild), deleted by Qt later
            group.deleteLater()
        self._groups, self._controls, self._boxes, self._switches = [], {}, {}, {}
        self._session = session
        self._error.setText("")
        self._hint.setVisible(session is None)
        if session is None:
            return
        for position, camera in enumerate(session.camera_names):
            group = self._camera_group(camera, session.camera_controls(camera))
            self._groups.append(group)
            self._layout.insertWidget(1 + position, group)

    def values_to_save(self, camera: str) -> dict[str, str]:
        """Return the ``[Camera NAME]`` keys and values of ``camera``'s controls that have a key."""
        if self._session is None:
            return {}
        camera_settings = self._session.settings.camera(camera)
        known = {
            key_of(f)
            for cls in (camera_settings.camera_class().settings_class, CameraCommonSettings)
            for f in settings_fields(cls)
        }
        values = {}
        for (name, control_name), control in self._controls.items():
            if name == camera and control.key in known and control.key != "MIRROR":
                values[control.key] = _text(self._value((name, control_name)), control.step)
        mirrors = {
            control_name: self._value((name, control_name)) >= 0.5
            for (name, control_name), control in self._controls.items()
            if name == camera and control.key == "MIRROR"
        }
        if mirrors:  # two boxes, one key: MIRROR = off | horizontal | vertical | both
            values["MIRROR"] = mirror_setting(
                mirrors.get("mirror_horizontal", False), mirrors.get("mirror_vertical", False)
            )
        return values

    # -- building ------------------------------------------------------------------------

    def _camera_group(self, camera: str, controls: tuple[CameraControl, ...]) -> QGroupBox:
        group = QGroupBox(camera)
        group.setObjectName(f"controls_{camera}")
        form = QFormLayout(group)
        if not controls:
            form.addRow(QLabel("This camera has no settings to change here."))
        for control in controls:
            self._controls[(camera, control.name)] = control
            if is_switch(control):
                form.addRow(self._switch(camera, control))
                continue
            box = QDoubleSpinBox()
            box.setObjectName(f"control_{camera}_{control.name}")
            box.setKeyboardTracking(False)
            _fit(box, control)
            if control.live:
                box.editingFinished.connect(
                    lambda camera=camera, name=control.name: self._apply(camera, name)
                )
            else:
                box.setToolTip(f"Saved to the settings file; {NOT_LIVE_NOTE}.")
            self._boxes[(camera, control.name)] = box
            form.addRow(QLabel(_row_label(control)), box)
        return group

    def _switch(self, camera: str, control: CameraControl) -> QCheckBox:
        """Return a check box for an on/off control (mirroring), applied when (un)ticked."""
        note = "" if control.live else f" ({NOT_LIVE_NOTE})"
        box = QCheckBox(f"{control.label}{note}")
        box.setObjectName(f"control_{camera}_{control.name}")
        box.setChecked(control.value >= 0.5)
        if control.live:
            box.toggled.connect(lambda _on, c=camera, n=control.name: self._apply(c, n))
        else:
            box.setToolTip(f"Saved to the settings file; {NOT_LIVE_NOTE}.")
        self._switches[(camera, control.name)] = box
        return box

    def _value(self, key: tuple[str, str]) -> float:
        """Return what the user set for one control: a box's number, or 1/0 for a check box."""
        switch = self._switches.get(key)
        if switch is not None:
            return 1.0 if switch.isChecked() else 0.0
        return self._boxes[key].value()

    # -- applying ------------------------------------------------------------------------

    def _apply(self, camera: str, name: str) -> None:
        """Send a live control's new value to the camera; show what it took, or why not."""
        session, key = self._session, (camera, name)
        control = self._controls.get(key)
        if session is None or control is None:
            return
        value = self._value(key)
        if math.isclose(value, control.value, rel_tol=1e-9, abs_tol=1e-9):
            return  # editingFinished also fires when the box merely loses focus
        try:
            kept = session.set_camera_control(camera, name, value)
        except CameraError as error:
            self._show(key, control.value)
            self._error.setText(str(error))
            self.failed.emit(str(error))
            return
        self._error.setText("")
        self._refresh(camera, session.camera_controls(camera))
        self._show(key, kept)
        self._controls[(camera, name)] = dataclasses.replace(control, value=kept)

    def _refresh(self, camera: str, controls: tuple[CameraControl, ...]) -> None:
        """Take the camera's new limits (one control may bound another: rate by exposure)."""
        for control in controls:
            box = self._boxes.get((camera, control.name))
            if box is None:
                continue
            self._controls[(camera, control.name)] = control
            box.blockSignals(True)
            # A value waiting for the next Start Stream stays as the user typed it.
            _fit(box, control, show_value=control.live)
            box.blockSignals(False)

    def _show(self, key: tuple[str, str], value: float) -> None:
        """Show the camera's value in the control's box or check box (not a new edit)."""
        widget: QDoubleSpinBox | QCheckBox | None = self._switches.get(key) or self._boxes.get(key)
        if widget is None:
            return
        widget.blockSignals(True)
        if isinstance(widget, QCheckBox):
            widget.setChecked(value >= 0.5)
        else:
            widget.setValue(value)
        widget.blockSignals(False)


class CameraTab(QWidget):
    """The Camera tab: the controls, and a button keeping their values in the settings file."""

    def __init__(self, controller: SessionController, rig: RigPanel, say: WindowMessages) -> None:
        super().__init__()
        self.controller, self.rig, self.say = controller, rig, say
        self.controls = CameraControlsPanel()
        self.controls.failed.connect(say.error)
        keep = self.keep_button = QPushButton("Keep these values in the settings")
        keep.setObjectName("camera_controls_save")
        keep.setToolTip(
            "Write them into each camera's [Camera NAME] section (Rig tab), saved; the values "
            "are read from the cameras, so Start Stream first"
        )
        keep.setEnabled(False)
        keep.clicked.connect(self.keep_values)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls, 1)
        layout.addWidget(keep)

    def follow(self) -> None:
        """Values can be kept while a stream runs and nothing starts or stops."""
        controller = self.controller
        self.keep_button.setEnabled(controller.stream is not None and controller.busy is None)

    def keep_values(self) -> None:
        """Write the cameras' current control values into the settings file (with its backup)."""
        stream = self.controller.stream
        if stream is None:
            self.say.error("Start Stream first: the values are read from the running cameras.")
            return
        rig = self.rig
        for camera in stream.camera_names:
            values = self.controls.values_to_save(camera)
            if values and camera in rig.camera_names():
                rig.set_camera_keys(camera, values)
        rig.save()
        if rig.dirty:  # refused: the rig has problems (listed in the Rig tab)
            self.say.error("Camera values not saved:\n" + "\n".join(rig.problems), SETTINGS_CAUSE)
        else:
            self.say.notice("Camera values kept in the settings file")


def is_switch(control: CameraControl) -> bool:
    """Return whether ``control`` is on/off (0 or 1 in steps of 1), shown as a check box."""
    return control.minimum == 0 and control.maximum == 1 and control.step == 1


def _fit(box: QDoubleSpinBox, control: CameraControl, show_value: bool = True) -> None:
    """Set the box's range, step, decimals and (``show_value``) value from the control."""
    box.setDecimals(_decimals(control.step))
    box.setRange(control.minimum, control.maximum)
    span = control.maximum - control.minimum
    box.setSingleStep(control.step if control.step > 0 else _round_step(span / 100))
    box.setSuffix(f" {control.unit}" if control.unit else "")
    if show_value:
        box.setValue(control.value)


def _row_label(control: CameraControl) -> str:
    """``Exposure (µs) (limits 100-3000000)``, with the note for non-live controls."""
    unit = f" ({control.unit})" if control.unit else ""
    limits = f"(limits {short_number(control.minimum)}-{short_number(control.maximum)})"
    note = "" if control.live else f", {NOT_LIVE_NOTE}"
    return f"{control.label}{unit} {limits}{note}"


def _decimals(step: float) -> int:
    """Decimals a step needs: 0 for whole steps, up to 6 for fine ones; 3 for any value."""
    if step <= 0:
        return 3
    if float(step).is_integer():
        return 0
    return min(6, max(1, -math.floor(math.log10(step))))


def _round_step(step: float) -> float:
    """Round a spin step down to 1, 2 or 5 times a power of ten (a step people expect)."""
    if step <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(step))
    return max(m * power for m in (1, 2, 5) if m * power <= step)


def _text(value: float, step: float) -> str:
    """Write a value for a settings file: whole numbers without a point, never 3e+06."""
    if float(value).is_integer() and (step >= 1 or step == 0):
        return str(int(value))
    return f"{value:.10g}"
