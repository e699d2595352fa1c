"""The real main window for a test: opened on a settings file, closed once its files are final."""

from __future__ import annotations

from pathlib import Path

from deeplabstream.app.gui.main_window import MainWindow

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
