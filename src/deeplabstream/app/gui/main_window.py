"""The main window of ``app.py``: the rig, the four Start/Stop buttons, the live view, watching.

Design: docs/gui.md (its tabs) and docs/architecture.md, "The desktop app".
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import replace
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QCloseEvent, QScreen
from PyQt5.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.button_row import ButtonRow
from deeplabstream.app.gui.camera_controls import CameraTab
from deeplabstream.app.gui.click_queue import ClickQueue, done_words
from deeplabstream.app.gui.event_log import EventLogPanel
from deeplabstream.app.gui.fitting import ElidedLabel, shrinkable
from deeplabstream.app.gui.keypoint_map import connect_keypoints
from deeplabstream.app.gui.keypoint_plot import KeypointPlot
from deeplabstream.app.gui.live_view import LiveView
from deeplabstream.app.gui.loss_alarm import LossBanner
from deeplabstream.app.gui.messages import InfoBanner, MessageArea, WindowMessages
from deeplabstream.app.gui.overlays import OverlayToggles
from deeplabstream.app.gui.plots import SessionPlots
from deeplabstream.app.gui.preferences import WindowPreferences
from deeplabstream.app.gui.previous_session import previous_session_line
from deeplabstream.app.gui.region_editor import RegionEditor
from deeplabstream.app.gui.rig_panel import RigPanel
from deeplabstream.app.gui.session import BUTTON_LABELS, SETTINGS_CAUSE, Part, SessionController
from deeplabstream.app.gui.session_row import SessionRow
from deeplabstream.app.gui.stall_monitor import StallMonitor
from deeplabstream.app.gui.status_panel import ErrorBanner, StatusPanel
from deeplabstream.app.gui.wheel_guard import WheelGuard, install_wheel_guard, remove_wheel_guard
from deeplabstream.experiments.registry import config_file_of
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.report.rates import CameraRates, StampSample, frame_time_s
from deeplabstream.live.session.runner import CameraFigures
from deeplabstream.outputs.video import recorded_video_bytes

log = logging.getLogger(__name__)

SERVICE_INTERVAL_MS = 50
STATUS_INTERVAL_MS = 1000
LATENCY_TEST_LABEL = "Latency test"
CLOSING_TEXT = "closing: stopping and finalising files; the window closes by itself..."
VERDICT_PREFIX = "Verify"  # how verify's verdicts start in the message area (one at a time)
TRAIL_KEY, HEATMAP_KEY = "view/trail", "view/heatmap"
DEFAULT_SIZE = (1360, 860)
SCREEN_SHARE = 0.92  # of a larger screen the window takes at first
MAIN_SPLIT_KEY, BODY_SPLIT_KEY = "layout/main_splitter", "layout/body_splitter"
VIEW_SHARE = 60  # percent of the width the live view takes at first (the tabs the rest)
SPLIT_UNIT_PX = 10  # the splitter's first sizes are proportions; Qt scales them to the width
FRAME_ALLOWANCE_PX = 16  # a window manager's borders and title bar (the height counts it twice)
TABS_LEAST_WIDTH_PX = 520  # the tabs never ask for more width than this (their pages fit it)


def initial_size(screen: QScreen | None) -> tuple[int, int]:
    """Return the window's first size: :data:`SCREEN_SHARE` of the screen, never more than it."""
    width, height = DEFAULT_SIZE
    if screen is None:
        return width, height
    free = screen.availableGeometry()
    # A window manager adds a title bar and borders around the window: leave room for them.
    most_width = free.width() - FRAME_ALLOWANCE_PX
    most_height = free.height() - 2 * FRAME_ALLOWANCE_PX
    return (
        min(most_width, max(width, round(SCREEN_SHARE * free.width()))),
        min(most_height, max(height, round(SCREEN_SHARE * free.height()))),
    )


