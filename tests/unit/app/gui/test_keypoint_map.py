"""Keypoints in the rig check, their mapping from the Rig tab, and regions made rules.

Real widgets (offscreen), real settings and config files, and a real model: a copy of the bundled
arena model whose ``nose`` is called ``snout``, as a lab's own model might call it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QSpinBox,
    QWidget,
)

from deeplabstream.app.gui.keypoint_map import canonical, suggest_mapping
from deeplabstream.app.gui.live_view import CameraView
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.region_editor import RegionEditor
from deeplabstream.app.gui.rig_check import trigger_line
from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.session import Part
from deeplabstream.experiments.config.edit import ConfigText
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER, config_file_of, load_experiment
from deeplabstream.pose.loading import BUNDLED_MODEL
from tests.support.files import write_settings

SNOUT_KEYPOINTS = ["snout", "left_ear", "right_ear", "neck", "body_center", "tail_base"]
FRAME = np.zeros((480, 640, 3), np.uint8)


@pytest.fixture
def snout_model(tmp_path: Path) -> Path:
    """The bundled arena model, its ``nose`` renamed ``snout``."""
    model = tmp_path / "snout_model"
    shutil.copytree(BUNDLED_MODEL, model)
    description = model / "model.json"
    data = json.loads(description.read_text())
    rename = {"nose": "snout"}
    data["keypoints"] = [rename.get(k, k) for k in data["keypoints"]]
    data["skeleton"] = [[rename.get(k, k) for k in pair] for pair in data["skeleton"]]
    description.write_text(json.dumps(data))
    return model


def _settings(tmp_path: Path, model: Path, experiment: str = "ExampleExperiment") -> Path:
    return write_settings(
        tmp_path,
        "; my rig\n[Camera arena]\nSOURCE = synthetic\n"
        f"[Pose]\nMODEL_PATH = {model}\n"
        f"[Experiment]\nNAME = {experiment}\n[Device stimulus_box]\nTYPE = log\n",
    )


def _checked(rig: RigPanel) -> None:
    rig.wait_checked()
    rig.keypoint_map.wait()


@pytest.fixture
def rig(qtbot, tmp_path: Path, snout_model: Path) -> RigPanel:
    panel = RigPanel(_settings(tmp_path, snout_model))
    qtbot.addWidget(panel)
    panel.show()
    _checked(panel)
    return panel


# --------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("wanted", "available", "expected"),
    [
        (["nose"], ["snout", "leftear"], {"nose": "snout"}),
        (["tail_base"], ["TailBase", "tailtip"], {"tail_base": "TailBase"}),
        (["left_ear", "right_ear"], ["ear_right", "ear_left"], {"left_ear": "ear_left",
                                                               "right_ear": "ear_right"}),
        (["l_ear"], ["LeftEar", "RightEar"], {"l_ear": "LeftEar"}),
        (["neck"], ["snout", "tailbase"], {"neck": None}),
        (["nose", "snout"], ["snout"], {"nose": None, "snout": "snout"}),  # each taken once
        (["paw1LH"], ["paw1LH_top", "paw2LF_top"], {"paw1LH": "paw1LH_top"}),
    ],
)  # fmt: skip
def test_suggestions_follow_synonyms_spellings_and_sides(
    wanted: list[str], available: list[str], expected: dict[str, str | None]
) -> None:
    assert suggest_mapping(wanted, available) == expected


def test_a_left_ear_is_never_suggested_for_a_right_ear() -> None:
    assert canonical("leftear") == ("left", "ear") == canonical("EarLeft")
    assert suggest_mapping(["right_ear"], ["leftear"]) == {"right_ear": None}


# ------------------------------------------------------------------------------------ rig tab


def test_the_rig_check_names_the_missing_keypoint_and_the_model_keypoints(
    rig: RigPanel,
) -> None:
    problems = rig.findChild(QLabel, "rig_problems").text()
    assert "keypoint 'nose'" in problems and ", ".join(SNOUT_KEYPOINTS) in problems
    assert "nose_in_left, nose_in_right" in problems
    assert not rig.findChild(QAbstractButton, "rig_save").isEnabled()


def test_mapping_a_shipped_experiment_writes_a_copy_and_the_check_passes(
    qtbot, rig: RigPanel, tmp_path: Path
) -> None:
    shipped = (CONFIG_FOLDER / "ExampleExperiment.ini").read_bytes()
    box = rig.keypoint_map
    assert box.isVisible() and list(box.choices) == ["nose"]
    choice = rig.findChild(QComboBox, "keypoint_map_nose")
    assert choice.currentText() == "snout"  # suggested by name
    with qtbot.waitSignal(box.mapped):
        qtbot.mouseClick(rig.findChild(QAbstractButton, "keypoint_map_save"), Qt.LeftButton)
    _checked(rig)
    copy = tmp_path / "experiments" / "ExampleExperiment.ini"  # the lab's, read first
    assert (CONFIG_FOLDER / "ExampleExperiment.ini").read_bytes() == shipped
    # NAME keeps what the user wrote (issue 53: it was rewritten as the copy's absolute path)
    assert rig.document.get("Experiment", "NAME") == "ExampleExperiment"
    assert config_file_of("ExampleExperiment", tmp_path) == copy.resolve()
    text = copy.read_text()
    assert text.count("KEYPOINT = snout") == 2 and "KEYPOINT = nose" not in text
    assert text.startswith("# DeepLabStream's example experiment")
    assert rig.problems == [] and not box.isVisible()
    assert "Saved into" in rig.findChild(QLabel, "keypoint_map_status").text()
    assert rig.save() is not None  # the settings now name the copy


def test_a_python_experiment_is_told_to_rename_in_its_code(
    qtbot, tmp_path: Path, snout_model: Path
) -> None:
    (tmp_path / "experiments").mkdir()
    code = tmp_path / "experiments" / "zone.py"
    code.write_text(
        "from deeplabstream.experiments.base import Experiment\n"
        "from deeplabstream.experiments.triggers import Circle, Region\n\n\n"
        "class Zone(Experiment):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__()\n"
        "        self.add_trigger('zone', Region(Circle(10, 10, 5), keypoint='nose'))\n\n"
        "    def on_update(self, obs, t):\n"
        "        return []\n"
    )
    panel = RigPanel(_settings(tmp_path, snout_model, "zone"))
    qtbot.addWidget(panel)
    panel.show()
    _checked(panel)
    # The lab's Python is imported when the user asks (issue 37 #11), then its keypoints told.
    assert panel.keypoint_map.report.mismatches == ()
    panel.allow_experiment()
    _checked(panel)
    intro = panel.findChild(QLabel, "keypoint_map_intro").text()
    assert "Python" in intro and "nose" in intro
    assert panel.keypoint_map.choices == {}
    assert not panel.findChild(QAbstractButton, "keypoint_map_save").isVisible()


def test_one_camera_shows_no_camera_question_beside_the_triggers() -> None:
    experiment = load_experiment("ExampleExperiment")
    trigger = experiment.triggers["nose_in_left"]
    assert trigger_line("nose_in_left", trigger, ["arena"]) == "nose_in_left (region)"
    assert trigger_line("nose_in_left", trigger, ["a", "b"]) == "nose_in_left (region, camera?)"


# -------------------------------------------------------------------------------- regions tab


@pytest.fixture
def window(qtbot, tmp_path: Path, snout_model: Path) -> Iterator[MainWindow]:
    experiment = tmp_path / "ExampleExperiment.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", experiment)
    main = MainWindow(_settings(tmp_path, snout_model, str(experiment)), tmp_path / "out")
    main.show()
    _checked(main.rig_panel)
    yield main
    main.close()
    qtbot.waitUntil(lambda: main.closed_down, timeout=30_000)
    main.deleteLater()


@pytest.fixture
def tile(qtbot) -> Iterator[CameraView]:
    holder = QWidget()
    qtbot.addWidget(holder)
    view = CameraView("arena")
    view.setFixedSize(320, 240)
    view.show_frame(FRAME)
    QHBoxLayout(holder).addWidget(view)
    holder.show()
    qtbot.waitExposed(holder)
    yield view


def _drag(view: CameraView, start: tuple[float, float], end: tuple[float, float]) -> None:
    for kind, (x, y) in (
        (QEvent.MouseButtonPress, start),
        (QEvent.MouseMove, end),
        (QEvent.MouseButtonRelease, end),
    ):
        button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
        held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
        event = QMouseEvent(kind, view.to_widget(x, y), button, held, Qt.NoModifier)
        QApplication.sendEvent(view, event)


def _choose(box: QComboBox, text: str) -> None:
    index = box.findText(text)
    assert index >= 0, text
    box.setCurrentIndex(index)
    box.activated.emit(index)


def test_a_drawn_region_gets_its_camera_a_model_keypoint_and_a_pulse_on_entry(
    qtbot, window: MainWindow, tile: CameraView
) -> None:
    editor: RegionEditor = window.region_editor
    # the Rig tab's look gave the editor the model's keypoints and the rig's devices
    assert editor.keypoints_for("arena") == SNOUT_KEYPOINTS
    assert editor.devices == ["stimulus_box"]
    labels = [editor.region_list.item(i).text() for i in range(editor.region_list.count())]
    assert labels[0].startswith("nose_in_left: circle 160 240 60, nose (not in the model)")
    assert "camera?" not in " ".join(labels) and "any camera" not in " ".join(labels)

    editor.attach({"arena": tile})
    qtbot.mouseClick(editor.findChild(QAbstractButton, "region_circle"), Qt.LeftButton)
    _drag(tile, (300, 200), (340, 200))
    region = editor.region("region_1")
    assert region is not None and region.camera == "arena" and region.keypoint == "snout"
    camera_box = editor.findChild(QComboBox, "region_camera")
    assert camera_box.isHidden()  # one camera: no choice to make
    keypoints = editor.findChild(QComboBox, "region_keypoint")
    assert [keypoints.itemText(i) for i in range(keypoints.count())] == SNOUT_KEYPOINTS
    _choose(keypoints, "tail_base")
    _choose(editor.findChild(QComboBox, "region_action"), "Pulse")
    assert editor.findChild(QComboBox, "region_device").currentText() == "stimulus_box"
    editor.findChild(QSpinBox, "region_channel").setValue(3)
    editor.findChild(QDoubleSpinBox, "region_duration").setValue(100.0)
    editor.findChild(QDoubleSpinBox, "region_refractory").setValue(2.0)
    assert not editor.findChild(QDoubleSpinBox, "region_train_on").isVisibleTo(editor)
    _choose(editor.findChild(QComboBox, "region_edge"), "on exit")
    assert "pulse 100 ms, stimulus_box channel 3, on exit" in editor.status.text()
    with qtbot.waitSignal(editor.saved):
        qtbot.mouseClick(editor.findChild(QAbstractButton, "region_save"), Qt.LeftButton)

    config = editor.file.path
    loaded = load_experiment_config(config)
    params = loaded.triggers["region_1"].params
    assert (params["camera"], params["keypoint"]) == ("arena", "tail_base")
    pulse = loaded.stimulations["region_1_action"]
    assert (pulse.device, pulse.command, pulse.channel, pulse.duration) == (
        "stimulus_box", "pulse", 3, 0.1,
    )  # fmt: skip
    rule = next(r for r in loaded.rules if r.name == "region_1_action")
    assert (rule.when, rule.edge, rule.refractory) == (("region_1",), "falling", 2.0)
    # the rule shows again after the save, as the file has it
    assert editor.region("region_1").action.rule == "region_1_action"
    assert "then 2 s refractory" in editor.region_list.item(2).text()

    # a train instead, then no action: the rule and its stimulation leave the file
    editor.select("region_1")
    _choose(editor.findChild(QComboBox, "region_action"), "Train")
    assert editor.findChild(QDoubleSpinBox, "region_train_on").isVisibleTo(editor)
    editor.save()
    assert ConfigText(config.read_text()).region_action("region_1").command == "pattern"
    load_experiment_config(config)
    _choose(editor.findChild(QComboBox, "region_action"), "No action")
    editor.save()
    assert "region_1_action" not in config.read_text()
    # deleting the region is allowed again and leaves the example as it was, but for region_1
    editor.select("region_1")
    assert editor.delete_selected() and editor.save()


def test_the_regions_follow_a_mapping_saved_in_the_rig_tab(qtbot, window: MainWindow) -> None:
    rig, editor = window.rig_panel, window.region_editor
    assert [r.keypoint for r in editor.regions] == ["nose", "nose"]
    with qtbot.waitSignal(rig.keypoint_map.mapped):
        rig.keypoint_map.save()
    _checked(rig)
    assert [r.keypoint for r in editor.regions] == ["snout", "snout"]
    assert not editor.dirty and rig.problems == []
    listing = window.findChild(QListWidget, "region_list")
    assert "(not in the model)" not in listing.item(0).text()


def test_start_stream_refused_for_a_keypoint_and_the_banner_goes_when_it_is_mapped(
    qtbot, window: MainWindow
) -> None:
    qtbot.mouseClick(window.buttons[Part.STREAM], Qt.LeftButton)
    qtbot.waitUntil(lambda: "is not a keypoint of" in window.banner.label.text(), timeout=30_000)
    assert not window.controller.streaming and window.banner.isVisible()
    assert "snout" in window.banner.label.text()  # the model's keypoints are listed
    rig = window.rig_panel
    qtbot.mouseClick(rig.findChild(QAbstractButton, "keypoint_map_save"), Qt.LeftButton)
    _checked(rig)
    qtbot.waitUntil(lambda: window.banner.isHidden(), timeout=10_000)
    assert rig.problems == []
