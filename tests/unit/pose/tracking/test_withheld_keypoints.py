"""Never the other animal's keypoint: what the identity keeper withholds from the rules.

Synthetic tracks make it happen on purpose: a keypoint of one animal grouped into the other's
instance (at a high likelihood, the animals apart, so that no chimera check sees it), a row
that jumps onto the other animal's place or away from both (and stays there a while), and an
animal hidden under another. The rules (:meth:`IdentityKeeper.named`) never read them; the pose
files (the rows returned) keep the framework's animals as they were.
"""

from __future__ import annotations

import math

import numpy as np

from deeplabstream.pose.tracking.identities import (
    JUMP_HOLD_S,
    ONE_PLACE_PX,
    IdentityKeeper,
    _borrowed,
)
from deeplabstream.pose.tracking.tracker import IdentityTracker
from tests.unit.pose.tracking.test_tracker import FPS, K, pose

TAIL = 3  # the tail base of test_tracker's four-keypoint body


def _side_by_side(frames: int) -> np.ndarray:
    """Two animals walking right 3 px a frame, 60 px apart (never in contact): (T, 2, K, 3)."""
    animals = np.empty((frames, 2, K, 3))
    for t in range(frames):
        animals[t, 0] = pose(60 + 3.0 * t, 100)
        animals[t, 1] = pose(60 + 3.0 * t, 160)
    return animals


def _keeper() -> IdentityKeeper:
    return IdentityKeeper(IdentityTracker(2, K), None)


def _walked(animals: np.ndarray, frames: int = 10) -> IdentityKeeper:
    """A keeper (motion only) that has followed the first ``frames`` of ``animals``."""
    keeper = _keeper()
    for t in range(frames):
        keeper.update(t / FPS, animals[t], None)
    return keeper


def test_a_borrowed_keypoint_is_withheld_from_the_rules_and_kept_in_the_files() -> None:
    animals = _side_by_side(30)
    detections = animals.copy()
    borrowed_at = 15
    # Animal 0's instance holds animal 1's tail base, at a high likelihood.
    detections[borrowed_at, 0, TAIL] = (*animals[borrowed_at, 1, TAIL, :2], 0.99)
    keeper = _keeper()
    for t in range(30):
        files = keeper.update(t / FPS, detections[t], None)
        rules = keeper.named(files)
        # The files: the framework's rows as given, in identity order.
        assert np.array_equal(files, detections[t]), t
        if t == borrowed_at:
            assert keeper.withheld[0, TAIL] and np.isnan(rules[0, TAIL]).all()
            # The rest of animal 0 and all of animal 1 are shown.
            assert np.array_equal(rules[0, :TAIL], animals[t, 0, :TAIL])
            assert np.array_equal(rules[1], animals[t, 1])
            assert not keeper.unnamed.any()  # one keypoint, not the animal
        elif t == borrowed_at + 1:
            # Motion took the borrowed point in: the next frame's own tail base is off where
            # it was expected, and may be withheld (unknown), never shown wrong.
            assert not keeper.withheld[:, :TAIL].any() and not keeper.withheld[1].any()
        else:
            assert not keeper.withheld.any(), t
            assert np.array_equal(rules, animals[t]), t
    assert 1 <= keeper.counts.keypoints_withheld <= 2


def test_a_row_that_jumps_onto_the_other_animal_is_withheld_whole() -> None:
    animals = _side_by_side(20)
    keeper = _walked(animals)
    # One frame shows a single instance: animal 1's, 60 px from animal 0 (the only detection,
    # the tracker may give it to either identity). Whichever identity its row lands under,
    # the rules see no keypoint of it under identity 0.
    rows = keeper.update(10 / FPS, animals[10, 1:2], None)
    rules = keeper.named(rows)
    assert np.isnan(rules[0]).all()
    assert np.array_equal(rules[1], animals[10, 1])


