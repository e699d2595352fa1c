"""IdentityTracker: stable identities for shuffled instances, gaps, drops, ambiguity, ID hints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeplabstream.pose.tracking.switches import (
    count_identity_switches,
    keypoint_errors,
    match_identities,
)
from deeplabstream.pose.tracking.tracker import IdentityTracker, TrackerCounts

FPS = 30.0
# A small "mouse" of four keypoints (nose, left ear, right ear, tail base) facing +x.
BODY = np.array([[12.0, 0.0], [5.0, -5.0], [5.0, 5.0], [-12.0, 0.0]])
K = len(BODY)


def pose(x: float, y: float, heading: float = 0.0, likelihood: float = 0.9) -> np.ndarray:
    """Return one (K, 3) instance: BODY turned by ``heading`` radians, centred at (x, y)."""
    cos, sin = math.cos(heading), math.sin(heading)
    turned = BODY @ np.array([[cos, sin], [-sin, cos]])
    return np.column_stack([turned + np.array([x, y]), np.full(K, likelihood)])


def frame(*instances: np.ndarray, slots: int | None = None) -> np.ndarray:
    """Stack instances into (slots, K, 3), the empty slots all-NaN."""
    slots = len(instances) if slots is None else slots
    out = np.full((slots, K, 3), np.nan)
    if instances:
        out[: len(instances)] = np.stack(instances)
    return out


def scene(
    centres: np.ndarray, headings: np.ndarray, rng: np.random.Generator, *, miss: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Return truth (T, B, K, 2) and shuffled noisy detections (T, B, K, 3) of moving animals.

    Centres (T, B, 2) NaN where an animal is unseen; keypoints get 1 px noise, ``miss`` of them
    are missed (half NaN, half below the likelihood threshold), rows are shuffled every frame.
    """
    frames, animals = centres.shape[:2]
    truth = np.full((frames, animals, K, 2), np.nan)
    detections = np.full((frames, animals, K, 3), np.nan)
    for t in range(frames):
        order = rng.permutation(animals)
        for slot, b in enumerate(order):
            if np.isnan(centres[t, b]).any():
                continue
            x, y = centres[t, b]
            clean = pose(float(x), float(y), float(headings[t, b]))
            truth[t, b] = clean[:, :2]
            noisy = clean.copy()
            noisy[:, :2] += rng.normal(0.0, 1.0, (K, 2))
            missed = rng.random(K) < miss
            noisy[missed & (rng.random(K) < 0.5), :2] = np.nan
            noisy[missed, 2] = 0.02
            detections[t, slot] = noisy
    return truth, detections


def run(tracker: IdentityTracker, detections: np.ndarray, start_s: float = 0.0) -> np.ndarray:
    """Feed every frame at FPS; return the (T, A, K, 3) tracker output."""
    return np.stack(
        [tracker.update(start_s + t / FPS, detections[t]) for t in range(len(detections))]
    )


def test_crossing_animals_at_different_speeds_keep_their_identities() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(120) / FPS
    centres = np.empty((120, 3, 2))
    # 0 runs right at 150 px/s, 1 walks left at 60 px/s, 2 goes down at 90 px/s; all three pass
    # within 8 px of each other (bodies touching) around t = 2 s.
    centres[:, 0] = np.column_stack([100 + 150 * t - 300, np.full(120, 100.0)])
    centres[:, 1] = np.column_stack([100 - 60 * (t - 2), np.full(120, 108.0)])
    centres[:, 2] = np.column_stack([np.full(120, 104.0), 100 + 90 * (t - 2)])
    headings = np.zeros((120, 3))
    headings[:, 1] = math.pi
    headings[:, 2] = math.pi / 2
    centres[50, 1] = np.nan  # one frame where animal 1 is not seen
    truth, detections = scene(centres, headings, rng)
    tracker = IdentityTracker(3, K)
    tracked = run(tracker, detections)

    report = count_identity_switches(tracked, truth)
    assert report.switches == 0
    assert report.animal_frames == 359 and report.animal_frames_matched == 359
    # Identities start left to right: animal 0 (x = -200), then 2 (x = 104), then 1 (x = 220).
    errors = keypoint_errors(tracked, truth)
    assert np.nanmedian(errors) < 2.0
    assert np.nanmax(errors) < 6.0  # never a swapped keypoint set, not even in one frame
    assert np.isnan(tracked[50, 2]).all()  # identity 2 (animal 1) unseen in frame 50
    assert not np.isnan(tracked[50, [0, 1]]).all(axis=(1, 2)).any()
    expected = np.tile([0, 2, 1], (120, 1))
    expected[50, 1] = -1
    np.testing.assert_array_equal(match_identities(tracked, truth), expected)
    assert tracker.counts == TrackerCounts(frames=120)


