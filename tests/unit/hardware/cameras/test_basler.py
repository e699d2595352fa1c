"""Basler cameras against pylon's own camera emulator (``PYLON_CAMEMU=2``: two emulated cameras).

pypylon's wheel carries the pylon runtime with its CamEmu transport layer, so these tests run the
real driver stack without hardware: listing, opening by serial, every setting, grabbing with
frame counters, triggers, failed buffers, the real open-field PNG frames fed through the emulator
and recorded bit for bit, and a three-camera run of the command line like IBL's rigs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

pytest.importorskip("pypylon", reason="pypylon is not installed (pip install pypylon)")

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.frames import FrameGeometry
from deeplabstream.hardware.cameras.base import CameraError
from deeplabstream.hardware.cameras.basler import (
    BaslerCamera,
    BaslerSettings,
    conversion_code,
    list_cameras,
)
from deeplabstream.hardware.cameras.clock import CounterUnwrapper
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.settings import load_settings
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

EMULATED = ("0815-0000", "0815-0001")
PNG_FOLDER = "dlc-openfield/labeled-data/m4s1"


def open_camera(**keys: object) -> BaslerCamera:
    camera = BaslerCamera("cam", BaslerSettings(**keys))  # type: ignore[arg-type]
    camera.open()
    return camera


def grab(camera: BaslerCamera, count: int, geometry: FrameGeometry) -> list:
    out = np.empty(geometry.shape, np.uint8)
    stamps = []
    for _ in range(count):
        stamp = camera.grab(out)
        assert stamp is not None
        stamps.append(stamp)
    return stamps


def session_json(folder: Path) -> dict:
    return json.loads((folder / "session.json").read_text(encoding="utf-8"))


def run_stream(settings_path: Path, output: Path, duration: float) -> LiveSession:
    stream = LiveSession(load_settings(settings_path), output_dir=output)
    runner = SessionRunner(stream, duration_s=duration, status_out=None)
    try:
        stream.open()
        stream.start_recording()
        stream.start()
        runner.run_headless()
    finally:
        stream.stop(runner.stop_reason or "test over")
    return stream


@pytest.fixture(scope="module")
def openfield_pngs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The open-field PNGs alone in a folder (the emulator must find only images there)."""
    source = shared_data(PNG_FOLDER)
    folder = tmp_path_factory.mktemp("pngs")
    pngs = sorted(source.glob("*.png"))
    for png in pngs:
        (folder / png.name).symlink_to(png)
    return [folder / png.name for png in pngs]


# -- listing and opening ---------------------------------------------------------------------


def test_the_emulated_cameras_are_listed_with_model_serial_and_interface() -> None:
    cameras = list_cameras()
    assert [c["serial"] for c in cameras] == list(EMULATED)
    assert {c["interface"] for c in cameras} == {"emulator"}
    assert all(c["model"] and c["vendor"] == "Basler" for c in cameras)


def test_python_m_cameras_basler_prints_the_cameras() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.hardware.cameras.basler"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYLON_CAMEMU": "2"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "serial", "user_name", "interface"]
    assert [line.split()[1] for line in lines[1:]] == list(EMULATED)


def test_a_camera_is_opened_by_serial_number() -> None:
    for serial in EMULATED:
        camera = open_camera(serial=serial)
        try:
            assert camera.describe()["serial"] == serial
        finally:
            camera.close()


def test_a_wrong_serial_number_lists_the_cameras_found() -> None:
    camera = BaslerCamera("left", BaslerSettings(serial="21234567"))
    with pytest.raises(CameraError) as error:
        camera.open()
    message = str(error.value)
    assert "no Basler camera with serial number 21234567" in message
    assert "Emulation serial 0815-0000" in message and "Emulation serial 0815-0001" in message


def test_two_cameras_and_no_serial_asks_which_one() -> None:
    with pytest.raises(CameraError, match="2 Basler cameras are connected; choose one"):
        BaslerCamera("left", BaslerSettings()).open()