def test_a_row_that_jumps_away_from_both_animals_is_withheld_whole() -> None:
    # Not onto the other animal: 60 px from where animal 0 was expected, on its far side, a
    # place no mouse reaches in a frame (in free walking, a row the model put between two mice
    # as they parted). Its identity's row is unknown to the rules for that frame; the files
    # keep it; animal 1 is shown.
    animals = _side_by_side(20)
    keeper = _walked(animals)
    detections = animals[10].copy()
    detections[0] = pose(60 + 3.0 * 10, 40)
    rows = keeper.update(10 / FPS, detections, None)
    rules = keeper.named(rows)
    assert np.array_equal(rows, detections)
    assert keeper.withheld[0].all() and np.isnan(rules[0]).all()
    assert np.array_equal(rules[1], animals[10, 1])
    assert keeper.counts.jumps_withheld == 1


def test_a_row_that_jumped_stays_unknown_until_it_comes_back() -> None:
    # The row that jumped stays there for four frames (a row the model put between two mice),
    # then animal 0 is found where it was going. The tracker follows the row that jumped, so
    # from the second frame on it is no jump from where motion now expects it: held unknown
    # all four frames all the same; shown again where it came back. The files keep every row.
    animals = _side_by_side(20)
    keeper = _walked(animals)
    for t in range(10, 14):
        detections = animals[t].copy()
        detections[0] = pose(60 + 3.0 * 10, 40)
        rows = keeper.update(t / FPS, detections, None)
        assert np.array_equal(rows, detections), t
        assert keeper.withheld[0].all() and not keeper.withheld[1].any(), t
    rows = keeper.update(14 / FPS, animals[14], None)
    assert not keeper.withheld.any()
    assert np.array_equal(keeper.named(rows), animals[14])
    assert keeper.counts.jumps_withheld == 4


def test_a_row_that_jumped_and_stays_is_shown_after_the_hold() -> None:
    # Where the animal does not come back, the row that jumped is taken after JUMP_HOLD_S: the
    # identity is unknown for the hold's frames, then shown where it now is.
    animals = _side_by_side(30)
    keeper = _walked(animals)
    held = []
    for t in range(10, 30):
        detections = animals[t].copy()
        detections[0] = pose(60 + 3.0 * t, 40)  # walking on, 60 px from where it was
        keeper.update(t / FPS, detections, None)
        held.append(bool(keeper.withheld[0].all()))
        assert not keeper.withheld[1].any(), t
    frames_held = math.floor(JUMP_HOLD_S * FPS + 1e-9) + 1  # the jump's frame and the hold's
    assert held == [True] * frames_held + [False] * (20 - frames_held)


def test_a_clock_that_started_over_holds_no_jump_from_before() -> None:
    # A jump held, then the camera's clock starts over (a reconnect): no motion spans the two
    # clocks, so nothing is held from before when the new clock passes the jump's time.
    animals = _side_by_side(40)
    keeper = _walked(animals)
    detections = animals[10].copy()
    detections[0] = pose(60 + 3.0 * 10, 40)
    keeper.update(10 / FPS, detections, None)
    assert keeper.withheld[0].all()
    elsewhere = animals.copy()
    elsewhere[..., 0] += 200.0  # far from where animal 0 was expected at the jump
    for t in range(20):  # the new clock, from 0, over the old jump's time and its hold
        keeper.update(t / FPS, elsewhere[t], None)
        if t > 0:
            assert not keeper.withheld.any(), t


def test_instances_mixing_both_animals_show_each_only_its_own_keypoints() -> None:
    # Two animals apart; in one frame each instance is one animal's nose with the other's
    # ears and tail (no contact, so no chimera check runs). Each row goes to the animal most
    # of it is; its other nose is withheld, never shown under the wrong identity.
    animals = _side_by_side(20)
    keeper = _walked(animals)
    mixed = animals[10].copy()
    mixed[0, 1:], mixed[1, 1:] = animals[10, 1, 1:], animals[10, 0, 1:]
    rows = keeper.update(10 / FPS, mixed, None)
    rules = keeper.named(rows)
    for identity in (0, 1):
        shown = ~np.isnan(rules[identity, :, 0])
        # Every keypoint shown under identity i is animal i's.
        assert np.allclose(rules[identity, shown, :2], animals[10, identity, shown, :2])
        assert np.count_nonzero(shown) == K - 1
    assert keeper.withheld[:, 0].all() and not keeper.unnamed.any()


