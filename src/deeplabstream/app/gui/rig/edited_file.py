"""The settings file the Rig tab edits: its path, its text (comments kept) and whether it changed.

Every box writes through :meth:`EditedFile.set`; :attr:`EditedFile.rewritten` tells every box
to show the file again.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from PyQt5.QtCore import QObject, pyqtSignal

from deeplabstream.core.ini_text import IniText, save_with_backup


class EditedFile(QObject):
    """One settings file as the Rig tab edits it (:class:`core.ini_text.IniText`)."""

    edited = pyqtSignal()  # a key or a section changed: the whole file is checked again soon
    rewritten = pyqtSignal()  # more than one field changed: every box shows the file again

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.document = IniText("")
        self.dirty = False  # edited since read or saved

    @property
    def folder(self) -> Path:
        """The settings file's folder: relative paths and the lab's code are found from it."""
        return self.path.parent

    def read(self, path: Path) -> None:
        """Read ``path``; it is shown empty when it cannot be read or is no ini file.

        Raises what reading raised (``OSError``, ``UnicodeDecodeError``, ``configparser.Error``)
        after the text is set.
        """
        self.path = path
        self.dirty = False
        self.document = IniText("")
        self.document = IniText.read(path)

    def save(self) -> Path | None:
        """Write the text over the file, keeping its previous version; return that backup."""
        backup = save_with_backup(self.path, self.document.text())
        self.dirty = False
        return backup

    def set(self, section: str, key: str, value: str) -> None:
        """Set (or, when empty, remove) one key, then check the whole file again soon."""
        value = value.strip()
        if value:
            if self.document.get(section, key) == value:
                return
            self.document.set(section, key, value)
        elif not self.document.remove(section, key):
            return
        self.mark_edited()

    def set_keys(self, section: str, keys: dict[str, str]) -> None:
        """Write several keys of ``section`` at once (every box shows the file again)."""
        for key, value in keys.items():
            self.document.set(section, key, value)
        self.rewritten.emit()

    def add_section(self, section: str, keys: dict[str, str], *, after: str | None = None) -> None:
        """Add ``[section]`` with ``keys`` (after the section ``after``, else at the end)."""
        self.document.add_section(section, keys, after=after)
        self.rewritten.emit()

    def remove_section(self, section: str) -> None:
        """Remove ``[section]`` (every box shows the file again)."""
        self.document.remove_section(section)
        self.rewritten.emit()

    def mark_edited(self) -> None:
        """Say the text changed: it is unsaved and is checked again soon."""
        self.dirty = True
        self.edited.emit()

    def section_names(self, prefix: str) -> list[str]:
        """Return the names of the sections ``[prefix name]``, in the file's order."""
        return [s[len(prefix) :].strip() for s in self.document.sections() if s.startswith(prefix)]

    def unsaved_changes(self) -> list[str]:
        """Return the edits not in the file yet, one line each ("[Experiment] NAME: a -> b")."""
        return describe_changes(_read_keys(self.path), _keys_of(self.document.text()))


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
