"""The Rig tab's Stimulation devices box: the rig's devices, each one's TYPE and keys."""

from __future__ import annotations

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QVBoxLayout,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.parts import confirm
from deeplabstream.app.gui.section_table import SectionTable, device_keys
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.settings.loader import DEVICE_PREFIX


class DeviceBox(QGroupBox):
    """The ``[Device name]`` sections of the edited file: listed, added, removed, edited."""

    refused = pyqtSignal(str)  # a device the user named cannot be added: why

    def __init__(self, file: EditedFile) -> None:
        super().__init__("Stimulation devices")
        self._file = file
        self.device_list = QListWidget()
        self.device_list.setObjectName("rig_devices")
        self.device_list.setMaximumHeight(70)
        self.device_list.currentTextChanged.connect(self._show_device)
        self.device_type = QComboBox()
        self.device_type.setObjectName("rig_device_type")
        self.device_type.addItems(sorted(DEVICES))
        self.device_type.activated.connect(self._device_type_chosen)
        add = named_button("Add...", "rig_add_device", self._ask_device_name)
        remove = named_button("Remove", "rig_remove_device", self._remove_selected_device)
        row = QHBoxLayout()
        row.addWidget(QLabel("TYPE"))
        row.addWidget(self.device_type, 1)
        row.addWidget(add)
        row.addWidget(remove)
        self.device_table = SectionTable("rig_device_keys")
        self.device_table.edited.connect(self._device_key_edited)
        layout = QVBoxLayout(self)
        layout.addWidget(self.device_list)
        layout.addLayout(row)
        layout.addWidget(self.device_table)

    # -- showing -------------------------------------------------------------------------------

    def device_names(self) -> list[str]:
        """Return the devices of the edited file, in order."""
        return self._file.section_names(DEVICE_PREFIX)

    def list_device_types(self) -> None:
        """Offer the registered device types, then the modules of the lab's ``devices/``."""
        lab = [path.stem for path in DEVICES.lab.modules(self._file.folder)]
        self.device_type.clear()
        self.device_type.addItems([*sorted(DEVICES.names()), *lab])

    def show_document(self) -> None:
        """List the file's devices, the first one's keys shown."""
        self.device_list.clear()
        self.device_list.addItems(self.device_names())
        if self.device_names():
            self.device_list.setCurrentRow(0)
        else:
            self.device_table.setRowCount(0)

    def _show_device(self, name: str) -> None:
        if not name:
            return
        section = DEVICE_PREFIX + name
        document = self._file.document
        kind = (document.get(section, "TYPE", "log") or "log").strip()
        kind = DEVICES.settings_name(kind)  # a registered name normalised, a lab's as written
        if self.device_type.findText(kind) >= 0:  # registered, or a module of devices/
            self.device_type.setCurrentText(kind)
            rows = device_keys(kind, self._file.folder)
            self.device_table.show_keys(rows, document.items(section))

    # -- editing -------------------------------------------------------------------------------

    def add_device(self, name: str, kind: str) -> None:
        """Add ``[Device name]`` of TYPE ``kind``."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"device name {name!r}: no spaces")
        if name in self.device_names():
            raise ValueError(f"there is a device {name!r} already")
        self._file.add_section(DEVICE_PREFIX + name, {"TYPE": kind})
        self.device_list.setCurrentRow(self.device_names().index(name))
        self._file.mark_edited()

    def _device_key_edited(self, key: str, value: str) -> None:
        item = self.device_list.currentItem()
        if item is not None:
            self._file.set(DEVICE_PREFIX + item.text(), key, value)

    def _device_type_chosen(self) -> None:
        item = self.device_list.currentItem()
        if item is None:
            return
        self._file.set(DEVICE_PREFIX + item.text(), "TYPE", self.device_type.currentText())
        self._show_device(item.text())

    def _ask_device_name(self) -> None:
        name, ok = QInputDialog.getText(
            self, "New device", "Device name (as the experiment's DEVICE):"
        )
        if ok and name.strip():
            try:
                self.add_device(name.strip(), self.device_type.currentText())
            except ValueError as error:
                self.refused.emit(str(error))

    def _remove_selected_device(self) -> None:
        item = self.device_list.currentItem()
        if item is not None and confirm(
            self,
            "Remove device",
            f"Remove the device {item.text()!r} from the rig? Its [Device {item.text()}] "
            "section leaves the settings file when you save (Revert brings it back before).",
        ):
            self._file.remove_section(DEVICE_PREFIX + item.text())
            self._file.mark_edited()
