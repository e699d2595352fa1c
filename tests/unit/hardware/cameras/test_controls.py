"""Live camera controls on real cameras: pylon's emulator, a RealSense software device, the
simulated arena and a video file (which has none).

Each camera lists its controls with its own limits, takes a value within them while it grabs
and says what it kept, and refuses a value outside them (or a control fixed while streaming) with
a message naming the camera, the control and the allowed range.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings
from deeplabstream.hardware.cameras.video import VideoCamera, VideoSettings
from tests.support.files import make_ffv1_video
from tests.support.lab_folders import lab_plugin

needs_pylon = pytest.mark.skipif(
    importlib.util.find_spec("pypylon") is None, reason="pypylon is not installed"
)
needs_realsense = pytest.mark.skipif(
    importlib.util.find_spec("pyrealsense2") is None, reason="pyrealsense2 is not installed"
)


def by_name(camera: Camera) -> dict[str, CameraControl]:
    return {control.name: control for control in camera.controls()}


def grab(camera: Camera, geometry: FrameGeometry, count: int = 1) -> list[Any]:
    out = np.empty(geometry.shape, geometry.dtype)
    return [camera.grab(out) for _ in range(count)]


# -- Basler (pylon's camera emulator) ---------------------------------------------------------


@needs_pylon
def test_basler_lists_its_controls_with_the_cameras_limits() -> None:
    from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings

    camera = BaslerCamera("cam", BaslerSettings(serial="0815-0000", width=320, height=240))
    try:
        camera.open()
        controls = by_name(camera)
    finally:
        camera.close()
    assert {"exposure", "gain", "framerate", "width", "height", "offset_x", "offset_y"} <= set(
        controls
    )
    exposure = controls["exposure"]
    # The emulator's ExposureTime takes 1 µs up, its older ExposureTimeAbs 100 µs: both are set,
    # so the range offered is where they overlap.
    assert (exposure.minimum, exposure.maximum) == (100.0, 3_000_000.0)
    assert exposure.unit == "µs" and exposure.live and exposure.key == "EXPOSURE"
    assert controls["gain"].unit == "dB" and controls["gain"].key == "GAIN"
    assert controls["framerate"].value == pytest.approx(30.0)
    assert controls["framerate"].minimum == 1.0  # slower would leave TIMEOUT (2 s) unmet
    width = controls["width"]
    assert (width.value, width.step, width.live, width.key) == (320.0, 1.0, False, "WIDTH")


@needs_pylon
def test_basler_takes_exposure_gain_and_rate_while_grabbing() -> None:
    from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings

    camera = BaslerCamera("cam", BaslerSettings(serial="0815-0000", width=320, height=240))
    try:
        geometry = camera.open()
        grab(camera, geometry, 2)
        assert camera.set_control("exposure", 2000.0) == pytest.approx(2000.0)
        gain = camera.set_control("gain", 3.3)
        assert gain == pytest.approx(3.3, abs=0.01)  # the camera rounds to its own steps
        assert camera.set_control("framerate", 55.5) == pytest.approx(55.5)
        assert camera.nominal_fps == pytest.approx(55.5)
        grab(camera, geometry, 2)  # still streaming
        controls = by_name(camera)
        assert controls["exposure"].value == pytest.approx(2000.0)
        assert controls["gain"].value == pytest.approx(gain)
        assert camera.describe()["exposure_us"] == pytest.approx(2000.0)
    finally:
        camera.close()


@needs_pylon
def test_basler_refuses_out_of_range_and_fixed_controls_with_the_range() -> None:
    from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings

    camera = BaslerCamera("cam", BaslerSettings(serial="0815-0000", width=320, height=240))
    try:
        geometry = camera.open()
        grab(camera, geometry)
        with pytest.raises(CameraError, match=r"camera 'cam'.*Exposure.*100 to 3000000 µs"):
            camera.set_control("exposure", 5_000_000)
        with pytest.raises(CameraError, match=r"Gain = -1 is refused.*0 to 48 dB"):
            camera.set_control("gain", -1)
        with pytest.raises(CameraError, match=r"Width.*next Start Stream \(WIDTH"):
            camera.set_control("width", 160)
        with pytest.raises(CameraError, match=r"no control 'zoom'.*exposure, gain"):
            camera.set_control("zoom", 2)
        assert by_name(camera)["exposure"].value == pytest.approx(10_000.0)  # unchanged
    finally:
        camera.close()


# -- RealSense (the SDK's software device) ----------------------------------------------------


def _add_options(rig: Any) -> None:
    """Give a software rig's colour sensor exposure and gain, as a D435's RGB sensor has."""
    import pyrealsense2 as rs

    # pyrealsense2's option_range takes (min, max, default, step) in this order.
    sensor = rig._colour_sensor
    sensor.add_option(rs.option.exposure, rs.option_range(1, 10000, 156, 1), True)
    sensor.add_option(rs.option.gain, rs.option_range(0, 128, 64, 1), True)
    sensor.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)


def _software_rig(options: bool) -> Any:
    """A software RealSense with a colour sensor; with ``options``, exposure and gain on it."""
    from tests.unit.hardware.cameras.test_realsense import SoftwareRig

    rig = SoftwareRig(width=320, height=240, fps=30)
    if options:
        _add_options(rig)
    return rig


if importlib.util.find_spec("pyrealsense2") is not None:
    from tests.unit.hardware.cameras.test_realsense import SoftwareRealSense, SoftwareRig

    class OptionsRig(SoftwareRig):
        """A software rig whose colour sensor has exposure and gain."""

        def __init__(self, *args: Any, **keys: Any) -> None:
            super().__init__(*args, **keys)
            _add_options(self)

    class SoftwareRealSenseWithOptions(SoftwareRealSense):
        """The project's RealSense camera on an :class:`OptionsRig`, in a capture process."""

        rig_class = OptionsRig


