"""MIN_IDENTITY_CONFIDENCE: an animal not sure to be itself counts as not seen by triggers."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers import make_trigger
from deeplabstream.experiments.triggers.base import animal_problems
from deeplabstream.experiments.triggers.social import ForAnimal
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES

K = len(KEYPOINT_NAMES)


def _frame(positions: list[tuple[float, float]], confidence: list[float] | None) -> Observation:
    """Two animals, every keypoint of animal i at ``positions[i]``, with their confidences."""
    animals = np.zeros((len(positions), K, 3))
    for i, (x, y) in enumerate(positions):
        animals[i, :, 0], animals[i, :, 1], animals[i, :, 2] = x, y, 0.99
    return Observation(
        1.0, "top", 30, animals[0], KEYPOINT_NAMES, animals=animals,
        identity_confidence=None if confidence is None else np.asarray(confidence),
    )  # fmt: skip


def test_a_one_animal_trigger_ignores_an_animal_below_the_minimum_confidence():
    trigger = make_trigger(
        "region",
        {"shape": "circle 100 100 20", "mode": "inside", "animal": "2",
         "min_identity_confidence": "0.9"},
    )  # fmt: skip
    assert isinstance(trigger, ForAnimal) and trigger.min_identity_confidence == 0.9
    inside = [(300.0, 300.0), (100.0, 100.0)]
    assert trigger.update(_frame(inside, [0.99, 0.95])) is True
    assert trigger.update(_frame(inside, [0.99, 0.6])) is False  # after a merge: not sure
    assert trigger.update(_frame(inside, [0.99, np.nan])) is False
    assert trigger.describe()["min_identity_confidence"] == 0.9
    rebuilt = make_trigger(
        "region", {k: str(v) for k, v in trigger.describe().items() if k != "kind"}
    )
    assert rebuilt.describe() == trigger.describe()


def test_without_animal_the_minimum_applies_to_animal_one():
    trigger = make_trigger(
        "region", {"shape": "circle 100 100 20", "min_identity_confidence": "0.8"}
    )
    assert isinstance(trigger, ForAnimal) and trigger.animal == 1
    assert trigger.update(_frame([(100.0, 100.0), (0.0, 0.0)], [0.85, 0.99])) is True
    assert trigger.update(_frame([(100.0, 100.0), (0.0, 0.0)], [0.7, 0.99])) is False


def test_a_social_trigger_sees_a_doubtful_animal_as_missing():
    trigger = make_trigger(
        "distance", {"below_px": "50", "animals": "1,2", "min_identity_confidence": "0.9"}
    )
    close = [(100.0, 100.0), (120.0, 100.0)]
    assert trigger.update(_frame(close, [0.99, 0.99])) is True
    assert trigger.update(_frame(close, [0.99, 0.5])) is False
    assert trigger.describe()["min_identity_confidence"] == 0.9


def test_a_minimum_outside_zero_to_one_or_on_a_combinator_is_refused_by_name():
    with pytest.raises(ValueError, match=r"min_identity_confidence.*1\.5"):
        make_trigger("region", {"shape": "circle 1 1 1", "min_identity_confidence": "1.5"})
    child = make_trigger("region", {"shape": "circle 1 1 1"})
    with pytest.raises(ValueError, match="combinator reads no animal"):
        make_trigger("all", {"min_identity_confidence": "0.9"}, [child, child])


def test_a_minimum_with_a_single_animal_model_is_found_before_the_start():
    triggers = {
        "zone": make_trigger("region", {"shape": "circle 1 1 1", "min_identity_confidence": "0.9"})
    }
    (problem,) = animal_problems(triggers, 1)
    assert "'zone'" in problem and "MIN_IDENTITY_CONFIDENCE" in problem
    assert animal_problems(triggers, 2) == []


def test_a_single_animal_models_animal_is_always_sure_of_itself():
    one = Observation(1.0, "top", 0, np.full((K, 3), 0.99), KEYPOINT_NAMES)
    assert one.identity_confidence_of(1) == 1.0
    assert one.for_animal(1, 0.99).keypoints[0, 2] == 0.99