def test_animals_walking_side_by_side_touching_keep_their_identities() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(90) / FPS
    centres = np.empty((90, 2, 2))
    # Two animals 11 px apart (bodies 10 px wide: touching) walking a wavy path together.
    path = np.column_stack([100 + 80 * t, 100 + 30 * np.sin(2 * t)])
    centres[:, 0] = path
    centres[:, 1] = path + np.array([0.0, 11.0])
    truth, detections = scene(centres, np.zeros((90, 2)), rng)
    tracker = IdentityTracker(2, K)
    tracked = run(tracker, detections)
    report = count_identity_switches(tracked, truth)
    assert (report.switches, report.animal_frames_matched) == (0, 180)
    assert tracker.counts == TrackerCounts(frames=90)


def test_animals_passing_through_one_spot_facing_the_same_way_are_flagged() -> None:
    # Nothing tells the two apart where they overlap: the frame is flagged as ambiguous (the
    # velocities still carry them through, here without a switch).
    rng = np.random.default_rng(3)
    t = np.arange(120) / FPS
    centres = np.empty((120, 2, 2))
    centres[:, 0] = np.column_stack([100 + 150 * (t - 2), np.full(120, 100.0)])
    centres[:, 1] = np.column_stack([100 - 60 * (t - 2), np.full(120, 100.0)])
    truth, detections = scene(centres, np.zeros((120, 2)), rng)
    tracker = IdentityTracker(2, K)
    tracked = run(tracker, detections)
    assert count_identity_switches(tracked, truth).switches == 0
    assert tracker.counts.ambiguous_assignments == 1


def test_a_swap_where_both_predictions_meet_is_reported_as_ambiguous() -> None:
    # Two animals facing the same way close in at 10 px/frame; both are predicted at x = 130 in
    # frame 3, where they have already passed each other (140 and 120): either assignment fits.
    tracker = IdentityTracker(2, K)
    for step, (a, b) in enumerate([(100, 160), (110, 150), (120, 140)]):
        tracker.update(step / FPS, frame(pose(b, 50), pose(a, 50)))
        assert not tracker.last_ambiguous
    tracker.update(3 / FPS, frame(pose(140, 50), pose(120, 50)))
    assert tracker.last_ambiguous
    assert tracker.counts.ambiguous_assignments == 1
    # Once past, they separate again: no longer ambiguous.
    tracker.update(4 / FPS, frame(pose(150, 50), pose(110, 50)))
    assert not tracker.last_ambiguous
    assert tracker.counts.ambiguous_assignments == 1


def test_animals_far_apart_or_clearly_apart_are_not_ambiguous() -> None:
    tracker = IdentityTracker(2, K)
    for step in range(5):
        tracker.update(step / FPS, frame(pose(100 + 2 * step, 50), pose(125 - 2 * step, 50)))
    assert tracker.counts.ambiguous_assignments == 0


def test_the_first_identities_go_left_to_right() -> None:
    tracker = IdentityTracker(3, K)
    left, middle, right = pose(10, 80), pose(50, 20), pose(90, 50)
    out = tracker.update(0.0, frame(right, left, middle))
    np.testing.assert_array_equal(out, np.stack([left, middle, right]))


def test_the_output_is_a_new_array_in_the_input_dtype_with_empty_rows_nan() -> None:
    tracker = IdentityTracker(3, K)
    instances = frame(pose(10, 10), slots=3).astype(np.float32)
    out = tracker.update(0.0, instances)
    assert out.dtype == np.float32 and out.shape == (3, K, 3)
    np.testing.assert_array_equal(out[0], instances[0])
    assert np.isnan(out[1:]).all()
    out[0] = 0.0
    assert instances[0, 0, 0] == 10.0 + 12.0
    assert np.isnan(tracker.update(0.1, frame(slots=3))).all()
    assert tracker.counts.frames == 2


def test_a_keypoint_with_one_nan_coordinate_is_unseen() -> None:
    tracker = IdentityTracker(2, K)
    tracker.update(0.0, frame(pose(100, 50)))
    half = pose(101, 50)
    half[0, 1] = np.nan  # the nose's y only
    half[1, 0] = np.inf  # the left ear's x
    out = tracker.update(1 / FPS, frame(half))
    np.testing.assert_array_equal(out[0], half)
    assert np.isnan(out[1]).all()


