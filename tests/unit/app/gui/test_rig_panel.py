"""The rig panel: a settings file set up from the window, checked as a whole, saved with a backup.

Real widgets (offscreen), a real settings file and a real video file; the check is the one a
start runs (settings parsed, model and experiment checked).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPushButton

from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.settings import load_settings
from tests.support.files import make_ffv1_video, write_settings

SETTINGS = """; my rig
[Camera arena]
SOURCE = synthetic
; the example experiment
[Experiment]
NAME = ExampleExperiment
[Device stimulus_box]
TYPE = log
"""


@pytest.fixture
def panel(qtbot, tmp_path: Path) -> RigPanel:
    rig = RigPanel(write_settings(tmp_path, SETTINGS))
    qtbot.addWidget(rig)
    rig.show()
    rig.wait_checked()
    return rig


def _problems(panel: RigPanel) -> str:
    return panel.findChild(QLabel, "rig_problems").text()


def _edit(qtbot, panel: RigPanel, name: str, text: str) -> None:
    edit = panel.findChild(QLineEdit, name)
    edit.setText(text)
    edit.editingFinished.emit()
    panel.wait_checked()


def test_the_embedded_default_checks_clean_and_says_what_will_run(panel: RigPanel) -> None:
    assert panel.problems == []
    assert panel.camera_names() == ["arena"]
    summary = panel.findChild(QLabel, "rig_summary").text()
    assert "camera arena: synthetic" in summary and "bundled arena model" in summary
    assert "experiment: ExampleExperiment" in summary
    assert not panel.findChild(QPushButton, "rig_save").isEnabled()  # nothing changed yet


def test_a_file_that_is_no_ini_file_is_named_and_never_saved_over(qtbot, tmp_path: Path) -> None:
    path = write_settings(tmp_path, "SOURCE = synthetic\n[Camera arena]\n")  # a key too early
    rig = RigPanel(path)
    qtbot.addWidget(rig)
    rig.wait_checked()
    assert "not an ini file" in _problems(rig) and str(path) in _problems(rig)
    rig.device_box.add_device("box", "log")  # an edit of the empty document shown instead
    rig.wait_checked()
    assert "not an ini file" in _problems(rig)  # the check of the edit keeps the problem
    before = path.read_text()
    assert rig.save() is None
    assert path.read_text() == before


def test_a_second_camera_needs_a_camera_per_region_and_saving_waits_for_it(
    qtbot, panel: RigPanel, tmp_path: Path
) -> None:
    video = tmp_path / "side.mkv"
    make_ffv1_video(video, frames=10)
    assert panel.camera_box.add_video_camera(video) == "side"
    panel.wait_checked()
    assert "nose_in_left" in _problems(panel) and "CAMERA" in _problems(panel)
    before = panel.settings_file.read_text()
    assert panel.save() is None  # refused: the file is untouched
    assert panel.settings_file.read_text() == before
    assert "Not saved" in _problems(panel)

    config = tmp_path / "two_cameras.ini"
    text = (CONFIG_FOLDER / "ExampleExperiment.ini").read_text()
    text = text.replace("KEYPOINT = nose\n", "KEYPOINT = nose\nCAMERA = arena\n")
    config.write_text(text)
    panel.set_experiment(str(config))
    panel.wait_checked()
    assert panel.problems == [], panel.problems

    qtbot.mouseClick(panel.findChild(QPushButton, "rig_save"), Qt.LeftButton)
    saved = panel.settings_file.read_text()
    assert saved.startswith("; my rig\n") and "; the example experiment" in saved
    assert (tmp_path / "settings.ini.bak").read_text() == before
    settings = load_settings(panel.settings_file)
    assert [c.name for c in settings.cameras] == ["arena", "side"]
    assert settings.camera("side").options.path == video  # written relative, read back whole
    assert "PATH = side.mkv" in saved


def test_a_missing_model_is_named_at_once(qtbot, panel: RigPanel) -> None:
    _edit(qtbot, panel, "rig_model_path", "models/none.onnx")
    assert "MODEL_PATH" in _problems(panel) and "none.onnx" in _problems(panel)
    assert not panel.findChild(QPushButton, "rig_save").isEnabled()
    _edit(qtbot, panel, "rig_model_path", "")
    assert panel.problems == []


def test_session_fields_and_record_boxes_are_written_to_the_file(qtbot, panel: RigPanel) -> None:
    _edit(qtbot, panel, "session_animal", "mouse 12")
    _edit(qtbot, panel, "session_experimenter", "Lab, A.")
    panel.findChild(QCheckBox, "record_arena").setChecked(False)
    panel.session_box.duration.setValue(1.5)
    panel.session_box.duration.editingFinished.emit()
    panel.wait_checked()
    assert panel.problems == []
    panel.save()
    settings = load_settings(panel.settings_file)
    assert settings.session.animal == "mouse 12"
    assert settings.session.experimenter == "Lab, A."
    assert settings.session.planned_duration == 90
    assert settings.camera("arena").common.record is False



def test_the_subject_and_lab_keys_are_edited_folded_and_checked(qtbot, panel: RigPanel) -> None:
    # folded: the usual fields in sight
    assert not panel.session_box.subject.form_widget.isVisibleTo(panel)
    panel.session_box.subject.toggle.setChecked(True)
    assert panel.session_box.subject.form_widget.isVisibleTo(panel)
    _edit(qtbot, panel, "session_age", "90 days")  # not an ISO 8601 duration
    assert "AGE" in _problems(panel)
    _edit(qtbot, panel, "session_age", "P90D")
    _edit(qtbot, panel, "session_species", "Mus musculus")
    _edit(qtbot, panel, "session_institution", "Some University")
    sex = panel.findChild(QComboBox, "session_sex")
    sex.setCurrentIndex(sex.findText("F"))
    sex.activated.emit(sex.currentIndex())
    panel.wait_checked()
    assert panel.problems == []
    panel.save()
    session = load_settings(panel.settings_file).session
    assert (session.age, session.species, session.sex) == ("P90D", "Mus musculus", "F")
    assert session.institution == "Some University"
    panel.load(panel.settings_file)  # read back into the fields, and the fold opens for them
    assert panel.findChild(QLineEdit, "session_species").text() == "Mus musculus"
    assert sex.currentText() == "F" and panel.session_box.subject.toggle.isChecked()

def test_camera_keys_are_edited_in_the_table(qtbot, panel: RigPanel) -> None:
    panel.camera_box.camera_table.set_value("FRAMERATE", "fast")
    panel.wait_checked()
    assert "FRAMERATE" in _problems(panel)
    panel.camera_box.camera_table.set_value("FRAMERATE", "60")
    panel.wait_checked()
    assert panel.problems == []
    panel.save()
    assert load_settings(panel.settings_file).camera("arena").options.framerate == 60


def test_a_detected_basler_camera_is_added_from_the_list(
    qtbot, panel: RigPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pypylon")
    monkeypatch.setenv("PYLON_CAMEMU", "2")  # pylon's own emulator: two cameras
    qtbot.mouseClick(panel.findChild(QPushButton, "rig_detect_cameras"), Qt.LeftButton)
    status = panel.findChild(QLabel, "rig_detect_status")
    assert status.isVisibleTo(panel) and status.text().startswith("Detect:")  # it says it looks
    qtbot.waitUntil(lambda: status.text().startswith("Found"), timeout=60_000)
    assert "Basler" in status.text()
    choices = panel.findChild(QComboBox, "rig_add_camera")
    labels = [choices.itemText(i) for i in range(choices.count())]
    # Two found, besides the kind a user adds by hand ("Basler camera (serial)...", issue 38)
    basler = [i for i, label in enumerate(labels) if label.startswith("Basler Emulation")]
    assert len(basler) == 2, labels
    choices.setCurrentIndex(basler[0])
    qtbot.mouseClick(panel.findChild(QPushButton, "rig_add_camera_button"), Qt.LeftButton)
    assert panel.camera_names() == ["arena", "basler"]
    panel.wait_checked()
    settings = load_settings_text(panel)
    assert settings.camera("basler").source == "basler"
    assert settings.camera("basler").options.serial  # the emulated camera's serial number


def load_settings_text(panel: RigPanel):
    from deeplabstream.settings.loader import parse_settings_text

    return parse_settings_text(panel.document.text(), panel.settings_file)


def test_inspect_says_what_the_model_is(qtbot, panel: RigPanel) -> None:
    from PyQt5.QtWidgets import QPlainTextEdit

    info = panel.findChild(QPlainTextEdit, "rig_model_info")
    qtbot.mouseClick(panel.findChild(QPushButton, "rig_model_inspect"), Qt.LeftButton)
    qtbot.waitUntil(lambda: "keypoints:" in info.toPlainText(), timeout=60_000)
    text = info.toPlainText()
    assert "nose" in text and "tail_base" in text  # the bundled arena model's keypoints
    assert "input:" in text
    # The model is named once, by the heading (issue 53: its path was printed twice).
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("model")] == [lines[0]], text
    assert not any(line.startswith("graph:") for line in lines), text  # the file named itself


def test_inspect_names_the_model_once_and_a_converted_graph_beside_it() -> None:
    """Issue 53: the Inspect box printed the model's path twice (three times for a graph)."""
    from deeplabstream.app.gui.job_targets import inspect_lines

    plain = [("model", "/m/a.onnx"), ("keypoints", "2: a, b"), ("graph", "/m/a.onnx")]
    assert inspect_lines(plain) == ["keypoints: 2: a, b"]
    converted = [("model", "/m/a.pt"), ("graph", "/cache/a.pt.fp32.onnx")]
    assert inspect_lines(converted) == ["graph:     /cache/a.pt.fp32.onnx"]


