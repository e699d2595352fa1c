"""The rig panel: cameras, model, experiment, devices and the session, set up from the window.

The panel edits the settings file's text (:class:`core.ini_text.IniText`, so the user's comments
stay) and checks the whole of it at every change, the way a start would: the file is parsed
(:func:`settings.loader.parse_settings_text`), then the model and the experiment are checked
(:func:`live.session.preflight.check_before_start`). Problems are listed in red and saving is
refused until there are none; a saved file keeps its previous version as ``settings.ini.bak``. Paths
the user browses to are written relative to the settings file when they lie under its folder, so a
rig folder can be moved as a whole.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, QThread, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.fitting import shrinkable
from deeplabstream.app.gui.job_targets import (
    ModelFacts,
    Outcome,
    calibrate_job,
    describe_model_job,
    detect_cameras_job,
)
from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.app.gui.keypoint_map import KeypointMapBox
from deeplabstream.app.gui.rig_check import (
    check_text,
    experiment_name_for,
    lab_code_of,
    relative_to_settings,
    summary_lines,
    trigger_line,
)
from deeplabstream.app.gui.section_table import KeyRow, SectionTable, camera_keys, device_keys
from deeplabstream.app.gui.subject_fields import SubjectFields
from deeplabstream.core.ini_text import IniText, save_with_backup
from deeplabstream.core.plugins import PluginError
from deeplabstream.experiments.registry import available_experiments, load_experiment
from deeplabstream.hardware.cameras.detect import Detection
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.outputs.nwb_forms import check_experimenters
from deeplabstream.settings.loader import CAMERA_NAME, CAMERA_PREFIX, DEVICE_PREFIX
from deeplabstream.settings.sections import Settings

CHECK_DELAY_MS = 300  # typing pauses this long before the whole file is checked again
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.mj2);;All files (*)"
MODEL_FILTER = "Models (*.pt *.ckpt *.onnx *.json *.yaml);;All files (*)"
SESSION_SECTION = "Session"
PROBLEM_COLOUR = "#b00020"
NEWS_COLOUR = "#37474f"  # saved, checking: information, not alarm
MIN_AREA_PX = 60  # a splitter never squeezes the settings or the summary below this
SPLIT_UNIT_PX = 100  # the splitter's first shares: proportions, scaled to the panel's height
DETECT_TIMEOUT_S = 60.0  # a camera driver that hangs longer is stopped
CHOICE_CHARACTERS = 16  # a list's width, in characters, whatever its items' length
#: The Add list's kinds added by hand: label -> SOURCE.
BY_HAND = {
    "USB/OpenCV camera (index or URL)...": "opencv",
    "Basler camera (serial)...": "basler",
    "RealSense camera (serial)...": "realsense",
}
#: SOURCE -> the key that says which camera, and the question asked for it.
HAND_QUESTIONS = {
    "opencv": (
        "DEVICE",
        "Device index (0 is the first camera; on Linux N is /dev/videoN) or a stream URL "
        "(rtsp://...):",
    ),
    "basler": ("SERIAL", "The Basler camera's serial number (on its label, or in pylon Viewer):"),
    "realsense": ("SERIAL", "The RealSense camera's serial number (realsense-viewer shows it):"),
}
HAND_EXAMPLES = {
    "opencv": "0 or rtsp://192.168.0.5/stream",
    "basler": "21234567",
    "realsense": "843112071234",
}


class _Check(QThread):
    """Check a settings text off the GUI thread (loading an experiment imports Python)."""

    done = pyqtSignal(int, object, object)  # generation, settings or None, problems

    def __init__(self, generation: int, text: str, file: Path, allowed: frozenset[str]) -> None:
        super().__init__()
        self._generation, self._text, self._file = generation, text, file
        self._allowed = allowed

    def run(self) -> None:  # QThread calls this on the new thread
        settings, problems = check_text(self._text, self._file, self._allowed)
        self.done.emit(self._generation, settings, problems)


class RigPanel(QWidget):
    """Cameras, model, experiment, devices and session of one settings file."""

    saved = pyqtSignal(Path)  # the settings file was written
    checked = pyqtSignal()  # a check finished: :attr:`problems` and :attr:`settings` are current
    model_described = pyqtSignal(object)  # Inspect described the model named: its ModelFacts

    def __init__(self, settings_file: Path) -> None:
        super().__init__()
        self.setObjectName("rig_panel")
        self.settings_file = settings_file
        self.document = IniText("")
        self.settings: Settings | None = None  # of the last check, None when unreadable
        self.problems: list[str] = []
        # A file that is no ini file is shown empty and never saved over: its problem stays.
        self._unparsable: str | None = None
        self.dirty = False
        self._generation = 0
        self._checks: list[_Check] = []
        self._detection: ProcessJob | None = None
        self.output_override: Path | None = None  # app.py --output-dir: sessions go there
        # Experiments of the lab's code the user started, checked or chose: only these are
        # imported by the checks (opening a settings file must not run a module it names).
        self.allowed_experiments: set[str] = set()
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check_now)
        self._build()
        self.load(settings_file)

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self._cameras_group())
        layout.addWidget(self._model_group())
        layout.addWidget(self._experiment_group())
        layout.addWidget(self._devices_group())
        layout.addWidget(self._calibration_group())
        layout.addWidget(self._session_group())
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
        self.summary = shrinkable(QLabel(""))
        self.summary.setObjectName("rig_summary")
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem_label = shrinkable(QLabel(""))
        self.problem_label.setObjectName("rig_problems")
        self.problem_label.setStyleSheet(f"color: {PROBLEM_COLOUR};")
        self.problem_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.save_button = QPushButton("Save settings")
        self.save_button.setObjectName("rig_save")
        self.save_button.clicked.connect(self._save_clicked)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setObjectName("rig_revert")
        self.revert_button.clicked.connect(lambda: self.load(self.settings_file))
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        # The summary scrolls in its own box, and a splitter shares the height between it and
        # the settings: at 1280x720 both stay usable, and either can be given more room.
        summary_text = QWidget()
        summary_layout = QVBoxLayout(summary_text)
        summary_layout.setContentsMargins(0, 0, 0, 0)
        summary_layout.addWidget(self.problem_label)  # first: what stops a start, in sight
        summary_layout.addWidget(self.summary)
        summary_layout.addStretch(1)
        summary_scroll = QScrollArea()
        summary_scroll.setWidgetResizable(True)
        summary_scroll.setFrameShape(QScrollArea.NoFrame)
        summary_scroll.setWidget(summary_text)
        summary_box = QGroupBox("What Start will run")
        summary_box.setObjectName("rig_summary_box")
        summary_box.setMinimumHeight(MIN_AREA_PX)
        QVBoxLayout(summary_box).addWidget(summary_scroll)
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.setObjectName("rig_splitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(summary_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([3 * SPLIT_UNIT_PX, SPLIT_UNIT_PX])  # a quarter for the summary
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.splitter, 1)
        outer.addLayout(buttons)

    def _cameras_group(self) -> QGroupBox:
        group = QGroupBox("Cameras")
        self.camera_list = QListWidget()
        self.camera_list.setObjectName("rig_cameras")
        # Three names in sight (a rig has one to three cameras); more scroll.
        self.camera_list.setMaximumHeight(3 * (self.camera_list.fontMetrics().height() + 6) + 6)
        self.camera_list.currentTextChanged.connect(self._show_camera)
        self.add_camera_choice = QComboBox()
        self.add_camera_choice.setObjectName("rig_add_camera")
        narrow_choice(self.add_camera_choice)  # a long camera label must not widen the tab
        self.add_camera_button = QPushButton("Add")
        self.add_camera_button.setObjectName("rig_add_camera_button")
        self.add_camera_button.clicked.connect(self._add_chosen_camera)
        self.detect_button = QPushButton("Detect")
        self.detect_button.setObjectName("rig_detect_cameras")
        self.detect_button.setToolTip("Look for Basler, RealSense and OpenCV cameras again")
        self.detect_button.clicked.connect(self.detect_cameras)
        self.remove_camera_button = QPushButton("Remove")
        self.remove_camera_button.setObjectName("rig_remove_camera")
        self.remove_camera_button.clicked.connect(self._remove_selected_camera)
        row = QHBoxLayout()
        row.addWidget(self.add_camera_choice, 1)
        row.addWidget(self.add_camera_button)
        row.addWidget(self.detect_button)
        row.addWidget(self.remove_camera_button)
        self.detect_status = _status_line("rig_detect_status")
        self.camera_table = SectionTable("rig_camera_keys")
        self.camera_table.edited.connect(self._camera_key_edited)
        layout = QVBoxLayout(group)
        layout.addWidget(self.camera_list)
        layout.addLayout(row)
        layout.addWidget(self.detect_status)
        layout.addWidget(self.camera_table)
        self._fill_camera_choices([])
        return group

    def _model_group(self) -> QGroupBox:
        group = QGroupBox("Pose model")
        self.model_edit = QLineEdit()
        self.model_edit.setObjectName("rig_model_path")
        self.model_edit.setPlaceholderText("empty: the bundled model of the simulated arena")
        self.model_edit.editingFinished.connect(lambda: self.set_model(self.model_edit.text()))
        browse = QPushButton("Browse...")
        browse.setObjectName("rig_model_browse")
        browse.clicked.connect(self._browse_model)
        self.inspect_button = QPushButton("Inspect")
        self.inspect_button.setObjectName("rig_model_inspect")
        self.inspect_button.setToolTip(
            "What deeplabstream-inspect shows: network, keypoints, input size (a DeepLabCut or "
            "Lightning Pose model is converted first, in the background)"
        )
        self.inspect_button.clicked.connect(self.inspect_model)
        row = QHBoxLayout()
        row.addWidget(self.model_edit, 1)
        row.addWidget(browse)
        row.addWidget(self.inspect_button)
        self.inspect_status = _status_line("rig_model_status")
        self.model_info = QPlainTextEdit()
        self.model_info.setObjectName("rig_model_info")
        self.model_info.setReadOnly(True)
        self.model_info.setMaximumHeight(120)
        layout = QVBoxLayout(group)
        layout.addLayout(row)
        layout.addWidget(self.inspect_status)
        layout.addWidget(self.model_info)
        self._inspection: ProcessJob | None = None
        self._described: str | None = None  # the model the box describes ("": the bundled)
        self.model_facts: ModelFacts | None = None  # of the model the field names, once inspected
        return group

    def _calibration_group(self) -> QGroupBox:
        group = QGroupBox("3D calibration")
        self.calibration_edit = QLineEdit()
        self.calibration_edit.setObjectName("rig_calibration_path")
        self.calibration_edit.setPlaceholderText("empty: no 3D (a calibration.toml triangulates)")
        self.calibration_edit.editingFinished.connect(
            lambda: self._set("Triangulation", "CALIBRATION", self.calibration_edit.text())
        )
        run = QPushButton("Calibrate from a session...")
        run.setObjectName("rig_calibrate")
        run.setToolTip(
            "Choose a recorded session in which every camera filmed the ChArUco board (flat on "
            "the floor first, then moved): deeplabstream-calibrate solves it, writes "
            "calibration.toml beside it and uses it for [Triangulation] (docs/3d.md)"
        )
        run.clicked.connect(self._choose_calibration_session)
        row = QHBoxLayout()
        row.addWidget(self.calibration_edit, 1)
        row.addWidget(run)
        self.calibration_status = _status_line("rig_calibration_status")
        self.calibration_info = QPlainTextEdit()
        self.calibration_info.setObjectName("rig_calibration_info")
        self.calibration_info.setReadOnly(True)
        self.calibration_info.setMaximumHeight(120)
        layout = QVBoxLayout(group)
        layout.addLayout(row)
        layout.addWidget(self.calibration_status)
        layout.addWidget(self.calibration_info)
        self._calibration: ProcessJob | None = None
        return group

    def _experiment_group(self) -> QGroupBox:
        group = QGroupBox("Experiment")
        self.experiment_choice = QComboBox()
        self.experiment_choice.setObjectName("rig_experiment")
        self.experiment_choice.setEditable(True)
        narrow_choice(self.experiment_choice)
        self.experiment_choice.setToolTip(
            "A config of experiments/configs, a class module:Class, or the path of a .ini/.py"
        )
        self.experiment_choice.activated.connect(self._experiment_chosen)
        line = self.experiment_choice.lineEdit()
        assert line is not None
        line.editingFinished.connect(self._experiment_chosen)
        browse = QPushButton("Browse...")
        browse.setObjectName("rig_experiment_browse")
        browse.clicked.connect(self._browse_experiment)
        self.check_experiment_button = QPushButton("Check experiment")
        self.check_experiment_button.setObjectName("rig_check_experiment")
        self.check_experiment_button.setToolTip(
            "Import the experiment's module (your lab's code runs) and check its triggers, "
            "cameras, devices and keypoints against the rig"
        )
        self.check_experiment_button.clicked.connect(self.allow_experiment)
        self.check_experiment_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.experiment_choice, 1)
        row.addWidget(browse)
        row.addWidget(self.check_experiment_button)
        self.experiment_info = shrinkable(QLabel(""))
        self.experiment_info.setObjectName("rig_experiment_info")
        layout = QVBoxLayout(group)
        layout.addLayout(row)
        layout.addWidget(self.experiment_info)
        # Keypoints the experiment reads that the model lacks: a mapping offered (gui/keypoint_map)
        self.keypoint_map = KeypointMapBox(self)
        layout.addWidget(self.keypoint_map)
        return group

    def _devices_group(self) -> QGroupBox:
        group = QGroupBox("Stimulation devices")
        self.device_list = QListWidget()
        self.device_list.setObjectName("rig_devices")
        self.device_list.setMaximumHeight(70)
        self.device_list.currentTextChanged.connect(self._show_device)
        self.device_type = QComboBox()
        self.device_type.setObjectName("rig_device_type")
        self.device_type.addItems(sorted(DEVICES))
        self.device_type.activated.connect(self._device_type_chosen)
        add = QPushButton("Add...")
        add.setObjectName("rig_add_device")
        add.clicked.connect(self._ask_device_name)
        remove = QPushButton("Remove")
        remove.setObjectName("rig_remove_device")
        remove.clicked.connect(self._remove_selected_device)
        row = QHBoxLayout()
        row.addWidget(QLabel("TYPE"))
        row.addWidget(self.device_type, 1)
        row.addWidget(add)
        row.addWidget(remove)
        self.device_table = SectionTable("rig_device_keys")
        self.device_table.edited.connect(self._device_key_edited)
        layout = QVBoxLayout(group)
        layout.addWidget(self.device_list)
        layout.addLayout(row)
        layout.addWidget(self.device_table)
        return group

    def _session_group(self) -> QGroupBox:
        group = QGroupBox("Session")
        form = QFormLayout(group)
        self.session_fields: dict[str, QLineEdit] = {}
        self.session_reasons: dict[str, QLabel] = {}
        for key, label in (
            ("ANIMAL", "Animal"),
            ("EXPERIMENTER", "Experimenter"),
            ("NOTES", "Notes"),
        ):
            edit = QLineEdit()
            edit.setObjectName(f"session_{key.lower()}")
            edit.editingFinished.connect(
                lambda k=key, e=edit: self._set(SESSION_SECTION, k, e.text())
            )
            form.addRow(f"{label}:", edit)
            self.session_fields[key] = edit
            # The reason a field is refused, under it: in sight where the field is edited.
            reason = QLabel(
                ""
            )  # wraps at the field's width (a 1 px least width made it 500 px tall)
            reason.setWordWrap(True)
            reason.setObjectName(f"session_{key.lower()}_problem")
            reason.setTextInteractionFlags(Qt.TextSelectableByMouse)
            reason.hide()
            form.addRow("", reason)
            self.session_reasons[key] = reason
        self.subject = SubjectFields(lambda key, value: self._set(SESSION_SECTION, key, value))
        form.addRow(self.subject)
        self.output_edit = QLineEdit()
        self.output_edit.setObjectName("session_output")
        self.output_edit.editingFinished.connect(
            lambda: self._set("Output", "DIRECTORY", self.output_edit.text())
        )
        self.output_browse = QPushButton("Browse...")
        self.output_browse.setObjectName("session_output_browse")
        self.output_browse.clicked.connect(self._browse_output)
        output_row = QHBoxLayout()
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(self.output_browse)
        form.addRow("Output folder:", output_row)
        self.duration = QDoubleSpinBox()
        self.duration.setObjectName("session_duration")
        self.duration.setRange(0, 24 * 60)
        self.duration.setDecimals(1)
        self.duration.setSuffix(" min")
        self.duration.setSpecialValueText("until stopped")
        self.duration.editingFinished.connect(self._duration_edited)
        form.addRow("Planned duration:", self.duration)
        self.record_row = QHBoxLayout()
        self.record_boxes: dict[str, QCheckBox] = {}
        form.addRow("Record:", self.record_row)
        return group

    # -- loading and showing -------------------------------------------------------------------

    def load(self, settings_file: Path) -> None:
        """Read ``settings_file`` (a missing one starts empty) and show it."""
        self.settings_file = settings_file
        self._unparsable = None
        try:
            self.document = IniText.read(settings_file)
        except (OSError, UnicodeDecodeError) as error:  # a missing file starts empty
            self.document = IniText("")
            self.problems = [f"{settings_file}: cannot be read: {error}"]
        except configparser.Error as error:  # not an ini file: fix it by hand first
            self.document = IniText("")
            self._unparsable = f"{settings_file}: not an ini file, fix it in an editor: {error}"
            self.problems = [self._unparsable]
        self.dirty = False
        self._list_device_types()
        self._show_document()
        self.check_now()

    def _list_device_types(self) -> None:
        """Offer the registered device types, then the modules of the lab's ``devices/``."""
        lab = [path.stem for path in DEVICES.lab_modules(self.settings_file.parent)]
        self.device_type.clear()
        self.device_type.addItems([*sorted(DEVICES.names()), *lab])

    def _show_document(self) -> None:
        doc = self.document
        current = self.camera_list.currentItem()
        selected = current.text() if current is not None else None
        self.camera_list.clear()
        self.camera_list.addItems(self.camera_names())
        names = self.camera_names()
        if names:
            self.camera_list.setCurrentRow(names.index(selected) if selected in names else 0)
        else:
            self.camera_table.setRowCount(0)
        self.model_edit.setText(doc.get("Pose", "MODEL_PATH", "") or "")
        self._forget_other_model()
        self.calibration_edit.setText(doc.get("Triangulation", "CALIBRATION", "") or "")
        self._fill_experiments(doc.get("Experiment", "NAME", "") or "")
        self.device_list.clear()
        self.device_list.addItems(self.device_names())
        if self.device_names():
            self.device_list.setCurrentRow(0)
        else:
            self.device_table.setRowCount(0)
        for key, edit in self.session_fields.items():
            edit.setText(doc.get(SESSION_SECTION, key, "") or "")
        self.subject.show_values(lambda key: doc.get(SESSION_SECTION, key, "") or "")
        self.output_edit.setText(doc.get("Output", "DIRECTORY", "") or "")
        planned = doc.get(SESSION_SECTION, "PLANNED_DURATION", "") or ""
        try:
            self.duration.setValue(float(planned) / 60 if planned else 0)
        except ValueError:
            self.duration.setValue(0)
        self._show_record_boxes()

    def camera_names(self) -> list[str]:
        """Return the cameras of the edited file, in order."""
        return [
            s[len(CAMERA_PREFIX) :].strip()
            for s in self.document.sections()
            if s.startswith(CAMERA_PREFIX)
        ]

    def device_names(self) -> list[str]:
        """Return the devices of the edited file, in order."""
        return [
            s[len(DEVICE_PREFIX) :].strip()
            for s in self.document.sections()
            if s.startswith(DEVICE_PREFIX)
        ]

    def _show_camera(self, name: str) -> None:
        if not name:
            return
        section = CAMERA_PREFIX + name
        source = (self.document.get(section, "SOURCE", "") or "").strip()
        rows = [KeyRow("SOURCE", "", "The camera source (read-only here: add a camera instead)")]
        try:  # registered, or a module of the lab's cameras/ (the check has imported it)
            rows += camera_keys(source, self.settings_file.parent)
        except PluginError:  # unknown or broken: the check names it
            pass
        self.camera_table.show_keys(rows, self.document.items(section))
        source_item = self.camera_table.item(0, 1)
        if source_item is not None:
            source_item.setFlags(source_item.flags() & ~Qt.ItemIsEditable)

    def _show_device(self, name: str) -> None:
        if not name:
            return
        section = DEVICE_PREFIX + name
        kind = (self.document.get(section, "TYPE", "log") or "log").strip()
        kind = kind.lower() if kind.lower() in DEVICES.names() else kind  # a lab's: as written
        if self.device_type.findText(kind) >= 0:  # registered, or a module of devices/
            self.device_type.setCurrentText(kind)
            rows = device_keys(kind, self.settings_file.parent)
            self.device_table.show_keys(rows, self.document.items(section))

    def _show_record_boxes(self) -> None:
        for box in self.record_boxes.values():
            self.record_row.removeWidget(box)
            box.deleteLater()
        self.record_boxes.clear()
        for name in self.camera_names():
            value = self.document.get(CAMERA_PREFIX + name, "RECORD", "true") or "true"
            box = QCheckBox(name)
            box.setObjectName(f"record_{name}")
            box.setChecked(value.strip().lower() not in ("false", "no", "off", "0"))
            box.toggled.connect(lambda on, n=name: self._set_record(n, on))
            self.record_row.addWidget(box)
            self.record_boxes[name] = box

    def _fill_experiments(self, current: str) -> None:
        self.experiment_choice.blockSignals(True)
        self.experiment_choice.clear()
        try:
            self.experiment_choice.addItems(available_experiments(self.settings_file.parent))
        except Exception as error:  # a broken experiment module must not break the panel
            self.experiment_info.setText(f"cannot list the experiments: {error}")
        self.experiment_choice.setCurrentText(current)
        self.experiment_choice.blockSignals(False)

    def _fill_camera_choices(self, detected: list[Any]) -> None:
        self.add_camera_choice.clear()
        self.add_camera_choice.addItem("Simulated arena", {"SOURCE": "synthetic"})
        self.add_camera_choice.addItem("Video file...", None)
        # Every kind by hand too: Detect may find nothing (a driver not yet installed, a camera
        # on the network, another user's session holding it), and the lab knows its serial.
        for label, source in BY_HAND.items():
            self.add_camera_choice.addItem(label, source)
        for camera in detected:
            if camera.source != "synthetic":
                self.add_camera_choice.addItem(camera.label, dict(camera.keys))

    # -- editing -------------------------------------------------------------------------------

    def _set(self, section: str, key: str, value: str) -> None:
        """Set (or, when empty, remove) one key, then check the whole file again soon."""
        value = value.strip()
        if value:
            if self.document.get(section, key) == value:
                return
            self.document.set(section, key, value)
        elif not self.document.remove(section, key):
            return
        self._edited()

    def _edited(self) -> None:
        self.dirty = True
        self._check_timer.start()

    def add_camera(self, name: str, keys: dict[str, str]) -> None:
        """Add ``[Camera name]`` with ``keys`` (SOURCE first)."""
        if not CAMERA_NAME.match(name):
            raise ValueError(f"camera name {name!r}: use letters, digits, '_' or '-'")
        if name in self.camera_names():
            raise ValueError(f"there is a camera {name!r} already")
        cameras = self.camera_names()
        # After the other cameras (the file reads as the rig), not after [Session] at the end.
        after = CAMERA_PREFIX + cameras[-1] if cameras else None
        self.document.add_section(CAMERA_PREFIX + name, keys, after=after)
        self._show_document()
        self.camera_list.setCurrentRow(self.camera_names().index(name))
        self._edited()

    def set_camera_keys(self, name: str, keys: dict[str, str]) -> None:
        """Write ``keys`` into ``[Camera name]`` (the Camera tab keeps what the user set live)."""
        section = CAMERA_PREFIX + name
        if not self.document.has_section(section):
            raise KeyError(name)
        for key, value in keys.items():
            self.document.set(section, key, value)
        self._show_document()
        self._edited()

    def remove_camera(self, name: str) -> None:
        """Remove ``[Camera name]``."""
        self.document.remove_section(CAMERA_PREFIX + name)
        self._show_document()
        self._edited()

    def add_device(self, name: str, kind: str) -> None:
        """Add ``[Device name]`` of TYPE ``kind``."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"device name {name!r}: no spaces")
        if name in self.device_names():
            raise ValueError(f"there is a device {name!r} already")
        self.document.add_section(DEVICE_PREFIX + name, {"TYPE": kind})
        self._show_document()
        self.device_list.setCurrentRow(self.device_names().index(name))
        self._edited()

    def set_model(self, path: str) -> None:
        """Use the model at ``path`` (empty: the bundled model)."""
        self.model_edit.setText(path)
        self._set("Pose", "MODEL_PATH", path)
        self._forget_other_model()

    def set_experiment(self, name: str) -> None:
        """Run the experiment ``name`` (a config, module:Class or path): chosen, so checked."""
        self.allowed_experiments.add(name.strip())
        self.experiment_choice.setCurrentText(name)
        self._set("Experiment", "NAME", name)

    def experiment_name(self) -> str:
        """Return ``[Experiment] NAME`` of the edited text ("" when none)."""
        return (self.document.get("Experiment", "NAME", "") or "").strip()

    def experiment_allowed(self) -> bool:
        """Whether the checks may load the experiment named: not the lab's code, or allowed."""
        name = self.experiment_name()
        return name in self.allowed_experiments or not self.lab_code()

    def lab_code(self) -> str | None:
        """Return the lab's code the named experiment would import (None: the package's own)."""
        return lab_code_of(self.experiment_name(), self.settings_file.parent)

    def allow_experiment(self) -> None:
        """Let the checks import the named experiment (Check experiment, a start, a choice)."""
        name = self.experiment_name()
        if name and name not in self.allowed_experiments:
            self.allowed_experiments.add(name)
            self.check_now()

    def _unique_camera_name(self, base: str) -> str:
        names = set(self.camera_names())
        if base not in names:
            return base
        index = 2
        while f"{base}{index}" in names:
            index += 1
        return f"{base}{index}"

    def _add_chosen_camera(self) -> None:
        keys = self.add_camera_choice.currentData()
        if isinstance(keys, str):  # a kind by hand: ask what opens it
            self._add_by_hand(keys)
            return
        if keys is None:  # a video file: ask which
            path, _ = QFileDialog.getOpenFileName(
                self, "Video file", str(self.settings_file.parent), VIDEO_FILTER
            )
            if not path:
                return
            keys = {
                "SOURCE": "video",
                "PATH": relative_to_settings(Path(path), self.settings_file),
                "PACING": "native",
            }
            base = Path(path).stem
        else:
            base = {"synthetic": "arena"}.get(keys.get("SOURCE", ""), keys.get("SOURCE", "cam"))
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in base) or "camera"
        self.add_camera(self._unique_camera_name(safe[:32]), keys)

    def _add_by_hand(self, source: str) -> None:
        _, question = HAND_QUESTIONS[source]
        text, ok = QInputDialog.getText(self, "Add a camera", question)
        if ok and text.strip():
            try:
                self.add_camera_by_hand(source, text)
            except ValueError as error:
                self._say(str(error), problem=True)

    def add_camera_by_hand(self, source: str, what: str) -> str:
        """Add a camera of ``source`` opened by ``what`` (an index or URL, or a serial).

        Returns the camera's name. The rig check then says whether it can be opened.
        """
        if source not in HAND_QUESTIONS:
            raise ValueError(f"no camera kind {source!r}; choose from {', '.join(HAND_QUESTIONS)}")
        key, _ = HAND_QUESTIONS[source]
        value = what.strip()
        if not value or "\n" in value:
            raise ValueError(f"{key}: give one line, e.g. {HAND_EXAMPLES[source]}")
        base = f"{source}_{value}" if source != "opencv" or value.isdigit() else "stream"
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in base)[:32] or "camera"
        name = self._unique_camera_name(safe)
        self.add_camera(name, {"SOURCE": source, key: value})
        return name

    def add_video_camera(self, path: Path, name: str | None = None) -> str:
        """Add a video file as a camera paced at its own rate; return the camera's name."""
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in (name or path.stem))
        chosen = self._unique_camera_name(safe or "video")
        keys = {
            "SOURCE": "video",
            "PATH": relative_to_settings(path, self.settings_file),
            "PACING": "native",
        }
        self.add_camera(chosen, keys)
        return chosen

    def _remove_selected_camera(self) -> None:
        item = self.camera_list.currentItem()
        if item is not None and self.confirm(
            "Remove camera",
            f"Remove the camera {item.text()!r} from the rig? Its [Camera {item.text()}] "
            "section leaves the settings file when you save (Revert brings it back before).",
        ):
            self.remove_camera(item.text())

    def confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (No is the default); True when the user says yes."""
        box = QMessageBox(QMessageBox.Question, title, question, parent=self)
        box.setObjectName("rig_confirm")
        box.setStandardButtons(QMessageBox.Yes | QMessageBox.No)
        box.setDefaultButton(QMessageBox.No)
        return box.exec_() == QMessageBox.Yes

    def _camera_key_edited(self, key: str, value: str) -> None:
        item = self.camera_list.currentItem()
        if item is not None and key != "SOURCE":
            self._set(CAMERA_PREFIX + item.text(), key, value)

    def _device_key_edited(self, key: str, value: str) -> None:
        item = self.device_list.currentItem()
        if item is not None:
            self._set(DEVICE_PREFIX + item.text(), key, value)

    def _device_type_chosen(self) -> None:
        item = self.device_list.currentItem()
        if item is None:
            return
        self._set(DEVICE_PREFIX + item.text(), "TYPE", self.device_type.currentText())
        self._show_device(item.text())

    def _ask_device_name(self) -> None:
        name, ok = QInputDialog.getText(
            self, "New device", "Device name (as the experiment's DEVICE):"
        )
        if ok and name.strip():
            try:
                self.add_device(name.strip(), self.device_type.currentText())
            except ValueError as error:
                self._say(str(error), problem=True)

    def _remove_selected_device(self) -> None:
        item = self.device_list.currentItem()
        if item is not None and self.confirm(
            "Remove device",
            f"Remove the device {item.text()!r} from the rig? Its [Device {item.text()}] "
            "section leaves the settings file when you save (Revert brings it back before).",
        ):
            self.document.remove_section(DEVICE_PREFIX + item.text())
            self._show_document()
            self._edited()

    def _set_record(self, camera: str, on: bool) -> None:
        self._set(CAMERA_PREFIX + camera, "RECORD", "" if on else "false")

    def _duration_edited(self) -> None:
        minutes = self.duration.value()
        self._set(SESSION_SECTION, "PLANNED_DURATION", f"{minutes * 60:g}" if minutes else "")

    def _experiment_chosen(self) -> None:
        self.allowed_experiments.add(self.experiment_choice.currentText().strip())
        self._set("Experiment", "NAME", self.experiment_choice.currentText())

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Pose model", str(self.settings_file.parent), MODEL_FILTER
        )
        if path:
            self.set_model(relative_to_settings(Path(path), self.settings_file))

    def _choose_calibration_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "A recorded calibration session", str(self.settings_file.parent)
        )
        if folder:
            self.calibrate_session(Path(folder))

    def calibrate_session(self, folder: Path) -> None:
        """Calibrate the cameras from a recorded board session, in a helper process.

        On success ``[Triangulation] CALIBRATION`` names the ``calibration.toml`` written in
        ``folder``; either way the panel shows what the calibration said. A line above says the
        stage and the time so far meanwhile.
        """
        if self._calibration is not None and self._calibration.running:
            return
        self.calibration_info.setPlainText(f"calibrating from {folder} ...")
        job = ProcessJob("Calibration", calibrate_job, (str(folder),), parent=self)
        job.progress.connect(self.calibration_status.setText)
        job.progress.connect(lambda _text: self._show_calibration_stage())
        job.finished.connect(self._calibrated)
        self._calibration = job
        self.calibration_status.show()
        job.start()

    def _show_calibration_stage(self) -> None:
        job = self._calibration
        if job is None or job.outcome is not None:
            return
        lines = self.calibration_info.toPlainText().splitlines()
        if not lines or lines[-1] != job.stage:
            self.calibration_info.appendPlainText(job.stage)

    def _calibrated(self, outcome: Outcome) -> None:
        self.calibration_status.hide()
        if outcome.error:
            self.calibration_info.appendPlainText(f"calibration failed: {outcome.error}")
            return
        path, message = outcome.value
        self.calibration_info.appendPlainText(message)
        if path:
            text = relative_to_settings(Path(path), self.settings_file)
            self.calibration_edit.setText(text)
            self._set("Triangulation", "CALIBRATION", text)

    def _browse_experiment(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Experiment", str(self.settings_file.parent), "Experiments (*.ini *.py)"
        )
        if path:
            self.set_experiment(experiment_name_for(Path(path), self.settings_file))

    def _browse_output(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Output folder", str(self.settings_file.parent)
        )
        if path:
            text = relative_to_settings(Path(path), self.settings_file)
            self.output_edit.setText(text)
            self._set("Output", "DIRECTORY", text)

    # -- checking and saving -------------------------------------------------------------------

    def check_now(self) -> None:
        """Check the edited text as a whole, off the GUI thread; :attr:`checked` says when done."""
        self._check_timer.stop()
        self._generation += 1
        check = _Check(
            self._generation,
            self.document.text(),
            self.settings_file,
            frozenset(self.allowed_experiments),
        )
        check.done.connect(self._check_done)
        check.finished.connect(lambda c=check: self._checks.remove(c))
        self._checks.append(check)
        self.save_button.setEnabled(False)
        self._say("checking...", problem=False)
        check.start()

    def wait_checked(self) -> None:
        """Block until every check in flight is done and shown (before a start, and in tests)."""
        if self._check_timer.isActive():
            self.check_now()
        for check in list(self._checks):
            check.wait()
        from PyQt5.QtWidgets import QApplication

        QApplication.processEvents()  # deliver their results

    def _check_done(self, generation: int, settings: Settings | None, problems: list[str]) -> None:
        if generation != self._generation:
            return  # an older text's result
        if self._unparsable is not None:
            problems = [self._unparsable, *problems]
        self.settings, self.problems = settings, problems
        self._say("\n".join(problems), problem=True)
        self.summary.setText("\n".join(self._summary(settings)) if settings else "-")
        self.save_button.setEnabled(not problems and self.dirty)
        self._show_experiment_info(settings)
        self._mark_session_fields(problems)
        self.checked.emit()

    def _mark_session_fields(self, problems: list[str]) -> None:
        """Mark each session field a problem names: red border, the reason under it and as tip.

        An experimenter not in NWB's form, without an NWB output, gets a hint only.
        """
        for key, field in self.session_fields.items():
            named = f"[{SESSION_SECTION}] {key} ="
            problem = next((p for p in problems if named in p), None)
            reason, colour = None, NEWS_COLOUR
            if problem is not None:
                reason, colour = problem[problem.index(named) :], PROBLEM_COLOUR
            elif key == "EXPERIMENTER":
                reason = nwb_experimenter_hint(field.text())
            field.setStyleSheet(
                f"QLineEdit {{ border: 2px solid {PROBLEM_COLOUR}; }}" if problem else ""
            )
            field.setToolTip(reason or "")
            label = self.session_reasons[key]
            label.setStyleSheet(f"color: {colour};")
            label.setText(reason or "")
            label.setVisible(reason is not None)

    def _say(self, text: str, *, problem: bool) -> None:
        """Write under the summary: problems in red, news (checking, saved) in a neutral colour."""
        self.problem_label.setStyleSheet(f"color: {PROBLEM_COLOUR if problem else NEWS_COLOUR};")
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))  # empty, it left a blank first line

    def set_output_override(self, folder: Path | None) -> None:
        """Say that sessions go to ``folder`` (``app.py --output-dir``), not the settings' folder.

        The Output folder field is then read-only: the command line wins over it.
        """
        self.output_override = folder
        overridden = folder is not None
        self.output_edit.setReadOnly(overridden)
        self.output_browse.setEnabled(not overridden)
        self.output_edit.setToolTip(
            f"app.py was started with --output-dir {folder}: sessions go there, whatever this "
            "field says"
            if overridden
            else ""
        )
        if self.settings is not None:
            self.summary.setText("\n".join(self._summary(self.settings)))

    def sessions_folder(self) -> Path | None:
        """Return the folder new session folders are made in (None until the settings are read)."""
        if self.output_override is not None:
            return self.output_override
        return self.settings.output.directory if self.settings is not None else None

    def _summary(self, settings: Settings) -> list[str]:
        """Return what Start will run, with the folder sessions really go to."""
        lines = summary_lines(settings)
        if self.output_override is None:
            return lines
        where = (
            f"sessions go to: {self.output_override} (app.py --output-dir; the settings say "
            f"{settings.output.directory})"
        )
        return [where if line.startswith("sessions go to:") else line for line in lines]

    def _show_experiment_info(self, settings: Settings | None) -> None:
        lab_code = self.lab_code()
        waiting = lab_code is not None and not self.experiment_allowed()
        self.check_experiment_button.setVisible(waiting)
        if settings is None:
            return
        if waiting:
            self.experiment_info.setText(
                f"Not loaded yet: the experiment is your lab's code ({lab_code}), which runs "
                "when it is imported. It is imported when you press Check experiment, choose "
                "it, or press Start; until then its triggers, devices and keypoints are not "
                "checked."
            )
            return

        try:
            experiment = load_experiment(settings.experiment.name, settings.source_file.parent)
        except Exception as error:  # the problems list says it in full
            self.experiment_info.setText(f"cannot load: {error}")
            return
        cameras = [camera.name for camera in settings.cameras]
        parts = [trigger_line(name, t, cameras) for name, t in experiment.triggers.items()]
        text = f"{experiment.description}\n" if experiment.description else ""
        self.experiment_info.setText(text + "triggers: " + ("; ".join(parts) or "none"))

    def unsaved_changes(self) -> list[str]:
        """Return the edits not in the file yet, one line each ("[Experiment] NAME: a -> b")."""
        return describe_changes(_read_keys(self.settings_file), _keys_of(self.document.text()))

    def _save_clicked(self) -> None:
        self.save()  # the outcome is shown in the panel

    def save(self) -> Path | None:
        """Write the file if the check found no problem; return the backup made (if any)."""
        self.wait_checked()
        if self.problems:
            self._say("Not saved, fix these first:\n" + "\n".join(self.problems), problem=True)
            return None
        try:
            backup = save_with_backup(self.settings_file, self.document.text())
        except OSError as error:
            self._say(f"Not saved: {self.settings_file}: {error}", problem=True)
            return None
        self.dirty = False
        self.save_button.setEnabled(False)
        self._say(
            f"Saved {self.settings_file}"
            + (f" (previous version: {backup.name})" if backup else ""),
            problem=False,
        )
        self.saved.emit(self.settings_file)
        return backup

    # -- cameras found on this computer --------------------------------------------------------

    def detect_cameras(self) -> None:
        """Look for cameras in a helper process and offer them in the Add list.

        Probing drivers takes seconds (and a driver may hang): the window goes on meanwhile,
        the line under the buttons says what is being looked for, then what was found, or
        where the search looked when it found nothing.
        """
        if self._detection is not None and self._detection.running:
            return
        job = ProcessJob("Detect", detect_cameras_job, timeout_s=DETECT_TIMEOUT_S, parent=self)
        job.progress.connect(self.detect_status.setText)
        job.finished.connect(self._detected)
        self._detection = job
        self.detect_button.setEnabled(False)
        self.detect_status.setStyleSheet("")
        self.detect_status.show()
        job.start()

    def _detected(self, outcome: Outcome) -> None:
        self.detect_button.setEnabled(True)
        if outcome.error:
            self.detect_status.setStyleSheet(f"color: {PROBLEM_COLOUR};")
            self.detect_status.setText(f"Detect failed: {outcome.error}")
            return
        detection: Detection = outcome.value
        self._fill_camera_choices(detection.cameras)
        found = detection.hardware
        if found:
            names = "; ".join(camera.label for camera in found)
            text = f"Found {len(found)} camera(s), now in the list beside Add: {names}"
        else:
            text = (
                "No camera found. "
                + " ".join(f"{note}." for note in detection.notes)
                + " The simulated arena and video files can always be added."
            )
        self.detect_status.setText(text)

    # -- the model's description ---------------------------------------------------------------

    def model_path_now(self) -> Path | None:
        """Return the model the field names, as a start would read it (None: the bundled one)."""
        text = self.model_edit.text().strip()
        if not text:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.settings_file.parent / path

    def inspect_model(self) -> None:
        """Describe the model the field names, in a helper process (a conversion takes long).

        The line above the description says the stage and the time so far; a model chosen
        meanwhile stops the inspection, so the box always describes the model named.
        """
        path = self.model_path_now()
        previous, self._inspection = self._inspection, None
        if previous is not None:
            previous.cancel()  # its outcome is ignored: it is no longer the inspection
        precision = (self.document.get("Pose", "PRECISION", "fp32") or "fp32").strip().lower()
        job = ProcessJob(
            "Inspect", describe_model_job, (str(path) if path else "", precision), parent=self
        )
        job.progress.connect(self.inspect_status.setText)
        job.finished.connect(lambda outcome, j=job: self._inspected(j, outcome))
        self._inspection = job
        self.model_facts = None
        self._described = str(path) if path else ""  # the model the box is about
        self.model_info.setPlainText(f"model: {_model_name(path)}\n(inspecting...)")
        self.inspect_status.show()
        job.start()

    def _inspected(self, job: ProcessJob, outcome: Outcome) -> None:
        if job is not self._inspection:
            return  # an inspection of a model no longer named (cancelled)
        self._inspection = None
        self.inspect_status.hide()
        heading = f"model: {_model_name(self.model_path_now())}"
        if outcome.error:
            self.model_info.setPlainText(f"{heading}\ncannot load the model: {outcome.error}")
            return
        facts: ModelFacts = outcome.value
        self.model_facts = facts
        self.model_info.setPlainText(f"{heading}\n{facts.text}")
        self.model_described.emit(facts)

    def _forget_other_model(self) -> None:
        """Stop describing a model the field no longer names (a new path, a Revert, a load)."""
        path = self.model_path_now()
        if self._described is None or self._described == (str(path) if path else ""):
            return
        previous, self._inspection = self._inspection, None
        if previous is not None:
            previous.cancel()  # its outcome is ignored: it is no longer the inspection
        self.model_facts = None
        self._described = None
        self.inspect_status.hide()
        self.model_info.setPlainText(
            f"model: {_model_name(path)}\nPress Inspect to see its network and keypoints."
        )


def _model_name(path: Path | None) -> str:
    return str(path) if path is not None else "the bundled arena model"


def narrow_choice(choice: QComboBox) -> None:
    """Let ``choice`` be narrower than its longest item (it shows it whole when opened)."""
    choice.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    choice.setMinimumContentsLength(CHOICE_CHARACTERS)


def _status_line(name: str) -> QLabel:
    """Return a line for a job's progress and outcome (hidden until there is something to say)."""
    label = shrinkable(QLabel(""))
    label.setObjectName(name)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.hide()
    return label