class ViewSide(QWidget):
    """The live view (a placeholder without a stream) and the overlay toggles under it."""

    def __init__(
        self, preferences: WindowPreferences, regions: RegionEditor, keypoint_plot: KeypointPlot
    ) -> None:
        super().__init__()
        self.preferences = preferences
        self.region_editor = regions
        self.keypoint_plot = keypoint_plot
        self.live_view: LiveView | None = None
        self.camera_rates = CameraRates()  # each camera's rates on its own clock
        self._regions_attached = False  # the region editor draws on the tiles
        self.holder = QVBoxLayout(self)
        self.placeholder = QLabel(
            "Set up the rig in the Rig tab, then press Start Stream to see the cameras."
        )
        self.placeholder.setAlignment(Qt.AlignCenter)
        shrinkable(self.placeholder)  # wraps: the live view's side never asks for its length
        self.holder.addWidget(self.placeholder, 1)
        self.overlay_toggles = OverlayToggles()
        self.overlay_toggles.trail.setChecked(preferences.flag(TRAIL_KEY))
        self.overlay_toggles.heatmap.setChecked(preferences.flag(HEATMAP_KEY))
        self.overlay_toggles.changed.connect(self._overlays_changed)
        self.overlay_toggles.reset_requested.connect(self._reset_overlays)
        self.holder.addWidget(self.overlay_toggles)
        self._display_timer = QTimer(self)
        self._display_timer.timeout.connect(self._refresh)

    def show_stream(self, stream: LiveSession) -> None:
        """Show ``stream``'s tiles; the region editor reads the experiment's config to draw."""
        self.live_view = LiveView(stream)
        self.keypoint_plot.clear()
        self.live_view.keypoint_plot = self.keypoint_plot
        self.overlay_toggles.use(self.live_view.overlays)
        self.placeholder.hide()
        self.holder.insertWidget(0, self.live_view, 1)
        rate = stream.settings.streaming.display_rate
        self._display_timer.start(max(1, round(1000 / rate)))
        self.camera_rates.clear()
        analysis = stream.pose.analysis
        keypoints = list(analysis.keypoints) if analysis is not None else []
        settings = stream.settings
        config_file = config_file_of(settings.experiment.name, settings.source_file.parent)
        self.region_editor.load(config_file, stream.camera_names, keypoints)
        self.region_editor.attach(self.live_view.views)
        self._regions_attached = True

    def drop(self) -> None:
        """Let the tiles go (the stream is about to stop): their readers closed, the line back."""
        self._display_timer.stop()
        self.region_editor.detach()
        self._regions_attached = False
        if self.live_view is not None:
            self.live_view.stop_listening()
            self.live_view.close_readers()
            self.holder.removeWidget(self.live_view)
            self.live_view.deleteLater()
            self.live_view = None
        self.placeholder.show()

    def follow_experiment(self, experimenting: bool) -> None:
        """Let a running experiment draw its regions (with their state); the editor otherwise."""
        if self.live_view is None:
            return
        if experimenting and self._regions_attached:
            self.region_editor.detach()
            self._regions_attached = False
        elif not experimenting and not self._regions_attached:
            self.region_editor.attach(self.live_view.views)
            self._regions_attached = True

    def on_camera_clock(self, figures: list[CameraFigures]) -> list[CameraFigures]:
        """Return ``figures`` with their rates measured on each camera's own clock.

        Host-timed refreshes overstate the rate under load (:mod:`live.session.report.rates`).
        """
        if self.live_view is None:
            return figures
        newest = self.live_view.newest_frames()
        measured = []
        for camera in figures:
            record = newest.get(camera.name)
            if record is not None:
                time_s = frame_time_s(record.camera_timestamp, record.host_timestamp_ns)
                host_s = record.host_timestamp_ns / 1e9  # the lower rate is shown (rates.py)
                sample = StampSample(record.seq, time_s, camera.analysed, host_s)
                self.camera_rates.add(camera.name, sample)
            capture = self.camera_rates.capture_fps(camera.name)
            if capture is None:  # fewer than two frames seen yet
                measured.append(camera)
                continue
            analysed = None
            if camera.analysed_fps is not None:
                analysed = self.camera_rates.analysed_fps(camera.name)
            measured.append(replace(camera, capture_fps=capture, analysed_fps=analysed))
        return measured

    def _overlays_changed(self) -> None:
        self.preferences.set_flag(TRAIL_KEY, self.overlay_toggles.trail.isChecked())
        self.preferences.set_flag(HEATMAP_KEY, self.overlay_toggles.heatmap.isChecked())
        if self.live_view is not None:
            self.overlay_toggles.use(self.live_view.overlays)

    def _reset_overlays(self) -> None:
        if self.live_view is not None:
            self.live_view.reset_overlays()

    def _refresh(self) -> None:
        if self.live_view is not None:
            self.live_view.refresh()


