"""A camera that stops delivering, closes or is missing: detected, reported, handled per setting.

The faults are real ones of pylon's camera emulator, caused from inside the capture process by
:class:`FaultyBasler` (the project's Basler camera plus a fault after N frames): the camera is
switched to wait for trigger pulses on an input line that never gets any (it stalls, as a camera
that lost power or its trigger cable does), the camera is closed under the grab (as a USB reset
does), or it stalls and comes back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

pytest.importorskip("pypylon", reason="pypylon is not installed (pip install pypylon)")

from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings
from deeplabstream.live.session.live import LiveSession, SessionEvent
from deeplabstream.settings import load_settings
from tests.support.files import read_video, write_settings
from tests.support.lab_folders import lab_plugin
from tests.support.processes import run_cli

TICK_S = 0.25  # how often the command line services the stream (live/session/runner.py)


@dataclasses.dataclass(frozen=True)
class FaultySettings(BaslerSettings):
    """Basler keys plus the fault to cause: ``stall``, ``close`` or ``pause``, after N frames."""

    fault: str = "stall"
    after_frames: int = 100
    pause_s: float = 1.5


class FaultyBasler(BaslerCamera):
    """The project's Basler camera, whose emulated camera fails after ``after_frames`` frames."""

    settings: FaultySettings

    def grab(self, out):  # type: ignore[no-untyped-def]
        if self._frames == self.settings.after_frames and not getattr(self, "_faulted", False):
            self._faulted = True
            device = self._camera
            if self.settings.fault == "close":
                device.Close()  # the camera goes away under the grab
            else:  # from now on each frame waits for a pulse on Line1, which never comes
                device.TriggerSource.Value = "Line1"
                device.TriggerMode.Value = "On"
            if self.settings.fault == "pause":
                threading.Timer(
                    self.settings.pause_s, lambda: setattr(device.TriggerMode, "Value", "Off")
                ).start()
        return super().grab(out)


