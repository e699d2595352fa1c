"""The GUI's "Latency test" button, offscreen, on a stand-in stream.

Starting real analysis loads the model (a minute on a busy machine), so these tests give the
window's controller a stand-in :class:`~live.session.live.LiveSession` whose analysis "runs": what
is checked is the window's part (when the button may be pressed, the banner, the background threads,
the events file of each run, the figures shown), not the stream's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QPushButton

import deeplabstream.app.gui.session
from deeplabstream.app.gui.main_window import LATENCY_TEST_LABEL, MainWindow
from deeplabstream.app.gui.session import Part, events_file_name
from deeplabstream.settings import load_settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TIMEOUT_MS = 10_000


class FakeStream:
    """What the window and its controller use of a LiveSession, with analysis running."""

    def __init__(self, settings: Any, session_dir: Path, analysing: bool = True) -> None:
        self.settings = settings
        self.session_dir = session_dir
        self.analysing = analysing
        self.experimenting = False
        self.recording = False
        self.analysis = None
        self.record: dict[str, Any] | None = None  # session.json as written: none here
        self.stopped = False
        self.started: list[tuple[str | None, Any]] = []
        self.stops = 0
        self.pose = self  # the stand-in is its own pose part (LiveSession.pose) too

    def start_experiment(self, experiment_name: str | None = None, latency_test: Any = None):
        if self.analysing and not self.experimenting:
            self.started.append((experiment_name, latency_test))
            self.experimenting = True

    def stop_experiment(self) -> None:
        self.stops += 1
        self.experimenting = False

    def stop(self, reason: str) -> None:
        self.stopped = True
        self.analysing = self.experimenting = self.recording = False

    def reload_settings(self, settings: Any) -> list[str]:
        return []  # the stand-in keeps its settings

    def discard_preview(self) -> bool:
        return False


class FakeRunner:
    stop_reason = None

    def __init__(self) -> None:
        self.last_figures: list[Any] = []

    def tick(self, timeout: float) -> bool:
        return True


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    """The main window on the project's default settings (no serial board), shown offscreen."""
    monkeypatch.setattr(MainWindow, "_show_live_view", lambda self: None)  # no real frames
    main = MainWindow(None, tmp_path / "out")
    qtbot.addWidget(main)
    main.show()
    yield main
    main.controller.stream = None  # the stand-in has nothing to finalise
    main.controller.runner = None
    main.close()


def _attach(window: MainWindow, tmp_path: Path, analysing: bool = True) -> FakeStream:
    """Give the window a stream whose analysis runs (or not)."""
    session = tmp_path / "session"
    session.mkdir(exist_ok=True)
    stream = FakeStream(load_settings(), session, analysing)
    window.controller.stream = stream  # type: ignore[assignment]
    window.controller.runner = FakeRunner()  # type: ignore[assignment]
    window.controller.changed.emit()
    return stream


def _idle(window: MainWindow) -> bool:
    return window.controller.busy is None and window.controller.latency is None


def test_entry_is_disabled_until_analysis_runs_with_a_stand_in_stream(
    window: MainWindow, tmp_path: Path
) -> None:
    button = window.latency_button
    assert button.text() == LATENCY_TEST_LABEL
    assert not button.isEnabled()  # no stream
    stream = _attach(window, tmp_path, analysing=False)
    assert not button.isEnabled()  # streaming, no analysis
    stream.analysing = True
    window.controller.changed.emit()
    assert button.isEnabled()
    stream.experimenting = True
    window.controller.changed.emit()
    assert not button.isEnabled()  # another experiment runs


