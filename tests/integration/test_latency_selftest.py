"""The app's latency self-test: the light trigger, the board's reports, the figures, the command.

The end-to-end test runs ``DeepLabStream.py --latency-test --simulated-board`` for real: the
firmware under simavr flashes its LED, the simulated camera draws it, the pose worker's
experiment answers over the pty, and the analysis sets the board's figures beside the app's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.factory import make_trigger
from deeplabstream.experiments.triggers.light import LightNotFoundError, LightOn, find_light
from deeplabstream.hardware.stimulation.latency import (
    FlashReport,
    read_board_reports,
    run_file,
    write_board_reports,
)
from deeplabstream.hardware.stimulation.protocol import format_latency_test, parse_reply
from deeplabstream.live.selftest.latency_analysis import LatencyAnalysisError, camera_timing
from deeplabstream.live.selftest.latency_run import (
    LatencyTestError,
    experiment_config,
    plan_latency_test,
)
from deeplabstream.outputs.session_record import SessionRecord
from deeplabstream.settings import SettingsError, load_settings
from tests.support.files import make_ffv1_video
from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
FPS = 30.0


def frame_with_light(level: float, animal_x: int = 100, shape=(120, 160)) -> np.ndarray:
    """A grey floor, a dark moving 'animal' and a light at x 20..31, y 8..19 of ``level``."""
    frame = np.full(shape, 120, np.uint8)
    frame[40:80, animal_x : animal_x + 30] = 30
    frame[8:20, 20:32] = round(level)
    return frame


def observe(frame: np.ndarray, index: int) -> Observation:
    return Observation(
        time_s=index / FPS,
        camera="cam",
        frame_index=index,
        keypoints=np.zeros((1, 3)),
        names=("nose",),
        frame=frame,
    )


def flashing_levels(frames: int) -> list[float]:
    """A light 10 -> 250 for 4 frames every 15, the first frame of each flash partly lit."""
    levels = []
    for index in range(frames):
        phase = index % 15
        levels.append(250.0 if 1 <= phase <= 3 else 130.0 if phase == 0 and index else 10.0)
    return levels


def test_the_light_is_found_among_a_moving_animal_and_its_lit_fraction_read():
    trigger = LightOn(threshold=0.1, search_s=2.0)
    levels = flashing_levels(150)
    states = []
    for index, level in enumerate(levels):
        animal_x = 40 + (index * 3) % 90  # walks across the floor, back and forth in jumps
        states.append(trigger.update(observe(frame_with_light(level, animal_x), index)))
    assert trigger.roi is not None
    roi = trigger.roi
    # The region holds the light (x 20..31, y 8..19) and none of the animal's path (y >= 40).
    assert roi.x_min <= 20 and roi.x_max >= 31 and roi.y_min <= 8 and roi.y_max >= 19
    assert roi.y_max < 40
    assert not any(states[:60])  # learning for 2 s = 60 frames
    # After the search: true from the first partly lit frame of each flash to its end.
    for index in range(75, 150):
        assert states[index] == (levels[index] > 10.0), index
    partly = next(i for i in range(75, 150) if levels[i] == 130.0)
    trigger_at = LightOn(roi=roi, threshold=0.1, search_s=2.0)
    for index, level in enumerate(levels[: partly + 1]):
        trigger_at.update(observe(frame_with_light(level), index))
    assert trigger_at.lit_fraction(trigger_at.level) == pytest.approx(0.5, abs=0.01)
    words = dict(w.split("=") for w in trigger_at.measurement().split())
    assert set(words) == {"level", "previous", "off", "on", "gap"}


def test_no_light_is_a_clear_error_after_the_search_rounds():
    trigger = LightOn(search_s=0.5)
    with pytest.raises(LightNotFoundError, match="nothing switched on and off"):
        for index in range(200):
            # the animal walks once across the floor: it darkens each place once, no flashing
            trigger.update(observe(frame_with_light(10.0, 40 + index // 3), index))


def test_find_light_ignores_a_steady_image():
    blocks = np.full((50, 4, 4), 100.0, np.float32)
    assert find_light(blocks) is None


def test_the_light_trigger_is_made_from_a_config_and_its_roi_checked():
    trigger = make_trigger("light", {"roi": "rect 16 0 31 23", "threshold": "0.2"})
    assert trigger.describe()["roi"] == "rect 16 0 31 23"
    with pytest.raises(ValueError, match="threshold"):
        make_trigger("light", {"threshold": "1.5"})


def test_lat_and_miss_lines_are_parsed_and_the_latency_command_formatted():
    lat = parse_reply("LAT 3 1000 35000")
    assert (lat.kind, lat.flash, lat.board_time_us, lat.command_time_us) == ("LAT", 3, 1000, 35000)
    miss = parse_reply("MISS 4 90000")
    assert (miss.kind, miss.flash, miss.command_time_us) == ("MISS", 4, None)
    assert parse_reply("LAT 3 x 5").kind == "OTHER"
    assert format_latency_test(7, 2, 0.3, 0.7, 0.1, 0, 99) == "7 LATENCY 2 300 700 100 0 99"
    with pytest.raises(ValueError, match="longer"):
        format_latency_test(7, 2, 0.8, 0.7, 0.1)


def test_board_reports_round_trip_and_runs_have_their_own_files(tmp_path):
    reports = [FlashReport(1, 100, None), FlashReport(2, 5000, 36000, 9, "9 OFF 11", 123456)]
    path = tmp_path / run_file("events.run2.csv", "latency_board")
    assert path.name == "latency_board.run2.csv"
    write_board_reports(path, reports)
    assert read_board_reports(path) == reports
    assert reports[1].board_ms == pytest.approx(31.0)


def _write_times(path: Path, frames: range, offset_s: float) -> None:
    rows = [f"{i},{offset_s + i / 30},{i / 30},{int(i % 3 == 0)}" for i in frames]
    path.write_text("frame_index,host_timestamp,camera_timestamp,analysed\n" + "\n".join(rows))


def test_an_unrecorded_session_fits_the_clock_on_every_frame_its_pose_files_hold(tmp_path):
    # Not recorded (no arena.frames.csv), and too few events to fit on: on a loaded machine
    # the worker analyses a few frames a second, but pose_times.csv holds every frame it got.
    info = SessionRecord.from_json({"cameras": {"arena": {}}}, "session.json")
    events = [
        {"camera": "arena", "frame_index": str(i), "camera_timestamp": str(i / 30),
         "host_timestamp": str(5.0 + i / 30)}
        for i in (3, 9)
    ]  # fmt: skip
    with pytest.raises(LatencyAnalysisError, match="too few frames of camera 'arena'"):
        camera_timing(tmp_path, info, "arena", events)
    _write_times(tmp_path / "arena.pose_times.csv", range(40), offset_s=5.0)
    timing = camera_timing(tmp_path, info, "arena", events)
    assert timing.fit_frames == 40
    assert timing.interval_ms == pytest.approx(1000 / 30)
    assert timing.offset_s == pytest.approx(5.0, abs=1e-6)
    # A recording's own table comes first.
    _write_times(tmp_path / "arena.frames.csv", range(25), offset_s=5.0)
    assert camera_timing(tmp_path, info, "arena", events).fit_frames == 25


def test_latency_settings_are_checked_before_anything_starts(tmp_path):
    base = "[Camera cam]\nSOURCE = synthetic\n"
    bad = tmp_path / "bad.ini"
    bad.write_text(base + "[LatencyTest]\nMIN_INTERVAL = 0.9\nMAX_INTERVAL = 0.5\n")
    with pytest.raises(SettingsError, match=r"MIN_INTERVAL 0\.9 s is longer"):
        load_settings(bad)
    bad.write_text(base + "[LatencyTest]\nCHANNEL = 3\nANSWER_CHANNEL = 3\n")
    with pytest.raises(SettingsError, match="ANSWER_CHANNEL"):
        load_settings(bad)
    bad.write_text(base + "[LatencyTest]\nREGION = 1, 2, 3\n")
    with pytest.raises(SettingsError, match="REGION"):
        load_settings(bad)
    # No board: the plan says what to add.
    good = tmp_path / "good.ini"
    good.write_text(base + "[LatencyTest]\nREGION = 16, 0, 31, 23\n")
    with pytest.raises(LatencyTestError, match="no stimulus board"):
        plan_latency_test(load_settings(good))
    board = "[Device box]\nTYPE = serial\nPORT = /dev/ttyACM9\n"
    good.write_text(base + "[LatencyTest]\nREGION = 16, 0, 31, 23\n" + board)
    plan = plan_latency_test(load_settings(good))
    assert plan.spec.device == "box" and plan.spec.on_s == pytest.approx(0.1)
    text = experiment_config(plan)
    assert "ROI = rect 16 0 31 23" in text and "DEVICE = box" in text and "CHANNEL = 11" in text


def test_simulated_board_needs_a_simulated_camera(tmp_path):
    settings = tmp_path / "video.ini"
    make_ffv1_video(tmp_path / "x.mkv", 3)  # a valid video, never opened: the plan is refused
    settings.write_text(f"[Camera cam]\nSOURCE = video\nPATH = {tmp_path / 'x.mkv'}\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--latency-test",
         "--simulated-board", "--settings", str(settings), "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    if "needs make" in result.stderr or "building the firmware" in result.stderr:
        pytest.skip("the firmware cannot be built here: " + result.stderr[-200:])
    assert result.returncode == 2, result.stderr
    assert "SOURCE = video" in result.stderr and "simulated camera" in result.stderr


@pytest.mark.skipif(
    shutil.which("avr-gcc") is None or not Path("/usr/include/simavr/sim_avr.h").exists(),
    reason="avr-gcc or simavr's headers are absent: bash scripts/setup.sh --tests",
)
@pytest.mark.slow
def test_latency_test_on_the_simulated_rig_writes_the_boards_and_the_apps_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--latency-test",
         "--simulated-board", "--duration", "14", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    session = next(tmp_path.iterdir())
    figures = json.loads((session / "latency_test.json").read_text())
    for key in ("board_ms", "app_ms", "agreement_ms"):
        assert set(figures[key]) >= {"p50", "p95", "p99", "max"}
    # 14 s, 3 s of search, a flash every 0.3-0.7 s plus 0.1 s on: at least 10 answered.
    assert figures["events"] >= 10
    board = read_board_reports(session / "latency_board.csv")
    answered = [r for r in board if r.command_us is not None]
    assert len(answered) >= figures["events"]
    assert all(r.answer_command and r.answer_command.endswith(" OFF 11") for r in answered)
    # The board's figure: a sampling wait (0 .. 1 frame) plus the loop, so above 1 ms and
    # below two frames plus the loop; the app's account of each flash is the same interval
    # by other clocks: a wrong formula would be off by a frame or more (33 ms).
    for event in figures["per_event"]:
        assert 1.0 < event["board_ms"] < 2 * 1000 / FPS + 100
        assert 0.0 <= event["sampling_wait_ms"] <= 2 * 1000 / FPS + 1
    assert figures["agreement_ms"]["p50"] < 3.0
    assert figures["camera"]["frame_interval_ms"] == pytest.approx(1000 / FPS, abs=0.01)
    assert (session / "latency_test.png").stat().st_size > 10_000
    events = pd.read_csv(session / "events.csv")
    rows = events[events["kind"] == "latency"]
    assert len(rows) == figures["events"]
    assert rows["detail"].str.contains("board .* ms; app .* ms", regex=True).all()
    assert "board: light on -> command" in result.stdout