def test_the_motion_model_uses_the_real_time_between_frames() -> None:
    # 300 px/s; then 0.2 s without a frame: the animal is 60 px on. A model that counted frames
    # would expect it 10 px on, 50 px away: beyond the 20 px gate, it would start identity 1.
    tracker = IdentityTracker(2, K, max_distance_px=20.0)
    for step in range(4):
        tracker.update(step / FPS, frame(pose(100 + 10 * step, 50)))
    out = tracker.update(3 / FPS + 0.2, frame(pose(190, 50)))
    np.testing.assert_array_equal(out[0], pose(190, 50))
    assert np.isnan(out[1]).all()
    # The velocity measured across the skip is 60 px / 0.2 s, not 60 px per frame.
    out = tracker.update(4 / FPS + 0.2, frame(pose(200, 50)))
    np.testing.assert_array_equal(out[0], pose(200, 50))
    assert tracker.counts == TrackerCounts(frames=6)


def test_clock_times_and_float32_poses_keep_their_precision() -> None:
    # Host clock seconds (1.7e9) with float32 poses: the keypoint times must not be stored in
    # float32 (128 s steps there), or the velocity and the gap would be nonsense.
    tracker = IdentityTracker(2, K, max_distance_px=20.0)
    start = 1.7e9
    for step in range(4):
        poses = frame(pose(100 + 10 * step, 50)).astype(np.float32)
        tracker.update(start + step / FPS, poses)
    out = tracker.update(start + 3 / FPS + 0.2, frame(pose(190, 50)).astype(np.float32))
    np.testing.assert_array_equal(out[0], pose(190, 50).astype(np.float32))
    tracker.update(start + 1.5, frame(pose(500, 50)))
    assert tracker.counts == TrackerCounts(frames=6, identities_lost=1, identities_reacquired=1)


def test_one_noisy_frame_does_not_throw_the_velocity_off() -> None:
    # 5 px/frame with one detection 5 px ahead. Unsmoothed, the velocity would jump to
    # 10 px/frame and the next prediction would miss the animal by 10 px (beyond the 8 px gate,
    # so it would start identity 1); smoothed (alpha = 1 - exp(-1/3) = 0.28), by 6.4 px.
    tracker = IdentityTracker(2, K, max_distance_px=8.0)
    for step, x in enumerate([0, 5, 10, 15, 25, 25, 30]):
        out = tracker.update(step / FPS, frame(pose(100 + x, 50)))
        np.testing.assert_array_equal(out[0], pose(100 + x, 50))
    assert tracker.counts == TrackerCounts(frames=7)


def test_an_identity_survives_a_short_gap_and_is_lost_after_max_gap() -> None:
    tracker = IdentityTracker(2, K, max_gap_s=1.0)
    a, b = pose(100, 100), pose(300, 100)
    tracker.update(0.0, frame(a, b))
    # b unseen for 0.5 s: its identity waits.
    out = tracker.update(0.5, frame(a))
    np.testing.assert_array_equal(out[0], a)
    assert np.isnan(out[1]).all()
    out = tracker.update(0.9, frame(pose(302, 101), a))
    np.testing.assert_array_equal(out[1], pose(302, 101))
    assert tracker.active.tolist() == [True, True]
    # b unseen for more than 1 s: identity 1 is lost, then taken by the next new detection.
    tracker.update(1.5, frame(a))
    tracker.update(2.0, frame(a))
    assert tracker.active.tolist() == [True, False]
    assert tracker.counts.identities_lost == 1
    assert tracker.counts.identities_reacquired == 0
    out = tracker.update(2.1, frame(pose(500, 300), a))
    np.testing.assert_array_equal(out, np.stack([a, pose(500, 300)]))
    assert tracker.counts == TrackerCounts(frames=6, identities_lost=1, identities_reacquired=1)


def test_a_detection_beyond_every_gate_takes_the_identity_left_and_is_counted() -> None:
    # Whole animals: every animal the framework gives is written. One far from every identity
    # left takes one anyway (its motion starts over there), counted; it is never dropped.
    tracker = IdentityTracker(2, K, max_gap_s=1.0)
    a, b = pose(100, 100), pose(300, 100)
    tracker.update(0.0, frame(a, b))
    far = pose(500, 300)
    out = tracker.update(0.5, frame(a, far))
    np.testing.assert_array_equal(out, np.stack([a, far]))
    assert tracker.counts.identities_restarted == 1 and tracker.counts.detections_dropped == 0
    out = tracker.update(0.5 + 1 / FPS, frame(pose(501, 300), a))  # followed from there
    np.testing.assert_array_equal(out, np.stack([a, pose(501, 300)]))
    assert tracker.counts.identities_restarted == 1