@needs_realsense
def test_realsense_software_device_by_itself_offers_no_controls() -> None:
    from deeplabstream.hardware.cameras.realsense import RealSenseCamera, RealSenseSettings

    rig = _software_rig(options=False)
    camera = RealSenseCamera("rs", RealSenseSettings(width=320, height=240), device=rig.device)
    try:
        camera.open()
        assert camera.controls() == ()  # its only option, the frame queue size, is no control
        with pytest.raises(CameraError, match="no control 'exposure'"):
            camera.set_control("exposure", 100)
    finally:
        camera.close()
        rig.stop()


@needs_realsense
def test_realsense_sets_the_options_its_sensor_has_while_streaming() -> None:
    from deeplabstream.hardware.cameras.realsense import RealSenseCamera, RealSenseSettings

    rig = _software_rig(options=True)
    settings = RealSenseSettings(width=320, height=240, depth=False)
    camera = RealSenseCamera("rs", settings, device=rig.device)
    try:
        geometry = camera.open()
        controls = by_name(camera)
        assert set(controls) == {"exposure", "gain"}
        exposure = controls["exposure"]
        assert (exposure.minimum, exposure.maximum, exposure.step) == (1, 10000, 1)
        assert (exposure.value, exposure.unit, exposure.key) == (156, "µs", "EXPOSURE")
        assert controls["gain"].key == ""  # no settings key: live only
        rig.start()
        grab(camera, geometry, 2)
        assert camera.set_control("exposure", 200.4) == 200  # rounded to the option's step
        assert camera.set_control("gain", 32) == 32
        assert by_name(camera)["exposure"].value == 200
        assert camera.settings.exposure == 200
        grab(camera, geometry, 2)
        with pytest.raises(CameraError, match=r"camera 'rs'.*Exposure = 20000.*1 to 10000 µs"):
            camera.set_control("exposure", 20000)
    finally:
        camera.close()
        rig.stop()


