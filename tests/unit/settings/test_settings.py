"""settings.ini: typed values, and one clear message for every kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deeplabstream.core.schema import key_of, settings_fields
from deeplabstream.settings import SettingsError, load_settings, settings_as_dict
from deeplabstream.settings.loader import (
    CHECKOUT_SETTINGS_FILE,
    PACKAGED_SETTINGS_FILE,
    SECTION_CLASSES,
)
from tests.support.files import make_ffv1_video, write_settings
from tests.support.paths import PROJECT_ROOT


def _problems(path: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    return caught.value.problems


def test_the_shipped_settings_load_with_the_simulated_arena() -> None:
    settings = load_settings()
    assert settings.source_file == CHECKOUT_SETTINGS_FILE
    (camera,) = settings.cameras
    assert camera.source == "synthetic"
    assert camera.options.framerate == 30
    assert settings.recording.codec == "h264"
    assert settings.output.directory == PROJECT_ROOT / "sessions"
    json.dumps(settings_as_dict(settings))  # session.json can hold it


def test_several_cameras_paths_relative_to_the_file_and_defaults(tmp_path: Path) -> None:
    make_ffv1_video(tmp_path / "clip.mkv", 3)
    path = write_settings(
        tmp_path,
        """
[Camera left]
SOURCE = synthetic
FRAMERATE = 60
PIXEL_FORMAT = mono8
[Camera right]
SOURCE = video
PATH = clip.mkv
LOOP = yes
[Output]
DIRECTORY = out
""",
    )
    settings = load_settings(path)
    assert [c.name for c in settings.cameras] == ["left", "right"]
    left, right = settings.cameras
    assert left.options.framerate == 60.0 and left.options.pixel_format == "mono8"
    assert right.options.path == tmp_path / "clip.mkv"
    assert right.options.loop is True
    assert settings.output.directory == tmp_path / "out"
    assert settings.streaming.buffer_seconds == 2.0  # section absent: defaults


def test_missing_file_names_it(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path / "nope.ini")
    assert "nope.ini" in problem and "not found" in problem and "--settings" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[Camera a]\nSOURCE = synthetic\n[Streming]\n",
            r"\[Streming\]: unknown section.*Streaming",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\nFRAMRATE = 30\n",
            r"\[Camera a\] FRAMRATE: unknown key.*FRAMERATE",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\nFRAMERATE = fast\n",
            r"\[Camera a\] FRAMERATE = 'fast': expected a number from 0.1 to 1000 Hz",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\nWIDTH = 20000\n",
            r"\[Camera a\] WIDTH = '20000': expected a whole number from 32 to 8192",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\n[Recording]\nCODEC = mpeg2\n",
            r"\[Recording\] CODEC = 'mpeg2': expected one of h264, ffv1",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\n[Streaming]\nBUFFER_SECONDS = -1\n",
            r"BUFFER_SECONDS = '-1': expected a number from 0.1 to 60 s",
        ),
        (
            "[Camera a]\nSOURCE = synthetic\n[Recording]\nWARN_FREE_SPACE = 0.5\n",
            r"\[Recording\]: WARN_FREE_SPACE \(0.5 GB\) must be at least MIN_FREE_SPACE",
        ),
        (
            "[Camera a]\nSOURCE = webcam9000\n",
            r"SOURCE = 'webcam9000': unknown camera 'webcam9000'; known: .*synthetic",
        ),
        ("[Camera a]\nWIDTH = 640\n", r"\[Camera a\] SOURCE: missing"),
        ("[Camera bad name!]\nSOURCE = synthetic\n", r"camera name 'bad name!' is not allowed"),
        ("[Streaming]\nBUFFER_SECONDS = 1\n", r"no camera"),
        ("[Camera a]\nSOURCE = video\nPATH = missing.mp4\n", r"\[Camera a\] PATH.*not found"),
        (
            "[Camera a]\nSOURCE = synthetic\n[Recording]\nCRF = 1.5\n",
            r"CRF = '1.5': expected a whole",
        ),
        ("[Camera a]\nSOURCE = synthetic\nSEED = 1\nSEED = 2\n", r"cannot be read as an ini file"),
        ("not an ini file at all", r"cannot be read as an ini file"),
    ],
)
def test_each_kind_of_bad_input_gets_its_message(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text, encoding="utf-8")
    problems = _problems(path)
    joined = "\n".join(problems)
    assert re.search(expected, joined), joined
    assert str(path) in joined  # every message names the file


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(
        "[Camera a]\nSOURCE = synthetic\nWIDTH = -5\nHEIGHT = x\n[Recording]\nPRESET = turbo\n",
        encoding="utf-8",
    )
    problems = _problems(path)
    assert len(problems) == 3
    assert str(SettingsError(problems)).startswith("Invalid settings:")


def test_values_are_data_never_code(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path, "[Camera a]\nSOURCE = synthetic\nSEED = __import__('os').getpid()\n"
    )
    assert any("SEED" in p for p in _problems(path))
    path = write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\n[Experiment]\nNAME = %(x)s\n")
    assert load_settings(path).experiment.name == "%(x)s"  # no interpolation


def test_every_key_is_documented() -> None:
    from deeplabstream.hardware.cameras import CAMERAS, camera_class

    text = (PROJECT_ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    classes = list(SECTION_CLASSES.values()) + [
        camera_class(source).settings_class for source in CAMERAS.builtin_names()
    ]
    for cls in classes:
        for field in settings_fields(cls):
            assert f"`{key_of(field)}`" in text, f"{cls.__name__}.{key_of(field)} not documented"


def test_settings_reference_is_generated_from_the_code() -> None:
    from deeplabstream.offline.reference.settings import REFERENCE_FILE, render_reference

    assert REFERENCE_FILE.read_text(encoding="utf-8") == render_reference(), (
        "docs/settings.md is out of date: run python -m deeplabstream.offline.reference.settings"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[Device box]\nTYPE = log\nPORT = /dev/ttyACM0\n",
            r"\[Device box\] PORT: unknown key\. Allowed in this section: CHANNELS, TYPE",
        ),
        (
            "[Device box]\nTYPE = laser\n",
            r"\[Device box\] TYPE = 'laser': unknown stimulation device 'laser'; known: gpio",
        ),
        ("[Device box]\nTYPE = serial\n", r"\[Device box\]: TYPE = serial needs PORT"),
        ("[Device box]\nTYPE = gpio\nPINS =\n", r"\[Device box\]: TYPE = gpio needs PINS"),
        ("[Device box]\nCHANNELS = 0\n", r"\[Device box\] CHANNELS = '0': expected a whole"),
    ],
)
def test_a_device_section_is_checked_against_its_own_type(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\n" + text)
    joined = "\n".join(_problems(path))
    assert re.search(expected, joined), joined
    assert str(path) in joined


def test_each_device_type_reads_its_own_keys(tmp_path: Path) -> None:
    from deeplabstream.hardware.stimulation.gpio import GpioSettings
    from deeplabstream.hardware.stimulation.log_device import LogSettings
    from deeplabstream.hardware.stimulation.visual import VisualSettings

    path = write_settings(
        tmp_path,
        "[Camera a]\nSOURCE = synthetic\n[Device dry]\nCHANNELS = 4\n"
        "[Device pins]\nTYPE = GPIO\nPINS = 17, GPIO27\nACTIVE_HIGH = false\n"
        "[Device screen]\nTYPE = visual\nCOLORS = black, white\nWINDOW_WIDTH = 320\n",
    )
    devices = load_settings(path).devices
    assert devices["dry"].type == "log" and devices["dry"].options == LogSettings(channels=4)
    assert devices["pins"].options == GpioSettings(pins=("17", "GPIO27"), active_high=False)
    assert devices["screen"].options == VisualSettings(colors=("black", "white"), window_width=320)
    gpio = devices["pins"].create()
    assert gpio.pins == [17, "GPIO27"] and gpio.active_high is False
    assert devices["screen"].create().config.window_size == (320, 600)
    data = settings_as_dict(load_settings(path))["devices"]
    assert data["dry"] == {"TYPE": "log", "CHANNELS": 4}


def test_every_device_key_is_documented() -> None:
    from deeplabstream.hardware.stimulation import DEVICES, device_class

    text = (PROJECT_ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for kind in DEVICES.builtin_names():
        assert f"### TYPE = {kind}" in text
        for field in settings_fields(device_class(kind).settings_class):
            assert f"`{key_of(field)}`" in text, f"{kind}: {key_of(field)} not documented"


def test_the_repositorys_settings_ini_is_the_embedded_default() -> None:
    """A pip-installed app starts from the packaged default: the checkout's file is its copy."""
    assert CHECKOUT_SETTINGS_FILE.read_text() == PACKAGED_SETTINGS_FILE.read_text(), (
        "settings.ini and src/deeplabstream/settings/default_settings.ini differ: change both"
    )