def test_an_animal_hidden_under_another_is_unknown_to_the_rules() -> None:
    # Animal 1 walks onto animal 0 and is not detected while it lies under it.
    keeper = _keeper()
    hidden_frames = 0
    for t in range(12):
        instances = [pose(100 + 2.0 * t, 100)]
        if t < 8:
            instances.append(pose(100 + 2.0 * t, 100 + 4.0 * (8 - t)))
        detections = np.full((2, K, 3), np.nan)
        detections[: len(instances)] = np.stack(instances)
        keeper.update(t / FPS, detections, None)
        if t >= 8:
            # The identity not seen is withheld whole: there, but where is unknown.
            missing = np.flatnonzero(np.isnan(keeper.confidence))
            assert missing.size == 1, t
            assert keeper.withheld[missing[0]].all(), t
            hidden_frames += 1
    assert hidden_frames == 4


def test_a_row_with_as_many_keypoints_withheld_as_left_is_unnamed_whole() -> None:
    # What is left of a row mostly withheld (borrowed keypoints, a jump, a chimera's part)
    # sits among the other animal's parts and is as likely the other's: in free walking the
    # last two keypoints of such a row were, for a frame, the other animal's. Fewer withheld
    # than left: the row stays named, less the withheld ones.
    animals = _side_by_side(12)
    keeper = _keeper()
    for t in range(12):
        rows = keeper.update(t / FPS, animals[t], None)
    assert not keeper.unnamed.any()
    withheld = np.zeros((2, K), bool)
    withheld[0, :2] = True  # two of animal 0's four: as many as left
    withheld[1, 0] = True  # one of animal 1's four
    keeper._unname_mostly_withheld(rows, withheld)  # the rule alone (a chimera check overlaps it)
    assert keeper.unnamed.tolist() == [True, False]
    assert withheld[0].all() and withheld[1].tolist() == [True, False, False, False]
    assert keeper.counts.mostly_withheld_unidentified == 1


# Mice of five keypoints (nose, ears, body centre, tail base), for where two lie on one another.
CENTRED = np.array([[12.0, 0.0], [5.0, -5.0], [5.0, 5.0], [0.0, 0.0], [-12.0, 0.0]])
NOSE, CENTRE = 0, 3


