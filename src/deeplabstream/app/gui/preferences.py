r"""What the window remembers between launches: view choices that are not part of a rig.

Kept in ``$DEEPLABSTREAM_WINDOW_STATE`` or the preferences folder's ``window.ini``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PyQt5.QtCore import QByteArray, QSettings
from PyQt5.QtWidgets import QSplitter

from deeplabstream.core.user_folders import user_config_folder

STATE_ENV = "DEEPLABSTREAM_WINDOW_STATE"


def preferences_file() -> Path:
    """Return where the window's preferences are kept."""
    forced = os.environ.get(STATE_ENV)
    if forced:
        return Path(forced)
    return user_config_folder() / "window.ini"


class WindowPreferences:
    """Read and write the window's remembered choices (a missing file: the defaults)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or preferences_file()
        self._store = QSettings(str(self.path), QSettings.IniFormat)

    def flag(self, key: str, default: bool = False) -> bool:
        """Return the remembered yes/no ``key`` (``default`` when never set or unreadable)."""
        value = self._store.value(key, default)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes", "on")
        return bool(value)

    def layout_state(self, key: str) -> QByteArray | None:
        """Return a remembered splitter state (None when never saved or unreadable)."""
        value = self._store.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def remember_splitter(self, key: str, splitter: QSplitter) -> None:
        """Put ``splitter``'s handles where they were left, and remember where they are moved."""
        state = self.layout_state(key)
        if state is not None:
            splitter.restoreState(state)
        splitter.splitterMoved.connect(lambda _pos, _index: self._keep(key, splitter.saveState()))

    def _keep(self, key: str, value: str | QByteArray) -> None:
        self._store.setValue(key, value)
        self._store.sync()

    def set_flag(self, key: str, value: bool) -> None:
        """Remember ``key`` (written to the file at once)."""
        self._keep(key, "true" if value else "false")
