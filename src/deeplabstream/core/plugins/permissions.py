"""Who may change a lab's code: a file others may write is said (a notice), refused to root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from deeplabstream.core.plugins.errors import PluginLoadError
from deeplabstream.core.plugins.notices import notice


def _running_as_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def writers_problem(path: Path, as_root: bool) -> tuple[str, bool] | None:
    """Return ``(text, refused)`` for a lab file users other than its owner and root may change.

    POSIX permissions of the file and its folders (sticky folders allowed); refused when
    ``as_root``. None when nothing is to be said, and on Windows.
    """
    if os.name == "nt":
        return None
    writable = _writable_by_everyone(path)
    if writable is not None:
        fix = f"chmod o-w {writable}"
        if as_root:
            return (
                f"refused: {writable} may be written by every user of this machine, and this "
                f"process runs as root: anyone could run code as root through {path.name}. "
                f"Run `{fix}`, or run as a normal user",
                True,
            )
        return (
            f"{path}: {writable} may be written by every user of this machine: anyone can run "
            f"code in this program through it. Run `{fix}`",
            False,
        )
    owner = path.stat().st_uid
    if as_root and owner != 0:
        return (
            f"{path} belongs to user id {owner} and is run by root: that user can run code as "
            "root through it. Keep root's plugins in folders only root can write",
            False,
        )
    return None


def check_who_may_write(path: Path, what: str) -> None:
    """Refuse or say a lab file others may change (:func:`writers_problem`)."""
    problem = writers_problem(path, _running_as_root())
    if problem is None:
        return
    text, refused = problem
    if refused:
        raise PluginLoadError(f"{what}: {text}")
    notice(text)


def _writable_by_everyone(path: Path) -> Path | None:
    """Return the first of ``path`` and its folders that every user may write to, or None."""
    for place in (path, *path.parents):
        try:
            mode = place.stat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IWOTH:
            continue
        if place != path and mode & stat.S_ISVTX:  # sticky: others cannot replace what is here
            continue
        return place
    return None