def test_a_lost_identity_restarts_without_its_old_motion() -> None:
    tracker = IdentityTracker(1, K, max_distance_px=20.0, max_gap_s=0.5)
    for step in range(5):
        tracker.update(step / FPS, frame(pose(100 + 10 * step, 50)))
    tracker.update(2.0, frame(pose(100, 200)))  # lost, then taken again far away
    # Nearly still 0.1 s later: with the old 300 px/s it would be expected 30 px away (gated).
    out = tracker.update(2.1, frame(pose(101, 200)))
    np.testing.assert_array_equal(out[0], pose(101, 200))
    assert tracker.counts == TrackerCounts(frames=7, identities_lost=1, identities_reacquired=1)


def test_extra_detections_are_dropped_least_likely_first_and_counted() -> None:
    tracker = IdentityTracker(2, K)
    sure_left, unsure, sure_right = pose(10, 10, 0, 0.9), pose(50, 10, 0, 0.3), pose(90, 10)
    out = tracker.update(0.0, frame(unsure, sure_right, sure_left))
    np.testing.assert_array_equal(out, np.stack([sure_left, sure_right]))
    assert tracker.counts.detections_dropped == 1
    out = tracker.update(1 / FPS, frame(sure_right, pose(400, 400), sure_left))
    np.testing.assert_array_equal(out, np.stack([sure_left, sure_right]))
    assert tracker.counts.detections_dropped == 2


def test_detections_sharing_no_keypoint_with_the_tracks_are_matched_by_centroid() -> None:
    # Both identities have seen only nose and left ear; the detections show only right ear and
    # tail base. Their keypoint means cannot tell them apart; their centroids can.
    tracker = IdentityTracker(2, K)
    front_a, front_b = pose(100, 50), pose(200, 50)
    front_a[2:, :2] = np.nan
    front_b[2:, 2] = 0.0
    tracker.update(0.0, frame(front_a, front_b))
    back_a, back_b = pose(101, 50), pose(201, 50)
    back_a[:2, :2] = np.nan
    back_b[:2, 2] = 0.0
    out = tracker.update(1 / FPS, frame(back_b, back_a))
    np.testing.assert_array_equal(out, np.stack([back_a, back_b]))
    assert tracker.counts == TrackerCounts(frames=2)


def test_identity_scores_fix_a_swap_that_positions_alone_get_wrong() -> None:
    # Two still animals 30 px apart trade places between two frames: by position the nearer
    # identity wins (wrong); the ID model's 0.9 / 0.1 scores outweigh the 30 px.
    a_left, b_right = pose(100, 50), pose(130, 50)
    a_right, b_left = pose(130, 50), pose(100, 50)
    scores = np.array([[0.9, 0.1], [0.1, 0.9]])  # rows: a, b
    plain = IdentityTracker(2, K)
    hinted = IdentityTracker(2, K)
    for step in range(3):
        plain.update(step / FPS, frame(a_left, b_right))
        hinted.update(step / FPS, frame(a_left, b_right), identity_scores=scores)
    swapped = frame(a_right, b_left)
    np.testing.assert_array_equal(plain.update(0.1, swapped), np.stack([b_left, a_right]))
    np.testing.assert_array_equal(
        hinted.update(0.1, swapped, identity_scores=scores), np.stack([a_right, b_left])
    )


def test_identity_scores_choose_free_identities_too() -> None:
    tracker = IdentityTracker(2, K)
    left, right = pose(10, 10), pose(90, 10)
    scores = np.array([[0.2, 0.8], [0.7, 0.3], [np.nan, np.nan]])  # rows: left, right, empty
    out = tracker.update(0.0, frame(left, right, slots=3), identity_scores=scores)
    np.testing.assert_array_equal(out, np.stack([right, left]))


def crossing(frames: int, meet: int) -> tuple[np.ndarray, np.ndarray]:
    """Return two animals (T, 2, K, 3) crossing in an X at (150, 100) in frame ``meet``.

    Animal 0 walks right, animal 1 walks down, both at 4 px per frame, noise-free.
    """
    animals = np.empty((frames, 2, K, 3))
    for t in range(frames):
        step = 4.0 * (t - meet)
        animals[t, 0] = pose(150 + step, 100)
        animals[t, 1] = pose(150, 100 + step, math.pi / 2)
    return animals, animals[..., :2]


