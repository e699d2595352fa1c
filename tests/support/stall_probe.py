"""Drive the window on a real display and measure how long it ever goes without answering.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        python -m tests.support.stall_probe OUT.json EXPORT.pt CLIP.mp4 WORK_FOLDER

Used by ``tests/integration/test_window_stalls.py``. The window (1280x720) gets the lab's own
DeepLabCut 3.0 model and its clip as the camera, with the example experiment (which reads
``nose``, a keypoint the model calls ``snout``), then each phase is pressed as a user would,
with the window's own :class:`app.gui.stall_monitor.StallMonitor` reset at its start: idle,
Detect, Inspect (the model converted to ONNX on first use, in a helper process), Save mapping
(the Rig tab's keypoint box maps ``nose`` onto ``snout``), Start Stream, a region drawn with the
mouse on the live view, given a pulse on entry and saved (the Regions tab), Start Analysis
while streaming (the helper process loads the model, then the pose worker starts) with Start
and Stop Recording clicked during the load, Stop Stream, and the calibration of a recorded
board session from the Rig tab (a helper process). The model's helper process is paused
(SIGSTOP) while the recording is started and stopped, so those clicks land during the load
whatever the machine's speed. The figures of each phase are written to ``OUT.json``.

The monitor is told what else the window may wait for (:class:`WaitedFor`: the process's other
threads and the X server, their processor time and their waits for one), so that its ``window``
figure is the window's own part of each stall, whatever the machine's load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from PyQt5.QtCore import QEventLoop, Qt, QTimer
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QAbstractButton, QApplication, QComboBox, QDoubleSpinBox, QPushButton

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.session import Part
from deeplabstream.app.gui.stall_monitor import queued_ns
from tests.support.new_user_dlc import choose, drag, find
from tests.unit.spatial.calibration.rig import rendered_views, rig_cameras, write_session

TIMEOUT_S = 400.0  # a first conversion on a loaded 2-core machine, and then some


def main(argv: list[str]) -> int:
    """Run every phase; write the figures; 0 when every phase reached its end."""
    out, export, clip, work = (Path(a) for a in argv)
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "settings.ini"
    settings.write_text(
        f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\nLOOP = true\n"
        f"[Pose]\nMODEL_PATH = {export}\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    board_session = work / "board-session"  # recorded before any phase: not measured
    write_session(board_session, rendered_views(rig_cameras(), 60), {})
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(settings, work / "sessions")
    window.stall_monitor.explain = WaitedFor(threading.get_native_id(), x_server())
    window.resize(1280, 720)
    window.show()
    pump(1.0)
    rig, controller = window.rig_panel, window.controller
    rig.wait_checked()
    rig.keypoint_map.wait()
    probe = Probe(window)
    results: dict[str, Any] = {"platform": app.platformName(), "unmapped": list(rig.problems)}

    probe.phase("idle", lambda: None, lambda: True, settle_s=2.0)
    detect = rig.findChild(QPushButton, "rig_detect_cameras")
    probe.phase("detect", lambda: click(detect), detect.isEnabled)
    results["detect_line"] = rig.camera_box.detect_status.text()
    inspect = rig.findChild(QPushButton, "rig_model_inspect")
    probe.phase("inspect", lambda: click(inspect), lambda: rig.model_box._inspection is None)
    results["inspect_text"] = rig.model_box.model_info.toPlainText()
    box = rig.keypoint_map
    results["offered"] = {name: choice.currentText() for name, choice in box.choices.items()}
    probe.phase(
        "save_mapping",
        lambda: click(find(box, QAbstractButton, "keypoint_map_save")),
        lambda: not box.isVisible() and not rig.checker.running,
    )
    results["problems"] = list(rig.problems)
    probe.phase(
        "start_stream",
        lambda: click(window.buttons[Part.STREAM]),
        lambda: controller.running(Part.STREAM) and not controller.working,
        settle_s=2.0,
    )
    results["region"] = {}
    probe.phase(
        "save_regions",
        lambda: draw_and_save_region(window, results["region"]),
        lambda: not window.region_editor.dirty and not rig.checker.running,
    )
    window.tabs.setCurrentWidget(rig)
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
    probe.phase(
        "calibrate",
        lambda: rig.calibration_box.calibrate_session(board_session),
        lambda: (
            rig.calibration_box._calibration is not None
            and rig.calibration_box._calibration.outcome is not None
        ),
    )
    results["calibration"] = rig.calibration_box.calibration_info.toPlainText()
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
    # The settings are checked first (a background thread), then the model converts.
    wait_for(lambda: load is None or load.job is not None or controller.loading is not load)
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


def draw_and_save_region(window: MainWindow, seen: dict[str, Any]) -> None:
    """Draw a circle on the live view with the mouse, give it a pulse on entry, press Save."""
    editor = window.region_editor
    window.tabs.setCurrentWidget(editor)
    camera, view = next(iter(window.view_side.live_view.views.items()))
    wait_for(lambda: view.image is not None)  # a frame on the tile to draw on
    click(find(editor, QAbstractButton, "region_circle"))
    drag(view, (200.0, 200.0), (260.0, 200.0))
    region = editor.region(editor.selected or "")
    seen["name"] = region.name if region is not None else None
    seen["camera"] = region.camera if region is not None else None
    seen["expected_camera"] = camera
    seen["keypoint"] = find(editor, QComboBox, "region_keypoint").currentText()
    choose(find(editor, QComboBox, "region_action"), "Pulse")
    find(editor, QDoubleSpinBox, "region_duration").setValue(100.0)
    click(find(editor, QAbstractButton, "region_save"))
    seen["config"] = str(editor.file.path)


def x_server() -> int | None:
    """Return the process id of the X server of ``$DISPLAY`` (Xvfb); None when not found."""
    display = os.environ.get("DISPLAY", "")
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] in ("Xvfb", "Xorg", "X") and display in (
            process.info["cmdline"] or []
        ):
            return process.pid
    return None


class WaitedFor:
    """What the window's GUI thread may wait for: the time it spent working or queued.

    Each call returns the ms since the previous call that (``/proc/PID/task/TID/schedstat``:
    on-cpu and run-delay, ns):

    - the process's other threads and the X server's threads spent on a processor or ready and
      waiting for one (the GIL; an X reply);
    - the process's child processes spent ready and waiting for a processor (a child starting,
      between its fork and its exec, or ending). Their work is never an excuse: a window that
      waits for a child's work is one that blocks.

    On a loaded machine the GUI thread waits for them as they wait for a processor: that time is
    the machine's, not the window's (:attr:`app.gui.stall_monitor.Stall.blocked_ms`).
    """

    def __init__(self, gui_thread: int, x_server_pid: int | None) -> None:
        self._own = Path(f"/proc/{os.getpid()}/task")
        self._x_server = None if x_server_pid is None else Path(f"/proc/{x_server_pid}/task")
        self._skip = self._own / str(gui_thread)
        self._last: dict[Path, int] = {}

    def __call__(self) -> float:
        now = dict(self._spent())
        now.pop(self._skip, None)
        total = sum(spent - self._last.get(task, 0) for task, spent in now.items())
        self._last = now
        return max(0.0, total / 1e6)

    def _spent(self) -> list[tuple[Path, int]]:
        own = _tasks(self._own, with_cpu=True)
        spent = list(own)
        if self._x_server is not None:
            spent += _tasks(self._x_server, with_cpu=True)
        for task, _ in own:
            for child in _children(task):
                spent += _tasks(Path(f"/proc/{child}/task"), with_cpu=False)
        return spent


def _tasks(folder: Path, with_cpu: bool) -> list[tuple[Path, int]]:
    """Each thread of ``folder`` (``/proc/PID/task``) and its run-delay (and on-cpu) time, ns."""
    spent = []
    try:
        tasks = list(folder.iterdir())
    except OSError:
        return []  # the process ended
    for task in tasks:
        try:
            on_cpu, run_delay = (task / "schedstat").read_text().split()[:2]
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        spent.append((task, int(run_delay) + (int(on_cpu) if with_cpu else 0)))
    return spent


def _children(task: Path) -> list[str]:
    """The process ids of the children a thread started (``/proc/PID/task/TID/children``)."""
    try:
        return (task / "children").read_text().split()
    except OSError:
        return []


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
            "largest_window_ms": (
                None if monitor.largest_window_ms is None else round(monitor.largest_window_ms, 1)
            ),
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
    code = main(sys.argv[1:])
    # The figures are written: end without the interpreter's finalisation. In the slow step this
    # process aborted there ("terminate called without an active exception", exit 134) after its
    # work was done and its file written, in 2 of 3 runs under load since issue 44; the cause is
    # not found yet (known defect in the note). The app's own exit is tested by
    # tests/integration/test_app_window.py, not here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
