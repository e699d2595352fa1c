"""The Rig tab's Session box: the ``[Session]`` keys, the output folder, what is recorded."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
)

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.rig.edited_file import EditedFile
from deeplabstream.app.gui.rig.parts import NEWS_COLOUR, PROBLEM_COLOUR
from deeplabstream.app.gui.rig_check import relative_to_settings
from deeplabstream.app.gui.subject_fields import SubjectFields
from deeplabstream.outputs.nwb_forms import check_experimenters
from deeplabstream.settings.loader import CAMERA_PREFIX

SESSION_SECTION = "Session"


class SessionBox(QGroupBox):
    """The ``[Session]`` keys, ``[Output] DIRECTORY`` and each camera's RECORD."""

    def __init__(self, file: EditedFile) -> None:
        super().__init__("Session")
        self._file = file
        form = QFormLayout(self)
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
                lambda k=key, e=edit: self._file.set(SESSION_SECTION, k, e.text())
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
        self.subject = SubjectFields(lambda key, value: self._file.set(SESSION_SECTION, key, value))
        form.addRow(self.subject)
        self.output_edit = QLineEdit()
        self.output_edit.setObjectName("session_output")
        self.output_edit.editingFinished.connect(
            lambda: self._file.set("Output", "DIRECTORY", self.output_edit.text())
        )
        self.output_browse = named_button("Browse...", "session_output_browse", self._browse_output)
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
        self.verify_after = QCheckBox("each session")
        self.verify_after.setObjectName("session_verify_after")
        self.verify_after.setToolTip(
            "[Session] VERIFY = after: when a recorded session ends, deeplabstream-verify runs "
            "in the background and its verdict is shown (docs/verify.md)"
        )
        self.verify_after.toggled.connect(
            lambda on: self._file.set(SESSION_SECTION, "VERIFY", "after" if on else "")
        )
        form.addRow("Verify:", self.verify_after)

    # -- showing -------------------------------------------------------------------------------

    def show_document(self) -> None:
        """Show the file's session keys, output folder, duration and recorded cameras."""
        document = self._file.document
        for key, edit in self.session_fields.items():
            edit.setText(document.get(SESSION_SECTION, key, "") or "")
        self.subject.show_values(lambda key: document.get(SESSION_SECTION, key, "") or "")
        self.output_edit.setText(document.get("Output", "DIRECTORY", "") or "")
        planned = document.get(SESSION_SECTION, "PLANNED_DURATION", "") or ""
        try:
            self.duration.setValue(float(planned) / 60 if planned else 0)
        except ValueError:
            self.duration.setValue(0)
        self._show_record_boxes()
        verify = (document.get(SESSION_SECTION, "VERIFY", "") or "").strip().lower()
        self.verify_after.blockSignals(True)  # showing the file is no edit of it
        self.verify_after.setChecked(verify == "after")
        self.verify_after.blockSignals(False)

    def _show_record_boxes(self) -> None:
        for box in self.record_boxes.values():
            self.record_row.removeWidget(box)
            box.deleteLater()
        self.record_boxes.clear()
        for name in self._file.section_names(CAMERA_PREFIX):
            value = self._file.document.get(CAMERA_PREFIX + name, "RECORD", "true") or "true"
            box = QCheckBox(name)
            box.setObjectName(f"record_{name}")
            box.setChecked(value.strip().lower() not in ("false", "no", "off", "0"))
            box.toggled.connect(lambda on, n=name: self._set_record(n, on))
            self.record_row.addWidget(box)
            self.record_boxes[name] = box

    def mark_problems(self, problems: list[str]) -> None:
        """Mark each session field a problem names: red border, the reason under it and as tip."""
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

    def show_output_override(self, folder: Path | None) -> None:
        """Make the Output folder field read-only while ``app.py --output-dir`` names ``folder``."""
        overridden = folder is not None
        self.output_edit.setReadOnly(overridden)
        self.output_browse.setEnabled(not overridden)
        self.output_edit.setToolTip(
            f"app.py was started with --output-dir {folder}: sessions go there, whatever this "
            "field says"
            if overridden
            else ""
        )

    # -- editing -------------------------------------------------------------------------------

    def _set_record(self, camera: str, on: bool) -> None:
        self._file.set(CAMERA_PREFIX + camera, "RECORD", "" if on else "false")

    def _duration_edited(self) -> None:
        minutes = self.duration.value()
        self._file.set(SESSION_SECTION, "PLANNED_DURATION", f"{minutes * 60:g}" if minutes else "")

    def _browse_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", str(self._file.folder))
        if path:
            text = relative_to_settings(Path(path), self._file.path)
            self.output_edit.setText(text)
            self._file.set("Output", "DIRECTORY", text)


def nwb_experimenter_hint(value: str) -> str | None:
    """Say, as a hint, that ``value`` is not in NWB's form (None when it is, or is empty)."""
    try:
        check_experimenters(value)
    except ValueError as error:
        return f"{error}; needed only when session.nwb is written ([Output] NWB = on)"
    return None