def faulty_settings(tmp_path: Path, policy: str, **fault: object):
    """Settings: a faulty emulated Basler at 100 Hz and the simulated arena at 30 Hz."""
    path = write_settings(
        tmp_path,
        f"[Streaming]\nON_CAMERA_LOST = {policy}\n"
        "[Camera faulty]\nSOURCE = basler\nSERIAL = 0815-0000\nWIDTH = 320\nHEIGHT = 240\n"
        "FRAMERATE = 100\nEXPOSURE = 1000\nTIMEOUT = 2\n"
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    settings = load_settings(path)
    basler = settings.cameras[0]
    options = FaultySettings(**dataclasses.asdict(basler.options), **fault)  # type: ignore[arg-type]
    # The faulty camera as a lab's module beside the settings (settings never name a file).
    source = lab_plugin(tmp_path, "cameras", FaultyBasler)
    faulty = dataclasses.replace(basler, source=source, options=options)
    return dataclasses.replace(settings, cameras=(faulty, settings.cameras[1]))


@dataclasses.dataclass
class Run:
    stream: LiveSession
    events: list[tuple[float, SessionEvent]]  # (host clock when the main process got it, event)
    arena_frames_at_loss: int | None
    arena_frames_at_end: int

    @property
    def session(self) -> Path:
        assert self.stream.session_dir is not None
        return self.stream.session_dir

    def info(self) -> dict:
        return json.loads((self.session / "session.json").read_text(encoding="utf-8"))

    def said(self, text: str) -> bool:
        return any(text in e.message for _, e in self.events)

    def first(self, text: str) -> tuple[float, SessionEvent]:
        matches = [(t, e) for t, e in self.events if text in e.message]
        assert matches, f"no event with {text!r} in {[e.message for _, e in self.events]}"
        return matches[0]

    def last_frame_host_s(self, camera: str) -> float:
        return float(pd.read_csv(self.session / f"{camera}.frames.csv")["host_timestamp"].iloc[-1])


def run(settings, run_for_s: float, until: Callable[[Run], bool] | None = None) -> Run:
    """LiveSession with recording, servicing like the command line, until every camera ended,
    ``until`` holds of the run so far or ``run_for_s`` passed; note when each event reached the
    main process."""
    stream = LiveSession(settings)
    events: list[tuple[float, SessionEvent]] = []
    arena_at_loss = None
    try:
        stream.open()
        stream.start_recording()
        stream.start()
        deadline = time.monotonic() + run_for_s
        so_far = Run(stream, events, None, 0)
        while time.monotonic() < deadline and not stream.all_ended:
            so_far.arena_frames_at_loss = arena_at_loss
            so_far.arena_frames_at_end = stream.camera_stats()["arena"]["captured"]
            if until is not None and until(so_far):
                break
            for event in stream.service(TICK_S):
                events.append((time.perf_counter(), event))
                if arena_at_loss is None and event.camera == "faulty":
                    arena_at_loss = stream.camera_stats()["arena"]["captured"]
        arena_at_end = stream.camera_stats()["arena"]["captured"]
    finally:
        stream.stop(stream.stop_reason or "test over")
    return Run(stream, events, arena_at_loss, arena_at_end)


def assert_files_valid(result: Run) -> dict:
    """Every camera's video and frames table hold the same frames, all that were captured."""
    info = result.info()
    assert info["status"] == "finished"
    for name, camera in info["cameras"].items():
        table = pd.read_csv(result.session / f"{name}.frames.csv")
        frames = read_video(result.session / f"{name}.mkv", gray=name == "faulty")
        assert len(frames) == len(table) == camera["frames_recorded"] == camera["frames_captured"]
        assert camera["frames_lost_in_recording"] == 0
    return info


@pytest.fixture
def detection_figures(request: pytest.FixtureRequest):
    """Print the measured detection delays (seen with ``pytest -s``; quoted in reports)."""
    figures: dict[str, float] = {}
    yield figures
    for what, seconds in figures.items():
        print(f"\n{request.node.name}: {what} {seconds * 1000:.0f} ms")


def test_a_stalled_camera_is_detected_within_a_second_and_stops_the_session(
    tmp_path: Path, no_leftovers, detection_figures
) -> None:
    settings = faulty_settings(tmp_path, "stop", fault="stall", after_frames=100)
    result = run(settings, run_for_s=30)
    seen_at, event = result.first("stopped delivering")
    # Detection delay: from the stalled camera's last frame to the report in the main process,
    # both on the host clock. The issue asks for a second; 3 s allows for a busy test machine.
    delay = seen_at - result.last_frame_host_s("faulty")
    detection_figures["last frame -> reported"] = delay
    assert 0 < delay < 3.0
    assert event.camera == "faulty" and "Check its cable and power" in event.message
    # The stall, not an earlier hiccup (the emulator still delivers the frame it was making).
    assert re.search(r"after frame (99|100) ", event.message), event.message
    info = assert_files_valid(result)
    assert result.first("ON_CAMERA_LOST = stop")[1].message.endswith("stopping the session")
    assert info["stop_reason"] == "camera 'faulty' lost ([Streaming] ON_CAMERA_LOST = stop)"
    assert any("stopped delivering" in error for error in info["errors"])
    # The stalled camera saw the stop while it waited (no TIMEOUT failure); both ended cleanly.
    assert {c["status"] for c in info["cameras"].values()} == {"ended"}
    assert info["cameras"]["faulty"]["frames_captured"] in (100, 101)


def test_with_continue_the_other_cameras_go_on_and_the_lost_one_fails_at_its_timeout(
    tmp_path: Path, no_leftovers
) -> None:
    settings = faulty_settings(tmp_path, "continue", fault="stall", after_frames=60)
    result = run(
        settings,
        run_for_s=30,
        until=lambda so_far: (  # the lost camera failed and the other went on a second after
            so_far.said("no frame within 2 s (TIMEOUT)")
            and so_far.arena_frames_at_loss is not None
            and so_far.arena_frames_at_end > so_far.arena_frames_at_loss + 30
        ),
    )
    result.first("stopped delivering")
    assert "the other cameras go on" in result.first("ON_CAMERA_LOST = continue")[1].message
    assert result.arena_frames_at_loss is not None
    assert result.arena_frames_at_end > result.arena_frames_at_loss + 30  # still streaming
    info = assert_files_valid(result)
    faulty, arena = info["cameras"]["faulty"], info["cameras"]["arena"]
    assert faulty["status"] == "failed" and "no frame within 2 s (TIMEOUT)" in faulty["end"]
    # The frames the emulator had already queued in the driver's buffers (at most half a second
    # at 100 Hz, BUFFERS = 0) when the trigger took effect still come: 62 on a loaded machine.
    assert 60 <= faulty["frames_captured"] < 60 + 50
    assert arena["status"] == "ended"
    assert "duration" not in (info["stop_reason"] or "") and "lost" not in info["stop_reason"]


def test_a_camera_closed_mid_stream_is_reported_and_stops_the_session(
    tmp_path: Path, no_leftovers, detection_figures
) -> None:
    settings = faulty_settings(tmp_path, "stop", fault="close", after_frames=80)
    result = run(settings, run_for_s=30)
    seen_at, event = result.first("stopped grabbing")
    detection_figures["last frame -> reported"] = seen_at - result.last_frame_host_s("faulty")
    assert seen_at - result.last_frame_host_s("faulty") < 3.0
    assert "stopped delivering frames after 80 frames" in event.message
    info = assert_files_valid(result)
    assert info["cameras"]["faulty"]["status"] == "failed"
    assert info["cameras"]["arena"]["status"] == "ended"
    assert info["stop_reason"] == "camera 'faulty' lost ([Streaming] ON_CAMERA_LOST = stop)"


def test_a_camera_that_comes_back_is_reported_again(tmp_path: Path, no_leftovers) -> None:
    settings = faulty_settings(tmp_path, "continue", fault="pause", after_frames=50, pause_s=1.5)
    result = run(settings, run_for_s=30, until=lambda so_far: so_far.said("delivers frames again"))
    lost_at, _ = result.first("stopped delivering")
    back_at, back = result.first("delivers frames again")
    assert back_at > lost_at and back.camera == "faulty"
    info = assert_files_valid(result)
    faulty = info["cameras"]["faulty"]
    assert faulty["status"] == "ended" and faulty["frames_captured"] > 50
    table = pd.read_csv(result.session / "faulty.frames.csv")
    assert table["frame_index"].tolist() == list(range(len(table)))  # the pause dropped nothing


def test_files_and_simulations_are_not_watched_for_stalls() -> None:
    # A synthetic camera is not a device: its branch never counts as lost, whatever it does.
    from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings

    assert not SyntheticCamera("s", SyntheticSettings()).live
    assert BaslerCamera("b", BaslerSettings()).live


# -- devices that are not there ----------------------------------------------------------------


def test_a_wrong_basler_serial_lists_the_cameras_found_and_starts_nothing(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera left]\nSOURCE = basler\nSERIAL = 40012345\n[Camera arena]\nSOURCE = synthetic\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--output-dir",
        str(tmp_path / "out"),
        env={"PYLON_CAMEMU": "2"},
    )
    assert result.returncode == 1
    assert "camera 'left': no Basler camera with serial number 40012345 (SERIAL)" in result.stderr
    assert "Emulation serial 0815-0000 (emulator); Emulation serial 0815-0001" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_realsense_device_is_reported_and_starts_nothing(tmp_path: Path) -> None:
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed")
    if len(rs.context().query_devices()):
        pytest.skip("a real RealSense device is connected")
    settings = write_settings(tmp_path, "[Camera top]\nSOURCE = realsense\nSERIAL = 918512345\n")
    result = run_cli(
        "--settings", str(settings), "--headless", "--output-dir", str(tmp_path / "out")
    )
    assert result.returncode == 1
    assert "camera 'top': no RealSense device with serial number 918512345" in result.stderr
    assert "No RealSense device found: check the USB cable" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
