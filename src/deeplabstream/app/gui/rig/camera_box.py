"""The Rig tab's Cameras box: the rig's cameras and each one's keys, in a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QVBoxLayout,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.fitting import narrow_choice
from deeplabstream.app.gui.job_targets import Outcome, detect_cameras_job
from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.parts import PROBLEM_COLOUR, confirm, status_line
from deeplabstream.app.gui.rig_check import relative_to_settings
from deeplabstream.app.gui.section_table import KeyRow, SectionTable, camera_keys
from deeplabstream.core.plugins import PluginError
from deeplabstream.hardware.cameras.detect import Detection
from deeplabstream.settings.loader import CAMERA_NAME, CAMERA_PREFIX

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.mj2);;All files (*)"
DETECT_TIMEOUT_S = 60.0  # a camera driver that hangs longer is stopped
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


class CameraBox(QGroupBox):
    """The ``[Camera name]`` sections of the edited file: listed, added, removed, edited."""

    refused = pyqtSignal(str)  # a camera the user named cannot be added: why

    def __init__(self, file: EditedFile) -> None:
        super().__init__("Cameras")
        self._file = file
        self.camera_list = QListWidget()
        self.camera_list.setObjectName("rig_cameras")
        self._fit_list(0)
        self.camera_list.currentTextChanged.connect(self._show_camera)
        self.add_camera_choice = QComboBox()
        self.add_camera_choice.setObjectName("rig_add_camera")
        narrow_choice(self.add_camera_choice)  # a long camera label must not widen the tab
        self.add_camera_button = named_button(
            "Add", "rig_add_camera_button", self._add_chosen_camera
        )
        self.detect_button = named_button("Detect", "rig_detect_cameras", self.detect_cameras)
        self.detect_button.setToolTip("Look for Basler, RealSense and OpenCV cameras again")
        self.remove_camera_button = named_button(
            "Remove", "rig_remove_camera", self._remove_selected_camera
        )
        row = QHBoxLayout()
        row.addWidget(self.add_camera_choice, 1)
        row.addWidget(self.add_camera_button)
        row.addWidget(self.detect_button)
        row.addWidget(self.remove_camera_button)
        self.detect_status = status_line("rig_detect_status")
        self.camera_table = SectionTable("rig_camera_keys")
        self.camera_table.edited.connect(self._camera_key_edited)
        layout = QVBoxLayout(self)
        layout.addWidget(self.camera_list)
        layout.addLayout(row)
        layout.addWidget(self.detect_status)
        layout.addWidget(self.camera_table)
        self._fill_camera_choices([])
        self._detection: ProcessJob | None = None

    # -- showing -------------------------------------------------------------------------------

    def camera_names(self) -> list[str]:
        """Return the cameras of the edited file, in order."""
        return self._file.section_names(CAMERA_PREFIX)

    def show_document(self) -> None:
        """List the file's cameras, keeping the one selected if it is still there."""
        current = self.camera_list.currentItem()
        selected = current.text() if current is not None else None
        self.camera_list.clear()
        self.camera_list.addItems(self.camera_names())
        names = self.camera_names()
        self._fit_list(len(names))
        if names:
            self.camera_list.setCurrentRow(names.index(selected) if selected in names else 0)
        else:
            self.camera_table.setRowCount(0)

    def _fit_list(self, cameras: int) -> None:
        """Make the list as tall as its cameras, two to three names; more scroll."""
        row = self.camera_list.fontMetrics().height() + 6
        self.camera_list.setFixedHeight(min(max(cameras, 2), 3) * row + 6)

    def _show_camera(self, name: str) -> None:
        if not name:
            return
        section = CAMERA_PREFIX + name
        document = self._file.document
        source = (document.get(section, "SOURCE", "") or "").strip()
        rows = [KeyRow("SOURCE", "", "The camera source (read-only here: add a camera instead)")]
        try:  # registered, or a module of the lab's cameras/ (the check has imported it)
            rows += camera_keys(source, self._file.folder)
        except PluginError:  # unknown or broken: the check names it
            pass
        self.camera_table.show_keys(rows, document.items(section))
        source_item = self.camera_table.item(0, 1)
        if source_item is not None:
            source_item.setFlags(source_item.flags() & ~Qt.ItemIsEditable)

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

    def add_camera(self, name: str, keys: dict[str, str]) -> None:
        """Add ``[Camera name]`` with ``keys`` (SOURCE first)."""
        if not CAMERA_NAME.match(name):
            raise ValueError(f"camera name {name!r}: use letters, digits, '_' or '-'")
        if name in self.camera_names():
            raise ValueError(f"there is a camera {name!r} already")
        cameras = self.camera_names()
        # After the other cameras (the file reads as the rig), not after [Session] at the end.
        after = CAMERA_PREFIX + cameras[-1] if cameras else None
        self._file.add_section(CAMERA_PREFIX + name, keys, after=after)
        self.camera_list.setCurrentRow(self.camera_names().index(name))
        self._file.mark_edited()

    def set_camera_keys(self, name: str, keys: dict[str, str]) -> None:
        """Write ``keys`` into ``[Camera name]`` (the Camera tab keeps what the user set live)."""
        section = CAMERA_PREFIX + name
        if not self._file.document.has_section(section):
            raise KeyError(name)
        self._file.set_keys(section, keys)
        self._file.mark_edited()

    def remove_camera(self, name: str) -> None:
        """Remove ``[Camera name]``."""
        self._file.remove_section(CAMERA_PREFIX + name)
        self._file.mark_edited()

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
                self, "Video file", str(self._file.folder), VIDEO_FILTER
            )
            if not path:
                return
            keys = {
                "SOURCE": "video",
                "PATH": relative_to_settings(Path(path), self._file.path),
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
                self.refused.emit(str(error))

    def add_camera_by_hand(self, source: str, what: str) -> str:
        """Add a camera of ``source`` opened by ``what`` (index, URL or serial); its name."""
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
            "PATH": relative_to_settings(path, self._file.path),
            "PACING": "native",
        }
        self.add_camera(chosen, keys)
        return chosen

    def _remove_selected_camera(self) -> None:
        item = self.camera_list.currentItem()
        if item is not None and confirm(
            self,
            "Remove camera",
            f"Remove the camera {item.text()!r} from the rig? Its [Camera {item.text()}] "
            "section leaves the settings file when you save (Revert brings it back before).",
        ):
            self.remove_camera(item.text())

    def _camera_key_edited(self, key: str, value: str) -> None:
        item = self.camera_list.currentItem()
        if item is not None and key != "SOURCE":
            self._file.set(CAMERA_PREFIX + item.text(), key, value)

    # -- cameras found on this computer --------------------------------------------------------

    def detect_cameras(self) -> None:
        """Look for cameras in a helper process and offer them in the Add list."""
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
