"""Unknown is not "left": a trigger keeps an animal's state through a stretch it is withheld.

The identity step withholds an animal it cannot name (a merge, one animal under another) or a
keypoint that may be another animal's (:attr:`Observation.withheld`). However long that lasts,
a region trigger keeps the side it knew; an animal named again inside after being outside has
entered, and the event says it was decided late and by how many frames. A plain loss (the model
did not find the keypoint, nothing withheld) is still decided after ``hold_s``.
"""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation, unnamed_rows
from deeplabstream.experiments.triggers.animals import EachAnimal, ForAnimal
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region

NAMES = ("nose", "tail")
FPS = 30.0
ZONE = Circle(100, 100, 20)
OUTSIDE, INSIDE = (40.0, 100.0), (100.0, 100.0)
UNKNOWN_FRAMES = 90  # 3 s: six times the default hold


def _one(frame: int, where: tuple[float, float] | None, withheld: bool = False) -> Observation:
    """Animal 1 alone: its nose at ``where`` (None: not seen), withheld or not."""
    keypoints = np.full((2, 3), np.nan)
    if where is not None:
        keypoints[0] = (*where, 0.9)
    return Observation(
        time_s=frame / FPS, camera="top", frame_index=frame, keypoints=keypoints, names=NAMES,
        withheld=np.array([withheld, withheld]),
    )  # fmt: skip


def _stretch(
    trigger: Region, first: int, frames: int, withheld: bool
) -> list[bool]:  # fmt: skip
    return [trigger.update(_one(first + i, None, withheld)) for i in range(frames)]


def test_named_again_inside_after_an_unknown_stretch_has_entered_late() -> None:
    trigger = Region(ZONE, mode="entered")
    assert not any(trigger.update(_one(t, OUTSIDE)) for t in range(5))
    assert not any(_stretch(trigger, 5, UNKNOWN_FRAMES, withheld=True))
    assert trigger.update(_one(5 + UNKNOWN_FRAMES, INSIDE))
    assert trigger.late_frames == UNKNOWN_FRAMES
    assert f"{UNKNOWN_FRAMES} frame" in trigger.measurement()
    assert "late" in trigger.measurement()


def test_a_plain_loss_as_long_is_still_decided_after_the_hold() -> None:
    # Not withheld: the model lost the nose for 3 s. The side is forgotten after hold_s, and
    # a nose first seen inside again has not entered (as before).
    trigger = Region(ZONE, mode="entered")
    for t in range(5):
        trigger.update(_one(t, OUTSIDE))
    _stretch(trigger, 5, UNKNOWN_FRAMES, withheld=False)
    assert not trigger.update(_one(5 + UNKNOWN_FRAMES, INSIDE))


def test_an_entry_seen_frame_by_frame_is_not_late() -> None:
    trigger = Region(ZONE, mode="entered")
    trigger.update(_one(0, OUTSIDE))
    assert trigger.update(_one(1, INSIDE))
    assert trigger.late_frames == 0 and trigger.measurement() == ""


@pytest.mark.parametrize("mode", ["inside", "entered", "left"])
def test_inside_through_an_unknown_stretch_is_still_inside_and_no_new_event(mode: str) -> None:
    trigger = Region(ZONE, mode=mode)
    states = [trigger.update(_one(t, OUTSIDE if t < 2 else INSIDE)) for t in range(5)]
    held = _stretch(trigger, 5, UNKNOWN_FRAMES, withheld=True)
    after = trigger.update(_one(5 + UNKNOWN_FRAMES, INSIDE))
    if mode == "inside":
        assert states[-1] and all(held) and after  # inside all along
    else:
        assert not any(held) and not after  # no entry twice, no exit
    assert trigger.inside is True


def test_a_loss_right_after_an_unknown_stretch_is_bridged_from_its_end() -> None:
    trigger = Region(ZONE, mode="entered")
    trigger.update(_one(0, OUTSIDE))
    _stretch(trigger, 1, UNKNOWN_FRAMES, withheld=True)
    # Then the model misses the nose for 0.3 s (under hold_s), then it is seen inside.
    first_seen = 1 + UNKNOWN_FRAMES + 9
    _stretch(trigger, 1 + UNKNOWN_FRAMES, 9, withheld=False)
    assert trigger.update(_one(first_seen, INSIDE))
    assert trigger.late_frames == UNKNOWN_FRAMES + 9


def _pair(frame: int, second: tuple[float, float] | None, withheld: bool) -> Observation:
    """Two animals: animal 1 far away, animal 2's nose at ``second`` (withheld or not)."""
    animals = np.full((2, 2, 3), np.nan)
    animals[0, 0] = (300.0, 300.0, 0.9)
    if second is not None:
        animals[1, 0] = (*second, 0.9)
    withheld_mask = np.zeros((2, 2), bool)
    withheld_mask[1] = withheld
    return Observation(
        time_s=frame / FPS, camera="top", frame_index=frame, keypoints=animals[0], names=NAMES,
        animals=animals, identity_confidence=np.array([1.0, 1.0 if second else np.nan]),
        withheld=withheld_mask[0], animals_withheld=withheld_mask,
    )  # fmt: skip


