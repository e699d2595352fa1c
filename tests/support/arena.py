"""Simulated-arena settings that make the example experiment's regions fire on schedule."""

from __future__ import annotations


def back_and_forth(cycles: int = 60, period: int = 150) -> str:
    """Return waypoints: the mouse walks into ExampleExperiment's left circle, stays, walks out.

    ``MOTION = waypoints`` reads them (frame: x y); the left circle is at (160, 240).
    """
    points = []
    for cycle in range(cycles):
        start = cycle * period
        points += [f"{start}: 320 240", f"{start + 40}: 320 240", f"{start + 70}: 160 240"]
        points += [f"{start + 110}: 160 240"]
    return "; ".join(points)
