"""The folder a command runs in never shadows a module of Python or of the project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Python's own switch (3.11): a process started with it set puts no unsafe folder on its path.
SAFE_PATH_VARIABLE = "PYTHONSAFEPATH"

#: The folder that holds this package (``src`` of a checkout, or site-packages): always kept.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def keep_current_folder_off_path(launcher: str | None = None) -> list[str]:
    """Take the current and the launcher's folder off ``sys.path``, here and in children.

    Children get ``PYTHONSAFEPATH=1``. The package's own folder stays. Returns the entries removed.
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