def _keys_of(text: str) -> dict[tuple[str, str], str]:
    """Return ``{(section, KEY): value}`` of a settings text (empty when it does not parse)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str.upper  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    return {(name, key): value for name in parser.sections() for key, value in parser[name].items()}


def _read_keys(path: Path) -> dict[tuple[str, str], str]:
    try:
        return _keys_of(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def describe_changes(
    saved: dict[tuple[str, str], str], edited: dict[tuple[str, str], str]
) -> list[str]:
    """Say each key that differs between the ``saved`` file and the ``edited`` text."""
    lines = []
    for section, key in sorted(saved.keys() | edited.keys()):
        before, after = saved.get((section, key)), edited.get((section, key))
        if before == after:
            continue
        where = f"[{section}] {key}"
        if before is None:
            lines.append(f"{where}: added, {after}")
        elif after is None:
            lines.append(f"{where}: removed (was {before})")
        else:
            lines.append(f"{where}: {before} -> {after}")
    return lines


def nwb_experimenter_hint(value: str) -> str | None:
    """Say, as a hint, that ``value`` is not in NWB's form (None when it is, or is empty)."""
    try:
        check_experimenters(value)
    except ValueError as error:
        return f"{error}; needed only when session.nwb is written ([Output] NWB = on)"
    return None
