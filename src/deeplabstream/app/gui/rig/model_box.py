"""The Rig tab's Pose model box: the model's path, and Inspect's description of that model."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.job_targets import ModelFacts, Outcome, describe_model_job
from deeplabstream.app.gui.jobs import ProcessJob
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.parts import job_box, status_line
from deeplabstream.app.gui.rig_check import relative_to_settings
from deeplabstream.core.schema import split_path_list

MODEL_FILTER = "Models (*.pt *.ckpt *.onnx *.json *.yaml);;All files (*)"


class ModelBox(QGroupBox):
    """``[Pose] MODEL_PATH`` of the edited file, and what the model it names is."""

    model_described = pyqtSignal(object)  # Inspect described the model named: its ModelFacts

    def __init__(self, file: EditedFile) -> None:
        super().__init__("Pose model")
        self._file = file
        self.model_edit = QLineEdit()
        self.model_edit.setObjectName("rig_model_path")
        self.model_edit.setPlaceholderText("empty: the bundled model of the simulated arena")
        self.model_edit.editingFinished.connect(lambda: self.set_model(self.model_edit.text()))
        browse = named_button("Browse...", "rig_model_browse", self._browse_model)
        self.inspect_button = named_button("Inspect", "rig_model_inspect", self.inspect_model)
        self.inspect_button.setToolTip(
            "What deeplabstream-inspect shows: network, keypoints, input size (a DeepLabCut or "
            "Lightning Pose model is converted first, in the background)"
        )
        row = QHBoxLayout()
        row.addWidget(self.model_edit, 1)
        row.addWidget(browse)
        row.addWidget(self.inspect_button)
        self.inspect_status = status_line("rig_model_status")
        self.model_info = job_box(self, row, self.inspect_status, "rig_model_info")
        self._inspection: ProcessJob | None = None
        self._described: str | None = None  # the model the box describes ("": the bundled)
        self.model_facts: ModelFacts | None = None  # of the model the field names, once inspected

    def show_document(self) -> None:
        """Show the file's model (a description of another model is dropped)."""
        self.model_edit.setText(self._file.document.get("Pose", "MODEL_PATH", "") or "")
        self._forget_other_model()

    def set_model(self, path: str) -> None:
        """Use the model at ``path`` (empty: the bundled model)."""
        self.model_edit.setText(path)
        self._file.set("Pose", "MODEL_PATH", path)
        self._forget_other_model()

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Pose model", str(self._file.folder), MODEL_FILTER
        )
        if path:
            self.set_model(relative_to_settings(Path(path), self._file.path))

    def model_path_now(self) -> Path | None:
        """Return the model the field names (an ensemble's first; None: the bundled one)."""
        paths = split_path_list(self.model_edit.text())
        if not paths:
            return None
        path = Path(paths[0]).expanduser()
        return path if path.is_absolute() else self._file.folder / path

    def _heading(self) -> str:
        """Return the description's first line: the model, and whether it leads an ensemble."""
        models = len(split_path_list(self.model_edit.text()))
        ensemble = f" (the first of an ensemble of {models} models)" if models > 1 else ""
        return f"model: {_model_name(self.model_path_now())}{ensemble}"

    def inspect_model(self) -> None:
        """Describe the model the field names, in a helper process (a new choice stops it)."""
        path = self.model_path_now()
        previous, self._inspection = self._inspection, None
        if previous is not None:
            previous.cancel()  # its outcome is ignored: it is no longer the inspection
        document = self._file.document
        precision = (document.get("Pose", "PRECISION", "fp32") or "fp32").strip().lower()
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
        heading = self._heading()
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
