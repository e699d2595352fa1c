"""The trail and the occupancy heatmap: they accumulate what they are fed and draw it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeplabstream.app.display.occupancy import (
    OccupancyMap,
    Trail,
    draw_heatmap,
    draw_trail,
    heatmap_image,
)


def test_the_trail_keeps_the_last_seconds_only() -> None:
    trail = Trail(seconds=1.0)
    for frame in range(60):  # 2 s at 30 fps
        trail.add(frame / 30, 10.0 + frame, 20.0)
    points = trail.points()
    assert points[0, 0] >= 59 / 30 - 1.0 - 1e-9
    assert points[-1].tolist() == [59 / 30, 69.0, 20.0]
    assert len(trail) == 31


def test_time_going_back_starts_a_new_trail() -> None:
    trail = Trail(seconds=5.0)
    trail.add(10.0, 1.0, 1.0)
    trail.add(10.1, 2.0, 2.0)
    trail.add(0.0, 3.0, 3.0)
    assert trail.points().tolist() == [[0.0, 3.0, 3.0]]
    with pytest.raises(ValueError, match="some time"):
        Trail(seconds=0)


def test_the_trail_draws_a_line_that_breaks_where_the_keypoint_was_not_seen() -> None:
    trail = Trail(seconds=10.0)
    for step, x in enumerate([10, 30, 50, math.nan, 70, 90]):
        trail.add(step * 0.1, float(x), 40.0)
    canvas = np.zeros((80, 100, 3), np.uint8)
    draw_trail(canvas, trail)
    drawn = canvas.any(axis=2)
    assert drawn[40, 20] and drawn[40, 40] and drawn[40, 80]  # 10-30-50 and 70-90
    assert not drawn[40, 60]  # no line across the gap
    assert not drawn[10, 50]
    # The newest segment is brighter than the oldest (the trail fades with age).
    assert canvas[40, 85].max() > canvas[40, 15].max()


def test_a_trail_draws_on_a_mono_frame() -> None:
    trail = Trail()
    trail.add(0.0, 5.0, 5.0)
    trail.add(0.1, 45.0, 5.0)
    canvas = np.zeros((20, 50), np.uint8)
    draw_trail(canvas, trail)
    assert canvas[5, 25] > 0 and canvas[15, 25] == 0


def test_occupancy_counts_each_pose_in_its_bin_and_grows() -> None:
    occupancy = OccupancyMap(bin_px=32)
    for _ in range(3):
        assert occupancy.add(40.0, 10.0)  # bin (row 0, column 1)
    assert occupancy.add(500.0, 300.0)  # far away: the grid grows
    assert not occupancy.add(math.nan, 3.0)
    assert not occupancy.add(-1.0, 3.0)
    assert occupancy.total == 4
    assert occupancy.counts[0, 1] == 3
    assert occupancy.counts[300 // 32, 500 // 32] == 1
    assert occupancy.fraction(33.0, 31.0) == pytest.approx(0.75)
    assert occupancy.fraction(5000.0, 5.0) == 0.0
    occupancy.clear()
    assert occupancy.total == 0 and occupancy.counts.size == 0


def test_the_heatmap_colours_visited_bins_only_the_busiest_hottest() -> None:
    occupancy = OccupancyMap(bin_px=10)
    for _ in range(9):
        occupancy.add(5.0, 5.0)  # bin (0, 0): the busiest
    occupancy.add(25.0, 15.0)  # bin (1, 2): once
    image, mask = heatmap_image(occupancy, 30, 40)
    assert image.shape == (30, 40, 3) and mask.shape == (30, 40)
    assert mask[0:10, 0:10].all() and mask[10:20, 20:30].all()
    assert mask.sum() == 200
    busiest, rare = image[5, 5], image[15, 25]
    assert busiest[2] > busiest[0]  # red (BGR) for the busiest bin
    assert rare[0] > rare[2]  # blue-ish for a bin visited once


def test_draw_heatmap_blends_onto_the_frame_and_leaves_the_rest() -> None:
    occupancy = OccupancyMap(bin_px=16)
    occupancy.add(8.0, 8.0)
    canvas = np.full((48, 64, 3), 100, np.uint8)
    draw_heatmap(canvas, occupancy, alpha=0.5)
    assert not np.array_equal(canvas[8, 8], [100, 100, 100])  # blended
    assert canvas[30, 40].tolist() == [100, 100, 100]  # never visited: untouched
    empty = np.full((48, 64, 3), 100, np.uint8)
    draw_heatmap(empty, OccupancyMap(), alpha=0.5)
    assert (empty == 100).all()
    mono = np.full((48, 64), 100, np.uint8)
    draw_heatmap(mono, occupancy, alpha=1.0)
    assert mono[8, 8] != 100 and mono[30, 40] == 100
