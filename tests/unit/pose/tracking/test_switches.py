"""Identity switches and keypoint errors of tracked identities against ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.pose.tracking.switches import (
    SwitchEvent,
    count_identity_switches,
    keypoint_errors,
    match_identities,
)

T, K = 10, 3


def truth_two_animals() -> np.ndarray:
    """(T, 2, K, 2): animal 0 walks right along y = 0, animal 1 stays at x = 100, y = 50."""
    truth = np.zeros((T, 2, K, 2))
    truth[:, 0, :, 0] = np.arange(T)[:, None] * 3.0 + np.arange(K)
    truth[:, 1, :, 0] = 100.0 + np.arange(K)
    truth[:, 1, :, 1] = 50.0
    return truth


def as_tracked(positions: np.ndarray, likelihood: float = 0.9) -> np.ndarray:
    """Return (T, A, K, 3) tracker output for (T, A, K, 2) positions."""
    return np.concatenate([positions, np.full((*positions.shape[:3], 1), likelihood)], axis=-1)


def test_perfect_tracking_in_another_identity_order_has_no_switch() -> None:
    truth = truth_two_animals()
    tracked = as_tracked(truth[:, ::-1] + 0.5)  # identity 0 is animal 1, 0.7 px off
    report = count_identity_switches(tracked, truth)
    assert report.switches == 0 and report.events == () and report.switch_frames == ()
    assert (report.frames, report.frames_matched) == (T, T)
    assert (report.animal_frames, report.animal_frames_matched) == (2 * T, 2 * T)
    assert report.matched_fraction == 1.0
    np.testing.assert_array_equal(match_identities(tracked, truth), np.tile([1, 0], (T, 1)))


def test_a_swap_counts_one_switch_per_animal_at_its_frame() -> None:
    truth = truth_two_animals()
    positions = truth.copy()
    positions[6:] = positions[6:, ::-1]
    report = count_identity_switches(as_tracked(positions), truth)
    assert report.switches == 2
    assert report.events == (SwitchEvent(6, 0, 0, 1), SwitchEvent(6, 1, 1, 0))
    assert report.switch_frames == (6,)


def test_animals_passing_through_one_spot_keep_their_identities_in_the_count() -> None:
    # In frame 5 the animals are 2 px apart and the tracked keypoints 1.6 px off towards each
    # other: frame by frame, the swapped pairing would be cheaper (0.8 px against 3.2 px), but
    # each animal's last identity is still within the gate, so it is kept.
    truth = truth_two_animals()
    truth[5, 1] = truth[5, 0] + [2.0, 0.0]
    positions = truth.copy()
    positions[5, 0] += [1.6, 0.0]
    positions[5, 1] -= [1.6, 0.0]
    report = count_identity_switches(as_tracked(positions), truth)
    assert report.switches == 0
    np.testing.assert_array_equal(
        match_identities(as_tracked(positions), truth), np.tile([0, 1], (T, 1))
    )


def test_a_gap_does_not_forgive_a_switch_and_unmatched_frames_are_counted() -> None:
    truth = truth_two_animals()
    positions = truth.copy()
    positions[3:5, 1] = np.nan  # animal 1 unseen in frames 3 and 4, then back on identity 0
    positions[5:] = truth[5:, ::-1]  # (and animal 0 on identity 1)
    report = count_identity_switches(as_tracked(positions), truth)
    assert report.events == (SwitchEvent(5, 0, 0, 1), SwitchEvent(5, 1, 1, 0))
    assert (report.frames_matched, report.animal_frames_matched) == (T - 2, 2 * T - 2)
    assert report.matched_fraction == pytest.approx(18 / 20)


def test_pairs_beyond_the_gate_absent_animals_and_unseen_keypoints() -> None:
    truth = truth_two_animals()
    truth[0, 1] = np.nan  # animal 1 absent in frame 0: not an animal-frame
    positions = truth.copy()
    positions[:, 0, :, 1] += 25.0  # animal 0's identity 25 px off: beyond the 20 px gate
    tracked = as_tracked(positions)
    tracked[:, 1, 0, 2] = 0.05  # one keypoint below the likelihood threshold: not compared
    tracked[:, 1, 0, :2] = 1e6
    report = count_identity_switches(tracked, truth)
    assert (report.animal_frames, report.animal_frames_matched) == (2 * T - 1, T - 1)
    assert report.frames_matched == 0
    assert count_identity_switches(tracked, truth, max_distance_px=30.0).animal_frames_matched == (
        2 * T - 1
    )


def test_positions_without_likelihood_are_accepted() -> None:
    truth = truth_two_animals()
    report = count_identity_switches(truth[:, ::-1].copy(), truth)
    assert report.switches == 0 and report.animal_frames_matched == 2 * T


def test_keypoint_errors_follow_the_first_mapping_or_each_frame() -> None:
    truth = truth_two_animals()
    positions = truth.copy()
    positions[:, :, 2, 0] += 1.0  # keypoint 2 one pixel off
    positions[6:] = positions[6:, ::-1]  # swapped from frame 6 on
    positions[2, 0, 1] = np.nan
    tracked = as_tracked(positions)

    kept = keypoint_errors(tracked, truth)
    assert kept.shape == (T, 2, K)
    expected = np.zeros((T, 2, K))
    expected[:, :, 2] = 1.0
    expected[2, 0, 1] = np.nan
    np.testing.assert_array_equal(keypoint_errors(tracked, truth, per_frame=True), expected)
    np.testing.assert_array_equal(kept[:6], expected[:6])
    # After the swap each animal is compared with the other one's identity: ~100 px off.
    assert (kept[6:] > 50).all()
    assert np.nanmedian(kept[:6]) == 0.0


def test_keypoint_errors_of_an_animal_never_matched_are_nan() -> None:
    truth = truth_two_animals()
    positions = truth.copy()
    positions[:, 1] = np.nan
    errors = keypoint_errors(positions, truth)
    assert np.isnan(errors[:, 1]).all() and (errors[:, 0] == 0).all()


def test_invalid_inputs_are_refused() -> None:
    truth = truth_two_animals()
    with pytest.raises(ValueError, match=r"tracked of shape \(T, A, K, 2 or 3\)"):
        count_identity_switches(truth[0], truth)
    with pytest.raises(ValueError, match=r"truth of shape \(T, B, K, 2\)"):
        count_identity_switches(as_tracked(truth), as_tracked(truth))
    with pytest.raises(ValueError, match="same frames T and keypoints K"):
        count_identity_switches(truth[:5], truth)
    with pytest.raises(ValueError, match="max_distance_px > 0"):
        count_identity_switches(truth, truth, max_distance_px=0.0)
