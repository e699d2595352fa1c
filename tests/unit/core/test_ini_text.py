"""Editing ini files as text: only the lines meant change; comments and order stay."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from deeplabstream.core.ini_text import IniText, save_with_backup

TEXT = """; A comment at the top
[Streaming]
BUFFER_SECONDS = 2.0
; why the display rate is low
DISPLAY_RATE = 30

; the arena camera
[Camera arena]
SOURCE = synthetic
WIDTH = 640

[Experiment]
NAME = ExampleExperiment
"""


def test_reading_finds_sections_and_keys_case_insensitively() -> None:
    text = IniText(TEXT)
    assert text.sections() == ["Streaming", "Camera arena", "Experiment"]
    assert text.get("Streaming", "display_rate") == "30"
    assert text.get("Camera arena", "HEIGHT", "none") == "none"
    assert text.items("Camera arena") == {"SOURCE": "synthetic", "WIDTH": "640"}
    assert text.items("Missing") == {}


def test_setting_a_value_changes_one_line_and_keeps_every_comment() -> None:
    text = IniText(TEXT)
    text.set("Streaming", "display_rate", "15")
    text.set("Camera arena", "HEIGHT", "480")
    expected = (
        TEXT.replace("DISPLAY_RATE = 30", "DISPLAY_RATE = 15")
        .replace("WIDTH = 640\n", "WIDTH = 640\nHEIGHT = 480\n")
    )
    assert text.text() == expected


def test_sections_are_added_removed_and_renamed() -> None:
    text = IniText(TEXT)
    text.add_section("Camera side", {"SOURCE": "video", "PATH": "side.mp4"}, comment="side view")
    assert text.text().endswith("\n; side view\n[Camera side]\nSOURCE = video\nPATH = side.mp4\n")
    assert text.remove_section("Camera arena")
    assert "; the arena camera" not in text.text().split("[Experiment]")[1]
    assert "SOURCE = synthetic" not in text.text()
    text.rename_section("Camera side", "Camera left")
    assert text.get("Camera left", "PATH") == "side.mp4"
    with pytest.raises(ValueError, match="exists already"):
        text.add_section("Camera left", {})
    assert text.remove("Experiment", "NAME") and not text.remove("Experiment", "NAME")


def test_a_setting_of_a_missing_section_makes_the_section() -> None:
    text = IniText("")
    text.set("Session", "ANIMAL", "mouse12")
    assert text.text() == "[Session]\nANIMAL = mouse12\n"


def test_a_value_must_be_one_line() -> None:
    with pytest.raises(ValueError, match="one line"):
        IniText(TEXT).set("Streaming", "DISPLAY_RATE", "1\n[Evil]")


def test_saving_keeps_the_previous_file_as_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "settings.ini"
    assert save_with_backup(path, "first\n") is None
    backup = save_with_backup(path, "second\n")
    assert backup == tmp_path / "settings.ini.bak"
    assert backup.read_text() == "first\n"
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.ini", "settings.ini.bak"]


def test_a_new_key_goes_after_the_last_key_and_comments_of_the_next_section_stay() -> None:
    text = IniText("[A]\nX = 1\n; about B\n\n[B]\nY = 2\n")
    text.set("A", "Z", "3")
    assert text.text() == "[A]\nX = 1\nZ = 3\n; about B\n\n[B]\nY = 2\n"
    text.remove_section("A")
    assert text.text() == "; about B\n\n[B]\nY = 2\n"


def test_a_key_keeps_its_spelling_and_a_duplicate_section_is_kept_for_the_loader() -> None:
    text = IniText("[Pose]\nModel_Path = a.onnx\n")
    text.set("Pose", "MODEL_PATH", "b.onnx")
    assert text.text() == "[Pose]\nModel_Path = b.onnx\n"
    assert IniText("[A]\nX = 1\n[A]\nX = 2\n").text() == "[A]\nX = 1\n[A]\nX = 2\n"


def test_text_that_is_no_ini_file_is_refused() -> None:
    with pytest.raises(configparser.Error):
        IniText("KEY = before any section\n")
