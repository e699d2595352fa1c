"""Issue 46: the Verify button beside Open folder checks the session just ended.

A real main window (Qt's offscreen plugin; under Xvfb with ``QT_QPA_PLATFORM=xcb`` as well) runs
a real session: a synthetic camera streamed and recorded, stopped. The button's state is read
before, during and after it. Its click runs a real subprocess: ``deeplabstream-verify`` itself is
built beside this button, so the tests point :func:`app.gui.verify_run.verify_command` at a
stand-in script that prints progress, writes ``verify/summary.json`` and ``verify/report.html``
the way the command's contract says, and exits 0 (agrees), 1 (differs) or 2 (cannot verify).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PyQt5.QtCore import QObject, Qt, QUrl, pyqtSlot
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import QApplication, QPushButton

from deeplabstream.app.gui import verify_run
from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.app.gui.verify_button import OPEN_REPORT_LABEL, STREAMING_REASON, VerifyButton
from deeplabstream.outputs.video import recorded_video_bytes
from tests.support.files import write_settings
from tests.support.processes import only_session

START_TIMEOUT_MS = 90_000  # spawning the camera and recorder processes on a busy 2-core machine
VERIFY_TIMEOUT_MS = 30_000
ARENA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nWIDTH = 160\nHEIGHT = 120\n"
REASONS = [
    "arena: 2 live actions have no offline match (frames 41, 97)",
    "arena: nose p99 2.3 px > tolerance 0.5 px <H.264>",
]

# The stand-in for deeplabstream-verify: argv = SESSION_FOLDER OUTCOME.
STAND_IN = """
import json, pathlib, sys, time
folder, outcome = pathlib.Path(sys.argv[1]), sys.argv[2]
print(f"verify: re-analysing {folder.name}", flush=True)
if outcome == "slow":
    time.sleep(120)
if outcome == "cannot":
    print(f"deeplabstream-verify: {folder} holds no recording to verify", file=sys.stderr)
    sys.exit(2)
out = folder / "verify"
out.mkdir(exist_ok=True)
(out / "report.html").write_text("<html><body>verify report</body></html>")
reasons = [] if outcome == "agrees" else REASONS
verdict = "agrees" if outcome == "agrees" else "differs"
summary = {"verdict": verdict, "reasons": reasons, "report": "report.html",
           "verdict_line": verdict + ": 58 of 905 analysed frames checked (6 %)"}
(out / "summary.json").write_text(json.dumps(summary))
for reason in reasons:
    print(reason)
sys.exit(0 if outcome == "agrees" else 1)
"""


@dataclass(frozen=True)
class ButtonState:
    """What the user sees of the Verify button."""

    enabled: bool
    text: str
    tooltip: str


def _state(button: QPushButton) -> ButtonState:
    return ButtonState(button.isEnabled(), button.text(), button.toolTip())


def _wait(condition, timeout_ms: int, what: str) -> None:
    """Let the event loop run until ``condition()`` holds (module fixtures have no qtbot)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.02)


def _click(window: MainWindow, part: Part) -> None:
    button = window.buttons[part]
    assert button.isEnabled(), f"{button.text()} is disabled: {button.toolTip()}"
    button.click()


def _wait_running(window: MainWindow, part: Part, running: bool = True) -> None:
    controller = window.controller
    _wait(
        lambda: controller.busy is None and controller.running(part) is running,
        START_TIMEOUT_MS,
        f"{part.value} running={running}",
    )


@dataclass
class RecordedSession:
    """A window after a real recorded session, and the Verify button seen along the way."""

    window: MainWindow
    folder: Path
    seen: dict[str, ButtonState]


