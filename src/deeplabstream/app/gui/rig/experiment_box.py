"""The Rig tab's Experiment box: the experiment a start runs and what its triggers read.

It keeps which of the lab's experiments the checks may import.
"""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.fitting import narrow_choice, shrinkable
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig_check import (
    experiment_name_for,
    lab_code_of,
    planned_experiment,
    trigger_line,
)
from deeplabstream.experiments.registry import available_experiments
from deeplabstream.settings.sections import Settings


class ExperimentBox(QGroupBox):
    """``[Experiment] NAME`` of the edited file; the box that maps its keypoints goes below."""

    allowed = pyqtSignal()  # an experiment of the lab's code may be imported now: check again

    def __init__(self, file: EditedFile) -> None:
        super().__init__("Experiment")
        self._file = file
        # Experiments of the lab's code the user started, checked or chose: only these are
        # imported by the checks (opening a settings file must not run a module it names).
        self.allowed_experiments: set[str] = set()
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
        browse = named_button("Browse...", "rig_experiment_browse", self._browse_experiment)
        self.check_experiment_button = named_button(
            "Check experiment", "rig_check_experiment", self.allow_experiment
        )
        self.check_experiment_button.setToolTip(
            "Import the experiment's module (your lab's code runs) and check its triggers, "
            "cameras, devices and keypoints against the rig"
        )
        self.check_experiment_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.experiment_choice, 1)
        row.addWidget(browse)
        row.addWidget(self.check_experiment_button)
        self.experiment_info = shrinkable(QLabel(""))
        self.experiment_info.setObjectName("rig_experiment_info")
        self._layout = QVBoxLayout(self)
        self._layout.addLayout(row)
        self._layout.addWidget(self.experiment_info)

    def add_below(self, widget: QWidget) -> None:
        """Lay ``widget`` out under the experiment (the mapping of its keypoints)."""
        self._layout.addWidget(widget)

    # -- the experiment named ------------------------------------------------------------------

    def experiment_name(self) -> str:
        """Return ``[Experiment] NAME`` of the edited text ("" when none)."""
        return (self._file.document.get("Experiment", "NAME", "") or "").strip()

    def experiment_allowed(self) -> bool:
        """Whether the checks may load the experiment named: not the lab's code, or allowed."""
        name = self.experiment_name()
        return name in self.allowed_experiments or not self.lab_code()

    def lab_code(self) -> str | None:
        """Return the lab's code the named experiment would import (None: the package's own)."""
        return lab_code_of(self.experiment_name(), self._file.folder)

    def allow_experiment(self) -> None:
        """Let the checks import the named experiment (Check experiment, a start, a choice)."""
        name = self.experiment_name()
        if name and name not in self.allowed_experiments:
            self.allowed_experiments.add(name)
            self.allowed.emit()

    # -- choosing ------------------------------------------------------------------------------

    def set_experiment(self, name: str) -> None:
        """Run the experiment ``name`` (a config, module:Class or path): chosen, so checked."""
        self.allowed_experiments.add(name.strip())
        self.experiment_choice.setCurrentText(name)
        self._file.set("Experiment", "NAME", name)

    def _experiment_chosen(self) -> None:
        self.allowed_experiments.add(self.experiment_choice.currentText().strip())
        self._file.set("Experiment", "NAME", self.experiment_choice.currentText())

    def _browse_experiment(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Experiment", str(self._file.folder), "Experiments (*.ini *.py)"
        )
        if path:
            self.set_experiment(experiment_name_for(Path(path), self._file.path))

    # -- showing -------------------------------------------------------------------------------

    def show_document(self) -> None:
        """List the experiments there are, the file's one chosen."""
        current = self._file.document.get("Experiment", "NAME", "") or ""
        self.experiment_choice.blockSignals(True)
        self.experiment_choice.clear()
        try:
            self.experiment_choice.addItems(available_experiments(self._file.folder))
        except Exception as error:  # a broken experiment module must not break the panel
            self.experiment_info.setText(f"cannot list the experiments: {error}")
        self.experiment_choice.setCurrentText(current)
        self.experiment_choice.blockSignals(False)

    def show_checked(self, settings: Settings | None) -> None:
        """Say what the checked experiment's triggers read, or why it is not loaded yet."""
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
            experiment = planned_experiment(settings)
        except Exception as error:  # the problems list says it in full
            self.experiment_info.setText(f"cannot load: {error}")
            return
        cameras = [camera.name for camera in settings.cameras]
        parts = [trigger_line(name, t, cameras) for name, t in experiment.triggers.items()]
        text = f"{experiment.description}\n" if experiment.description else ""
        self.experiment_info.setText(text + "triggers: " + ("; ".join(parts) or "none"))