def _expected_at(*middles: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(A, 5, 2) expected parts of animals at (x, y, heading), all known."""
    parts = []
    for x, y, heading in middles:
        cos, sin = math.cos(heading), math.sin(heading)
        parts.append(CENTRED @ np.array([[cos, sin], [-sin, cos]]) + np.array([x, y]))
    expected = np.stack(parts)
    return expected, np.ones(expected.shape[:2], bool)


def _rows(expected: np.ndarray) -> np.ndarray:
    """(A, 5, 3) rows at the expected parts, likelihood 0.9."""
    return np.concatenate([expected, np.full((*expected.shape[:2], 1), 0.9)], axis=2)


def test_one_body_centre_for_two_mice_crossing_on_one_spot_is_not_withheld() -> None:
    # Two mice cross at right angles on one spot: their bodies' middles 4 px apart. The model
    # finds one body centre for the two, 1 px from where animal 1's was expected and 5 px
    # from animal 0's: nearer the other's, but at the place both are, so whichever mouse's it
    # is, it is where animal 0's body centre is. Animal 0 is shown it (an entry at the crossing
    # point is not lost for it).
    expected, known = _expected_at((100.0, 100.0, 0.0), (100.0, 104.0, math.pi / 2))
    rows = _rows(expected)
    rows[0, CENTRE, :2] = (101.0, 104.0)
    rows[1, CENTRE] = np.nan  # one body centre for the two
    borrowed, jumped, one_place = _borrowed(rows, expected, known)
    assert not borrowed.any() and not jumped.any()
    assert one_place[0, CENTRE] and np.count_nonzero(one_place) == 1


def test_a_keypoint_at_the_shared_place_is_withheld_where_the_other_has_its_own_there() -> None:
    # As above, but the model found animal 1's body centre too, where it was expected: each
    # mouse has its own there, and animal 0's, nearer animal 1's, may be a second copy of it.
    expected, known = _expected_at((100.0, 100.0, 0.0), (100.0, 104.0, math.pi / 2))
    rows = _rows(expected)
    rows[0, CENTRE, :2] = (101.0, 104.0)
    borrowed, _, _ = _borrowed(rows, expected, known)
    assert borrowed[0, CENTRE] and np.count_nonzero(borrowed) == 1


def test_a_keypoint_at_the_shared_place_is_withheld_where_the_other_was_not_found() -> None:
    # As above, but the model found nothing of animal 1 (hidden under animal 0): animal 0's row
    # may hold animal 1's parts where they lie (a row half one mouse, half the other, in free
    # walking), not one part found for two. Withheld.
    expected, known = _expected_at((100.0, 100.0, 0.0), (100.0, 104.0, math.pi / 2))
    rows = _rows(expected)
    rows[0, CENTRE, :2] = (101.0, 104.0)
    rows[1] = np.nan
    borrowed, _, _ = _borrowed(rows, expected, known)
    assert borrowed[0, CENTRE]


def test_a_part_of_another_animal_is_withheld_where_the_bodies_are_apart() -> None:
    # Nose to nose: the noses expected 4 px apart and animal 0's nose found 1 px from animal
    # 1's and 4 px from its own, as at the crossing above, but the bodies' middles 24 px apart:
    # not on one another, so the keypoint may be the other's nose alone, and is withheld.
    expected, known = _expected_at((100.0, 100.0, 0.0), (128.0, 100.0, math.pi))
    rows = _rows(expected)
    rows[0, NOSE, :2] = (116.0, 101.0)
    rows[1, NOSE] = np.nan  # one nose for the two
    borrowed, _, _ = _borrowed(rows, expected, known)
    assert borrowed[0, NOSE] and np.count_nonzero(borrowed) == 1


def test_a_keypoint_on_another_part_of_the_other_is_still_withheld() -> None:
    # On one another, the body centres expected 4 px apart, but animal 0's body centre found
    # on animal 1's nose (1 px off it, 11 px from animal 1's body centre): nearer that part
    # than the place both share, so it may be the other's nose, and is withheld.
    expected, known = _expected_at((100.0, 100.0, 0.0), (100.0, 104.0, math.pi / 2))
    rows = _rows(expected)
    rows[0, CENTRE, :2] = expected[1, NOSE] + (0.0, -1.0)
    rows[1, CENTRE] = np.nan
    assert np.hypot(*(rows[0, CENTRE, :2] - expected[1, CENTRE])) > ONE_PLACE_PX
    borrowed, _, _ = _borrowed(rows, expected, known)
    assert borrowed[0, CENTRE]


def test_a_keypoint_off_the_place_both_share_is_still_withheld() -> None:
    # On one another, the body centres expected 4 px apart (animal 1's other parts not
    # expected), and animal 0's body centre found 9 px from animal 1's and 13 px from its own:
    # nearest the other's, and not at the place both share (beyond ONE_PLACE_PX), so withheld.
    expected, known = _expected_at((100.0, 100.0, 0.0), (100.0, 104.0, math.pi / 2))
    known[1] = False
    known[1, CENTRE] = True
    rows = _rows(expected)
    rows[0, CENTRE, :2] = (100.0, 113.0)
    rows[1, CENTRE] = np.nan
    assert np.hypot(*(rows[0, CENTRE, :2] - expected[1, CENTRE])) > ONE_PLACE_PX
    borrowed, _, _ = _borrowed(rows, expected, known)
    assert borrowed[0, CENTRE]


def test_keypoints_at_one_place_count_as_withheld_for_a_row_mostly_withheld() -> None:
    # Shown at one place with the other's same part, a keypoint lies among the other animal's
    # parts like a withheld one: one withheld and one at one place of animal 0's four leave as
    # many as left, and the row is unnamed whole (at crossing 7309 the row left named that way
    # held the other mouse's body centre). Without the one at one place, it stays named.
    animals = _side_by_side(12)
    keeper = _keeper()
    for t in range(12):
        rows = keeper.update(t / FPS, animals[t], None)
    withheld = np.zeros((2, K), bool)
    withheld[0, 0] = True
    one_place = np.zeros((2, K), bool)
    one_place[0, 1] = True
    keeper._unname_mostly_withheld(rows, withheld.copy(), None)
    assert not keeper.unnamed.any()
    keeper._unname_mostly_withheld(rows, withheld, one_place)
    assert keeper.unnamed.tolist() == [True, False] and withheld[0].all()
