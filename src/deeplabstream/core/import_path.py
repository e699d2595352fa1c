"""The folder a command runs in never shadows a module of Python or of the project.

:func:`keep_current_folder_off_path`, called first by every command, takes the launcher's and the
current folder off the module path, and through ``PYTHONSAFEPATH`` off every process it starts:
a ``signal.py`` beside the settings would otherwise run in every spawned process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Python's own switch (3.11): a process started with it set puts no unsafe folder on its path.
SAFE_PATH_VARIABLE = "PYTHONSAFEPATH"

#: The folder that holds this package (``src`` of a checkout, or site-packages): always kept.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def keep_current_folder_off_path(launcher: str | None = None) -> list[str]:
    """Take the current folder and the launcher's folder off ``sys.path``, here and in children.

    ``launcher`` is the command's script (``sys.argv[0]`` by default). Removed: every entry
    that is the current folder (``''`` and ``'.'`` included) or the launcher's folder, except
    the folder the package itself is imported from (a checkout run from ``src``). Child
    processes get ``PYTHONSAFEPATH=1`` in their environment, so the current folder is never
    first on their path, and this process's path as it is now.

    Returns
    -------
    list[str]
        The entries removed, for a message.
    """
    os.environ[SAFE_PATH_VARIABLE] = "1"
    script = launcher if launcher is not None else (sys.argv[0] if sys.argv else "")
    unsafe = {_resolved(os.getcwd())}
    if script and Path(script).is_file():
        unsafe.add(_resolved(str(Path(script).parent)))
    unsafe.discard(_PACKAGE_PARENT)
    removed = [entry for entry in sys.path if _resolved(entry) in unsafe]
    sys.path[:] = [entry for entry in sys.path if entry not in removed]
    return removed


def _resolved(entry: str) -> Path:
    try:
        return Path(entry or ".").resolve()
    except OSError:
        return Path(entry)
