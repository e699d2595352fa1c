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
        assert not {"white_balance_red", "white_balance_blue"} & set(
            controls
        )  # none on the emulator
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


class _Node:
    """A GenICam feature as pylon shows one: a value, its limits, writable."""

    def __init__(self, value: float | str, low: float = 0.0, high: float = 0.0, symbolics=()):
        self.Value, self._low, self._high, self.Symbolics = value, low, high, tuple(symbolics)

    def GetMin(self) -> float:  # noqa: N802 - pylon's names
        return self._low

    def GetMax(self) -> float:  # noqa: N802
        return self._high

    def HasInc(self) -> bool:  # noqa: N802
        return False


class _ColourCameraNodes:
    """A colour Basler's white-balance features: one BalanceRatio behind a channel selector."""

    def __init__(self) -> None:
        self.ratios = {"Red": 1.2, "Green": 1.0, "Blue": 1.6}
        self.selector = _Node("Red", symbolics=("Red", "Green", "Blue"))
        self.auto = _Node("Continuous", symbolics=("Off", "Once", "Continuous"))
        outer = self

        class Ratio(_Node):
            @property
            def Value(self) -> float:  # noqa: N802
                return outer.ratios[outer.selector.Value]

            @Value.setter
            def Value(self, value: float) -> None:  # noqa: N802
                outer.ratios[outer.selector.Value] = value

        self.nodes = {
            "BalanceRatioSelector": self.selector,
            "BalanceRatio": Ratio(0.0, 0.0, 15.98),  # (its start value went to the red channel)
            "BalanceWhiteAuto": self.auto,
        }
        self.ratios = {"Red": 1.2, "Green": 1.0, "Blue": 1.6}

    def GetNodeMap(self):  # noqa: N802
        return self

    def GetNode(self, name: str):  # noqa: N802
        return self.nodes.get(name)


class _GenICam:
    GenericException = RuntimeError

    @staticmethod
    def IsAvailable(node) -> bool:  # noqa: N802
        return node is not None

    IsReadable = IsWritable = IsAvailable


@needs_pylon
def test_basler_white_balance_per_channel_where_the_camera_has_it_mock_node_map() -> None:
    """A mock node map: pylon's emulator has no white balance, and no colour Basler is here.

    The features and their behaviour (one BalanceRatio behind BalanceRatioSelector,
    BalanceWhiteAuto) are those pylon documents for colour cameras.
    """
    from deeplabstream.hardware.cameras.basler import BaslerCamera, BaslerSettings
    from deeplabstream.hardware.cameras.genicam_nodes import NodeMap

    camera = BaslerCamera("cam", BaslerSettings(serial="0815-0000"))
    nodes = _ColourCameraNodes()
    camera._camera, camera._genicam = nodes, _GenICam
    camera._node_map = NodeMap(nodes, _GenICam, lambda: camera._label)  # what open() makes
    controls = {control.name: control for control in camera._white_balance_controls()}
    assert set(controls) == {"white_balance_red", "white_balance_blue"}
    assert controls["white_balance_red"].value == pytest.approx(1.2)
    assert controls["white_balance_blue"].value == pytest.approx(1.6)
    assert controls["white_balance_blue"].maximum == pytest.approx(15.98)
    kept = camera.set_control("white_balance_blue", 2.5)
    assert kept == pytest.approx(2.5)
    assert nodes.ratios == {"Red": 1.2, "Green": 1.0, "Blue": 2.5}  # only blue changed
    assert nodes.auto.Value == "Off"  # automatic white balance would undo it
    with pytest.raises(CameraError, match="White balance red"):
        camera.set_control("white_balance_red", 20.0)
    del nodes.nodes["BalanceRatioSelector"]  # a mono camera
    assert camera._white_balance_controls() == ()


def test_the_simulated_arena_has_a_gain_that_scales_its_pixels_live() -> None:
    """Frame 0 of the same seed at 0 dB and at +6 dB: every pixel times 10^(6/20), clipped."""
    from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings

    def first_frames(gain_db: float, then_db: float | None = None) -> list[np.ndarray]:
        settings = SyntheticSettings(width=96, height=64, seed=3, pacing="free", gain=gain_db)
        camera = SyntheticCamera("arena", settings)
        geometry = camera.open()
        try:
            frames = [np.empty(geometry.shape, geometry.dtype) for _ in range(2)]
            camera.grab(frames[0])
            if then_db is not None:
                assert camera.set_control("gain", then_db) == then_db
            camera.grab(frames[1])
            return frames
        finally:
            camera.close()

    plain = first_frames(0.0)
    brighter = first_frames(6.0)
    expected = np.clip(np.round(plain[0].astype(float) * 10 ** (6 / 20)), 0, 255)
    assert np.array_equal(brighter[0], expected.astype(np.uint8))
    assert brighter[0].mean() > plain[0].mean()
    changed = first_frames(0.0, then_db=-6.0)  # live: the next frame is darker
    assert np.array_equal(changed[0], plain[0])
    darker = np.clip(np.round(plain[1].astype(float) * 10 ** (-6 / 20)), 0, 255)
    assert np.array_equal(changed[1], darker.astype(np.uint8))
    with pytest.raises(CameraError, match="Gain"):
        first_frames(0.0, then_db=40.0)