def test_each_animal_keeps_its_own_side_through_its_unknown_stretch() -> None:
    each = EachAnimal(Region(ZONE, mode="entered"))
    one = ForAnimal(Region(ZONE, mode="entered"), 2)
    for t in range(3):
        each.update(_pair(t, OUTSIDE, False))
        one.update(_pair(t, OUTSIDE, False))
    for t in range(3, 3 + UNKNOWN_FRAMES):  # animal 2 unnamed (a merge)
        assert not each.update(_pair(t, None, True))
        assert not one.update(_pair(t, None, True))
    t = 3 + UNKNOWN_FRAMES
    assert each.update(_pair(t, INSIDE, False)) and each.rose_animals() == (2,)
    assert "late" in each.measurement_of(2)
    assert one.update(_pair(t, INSIDE, False))


def test_withheld_masks_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="withheld"):
        Observation(0.0, "top", 0, np.zeros((2, 3)), NAMES, withheld=np.zeros(3, bool))
    with pytest.raises(ValueError, match="animals_withheld"):
        Observation(
            0.0, "top", 0, np.zeros((2, 3)), NAMES, animals=np.zeros((2, 2, 3)),
            animals_withheld=np.zeros((3, 2), bool),
        )  # fmt: skip


# -- decided while unnamed: where every row an unnamed animal may be agrees --------------------


def _merged(
    frame: int, rows: list[tuple[float, float] | None], unnamed: tuple[bool, ...] = (True, True)
) -> Observation:
    """Animals whose noses were found at ``rows`` (None: not found), ``unnamed`` ones withheld
    whole, as the live pipeline builds it: the rules' rows blank, the rows as found kept."""
    found = np.full((len(rows), 2, 3), np.nan)
    for row, where in enumerate(rows):
        if where is not None:
            found[row, 0] = (*where, 0.9)
    mask = np.zeros((len(rows), 2), bool)
    mask[list(unnamed)] = True
    shown = found.copy()
    shown[mask] = np.nan
    return Observation(
        time_s=frame / FPS, camera="top", frame_index=frame, keypoints=shown[0], names=NAMES,
        animals=shown, withheld=mask[0], animals_withheld=mask,
        unnamed_rows=unnamed_rows(found, mask),
    )  # fmt: skip


NEAR = (104.0, 96.0)  # inside the zone, beside INSIDE: two mice touching in it


def test_both_unnamed_rows_inside_is_an_entry_decided_then_not_late() -> None:
    trigger = Region(ZONE, mode="entered")
    trigger.update(_merged(0, [OUTSIDE, (40.0, 140.0)], unnamed=(False, False)))
    assert not trigger.update(_merged(1, [(60.0, 100.0), (60.0, 130.0)]))  # both outside
    assert trigger.update(_merged(2, [INSIDE, NEAR]))  # whichever row it is: inside
    assert trigger.late_frames == 0
    assert "unnamed" in trigger.measurement() and "all 2" in trigger.measurement()
    assert not trigger.update(_merged(3, [NEAR, INSIDE]))  # the same visit
    assert not trigger.update(_merged(4, [INSIDE, NEAR], unnamed=(False, False)))


def test_unnamed_rows_on_both_sides_hold_and_decide_when_named() -> None:
    trigger = Region(ZONE, mode="entered")
    trigger.update(_merged(0, [OUTSIDE, (40.0, 140.0)], unnamed=(False, False)))
    assert not any(trigger.update(_merged(t, [INSIDE, OUTSIDE])) for t in range(1, 10))
    assert trigger.inside is False  # the side it knew, not a row's
    assert trigger.update(_merged(10, [INSIDE, OUTSIDE], unnamed=(False, False)))
    assert trigger.late_frames == 9


@pytest.mark.parametrize(
    "rows, unnamed",
    [
        ([INSIDE, None], (True, True)),  # an unnamed animal not found: it could be anywhere
        ([INSIDE, NEAR], (True, False)),  # one animal unnamed alone: the row it doubted
    ],
    ids=["one-not-found", "one-unnamed"],
)
def test_no_decision_while_unnamed_without_every_row_found(
    rows: list[tuple[float, float] | None], unnamed: tuple[bool, ...]
) -> None:
    trigger = Region(ZONE, mode="entered")
    trigger.update(_merged(0, [OUTSIDE, (40.0, 140.0)], unnamed=(False, False)))
    assert not any(trigger.update(_merged(t, rows, unnamed)) for t in range(1, 10))
    assert trigger.inside is False


def test_each_animal_enters_while_both_are_unnamed_in_the_zone() -> None:
    each = EachAnimal(Region(ZONE, mode="entered"))
    second = ForAnimal(Region(ZONE, mode="entered"), 2)
    start = [OUTSIDE, (40.0, 140.0)]
    each.update(_merged(0, start, unnamed=(False, False)))
    second.update(_merged(0, start, unnamed=(False, False)))
    assert each.update(_merged(1, [INSIDE, NEAR])) and each.rose_animals() == (1, 2)
    assert second.update(_merged(1, [INSIDE, NEAR]))
