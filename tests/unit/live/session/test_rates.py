"""Issue 38 #6: rates on the camera's own clock, never above what the camera delivered."""

from __future__ import annotations

import math

import pytest

from deeplabstream.live.session.report.rates import CameraRates, StampSample, frame_time_s

FPS = 30.0


def test_late_refreshes_and_bursts_do_not_raise_the_rate_above_the_cameras() -> None:
    """The window's refreshes came late and the frames in bursts under load: 46 and 73 fps were
    shown for a 30 fps camera. Seen through the frames' own stamps, the rate stays 30."""
    rates = CameraRates(window_s=5.0)
    # The window looks at irregular moments (0.2 s to 2.4 s apart): each time it sees the newest
    # frame's sequence number and camera timestamp (frame k at k / 30 s).
    seen_at_frames = [0, 6, 80, 81, 150, 152, 290, 300]
    for seq in seen_at_frames:
        rates.add("arena", StampSample(seq, seq / FPS, analysed=seq // 2))
        rate = rates.capture_fps("arena")
        if rate is not None:
            assert rate == pytest.approx(FPS)
    analysed = rates.analysed_fps("arena")
    assert analysed is not None and analysed == pytest.approx(FPS / 2, rel=0.05)


def test_the_analysed_rate_is_never_shown_above_the_capture_rate() -> None:
    rates = CameraRates()
    rates.add("arena", StampSample(0, 0.0, analysed=0))
    rates.add("arena", StampSample(30, 1.0, analysed=45))  # counted late: 45 for 30 frames
    assert rates.capture_fps("arena") == pytest.approx(30.0)
    assert rates.analysed_fps("arena") == pytest.approx(30.0)


def test_a_camera_without_a_clock_uses_its_frames_arrival_times_not_the_windows() -> None:
    assert frame_time_s(math.nan, 2_500_000_000) == 2.5
    assert frame_time_s(1.25, 2_500_000_000) == 1.25
    rates = CameraRates()
    rates.add("usb", StampSample(10, frame_time_s(math.nan, 1_000_000_000), 0))
    rates.add("usb", StampSample(70, frame_time_s(math.nan, 3_000_000_000), 0))
    assert rates.capture_fps("usb") == pytest.approx(30.0)


def test_the_rate_follows_the_last_seconds_and_starts_again_with_a_new_stream() -> None:
    rates = CameraRates(window_s=2.0)
    for second in range(6):  # 30 fps for 3 s, then 10 fps
        seq = 30 * min(second, 3) + 10 * max(second - 3, 0)
        rates.add("arena", StampSample(seq, float(second), 0))
    assert rates.capture_fps("arena") == pytest.approx(10.0)
    rates.add("arena", StampSample(3, 0.1, 0))  # counters went back: a new stream
    assert rates.capture_fps("arena") is None
    assert rates.capture_fps("nobody") is None
    rates.clear()
    assert rates.capture_fps("arena") is None


def test_a_camera_stamping_its_schedule_reads_at_the_rate_its_frames_arrived() -> None:
    # Frame k stamped k / 30 s (the simulated camera, a video), but one arrives every second.
    rates = CameraRates(window_s=5.0)
    for seq in range(6):
        rates.add("slow", StampSample(seq, seq / FPS, 0, host_s=100.0 + seq))
    assert rates.capture_fps("slow") == pytest.approx(1.0)
