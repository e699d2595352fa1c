"""The keys of one settings section as an editable table (the Rig tab's cameras and devices).

An empty value means the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from deeplabstream.app.gui.fitting import compact_rows
from deeplabstream.core.schema import key_of, settings_fields, spec_of
from deeplabstream.hardware.cameras import camera_class
from deeplabstream.hardware.stimulation import device_class
from deeplabstream.settings.sections import CameraCommonSettings


@dataclass(frozen=True)
class KeyRow:
    """One key a section may hold: its name, default and documentation."""

    key: str
    default: str
    doc: str


def keys_of(section_class: type, skip: tuple[str, ...] = ()) -> list[KeyRow]:
    """Return the keys of a settings class, in declaration order."""
    rows = []
    for field in settings_fields(section_class):
        key = key_of(field)
        if key in skip:
            continue
        default = field.default
        shown = "" if default is None or default is dataclasses.MISSING else _text(default)
        rows.append(KeyRow(key, shown, spec_of(field).doc))
    return rows


def camera_keys(source: str, settings_folder: Path | None = None) -> list[KeyRow]:
    """Return every key a ``[Camera NAME]`` section of ``source`` takes (its own, then common)."""
    own = keys_of(camera_class(source, settings_folder).settings_class)
    return own + keys_of(CameraCommonSettings)


def device_keys(kind: str, settings_folder: Path | None = None) -> list[KeyRow]:
    """Return every key a ``[Device NAME]`` section of TYPE ``kind`` takes."""
    return keys_of(device_class(kind, settings_folder).settings_class)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


SHOWN_ROWS = 6  # in sight (rows one text line tall); the rest scrolls


class SectionTable(QTableWidget):
    """The keys of one section: the value column is editable; empty means the default."""

    edited = pyqtSignal(str, str)  # key, new value ("" removes the key)

    def __init__(self, object_name: str) -> None:
        super().__init__(0, 2)
        self.setObjectName(object_name)
        self.setHorizontalHeaderLabels(("key", "value (empty: default)"))
        header, vertical = self.horizontalHeader(), self.verticalHeader()
        assert header is not None and vertical is not None
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        vertical.setVisible(False)
        compact_rows(self)  # 2-3 rows were in sight at 1366x768
        # A few rows in sight, the rest scrolls: the Rig tab reaches the model without scrolling
        # at 1600x1000 (the table asked for 192 px and pushed the model out of sight).
        self.setMaximumHeight(
            header.sizeHint().height() + SHOWN_ROWS * vertical.defaultSectionSize() + 4
        )
        self._filling = False
        self.itemChanged.connect(self._changed)

    def show_keys(self, rows: list[KeyRow], values: dict[str, str]) -> None:
        """Show ``rows`` with the section's current ``values`` (keys matched case-insensitively)."""
        self._filling = True
        upper = {key.upper(): value for key, value in values.items()}
        self.setRowCount(len(rows))
        for index, row in enumerate(rows):
            name = QTableWidgetItem(row.key)
            name.setFlags(name.flags() & ~Qt.ItemIsEditable)
            name.setToolTip(f"{row.doc}\nDefault: {row.default or '(empty)'}")
            value = QTableWidgetItem(upper.get(row.key, ""))
            value.setToolTip(f"default: {row.default or '(empty)'}")
            self.setItem(index, 0, name)
            self.setItem(index, 1, value)
        self._filling = False

    def set_value(self, key: str, value: str) -> None:
        """Type ``value`` into ``key``'s cell, as a user would (tests and helpers)."""
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.text() == key:
                cell = self.item(row, 1)
                assert cell is not None
                cell.setText(value)
                return
        raise KeyError(key)

    def _changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 1:
            return
        key_item = self.item(item.row(), 0)
        if key_item is not None:
            self.edited.emit(key_item.text(), item.text().strip())
