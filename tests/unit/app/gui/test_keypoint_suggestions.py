"""The keypoint map suggests the model's keypoint that means the same (issue 43), no Qt."""

from __future__ import annotations

import pytest
import yaml

from deeplabstream.app.gui.keypoint_map import (
    NEAR_MEANING,
    SAME_MEANING,
    SAME_SPELLING,
    likeness,
    suggest_mapping,
)
from tests.support.paths import shared_data

# The two-fly SLEAP model's nodes (../shared/data/sleap-flies/README.md)
FLY = ("head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4",
       "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR")  # fmt: skip


@pytest.mark.parametrize(
    ("wanted", "available", "expected"),
    [
        # a part that stands in: a model with a head and no nose (the two flies)
        (["nose"], FLY, "head"),
        (["body_center"], FLY, "thorax"),
        (["nose"], ["head", "snout"], "snout"),  # a synonym beats a stand-in
        (["nose"], ["Snout", "nose_tip"], "Snout"),
        (["nose"], ["tip of the head", "neck"], "tip of the head"),
        (["tail_base"], ["tail1", "tail2", "tail3"], "tail1"),
        (["tail_base"], ["tailbase", "tail1"], "tailbase"),  # the same name spelt otherwise first
        (["tail_base"], ["Tail Base", "tailroot"], "Tail Base"),
        (["centre"], ["spine1", "center", "tail1"], "center"),
        (["body_center"], ["mid_spine", "head"], "mid_spine"),
        (["left_ear"], ["Ear_L", "Ear_R"], "Ear_L"),
        (["right_forepaw"], ["left_front_paw", "right_front_paw"], "right_front_paw"),
        (["left_hindpaw"], ["hind_paw_left", "left_foot"], "hind_paw_left"),
        (["neck"], FLY, None),  # nothing means a neck: left as it is
        (["tail_tip"], FLY, None),
    ],
)  # fmt: skip
def test_the_keypoint_of_the_same_meaning_is_suggested(
    wanted: list[str], available: list[str], expected: str | None
) -> None:
    assert suggest_mapping(wanted, available) == {wanted[0]: expected}


def test_names_are_ranked_spelling_then_meaning_then_stand_in() -> None:
    assert likeness("tail_base", "TailBase") == SAME_SPELLING
    assert likeness("nose", "snout") == SAME_MEANING
    assert likeness("nose", "head") == likeness("head", "nose") == NEAR_MEANING
    assert likeness("nose", "noses") < SAME_MEANING  # a near spelling never beats a synonym
    assert likeness("left_ear", "right_ear") == 0.0


def test_two_of_the_experiments_keypoints_never_get_the_same_model_keypoint() -> None:
    assert suggest_mapping(["nose", "head"], ["head"]) == {"nose": None, "head": "head"}
    assert suggest_mapping(["snout", "nose"], FLY) == {"snout": "head", "nose": None}


def test_the_open_field_dlc_projects_keypoints_are_found_for_the_example() -> None:
    config = shared_data("dlc-openfield") / "config.yaml"
    bodyparts = yaml.safe_load(config.read_text())["bodyparts"]
    assert suggest_mapping(["nose", "tail_base", "left_ear"], bodyparts) == {
        "nose": "snout",
        "tail_base": "tailbase",
        "left_ear": "leftear",
    }
