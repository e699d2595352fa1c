"""The rig panel: cameras, model, experiment, devices and the session, set up from the window.

Design: docs/gui.md, "The Rig tab: cameras, model, experiment, devices, session".
"""

from __future__ import annotations

import configparser
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.keypoint_map import KeypointMapBox
from deeplabstream.app.gui.rig.calibration_box import CalibrationBox
from deeplabstream.app.gui.rig.camera_box import CameraBox
from deeplabstream.app.gui.rig.checker import RigChecker
from deeplabstream.app.gui.rig.device_box import DeviceBox
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.experiment_box import ExperimentBox
from deeplabstream.app.gui.rig.model_box import ModelBox
from deeplabstream.app.gui.rig.session_box import SessionBox
from deeplabstream.app.gui.rig.summary_box import SummaryBox
from deeplabstream.core.ini_text import IniText
from deeplabstream.settings.sections import Settings

MIN_AREA_PX = 60  # a splitter never squeezes the settings or the summary below this
SPLIT_UNIT_PX = 100  # the splitter's first shares: proportions, scaled to the panel's height
SETTINGS_SHARE = 0.57  # of the panel's height the settings keep at least, whatever the summary says


class RigPanel(QWidget):
    """Cameras, model, experiment, devices and session of one settings file."""

    saved = pyqtSignal(Path)  # the settings file was written
    checked = pyqtSignal()  # a check finished: :attr:`problems` and :attr:`settings` are current
    model_described = pyqtSignal(object)  # Inspect described the model named: its ModelFacts

    def __init__(self, settings_file: Path) -> None:
        super().__init__()
        self.setObjectName("rig_panel")
        self.file = EditedFile(settings_file)
        self.settings: Settings | None = None  # of the last check, None when unreadable
        self.problems: list[str] = []
        # A file that is no ini file is shown empty and never saved over: its problem stays.
        self._unparsable: str | None = None
        self.output_override: Path | None = None  # app.py --output-dir: sessions go there
        self.checker = RigChecker(self)
        self.checker.due.connect(self.check_now)
        self.checker.done.connect(self._check_done)
        self.file.edited.connect(self.checker.schedule)
        self.file.rewritten.connect(self._show_document)
        self._build()
        self.load(settings_file)

    # -- the file ------------------------------------------------------------------------------

    @property
    def settings_file(self) -> Path:
        """The settings file shown and saved."""
        return self.file.path

    @property
    def document(self) -> IniText:
        """The edited text of the settings file."""
        return self.file.document

    @property
    def dirty(self) -> bool:
        """Whether the text has edits not saved yet."""
        return self.file.dirty

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        settings_area = self._settings_area()
        self.camera_box.refused.connect(lambda text: self._say(text, problem=True))
        self.device_box.refused.connect(lambda text: self._say(text, problem=True))
        self.model_box.model_described.connect(self.model_described)
        self.experiment_box.allowed.connect(self.check_now)
        self.summary_box = SummaryBox()
        self.summary_box.setMinimumHeight(MIN_AREA_PX)
        self.save_button = named_button("Save settings", "rig_save", self._save_clicked)
        self.revert_button = named_button(
            "Revert", "rig_revert", lambda: self.load(self.settings_file)
        )
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        # The summary scrolls in its own box, and a splitter shares the height between it and
        # the settings: at 1280x720 both stay usable, and either can be given more room.
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.setObjectName("rig_splitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(settings_area)
        self.splitter.addWidget(self.summary_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([3 * SPLIT_UNIT_PX, SPLIT_UNIT_PX])  # a quarter for the summary
        # Until the user drags the splitter, the summary gets the height its text needs (the
        # settings keep SETTINGS_SHARE): a fixed quarter cut its last line at 1600x900.
        self._summary_dragged = False
        self.splitter.splitterMoved.connect(self._summary_sized_by_user)
        self._summary_fit = QTimer(self)  # once the layout has settled, however many changes
        self._summary_fit.setSingleShot(True)
        self._summary_fit.setInterval(0)
        self._summary_fit.timeout.connect(self._fit_summary)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.splitter, 1)
        outer.addLayout(buttons)

    def _settings_area(self) -> QScrollArea:
        """Return the boxes, one under the other, scrolling in height only."""
        # Each box is laid out as it is made, in Qt's order of layout and first events, so the
        # boxes' tops are final when the window is first shown.
        content = QWidget()
        layout = QVBoxLayout(content)
        self.camera_box = CameraBox(self.file)
        layout.addWidget(self.camera_box)
        self.model_box = ModelBox(self.file)
        layout.addWidget(self.model_box)
        self.experiment_box = ExperimentBox(self.file)
        # Keypoints the experiment reads that the model lacks: a mapping offered (gui/keypoint_map)
        self.keypoint_map = KeypointMapBox(self)
        self.experiment_box.add_below(self.keypoint_map)
        layout.addWidget(self.experiment_box)
        self.device_box = DeviceBox(self.file)
        layout.addWidget(self.device_box)
        self.calibration_box = CalibrationBox(self.file)
        layout.addWidget(self.calibration_box)
        self.session_box = SessionBox(self.file)
        layout.addWidget(self.session_box)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("rig_settings_area")
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        scroll.setMinimumHeight(MIN_AREA_PX)
        # Never narrower than its fields: a splitter that squeezed it scrolled Remove and
        # Inspect out of sight sideways (what scrolls is the height, never the width).
        bar = scroll.verticalScrollBar()
        bar_width = bar.sizeHint().width() if bar is not None else 0
        scroll.setMinimumWidth(
            content.minimumSizeHint().width() + bar_width + 2 * scroll.frameWidth()
        )
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        return scroll

    # -- loading and showing -------------------------------------------------------------------

    def load(self, settings_file: Path) -> None:
        """Read ``settings_file`` (a missing one starts empty) and show it."""
        self._unparsable = None
        try:
            self.file.read(settings_file)
        except (OSError, UnicodeDecodeError) as error:  # a missing file starts empty
            self.problems = [f"{settings_file}: cannot be read: {error}"]
        except configparser.Error as error:  # not an ini file: fix it by hand first
            self._unparsable = f"{settings_file}: not an ini file, fix it in an editor: {error}"
            self.problems = [self._unparsable]
        self.device_box.list_device_types()
        self._show_document()
        self.check_now()

    def _show_document(self) -> None:
        self.camera_box.show_document()
        self.model_box.show_document()
        self.calibration_box.show_document()
        self.experiment_box.show_document()
        self.device_box.show_document()
        self.session_box.show_document()

    # -- what the window asks of the rig -------------------------------------------------------

    def camera_names(self) -> list[str]:
        """Return the cameras of the edited file, in order."""
        return self.camera_box.camera_names()

    def set_camera_keys(self, name: str, keys: dict[str, str]) -> None:
        """Write ``keys`` into ``[Camera name]`` (the Camera tab keeps what the user set live)."""
        self.camera_box.set_camera_keys(name, keys)

    def set_experiment(self, name: str) -> None:
        """Run the experiment ``name`` (a config, module:Class or path): chosen, so checked."""
        self.experiment_box.set_experiment(name)

    def experiment_allowed(self) -> bool:
        """Whether the checks may load the experiment named: not the lab's code, or allowed."""
        return self.experiment_box.experiment_allowed()

    def allow_experiment(self) -> None:
        """Let the checks import the named experiment (Check experiment, a start, a choice)."""
        self.experiment_box.allow_experiment()

    def set_output_override(self, folder: Path | None) -> None:
        """Say that sessions go to ``folder`` (``--output-dir``); Output folder turns read-only."""
        self.output_override = folder
        self.session_box.show_output_override(folder)
        if self.settings is not None:
            self.summary_box.show_plan(self.settings, self.output_override)

    def sessions_folder(self) -> Path | None:
        """Return the folder new session folders are made in (None until the settings are read)."""
        if self.output_override is not None:
            return self.output_override
        return self.settings.output.directory if self.settings is not None else None

    # -- checking and saving -------------------------------------------------------------------

    def check_now(self) -> None:
        """Check the edited text as a whole, off the GUI thread; :attr:`checked` says when done."""
        self.save_button.setEnabled(False)
        self._say("checking...", problem=False, fit=False)  # no jump at every key typed
        allowed = frozenset(self.experiment_box.allowed_experiments)
        self.checker.start(self.document.text(), self.settings_file, allowed)

    def wait_checked(self) -> None:
        """Block until every check in flight is done and shown (before a start, and in tests)."""
        if self.checker.pending():
            self.check_now()
        self.checker.wait()
        QApplication.processEvents()  # deliver their results

    def _check_done(self, settings: Settings | None, problems: list[str]) -> None:
        if self._unparsable is not None:
            problems = [self._unparsable, *problems]
        self.settings, self.problems = settings, problems
        self._say("\n".join(problems), problem=True)
        self.summary_box.show_plan(settings, self.output_override)
        self.save_button.setEnabled(not problems and self.dirty)
        self.experiment_box.show_checked(settings)
        self.session_box.mark_problems(problems)
        self.checked.emit()

    def _say(self, text: str, *, problem: bool, fit: bool = True) -> None:
        self.summary_box.say(text, problem=problem)
        if fit:
            self._summary_fit.start()

    def _summary_sized_by_user(self) -> None:
        self._summary_dragged = True

    def _fit_summary(self) -> None:
        """Give the summary the height its text needs; the settings keep SETTINGS_SHARE."""
        total = sum(self.splitter.sizes())
        if self._summary_dragged or total <= 0 or not self.summary_box.isVisible():
            return
        most = total - round(SETTINGS_SHARE * self.height())
        wanted = max(min(self.summary_box.needed_height(), most), MIN_AREA_PX)
        if wanted != self.summary_box.height():
            self.splitter.setSizes([total - wanted, wanted])

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 - Qt's name
        """Fit the summary again: a new width wraps its lines differently."""
        super().resizeEvent(event)
        self._summary_fit.start()

    def unsaved_changes(self) -> list[str]:
        """Return the edits not in the file yet, one line each ("[Experiment] NAME: a -> b")."""
        return self.file.unsaved_changes()

    def _save_clicked(self) -> None:
        self.save()  # the outcome is shown in the panel

    def save(self) -> Path | None:
        """Write the file if the check found no problem; return the backup made (if any)."""
        self.wait_checked()
        if self.problems:
            self._say("Not saved, fix these first:\n" + "\n".join(self.problems), problem=True)
            return None
        try:
            backup = self.file.save()
        except OSError as error:
            self._say(f"Not saved: {self.settings_file}: {error}", problem=True)
            return None
        self.save_button.setEnabled(False)
        self._say(
            f"Saved {self.settings_file}"
            + (f" (previous version: {backup.name})" if backup else ""),
            problem=False,
        )
        self.saved.emit(self.settings_file)
        return backup
