"""Camera detection for the rig panel: what it finds opens with the keys it gives, and a missing
library, a failing driver or an absent device never breaks it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PYLON_CAMEMU", "2")  # before pylon starts: two emulated cameras

from deeplabstream.hardware.cameras import detect
from deeplabstream.hardware.cameras.detect import DetectedCamera, detect_cameras
from deeplabstream.settings import load_settings
from tests.support.files import write_settings


def section(name: str, camera: DetectedCamera) -> str:
    keys = "".join(f"{key} = {value}\n" for key, value in camera.keys.items())
    return f"[Camera {name}]\n{keys}"


def test_the_simulated_arena_is_always_offered_and_its_keys_load(tmp_path: Path) -> None:
    found = detect_cameras()
    assert found[-1].source == "synthetic"
    assert found[-1].keys == {"SOURCE": "synthetic"}
    settings = load_settings(write_settings(tmp_path, section("arena", found[-1])))
    assert settings.camera("arena").source == "synthetic"


def test_missing_libraries_and_failing_probes_find_nothing_but_never_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(detect, "_installed", lambda module: False)
    assert detect.detect_basler() == [] and detect.detect_realsense() == []

    def broken() -> list[DetectedCamera]:
        raise RuntimeError("the driver fell over")

    monkeypatch.setattr(detect, "detect_opencv", broken)
    assert [camera.source for camera in detect_cameras()] == ["synthetic"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux device nodes")
def test_opencv_tries_only_the_indices_that_have_a_device_node() -> None:
    absent = [i for i in range(detect.OPENCV_INDICES) if not Path(f"/dev/video{i}").exists()]
    found = detect.detect_opencv()
    assert all(camera.keys["DEVICE"] not in map(str, absent) for camera in found)
    assert all(camera.keys["SOURCE"] == "opencv" for camera in found)


@pytest.mark.skipif(importlib.util.find_spec("pypylon") is None, reason="pypylon is not installed")
def test_the_basler_emulator_is_found_and_its_keys_open_it(tmp_path: Path) -> None:
    from deeplabstream.hardware.cameras.basler import BaslerCamera

    basler = [camera for camera in detect_cameras() if camera.source == "basler"]
    assert [camera.keys["SERIAL"] for camera in basler] == ["0815-0000", "0815-0001"]
    assert all("emulator" in camera.label for camera in basler)
    settings = load_settings(write_settings(tmp_path, section("side", basler[1])))
    camera_settings = settings.camera("side")
    camera = BaslerCamera("side", camera_settings.options)
    try:
        camera.open()
        assert camera.describe()["serial"] == "0815-0001"
    finally:
        camera.close()


def test_elsewhere_than_linux_every_index_is_tried_mock_capture_emulated_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS and Windows have no /dev/videoN: every index is opened (sys.platform emulated)."""
    import cv2

    tried: list[object] = []

    class Capture:  # records what would be opened; no camera is plugged in here
        def __init__(self, index: object) -> None:
            tried.append(index)

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    assert detect.detect_opencv() == []
    assert tried == list(range(detect.OPENCV_INDICES))
    assert detect._opencv_absent() == (
        f"no OpenCV device 0 to {detect.OPENCV_INDICES - 1} delivered a frame"
    )
