"""The window's bottom row: the settings file it runs, and the last session's folder."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QWidget

from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.fitting import ElidedLabel
from deeplabstream.app.gui.messages import WindowMessages
from deeplabstream.app.gui.verify_button import VerifyButton, open_or_copy
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.settings import load_settings
from deeplabstream.settings.loader import default_settings_file
from deeplabstream.settings.sections import Settings


class SessionRow(QWidget):
    """The settings file with Choose..., the session's folder with Open folder and Verify.

    :attr:`chosen` carries a settings file chosen with Choose... (the Rig tab loads it).
    """

    chosen = pyqtSignal(Path)

    def __init__(self, settings_path: Path | None, say: WindowMessages) -> None:
        super().__init__()
        self.say = say
        self.session_dir: Path | None = None  # the folder Open folder opens
        # The settings.ini beside app.py, wherever the app was started from.
        self.settings_edit = QLineEdit(str(settings_path or default_settings_file()))
        self.settings_edit.setObjectName("settings_path")
        self.browse_button = named_button("Choose...", "choose_settings", self._choose_settings)
        settings_row = QHBoxLayout()
        settings_row.addWidget(QLabel("Settings:"))
        settings_row.addWidget(self.settings_edit, 1)
        settings_row.addWidget(self.browse_button)
        self.session_label = ElidedLabel("no session yet", mode=Qt.ElideMiddle)
        self.session_label.setObjectName("session_folder")
        self.open_folder_button = named_button(
            "Open folder", "open_folder", self._open_session_folder
        )
        self.verify_button = VerifyButton()  # the finished session against its recording
        self.verify_button.after_each_session = self._verify_after_each_session
        self.verify_button.lab_settings = self.settings_path
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(settings_row, 2)
        row.addSpacing(12)
        row.addWidget(QLabel("Session:"))
        row.addWidget(self.session_label, 1)
        row.addWidget(self.open_folder_button)
        row.addWidget(self.verify_button)

    def settings_path(self) -> Path:
        """Return the settings file the window runs."""
        return Path(self.settings_edit.text()).expanduser()

    def read_settings(self) -> Settings:
        """Read the settings file (a start reads it afresh)."""
        return load_settings(self.settings_path())

    def follow(self, idle: bool, busy: bool, folder: Path | None, sessions: Path | None) -> None:
        """Follow the window's state: the settings file is fixed unless ``idle``."""
        self.settings_edit.setEnabled(idle)
        self.browse_button.setEnabled(idle)
        self.show_session(folder, sessions)
        self.verify_button.follow(folder, busy)

    def show_session(self, folder: Path | None, sessions: Path | None) -> None:
        """Show the last session's ``folder``, or, before one, where sessions go."""
        self.session_dir = folder
        where = f"; sessions go to {sessions}" if sessions else ""
        self.session_label.setText(str(folder) if folder else f"no session yet{where}")
        self.open_folder_button.setEnabled(folder is not None)

    def _verify_after_each_session(self) -> bool:
        """``[Session] VERIFY = after`` in the settings file (a file that does not read: no)."""
        try:
            return self.read_settings().session.verify == "after"
        except (DeepLabStreamError, OSError):
            return False

    def _choose_settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window(), "Settings file", self.settings_edit.text(), "Settings (*.ini)"
        )
        if path:
            self.settings_edit.setText(path)
            self.chosen.emit(Path(path))

    def _open_session_folder(self) -> None:
        """Open the folder in the file manager; where none can, its path is on the clipboard."""
        folder = self.session_dir
        if folder is None:
            return
        if not folder.is_dir():
            self.say.error(f"The session folder {folder} no longer exists.")
            return
        if not open_or_copy(folder):
            self.say.error(
                f"No file manager could open {folder}. Its path is copied to the clipboard: "
                "paste it into your file manager."
            )
