"""The main window of ``app.py``: settings, the four Start/Stop buttons, live view and status.

Beside the Start/Stop buttons, "Latency test" runs the stimulus board's latency self-test as an
experiment of the running stream (``[LatencyTest]``, docs/latency-test.md) and shows its figures.

Timers drive everything on the GUI thread: the display timer (``[Streaming] DISPLAY_RATE``)
paints the newest frames, the service timer (every 50 ms) lets the stream handle its processes'
news, and the status timer (1 s) refreshes the figures. Closing the window stops every part in
order and finalises the session's files before the window goes away.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer, QUrl
from PyQt5.QtGui import QCloseEvent, QDesktopServices
from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.live_view import LiveView
from gui.session import Part, SessionController
from gui.status_panel import ErrorBanner, StatusPanel
from settings import load_settings
from settings.loader import DEFAULT_SETTINGS_FILE
from settings.sections import Settings

SERVICE_INTERVAL_MS = 50
STATUS_INTERVAL_MS = 1000
BUTTON_LABELS = {
    Part.STREAM: "Stream",
    Part.ANALYSIS: "Analysis",
    Part.RECORDING: "Recording",
    Part.EXPERIMENT: "Experiment",
}
LATENCY_TEST_LABEL = "Latency test"


class MainWindow(QMainWindow):
    """One experiment session from one window."""

    def __init__(self, settings_path: Path | None = None, output_dir: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("DeepLabStream")
        self.resize(1100, 760)
        self.controller = SessionController(self._read_settings, output_dir=output_dir)
        self.controller.changed.connect(self._state_changed)
        self.controller.failed.connect(self._show_error)
        self.controller.stream_closing.connect(self._drop_live_view)
        self.controller.latency_finished.connect(self._show_latency_result)
        self.latency_result: QMessageBox | None = None
        self._latency_shown = False  # the status line says the test runs
        self.live_view: LiveView | None = None
        self._shown_error: str | None = None
        self.banner = ErrorBanner()
        self.status_panel = StatusPanel()
        self.buttons: dict[Part, QPushButton] = {}
        self._build(settings_path)
        self._display_timer = QTimer(self)
        self._display_timer.timeout.connect(self._refresh_view)
        self._service_timer = QTimer(self)
        self._service_timer.setInterval(SERVICE_INTERVAL_MS)
        self._service_timer.timeout.connect(self._service)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._refresh_status)
        self._service_timer.start()
        self._status_timer.start()
        self._state_changed()

    # -- layout --------------------------------------------------------------------------------

    def _build(self, settings_path: Path | None) -> None:
        # The settings.ini beside app.py, wherever the app was started from.
        self.settings_edit = QLineEdit(str(settings_path or DEFAULT_SETTINGS_FILE))
        self.settings_edit.setObjectName("settings_path")
        self.browse_button = QPushButton("Choose...")
        self.browse_button.setObjectName("choose_settings")
        self.browse_button.clicked.connect(self._choose_settings)
        settings_row = QHBoxLayout()
        settings_row.addWidget(QLabel("Settings:"))
        settings_row.addWidget(self.settings_edit, 1)
        settings_row.addWidget(self.browse_button)

        buttons_row = QHBoxLayout()
        for part, label in BUTTON_LABELS.items():
            button = QPushButton(f"Start {label}")
            button.setObjectName(f"{part.value}_button")
            button.clicked.connect(lambda _checked=False, p=part: self.controller.toggle(p))
            buttons_row.addWidget(button)
            self.buttons[part] = button
        self.latency_button = QPushButton(LATENCY_TEST_LABEL)
        self.latency_button.setObjectName("latency_test_button")
        self.latency_button.setToolTip(
            "Run the stimulus board's latency self-test ([LatencyTest]) while analysis runs"
        )
        self.latency_button.clicked.connect(self.controller.start_latency_test)
        buttons_row.addWidget(self.latency_button)
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("busy")
        buttons_row.addWidget(self.busy_label, 1)

        self.session_label = QLabel("no session yet")
        self.session_label.setObjectName("session_folder")
        self.open_folder_button = QPushButton("Open folder")
        self.open_folder_button.setObjectName("open_folder")
        self.open_folder_button.clicked.connect(self._open_session_folder)
        session_row = QHBoxLayout()
        session_row.addWidget(QLabel("Session:"))
        session_row.addWidget(self.session_label, 1)
        session_row.addWidget(self.open_folder_button)

        self.view_holder = QVBoxLayout()
        self.placeholder = QLabel("Press Start Stream to see the cameras.")
        self.view_holder.addWidget(self.placeholder, 1)

        layout = QVBoxLayout()
        layout.addLayout(settings_row)
        layout.addLayout(buttons_row)
        layout.addWidget(self.banner)
        layout.addLayout(self.view_holder, 1)
        layout.addWidget(self.status_panel)
        layout.addLayout(session_row)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

    # -- reactions -----------------------------------------------------------------------------

    def _read_settings(self) -> Settings:
        return load_settings(Path(self.settings_edit.text()).expanduser())

    def _choose_settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Settings file", self.settings_edit.text(), "Settings (*.ini)"
        )
        if path:
            self.settings_edit.setText(path)

    def _open_session_folder(self) -> None:
        folder = self.controller.session_dir
        if folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _show_error(self, text: str) -> None:
        self.banner.show_error(text)

    def _state_changed(self) -> None:
        """Buttons, labels and the live view follow the controller's state."""
        controller = self.controller
        for part, button in self.buttons.items():
            verb = "Stop" if controller.running(part) else "Start"
            button.setText(f"{verb} {BUTTON_LABELS[part]}")
            button.setEnabled(controller.allowed(part))
        self._show_latency_test()
        self.busy_label.setText(f"{controller.busy}..." if controller.busy else "")
        idle = not controller.streaming and controller.busy is None
        self.settings_edit.setEnabled(idle)
        self.browse_button.setEnabled(idle)
        folder = controller.session_dir
        self.session_label.setText(str(folder) if folder else "no session yet")
        self.open_folder_button.setEnabled(folder is not None)
        stream = controller.stream
        opened = stream is not None and stream.session_dir is not None
        if self.live_view is None and opened and controller.busy is None:
            self._show_live_view()
        self._refresh_status()
        self._show_experiment()

    def _show_latency_test(self) -> None:
        """Update the latency button: enabled when it may start, the seconds left while it runs."""
        controller = self.controller
        run = controller.latency
        self.latency_button.setEnabled(controller.latency_test_allowed())
        if run is None:
            self.latency_button.setText(LATENCY_TEST_LABEL)
            if self._latency_shown:  # it ended without figures: the banner says why
                self._latency_shown = False
                self.status_panel.show_latency_test("stopped without figures (see the error)")
            return
        self._latency_shown = True
        remaining = run.remaining()
        if remaining is None:
            text = f"{LATENCY_TEST_LABEL} starting..."
        elif remaining > 0:
            text = f"{LATENCY_TEST_LABEL} running... {remaining:.0f} s"
        else:
            text = f"{LATENCY_TEST_LABEL} finishing..."
        self.latency_button.setText(text)
        self.status_panel.show_latency_test(text[len(LATENCY_TEST_LABEL) + 1 :])

    def _show_latency_result(self, summary: str, json_path: str) -> None:
        """Show the test's figures in a window of their own (not modal: the stream goes on)."""
        self._latency_shown = False
        self.status_panel.show_latency_test(f"done: {json_path}")
        box = QMessageBox(self)
        box.setObjectName("latency_test_result")
        box.setWindowTitle("Latency test")
        box.setIcon(QMessageBox.Information)
        box.setText(f"<pre>{html.escape(summary)}</pre>")
        box.setInformativeText(f"Figures and histogram written to {json_path}")
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.setModal(False)
        box.show()
        self.latency_result = box

    def _show_live_view(self) -> None:
        stream = self.controller.stream
        assert stream is not None
        self.live_view = LiveView(stream)
        self.placeholder.hide()
        self.view_holder.addWidget(self.live_view, 1)
        rate = stream.settings.streaming.display_rate
        self._display_timer.start(max(1, round(1000 / rate)))

    def _drop_live_view(self) -> None:
        self._display_timer.stop()
        if self.live_view is not None:
            self.live_view.close_readers()
            self.view_holder.removeWidget(self.live_view)
            self.live_view.deleteLater()
            self.live_view = None
        self.placeholder.show()

    def _refresh_view(self) -> None:
        if self.live_view is not None:
            self.live_view.refresh()

    def _service(self) -> None:
        """Every 50 ms: the stream's news, then the experiment's line (it changes by the frame)."""
        self.controller.service()
        self._show_experiment()

    def _show_experiment(self) -> None:
        stream = self.controller.stream
        analysis = stream.analysis if stream is not None else None
        status = analysis.experiment_status if analysis is not None else None
        self.status_panel.show_experiment(status, self.controller.running(Part.EXPERIMENT))
        if status is not None and status.error and status.error != self._shown_error:
            self._shown_error = status.error  # a device failed mid-run: say so once
            self._show_error(
                f"{status.error}. Check the device, then start the experiment "
                "again (Stop Experiment, Start Experiment)."
            )

    def _refresh_status(self) -> None:
        """Once a second: the camera table and the recording's duration and size."""
        controller = self.controller
        runner = controller.runner
        if runner is not None:  # the runner refreshes its figures once a second when serviced
            self.status_panel.show_cameras(runner.last_figures)
        started = controller.recording_started
        seconds = None if started is None else time.monotonic() - started
        self.status_panel.show_recording(seconds, controller.recording_size_bytes())
        self._show_latency_test()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop every part in order and finalise the files on closing, then let the window go."""
        self._service_timer.stop()
        self._status_timer.stop()
        self.busy_label.setText("stopping: finalising files...")
        self.controller.shutdown("window closed")
        if event is not None:
            event.accept()
