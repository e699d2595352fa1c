"""Issue 43: the live view says each fly's own state of a region of ``ANIMAL = each``.

The real window (offscreen) streams the two-fly clip of ../shared/data/sleap-flies as a video
camera, analyses it with the sleap-nn export (a bottom-up model of two animals) and runs a config
experiment whose region covers the arena for each animal: the inference worker's status carries
each animal's state (``TriggerView.animal_states``) to the label on the region's edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt5.QtCore import Qt

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.core.device_lock import LOCK_ENV
from tests.support.files import write_settings
from tests.support.paths import shared_data

START_TIMEOUT_MS = 120_000  # processes spawned and a model loaded on a busy 2-core machine
# The whole 1024 x 1024 arena: both flies are in it whenever the model finds them.
ZONE = (
    "[Experiment]\nDESCRIPTION = Count each fly's entries into the arena\n\n"
    "[Trigger arena_zone]\nKIND = region\nSHAPE = circle 512 512 700\nKEYPOINT = thorax\n"
    "ANIMAL = each\nMIN_LIKELIHOOD = 0.1\n\n"
    "[Rule entry]\nWHEN = arena_zone\nSTARTS_TRIAL = true\n"
)


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    folder = shared_data("sleap-flies")
    experiment = tmp_path / "fly_zone.ini"
    experiment.write_text(ZONE)
    clip = folder / "inference" / "flies_clip_first100.mp4"
    settings = write_settings(
        tmp_path,
        f"[Camera arena]\nSOURCE = video\nPATH = {clip}\n"
        f"LOOP = true\n[Pose]\nMODEL_PATH = {folder / 'onnx' / 'flies_bottomup_tiny_onnx'}\n"
        f"MAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n[Experiment]\nNAME = {experiment}\n",
    )
    main = MainWindow(settings, tmp_path / "out")
    main.show()
    yield main
    main.close()
    qtbot.waitUntil(lambda: main.closed_down, timeout=START_TIMEOUT_MS)
    main.deleteLater()


def _start(qtbot, window: MainWindow, part: Part) -> None:
    button = window.buttons[part]
    qtbot.waitUntil(button.isEnabled, timeout=START_TIMEOUT_MS)
    qtbot.mouseClick(button, Qt.LeftButton)

    def running() -> None:
        assert window.controller.busy is None, window.banner.label.text()
        assert window.controller.running(part), window.banner.label.text()

    qtbot.waitUntil(running, timeout=START_TIMEOUT_MS)


@pytest.mark.slow
def test_the_live_view_names_each_flys_state_in_an_each_animal_region(
    qtbot, window: MainWindow
) -> None:
    window.rig_panel.wait_checked()
    assert window.rig_panel.problems == []
    for part in (Part.STREAM, Part.ANALYSIS, Part.EXPERIMENT):
        _start(qtbot, window, part)
    view = window.view_side.live_view.views["arena"]

    def both_flies_in_the_zone() -> None:
        assert "arena_zone: 1 on, 2 on" in [text for _, _, text in view.names], view.names

    qtbot.waitUntil(both_flies_in_the_zone, timeout=START_TIMEOUT_MS)
    status = window.controller.stream.pose.analysis.experiment_status
    assert status is not None
    zone = next(t for t in status.triggers if t.name == "arena_zone")
    assert zone.animal_states == ((1, True), (2, True)) and zone.active
