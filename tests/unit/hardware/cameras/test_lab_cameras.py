"""The lab's cameras/ folder: the shipped example camera, used by name from a settings file.

The example (``cameras/moving_dot.py`` at the repository's top) is copied into a ``cameras/``
folder beside a settings file, as a lab keeps it, loaded by ``SOURCE = moving_dot`` and run: its
keys are parsed and checked like every camera's, and it delivers paced frames of a moving dot.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.settings import SettingsError, load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "cameras" / "moving_dot.py"


def lab_folder(tmp_path: Path) -> Path:
    """A lab's folder: its settings file beside ``cameras/moving_dot.py``."""
    (tmp_path / "cameras").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "cameras" / "moving_dot.py")
    return tmp_path


@pytest.mark.parametrize("source", ["moving_dot", "moving_dot:MovingDotCamera"])
def test_the_example_camera_runs_by_name_from_the_labs_folder(tmp_path: Path, source: str) -> None:
    folder = lab_folder(tmp_path)
    settings = load_settings(
        write_settings(
            folder,
            f"[Camera rig]\nSOURCE = {source}\nWIDTH = 160\nHEIGHT = 120\n"
            "FRAMERATE = 50\nPERIOD_S = 0.5\n",
        )
    )
    camera_settings = settings.cameras[0]
    camera = camera_settings.camera_class()(camera_settings.name, camera_settings.options)
    assert type(camera).__name__ == "MovingDotCamera"
    assert camera.lock_keys(camera_settings.options) == ()
    geometry = camera.open()
    assert geometry == FrameGeometry(120, 160, 3)
    frames = []
    stamps = []
    for _ in range(5):
        out = np.zeros(geometry.shape, np.uint8)
        stamps.append(camera.grab(out))
        frames.append(out)
    camera.close()
    assert [stamp.frame_index for stamp in stamps] == [0, 1, 2, 3, 4]
    # Paced by the camera: a frame never arrives before it is due (1/50 s apart).
    assert all(
        b.host_timestamp_ns - stamps[0].host_timestamp_ns >= b.frame_index * 20_000_000 - 1_000_000
        for b in stamps
    )
    bright = [np.argwhere(frame[..., 0] == 250).mean(axis=0) for frame in frames]
    assert all(np.linalg.norm(b - a) > 1 for a, b in itertools.pairwise(bright))


def test_the_example_cameras_keys_are_checked_like_every_cameras(tmp_path: Path) -> None:
    folder = lab_folder(tmp_path)
    path = write_settings(folder, "[Camera rig]\nSOURCE = moving_dot\nFRAMERATE = 0\nZOOM = 2\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    text = str(info.value)
    assert f"{path}: [Camera rig] FRAMERATE = '0': expected a number from 1 to 500 Hz" in text
    assert f"{path}: [Camera rig] ZOOM: unknown key" in text and "PERIOD_S" in text


def test_a_camera_the_labs_folder_lacks_lists_what_there_is(tmp_path: Path) -> None:
    folder = lab_folder(tmp_path)
    path = write_settings(folder, "[Camera rig]\nSOURCE = moving_dots\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    text = str(info.value)
    assert f"{path}: [Camera rig] SOURCE = 'moving_dots': unknown camera 'moving_dots'" in text
    assert "known: basler, opencv, realsense, synthetic, video" in text
    assert f"in {folder / 'cameras'}: moving_dot." in text


def test_the_example_camera_streams_in_a_real_session(tmp_path: Path) -> None:
    """A real DeepLabStream.py run: the capture process finds the lab's camera by name too.

    Its options are a class of a module imported from a file, which a capture process cannot
    import by name: they cross to it by value (``CameraSettings.__reduce__``).
    """
    folder = lab_folder(tmp_path)
    settings = write_settings(folder, "[Camera rig]\nSOURCE = moving_dot\nFRAMERATE = 30\n")
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "dls.lock")}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--frames", "30", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [session] = list((tmp_path / "out").iterdir())
    camera = json.loads((session / "session.json").read_text())["cameras"]["rig"]
    assert camera["source"] == "moving_dot" and camera["frames_captured"] == 30