def test_chimeric_instances_are_regrouped_keypoint_by_keypoint() -> None:
    # While the two bodies touch, the decoder groups the front of each animal with the back of
    # the other (ears and tail base swapped); row order is shuffled too. The instance-level
    # match alone would give each identity half of the other animal.
    animals, truth = crossing(40, 20)
    detections = animals.copy()
    chimeric = []
    for t in range(40):
        centres = animals[t, :, :, :2].mean(axis=1)
        if np.hypot(*(centres[0] - centres[1])) < 24:
            chimeric.append(t)
            detections[t, :, 1:] = detections[t, ::-1, 1:]  # swap all but the nose
        if t % 2:
            detections[t] = detections[t, ::-1]
    assert len(chimeric) >= 6
    tracker = IdentityTracker(2, K, regroup=True)  # the merged-instance repair, turned on
    tracked = run(tracker, detections)
    # Identity 0 starts on animal 0 (left of animal 1 in frame 0: x = 70 vs 150).
    np.testing.assert_array_equal(tracked, animals)
    assert count_identity_switches(tracked, truth).switches == 0
    # What it changed is counted: each chimera goes to the identity of its three keypoints,
    # and each identity's nose comes back to it from the other instance (in the frames where
    # both noses are at one place the grouping is moot).
    counts = tracker.counts
    assert len(chimeric) - 1 <= counts.repair_frames <= len(chimeric)
    assert counts.repair_points_moved == 2 * counts.repair_frames
    assert counts.repair_points_dropped == 0
    # The chimeras are no animal in any row order (but where both noses are at one place):
    # an instance-level match alone would give each identity half of the other animal.
    chimeras = [
        t
        for t in chimeric
        if not any(np.array_equal(detections[t, i], animals[t, j]) for i in (0, 1) for j in (0, 1))
    ]
    assert len(chimeras) >= len(chimeric) - 1


def test_by_default_chimeric_instances_are_written_whole_in_identity_order() -> None:
    # The same chimeras without the repair: every output row is one of the framework's
    # instances whole (a permutation of the rows per frame), nothing moved, nothing counted.
    animals, _ = crossing(40, 20)
    detections = animals.copy()
    for t in range(40):
        centres = animals[t, :, :, :2].mean(axis=1)
        if np.hypot(*(centres[0] - centres[1])) < 24:
            detections[t, :, 1:] = detections[t, ::-1, 1:]
        if t % 2:
            detections[t] = detections[t, ::-1]
    tracker = IdentityTracker(2, K)
    tracked = run(tracker, detections)
    for t in range(40):
        assert any(
            np.array_equal(tracked[t], detections[t, list(order)]) for order in ((0, 1), (1, 0))
        ), t
    counts = tracker.counts
    assert counts.repair_frames == counts.repair_points_moved == counts.repair_points_dropped == 0


def test_keypoints_below_the_threshold_are_written_as_given() -> None:
    # A keypoint under min_likelihood counts as unseen for motion only: the row keeps it, with
    # its likelihood; an animal with no keypoint above it is written too (a row left).
    tracker = IdentityTracker(2, K, min_likelihood=0.5)
    a, b = pose(100, 100), pose(300, 100)
    tracker.update(0.0, frame(a, b))
    weak = pose(101, 100)
    weak[1, 2] = 0.1
    faint = pose(302, 100, likelihood=0.2)
    out = tracker.update(1 / FPS, frame(faint, weak))
    np.testing.assert_array_equal(out, np.stack([weak, faint]))
    assert tracker.counts.detections_dropped == 0


def test_the_repair_keeps_a_weak_keypoint_unless_another_takes_its_place() -> None:
    # Two animals side by side (in contact), B's tail base grouped with A: the repair moves it
    # to B (whose own tail base is below the threshold: replaced, counted as dropped); A's own
    # weak ear stays in its row.
    tracker = IdentityTracker(2, K, regroup=True, min_likelihood=0.5)
    a, b = pose(100, 100), pose(100, 125)
    for step in range(4):
        tracker.update(step / FPS, frame(a, b))
    chimera, rest = a.copy(), b.copy()
    chimera[1, 2] = 0.1  # A's weak left ear
    rest[3, 2] = 0.1  # B's weak tail base
    chimera[3] = b[3]  # B's tail base in A's instance (A's own is lost)
    out = tracker.update(4 / FPS, frame(chimera, rest))
    expected_a, expected_b = chimera.copy(), rest.copy()
    expected_a[3] = np.nan
    expected_b[3] = b[3]
    np.testing.assert_array_equal(out, np.stack([expected_a, expected_b]))
    counts = tracker.counts
    assert (counts.repair_frames, counts.repair_points_moved, counts.repair_points_dropped) == (
        1,
        1,
        1,
    )


