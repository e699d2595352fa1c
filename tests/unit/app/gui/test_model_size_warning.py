"""The window says when a model runs on frames of another size than it was made for.

A real window (offscreen), a real stream and pose worker: a Lightning Pose model trained on
396x406 labelled frames, run on the simulated arena's 640x480 frames
(``../shared/data/lp-mirror-mouse-resnet18``).
"""

from __future__ import annotations

import json
from pathlib import Path

from PyQt5.QtCore import Qt

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.messages import WARNING_COLOURS
from deeplabstream.app.gui.session import Part
from tests.support.files import write_settings
from tests.support.paths import shared_data
from tests.support.processes import only_session

START_TIMEOUT_MS = 90_000  # spawning processes and loading the model on a busy 2-core machine


def _start(qtbot, window: MainWindow, part: Part) -> None:
    """Click the part's button and wait until it runs."""
    qtbot.mouseClick(window.buttons[part], Qt.LeftButton)

    def running() -> None:
        assert window.controller.busy is None and window.controller.running(part)

    qtbot.waitUntil(running, timeout=START_TIMEOUT_MS)


def test_start_analysis_with_a_model_made_for_another_frame_size_says_so(
    qtbot, tmp_path: Path
) -> None:
    model = shared_data("lp-mirror-mouse-resnet18/model")
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 640\nHEIGHT = 480\n"
        f"[Pose]\nMODEL_PATH = {model}\n",
    )
    window = MainWindow(settings, tmp_path / "out")
    window.show()
    try:
        _start(qtbot, window, Part.STREAM)
        _start(qtbot, window, Part.ANALYSIS)
        shown = window.info.full_text().split("\n")
        notice = next((line for line in shown if "396x406" in line), "")
        assert notice.startswith("camera 'arena'"), shown
        assert window.info.colours == WARNING_COLOURS  # a warning, shown until dismissed
        assert "396x406" in notice and "640x480" in notice and "not validated" in notice
    finally:
        window.close()  # as a user does: it goes once every part stopped and files are final
        qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
    info = json.loads((only_session(tmp_path / "out") / "session.json").read_text())
    (warning,) = info["warnings"]
    assert notice == warning
