"""The Rig tab's 3D calibration box: ``[Triangulation] CALIBRATION`` and its solving."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.job_targets import Outcome, calibrate_job
from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.parts import job_box, status_line
from deeplabstream.app.gui.rig_check import relative_to_settings


class CalibrationBox(QGroupBox):
    """The calibration file the rig triangulates with, and its solving from a session."""

    def __init__(self, file: EditedFile) -> None:
        super().__init__("3D calibration")
        self._file = file
        self.calibration_edit = QLineEdit()
        self.calibration_edit.setObjectName("rig_calibration_path")
        self.calibration_edit.setPlaceholderText("empty: no 3D (a calibration.toml triangulates)")
        self.calibration_edit.editingFinished.connect(
            lambda: self._file.set("Triangulation", "CALIBRATION", self.calibration_edit.text())
        )
        run = named_button(
            "Calibrate from a session...", "rig_calibrate", self._choose_calibration_session
        )
        run.setToolTip(
            "Choose a recorded session in which every camera filmed the ChArUco board (flat on "
            "the floor first, then moved): deeplabstream-calibrate solves it, writes "
            "calibration.toml beside it and uses it for [Triangulation] (docs/3d.md)"
        )
        row = QHBoxLayout()
        row.addWidget(self.calibration_edit, 1)
        row.addWidget(run)
        self.calibration_status = status_line("rig_calibration_status")
        self.calibration_info = job_box(self, row, self.calibration_status, "rig_calibration_info")
        self._calibration: ProcessJob | None = None

    def show_document(self) -> None:
        """Show the file's calibration."""
        document = self._file.document
        self.calibration_edit.setText(document.get("Triangulation", "CALIBRATION", "") or "")

    def _choose_calibration_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "A recorded calibration session", str(self._file.folder)
        )
        if folder:
            self.calibrate_session(Path(folder))

    def calibrate_session(self, folder: Path) -> None:
        """Calibrate the cameras from a recorded board session, in a helper process.

        On success ``[Triangulation] CALIBRATION`` names the ``calibration.toml`` in ``folder``.
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
            text = relative_to_settings(Path(path), self._file.path)
            self.calibration_edit.setText(text)
            self._file.set("Triangulation", "CALIBRATION", text)