@pytest.fixture(scope="module")
def recorded(qapp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedSession]:
    """Stream and record a synthetic camera for a second in a real window, then stop."""
    folder = tmp_path_factory.mktemp("verify_button")
    window = MainWindow(write_settings(folder, ARENA), folder / "out")
    window.show()
    button = window.session_row.verify_button
    seen = {"no session": _state(button)}
    _click(window, Part.STREAM)
    _wait_running(window, Part.STREAM)
    seen["streaming"] = _state(button)
    _click(window, Part.RECORDING)
    _wait_running(window, Part.RECORDING)
    _wait(lambda: recorded_video_bytes(window.controller.session_dir) > 0, 20_000, "recorded bytes")
    seen["recording"] = _state(button)
    _click(window, Part.STREAM)
    _wait(lambda: not window.controller.streaming, START_TIMEOUT_MS, "the stream's stop")
    seen["finished"] = _state(button)
    yield RecordedSession(window, only_session(folder / "out"), seen)
    window.close()
    _wait(lambda: window.closed_down, START_TIMEOUT_MS, "the window's close")
    window.deleteLater()
    QApplication.processEvents()


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the button at the stand-in verify command; return a setter of its outcome."""
    script = tmp_path / "stand_in_verify.py"
    script.write_text(f"REASONS = {REASONS!r}\n{STAND_IN}", encoding="utf-8")
    outcome: dict[str, Any] = {"name": "agrees"}

    def command(session_dir: Path, lab_settings: Path | None = None) -> list[str]:
        outcome["lab_settings"] = lab_settings  # what the button gave the command
        return [sys.executable, str(script), str(session_dir), outcome["name"]]

    monkeypatch.setattr(verify_run, "verify_command", command)

    def set_outcome(name: str) -> dict[str, Any]:
        outcome.update(name=name)
        return outcome

    return set_outcome


@pytest.fixture
def fresh(recorded: RecordedSession) -> Iterator[RecordedSession]:
    """The recorded session's window without an earlier verify's result or messages."""
    yield recorded
    window = recorded.window
    if window.session_row.verify_button.result_box is not None:
        window.session_row.verify_button.result_box.close()
    shutil.rmtree(recorded.folder / "verify", ignore_errors=True)
    for banner in (window.banner, window.info):
        banner.clear()


class UrlCatcher(QObject):
    """Takes the file URLs QDesktopServices.openUrl is given (its handler for ``file:``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @pyqtSlot(QUrl)
    def take(self, url: QUrl) -> None:
        """Keep ``url``: what a browser would have been asked to open."""
        self.urls.append(url)


@pytest.fixture
def opened_urls() -> Iterator[UrlCatcher]:
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "take")
    yield catcher
    QDesktopServices.unsetUrlHandler("file")


def _verify(window: MainWindow) -> None:
    button = window.session_row.verify_button
    assert button.isEnabled(), button.toolTip()
    button.click()
    assert button.run.running
    _wait(lambda: not button.run.running, VERIFY_TIMEOUT_MS, "the verify command's end")


# -- when it may be pressed --------------------------------------------------------------------


def test_verify_is_offered_only_for_a_finished_session_with_a_recording(
    recorded: RecordedSession,
) -> None:
    seen = recorded.seen
    assert not seen["no session"].enabled
    assert "no session yet" in seen["no session"].tooltip
    for moment in ("streaming", "recording"):
        assert seen[moment] == ButtonState(False, "Verify", STREAMING_REASON), moment
    assert seen["finished"].enabled, seen["finished"]
    assert str(recorded.folder) in seen["finished"].tooltip
    assert verify_run.recorded_videos(recorded.folder), "session.json names no recording"