class LatencyTestButton(QPushButton):
    """Start the latency test; its countdown on the button, its stage in the status panel."""

    TEXTS = (LATENCY_TEST_LABEL, f"{LATENCY_TEST_LABEL}...", f"{LATENCY_TEST_LABEL} (888 s)")
    """The texts it takes (its row keeps room for the longest: the row never moves)."""

    def __init__(self, controller: SessionController, status_panel: StatusPanel) -> None:
        super().__init__(LATENCY_TEST_LABEL)
        self.setObjectName("latency_test_button")
        self.setToolTip(
            "Run the stimulus board's latency self-test ([LatencyTest]) while analysis runs"
        )
        self.controller = controller
        self.status_panel = status_panel
        self.result: QMessageBox | None = None  # the last test's figures
        self._shown = False  # the status line says the test runs
        self.clicked.connect(controller.start_latency_test)
        controller.latency_finished.connect(self._show_result)

    def follow(self) -> None:
        """Follow the controller: enabled when the test may start, the seconds left as it runs."""
        controller = self.controller
        run = controller.latency
        self.setEnabled(controller.latency_test_allowed())
        if run is None:
            self.setText(LATENCY_TEST_LABEL)
            if self._shown:  # it ended without figures: the banner says why
                self._shown = False
                self.status_panel.show_latency_test("stopped without figures (see the error)")
            return
        self._shown = True
        remaining = run.remaining()
        if remaining is None:
            stage, short = "starting...", "..."
        elif remaining > 0:
            stage, short = f"running... {remaining:.0f} s", f" ({remaining:.0f} s)"
        else:
            stage, short = "finishing...", "..."
        self.setText(LATENCY_TEST_LABEL + short)  # short: the row never moves
        self.status_panel.show_latency_test(stage)

    def _show_result(self, summary: str, json_path: str) -> None:
        """Show the test's figures in a window of their own (not modal: the stream goes on)."""
        self._shown = False
        self.status_panel.show_latency_test(f"done: {json_path}")
        box = QMessageBox(self.window())
        box.setObjectName("latency_test_result")
        box.setWindowTitle("Latency test")
        box.setIcon(QMessageBox.Information)
        box.setText(f"<pre>{html.escape(summary)}</pre>")
        box.setInformativeText(f"Figures and histogram written to {json_path}")
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.setModal(False)
        box.show()
        self.result = box


