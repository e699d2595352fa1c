"""Which keypoints an experiment reads, renaming them in a config, and a region's action rule."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.experiments.config.edit import (
    NO_ACTION,
    ConfigEditError,
    ConfigText,
    RegionAction,
    RegionSpec,
    edited_text,
    read_regions,
    save_keypoint_mapping,
    save_regions,
)
from deeplabstream.experiments.config.parse import load_experiment_config, parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import MissingKeypointError, Observation
from deeplabstream.experiments.registry import CONFIG_FOLDER, load_experiment
from deeplabstream.experiments.triggers import TRIGGER_KINDS
from deeplabstream.experiments.triggers.base import keypoints_of
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.kinds import keypoint_parameters

EXAMPLE = CONFIG_FOLDER / "ExampleExperiment.ini"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ExampleExperiment.ini"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ExampleExperiment", {"nose_in_left": ("nose",), "nose_in_right": ("nose",)}),
        ("head_direction_opto", {"facing_wall": ("neck", "nose")}),
        ("freezing_opto", {"frozen": ("body_center",)}),
        ("ibl_paw_two_cameras", {"paws_together": ("paw_l", "paw_r")}),
        ("social_example", {"approaching": ("nose",)}),
        ("rearing_3d", {"rearing": ("nose",)}),
    ],
)
def test_every_trigger_says_which_keypoints_it_reads(
    name: str, expected: dict[str, tuple[str, ...]]
) -> None:
    experiment = load_experiment(name)
    found = {trigger: keypoints_of(t) for trigger, t in experiment.triggers.items()}
    for trigger, keypoints in expected.items():
        assert found[trigger] == keypoints
    # a combinator reads its children's
    both = load_experiment("ibl_paw_two_cameras").triggers["both"]
    assert set(keypoints_of(both)) == {"paw_l", "paw_r"}


def test_every_kind_that_reads_a_keypoint_by_name_declares_the_parameter() -> None:
    """A kind whose built trigger names keypoints declares those keys as keypoint names."""
    declared = {kind: keypoint_parameters(kind) for kind in TRIGGER_KINDS}
    assert declared["region"] == {"keypoint": "nose"}
    assert declared["head_direction"] == {"origin": "neck", "tip": "nose"}
    assert declared["distance_below"] == {"a": "", "b": ""}
    assert declared["following"] == {"head": "nose", "tail": "tail_base"}
    assert set(declared["contact"]) == {"keypoints_a", "keypoints_b"}
    assert declared["light"] == {} and declared["all"] == {}


def test_a_mapping_renames_keys_and_writes_defaults_keeping_everything_else(
    config: Path,
) -> None:
    text = config.read_text()
    without = text.replace("KEYPOINT = nose\n", "", 1)  # nose_in_left reads its default
    config.write_text(without)
    changes = save_keypoint_mapping(config, {"nose": "snout", "neck": "head"})
    description = "Count the snout's entries into two regions; a 1 s stimulus per region at each"
    assert changes[:2] == [
        "[Trigger nose_in_left] KEYPOINT = snout (was nose, its default)",
        "[Trigger nose_in_right] KEYPOINT = snout (was nose)",
    ]
    assert changes[2].startswith(f"[Experiment] DESCRIPTION = {description}") and len(changes) == 3
    new = config.read_text()
    assert config.with_name("ExampleExperiment.ini.bak").read_text() == without
    assert [line for line in new.splitlines() if line not in without.splitlines()] == [
        f"DESCRIPTION = {description} entry",  # the description follows (issue 43)
        "KEYPOINT = snout",  # written where the default was read
        "KEYPOINT = snout",  # changed in place
    ]
    assert [line for line in without.splitlines() if line not in new.splitlines()] == [
        "DESCRIPTION = Count the nose's entries into two regions; a 1 s stimulus per region at "
        "each entry",
        "KEYPOINT = nose",
    ]
    assert [ln for ln in new.splitlines() if ln.startswith("#")] == [
        ln for ln in text.splitlines() if ln.startswith("#")
    ]
    loaded = load_experiment_config(config)
    assert {spec.params["keypoint"] for spec in loaded.triggers.values()} == {"snout"}
    assert save_keypoint_mapping(config, {"nose": "snout"}) == []  # nothing left to change


def test_a_mapping_reaches_every_keypoint_key_and_event_keypoint(tmp_path: Path) -> None:
    path = tmp_path / "many.ini"
    path.write_text(
        "[Experiment]\nEVENT_KEYPOINT = nose\n\n"
        "[Trigger facing]\nKIND = head_direction\nTARGET = 10,240\n\n"
        "[Trigger close]\nKIND = distance_below\nA = nose\nB = tail_base\nTHRESHOLD = 20\n\n"
        "[Trigger pair]\nKIND = approach\nKEYPOINTS = nose,neck\nSPEED = 5\n\n"
        "[Rule r]\nWHEN = facing, close, pair\nSTARTS_TRIAL = true\n"
    )
    mapping = {"nose": "snout", "neck": "head", "tail_base": "tailbase"}
    changes = save_keypoint_mapping(path, mapping)
    assert len(changes) == 6
    config = ConfigText(path.read_text())
    assert config.value("Experiment", "EVENT_KEYPOINT") == "snout"
    assert (config.value("Trigger facing", "ORIGIN"), config.value("Trigger facing", "TIP")) == (
        "head",
        "snout",
    )
    assert config.value("Trigger close", "B") == "tailbase"
    assert config.value("Trigger pair", "KEYPOINTS") == "snout,head"
    experiment = load_experiment(str(path))
    assert set(keypoints_of(experiment.triggers["pair"])) == {"snout", "head"}


def test_a_mapping_that_would_not_load_is_refused_and_the_file_kept(config: Path) -> None:
    before = config.read_text()
    with pytest.raises(ConfigEditError, match="would not load"):
        save_keypoint_mapping(config, {"nose": "two words"})
    assert config.read_text() == before


def test_a_region_action_is_written_read_back_changed_and_removed(config: Path) -> None:
    regions = read_regions(config)
    pulse = RegionAction("stimulus_box", "pulse", 3, 0.1, edge="rising", refractory_s=0.5)
    region = RegionSpec("region_1", "top", Circle(100, 100, 30), "snout", action=pulse)
    save_regions(config, [*regions, region])
    text = ConfigText(config.read_text())
    read = text.region_action("region_1")
    assert read == RegionAction(
        "stimulus_box", "pulse", 3, 0.1, edge="rising", refractory_s=0.5,
        rule="region_1_action", stimulation="region_1_action",
    )  # fmt: skip
    assert (
        read.describe() == "pulse 100 ms, stimulus_box channel 3, on entry, then 0.5 s refractory"
    )
    loaded = load_experiment_config(config)
    assert loaded.rules[-1].refractory == 0.5

    train = replace(
        read, command="pattern", duration_s=None, on_s=0.01, off_s=0.04, count=5,
        edge="falling", refractory_s=0,
    )  # fmt: skip
    save_regions(
        config, [*regions, RegionSpec("region_1", "top", region.shape, "snout", "region", train)]
    )
    text = ConfigText(config.read_text())
    assert text.region_action("region_1") == train
    assert text.value("Stimulation region_1_action", "DURATION") is None  # a pulse's key went
    assert text.value("Rule region_1_action", "REFRACTORY") is None
    load_experiment_config(config)

    gone = RegionAction.removed(train)
    save_regions(
        config, [*regions, RegionSpec("region_1", "top", region.shape, "snout", "region", gone)]
    )
    text = ConfigText(config.read_text())
    assert text.region_action("region_1") is None
    assert "region_1_action" not in config.read_text() and gone.command == NO_ACTION


def test_an_example_rule_shows_as_the_regions_action_and_a_shared_pulse_is_not_changed(
    config: Path,
) -> None:
    text = config.read_text().replace("DO = right_stimulus", "DO = left_stimulus")
    config.write_text(text)  # both rules share left_stimulus now
    action = ConfigText(text).region_action("nose_in_left")
    assert action is not None
    assert (action.rule, action.stimulation, action.duration_s) == (
        "left_entry",
        "left_stimulus",
        1,
    )
    shorter = RegionAction(**{**action.__dict__, "duration_s": 0.2})
    left, right = read_regions(config)
    new = edited_text(text, [RegionSpec(**{**left.__dict__, "action": shorter}), right])
    edited = ConfigText(new)
    assert edited.value("Stimulation left_stimulus", "DURATION") == "1"  # right_entry's is kept
    assert edited.value("Rule left_entry", "DO") == "nose_in_left_action"
    assert edited.value("Stimulation nose_in_left_action", "DURATION") == "0.2"
    assert edited.value("Rule left_entry", "STARTS_TRIAL") == "true"  # the rest stays
    parse_experiment_config(new)


def test_deleting_a_region_takes_its_own_action_rule_along(config: Path) -> None:
    regions = read_regions(config)
    pulse = RegionAction("stimulus_box", "pulse", 0, 0.1)
    save_regions(
        config, [*regions, RegionSpec("region_1", None, Circle(5, 5, 5), None, action=pulse)]
    )
    save_regions(config, regions)
    # The rules are those of the start again; the DESCRIPTION, rewritten when the added action
    # changed what the rules do (issue 63), now says what they do in the window's words.
    returned, example = ConfigText(config.read_text()), ConfigText(EXAMPLE.read_text())
    assert returned.described() == example.described()
    assert returned.value("Experiment", "DESCRIPTION") == example.described()
    returned.describe_as(example.value("Experiment", "DESCRIPTION") or "")
    assert returned.text == EXAMPLE.read_text()


def test_a_rule_rests_for_its_refractory_period() -> None:
    text = (
        "[Trigger inside]\nKIND = region\nSHAPE = circle 100 100 10\n\n"
        "[Stimulation p]\nDEVICE = box\nCOMMAND = pulse\nDURATION = 0.01\n\n"
        "[Rule r]\nWHEN = inside\nEDGE = while\nDO = p\nREFRACTORY = 0.25\n"
    )
    runtime = ExperimentRuntime(parse_experiment_config(text).build())
    runtime.start()
    names = ("nose",)
    fired = []
    for frame in range(30):  # inside for 1 s at 30 fps: a pulse every 0.25 s (frame time)
        time_s = frame / 30
        obs = Observation(time_s, "top", frame, np.array([[100.0, 100.0, 1.0]]), names)
        if runtime.update(obs):
            fired.append(frame)
    assert fired == [0, 8, 16, 24]  # each 0.25 s after the previous firing, or the next frame


def test_a_missing_keypoint_is_its_own_error_naming_the_model_keypoints() -> None:
    obs = Observation(0.0, "top", 0, np.array([[1.0, 2.0, 1.0]]), ("snout",))
    with pytest.raises(MissingKeypointError) as raised:
        obs.point("nose")
    assert str(raised.value) == ("camera 'top' has no keypoint 'nose'; its keypoints are snout")
    assert isinstance(raised.value, KeyError)  # callers that catch KeyError still do


def test_a_regions_hold_is_read_from_the_file_and_written_only_when_changed(config: Path) -> None:
    regions = read_regions(config)
    pulse = RegionAction("stimulus_box", "pulse", 0, 0.1)  # the default hold, 0.5 s
    region = RegionSpec("region_1", "top", Circle(100, 100, 30), "snout", action=pulse)
    save_regions(config, [*regions, region])
    text = ConfigText(config.read_text())
    assert text.value("Trigger region_1", "HOLD_S") is None  # nothing new: the default holds
    read = text.region_action("region_1")
    assert read is not None and read.hold_s == 0.5

    shorter = replace(read, hold_s=0.2)  # the rule panel's "Hold through loss"
    save_regions(config, [*regions, replace(region, action=shorter)])
    text = ConfigText(config.read_text())
    assert text.value("Trigger region_1", "HOLD_S") == "0.2"
    assert text.region_action("region_1").hold_s == 0.2
    experiment = load_experiment(str(config))
    assert experiment.triggers["region_1"].describe()["hold_s"] == 0.2

    # [Experiment] HOLD is what a region without its own HOLD_S shows, and writes nothing.
    inherited = config.read_text().replace("[Experiment]\n", "[Experiment]\nHOLD = 0.3\n", 1)
    text = ConfigText(inherited)
    assert text.inherited_hold() == 0.3 and text.hold("nose_in_left") == 0.3
    assert text.hold("region_1") == 0.2
