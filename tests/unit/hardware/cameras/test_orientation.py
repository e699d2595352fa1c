"""Turning and mirroring frames in the capture process: geometry, pixels, live mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.hardware.cameras.base import Camera, CameraError
from deeplabstream.hardware.cameras.orientation import OrientedCamera, mirror_setting, turned
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera
from deeplabstream.settings import load_settings
from tests.support.files import write_settings


def _labelled(height: int = 3, width: int = 4) -> np.ndarray:
    """A frame whose every pixel holds its own (row, column) label."""
    return (np.arange(height)[:, None] * 10 + np.arange(width)[None, :]).astype(np.uint8)


@pytest.mark.parametrize(
    ("rotate", "mirror", "expected_corner"),
    [
        (0, "off", 0),  # top left stays row 0, column 0
        (90, "off", 20),  # clockwise: the bottom-left pixel comes to the top left
        (180, "off", 23),
        (270, "off", 3),
        (0, "horizontal", 3),
        (0, "vertical", 20),
        (0, "both", 23),
    ],
)
def test_turned_frames_put_the_right_pixel_in_the_corner(
    rotate: int, mirror: str, expected_corner: int
) -> None:
    frame = _labelled()
    view = turned(frame, rotate, mirror)
    assert view[0, 0] == expected_corner
    assert view.shape == ((4, 3) if rotate in (90, 270) else (3, 4))


def _synthetic(tmp_path, extra: str = "") -> Camera:
    text = f"[Camera a]\nSOURCE = synthetic\nWIDTH = 64\nHEIGHT = 48\n{extra}"
    settings = load_settings(write_settings(tmp_path, text))
    camera = settings.camera("a")
    return SyntheticCamera(camera.name, camera.options)


def test_a_camera_turned_by_90_degrees_delivers_tall_frames(tmp_path) -> None:
    plain = _synthetic(tmp_path)
    oriented = OrientedCamera(_synthetic(tmp_path), rotate=90)
    assert plain.open() == FrameGeometry(48, 64, 3)
    geometry = oriented.open()
    assert geometry == FrameGeometry(64, 48, 3)
    straight = np.empty((48, 64, 3), np.uint8)
    tall = np.empty(geometry.shape, np.uint8)
    assert plain.grab(straight) is not None and oriented.grab(tall) is not None
    np.testing.assert_array_equal(tall, np.rot90(straight, k=-1))  # same seed, same frame
    assert oriented.describe()["rotate"] == 90
    plain.close()
    oriented.close()


def test_mirroring_switches_while_streaming_and_rotation_waits_for_a_restart(tmp_path) -> None:
    camera = OrientedCamera(_synthetic(tmp_path))
    camera.open()
    controls = {control.name: control for control in camera.controls()}
    assert controls["mirror_horizontal"].live and controls["mirror_horizontal"].value == 0
    assert not controls["rotate"].live and controls["rotate"].key == "ROTATE"
    assert camera.set_control("mirror_horizontal", 1) == 1.0
    assert camera.set_control("mirror_vertical", 1) == 1.0
    assert camera.mirror == "both"
    assert camera.set_control("mirror_horizontal", 0) == 0.0
    assert camera.mirror == "vertical"
    with pytest.raises(CameraError, match="next Start Stream"):
        camera.set_control("rotate", 90)
    camera.close()


def test_settings_accept_right_angles_only(tmp_path) -> None:
    from deeplabstream.core.errors import SettingsError

    with pytest.raises(SettingsError, match="ROTATE"):
        load_settings(write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\nROTATE = 45\n"))
    settings = load_settings(
        write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\nROTATE = 270\nMIRROR = both\n")
    )
    assert (settings.camera("a").common.rotate, settings.camera("a").common.mirror) == (270, "both")
    assert mirror_setting(True, False) == "horizontal" and mirror_setting(False, False) == "off"