def test_far_apart_keypoints_stay_with_their_instances() -> None:
    # Two animals 60 px apart (no contact): even a keypoint that fits the other's prediction
    # better (a decoder's gross error) stays with its instance.
    tracker = IdentityTracker(2, K)
    for step in range(3):
        tracker.update(step / FPS, frame(pose(100 + step, 50), pose(160 + step, 50)))
    odd = pose(103, 50)
    odd[0, :2] = [163.0 + 12.0, 50.0]  # its nose on the other's nose
    out = tracker.update(3 / FPS, frame(odd, pose(163, 50)))
    np.testing.assert_array_equal(out, np.stack([odd, pose(163, 50)]))


def test_two_tracks_coast_through_a_merge_and_come_out_right() -> None:
    # Straight crossing paths: for 8 frames around the meeting the decoder sees one animal
    # (the one on top, animal 1); the hidden animal's identity coasts on its motion, takes
    # none of the other's keypoints, and gets its animal back at the split.
    animals, truth = crossing(40, 20)
    detections = animals.copy()
    hidden = np.arange(16, 24)
    detections[hidden, 0] = np.nan
    truth = truth.copy()
    truth[hidden, 0] = np.nan
    tracker = IdentityTracker(2, K)
    tracked = run(tracker, detections)
    expected = animals.copy()
    expected[hidden, 0] = np.nan
    np.testing.assert_array_equal(tracked, expected)
    assert count_identity_switches(tracked, truth).switches == 0


def test_a_body_keeps_its_shape_through_a_contact_with_misplaced_keypoints() -> None:
    # In contact, one of animal 0's keypoints is misplaced by 15 px in each of 6 frames (not
    # close enough to the other animal to be taken by it). Remembered as seen, the misplaced
    # keypoint would bend the body; moved as a whole by its other keypoints, the body is
    # predicted where it is and the identities never fray.
    animals, truth = crossing(40, 20)
    detections = animals.copy()
    detections[17:23, 0, 3, 1] += 15.0
    tracker = IdentityTracker(2, K)
    during = run(tracker, detections[:23])
    # What identity 0 remembers after the contact's last frame is its true body, not the
    # misplaced keypoint (which it still reports, as detected).
    np.testing.assert_allclose(tracker.motion.kp_xy[0], animals[22, 0, :, :2], atol=1e-9)
    tracked = np.concatenate([during, run(tracker, detections[23:], start_s=23 / FPS)])
    np.testing.assert_array_equal(tracked, detections)
    assert count_identity_switches(tracked, truth).switches == 0