def test_an_unknown_user_name_is_refused_with_the_list() -> None:
    with pytest.raises(CameraError, match=r"user name 'top' \(USER_NAME\).*0815-0001"):
        BaslerCamera("top", BaslerSettings(user_name="top")).open()


def test_serial_and_user_name_together_are_refused_in_the_settings(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path, "[Camera top]\nSOURCE = basler\nSERIAL = 0815-0000\nUSER_NAME = top\n"
    )
    with pytest.raises(SettingsError, match="give SERIAL or USER_NAME, not both"):
        load_settings(path)


# -- settings applied, and refused with the camera's range ------------------------------------


def test_every_setting_is_applied_and_read_back() -> None:
    camera = open_camera(
        serial=EMULATED[0],
        width=320,
        height=240,
        offset_x=16,
        offset_y=8,
        framerate=75,
        exposure=2000,
        gain=6,
        pixel_format="bgr8",
    )
    try:
        facts = camera.describe()
        node = camera._camera  # the pylon InstantCamera: what the camera itself says
        assert (node.Width.Value, node.Height.Value) == (320, 240)
        assert (node.OffsetX.Value, node.OffsetY.Value) == (16, 8)
        assert node.AcquisitionFrameRateAbs.Value == pytest.approx(75)
        assert node.ExposureTimeAbs.Value == pytest.approx(2000)  # the node the emulator obeys
        assert node.Gain.Value == pytest.approx(6, abs=0.01)
        assert node.PixelFormat.Value == "BGR8Packed"
        assert facts["camera_pixel_format"] == "BGR8Packed"
        assert (facts["width"], facts["height"], facts["offset_x"]) == (320, 240, 16)
        assert camera.nominal_fps == 75
    finally:
        camera.close()


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"width": 5000}, r"WIDTH = 5000 is refused: the camera allows 1 to 4096 px"),
        ({"framerate": 6000}, r"FRAMERATE = 6000 is refused: the camera allows 0\.01 to 5000 Hz"),
        ({"exposure": 5}, r"EXPOSURE = 5 is refused: the camera allows 100 to 3000000 µs"),
        ({"gain": 60}, r"GAIN = 60 is refused: the camera allows 0 to 48 dB"),
        (
            {"width": 4096, "offset_x": 3},
            r"OFFSET_X = 3 is refused: the camera allows 0 to 0 px \(with WIDTH = 4096\)",
        ),
        (
            {"camera_pixel_format": "YUV422_8"},
            r"CAMERA_PIXEL_FORMAT = YUV422_8 is refused: the "
            r"camera offers Mono8, Mono10.*BayerBG16",
        ),
        (
            {"camera_pixel_format": "Mono12"},
            r"Mono12 cannot be converted; of the camera's formats "
            r"these can: Mono8, BGR8Packed, RGB8Packed, BayerGR8",
        ),
    ],
)
def test_a_refused_setting_names_the_cameras_allowed_range(keys: dict, expected: str) -> None:
    camera = BaslerCamera("cam", BaslerSettings(serial=EMULATED[0], **keys))  # type: ignore[arg-type]
    with pytest.raises(CameraError, match=expected):
        camera.open()
    camera.close()


def test_emulator_images_are_refused_for_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "notes.csv").write_text("x")
    path = write_settings(
        tmp_path, f"[Camera top]\nSOURCE = basler\nEMULATOR_IMAGES = {tmp_path}\n"
    )
    with pytest.raises(SettingsError, match=r"must hold only images.*notes\.csv"):
        load_settings(path)


# -- grabbing ----------------------------------------------------------------------------------


def test_frames_carry_the_cameras_counter_and_the_host_time() -> None:
    camera = open_camera(serial=EMULATED[1], width=160, height=120, framerate=200, exposure=500)
    try:
        geometry = FrameGeometry(120, 160, 1)
        stamps = grab(camera, 50, geometry)
        facts = camera.describe()
    finally:
        camera.close()
    assert [s.frame_index for s in stamps] == list(range(50))  # the emulator's block IDs
    host = [s.host_timestamp_ns for s in stamps]
    assert host == sorted(host) and len(set(host)) == 50
    # The emulator has no clock: no camera time, and session.json says so.
    assert all(np.isnan(s.camera_timestamp) for s in stamps)
    assert facts["timestamp"] == "none" and facts["frame_counter"] == "block id"
    assert facts["frames"] == 50 and "clock" not in facts