class MainWindow(QMainWindow):
    """One experiment session from one window."""

    def __init__(self, settings_path: Path | None = None, output_dir: Path | None = None) -> None:
        super().__init__()
        # before any widget is polished: the wheel never changes a value it passes over
        self.wheel_guard: WheelGuard | None = install_wheel_guard(self)
        self.setWindowTitle("DeepLabStream")
        self.resize(*initial_size(QApplication.primaryScreen()))
        self.banner = ErrorBanner()
        self.loss_banner = LossBanner()
        self.info = InfoBanner()
        self.messages = MessageArea([self.banner, self.loss_banner, self.info])
        self.say = WindowMessages(self.banner, self.info)  # what goes there, until when
        self.session_row = SessionRow(settings_path, self.say)  # the settings file, the session
        self.controller = SessionController(self.session_row.read_settings, output_dir=output_dir)
        self.controller.changed.connect(self._state_changed)
        self.controller.failed.connect(
            lambda text: self.say.error(text, self.controller.failure_cause)
        )
        self.controller.resolved.connect(self.say.resolve)
        self.controller.notice.connect(self.say.notice)
        self.controller.warned.connect(lambda text: self.say.summary(text, warning=True))
        self.controller.summarised.connect(self.say.summary)
        self.controller.warning.connect(self.say.warning)
        self.controller.ended.connect(self.say.stream_ended)
        self.controller.shut_down.connect(self._shut_down)
        self.controller.stream_closing.connect(self._drop_live_view)
        self.queue = ClickQueue(self.controller)  # clicks made while a part starts or stops
        self.closing = False  # the window was asked to close: it goes once the files are final
        self.closed_down = False  # everything stopped: the window may go
        self.close_reason = "window closed"  # the session's stop reason when it closes
        self._stream_started = 0.0  # time.monotonic() when the live view appeared
        self._shown_error: str | None = None
        self._previous_said = False  # the previous session's verdict was said (at the start)
        self.preferences = WindowPreferences()
        self.status_panel = StatusPanel()
        self.buttons: dict[Part, QPushButton] = {}
        self.stall_monitor = StallMonitor(parent=self)
        self._build()
        self._service_timer = QTimer(self)
        self._service_timer.setInterval(SERVICE_INTERVAL_MS)
        self._service_timer.timeout.connect(self._service)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._refresh_status)
        self._service_timer.start()
        self._status_timer.start()
        self.stall_monitor.start()
        self._state_changed()

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        self.button_row = ButtonRow()
        self.button_row.refused.connect(self.say.explain_refusal)
        buttons_row = self.button_row.row
        for part, label in BUTTON_LABELS.items():
            button = QPushButton(f"Start {label}")
            button.setObjectName(f"{part.value}_button")
            button.clicked.connect(lambda _checked=False, p=part: self.toggle(p))
            verbs = ("Start", "Stop", "Cancel") if part is Part.ANALYSIS else ("Start", "Stop")
            self.button_row.add_button(button, tuple(f"{verb} {label}" for verb in verbs))
            self.buttons[part] = button
        self.latency_button = LatencyTestButton(self.controller, self.status_panel)
        self.button_row.add_button(self.latency_button, LatencyTestButton.TEXTS)
        self.busy_label = ElidedLabel("")
        self.busy_label.setObjectName("busy")
        buttons_row.addWidget(self.busy_label, 1)

        self.rig_panel = RigPanel(self.session_row.settings_path())
        self.session_row.chosen.connect(self.rig_panel.load)
        self.rig_panel.set_output_override(self.controller.output_dir)
        self.rig_panel.saved.connect(lambda path: self.say.notice(f"Settings saved to {path}"))
        self.rig_panel.saved.connect(lambda _path: self._show_rig_unsaved())
        self.rig_panel.checked.connect(self._rig_checked)
        self.region_editor = RegionEditor()
        self.region_editor.failed.connect(lambda text: self.say.error(text, "regions"))
        self.region_editor.saved.connect(self._regions_saved)
        connect_keypoints(self)  # the model's keypoints and the rig's devices for the regions
        self.camera_tab = CameraTab(self.controller, self.rig_panel, self.say)
        self.event_log = EventLogPanel()
        self.plots = SessionPlots()
        self.keypoint_plot = KeypointPlot()
        self.view_side = ViewSide(self.preferences, self.region_editor, self.keypoint_plot)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("side_tabs")
        self.tabs.addTab(self.rig_panel, "Rig")
        self.tabs.addTab(self.region_editor, "Regions")
        self.tabs.addTab(self.camera_tab, "Camera")
        self.tabs.addTab(self.event_log, "Log")
        self.tabs.addTab(self.plots, "Plots")
        self.tabs.addTab(self.keypoint_plot, "Keypoints")
        # The tabs' least width is fixed, whatever their pages ask: a page asking more (a rule
        # panel's long description) moved the splitter, so the tabs jumped 70-110 px sideways
        # when a region was selected. Each page fits this width (scroll areas,
        # narrow drop-downs, wrapped and elided texts).
        self.tabs.setMinimumWidth(TABS_LEAST_WIDTH_PX)
        splitter = self.main_splitter = QSplitter(Qt.Horizontal)
        splitter.setObjectName("main_splitter")
        splitter.addWidget(self.view_side)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        # The live view takes most of the width at first; the tabs may be dragged away whole.
        splitter.setSizes([VIEW_SHARE * SPLIT_UNIT_PX, (100 - VIEW_SHARE) * SPLIT_UNIT_PX])
        splitter.setCollapsible(0, False)
        # The figures under the view can give their height to the view and the tabs.
        body = QSplitter(Qt.Vertical)
        body.setObjectName("body_splitter")
        body.setChildrenCollapsible(False)
        body.addWidget(splitter)
        body.addWidget(self.status_panel)
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 0)
        self.preferences.remember_splitter(MAIN_SPLIT_KEY, splitter)
        self.preferences.remember_splitter(BODY_SPLIT_KEY, body)

        layout = QVBoxLayout()
        layout.addWidget(self.button_row)
        # Under the buttons, its height fixed: a message that comes, goes or grows never moves
        # the view, the tabs or the camera table.
        layout.addWidget(self.messages)
        layout.addWidget(body, 1)
        layout.addWidget(self.session_row)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self._verify_progress = ""  # said beside the buttons while verify runs
        verify = self.session_row.verify_button
        verify.progress.connect(self._show_verify_progress)
        # Above the session's summary, never in its place.
        verify.reported.connect(self._show_verdict)
        verify.failed.connect(lambda text: self.say.error(text, "verify"))
        verify.failed.connect(lambda _text: self._show_verify_progress(""))
        verify.started.connect(lambda: self.say.resolve("verify"))

    # -- reactions -----------------------------------------------------------------------------

    def toggle(self, part: Part) -> None:
        """Start or stop ``part`` (its button); the rig and regions are saved before a start."""
        controller = self.controller
        if not self.closing and (self.queue.holds(part) or self.queue.can_queue(part)):
            self.say.notice(self.queue.click(part))
            self._state_changed()
            return
        cancelling = part is Part.ANALYSIS and controller.loading is not None
        starting = controller.allowed(part) and not controller.running(part) and not cancelling
        if starting and part is Part.STREAM:
            self.forget_last_session()
        if starting and part is not Part.RECORDING:
            self.rig_panel.allow_experiment()  # a start loads the experiment: the Rig tab may
        if starting and part is not Part.RECORDING and not self._save_edits(part):
            return
        if starting and part is Part.EXPERIMENT:
            self.event_log.clear()  # a new experiment's log starts empty
            self.status_panel.clear_experiment()
        controller.toggle(part)

    def forget_last_session(self) -> None:
        """Clear the last session's messages and camera rows: a new Start Stream (docs/gui.md)."""
        for banner in (self.banner, self.loss_banner, self.info):
            banner.clear()
        self.say.error_cause = ""
        self.status_panel.show_cameras([])

    def _save_edits(self, part: Part) -> bool:
        """Save the rig panel's and the region editor's changes; False when they have problems."""
        rig, path = self.rig_panel, self.session_row.settings_path()
        if path != rig.settings_file:
            rig.load(path)
        if rig.dirty:
            rig.wait_checked()
            if rig.problems:
                self.say.error(
                    f"Cannot start {part.value}: the Rig tab has unsaved changes with problems:\n"
                    + "\n".join(rig.problems),
                    SETTINGS_CAUSE,
                )
                self.tabs.setCurrentWidget(rig)
                return False
            changes = rig.unsaved_changes()
            if rig.save() is None and rig.dirty:
                return False  # not written: the Rig tab says why
            self._say_saved_for_start(part, changes)
        if self.region_editor.dirty and not self.region_editor.save():
            self.tabs.setCurrentWidget(self.region_editor)
            return False
        return True

    def _say_saved_for_start(self, part: Part, changes: list[str]) -> None:
        """Say, key by key, which Rig tab edits a start saved: none must run without a word."""
        if changes:
            lines = "\n".join(f"  {change}" for change in changes)
            self.say.notice(
                f"Start {BUTTON_LABELS[part]} saved the Rig tab's changes to "
                f"{self.rig_panel.settings_file}:\n{lines}",
                stay=True,
            )

    def _show_verdict(self, text: str) -> None:
        """Show verify's verdict: its first line above the summary, its reasons under it."""
        self._verify_progress = ""
        self._show_progress()
        headline, _, rest = text.partition("\n")
        self.info.drop_staying(VERDICT_PREFIX)
        self.say.summary(headline)
        if rest.strip():
            self.info.show_text(f"{VERDICT_PREFIX}'s reasons:\n{rest}", stay=True, add=True)

    def _show_verify_progress(self, text: str) -> None:
        """Say verify's stage beside the buttons; once stopped, it is news for the message area."""
        running = self.session_row.verify_button.run.running
        self._verify_progress = text if running else ""
        self._show_progress()
        if text and not running:
            self.say.notice(text)

    def _state_changed(self) -> None:
        """Buttons, labels and the live view follow the controller's state."""
        controller = self.controller
        for part, button in self.buttons.items():
            verb = "Stop" if controller.running(part) else "Start"
            if part is Part.ANALYSIS and controller.loading is not None:
                verb = "Cancel"
            button.setText(f"{verb} {BUTTON_LABELS[part]}")
            reason = CLOSING_TEXT if self.closing else controller.why_not(part)
            tip = reason or ""
            if not self.closing and self.queue.holds(part):
                reason, tip = None, "queued: it runs once the part in progress is done; click again"
            elif not self.closing and reason is not None and self.queue.can_queue(part):
                waited = controller.waits_for(part) or ""
                reason, tip = None, f"click to run it once {done_words(waited)}"
            button.setEnabled(reason is None)
            button.setToolTip(tip)
        self.say.withdraw_stale_refusal()
        if controller.runner is None and controller.final_recorded:  # the stream stopped
            self.status_panel.show_final_recorded(controller.final_recorded)
        if self.queue.clicks and not self.closing:
            QTimer.singleShot(0, self._run_queued)
        self.latency_button.follow()
        self._show_progress()
        idle = not controller.streaming and not controller.working
        self.camera_tab.follow()
        busy = controller.streaming or controller.working or self.closing
        sessions = self.rig_panel.sessions_folder()
        self.session_row.follow(idle, busy, controller.session_dir, sessions)
        stream = controller.stream
        opened = stream is not None and stream.session_dir is not None
        if self.view_side.live_view is None and opened and controller.busy is None:
            self._show_live_view()
        self.view_side.follow_experiment(controller.running(Part.EXPERIMENT))
        self._refresh_status()
        self._show_experiment()

    def _run_queued(self) -> None:
        """Run the clicks whose wait is over, in order; say why one cannot run, until dismissed."""
        ready = self.queue.next()
        while ready is not None and not self.closing:
            click, refusal = ready
            if refusal is not None:
                self.say.warning(
                    f"{click.words()}, clicked while {click.waited}, was not run: {refusal}"
                )
            else:
                self.toggle(click.part)
                if self.controller.waits_for(click.part) is not None:
                    return  # it started something: the rest wait for it (state changes again)
            ready = self.queue.next()

    def _show_progress(self) -> None:
        """Say beside the buttons what starts or stops, its stage, time and waiting clicks."""
        controller = self.controller
        if self.closing:
            text = CLOSING_TEXT
        elif controller.busy is not None:
            text = f"{controller.busy}..."
        elif controller.loading is not None:
            text = controller.loading.progress_text()
        else:
            text = self._verify_progress
        if self.queue.clicks and not self.closing:
            text += f"; then {self.queue.text()}"
        if text != self.busy_label.text():
            self.busy_label.setText(text)

    def _show_live_view(self) -> None:
        """Show the stream just opened; the panels that watch it start afresh."""
        stream = self.controller.stream
        assert stream is not None
        self.view_side.show_stream(stream)
        self._stream_started = time.monotonic()
        self.plots.clear()
        self.loss_banner.clear()
        self.event_log.clear()
        self.status_panel.clear_experiment()
        self.camera_tab.controls.attach(stream)

    def _say_previous_session(self) -> None:
        """Say once, at the start, how the previous session ended and its verdict."""
        if self._previous_said:
            return
        self._previous_said = True
        line = previous_session_line(self.rig_panel.sessions_folder())
        if line is not None:
            self.say.notice(line)

    def _rig_checked(self) -> None:
        """List the named experiment's regions before a stream; mark unsaved Rig edits."""
        self._show_rig_unsaved()
        if not self.rig_panel.problems:
            self.say.resolve(SETTINGS_CAUSE)
        if not self.controller.streaming and self.controller.session_dir is None:
            self.session_row.show_session(None, self.rig_panel.sessions_folder())
            self._say_previous_session()
        if self.controller.streaming or self.region_editor.dirty:
            return
        settings = self.rig_panel.settings
        name = settings.experiment.name if settings is not None else None
        if name is None:
            name = self.rig_panel.document.get("Experiment", "NAME", "") or ""
        folder = settings.source_file.parent if settings is not None else None
        path = config_file_of(name, folder) if name else None
        if path != self.region_editor.file.path or (
            self.rig_panel.camera_names() != self.region_editor.cameras
        ):
            self.region_editor.load(path, self.rig_panel.camera_names(), [])

    def _show_rig_unsaved(self) -> None:
        index = self.tabs.indexOf(self.rig_panel)
        if index >= 0:
            self.tabs.setTabText(index, "Rig (unsaved)" if self.rig_panel.dirty else "Rig")

    def _regions_saved(self, path: Path) -> None:
        self.say.notice(f"Regions saved to {path}")
        self.say.resolve("regions")
        self.rig_panel.check_now()  # the experiment's problems may be fixed now

    def _drop_live_view(self) -> None:
        self.loss_banner.end_stream()  # its losses in the past tense: "in the last 10 s" no more
        self.camera_tab.controls.attach(None)
        self.view_side.drop()

    def _service(self) -> None:
        """Every 50 ms: the stream's news, then the experiment's line (it changes by the frame)."""
        self.controller.service()
        self._show_experiment()
        self._show_progress()

    def _show_experiment(self) -> None:
        controller = self.controller
        stream = controller.stream
        analysis = stream.pose.analysis if stream is not None else None
        status = analysis.experiment_status if analysis is not None else None
        running = controller.running(Part.EXPERIMENT)
        self.status_panel.show_experiment(status if running else None, running)
        self.event_log.show_status(status)  # also the last status after a stop
        if status is not None and status.error and status.error != self._shown_error:
            self._shown_error = status.error  # it stopped itself (a device failed): say so once
            self.say.error(
                f"{status.error}. The events so far are in the session folder; fix the cause, "
                "then press Start Experiment again.",
                Part.EXPERIMENT.value,
            )
            if running and controller.busy is None:
                # Its files are finished and the button says Start again, as after a Stop.
                controller.stop(Part.EXPERIMENT)

    def _refresh_status(self) -> None:
        """Once a second: the camera table and the recording's duration and size."""
        controller = self.controller
        runner = controller.runner
        if runner is not None:  # the runner refreshes its figures once a second when serviced
            figures = self.view_side.on_camera_clock(runner.last_figures)
            self.status_panel.show_cameras(figures)
            if figures and controller.busy is None:
                since_start = time.monotonic() - self._stream_started
                self.plots.add(figures, since_start)
                self.loss_banner.recording = controller.running(Part.RECORDING)
                self.loss_banner.update_figures(figures, since_start)
                self.plots.show_alerts(a.figure for a in self.loss_banner.alarm.alerts)
                self.status_panel.mark_loud({a.camera for a in self.loss_banner.alarm.alerts})
        started = controller.recording_started
        seconds = None if started is None else time.monotonic() - started
        self.status_panel.show_recording(seconds, recorded_video_bytes(controller.session_dir))
        self.latency_button.follow()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop every part in order, off the GUI thread, then let the window go."""
        controller = self.controller
        self.session_row.verify_button.stop()  # never left running behind the window
        if self.closed_down or (not controller.streaming and not controller.working):
            self._service_timer.stop()
            self._status_timer.stop()
            self.stall_monitor.stop()
            log.info("%s", self.stall_monitor.summary())
            remove_wheel_guard(self.wheel_guard)  # before Qt destroys the widgets
            self.wheel_guard = None
            self.closed_down = True
            if event is not None:
                event.accept()
            return
        if event is not None:
            event.ignore()
        if not self.closing:
            self.closing = True
            self.queue.clear()
            for button in [*self.buttons.values(), self.latency_button]:
                button.setEnabled(False)
            self.busy_label.setText(CLOSING_TEXT)
            controller.request_shutdown(self.close_reason)

    def close_for(self, reason: str) -> None:
        """Close the window for ``reason`` (Ctrl-C received): the session's stop reason."""
        self.close_reason = reason
        self.close()

    def _shut_down(self) -> None:
        self.closed_down = True
        self.close()
