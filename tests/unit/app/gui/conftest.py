"""Each test of the window has its own device locks and its own remembered layout and choices.

So a test never sees a running app's devices, nor the layout another test left. ``window``: the
window on the arena alone (no experiment), 1280x720 (a module may give its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.core.device_lock import LOCK_ENV
from tests.support.files import write_settings
from tests.support.open_window import ARENA, close_window, open_window


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "instance.lock"))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "window.ini"))


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    main = open_window(qtbot, write_settings(tmp_path, ARENA), tmp_path / "out")
    yield main
    close_window(qtbot, main)