def test_a_body_in_contact_turns_with_its_animal() -> None:
    # Two animals side by side (in contact), one turning on the spot by 0.1 rad per frame: its
    # remembered body turns with it (a body only shifted would keep its first heading and its
    # ends would drift off, 12 px per 0.5 rad).
    tracker = IdentityTracker(2, K)
    for step in range(12):
        turning = pose(100, 100, 0.1 * step)
        tracker.update(step / FPS, frame(turning, pose(100, 130)))
    np.testing.assert_allclose(tracker.motion.kp_xy[0], pose(100, 100, 1.1)[:, :2], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_animals": 0}, "max_animals to be an integer >= 1"),
        ({"max_animals": 2.0}, "max_animals to be an integer"),
        ({"keypoints": True}, "keypoints to be an integer"),
        ({"max_distance_px": 0.0}, "max_distance_px to be a finite number > 0"),
        ({"max_distance_px": math.inf}, "max_distance_px"),
        ({"max_gap_s": -1.0}, "max_gap_s"),
        ({"min_likelihood": math.nan}, "min_likelihood to be a finite number >= 0"),
        ({"velocity_time_constant_s": 0.0}, "velocity_time_constant_s"),
        ({"identity_weight_px": -1.0}, "identity_weight_px"),
        ({"ambiguity_margin": -0.1}, "ambiguity_margin"),
        ({"regroup_margin_px": -1.0}, "regroup_margin_px"),
        ({"contact_distance_px": 0.0}, "contact_distance_px to be a finite number > 0"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    arguments: dict[str, float] = {"max_animals": 2, "keypoints": K, **kwargs}
    with pytest.raises(ValueError, match=message):
        IdentityTracker(**arguments)  # type: ignore[arg-type]


def test_invalid_updates_are_refused() -> None:
    tracker = IdentityTracker(2, K)
    tracker.update(1.0, frame(pose(10, 10)))
    with pytest.raises(ValueError, match=r"shape \(D, 4, 3\), but got \(2, 5, 3\)"):
        tracker.update(2.0, np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="finite frame time"):
        tracker.update(math.nan, frame(pose(10, 10)))
    with pytest.raises(ValueError, match=r"scores of shape \(1, 2\)"):
        tracker.update(2.0, frame(pose(10, 10)), identity_scores=np.ones((2, 2)))
    with pytest.raises(ValueError, match="scores >= 0"):
        tracker.update(2.0, frame(pose(10, 10)), identity_scores=-np.ones((1, 2)))
    assert tracker.counts.frames == 1  # refused updates change nothing


def test_a_clock_that_goes_back_starts_tracking_over_and_is_counted() -> None:
    tracker = IdentityTracker(2, K)
    a, b = pose(10, 10), pose(90, 10)
    tracker.update(100.0, frame(a, b))
    # The old identities would have matched a and b; started over, they go left to right.
    out = tracker.update(1.0, frame(pose(95, 10), pose(300, 10)))
    np.testing.assert_array_equal(out, np.stack([pose(95, 10), pose(300, 10)]))
    assert tracker.counts == TrackerCounts(frames=2, time_resets=1)
    tracker.reset()  # forgets the identities, keeps the counts
    assert tracker.active.tolist() == [False, False]
    assert tracker.counts.frames == 2


def _long_body(x: float, y: float) -> np.ndarray:
    """A (K, 3) animal four times BODY's size (96 px long) facing +x, centred at (x, y)."""
    return np.column_stack([4.0 * BODY + np.array([x, y]), np.full(K, 0.9)])


def test_fragments_of_overlapping_animals_are_regrouped_though_they_look_apart() -> None:
    # Two animals lie side by side, bodies overlapping (ears 14 px apart). Then the decoder
    # gives fragments: a chimera of A's nose and ear with B's tail base, and B's nose and ear.
    # The fragments' closest keypoints are 51 px apart, beyond the contact distance, yet the
    # animals touch: their whole bodies, as the tracker predicts them, say so, and B's tail
    # base goes back to B instead of riding on A's row.
    a, b = _long_body(200, 200), _long_body(210, 250)
    tracker = IdentityTracker(2, K, regroup=True)
    for step in range(6):
        out = tracker.update(step / FPS, frame(a, b))
    np.testing.assert_array_equal(out, np.stack([a, b]))  # A left of B: identity 0
    chimera = np.full((K, 3), np.nan)
    chimera[[0, 1]], chimera[3] = a[[0, 1]], b[3]
    rest = np.full((K, 3), np.nan)
    rest[[0, 2]] = b[[0, 2]]
    gap = np.hypot(*(chimera[:, None, :2] - rest[None, :, :2]).transpose(2, 0, 1))
    assert np.nanmin(gap) > tracker.contact_distance_px
    out = tracker.update(6 / FPS, frame(chimera, rest))
    expected_a = np.full((K, 3), np.nan)
    expected_a[[0, 1]] = a[[0, 1]]
    expected_b = np.full((K, 3), np.nan)
    expected_b[[0, 2, 3]] = b[[0, 2, 3]]
    np.testing.assert_array_equal(out, np.stack([expected_a, expected_b]))


def test_bodies_are_the_seen_keypoints_and_the_unseen_ones_where_motion_puts_them() -> None:
    tracker = IdentityTracker(2, K, max_gap_s=0.5)
    assert np.isnan(tracker.bodies()).all()  # nothing seen yet
    for step in range(3):  # walking right at 3 px per frame (90 px/s)
        tracker.update(step / FPS, frame(pose(100 + 3 * step, 50), pose(300, 50)))
    partial = pose(109, 50)
    partial[0] = np.nan  # the nose unseen
    tracker.update(3 / FPS, frame(partial, pose(300, 50)))
    bodies = tracker.bodies()
    np.testing.assert_allclose(bodies[0, 1:], partial[1:, :2])
    np.testing.assert_allclose(bodies[0, 0], pose(109, 50)[0, :2], atol=0.5)  # predicted nose
    np.testing.assert_allclose(bodies[1], pose(300, 50)[:, :2])
    tracker.update(1.0, frame(partial, pose(300, 50)))  # the nose unseen for longer than the gap
    assert np.isnan(tracker.bodies()[0, 0]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whatever_the_frames_the_output_is_the_input_animals_whole(seed: int) -> None:
    # Any model's animals (never more than max_animals): random walks that meet and cross,
    # random missing keypoints, likelihoods on both sides of the threshold, animals with no
    # keypoint above it, chimeras where they touch, jumps beyond the gate, shuffled rows. Every
    # frame's output must be a permutation of its input rows (every animal whole, none dropped,
    # none invented), whatever the tracker believes.
    rng = np.random.default_rng(seed)
    animals, frames = 3, 300
    centres = np.cumsum(rng.normal(0, 6, (frames, animals, 2)), axis=0) + [[100, 100]] * animals
    centres[:, 1] += 40  # the second animal starts next to the first: they touch
    tracker = IdentityTracker(animals, K, min_likelihood=0.5)
    for t in range(frames):
        rows = []
        for b in range(animals):
            if rng.random() < 0.1:
                continue  # not detected in this frame
            one = pose(*centres[t, b], heading=float(rng.uniform(-3, 3)))
            one[:, 2] = rng.uniform(0.0, 1.0, K)
            one[rng.random(K) < 0.2, :2] = np.nan
            if rng.random() < 0.05:
                one[:, :2] += 300.0  # a jump beyond the gate
            rows.append(one)
        if len(rows) >= 2 and rng.random() < 0.2:  # a chimera: two animals' halves swapped
            rows[0][2:], rows[1][2:] = rows[1][2:].copy(), rows[0][2:].copy()
        given = frame(*rows, slots=animals)
        given = given[rng.permutation(animals)]
        out = tracker.update(t / FPS, given)
        placed = sorted(r.tobytes() for r in out if np.isfinite(r[:, :2]).any())
        wanted = sorted(r.tobytes() for r in given if np.isfinite(r[:, :2]).any())
        assert placed == wanted, t
    assert tracker.counts.detections_dropped == 0
    assert tracker.counts.repair_points_moved == 0


ALL_SEEN = [[True] * 6, [True] * 6]


@pytest.mark.parametrize(
    ("sources", "seen", "placed", "chimeras"),
    [
        # Each instance's seen keypoints all followed by one identity: written under it, named
        # (identity 1 follows nothing of its instance's unseen keypoints 4 and 5).
        ([[0] * 6, [1, 1, 1, 1, -1, -1]], [[True] * 6, [True] * 4 + [False] * 2], [0, 1],
         [False, False]),
        # Two chimeras (the tails swapped): each goes to the identity of its five keypoints,
        # but each holds the other animal's tail: neither is wholly its identity's animal.
        ([[0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 0]], ALL_SEEN, [0, 1], [True, True]),
        # One animal assembled twice (the front, then the back with the other's nose): the
        # second instance's keypoints went mostly to identity 0, yet identity 1 must take it
        # whole (one instance per identity); the first is wholly identity 0's.
        ([[0, 0, 0, 1, 1, 1], [1, -1, -1, -1, -1, -1]], [[True] * 3 + [False] * 3, [True] * 6],
         [0, 1], [False, True]),
        # Two chimeras whose split votes move them off the identities motion matched.
        ([[0, 0, 1, 1, -1, -1], [0, 0, 0, 0, 1, 1]], ALL_SEEN, [1, 0], [True, True]),
    ],
)  # fmt: skip
def test_an_instance_with_a_keypoint_another_identity_followed_is_written_whole_and_marked(
    sources: list[list[int]], seen: list[list[bool]], placed: list[int], chimeras: list[bool]
) -> None:
    """Whole animals in the files; an identity whose instance holds a seen keypoint that
    another identity followed (a chimera, or one animal assembled twice) is marked in
    last_chimeras, so the keeper leaves it unnamed to the rules instead of a switch and back."""
    tracker = IdentityTracker(2, 6)
    rows, matched = np.array([0, 1]), np.array([0, 1])
    chimeric = tracker.last_chimeras
    written = tracker.contact.whole_animals(
        rows, matched, np.array(sources), np.array(seen), chimeric
    )
    assert written.tolist() == placed
    assert tracker.last_chimeras.tolist() == chimeras


def test_what_each_identity_followed_is_beside_the_whole_animals() -> None:
    """The rules' truth beside the files': the chimeras' keypoints as each identity followed
    them (what the repair writes), while the output rows stay the framework's animals."""
    animals, _ = crossing(40, 20)
    detections = animals.copy()
    for t in range(40):
        centres = animals[t, :, :, :2].mean(axis=1)
        if np.hypot(*(centres[0] - centres[1])) < 24:
            detections[t, :, 1:] = detections[t, ::-1, 1:]  # the front of one, back of other
    whole, repaired = IdentityTracker(2, K), IdentityTracker(2, K, regroup=True)
    chimera_frames = []
    for t in range(40):
        rows = whole.update(t / FPS, detections[t])
        fixed = repaired.update(t / FPS, detections[t])
        np.testing.assert_array_equal(whole.followed(rows), fixed)
        assert repaired.followed(fixed) is fixed and not repaired.last_chimeras.any()
        if whole.last_chimeras.any():
            chimera_frames.append(t)
            assert not np.array_equal(rows, fixed)  # the files keep the chimeras whole
        else:
            assert whole.followed(rows) is rows
    assert len(chimera_frames) >= 5
