"""The visual stimulus device with real Qt in a real display process, on the offscreen platform.

Offscreen means no monitor: "painted" is Qt's paint and flush into an offscreen buffer, and the
window's content is read back with ``QWidget.grab`` (the device's screenshot command).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.hardware.stimulation import DeviceLostError, DeviceNotFoundError, create_device
from deeplabstream.hardware.stimulation.visual import VisualStimulator

WHITE, GREEN, BLACK, RED, BLUE = (
    (255, 255, 255),
    (0, 255, 0),
    (0, 0, 0),
    (255, 0, 0),
    (0, 0, 255),
)


def pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    from PyQt5.QtGui import QColor, QImage

    image = QImage(str(path))
    assert not image.isNull(), path
    colour = QColor(image.pixel(x, y))
    return colour.red(), colour.green(), colour.blue()


def centre_colour(device: VisualStimulator, folder: Path, name: str) -> tuple[int, int, int]:
    path = device.screenshot(folder / f"{name}.png")
    width, height = device.screen_info["size"]
    return pixel(path, width // 2, height // 2)


@pytest.fixture(scope="module")
def split_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2:1 image, red left half and blue right half: letterboxed on a 4:3 window."""
    from PyQt5.QtGui import QColor, QImage

    image = QImage(40, 20, QImage.Format_RGB32)
    image.fill(QColor(*RED))
    for x in range(20, 40):
        for y in range(20):
            image.setPixel(x, y, QColor(*BLUE).rgb())
    path = tmp_path_factory.mktemp("images") / "split.png"
    assert image.save(str(path))
    return path


@pytest.fixture(scope="class")
def device(split_image: Path) -> Iterator[VisualStimulator]:
    """One full-screen display process shared by a class's checks (spawning costs time)."""
    stimulator = create_device(
        "visual", colors=("white", "#00ff00", "#ffff00"), images=("", "", split_image)
    )
    assert isinstance(stimulator, VisualStimulator)
    stimulator.open()
    yield stimulator
    stimulator.close()


class TestOneDisplayProcess:
    """Checks sharing one display process, which is closed before the tests below run."""

    def test_on_shows_the_channel_colour_and_off_the_background_offscreen(self, device, tmp_path):
        on = device.on(1)
        assert centre_colour(device, tmp_path, "on") == GREEN
        assert on.wait(2) and on.ok and on.acked_ns >= on.written_ns
        device.off(1)
        assert centre_colour(device, tmp_path, "off") == BLACK
        device.on(0)
        device.on(1)  # the highest channel that is on is on top
        assert centre_colour(device, tmp_path, "both") == GREEN
        device.reset()
        assert centre_colour(device, tmp_path, "reset") == BLACK

    def test_fullscreen_window_fills_the_offscreen_screen(self, device):
        assert device.screen_info["platform"] == "offscreen"
        assert device.screen_info["size"] == (800, 600)  # Qt's offscreen screen

    def test_pulses_are_acknowledged_in_order_and_end_offscreen(self, device, tmp_path):
        records = []
        for _ in range(3):
            record = device.pulse(0, 0.05)
            assert record.wait(2), record
            assert record.wait_end(2), record
            records.append(record)
        acked = [r.acked_ns for r in records]
        assert acked == sorted(acked) and len(set(acked)) == 3
        assert all(r.written_ns <= r.acked_ns < r.end_ns for r in records)
        assert [r.end_kind for r in records] == ["DONE"] * 3
        assert centre_colour(device, tmp_path, "after") == BLACK
        long = device.pulse(0, 5.0)
        assert centre_colour(device, tmp_path, "during") == WHITE
        device.off(0)
        assert long.wait_end(2) and long.end_kind == "CANCEL"

    def test_image_channel_shows_the_image_scaled_to_fit_offscreen(self, device, tmp_path):
        device.on(2)
        path = device.screenshot(tmp_path / "image.png")
        device.off(2)
        # 40x20 scaled into 800x600: 800x400, centred, the channel's yellow above and below.
        assert pixel(path, 200, 300) == RED
        assert pixel(path, 600, 300) == BLUE
        assert pixel(path, 400, 20) == (255, 255, 0)

    def test_every_command_is_acknowledged_after_it_was_written_offscreen(self, device):
        # How fast is a benchmark's question; here: each command is painted and acknowledged.
        for index in range(30):
            record = device.on(0) if index % 2 else device.off(0)
            assert record.wait(2)
            assert record.acked_ns >= record.written_ns


def test_missing_screen_lists_the_screens_that_exist():
    stimulator = VisualStimulator(screen=3)
    with pytest.raises(DeviceNotFoundError, match=r"screen 3 does not exist.*0: .*800x600"):
        stimulator.open()
    stimulator.close()  # harmless after a failed open


def test_bad_colour_and_missing_image_are_refused(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="not a colour"):
        VisualStimulator(colors=("whte",), fullscreen=False, window_size=(64, 48)).open()
    with pytest.raises(DeviceNotFoundError, match="does not exist"):
        VisualStimulator(images=(tmp_path / "absent.png",)).open()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X/Wayland check is Linux's")
def test_without_a_display_the_message_says_what_to_do(monkeypatch):
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DeviceNotFoundError, match=r"xvfb-run.*QT_QPA_PLATFORM=offscreen"):
        VisualStimulator().open()


def test_killed_display_process_gives_a_clear_error_never_a_hang(no_leftovers, tmp_path):
    stimulator = VisualStimulator(colors=("white",), fullscreen=False, window_size=(64, 48))
    stimulator.open()
    try:
        assert stimulator.on(0).wait(2)
        os.kill(stimulator.display_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while stimulator.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stimulator.error is not None
        with pytest.raises(DeviceLostError, match="display process ended"):
            stimulator.off(0)
        with pytest.raises(DeviceLostError):
            stimulator.screenshot(tmp_path / "never.png")
    finally:
        stimulator.close()


def test_a_pulse_running_when_the_display_dies_ends_lost(no_leftovers):
    stimulator = VisualStimulator(colors=("white",), fullscreen=False, window_size=(64, 48))
    stimulator.open()
    try:
        record = stimulator.pattern(0, 0.02, 0.02, 0)
        assert record.wait(2) and record.ok
        os.kill(stimulator.display_pid, signal.SIGKILL)
        assert record.wait_end(5)
        assert record.end_kind == "LOST"
    finally:
        stimulator.close()


def test_close_stops_the_display_process(no_leftovers):
    stimulator = VisualStimulator(colors=("white",), fullscreen=False, window_size=(64, 48))
    stimulator.open()
    pid = stimulator.display_pid
    stimulator.on(0)
    started = time.monotonic()
    stimulator.close()
    assert time.monotonic() - started < 3  # it quit on request, not after the terminate timeout
    assert stimulator.display_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    stimulator.close()  # idempotent
