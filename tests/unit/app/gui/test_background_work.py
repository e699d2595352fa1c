"""Issue 28: slow work never blocks the window and never drops a click (offscreen window).

Detect, Inspect and a model's conversion run in helper processes (app/gui/jobs.py) with a progress
line. To test what the window does *while* a conversion runs, without depending on how fast the
machine is, the tests pause the helper process with SIGSTOP: the conversion then lasts exactly
as long as the test needs, and SIGCONT lets it finish. The DeepLabCut 3.0 model of
../shared/data/dlc3-openfield-cspnext_s is converted once into a private cache for the module
by the test that waits for the load to end (the helper process still loads it at each Start
Analysis, which is what is paused); the tests skip when it is absent.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QPlainTextEdit, QPushButton

from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.session import Part
from deeplabstream.core.device_lock import LOCK_ENV
from deeplabstream.pose.formats.conversion import CACHE_ENV
from tests.support.files import write_settings
from tests.support.held_job import STAGE, held_job
from tests.support.paths import shared_data

START_TIMEOUT_MS = 120_000
CONVERT_TIMEOUT_MS = 300_000  # a first conversion on a loaded 2-core machine
DLC = "dlc3-openfield-cspnext_s"
EXPORT = "model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
CLIP = "clip/m3v1mp4_first100.mp4"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's converted-model cache (never the shared folder)."""
    return tmp_path_factory.mktemp("converted")


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own device locks, remembered choices and converted-model cache."""
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "window.ini"))
    monkeypatch.setenv(CACHE_ENV, str(cache))


def _paused(job: ProcessJob | None) -> int:
    """Pause the job's helper process (SIGSTOP); return its process id."""
    assert job is not None and job.pid is not None
    os.kill(job.pid, signal.SIGSTOP)
    return job.pid


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def converted(cache: Path) -> Path:
    """The DeepLabCut export, converted once into the module's cache; its path."""
    from deeplabstream.pose.loading import load_model

    export = shared_data(f"{DLC}/{EXPORT}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(cache))
        load_model(export)
    return export


@pytest.fixture
def dlc_rig(tmp_path: Path) -> Path:
    """The lab's own DeepLabCut 3.0 model and its open-field clip as the camera."""
    export, clip = shared_data(f"{DLC}/{EXPORT}"), shared_data(f"{DLC}/{CLIP}")
    return write_settings(
        tmp_path,
        f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\nLOOP = true\n"
        f"[Pose]\nMODEL_PATH = {export}\n",
    )


@pytest.fixture
def streaming(qtbot, dlc_rig: Path, tmp_path: Path) -> Iterator[MainWindow]:
    window = MainWindow(dlc_rig, tmp_path / "out")
    window.show()
    window.rig_panel.wait_checked()
    assert window.rig_panel.problems == []
    window.buttons[Part.STREAM].click()
    qtbot.waitUntil(
        lambda: window.controller.running(Part.STREAM) and not window.controller.working,
        timeout=START_TIMEOUT_MS,
    )
    yield window
    window.close()
    qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
    window.deleteLater()


# -- the progress line ---------------------------------------------------------------------------

PROGRESS_LINE = re.compile(r"^(?P<what>[^:]+): (?P<stage>.+) \((?P<seconds>\d+) s\)$")


def test_the_progress_line_says_the_stage_and_its_whole_seconds(qtbot, tmp_path: Path) -> None:
    """Issue 28: slow work shows "what: stage (N s)", the seconds counting while it runs.

    The job (a real helper process) stays in its stage until the test releases it, so the
    line is watched for as long as the test needs, on any machine.
    """
    release = tmp_path / "release"
    job = ProcessJob("Check", held_job, (str(release),))
    shown: list[str] = []
    job.progress.connect(shown.append)
    job.start()
    try:
        qtbot.waitUntil(lambda: f"Check: {STAGE} (2 s)" in shown, timeout=60_000)
    finally:
        release.write_text("go\n")
    with qtbot.waitSignal(job.finished, timeout=60_000) as ended:
        pass
    assert ended.args[0].value == "released" and ended.args[0].error == ""
    lines = [PROGRESS_LINE.match(text) for text in shown]
    assert all(lines), shown
    assert shown[0] == "Check: starting its helper process (0 s)"
    held = [int(line["seconds"]) for line in lines if line and line["stage"] == STAGE]
    assert held[-1] >= 2 and held == sorted(set(held)), shown  # whole seconds, counting up
    assert {line["what"] for line in lines if line} == {"Check"}


# -- Detect --------------------------------------------------------------------------------------


def test_detect_runs_beside_the_window_and_says_where_it_looked(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28 #3: Detect froze the window 2.6 s per click and, finding nothing, said nothing."""
    monkeypatch.delenv("PYLON_CAMEMU", raising=False)  # no emulated Basler cameras here
    rig = RigPanel(write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n"))
    qtbot.addWidget(rig)
    button = rig.findChild(QPushButton, "rig_detect_cameras")
    status = rig.findChild(QLabel, "rig_detect_status")
    qtbot.mouseClick(button, Qt.LeftButton)
    # The click returns at once: the search runs in a helper process, the line says so.
    assert rig.camera_box._detection is not None and rig.camera_box._detection.running
    assert not button.isEnabled() and status.text().startswith("Detect: ")
    qtbot.waitUntil(lambda: button.isEnabled(), timeout=60_000)
    if status.text().startswith("Found"):
        pytest.skip(f"this computer has cameras: {status.text()}")
    text = status.text()
    assert text.startswith("No camera found.")
    for kind in ("Basler:", "RealSense:", "OpenCV:"):
        assert kind in text  # each kind of camera says why none was found
    assert "simulated arena and video files" in text


# -- Inspect -------------------------------------------------------------------------------------


def test_inspect_always_describes_the_model_named(qtbot, tmp_path: Path) -> None:
    """Issue 28 #7: Inspect kept describing a model no longer selected."""
    rig = RigPanel(write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n"))
    qtbot.addWidget(rig)
    rig.wait_checked()
    info = rig.findChild(QPlainTextEdit, "rig_model_info")
    status = rig.findChild(QLabel, "rig_model_status")
    qtbot.mouseClick(rig.findChild(QPushButton, "rig_model_inspect"), Qt.LeftButton)
    old = rig.model_box._inspection
    pid = _paused(old)  # the bundled model's description is held back...
    assert info.toPlainText().startswith("model: the bundled arena model")
    assert status.text().startswith("Inspect: ")
    rig.model_box.set_model("elsewhere/other_model")  # ...while the user names another model
    assert info.toPlainText() == (
        f"model: {tmp_path / 'elsewhere/other_model'}\nPress Inspect to see its network and "
        "keypoints."
    )
    assert old is not None and old.outcome is not None and old.outcome.error == "cancelled"
    qtbot.waitUntil(lambda: _gone(pid), timeout=10_000)  # its helper process was ended
    assert rig.model_box.model_facts is None and status.isHidden()

    rig.model_box.set_model("")  # the bundled model again: inspected now, it is the one described
    qtbot.mouseClick(rig.findChild(QPushButton, "rig_model_inspect"), Qt.LeftButton)
    qtbot.waitUntil(lambda: rig.model_box.model_facts is not None, timeout=60_000)
    assert info.toPlainText().startswith("model: the bundled arena model\n")
    assert "keypoints:" in info.toPlainText() and "tail_base" in info.toPlainText()
    assert rig.model_box.model_facts.path == "" and "nose" in rig.model_box.model_facts.keypoints


# -- a model loading while the stream runs -------------------------------------------------------


@pytest.mark.slow
def test_recording_and_stop_work_while_the_model_loads(
    qtbot, converted: Path, streaming: MainWindow
) -> None:
    """Issue 28 #2 and #9: while the model loaded (converting), every button was greyed and a
    Start Recording click was dropped; the window showed no progress.

    The model's helper process (which converts a new export, or loads the converted graph) is
    paused while the recording starts and stops, so both clicks land during the load. The
    model was converted beforehand (``converted``), so the load ends soon after it goes on.
    """
    window, controller = streaming, streaming.controller
    window.buttons[Part.ANALYSIS].click()
    load = controller.loading
    assert load is not None and load.job is not None  # a DeepLabCut export is converted first
    pid = _paused(load.job)  # the conversion lasts as long as the test needs
    assert window.buttons[Part.ANALYSIS].text() == "Cancel Analysis"
    assert window.busy_label.text().startswith("starting analysis: ")
    assert not window.buttons[Part.EXPERIMENT].isEnabled()
    assert "model is still loading" in window.buttons[Part.EXPERIMENT].toolTip()
    for part in (Part.STREAM, Part.RECORDING):
        assert window.buttons[part].isEnabled(), part

    qtbot.mouseClick(window.buttons[Part.RECORDING], Qt.LeftButton)
    qtbot.waitUntil(lambda: controller.running(Part.RECORDING), timeout=START_TIMEOUT_MS)
    assert controller.loading is load  # the model is still loading meanwhile
    qtbot.waitUntil(lambda: controller.busy is None, timeout=START_TIMEOUT_MS)
    # Frames reach the recording (its frames table has rows) before it is stopped, whatever
    # the machine's speed: a recording stopped before its first frame leaves no video.
    table = controller.session_dir / "openfield.frames.csv"
    qtbot.waitUntil(lambda: _rows(table) >= 3, timeout=START_TIMEOUT_MS)
    qtbot.mouseClick(window.buttons[Part.RECORDING], Qt.LeftButton)  # Stop Recording
    qtbot.waitUntil(
        lambda: controller.busy is None and not controller.running(Part.RECORDING),
        timeout=START_TIMEOUT_MS,
    )
    assert controller.loading is load

    os.kill(pid, signal.SIGCONT)  # the conversion goes on, the worker starts, analysis runs
    qtbot.waitUntil(lambda: controller.running(Part.ANALYSIS), timeout=CONVERT_TIMEOUT_MS)
    assert controller.loading is None and window.buttons[Part.ANALYSIS].text() == "Stop Analysis"
    assert window.banner.isHidden(), window.banner.label.text()
    folder = controller.session_dir
    assert folder is not None and (folder / "openfield.mp4").is_file()


def _rows(table: Path) -> int:
    """Rows of a frames table below its header (0 while it does not exist)."""
    return max(0, len(table.read_text().splitlines()) - 1) if table.is_file() else 0


def test_stop_stream_during_a_conversion_stops_at_once(qtbot, streaming: MainWindow) -> None:
    """Issue 28 #2: Stop Stream stays usable while a model loads, and stops the conversion."""
    window, controller = streaming, streaming.controller
    window.buttons[Part.ANALYSIS].click()
    pid = _paused(controller.loading.job if controller.loading else None)
    qtbot.mouseClick(window.buttons[Part.STREAM], Qt.LeftButton)  # Stop Stream
    assert controller.loading is None
    qtbot.waitUntil(lambda: not controller.streaming and not controller.working, timeout=60_000)
    qtbot.waitUntil(lambda: _gone(pid), timeout=10_000)  # the conversion's process was ended
    assert window.buttons[Part.STREAM].text() == "Start Stream"


def test_cancel_analysis_during_a_conversion(qtbot, streaming: MainWindow) -> None:
    """Issue 28 #2: the Analysis button cancels a load in progress; the stream goes on."""
    window, controller = streaming, streaming.controller
    window.buttons[Part.ANALYSIS].click()
    pid = _paused(controller.loading.job if controller.loading else None)
    qtbot.mouseClick(window.buttons[Part.ANALYSIS], Qt.LeftButton)  # Cancel Analysis
    assert controller.loading is None and controller.streaming
    assert window.buttons[Part.ANALYSIS].text() == "Start Analysis"
    assert "cancelled" in window.info.label.text()
    assert window.banner.isHidden()  # a cancel is not a failure
    qtbot.waitUntil(lambda: _gone(pid), timeout=10_000)
