"""Whether a calibration can triangulate: checked before a start and when the worker loads it.

What is refused: docs/3d.md, "Live triangulation".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabstream.core.pinhole import CalibrationError, PinholeCamera, camera_problems
from deeplabstream.spatial.triangulation.dlt import Triangulator

REDO = "Calibrate again with 'deeplabstream-calibrate' (docs/3d.md)"
#: Two centres closer than this fraction of the rig's size are the same place (float64 rounding).
MIN_BASELINE = 1e-9
#: Round-trip points may come back this far off, as a fraction of their distance to the cameras:
#: 1 mm at 1 m. A usable rig's come back within about 1e-9 (the lens's undistortion is
#: iterative, so a strong lens adds a little); a degenerate one's by whole distances.
ROUND_TRIP_TOLERANCE = 1e-3


def check_calibration(path: Path, cameras: Sequence[PinholeCamera]) -> None:
    """Raise a CalibrationError naming ``path`` and the cameras when they cannot triangulate."""
    for camera in cameras:
        problems = camera_problems(camera)
        if problems:
            raise CalibrationError(
                f"{path}: camera {camera.name!r}: {'; '.join(problems)}. This calibration "
                f"cannot triangulate. {REDO}"
            )
    scale = _rig_scale(cameras)
    for first, second in itertools.combinations(cameras, 2):
        baseline = float(np.linalg.norm(first.center - second.center))
        if baseline <= MIN_BASELINE * scale:
            raise CalibrationError(
                f"{path}: cameras {first.name!r} and {second.name!r} are at the same centre "
                f"(baseline {baseline:.3g}): two views from one place cannot triangulate. {REDO}"
            )
    _check_round_trip(path, cameras, scale)


def _rig_scale(cameras: Sequence[PinholeCamera]) -> float:
    """Return the rig's size: the largest distance of a camera centre from the world origin."""
    return max([1.0, *(float(np.linalg.norm(camera.center)) for camera in cameras)])


def _test_points(pair: Sequence[PinholeCamera], scale: float) -> np.ndarray:
    """Return points both views see: a grid around where their optical axes pass closest."""
    centres = np.stack([camera.center for camera in pair])
    directions = np.stack([camera.rotation_matrix[2] for camera in pair])  # optical axes
    candidates = [centres + directions * scale]  # down every axis, a rig's size away
    normal = sum(np.eye(3) - np.outer(d, d) for d in directions)
    if np.linalg.cond(normal) < 1e8:  # the axes are not parallel: they pass near one point
        target = sum(
            (np.eye(3) - np.outer(d, d)) @ c for c, d in zip(centres, directions, strict=True)
        )
        meet = np.linalg.solve(normal, target)
        reach = float(np.median(np.linalg.norm(centres - meet, axis=1)))
        across = np.linspace(-0.5, 0.5, 7)
        grid = np.array([(x, y, z) for x in across for y in across for z in (-0.2, 0.0, 0.2)])
        candidates.insert(0, meet + grid * reach)
    points = np.concatenate(candidates)
    keep = np.ones(len(points), dtype=bool)
    for camera in pair:
        depth = camera.to_camera(points)[:, 2]
        with np.errstate(invalid="ignore"):
            pixels = camera.project(points)
            width, height = camera.size
            inside = (pixels >= 0).all(axis=1) & (pixels[:, 0] < width) & (pixels[:, 1] < height)
        keep &= (depth > 0) & inside
    return points[keep]


def _check_round_trip(path: Path, cameras: Sequence[PinholeCamera], scale: float) -> None:
    """Triangulate points back from each pair's views; each camera must pass with another."""
    passed: set[str] = set()
    for pair in itertools.combinations(cameras, 2):
        points = _test_points(pair, scale)
        if not len(points):
            continue  # these two do not look at the same place; another pair may
        views = np.stack([camera.project(points) for camera in pair])  # (2, K, 2)
        seen = np.concatenate([views, np.ones((*views.shape[:2], 1))], axis=2)
        solved = Triangulator(pair, min_likelihood=0.0).triangulate(seen).xyz
        distance = np.linalg.norm(points - pair[0].center, axis=1)
        error = np.linalg.norm(solved - points, axis=1) / distance
        worst = float(np.max(error)) if np.isfinite(error).all() else float("inf")
        if worst > ROUND_TRIP_TOLERANCE:
            raise CalibrationError(
                f"{path}: cameras {pair[0].name!r} and {pair[1].name!r} fail a reprojection "
                f"round trip: points both see, projected into their views and triangulated "
                f"back, come back off by up to {worst:.3g} of their distance (a usable "
                f"calibration: below {ROUND_TRIP_TOLERANCE:g}). {REDO}"
            )
        passed.update(camera.name for camera in pair)
    alone = [camera.name for camera in cameras if camera.name not in passed]
    if alone:
        raise CalibrationError(
            f"{path}: camera(s) {', '.join(map(repr, alone))} share no view with any other "
            f"calibrated camera (no point in front of both and inside both images): they "
            f"cannot triangulate. {REDO}"
        )
