"""The simulated camera's stimulus LED: drawn from the simulated board's pin log.

The LED's brightness in each frame is the fraction of that frame's exposure during which the pin
was HIGH on the host clock; the tests write the pin log themselves, as the harness would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplabstream.hardware.cameras.synthetic import (
    LED_OFF_LEVEL,
    LED_ON_LEVEL,
    PinLogFollower,
    SyntheticCamera,
    SyntheticSettings,
)

INTERVAL_NS = 10_000_000  # 100 fps


def write_pin_log(path: Path, changes: list[tuple[str, int, int]], partial: str = "") -> None:
    """Append ``(pin, level, host_ns)`` lines in the harness's format (board ns made up)."""
    with path.open("a") as file:
        for pin, level, host_ns in changes:
            file.write(f"PIN {pin} {level} {host_ns // 7} {host_ns}\n")
        file.write(partial)


def led_level(frame: np.ndarray, settings: SyntheticSettings) -> float:
    s = settings
    return float(frame[s.led_y : s.led_y + s.led_size, s.led_x : s.led_x + s.led_size].mean())


def test_high_fraction_integrates_the_pin_over_a_window(tmp_path):
    log = tmp_path / "pins.log"
    write_pin_log(log, [("PD4", 1, 100), ("PD5", 1, 120), ("PD4", 0, 200), ("PD4", 1, 300)])
    follower = PinLogFollower(log, "PD4")
    follower.update()
    assert follower.changes == [(100, 1), (200, 0), (300, 1)]
    assert follower.high_fraction(0, 100) == 0.0
    assert follower.high_fraction(50, 150) == 0.5
    assert follower.high_fraction(100, 200) == 1.0
    assert follower.high_fraction(150, 350) == 0.5
    assert follower.high_fraction(400, 500) == 1.0  # still high after its last change


def test_follower_reads_only_complete_lines_and_waits_for_the_file(tmp_path):
    log = tmp_path / "pins.log"
    follower = PinLogFollower(log, "PD4")
    follower.update()  # no file yet: nothing, no error
    write_pin_log(log, [("PD4", 1, 100)], partial="PIN PD4 0 3")
    follower.update()
    assert follower.changes == [(100, 1)]
    with log.open("a") as file:
        file.write("0 300\n")  # the rest of the line the harness was writing
    follower.update()
    assert follower.changes == [(100, 1), (300, 0)]


def test_the_led_is_lit_in_frames_exactly_when_the_pin_was_high(tmp_path):
    log = tmp_path / "pins.log"
    settings = SyntheticSettings(
        width=64, height=48, framerate=100, led_pin_log=str(log), led_x=4, led_y=6, led_size=8
    )
    camera = SyntheticCamera("arena", settings)
    geometry = camera.open()
    frame = np.empty(geometry.shape, np.uint8)
    camera.grab(frame)  # frame 0 fixes the frames' times
    t0 = camera.exposure_end_ns(0)
    # Frame i's exposure is (t0 + (i - 1) * 10 ms, t0 + i * 10 ms]: HIGH from the middle of
    # frame 4's exposure to the end of frame 6's, then a 2.5 ms blip inside frame 9's.
    write_pin_log(
        log,
        [
            ("PD4", 1, t0 + 35_000_000),
            ("PD4", 0, t0 + 60_000_000),
            ("PD4", 1, t0 + 82_500_000),
            ("PD4", 0, t0 + 85_000_000),
        ],
    )
    levels = []
    for _ in range(11):
        stamp = camera.grab(frame)
        assert stamp.host_timestamp_ns >= camera.exposure_end_ns(stamp.frame_index)
        levels.append(led_level(frame, settings))
    camera.close()
    span = LED_ON_LEVEL - LED_OFF_LEVEL
    expected = [0, 0, 0, 0.5, 1, 1, 0, 0, 0.25, 0, 0]  # frames 1 .. 11
    assert levels == pytest.approx([LED_OFF_LEVEL + f * span for f in expected], abs=0.51)


def test_led_settings_are_checked():
    with pytest.raises(ValueError, match="LED spot does not fit"):
        SyntheticSettings(width=64, height=48, led_pin_log="x", led_x=60)
    with pytest.raises(ValueError, match="EXPOSURE"):
        SyntheticSettings(framerate=100, exposure=20)
