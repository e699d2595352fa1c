"""The rig panel offers the lab's own devices (``devices/`` beside the settings) and their keys.

Real widgets (offscreen) and a real settings file with a device module in the lab's folder.
"""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtWidgets import QComboBox

from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.section_table import SectionTable
from tests.support.files import write_settings

LAB_DEVICE = '''
from dataclasses import dataclass

from deeplabstream.core.schema import setting
from deeplabstream.hardware.stimulation.log_device import LogStimulator


@dataclass(frozen=True)
class ShutterSettings:
    """The lab's shutter: how long it takes to open."""

    open_ms: float = setting(12.0, doc="Opening time.", minimum=0)


class Shutter(LogStimulator):
    """A log device with a key of its own."""

    settings_class = ShutterSettings

    @classmethod
    def from_settings(cls, settings):
        return cls()
'''


def test_the_labs_device_is_offered_and_its_keys_shown(qtbot, tmp_path: Path) -> None:
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "lab_shutter.py").write_text(LAB_DEVICE, encoding="utf-8")
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Device shutter]\nTYPE = lab_shutter\n"
    )
    panel = RigPanel(settings)
    qtbot.addWidget(panel)
    panel.show()
    panel.wait_checked()
    assert panel.problems == []
    types = panel.findChild(QComboBox, "rig_device_type")
    offered = [types.itemText(index) for index in range(types.count())]
    assert offered[-1] == "lab_shutter" and "log" in offered
    assert types.currentText() == "lab_shutter"
    table = panel.findChild(SectionTable, "rig_device_keys")
    keys = [table.item(row, 0).text() for row in range(table.rowCount())]
    assert keys == ["OPEN_MS"]
