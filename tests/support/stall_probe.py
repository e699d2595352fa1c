"""Drive the window on a real display and measure how long it ever goes without answering.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        python -m tests.support.stall_probe OUT.json EXPORT.pt CLIP.mp4 WORK_FOLDER

Used by ``tests/integration/test_window_stalls.py``. The window (1280x720) gets the lab's own
DeepLabCut 3.0 model and its clip as the camera, then each phase is pressed as a user would,
with the window's own :class:`app.gui.stall_monitor.StallMonitor` reset at its start: idle, Detect,
Inspect (the model converted to ONNX on first use, in a helper process), Start Stream, Start
Analysis while streaming (the helper process loads the model, then the pose worker starts) with
Start and Stop Recording clicked during the load, then Stop Stream. The model's helper process
is paused (SIGSTOP) while the recording is started and stopped, so those clicks land during the
load whatever the machine's speed. The figures of each phase are written to ``OUT.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QEventLoop, Qt, QTimer
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication, QPushButton

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.app.gui.stall_monitor import queued_ns

TIMEOUT_S = 400.0  # a first conversion on a loaded 2-core machine, and then some


def main(argv: list[str]) -> int:
    """Run every phase; write the figures; 0 when every phase reached its end."""
    out, export, clip, work = (Path(a) for a in argv)
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "settings.ini"
    settings.write_text(
        f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\nLOOP = true\n"
        f"[Pose]\nMODEL_PATH = {export}\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings, work / "sessions")
    window.resize(1280, 720)
    window.show()
    pump(1.0)
    window.rig_panel.wait_checked()
    probe = Probe(window)
    rig, controller = window.rig_panel, window.controller
    results: dict[str, Any] = {"platform": app.platformName(), "problems": rig.problems}

    probe.phase("idle", lambda: None, lambda: True, settle_s=2.0)
    detect = rig.findChild(QPushButton, "rig_detect_cameras")
    probe.phase("detect", lambda: click(detect), detect.isEnabled)
    results["detect_line"] = rig.detect_status.text()
    inspect = rig.findChild(QPushButton, "rig_model_inspect")
    probe.phase("inspect", lambda: click(inspect), lambda: rig._inspection is None)
    results["inspect_text"] = rig.model_info.toPlainText()
    probe.phase(
        "start_stream",
        lambda: click(window.buttons[Part.STREAM]),
        lambda: controller.running(Part.STREAM) and not controller.working,
        settle_s=2.0,
    )
    results["load"] = {}
    probe.phase(
        "load_while_streaming",
        lambda: load_with_recording(window, results["load"]),
        lambda: controller.running(Part.ANALYSIS) or controller.loading is None,
        settle_s=3.0,
    )
    results["analysing"] = controller.running(Part.ANALYSIS)
    results["banner"] = window.banner.label.text() if window.banner.isVisible() else ""
    probe.phase(
        "stop_stream",
        lambda: click(window.buttons[Part.STREAM]),
        lambda: not controller.streaming and not controller.working,
    )
    results["session"] = str(controller.session_dir)
    results["phases"] = probe.figures
    window.close()
    wait_for(lambda: window.closed_down)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def load_with_recording(window: MainWindow, seen: dict[str, Any]) -> None:
    """Press Start Analysis, then Start and Stop Recording while the model converts."""
    controller = window.controller
    click(window.buttons[Part.ANALYSIS])
    load = controller.loading
    job = load.job if load is not None else None
    seen["model_job"] = job is not None
    if job is None or job.pid is None:
        return
    os.kill(job.pid, signal.SIGSTOP)  # the clicks below land during the load, on any machine
    try:
        seen["recording_enabled"] = window.buttons[Part.RECORDING].isEnabled()
        seen["progress_line"] = window.busy_label.text()
        click(window.buttons[Part.RECORDING])
        wait_for(lambda: controller.running(Part.RECORDING) and controller.busy is None)
        # Frames reach the recording before it stops, whatever the machine's speed: a
        # recording stopped before its first frame leaves no video.
        table = controller.session_dir / "openfield.frames.csv"
        wait_for(lambda: table.is_file() and len(table.read_text().splitlines()) > 3)
        seen["recorded_while_loading"] = controller.loading is load
        click(window.buttons[Part.RECORDING])
        wait_for(lambda: not controller.running(Part.RECORDING) and controller.busy is None)
        seen["stopped_recording_while_loading"] = controller.loading is load
    finally:
        os.kill(job.pid, signal.SIGCONT)


class Probe:
    """Run phases and keep the window's stall figures of each."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.figures: dict[str, dict[str, Any]] = {}

    def phase(
        self,
        name: str,
        action: Callable[[], None],
        done: Callable[[], bool],
        settle_s: float = 0.5,
    ) -> None:
        """Reset the monitor, act, pump until ``done`` and ``settle_s`` more, keep the figures."""
        monitor = self.window.stall_monitor
        monitor.reset()
        started = time.monotonic()
        action()
        wait_for(done)
        pump(settle_s)
        self.figures[name] = {
            "seconds": round(time.monotonic() - started, 1),
            "largest_gap_ms": round(monitor.largest_gap_ms, 1),
            "largest_busy_ms": round(monitor.largest_busy_ms, 1),
            "largest_own_ms": round(monitor.largest_own_ms, 1),
            "queue_known": queued_ns() is not None,
            "ticks": monitor.ticks,
            "stalls": [dataclasses.asdict(stall) for stall in monitor.stalls],
        }


def click(button: QPushButton) -> None:
    """Click ``button`` with the mouse, as the user does."""
    QTest.mouseClick(button, Qt.LeftButton)


def wait_for(condition: Callable[[], bool]) -> None:
    """Run the window's event loop until ``condition`` holds (at most TIMEOUT_S)."""
    deadline = time.monotonic() + TIMEOUT_S
    loop = QEventLoop()
    timer = QTimer()

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start(20)
    if not condition():
        loop.exec_()
    timer.stop()
    if not condition():
        raise TimeoutError(f"waited {TIMEOUT_S:g} s")


def pump(seconds: float) -> None:
    """Run the window's event loop for ``seconds``."""
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec_()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
