"""Test set-up for every test: environment, and the fixture modules in ``tests/fixtures``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _private_file(variable: str, name: str) -> None:
    """Point ``variable`` at a file of the tests' own, one per pytest-xdist worker.

    The workers inherit the environment of the process that started them: without a file of
    their own, two workers' sessions would take each other's (emulated, per-process) cameras
    and ports for busy, and share one window-state file.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if variable in os.environ and not worker:
        return  # the developer's own choice, or this process's parent's
    folder = tempfile.mkdtemp(prefix=f"dls-tests-{worker}-" if worker else "dls-tests-")
    os.environ[variable] = str(Path(folder) / name)


# The tests' own instance lock: a DeepLabStream the developer is running never blocks them.
_private_file("DEEPLABSTREAM_LOCK_FILE", "instance.lock")
# The window's remembered view choices (app/gui/preferences.py): never the developer's own file.
_private_file("DEEPLABSTREAM_WINDOW_STATE", "window.ini")


pytest_plugins = ["tests.fixtures.processes", "tests.fixtures.firmware"]