def test_a_session_folder_whose_recording_is_gone_cannot_be_verified(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    copy = tmp_path / recorded.folder.name
    shutil.copytree(recorded.folder, copy)
    videos = verify_run.recorded_videos(copy)
    assert videos
    for video in videos:
        video.unlink()
    button = VerifyButton()
    button.follow(copy, busy=False)
    assert not button.isEnabled()
    assert "holds no recording" in button.toolTip() and str(copy) in button.toolTip()
    (copy / "session.json").unlink()
    button.follow(copy, busy=False)
    assert not button.isEnabled() and "session.json" in button.toolTip()


def test_the_default_command_is_deeplabstream_verify_on_the_folder(tmp_path: Path) -> None:
    assert verify_run.verify_command(tmp_path) == [
        sys.executable,
        "-m",
        "deeplabstream.offline.verify",
        str(tmp_path),
    ]
    settings = tmp_path / "settings.ini"  # the lab's list of trusted signers is beside it
    assert verify_run.verify_command(tmp_path, settings)[3:] == [
        "--settings",
        str(settings),
        str(tmp_path),
    ]


def test_the_button_gives_verify_the_windows_settings_file_for_the_labs_signers(
    fresh: RecordedSession, stand_in
) -> None:
    """The lab's allowed_signers beside the window's settings file, never the record's."""
    window = fresh.window
    outcome = stand_in("agrees")
    _verify(window)
    assert outcome["lab_settings"] == window.session_row.settings_path()


# -- what a run shows --------------------------------------------------------------------------


def test_an_agreeing_session_shows_the_verdict_with_a_stand_in_verify_command(
    fresh: RecordedSession, stand_in, opened_urls: UrlCatcher
) -> None:
    window = fresh.window
    stand_in("agrees")
    _verify(window)
    box = window.session_row.verify_button.result_box
    assert box is not None and box.isVisible()
    assert box.text() == (
        "The session agrees with its recording: 58 of 905 analysed frames checked (6 %)"
    )
    report = fresh.folder / "verify" / "report.html"
    assert str(report) in box.informativeText()
    assert "agrees with its recording: 58 of 905" in window.info.full_text()
    assert window.banner.isHidden()
    # Verified here: nothing is left for the console when the window closes.
    assert window.session_row.verify_button.due_after_close(fresh.folder) is None
    open_report = next(b for b in box.buttons() if b.text() == OPEN_REPORT_LABEL)
    open_report.click()
    assert [url.toLocalFile() for url in opened_urls.urls] == [str(report)]
    button = window.session_row.verify_button
    assert button.isEnabled() and button.text() == "Verify"


def test_a_differing_session_shows_its_reasons_with_a_stand_in_verify_command(
    fresh: RecordedSession, stand_in, opened_urls: UrlCatcher
) -> None:
    window = fresh.window
    stand_in("differs")
    _verify(window)
    box = window.session_row.verify_button.result_box
    assert box is not None and box.isVisible()
    assert "differs from its recording" in box.text()
    assert box.icon() == box.Warning
    for reason in REASONS:  # each reason, its < > shown as written
        assert reason.replace("<", "&lt;").replace(">", "&gt;") in box.informativeText()
        assert reason in window.info.full_text()
    open_report = next(b for b in box.buttons() if b.text() == OPEN_REPORT_LABEL)
    assert open_report.toolTip() == str(fresh.folder / "verify" / "report.html")
    open_report.click()
    assert len(opened_urls.urls) == 1


def test_a_session_that_cannot_be_verified_shows_the_error_with_a_stand_in_verify_command(
    fresh: RecordedSession, stand_in
) -> None:
    window = fresh.window
    stand_in("cannot")
    _verify(window)
    box = window.session_row.verify_button.result_box
    assert box is None or not box.isVisible()  # no verdict to show
    assert not window.banner.isHidden()
    assert window.banner.full_text().startswith("Verify")
    assert "holds no recording to verify" in window.banner.full_text()
    assert str(fresh.folder) in window.banner.full_text()
    # a new run clears the error its cause made
    stand_in("agrees")
    _verify(window)
    assert window.banner.isHidden()


def test_progress_shows_and_closing_the_window_stops_verify_with_a_stand_in_verify_command(
    qtbot, recorded: RecordedSession, stand_in, tmp_path: Path
) -> None:
    window = MainWindow(write_settings(tmp_path, ARENA), tmp_path / "out")
    window.show()
    button = window.session_row.verify_button
    button.follow(recorded.folder, busy=False)  # the window's last session, as after a stop
    stand_in("slow")
    qtbot.mouseClick(button, Qt.LeftButton)
    pid = button.run.pid
    assert pid is not None
    expected = f"): re-analysing {recorded.folder.name}"  # "Verify (N s): ..." beside the buttons
    qtbot.waitUntil(lambda: expected in window.busy_label.text(), timeout=10_000)
    assert button.text().startswith("Stop verify")
    started = time.monotonic()
    window.close()
    qtbot.waitUntil(lambda: window.closed_down, timeout=10_000)
    assert time.monotonic() - started < verify_run.STOP_GRACE_MS / 1000 + 1
    assert not button.run.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped
    window.deleteLater()


def test_a_stream_start_stops_a_running_verify_with_a_stand_in_verify_command(
    qtbot, stand_in, tmp_path: Path, recorded: RecordedSession
) -> None:
    button = VerifyButton()
    qtbot.addWidget(button)
    button.follow(recorded.folder, busy=False)
    stand_in("slow")
    button.click()
    pid = button.run.pid
    assert pid is not None
    said: list[str] = []
    button.reported.connect(said.append)
    button.follow(recorded.folder, busy=True)  # what the window says at Start Stream
    assert not button.run.running and not button.isEnabled()
    assert said and "a stream started" in said[0]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- what the command's end means --------------------------------------------------------------


def test_a_difference_without_summary_json_gives_the_last_lines_it_printed(tmp_path: Path) -> None:
    printed = ["verify: reading arena.mkv", "", *REASONS]
    outcome = verify_run.read_outcome(tmp_path, 1, printed, "")
    assert outcome.verdict == verify_run.DIFFERS
    assert outcome.reasons == tuple(REASONS)
    assert outcome.report is None


def test_agrees_in_part_shows_what_was_not_checked(tmp_path: Path) -> None:
    folder = tmp_path / "verify"
    folder.mkdir()
    not_checked = ["events.csv: 2 decision(s) rest on frames the recording does not check"]
    summary = {"verdict": "agrees in part", "reasons": [], "not_checked": not_checked}
    (folder / "summary.json").write_text(json.dumps(summary))
    outcome = verify_run.read_outcome(tmp_path, verify_run.EXIT_IN_PART, [], "")
    assert outcome.verdict == verify_run.IN_PART and not outcome.agrees
    assert outcome.reasons == tuple(not_checked)
    assert "not everything could be checked" in outcome.headline()


def test_an_exit_code_outside_the_contract_is_an_error_naming_it(tmp_path: Path) -> None:
    outcome = verify_run.read_outcome(tmp_path, 5, [], "Traceback ...\nMemoryError\n")
    assert outcome.verdict is None
    assert "exit code 5" in outcome.error and "MemoryError" in outcome.error
    # 4: nothing differs, but the signer is in no list of trusted signers: "agrees in part"
    untrusted = verify_run.read_outcome(tmp_path, 4, [], "")
    assert untrusted.verdict == verify_run.IN_PART and not untrusted.agrees
    crashed = verify_run.read_outcome(tmp_path, None, [], "")
    assert "crashed" in crashed.headline() and str(tmp_path) in crashed.headline()


def test_a_verify_command_that_cannot_start_says_so(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no_such_program"
    monkeypatch.setattr(
        verify_run, "verify_command", lambda folder, *_: [str(missing), str(folder)]
    )
    run = verify_run.VerifyProcess()
    with qtbot.waitSignal(run.finished, timeout=10_000) as ended:
        run.start(tmp_path)
    outcome = ended.args[0]
    assert not run.running and outcome.verdict is None
    assert str(missing) in outcome.error and "could not be started" in outcome.error


@pytest.mark.skipif(
    importlib.util.find_spec("deeplabstream.offline.verify") is None,
    reason="deeplabstream.offline.verify is not in this checkout yet",
)
def test_the_real_verify_command_refuses_a_recording_without_poses(
    fresh: RecordedSession,
) -> None:
    """The session was recorded but never analysed: nothing to compare, exit 2, said in red."""
    window = fresh.window
    _verify(window)
    outcome = window.session_row.verify_button.run.outcome
    assert outcome is not None and outcome.exit_code == verify_run.EXIT_CANNOT, outcome
    assert not window.banner.isHidden()
    assert str(fresh.folder) in window.banner.full_text()


def test_a_session_the_window_did_not_verify_is_left_for_the_console(qtbot, tmp_path: Path) -> None:
    """``[Session] VERIFY = after`` and the window closed first: app.py verifies in the console."""

    (tmp_path / "arena.mkv").write_bytes(b"video")
    record = {"cameras": {"arena": {"recordings": [{"video": "arena.mkv"}]}}}
    (tmp_path / "session.json").write_text(json.dumps(record), encoding="utf-8")
    button = VerifyButton()
    qtbot.addWidget(button)
    assert button.due_after_close(tmp_path) is None  # VERIFY is not after
    button.after_each_session = lambda: True
    assert button.due_after_close(tmp_path) == tmp_path
    assert button.due_after_close(None) is None
