"""The Regions tab after issue 43: a rule deleted in the rule panel (and then its region), the
animal a region watches (1..N, any, each) and each animal's state on the live view.

Real widgets (offscreen), real config files saved and loaded back, a real experiment run by the
worker's :class:`ExperimentRun` (its status made by :class:`StatusReporter`) for the states, and
the real two-fly SLEAP model for the rig.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QAbstractButton, QComboBox, QHBoxLayout, QListWidget, QWidget

from deeplabstream.app.gui.live_view import CameraView, _trigger_names
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.region_editor import RegionEditor
from deeplabstream.experiments.config.edit import NO_ACTION, ConfigText
from deeplabstream.experiments.config.parse import load_experiment_config, parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers.animals import EachAnimal
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.live.processes.analysis.experiment_report import StatusReporter
from tests.support.files import write_settings
from tests.support.paths import shared_data

FRAME = np.zeros((480, 640, 3), np.uint8)
KEYPOINTS = ["nose", "tail_base"]
LEFT_RULE = "left_entry: when nose_in_left becomes true, do left_stimulus, start a trial"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ExampleExperiment.ini"
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", path)
    return path


@pytest.fixture
def editor(qtbot, config: Path) -> Iterator[RegionEditor]:
    holder = QWidget()
    qtbot.addWidget(holder)
    view = CameraView("arena")
    view.setFixedSize(320, 240)
    view.show_frame(FRAME)
    QHBoxLayout(holder).addWidget(view)
    holder.show()
    editor = RegionEditor()
    qtbot.addWidget(editor)
    editor.show()
    editor.attach({"arena": view})
    editor.load(config, ["arena"], KEYPOINTS)
    yield editor  # (the holder stays referenced until the test ends)


def _texts(box: QComboBox) -> list[str]:
    return [box.itemText(i) for i in range(box.count())]


def _choose(box: QComboBox, text: str) -> None:
    index = box.findText(text)
    assert index >= 0, (text, _texts(box))
    box.setCurrentIndex(index)
    box.activated.emit(index)


def _labels(editor: RegionEditor) -> list[str]:
    listing = editor.findChild(QListWidget, "region_list")
    return [listing.item(i).text() for i in range(listing.count())]


# ------------------------------------------------------------------------------ deleting a rule


def test_a_rule_is_deleted_in_the_panel_and_then_its_region(
    qtbot, editor: RegionEditor, config: Path
) -> None:
    failures: list[str] = []
    editor.failed.connect(failures.append)
    editor.select("nose_in_left")
    rules = editor.findChild(QComboBox, "region_rules")
    delete_rule = editor.findChild(QAbstractButton, "region_rule_delete")
    assert rules.isVisibleTo(editor) and _texts(rules) == [LEFT_RULE]
    assert not editor.delete_selected()  # the rule names it: refused, and told where to go
    assert "left_entry" in failures[-1] and "Delete rule" in failures[-1]

    # Revert brings a deleted rule back
    qtbot.mouseClick(delete_rule, Qt.LeftButton)
    assert editor.file.deleted_rules == ["left_entry"] and editor.dirty
    editor.revert()
    editor.select("nose_in_left")
    assert editor.file.deleted_rules == [] and _texts(rules) == [LEFT_RULE]

    qtbot.mouseClick(delete_rule, Qt.LeftButton)
    assert "[Rule left_entry], [Stimulation left_stimulus]" in editor.status.text()
    assert not rules.isVisibleTo(editor)  # no rule names the region any more
    region = editor.region("nose_in_left")
    assert region is not None and region.action is not None
    assert region.action.command == NO_ACTION  # the rule was its action: none is shown now
    assert editor.findChild(QComboBox, "region_action").currentText() == "No action"
    assert config.read_text().count("[Rule ") == 2  # nothing written before Save
    assert editor.delete_selected()
    with qtbot.waitSignal(editor.saved):
        qtbot.mouseClick(editor.findChild(QAbstractButton, "region_save"), Qt.LeftButton)

    loaded = load_experiment_config(config)
    assert set(loaded.triggers) == {"nose_in_right"}
    assert [rule.name for rule in loaded.rules] == ["right_entry"]
    assert set(loaded.stimulations) == {"right_stimulus"}
    assert config.read_text().startswith("# DeepLabStream's example experiment")
    assert editor.file.deleted_rules == [] and not editor.dirty
    loaded.build()


# ------------------------------------------------------------------------------------- animals


def test_the_animal_is_a_choice_only_with_several_animals_and_each_is_saved(
    qtbot, editor: RegionEditor, config: Path
) -> None:
    animal = editor.findChild(QComboBox, "region_animal")
    editor.use_rig({"arena": KEYPOINTS}, ["stimulus_box"], {"arena": 1})
    editor.select("nose_in_left")
    assert not animal.isVisibleTo(editor)  # one animal: nothing to choose
    assert "animal" not in " ".join(_labels(editor))

    editor.use_rig({"arena": KEYPOINTS}, ["stimulus_box"], {"arena": 2})
    assert animal.isVisibleTo(editor) and animal.isEnabled()
    assert _texts(animal) == [
        "animal 1", "animal 2", "any animal", "each animal (a rule per animal)",
    ]  # fmt: skip
    assert animal.currentText() == "animal 1"  # what the file's region reads (no ANIMAL)
    _choose(animal, "each animal (a rule per animal)")
    assert editor.dirty and "nose_in_left now watches each animal" in editor.status.text()
    editor.select("nose_in_right")
    _choose(animal, "any animal")
    assert _labels(editor)[0].startswith("nose_in_left: circle 160 240 60, nose of each animal")
    assert "nose of any animal" in _labels(editor)[1]
    with qtbot.waitSignal(editor.saved):
        editor.save()

    assert [r.animal for r in ConfigText(config.read_text()).regions()] == ["each", "any"]
    loaded = load_experiment_config(config)
    assert loaded.triggers["nose_in_left"].params["animal"] == "each"
    experiment = loaded.build()
    assert isinstance(experiment.triggers["nose_in_left"].inner, EachAnimal)
    editor.load(config, ["arena"], KEYPOINTS)  # read back: the choice is the file's
    editor.select("nose_in_left")
    assert animal.currentText() == "each animal (a rule per animal)"

    # back to one animal's model: the region's choice stays visible, so it is seen
    editor.use_rig({"arena": KEYPOINTS}, ["stimulus_box"], {"arena": 1})
    assert animal.isVisibleTo(editor) and animal.currentText().startswith("each animal")


def test_each_animals_state_reaches_the_live_views_label(tmp_path: Path) -> None:
    """The worker's status carries each animal's state of an each-animal region to the label."""
    config = parse_experiment_config(
        "[Trigger zone]\nKIND = region\nSHAPE = circle 100 100 40\nKEYPOINT = nose\n"
        "ANIMAL = each\n\n[Trigger plain]\nKIND = region\nSHAPE = circle 400 100 40\n"
        "KEYPOINT = nose\n\n[Rule count]\nWHEN = zone, plain\nSTARTS_TRIAL = true\n",
        tmp_path / "zone.ini",
    )
    runtime = ExperimentRuntime(config.build())
    run = ExperimentRun(runtime, {}, tmp_path / "events.csv")
    animals = np.array(
        [[[100.0, 100.0, 0.9], [0.0, 0.0, 0.9]], [[300.0, 300.0, 0.9], [0.0, 0.0, 0.9]]]
    )  # animal 1's nose in the zone, animal 2's not
    runtime.start()
    observation = Observation(
        0.0, "arena", 0, animals[0], tuple(KEYPOINTS), host_time_s=time.perf_counter(),
        animals=animals,
    )  # fmt: skip
    run.on_poses([observation], time.perf_counter_ns())
    status = StatusReporter(run).status()
    views = {trigger.name: trigger for trigger in status.triggers}
    assert views["zone"].animal_states == ((1, True), (2, False))
    assert views["zone"].active  # true while some animal is in it
    assert views["plain"].animal_states == ()  # one animal's trigger: no states per animal
    assert _trigger_names(status, "arena") == [
        (100.0, 60.0, "zone: 1 on, 2 off"),
        (400.0, 60.0, "plain"),
    ]


# --------------------------------------------------------------------- a real two-fly model


@pytest.fixture
def fly_window(qtbot, tmp_path: Path, config: Path) -> Iterator[MainWindow]:
    model = shared_data("sleap-flies") / "onnx" / "flies_bottomup_tiny_onnx"
    settings = write_settings(
        tmp_path,
        f"[Camera arena]\nSOURCE = synthetic\n[Pose]\nMODEL_PATH = {model}\nMAX_ANIMALS = 2\n"
        f"[Experiment]\nNAME = {config}\n[Device stimulus_box]\nTYPE = log\n",
    )
    main = MainWindow(settings, tmp_path / "out")
    main.show()
    main.rig_panel.wait_checked()
    main.rig_panel.keypoint_map.wait()
    yield main
    main.close()
    qtbot.waitUntil(lambda: main.closed_down, timeout=30_000)
    main.deleteLater()


def test_a_two_fly_model_offers_head_for_nose_and_the_animal_choice(
    qtbot, fly_window: MainWindow, config: Path
) -> None:
    rig, editor = fly_window.rig_panel, fly_window.region_editor
    choice = rig.findChild(QComboBox, "keypoint_map_nose")
    assert choice is not None and choice.currentText() == "head"  # by meaning, not "(leave...)"
    assert editor.animals_for("arena") == 2  # [Pose] MAX_ANIMALS of a multi-animal model
    editor.select("nose_in_left")
    assert editor.findChild(QComboBox, "region_animal").isVisibleTo(editor)

    with qtbot.waitSignal(rig.keypoint_map.mapped):
        assert rig.keypoint_map.save()
    rig.wait_checked()
    rig.keypoint_map.wait()
    text = config.read_text()
    assert "DESCRIPTION = Count the head's entries" in text and "KEYPOINT = nose" not in text
    assert [r.keypoint for r in editor.regions] == ["head", "head"]
