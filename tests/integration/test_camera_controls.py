"""Live camera controls through the whole stream: the window's panel -> LiveSession -> the capture
process -> the camera, and back, with real processes, a simulated camera and pylon's emulator."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt5.QtWidgets import QCheckBox, QDoubleSpinBox, QGroupBox, QLabel

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

from deeplabstream.app.gui.camera_controls import CameraControlsPanel
from deeplabstream.hardware.cameras.base import CameraError
from deeplabstream.live.session.live import LiveSession
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

ARENA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 64\nHEIGHT = 48\nFRAMERATE = 50\n"
BASLER = "[Camera side]\nSOURCE = basler\nSERIAL = 0815-0000\nWIDTH = 320\nHEIGHT = 240\n"


@pytest.fixture
def streaming(tmp_path: Path, no_leftovers: None) -> Iterator[LiveSession]:
    """A streaming session of the simulated arena; stopped (and checked for leftovers) after."""
    stream = LiveSession(load_settings(write_settings(tmp_path, ARENA)), output_dir=tmp_path)
    try:
        stream.open()
        stream.start()
        yield stream
    finally:
        stream.stop("test over")


def entry_of(stream: LiveSession, camera: str) -> dict:
    assert stream.session_dir is not None
    info = json.loads((stream.session_dir / "session.json").read_text(encoding="utf-8"))
    return info["cameras"][camera]


def device_of(stream: LiveSession, camera: str) -> dict:
    return entry_of(stream, camera)["device"]


def test_a_control_set_through_the_capture_process_reaches_the_camera(
    streaming: LiveSession,
) -> None:
    controls = {c.name: c for c in streaming.camera_controls("arena")}
    assert controls["framerate"].value == 50.0 and controls["framerate"].live
    assert controls["exposure"].maximum == 20.0  # 1000 / 50 ms, from the opened camera
    assert streaming.set_camera_control("arena", "exposure", 4.0) == 4.0
    assert streaming.set_camera_control("arena", "framerate", 100.0) == 100.0
    controls = {c.name: c for c in streaming.camera_controls("arena")}
    assert controls["exposure"].value == 4.0 and controls["framerate"].value == 100.0
    assert controls["framerate"].maximum == 250.0  # bounded by the new exposure
    with pytest.raises(CameraError, match=r"camera 'arena'.*Frame rate = 400.*0.1 to 250 Hz"):
        streaming.set_camera_control("arena", "framerate", 400.0)
    with pytest.raises(CameraError, match="Width cannot change while streaming"):
        streaming.set_camera_control("arena", "width", 128)
    with pytest.raises(CameraError, match="no camera 'nope'"):
        streaming.set_camera_control("nope", "exposure", 1.0)
    streaming.stop("test over")
    assert device_of(streaming, "arena")["exposure_ms"] == 4.0  # what the camera ended with
    assert entry_of(streaming, "arena")["nominal_fps"] == 100.0  # the rate it ran at last
    with pytest.raises(CameraError, match="only while streaming"):
        streaming.set_camera_control("arena", "exposure", 2.0)


@pytest.mark.skipif(importlib.util.find_spec("pypylon") is None, reason="pypylon is not installed")
def test_basler_emulator_exposure_and_gain_change_while_streaming(
    qtbot, tmp_path: Path, no_leftovers: None
) -> None:
    stream = LiveSession(load_settings(write_settings(tmp_path, BASLER)), output_dir=tmp_path)
    try:
        stream.open()
        limits = {c.name: c for c in stream.camera_controls("side")}
        assert (limits["exposure"].minimum, limits["exposure"].maximum) == (100, 3_000_000)
        assert not limits["width"].live and limits["width"].value == 320
        stream.start()
        assert stream.set_camera_control("side", "exposure", 2500.0) == pytest.approx(2500.0)
        gain = stream.set_camera_control("side", "gain", 6.0)
        assert gain == pytest.approx(6.0, abs=0.01)
        with pytest.raises(CameraError, match=r"Exposure = 5000000 is refused.*100 to 3000000"):
            stream.set_camera_control("side", "exposure", 5e6)
        panel = CameraControlsPanel()
        qtbot.addWidget(panel)
        panel.attach(stream)
        labels = " | ".join(label.text() for label in panel.findChildren(QLabel))
        assert "Exposure (µs) (limits 100-3000000)" in labels
        saved = panel.values_to_save("side")
        assert set(saved) == {"EXPOSURE", "GAIN", "FRAMERATE", "WIDTH", "HEIGHT"} | {
            "OFFSET_X",
            "OFFSET_Y",
            "MIRROR",  # every camera can be mirrored and turned in its capture process
            "ROTATE",
        }
        assert (saved["EXPOSURE"], saved["WIDTH"], saved["FRAMERATE"]) == ("2500", "320", "30")
    finally:
        stream.stop("test over")
    device = device_of(stream, "side")
    assert device["exposure_us"] == pytest.approx(2500.0)
    assert device["gain_db"] == pytest.approx(gain)


def test_the_panel_applies_live_controls_and_keeps_the_others_for_saving(
    qtbot, streaming: LiveSession
) -> None:
    panel = CameraControlsPanel()
    qtbot.addWidget(panel)
    panel.attach(streaming)
    panel.show()
    group = panel.findChild(QGroupBox, "controls_arena")
    assert group is not None
    exposure = panel.findChild(QDoubleSpinBox, "control_arena_exposure")
    width = panel.findChild(QDoubleSpinBox, "control_arena_width")
    error = panel.findChild(QLabel, "camera_controls_error")
    assert exposure.maximum() == 20.0 and exposure.suffix() == " ms"
    labels = " | ".join(label.text() for label in group.findChildren(QLabel))
    assert "Exposure (0: whole frame) (ms) (limits 0-20)" in labels
    assert "Width (px) (limits 32-8192), applies at next Start Stream" in labels

    exposure.setValue(5.0)
    exposure.editingFinished.emit()
    assert {c.name: c.value for c in streaming.camera_controls("arena")}["exposure"] == 5.0
    framerate = panel.findChild(QDoubleSpinBox, "control_arena_framerate")
    assert framerate.maximum() == 200.0  # the camera's new limit reached the box
    assert error.text() == ""

    width.setValue(128)
    width.editingFinished.emit()  # not live: nothing is sent
    assert {c.name: c.value for c in streaming.camera_controls("arena")}["width"] == 64
    mirror = panel.findChild(QCheckBox, "control_arena_mirror_horizontal")  # on/off: a tick
    assert panel.findChild(QDoubleSpinBox, "control_arena_mirror_horizontal") is None
    assert not mirror.isChecked()
    mirror.setChecked(True)  # live: the capture process mirrors from the next frame
    assert {c.name: c.value for c in streaming.camera_controls("arena")}["mirror_horizontal"] == 1
    assert panel.values_to_save("arena") == {
        "GAIN": "0",
        "FRAMERATE": "50",
        "EXPOSURE": "5",
        "WIDTH": "128",
        "HEIGHT": "48",
        "ROTATE": "0",
        "MIRROR": "horizontal",
    }

    streaming.stop("test over")
    with qtbot.waitSignal(panel.failed) as failure:
        exposure.setValue(2.0)
        exposure.editingFinished.emit()
    assert "only while streaming" in failure.args[0]
    assert "only while streaming" in error.text()
    assert exposure.value() == 5.0  # the camera's value, not the refused one
    panel.attach(None)
    assert panel.findChild(QGroupBox, "controls_arena") is None