def test_failed_buffers_are_dropped_frames_never_repeated_ones() -> None:
    camera = open_camera(serial=EMULATED[0], width=64, height=48, framerate=100, exposure=500)
    try:
        geometry = FrameGeometry(48, 64, 1)
        before = grab(camera, 5, geometry)
        camera._camera.ForceFailedBufferCount.Value = 3  # the emulator's fault injection
        camera._camera.ForceFailedBuffer.Execute()
        after = grab(camera, 5, geometry)
        facts = camera.describe()
    finally:
        camera.close()
    indices = [s.frame_index for s in before + after]
    assert indices == sorted(set(indices))  # no frame delivered twice
    assert sum(np.diff(indices) - 1) == 3  # the three failed buffers are gaps
    assert facts["failed_buffers"] == 3


def test_software_trigger_delivers_one_frame_per_trigger() -> None:
    camera = open_camera(serial=EMULATED[0], width=64, height=48, framerate=40, trigger="software")
    try:
        stamps = grab(camera, 20, FrameGeometry(48, 64, 1))
        node = camera._camera
        assert (node.TriggerMode.Value, node.TriggerSource.Value) == ("On", "Software")
    finally:
        camera.close()
    assert [s.frame_index for s in stamps] == list(range(20))


def test_a_hardware_trigger_waits_for_its_first_pulse_until_stopped() -> None:
    camera = open_camera(serial=EMULATED[1], width=64, height=48, trigger="line1", timeout=0.1)
    stop = threading.Event()
    camera.set_stop_check(stop.is_set)
    timer = threading.Timer(1.0, stop.set)  # ten times TIMEOUT: the first frame has no limit
    try:
        node = camera._camera
        assert (node.TriggerMode.Value, node.TriggerSource.Value) == ("On", "Line1")
        assert node.TriggerActivation.Value == "RisingEdge"
        assert not node.AcquisitionFrameRateEnable.Value  # the pulses set the rate
        timer.start()
        assert camera.grab(np.empty((48, 64), np.uint8)) is None  # stopped, not failed
    finally:
        timer.cancel()
        camera.close()


@pytest.mark.parametrize(
    ("camera_format", "bayer"),
    [("BayerRG8", "RGGB"), ("BayerBG8", "BGGR"), ("BayerGR8", "GRBG"), ("BayerGB8", "GBRG")],
)
def test_bayer_frames_are_demosaiced_to_the_emulated_colours(
    tmp_path: Path, camera_format: str, bayer: str
) -> None:
    image = np.zeros((96, 128, 3), np.uint8)
    image[:, :40] = (255, 40, 0)  # blue, green and red bands (BGR)
    image[:, 40:90] = (0, 255, 60)
    image[:, 90:] = (30, 0, 255)
    cv2.imwrite(str(tmp_path / "bands.png"), image)
    camera = open_camera(
        serial=EMULATED[0],
        width=128,
        height=96,
        pixel_format="bgr8",
        camera_pixel_format=camera_format,
        emulator_images=tmp_path,
    )
    try:
        out = np.empty((96, 128, 3), np.uint8)
        assert camera.grab(out) is not None
    finally:
        camera.close()
    assert conversion_code(camera_format, False) == getattr(cv2, f"COLOR_Bayer{bayer}2BGR")
    inner = (slice(2, -2), slice(2, 38))  # away from band edges, where demosaicing blends
    assert np.abs(out[inner].astype(int) - image[inner]).max() <= 2


def test_gige_block_ids_are_unwrapped_past_65535() -> None:
    unwrap = CounterUnwrapper(65535)  # GigE Vision block IDs run 1..65535
    assert [unwrap(raw) for raw in (65533, 65534, 65535, 1, 2)] == [
        65533,
        65534,
        65535,
        65536,
        65537,
    ]


