"""Deleting a rule, a region's animal and descriptions that follow a keypoint mapping
(experiments/config/edit.py), on copies of the shipped example config."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from deeplabstream.experiments.config.edit import (
    ConfigEditError,
    ConfigText,
    RegionSpec,
    animal_words,
    edited_text,
    read_regions,
    rename_words,
    save_keypoint_mapping,
    save_regions,
)
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER
from deeplabstream.experiments.triggers.geometry import Circle

EXAMPLE = CONFIG_FOLDER / "ExampleExperiment.ini"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ExampleExperiment.ini"
    shutil.copy(EXAMPLE, path)
    return path


# ------------------------------------------------------------------------------- deleting rules


def test_a_rule_is_listed_for_its_region_and_deleted_with_its_own_stimulation(
    config: Path,
) -> None:
    text = ConfigText(config.read_text())
    assert text.rules_of("nose_in_left") == ["left_entry"]
    assert text.describe_rule("left_entry") == (
        "left_entry: when nose_in_left becomes true, do left_stimulus, start a trial"
    )
    assert text.delete_rule("left_entry") == ["[Rule left_entry]", "[Stimulation left_stimulus]"]
    assert text.delete_rule("left_entry") == []  # gone already: nothing more to remove
    assert "left_entry" not in text.text and "left_stimulus" not in text.text
    assert "[Rule right_entry]" in text.text and "[Stimulation right_stimulus]" in text.text
    assert text.users_of("nose_in_left") == []


def test_a_stimulation_another_rule_does_stays_when_a_rule_goes(config: Path) -> None:
    config.write_text(
        config.read_text() + "\n[Rule left_exit]\nWHEN = nose_in_left\nEDGE = falling\n"
        "DO = left_stimulus\n"
    )
    text = ConfigText(config.read_text())
    assert text.rules_of("nose_in_left") == ["left_entry", "left_exit"]
    assert text.delete_rule("left_entry") == ["[Rule left_entry]"]
    assert "[Stimulation left_stimulus]" in text.text


def test_saving_with_a_deleted_rule_lets_its_region_go_and_keeps_the_rest(config: Path) -> None:
    _, right = read_regions(config)
    with pytest.raises(ConfigEditError, match="left_entry"):
        save_regions(config, [right])  # the rule still names it
    save_regions(config, [right], deleted_rules=["left_entry"])
    loaded = load_experiment_config(config)
    assert set(loaded.triggers) == {"nose_in_right"}
    assert [rule.name for rule in loaded.rules] == ["right_entry"]
    assert set(loaded.stimulations) == {"right_stimulus"}
    assert config.read_text().startswith("# DeepLabStream's example experiment")


# ------------------------------------------------------------------------------------- animals


def test_a_regions_animal_is_read_written_and_left_out_for_animal_one(config: Path) -> None:
    text = config.read_text()
    left, right = read_regions(config)
    assert left.animal is None
    each = RegionSpec(left.trigger, None, left.shape, left.keypoint, animal="each")
    written = edited_text(text, [each, right])
    assert [line for line in written.splitlines() if line not in text.splitlines()] == [
        "ANIMAL = each"
    ]
    assert ConfigText(written).regions()[0].animal == "each"
    back = edited_text(written, [RegionSpec(left.trigger, None, left.shape, "nose"), right])
    assert "ANIMAL = 1" in back  # the file had a key: it says animal 1 now
    assert edited_text(text, [left, right]) == text  # animal 1 unwritten stays unwritten
    new = RegionSpec("zone", None, Circle(1, 2, 3), "nose", animal="any")
    assert "ANIMAL = any" in ConfigText(edited_text(text, [left, right, new])).text
    assert [animal_words(a) for a in (None, "2", "any", "each")] == [
        "animal 1", "animal 2", "any animal", "each animal",
    ]  # fmt: skip


# -------------------------------------------------------------------------------- descriptions


@pytest.mark.parametrize(
    ("text", "mapping", "expected"),
    [
        ("Count the nose's entries", {"nose": "head"}, "Count the head's entries"),
        ("Nose in the zone", {"nose": "snout"}, "Snout in the zone"),
        ("nosey tail base, tail_base", {"nose": "head", "tail_base": "tailbase"},
         "nosey tailbase, tailbase"),
        ("nose then head", {"nose": "head", "head": "neck"}, "head then neck"),  # one pass
        ("left_ear near leftear", {"ear": "pinna"}, "left_ear near leftear"),  # whole names only
    ],
)  # fmt: skip
def test_descriptions_say_the_new_keypoint_names(
    text: str, mapping: dict[str, str], expected: str
) -> None:
    assert rename_words(text, mapping) == expected


def test_saving_a_mapping_rewrites_the_description_with_the_keypoints(config: Path) -> None:
    changes = save_keypoint_mapping(config, {"nose": "head"})
    text = config.read_text()
    assert "DESCRIPTION = Count the head's entries into two regions" in text
    assert "nose's" not in text and text.count("KEYPOINT = head") == 2
    assert any(line.startswith("[Experiment] DESCRIPTION = Count the head's") for line in changes)
    described = load_experiment_config(config).experiment.description
    assert described.startswith("Count the head's entries")
    assert text.startswith("# DeepLabStream's example experiment")  # comments kept


def test_saving_regions_that_change_what_the_rules_do_rewrites_the_description(
    config: Path,
) -> None:
    """Issue 63 #7: after the window's edits the description still said "a 1 s stimulus per
    region"; it goes into events.csv and session.json."""
    left, right = read_regions(config)
    assert left.action is None  # read as it is: the rules unchanged
    moved = RegionSpec(left.trigger, left.camera, Circle(200, 240, 50), left.keypoint)
    save_regions(config, [moved, right])  # moved only: what the rules do is the same
    assert "a 1 s stimulus per region" in config.read_text()
    action = ConfigText(config.read_text()).region_action("nose_in_left")
    assert action is not None
    short = replace(action, duration_s=0.05)  # the window's pulse made 50 ms
    save_regions(config, [replace(moved, action=short), right])
    described = load_experiment_config(config).experiment.description
    assert "1 s stimulus" not in described
    assert described == (
        "When nose_in_left becomes true: pulse 50 ms on stimulus_box channel 1, a trial starts; "
        "when nose_in_right becomes true: pulse 1000 ms on stimulus_box channel 2, a trial starts"
    )
    save_regions(config, [right], deleted_rules=["left_entry"])  # a rule deleted
    assert load_experiment_config(config).experiment.description == (
        "When nose_in_right becomes true: pulse 1000 ms on stimulus_box channel 2, a trial starts"
    )
    assert config.read_text().startswith("# DeepLabStream's example experiment")  # comments kept
