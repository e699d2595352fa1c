"""Simulated-arena settings that make the example experiment's regions fire on schedule; frames."""

from __future__ import annotations

import numpy as np


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


def arena_frames(count: int, seed: int) -> list[np.ndarray]:
    """The first ``count`` frames the simulated arena renders with ``seed``."""
    from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena

    arena = SimulatedArena(ArenaParams(seed=seed))
    frames = []
    for _ in range(count):
        frame = np.empty(arena.frame_shape, np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    return frames
