"""The real main window for a test: opened on a settings file, closed once its files are final."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt5.QtWidgets import QApplication

from deeplabstream.app.gui.main_window import MainWindow
from deeplabstream.app.gui.preferences import STATE_ENV
from deeplabstream.core.device_lock import LOCK_ENV
from tests.support.files import write_settings

START_TIMEOUT_MS = 90_000
ARENA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\n"


def open_window(
    qtbot, settings: Path, out: Path, size: tuple[int, int] = (1280, 720)
) -> MainWindow:
    """Show the window at ``size`` once the Rig tab checked ``settings``."""
    window = MainWindow(settings, out)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.rig_panel.wait_checked()
    return window


def close_window(qtbot, window: MainWindow) -> None:
    """Close the window as a user does; it goes once every part stopped."""
    window.close()
    qtbot.waitUntil(lambda: window.closed_down, timeout=START_TIMEOUT_MS)
    window.deleteLater()


def module_window(
    tmp_path_factory: pytest.TempPathFactory, name: str, settings: str, size: tuple[int, int]
) -> Iterator[MainWindow]:
    """Yield one window a module's tests share (they start nothing), with its own locks and layout.

    For a module-scoped fixture: opening a window takes seconds. Closed, once down, at the end.
    """
    folder = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as patch:  # its own remembered layout and locks
        patch.setenv(LOCK_ENV, str(folder / "instance.lock"))
        patch.setenv(STATE_ENV, str(folder / "window.ini"))
        window = MainWindow(write_settings(folder, settings), folder / "out")
        window.resize(*size)
        window.show()
        window.rig_panel.wait_checked()
        yield window
        window.close()
        deadline = time.monotonic() + START_TIMEOUT_MS / 1000
        while not window.closed_down and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)
        assert window.closed_down
        window.deleteLater()
        QApplication.processEvents()
