"""Files a command reads from a folder it did not write just now: regular files only.

Anything else (a FIFO would block ``open`` deaf to Ctrl-C) raises :class:`SpecialFileError`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

from deeplabstream.core.errors import DeepLabStreamError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class SpecialFileError(DeepLabStreamError, OSError):
    """A path that is not a regular file where one was to be read; the message names both."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(
            f"{path} is not a regular file ({kind}); it was not opened: a session writes only "
            "regular files there, so something else was put in its place. Move it away"
        )
        self.path = path
        self.kind = kind


def kind_of(mode: int) -> str | None:
    """Return what a file of ``mode`` is in words ("a FIFO"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in _KINDS if test(mode)), "a special file")


def regular_file(path: Path | str) -> Path:
    """Return ``path`` when it is a regular file (links followed).

    Raises :class:`SpecialFileError` (FIFO, device, socket, folder) or ``FileNotFoundError``.
    """
    path = Path(path)
    kind = kind_of(os.stat(path).st_mode)
    if kind is not None:
        raise SpecialFileError(path, kind)
    return path


def open_regular(path: Path | str, mode: str = "r", **options: Any) -> IO[Any]:
    """Open ``path`` for reading (``mode`` "r" or "rb") only if it is a regular file; never blocks.

    Raises :class:`SpecialFileError` when it is not a regular file.
    """
    if mode not in ("r", "rb"):
        raise ValueError(f"open_regular reads: mode 'r' or 'rb', not {mode!r}")
    path = Path(regular_file(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        kind = kind_of(os.fstat(descriptor).st_mode)
        if kind is not None:
            raise SpecialFileError(path, kind)
        return os.fdopen(descriptor, mode, **options)
    except BaseException:
        os.close(descriptor)
        raise


def utf8_name_problem(path: Path | str) -> str | None:
    """Say why ``path`` (a name that is not valid UTF-8) cannot be given to the session's libraries.

    None when the name is valid.
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return (
            f"{shown_path(path)}: its name is not valid UTF-8 (the bytes shown as \\x..), "
            "which the pose table, the models' runtimes and the video and NWB libraries "
            "cannot open. Rename it, or choose another"
        )
    return None


def shown_path(path: Path | str) -> str:
    """Return ``path`` as text any console prints: a byte that is not UTF-8 written as hex."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
