""""What Start will run" names each camera's own model (issue 37 pt 3: one resolution)."""

from __future__ import annotations

from pathlib import Path

from deeplabstream.app.gui.rig_check import summary_lines
from deeplabstream.settings.loader import parse_settings_text
from tests.support.paths import PROJECT_ROOT

PAIR_MODEL = PROJECT_ROOT / "src" / "deeplabstream" / "pose" / "bundled" / "arena-pair"

SETTINGS = f"""
[Camera top]
SOURCE = synthetic

[Camera side]
SOURCE = synthetic
MODEL_PATH = {PAIR_MODEL}
"""


def test_a_camera_with_its_own_model_says_so_and_the_shared_model_is_named(
    tmp_path: Path,
) -> None:
    settings = parse_settings_text(SETTINGS, tmp_path / "settings.ini")
    lines = summary_lines(settings)
    side = next(line for line in lines if line.startswith("camera side:"))
    top = next(line for line in lines if line.startswith("camera top:"))
    assert f"its own model {PAIR_MODEL}" in side
    assert "own model" not in top
    assert "model: the bundled arena model" in lines  # top's, the shared one


def test_with_every_camera_on_its_own_model_no_shared_model_is_listed(tmp_path: Path) -> None:
    text = SETTINGS.replace("[Camera top]\nSOURCE = synthetic\n", "")
    lines = summary_lines(parse_settings_text(text, tmp_path / "settings.ini"))
    assert not any(line.startswith("model:") for line in lines)
