"""Line-based editing of an experiment config's regions (experiments/config/edit.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deeplabstream.experiments.config.edit import (
    ConfigEditError,
    ConfigText,
    RegionSpec,
    edited_text,
    read_regions,
    save_regions,
)
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER, config_file_of
from deeplabstream.experiments.triggers.geometry import Circle, Polygon, Rectangle

EXAMPLE = CONFIG_FOLDER / "ExampleExperiment.ini"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ExampleExperiment.ini"
    shutil.copy(EXAMPLE, path)
    return path


def test_reading_and_writing_back_unchanged_keeps_every_byte(config: Path) -> None:
    text = config.read_text()
    regions = read_regions(config)
    assert [r.trigger for r in regions] == ["nose_in_left", "nose_in_right"]
    assert regions[0] == RegionSpec("nose_in_left", None, Circle(160, 240, 60), "nose")
    assert ConfigText(text).text == text
    assert edited_text(text, regions) == text


def test_shape_and_camera_change_only_their_lines(config: Path) -> None:
    text = config.read_text()
    left, right = read_regions(config)
    new_left = RegionSpec(left.trigger, "arena", Rectangle(10, 20, 110, 220), left.keypoint)
    backup = save_regions(config, [new_left, right])
    new_text = config.read_text()
    assert backup == config.with_name("ExampleExperiment.ini.bak")
    assert backup.read_text() == text  # the previous file is kept
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    assert [line for line in old_lines if line not in new_lines] == ["SHAPE = circle 160 240 60"]
    assert [line for line in new_lines if line not in old_lines] == [
        "SHAPE = rect 10 20 110 220",
        "CAMERA = arena",
    ]
    # every comment survives
    assert [line for line in old_lines if line.startswith("#")] == [
        line for line in new_lines if line.startswith("#")
    ]
    loaded = load_experiment_config(config)
    assert loaded.triggers["nose_in_left"].params["shape"] == "rect 10 20 110 220"
    assert loaded.triggers["nose_in_left"].params["camera"] == "arena"
    # and CAMERA goes away again with None
    save_regions(config, [RegionSpec(left.trigger, None, left.shape, left.keypoint), right])
    assert config.read_text() == text


def test_a_new_region_is_a_section_of_its_own(config: Path) -> None:
    regions = read_regions(config)
    polygon = Polygon(((1, 1), (50, 1), (25, 40)))
    save_regions(config, [*regions, RegionSpec("region_1", "top", polygon, "nose")])
    text = config.read_text()
    section = "[Trigger region_1]\nKIND = region\nSHAPE = polygon 1,1 50,1 25,40\nCAMERA = top\n"
    assert section in text
    assert "KEYPOINT = nose\nMODE = inside\n" in text
    assert text.index("[Trigger region_1]") < text.index("[Stimulation left_stimulus]")
    loaded = load_experiment_config(config)
    assert loaded.triggers["region_1"].kind == "region"
    assert read_regions(config)[-1] == RegionSpec("region_1", "top", polygon, "nose")


def test_deleting_a_region_a_rule_uses_is_refused_with_the_rule_named(config: Path) -> None:
    text = config.read_text()
    left, _ = read_regions(config)
    with pytest.raises(ConfigEditError, match=r"nose_in_right.*\[Rule right_entry\] WHEN"):
        save_regions(config, [left])
    assert config.read_text() == text
    assert not config.with_name("ExampleExperiment.ini.bak").exists()


def test_deleting_an_unused_region_removes_its_section_and_comments(config: Path) -> None:
    regions = read_regions(config)
    save_regions(config, [*regions, RegionSpec("spare", None, Circle(5, 5, 5), "nose")])
    save_regions(config, regions)
    assert config.read_text() == EXAMPLE.read_text()
    text = config.read_text().replace(
        "[Trigger nose_in_right]",
        "# the spare one\n[Trigger spare]\nKIND = region\n"
        "SHAPE = circle 5 5 5\n\n[Trigger nose_in_right]",
    )
    config.write_text(text)
    save_regions(config, regions)
    assert config.read_text() == EXAMPLE.read_text()


def test_a_combinator_also_keeps_its_region(tmp_path: Path) -> None:
    text = (
        "[Trigger a]\nKIND = region\nSHAPE = circle 1 1 1\n\n"
        "[Trigger b]\nKIND = not\nOF = a\n\n"
        "[Stimulation s]\nDEVICE = d\nCOMMAND = on\n\n"
        "[Rule r]\nWHEN = b\nDO = s\n"
    )
    with pytest.raises(ConfigEditError, match=r"\[Trigger b\] OF = a"):
        edited_text(text, [])


def test_a_change_that_would_not_load_leaves_the_file_untouched(config: Path) -> None:
    text = config.read_text()
    left, right = read_regions(config)
    bad = RegionSpec("region_1", None, Circle(1, 1, 1), "has space")
    with pytest.raises(ConfigEditError, match=r"(?s)would not load.*KEYPOINT = .has space"):
        save_regions(config, [left, right, bad])
    assert config.read_text() == text
    assert not config.with_name("ExampleExperiment.ini.bak").exists()
    assert not list(config.parent.glob(".*.tmp"))


def test_the_registry_names_the_file_to_edit(tmp_path: Path) -> None:
    assert config_file_of("ExampleExperiment") == EXAMPLE
    assert config_file_of("ExampleExperiment.ini") == EXAMPLE
    own = tmp_path / "mine.ini"
    own.write_text(EXAMPLE.read_text())
    assert config_file_of(str(own)) == own.resolve()
    assert config_file_of("examples:AlternatingReward") is None
    assert config_file_of("AlternatingReward") is None
    assert config_file_of("some/file.py") is None
