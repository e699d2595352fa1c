"""Issue 38 #7: brightness and white balance where the camera has them, within its limits.

pylon's camera emulator has a black level (the brightness of its image) but no white balance:
it is offered the first and not the second. OpenCV offers what its backend reports (a file,
standing in for a device, reports neither).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

from deeplabstream.hardware.cameras.base import CameraError
from tests.support.files import make_ffv1_video

needs_pylon = pytest.mark.skipif(
    importlib.util.find_spec("pypylon") is None, reason="pypylon is not installed"
)


@needs_pylon
def test_basler_offers_its_black_level_as_brightness_and_takes_it_while_grabbing() -> None:
    from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings

    camera = BaslerCamera("cam", BaslerSettings(serial="0815-0000", width=320, height=240))
    try:
        geometry = camera.open()
        controls = {control.name: control for control in camera.controls()}
        brightness = controls["brightness"]
        assert brightness.live and brightness.minimum < brightness.maximum
        assert "white_balance" not in controls  # the emulator has no white balance
        out = np.empty(geometry.shape, geometry.dtype)
        camera.grab(out)
        wanted = brightness.minimum + (brightness.maximum - brightness.minimum) / 2
        kept = camera.set_control("brightness", wanted)
        assert abs(kept - wanted) <= max(brightness.step, 1e-6)
        camera.grab(out)  # still grabbing
        with pytest.raises(CameraError, match="Brightness"):
            camera.set_control("brightness", brightness.maximum + 1000)
    finally:
        camera.close()


def test_opencv_reads_brightness_and_white_balance_only_where_reported(tmp_path: Path) -> None:
    import cv2

    from deeplabstream.hardware.cameras.opencv import CONTROL_PROPERTIES, _read_controls

    assert CONTROL_PROPERTIES["brightness"][0] == cv2.CAP_PROP_BRIGHTNESS
    assert CONTROL_PROPERTIES["white_balance"][0] == cv2.CAP_PROP_WB_TEMPERATURE
    path = tmp_path / "clip.mkv"
    make_ffv1_video(path, 3, width=64, height=48, fps=25)
    capture = cv2.VideoCapture(str(path))
    try:
        values = _read_controls(capture)
    finally:
        capture.release()
    # What the backend does not know (-1) is left out; what it reports is offered as read.
    assert values["framerate"] == 25 and -1.0 not in values.values()
