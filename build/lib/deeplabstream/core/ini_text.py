"""Edit an ini file as text: change, add and remove keys and sections, keep everything else.

configparser can read settings but not write them back faithfully: it drops every comment and
blank line and reorders nothing it does not know. The window edits files that users also edit by
hand (``settings.ini``, experiment configs), so an edit must change only the lines it means to.
:class:`IniText` keeps the file as lines and knows where each section and key is; unknown lines
(comments, blank lines) stay where they were. Key names match case-insensitively, as the loaders
read them. A value written here is one line: multi-line values are not produced.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*(?:[;#].*)?$")
_KEY = re.compile(r"^(?P<key>[^\s;#=:][^=:]*?)\s*[=:]\s*(?P<value>.*)$")
BACKUP_SUFFIX = ".bak"


@dataclass(frozen=True)
class _Span:
    """Where a section's lines are: its header line and one past its last line."""

    header: int
    end: int


class IniText:
    """An ini file's lines, editable by section and key (case-insensitive keys)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    @classmethod
    def read(cls, path: Path) -> IniText:
        """Read ``path`` (UTF-8)."""
        return cls(path.read_text(encoding="utf-8"))

    def text(self) -> str:
        """Return the file's text, ending with one newline."""
        return "\n".join(self.lines).rstrip("\n") + "\n"

    # -- reading -------------------------------------------------------------------------------

    def sections(self) -> list[str]:
        """Return the section names in file order."""
        return [name for name, _ in self._spans()]

    def has_section(self, section: str) -> bool:
        """Whether ``[section]`` exists."""
        return self._span(section) is not None

    def items(self, section: str) -> dict[str, str]:
        """Return the keys and values of ``section`` as written (empty when it is absent)."""
        span = self._span(section)
        if span is None:
            return {}
        found: dict[str, str] = {}
        for index in range(span.header + 1, span.end):
            match = _KEY.match(self.lines[index])
            if match:
                found[match["key"].strip()] = _strip_comment(match["value"])
        return found

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        """Return the value of ``key`` in ``section``, or ``default``."""
        for name, value in self.items(section).items():
            if name.upper() == key.upper():
                return value
        return default

    # -- editing -------------------------------------------------------------------------------

    def set(self, section: str, key: str, value: str) -> None:
        """Set ``key`` in ``section`` (added after the section's last key; section made if new)."""
        value = _one_line(value)
        span = self._span(section)
        if span is None:
            self.add_section(section, {key: value})
            return
        line = self._key_line(span, key)
        if line is not None:
            written = _KEY.match(self.lines[line])
            assert written is not None
            self.lines[line] = f"{written['key'].strip()} = {value}".rstrip()
            return
        self.lines.insert(self._after_last_key(span), f"{key} = {value}".rstrip())

    def remove(self, section: str, key: str) -> bool:
        """Remove ``key`` from ``section``; False when it was not there."""
        span = self._span(section)
        line = None if span is None else self._key_line(span, key)
        if line is None:
            return False
        del self.lines[line]
        return True

    def add_section(self, section: str, items: dict[str, str], comment: str | None = None) -> None:
        """Append ``[section]`` with ``items`` at the end (a blank line before it)."""
        if self.has_section(section):
            raise ValueError(f"[{section}] exists already")
        while self.lines and not self.lines[-1].strip():
            self.lines.pop()
        block = [""] if self.lines else []
        if comment:
            block += [f"; {line}".rstrip() for line in comment.splitlines()]
        block.append(f"[{section}]")
        block += [f"{key} = {_one_line(value)}".rstrip() for key, value in items.items()]
        self.lines += block

    def remove_section(self, section: str) -> bool:
        """Remove ``[section]`` and its lines (the comments just above it stay); False if absent."""
        span = self._span(section)
        if span is None:
            return False
        end = span.end
        while end > span.header + 1 and _is_comment_or_blank(self.lines[end - 1]):
            end -= 1  # comments at its end introduce the next section: keep them
        del self.lines[span.header : end]
        return True

    def rename_section(self, old: str, new: str) -> None:
        """Rename ``[old]`` to ``[new]`` in place."""
        span = self._span(old)
        if span is None:
            raise KeyError(old)
        if self.has_section(new):
            raise ValueError(f"[{new}] exists already")
        self.lines[span.header] = f"[{new}]"

    # -- internals -----------------------------------------------------------------------------

    def _spans(self) -> list[tuple[str, _Span]]:
        headers = [
            (index, match["name"].strip())
            for index, line in enumerate(self.lines)
            if (match := _SECTION.match(line))
        ]
        spans = []
        for position, (index, name) in enumerate(headers):
            end = headers[position + 1][0] if position + 1 < len(headers) else len(self.lines)
            spans.append((name, _Span(index, end)))
        return spans

    def _span(self, section: str) -> _Span | None:
        return next((span for name, span in self._spans() if name == section), None)

    def _key_line(self, span: _Span, key: str) -> int | None:
        for index in range(span.header + 1, span.end):
            match = _KEY.match(self.lines[index])
            if match and match["key"].strip().upper() == key.upper():
                return index
        return None

    def _after_last_key(self, span: _Span) -> int:
        last = span.header
        for index in range(span.header + 1, span.end):
            if _KEY.match(self.lines[index]):
                last = index
        return last + 1


def save_with_backup(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` atomically; the previous file is kept as ``path.bak``.

    Returns the backup's path (None when there was no previous file). The new text goes to a
    temporary file beside ``path`` first and is renamed over it, so a crash never leaves half a
    file; the backup is a copy, so ``path`` always exists.
    """
    backup = None
    if path.exists():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        shutil.copy2(path, backup)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return backup


def _strip_comment(value: str) -> str:
    # configparser (as the loaders use it) keeps inline comments as part of the value; so do we.
    return value.strip()


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"a value must be one line: {value!r}")
    return value.strip()


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped[0] in ";#"
