"""Shared, expensive fixtures: the rig's views rendered and the board detected once per module."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.spatial.calibration.detection import BoardDetection, BoardDetector
from tests.unit.spatial.calibration.rig import rendered_views, rig_cameras

N_FRAMES = 75


@pytest.fixture(scope="session")
def cameras() -> list[PinholeCamera]:
    """The simulated rig's true cameras."""
    return rig_cameras()


@pytest.fixture(scope="session")
def views(cameras: list[PinholeCamera]) -> dict[str, list[np.ndarray]]:
    """The rig's frames of the moving board."""
    return rendered_views(cameras, N_FRAMES)


@pytest.fixture(scope="session")
def detections(views: dict[str, list[np.ndarray]]) -> dict[str, list[BoardDetection | None]]:
    """The board detected in every frame of every camera."""
    detector = BoardDetector()
    return {name: [detector.detect(frame) for frame in frames] for name, frames in views.items()}
