"""Calibrated views of the simulated 3D rig's arena (mm, the floor is z = 0, z up)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deeplabstream.core.pinhole import PinholeCamera

ARENA_CENTRE = (200.0, 150.0, 0.0)
SIZE = (640, 480)


def rig_cameras(count: int = 3, distorted: bool = False) -> list[PinholeCamera]:
    """Return ``count`` cameras around and above the arena, all looking at its centre."""
    looking_at = PinholeCamera.looking_at
    views = [
        looking_at("front", SIZE, 600, (200, -300, 400), ARENA_CENTRE, (0, 0, 1)),
        looking_at("side", SIZE, 600, (750, 150, 350), ARENA_CENTRE, (0, 0, 1)),
        looking_at("top", SIZE, 500, (200, 150, 700), ARENA_CENTRE, (0, -1, 0)),
    ][:count]
    if not distorted:
        return views
    lens = np.array([-0.2, 0.05, 0.001, -0.001, 0.0])
    return [PinholeCamera(c.name, c.size, c.matrix, lens, c.rotation, c.translation) for c in views]


def random_points(count: int, seed: int = 0) -> np.ndarray:
    """Return ``count`` points (count, 3) in the arena, up to 80 mm above the floor."""
    return np.random.default_rng(seed).uniform((20, 20, 0), (380, 280, 80), (count, 3))


def observe(cameras: list[PinholeCamera], points: np.ndarray, likelihood: float = 0.9) -> Any:
    """Return what each camera sees of ``points``: (C, K, 3) pixels and likelihood."""
    column = np.full((len(points), 1), likelihood)
    return np.stack([np.concatenate([c.project(points), column], axis=1) for c in cameras])


@pytest.fixture
def cameras() -> list[PinholeCamera]:
    """Three ideal cameras around the arena."""
    return rig_cameras()