@needs_realsense
def test_realsense_exposure_is_set_through_the_capture_process(
    tmp_path: Path, no_leftovers: None
) -> None:
    import dataclasses

    from deeplabstream.live.session.live import LiveSession
    from deeplabstream.settings import load_settings
    from tests.support.files import write_settings
    from tests.unit.hardware.cameras.test_realsense import SoftwareRealSenseSettings

    settings = load_settings(
        write_settings(
            tmp_path,
            "[Camera top]\nSOURCE = realsense\nWIDTH = 320\nHEIGHT = 240\nDEPTH = false\n",
        )
    )
    camera = settings.cameras[0]
    options = SoftwareRealSenseSettings(**dataclasses.asdict(camera.options))
    # The camera as a lab's module beside the settings (settings never name a file).
    source = lab_plugin(tmp_path, "cameras", SoftwareRealSenseWithOptions)
    camera = dataclasses.replace(camera, source=source, options=options)
    stream = LiveSession(dataclasses.replace(settings, cameras=(camera,)), output_dir=tmp_path)
    try:
        stream.open()
        # The camera's own two, then what every camera gets in its capture process.
        orientation = {"mirror_horizontal", "mirror_vertical", "rotate"}
        assert {c.name for c in stream.camera_controls("top")} == {"exposure", "gain"} | orientation
        stream.start()
        assert stream.set_camera_control("top", "exposure", 300.0) == 300.0
        assert {c.name: c.value for c in stream.camera_controls("top")}["exposure"] == 300.0
        with pytest.raises(CameraError, match=r"Gain = 500.*0 to 128"):
            stream.set_camera_control("top", "gain", 500.0)
    finally:
        stream.stop("test over")


# -- synthetic and video ----------------------------------------------------------------------


def test_synthetic_changes_its_rate_and_time_goes_on_without_a_jump() -> None:
    camera = SyntheticCamera("arena", SyntheticSettings(width=64, height=48, framerate=100.0))
    try:
        geometry = camera.open()
        controls = by_name(camera)
        assert controls["framerate"].live and controls["framerate"].maximum == 1000
        assert not controls["width"].live and controls["width"].key == "WIDTH"
        before = grab(camera, geometry, 3)
        assert camera.set_control("framerate", 50.0) == 50.0
        after = grab(camera, geometry, 3)
    finally:
        camera.close()
    assert camera.nominal_fps == 50.0
    times = [stamp.camera_timestamp for stamp in before + after]
    steps = np.diff(times)
    # Frames 0-2 at 100 Hz, then each next one 1/50 s after the one before.
    assert steps == pytest.approx([0.01, 0.01, 0.02, 0.02, 0.02])
    hosts = [stamp.host_timestamp_ns for stamp in before + after]
    assert hosts == sorted(hosts)


def test_synthetic_exposure_is_bounded_by_the_frame_interval() -> None:
    camera = SyntheticCamera("arena", SyntheticSettings(width=64, height=48, framerate=50.0))
    try:
        geometry = camera.open()
        grab(camera, geometry)
        assert by_name(camera)["exposure"].maximum == 20.0  # 1000 / 50 ms
        assert camera.set_control("exposure", 5.0) == 5.0
        assert camera.exposure_ns == 5_000_000
        assert by_name(camera)["framerate"].maximum == 200.0  # now bounded by the exposure
        with pytest.raises(CameraError, match=r"camera 'arena'.*Frame rate = 400.*0.1 to 200 Hz"):
            camera.set_control("framerate", 400)
        with pytest.raises(CameraError, match="Height cannot change while streaming"):
            camera.set_control("height", 100)
    finally:
        camera.close()


def test_a_video_file_has_no_controls(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    make_ffv1_video(path, 3, width=64, height=48)
    camera = VideoCamera("clip", VideoSettings(path=path))
    try:
        camera.open()
        assert camera.controls() == ()
        with pytest.raises(CameraError, match=r"camera 'clip' has no control 'exposure'.*none"):
            camera.set_control("exposure", 1.0)
    finally:
        camera.close()


def test_opencv_reads_the_properties_its_backend_reports(tmp_path: Path) -> None:
    import cv2

    from deeplabstream.hardware.cameras.opencv import OpenCVCamera, OpenCVSettings, _read_controls

    path = tmp_path / "clip.mkv"
    make_ffv1_video(path, 3, width=64, height=48, fps=25)
    capture = cv2.VideoCapture(str(path))
    try:
        values = _read_controls(capture)  # a file stands in for a device: same calls
    finally:
        capture.release()
    assert values["framerate"] == 25 and (values["width"], values["height"]) == (64, 48)
    camera = OpenCVCamera("file", OpenCVSettings(device=str(path)))
    try:
        camera.open()
        assert camera.controls() == ()  # a file is not a device: nothing to change
    finally:
        camera.close()
