"""Edit an ini file as text: change, add and remove keys and sections, keep everything else."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from configupdater import ConfigUpdater, Option, Section
from configupdater.block import Comment, Space

BACKUP_SUFFIX = ".bak"


class IniText:
    """An ini file's text, editable by section and key (case-insensitive keys).

    Raises :class:`configparser.Error` for text that is no ini file; duplicates are kept as written.
    """

    def __init__(self, text: str) -> None:
        self._document = ConfigUpdater(strict=False)
        self._document.read_string(text)

    @classmethod
    def read(cls, path: Path) -> IniText:
        """Read ``path`` (UTF-8)."""
        return cls(path.read_text(encoding="utf-8"))

    def text(self) -> str:
        """Return the file's text, ending with one newline."""
        return str(self._document).rstrip("\n") + "\n"

    # -- reading -------------------------------------------------------------------------------

    def sections(self) -> list[str]:
        """Return the section names in file order."""
        return self._document.sections()

    def has_section(self, section: str) -> bool:
        """Whether ``[section]`` exists."""
        return self._document.has_section(section)

    def items(self, section: str) -> dict[str, str]:
        """Return the keys (as spelled) and values of ``section`` (empty when it is absent)."""
        if not self.has_section(section):
            return {}
        return {
            option.raw_key: (option.value or "").strip()
            for option in self._document[section].iter_options()
        }

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        """Return the value of ``key`` in ``section``, or ``default``."""
        option = self._option(section, key)
        return default if option is None else (option.value or "").strip()

    # -- editing -------------------------------------------------------------------------------

    def set(self, section: str, key: str, value: str) -> None:
        """Set ``key`` in ``section`` (added after the section's last key; section made if new)."""
        value = _one_line(value)
        if not self.has_section(section):
            self.add_section(section, {key: value})
            return
        option = self._option(section, key)
        if option is not None:
            option.value = value  # the key keeps its spelling
            return
        options = self._document[section].option_blocks()
        if options:
            options[-1].add_after.option(key, value)
        else:
            self._document[section].insert_at(0).option(key, value)

    def remove(self, section: str, key: str) -> bool:
        """Remove ``key`` from ``section``; False when it was not there."""
        option = self._option(section, key)
        if option is None:
            return False
        option.detach()
        return True

    def add_section(
        self,
        section: str,
        items: dict[str, str],
        comment: str | None = None,
        after: str | None = None,
    ) -> None:
        """Add ``[section]`` with ``items``: at the end, or right after ``[after]`` when given."""
        if self.has_section(section):
            raise ValueError(f"[{section}] exists already")
        if after is not None and self.has_section(after):
            self._insert_after(after, section, items, comment)
            return
        self._drop_trailing_blank_lines()
        lines = [""] if self._document.last_block is not None else []
        if not str(self._document).endswith("\n") and lines:
            lines.insert(0, "")  # the file's last line had no line end: end it first
        if comment:
            lines += [f"; {line}".rstrip() for line in comment.splitlines()]
        for line in lines:  # at the document's end, between the last section and the new one
            block = Space(self._document) if not line else Comment(self._document)
            self._document.append(block.add_line(line + "\n"))
        self._document.add_section(section)
        for key, value in items.items():
            self._document[section][key] = _one_line(value)

    def remove_section(self, section: str) -> bool:
        """Remove ``[section]`` and its lines (the comments just above it stay); False if absent."""
        if not self.has_section(section):
            return False
        removed = self._document[section]
        # Comments and blank lines after a section's last key introduce the next section; the
        # parser files them under this one, so they are moved out before it goes. A blank line
        # is not moved where one is already: a removed camera left two blank lines behind.
        trailing = _trailing_blocks(removed)
        if _ends_blank(removed.previous_block):
            while trailing and isinstance(trailing[0], Space):
                trailing.pop(0)
        for block in trailing:
            before = removed.add_before
            if isinstance(block, Comment):
                for line in block.lines:
                    before.comment(line.rstrip("\n"), comment_prefix=line.lstrip()[:1])
            else:
                before.space(len(block.lines))
        removed.detach()
        return True

    def rename_section(self, old: str, new: str) -> None:
        """Rename ``[old]`` to ``[new]`` in place."""
        if not self.has_section(old):
            raise KeyError(old)
        if self.has_section(new):
            raise ValueError(f"[{new}] exists already")
        self._document[old].name = new

    # -- internals -----------------------------------------------------------------------------

    def _insert_after(
        self, after: str, section: str, items: dict[str, str], comment: str | None
    ) -> None:
        anchor: Section = self._document[after]
        # What introduces the next section (blank lines, its comments) moves to after the new one.
        moved = [(isinstance(b, Space), list(b.lines)) for b in _trailing_blocks(anchor)]
        for block in _trailing_blocks(anchor):
            block.detach()
        builder = anchor.add_after.space(1)
        if comment:
            for line in comment.splitlines():
                builder = builder.comment(line.rstrip())
        builder.section(section)
        new: Section = self._document[section]
        for key, value in items.items():
            new[key] = _one_line(value)
        # Each block goes right after the new section: the last first, so the order is kept.
        for is_space, lines in reversed(moved):
            for line in reversed(lines):
                if is_space:
                    new.add_after.space(1)
                else:
                    new.add_after.comment(line.rstrip("\n"), comment_prefix=line.lstrip()[:1])

    def _option(self, section: str, key: str) -> Option | None:
        if not self.has_section(section):
            return None
        found: Section = self._document[section]
        return found.get(key)  # configupdater folds the key's case, as configparser does

    def _drop_trailing_blank_lines(self) -> None:
        last = self._document.last_block
        container = last if isinstance(last, Section) else self._document
        while isinstance(container.last_block, Space):
            container.last_block.detach()


def _trailing_blocks(section: Section) -> list[Comment | Space]:
    """Return the comments and blank lines after ``section``'s last key, in order."""
    trailing: list[Comment | Space] = []
    for block in reversed(list(section.iter_blocks())):
        if not isinstance(block, Comment | Space):
            break
        trailing.insert(0, block)
    return trailing


def _ends_blank(block: object) -> bool:
    """Whether the text up to and including ``block`` ends with a blank line (or is empty)."""
    if block is None:
        return True
    last = block.last_block if isinstance(block, Section) else block
    return isinstance(last, Space)


def save_with_backup(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` atomically; keep the previous file as ``path.bak``.

    Returns the backup's path (None when there was no previous file).
    """
    backup = None
    if path.exists():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        shutil.copy2(path, backup)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return backup


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"a value must be one line: {value!r}")
    return value.strip()
