"""The subject and the lab, for session.nwb: the ``[Session]`` keys NWB and DANDI ask for."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args, get_type_hints

from PyQt5.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.core.schema import key_of, settings_fields, spec_of
from deeplabstream.settings.sections import SessionSettings

# key -> label, in the order a lab fills them in
SUBJECT_KEYS: dict[str, str] = {
    "SPECIES": "Species",
    "STRAIN": "Strain",
    "SEX": "Sex",
    "AGE": "Age",
    "DATE_OF_BIRTH": "Date of birth",
    "INSTITUTION": "Institution",
    "LAB": "Lab",
    "EXPERIMENT_DESCRIPTION": "Experiment description",
}

_PLACEHOLDERS = {
    "SPECIES": "Mus musculus",
    "STRAIN": "C57BL/6J",
    "AGE": "P90D",
    "DATE_OF_BIRTH": "2026-08-01",
}


class SubjectFields(QWidget):
    """A fold-out form of the subject and lab keys; ``write(key, value)`` stores an edit."""

    def __init__(self, write: Callable[[str, str], None]) -> None:
        super().__init__()
        self._write = write
        self.toggle = QToolButton()
        self.toggle.setObjectName("session_subject_toggle")
        self.toggle.setText("Subject and lab (for NWB)")
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._fold)
        self.form_widget = QWidget()
        form = QFormLayout(self.form_widget)
        form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QLineEdit | QComboBox] = {}
        docs = {key_of(f): spec_of(f).doc for f in settings_fields(SessionSettings)}
        for key, label in SUBJECT_KEYS.items():
            field = self._sex_box() if key == "SEX" else self._line(key)
            field.setObjectName(f"session_{key.lower()}")
            field.setToolTip(docs[key])
            form.addRow(f"{label}:", field)
            self.fields[key] = field
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.form_widget)
        self.form_widget.setVisible(False)

    def _line(self, key: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(_PLACEHOLDERS.get(key, ""))
        edit.editingFinished.connect(lambda: self._write(key, edit.text().strip()))
        return edit

    def _sex_box(self) -> QComboBox:
        box = QComboBox()
        sexes = get_args(get_type_hints(SessionSettings)["sex"])
        box.addItems(list(sexes))
        box.activated.connect(lambda _index: self._write("SEX", box.currentText()))
        return box

    def _fold(self, open_: bool) -> None:
        self.form_widget.setVisible(open_)

    def show_values(self, value_of: Callable[[str], str]) -> None:
        """Show the file's values (``value_of(key)``: the text, or "" when the key is absent)."""
        for key, field in self.fields.items():
            text = value_of(key)
            if isinstance(field, QComboBox):
                index = field.findText(text.strip().upper() or "U")
                field.setCurrentIndex(max(index, 0))
            else:
                field.setText(text)
        # a file that fills any of them opens the fold, so nobody misses what is set
        if any(value_of(key) for key in SUBJECT_KEYS if key != "SEX"):
            self.toggle.setChecked(True)