def test_without_a_board_the_banner_names_it_with_a_stand_in_stream(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    stream = _attach(window, tmp_path)
    assert window.banner.isHidden()
    qtbot.mouseClick(window.latency_button, Qt.LeftButton)
    assert window.banner.isVisible()
    text = window.banner.label.text()
    assert "[LatencyTest]" in text and "no stimulus board" in text and "TYPE = serial" in text
    assert stream.started == []  # nothing was started
    # The window goes on: the test and the experiment can be started, the banner dismissed.
    assert _idle(window)
    assert window.latency_button.isEnabled()
    assert window.latency_button.text() == LATENCY_TEST_LABEL
    assert window.buttons[Part.EXPERIMENT].isEnabled()
    assert window.buttons[Part.ANALYSIS].isEnabled()
    qtbot.mouseClick(window.findChild(QPushButton, "dismiss_error"), Qt.LeftButton)
    assert window.banner.isHidden()
    qtbot.mouseClick(window.buttons[Part.EXPERIMENT], Qt.LeftButton)
    qtbot.waitUntil(lambda: window.controller.busy is None and stream.experimenting, timeout=5000)
    assert window.buttons[Part.EXPERIMENT].text() == "Stop Experiment"


def _planned(monkeypatch: pytest.MonkeyPatch, calls: list[Any], fail: bool = False) -> None:
    """A serial board in the settings: the plan, the experiment file and the analysis stubbed."""
    settings = SimpleNamespace(latency_test=SimpleNamespace(duration=0.6))
    plan = SimpleNamespace(settings=settings, spec="the board's test")
    monkeypatch.setattr(deeplabstream.app.gui.session, "plan_latency_test", lambda s: plan)

    def write(session_dir: Path, planned: Any) -> Path:
        path = session_dir / "latency_test.ini"
        path.write_text("[Experiment]\n")
        return path

    def finish(session_dir: Path, planned: Any, events_file: str) -> dict[str, Any]:
        calls.append(events_file)
        if fail:
            raise ValueError(f"{events_file}: no flash was seen")
        return {"events": 12}

    monkeypatch.setattr(deeplabstream.app.gui.session, "write_experiment", write)
    monkeypatch.setattr(deeplabstream.app.gui.session, "finish_latency_test", finish)
    monkeypatch.setattr(
        deeplabstream.app.gui.session, "summary_lines", lambda f: [f"{f['events']} flashes"]
    )


def test_runs_for_its_duration_then_shows_the_figures_with_stubbed_test_calls(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _planned(monkeypatch, calls)
    stream = _attach(window, tmp_path)
    qtbot.mouseClick(window.latency_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.controller.busy is None, timeout=TIMEOUT_MS)
    assert stream.started == [(str(stream.session_dir / "latency_test.ini"), "the board's test")]
    assert "running" in window.status_panel.latency_test.text()
    assert " s)" in window.latency_button.text()  # the seconds left, on a button of fixed width
    assert not window.latency_button.isEnabled()
    assert not window.buttons[Part.EXPERIMENT].isEnabled()  # the test stops by itself
    qtbot.waitUntil(lambda: _idle(window) and bool(calls), timeout=TIMEOUT_MS)
    assert calls == ["events.csv"] and stream.stops == 1 and not stream.experimenting
    box = window.latency_button.result
    assert box is not None and box.isVisible() and "12 flashes" in box.text()
    assert "latency_test.json" in box.informativeText()
    assert str(stream.session_dir / "latency_test.json") in window.status_panel.latency_test.text()
    assert window.banner.isHidden()
    assert window.latency_button.isEnabled() and window.latency_button.text() == LATENCY_TEST_LABEL
    assert window.buttons[Part.EXPERIMENT].isEnabled()

    # An experiment, then the test again: the third experiment of the session writes run3.
    qtbot.mouseClick(window.buttons[Part.EXPERIMENT], Qt.LeftButton)
    qtbot.waitUntil(lambda: window.controller.busy is None, timeout=TIMEOUT_MS)
    qtbot.mouseClick(window.buttons[Part.EXPERIMENT], Qt.LeftButton)
    qtbot.waitUntil(lambda: window.controller.busy is None, timeout=TIMEOUT_MS)
    qtbot.mouseClick(window.latency_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: _idle(window) and len(calls) == 2, timeout=TIMEOUT_MS)
    assert calls[1] == "events.run3.csv"
    assert "latency_test.run3.json" in window.latency_button.result.informativeText()


def test_a_failing_analysis_goes_to_the_banner_with_stubbed_test_calls(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _planned(monkeypatch, calls, fail=True)
    stream = _attach(window, tmp_path)
    qtbot.mouseClick(window.latency_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: _idle(window) and bool(calls), timeout=TIMEOUT_MS)
    assert window.banner.isVisible()
    assert "no flash was seen" in window.banner.label.text()
    assert not stream.experimenting and window.latency_button.result is None
    assert "without figures" in window.status_panel.latency_test.text()
    assert window.latency_button.isEnabled()


def test_events_file_names_follow_the_stream() -> None:
    assert [events_file_name(n) for n in (1, 2, 3)] == [
        "events.csv",
        "events.run2.csv",
        "events.run3.csv",
    ]


def test_an_experiment_that_stopped_itself_is_stopped_as_by_the_button_with_a_stand_in_stream(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from deeplabstream.live.processes.messages import ExperimentStatus

    stream = _attach(window, tmp_path)
    stream.experimenting = True
    failed = ExperimentStatus(
        name="ExampleExperiment",
        state="finished",
        trials=3,
        trial=None,
        actions=3,
        last_event="",
        triggers=(),
        error="experiment stopped: [Device stimulus_box] the port /dev/ttyACM0 vanished",
    )
    stream.analysis = SimpleNamespace(experiment_status=failed)  # what the worker last sent
    window.controller.changed.emit()
    qtbot.waitUntil(lambda: stream.stops == 1 and _idle(window), timeout=TIMEOUT_MS)
    text = window.banner.label.text()
    assert "the port /dev/ttyACM0 vanished" in text and "Start Experiment again" in text
    assert window.buttons[Part.EXPERIMENT].text() == "Start Experiment"