# -- the open-field PNGs through the emulator, recorded bit for bit ------------------------------


def test_emulated_openfield_frames_are_recorded_bit_for_bit(
    tmp_path: Path, openfield_pngs: list[Path], no_leftovers
) -> None:
    folder = openfield_pngs[0].parent
    settings = write_settings(
        tmp_path,
        f"[Camera openfield]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 640\n"
        f"HEIGHT = 480\nFRAMERATE = 50\nEXPOSURE = 1000\nPIXEL_FORMAT = bgr8\n"
        f"EMULATOR_IMAGES = {folder}\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    stream = run_stream(settings, tmp_path / "out", duration=3.0)
    session = stream.session_dir
    assert session is not None
    info = session_json(session)["cameras"]["openfield"]
    table = pd.read_csv(session / "openfield.frames.csv")
    recorded = read_video(session / "openfield.mkv")
    assert len(recorded) == len(table) == info["frames_recorded"] == info["frames_captured"] > 60
    assert table["frame_index"].tolist() == list(range(len(table)))
    pngs = [cv2.imread(str(path)) for path in openfield_pngs]
    for index, frame in zip(table["frame_index"], recorded, strict=True):
        expected = pngs[index % len(pngs)]
        assert np.array_equal(frame, expected), f"frame {index} differs from its PNG"
    assert info["device"]["emulator_images"] == str(folder)


# -- two emulated cameras and the simulated arena, like IBL's three-camera rig ------------------


def test_two_emulated_cameras_stream_at_their_own_rates(tmp_path: Path, no_leftovers) -> None:
    settings = write_settings(
        tmp_path,
        f"[Camera slow]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 320\nHEIGHT = 240\n"
        "FRAMERATE = 30\nEXPOSURE = 1000\n"
        f"[Camera fast]\nSOURCE = basler\nSERIAL = {EMULATED[1]}\nWIDTH = 320\nHEIGHT = 256\n"
        "FRAMERATE = 120\nEXPOSURE = 1000\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    stream = run_stream(settings, tmp_path / "out", duration=3.0)
    session = stream.session_dir
    assert session is not None
    cameras = session_json(session)["cameras"]
    for name in ("slow", "fast"):
        info = cameras[name]
        table = pd.read_csv(session / f"{name}.frames.csv")
        frames = read_video(session / f"{name}.mkv", gray=True)
        assert len(frames) == len(table) == info["frames_recorded"] == info["frames_captured"]
        assert table["frame_index"].tolist() == list(range(len(table)))  # no frame dropped
        assert table["host_timestamp"].is_monotonic_increasing
        assert table["camera_timestamp"].isna().all()  # the emulator has no clock
        assert info["device"]["serial"] in EMULATED and info["device"]["timestamp"] == "none"
    assert cameras["fast"]["nominal_fps"] == 120 and cameras["slow"]["nominal_fps"] == 30
    assert cameras["fast"]["frames_captured"] > cameras["slow"]["frames_captured"]


@pytest.mark.slow
def test_three_camera_rig_records_every_frame_of_every_camera(tmp_path: Path) -> None:
    """Two emulated Baslers at 60 and 150 Hz and the simulated arena at 30 Hz for 10 s."""
    settings = write_settings(
        tmp_path,
        # A busy shared test machine may pause a process for a moment: only a real stall
        # should stop this run.
        "[Streaming]\nCAMERA_LOST_AFTER = 3\n"
        f"[Camera left]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 640\nHEIGHT = 512\n"
        "FRAMERATE = 60\nEXPOSURE = 1000\n"
        f"[Camera body]\nSOURCE = basler\nSERIAL = {EMULATED[1]}\nWIDTH = 640\nHEIGHT = 512\n"
        "FRAMERATE = 150\nEXPOSURE = 1000\n"
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"
        "[Recording]\nCODEC = h264\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--recording-enabled",
        "--duration",
        "10",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=180,
        env={"PYLON_CAMEMU": "2"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    session = only_session(tmp_path / "out")
    info = session_json(session)
    assert info["status"] == "finished" and info["errors"] == []
    for name in ("left", "body", "arena"):
        camera = info["cameras"][name]
        table = pd.read_csv(session / f"{name}.frames.csv")
        frames = read_video(session / f"{name}.mp4", gray=name != "arena")
        assert len(frames) == len(table) == camera["frames_recorded"] == camera["frames_captured"]
        assert camera["frames_dropped"] == camera["frames_lost_in_recording"] == 0
        assert table["frame_index"].tolist() == list(range(len(table)))
        assert f"{name}: {camera['frames_captured']} frames captured" in result.stdout
    counts = [info["cameras"][name]["frames_captured"] for name in ("arena", "left", "body")]
    assert counts == sorted(counts)  # 30 < 60 < 150 Hz


SMALL_RIG = (
    "[Streaming]\nCAMERA_LOST_AFTER = 3\n"
    f"[Camera left]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 320\nHEIGHT = 256\n"
    "FRAMERATE = 60\nEXPOSURE = 1000\n"
    f"[Camera right]\nSOURCE = basler\nSERIAL = {EMULATED[1]}\nWIDTH = 320\nHEIGHT = 256\n"
    "FRAMERATE = 150\nEXPOSURE = 1000\nFLIP = true\n"
    "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"
)


def _check_three_cameras(session: Path, recorded_from_start: bool = True) -> None:
    info = session_json(session)
    assert info["status"] == "finished" and info["errors"] == []
    for name in ("left", "right", "arena"):
        camera = info["cameras"][name]
        frames = read_video(session / f"{name}.mp4", gray=name != "arena")
        assert len(frames) == camera["frames_recorded"] > 0
        assert camera["frames_lost_in_recording"] == 0
        if recorded_from_start:  # else recording began after the stream, as in the app
            assert camera["frames_recorded"] == camera["frames_captured"]
        analysed = info["pose"]["cameras"][name]["frames_analysed"]
        pose = pd.read_csv(session / f"{name}.pose.csv", header=[0, 1, 2], index_col=0)
        pose = pose.dropna(how="all")  # the frames analysed (the others are empty rows)
        assert len(pose) == analysed > 0
        assert pose.index.isin(range(camera["frames_captured"])).all()


@pytest.mark.slow  # tens of seconds: CI's second step
def test_done_when_two_emulated_baslers_and_the_arena_stream_analyse_and_record(
    tmp_path: Path,
) -> None:
    settings = write_settings(tmp_path, SMALL_RIG)
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--recording-enabled",
        "--duration",
        "3",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=180,
        env={"PYLON_CAMEMU": "2"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _check_three_cameras(only_session(tmp_path / "out"))


@pytest.mark.slow  # a whole replay or window session (the default suite keeps under 15 min)
def test_done_when_the_same_rig_runs_in_the_app(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deeplabstream.app.gui.main_window import MainWindow
    from deeplabstream.app.gui.session import Part

    monkeypatch.setenv("PYLON_CAMEMU", "2")
    monkeypatch.setenv("DEEPLABSTREAM_LOCK_FILE", str(tmp_path / "lock"))
    window = MainWindow(write_settings(tmp_path, SMALL_RIG), tmp_path / "out")
    window.show()  # (not qtbot.addWidget: it would delete the window while it still closes)
    controller = window.controller
    for part in (Part.STREAM, Part.ANALYSIS, Part.RECORDING):
        controller.start(part)
        qtbot.waitUntil(
            lambda p=part: controller.busy is None and controller.running(p), timeout=90_000
        )
    assert sorted(window.view_side.live_view.views) == ["arena", "left", "right"]  # one tile each
    qtbot.waitUntil(
        lambda: all(
            view.pose_frame_index is not None for view in window.view_side.live_view.views.values()
        ),
        timeout=20_000,
    )
    qtbot.wait(2000)
    window.close()  # stops in the background; the window goes once the files are final
    qtbot.waitUntil(lambda: window.closed_down, timeout=90_000)
    _check_three_cameras(only_session(tmp_path / "out"), recorded_from_start=False)
