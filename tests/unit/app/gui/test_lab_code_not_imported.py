"""Issue 37 #11: opening a settings file in the window does not import the experiment module
it names; the lab's code is imported when the user checks, chooses or starts that experiment,
and the window says so.

The lab's module writes a file when imported: its presence is the proof, read from disk.
"""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtWidgets import QLabel, QPushButton

from deeplabstream.app.gui.rig_check import lab_code_of
from deeplabstream.app.gui.rig_panel import RigPanel
from tests.support.files import write_settings

LAB_MODULE = '''
from pathlib import Path
Path(__file__).with_name("imported.txt").write_text("the lab's code ran")
from deeplabstream.experiments.base import Experiment


class LabExperiment(Experiment):
    def on_update(self, observation):
        return []
'''


def _lab(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "lab_module_37.py").write_text(LAB_MODULE)
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Experiment]\nNAME = lab_module_37\n"
    )
    return settings, folder / "imported.txt"


def test_which_experiments_are_the_labs_code(tmp_path: Path) -> None:
    settings, _ = _lab(tmp_path)
    folder = settings.parent
    assert lab_code_of("lab_module_37", folder) == str(folder / "experiments" / "lab_module_37.py")
    assert lab_code_of("lab_module_37:LabExperiment", folder) is not None
    assert lab_code_of(str(folder / "x.py"), folder) == str(folder / "x.py")
    assert lab_code_of("example", folder) is None  # a shipped config
    assert lab_code_of("examples:AlternatingReward", folder) is None  # a shipped class
    assert lab_code_of("", folder) is None


def test_opening_the_settings_imports_nothing_until_check_experiment(
    qtbot, tmp_path: Path
) -> None:
    settings, marker = _lab(tmp_path)
    rig = RigPanel(settings)
    qtbot.addWidget(rig)
    rig.wait_checked()
    rig.keypoint_map.wait()
    assert not marker.exists(), "opening the settings ran the lab's module"
    info = rig.findChild(QLabel, "rig_experiment_info").text()
    assert "Not loaded yet" in info and "lab_module_37.py" in info
    button = rig.findChild(QPushButton, "rig_check_experiment")
    assert not button.isHidden()
    button.click()  # the user asks for it: now it is imported and checked
    rig.wait_checked()
    assert marker.read_text() == "the lab's code ran"
    assert button.isHidden()
    assert "Not loaded yet" not in rig.findChild(QLabel, "rig_experiment_info").text()


def test_choosing_the_experiment_imports_it(qtbot, tmp_path: Path) -> None:
    settings, marker = _lab(tmp_path)
    rig = RigPanel(settings)
    qtbot.addWidget(rig)
    rig.wait_checked()
    assert not marker.exists()
    rig.set_experiment("lab_module_37:LabExperiment")  # the user chose it
    rig.wait_checked()
    assert marker.exists()


def test_the_window_opens_such_settings_without_running_the_labs_code(
    qtbot, tmp_path: Path
) -> None:
    from deeplabstream.app.gui.main_window import MainWindow

    settings, marker = _lab(tmp_path)
    window = MainWindow(settings, tmp_path / "out")
    window.show()
    qtbot.waitExposed(window)
    window.rig_panel.wait_checked()
    window.rig_panel.keypoint_map.wait()
    assert not marker.exists()
    window.close()
    qtbot.waitUntil(lambda: window.closed_down, timeout=60_000)
