"""Test set-up for every test: environment, and the fixture modules in ``tests/fixtures``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The tests' own instance lock: a DeepLabStream the developer is running never blocks them.
os.environ.setdefault(
    "DEEPLABSTREAM_LOCK_FILE", str(Path(tempfile.mkdtemp(prefix="dls-tests-")) / "instance.lock")
)
# The window's remembered view choices (app/gui/preferences.py): never the developer's own file.
os.environ.setdefault(
    "DEEPLABSTREAM_WINDOW_STATE", str(Path(tempfile.mkdtemp(prefix="dls-tests-")) / "window.ini")
)


pytest_plugins = ["tests.fixtures.processes", "tests.fixtures.firmware"]

