"""The two-stage benchmark's comparison of the project's animals with sleap-nn's."""

from __future__ import annotations

import numpy as np

from benchmarks.two_stage import _max_distance


def _animal(x: float, y: float, nodes: int = 3) -> np.ndarray:
    points = np.stack([np.full(nodes, x), np.full(nodes, y), np.ones(nodes)], axis=1)
    points[:, 0] += np.arange(nodes)
    return points


def test_animals_are_matched_by_position_whatever_their_order() -> None:
    theirs = np.stack([_animal(100, 100), _animal(500, 500)])
    ours = np.stack([_animal(500.5, 500), _animal(100, 99.75)])  # the other slot order
    assert _max_distance(ours, theirs) == 0.5


def test_empty_rows_and_unseen_points_are_skipped() -> None:
    theirs = np.stack([_animal(100, 100)])
    ours = np.stack([_animal(100, 102), np.full((3, 3), np.nan)])
    ours[0, 1, :2] = np.nan  # a point not found: no distance
    assert _max_distance(ours, theirs) == 2.0
    assert _max_distance(np.full((2, 3, 3), np.nan), theirs) == 0.0