@pytest.mark.slow  # tens of seconds: CI's second step
def test_a_recorded_board_session_is_calibrated_from_the_rig_tab(panel, qtbot, tmp_path) -> None:
    """The 3D calibration button's work: a real board session solved off the GUI thread."""
    from deeplabstream.core.pinhole import read_calibration
    from tests.unit.spatial.calibration.rig import rendered_views, rig_cameras, write_session

    folder = tmp_path / "board-session"
    write_session(folder, rendered_views(rig_cameras(), 60), {})
    panel.calibration_box.calibrate_session(folder)
    # It runs in a helper process; a line says its stage and the time so far (issue 28).
    status = panel.findChild(QLabel, "rig_calibration_status")
    assert status.isVisibleTo(panel)
    assert re.fullmatch(r"Calibration: .+ \(\d+ s\)", status.text()), status.text()
    qtbot.waitUntil(lambda: panel.calibration_box.calibration_edit.text() != "", timeout=280_000)
    assert (
        panel.document.get("Triangulation", "CALIBRATION")
        == panel.calibration_box.calibration_edit.text()
    )
    written = folder / "calibration.toml"
    assert set(read_calibration(written)) == {"top", "left", "right"}
    assert f"wrote {written}" in panel.calibration_box.calibration_info.toPlainText()


def test_a_session_without_the_board_says_so_and_changes_nothing(panel, qtbot, tmp_path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    panel.calibration_box.calibrate_session(folder)
    info = panel.calibration_box.calibration_info
    qtbot.waitUntil(lambda: "calibration failed" in info.toPlainText(), timeout=60_000)
    assert panel.calibration_box.calibration_edit.text() == ""
    assert panel.document.get("Triangulation", "CALIBRATION") in (None, "")
