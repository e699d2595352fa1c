"""The live view of DeepLabStream.py in a real (offscreen) Qt window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt5.QtCore import Qt

from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.settings import load_settings
from tests.support.files import write_settings


def test_preview_shows_frames_and_q_stops_the_run(tmp_path: Path, qtbot, no_leftovers) -> None:
    from deeplabstream.app.gui.preview import PreviewWindow

    settings = write_settings(
        tmp_path,
        "[Camera top]\nSOURCE = synthetic\n"
        "[Camera side]\nSOURCE = synthetic\nPIXEL_FORMAT = mono8\n",
    )
    stream = LiveSession(load_settings(settings), output_dir=tmp_path / "out")
    runner = SessionRunner(stream, status_out=None)
    try:
        stream.open()
        stream.start()
        window = PreviewWindow(stream, runner)
        qtbot.addWidget(window)
        window.show()
        tiles = [window.findChild(type(window._status), f"tile_{name}") for name in ("top", "side")]
        qtbot.waitUntil(lambda: all(t.pixmap() is not None for t in tiles), timeout=20_000)
        image = tiles[0].pixmap().toImage()
        assert image.width() > 100
        pixels = np.array(
            [image.pixelColor(x, image.height() // 2).value() for x in range(0, image.width(), 7)]
        )
        assert pixels.std() > 1  # a real picture, not a blank tile
        qtbot.keyClick(window, Qt.Key_Q)
        assert runner.stop_reason == "q pressed"
    finally:
        stream.stop()
