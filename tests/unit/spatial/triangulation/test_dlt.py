"""Linear triangulation of keypoints projected through known cameras."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.spatial.triangulation.dlt import Triangulator, solve_dlt, undistort_pixels
from tests.unit.spatial.triangulation.conftest import observe, random_points, rig_cameras


@pytest.mark.parametrize("count", [2, 3])
def test_exact_without_noise(count: int) -> None:
    cameras = rig_cameras(count)
    points = random_points(20)
    result = Triangulator(cameras).triangulate(observe(cameras, points))
    np.testing.assert_allclose(result.xyz, points, atol=1e-6)
    assert np.all(result.error_px < 1e-6)
    assert np.all(result.ncams == count)
    np.testing.assert_allclose(result.score, 0.9)


def test_exact_through_distorted_lenses() -> None:
    cameras = rig_cameras(3, distorted=True)
    points = random_points(20, seed=1)
    result = Triangulator(cameras).triangulate(observe(cameras, points))
    np.testing.assert_allclose(result.xyz, points, atol=1e-3)
    assert np.all(result.error_px < 1e-3)


def test_small_error_with_pixel_noise() -> None:
    cameras = rig_cameras(3)
    points = random_points(200, seed=2)
    seen = observe(cameras, points)
    seen[..., :2] += np.random.default_rng(3).normal(0, 0.5, seen[..., :2].shape)
    result = Triangulator(cameras).triangulate(seen)
    error_mm = np.linalg.norm(result.xyz - points, axis=1)
    assert np.median(error_mm) < 1.0  # half a pixel of noise: under a millimetre
    assert 0.1 < np.median(result.error_px) < 1.0


def test_a_low_likelihood_view_is_dropped() -> None:
    cameras = rig_cameras(3)
    points = random_points(6, seed=4)
    seen = observe(cameras, points)
    seen[2, :3, :2] += 40.0  # a wrong detection in the top camera...
    seen[2, :3, 2] = 0.1  # ...that the model itself doubts
    result = Triangulator(cameras, min_likelihood=0.5).triangulate(seen)
    np.testing.assert_allclose(result.xyz, points, atol=1e-6)
    assert list(result.ncams) == [2, 2, 2, 3, 3, 3]


def test_a_keypoint_seen_by_one_camera_is_not_triangulated() -> None:
    cameras = rig_cameras(3)
    seen = observe(cameras, random_points(2, seed=5))
    seen[1:, 0, 2] = 0.0
    seen[0, 1, :2] = np.nan  # NaN positions count as not seen
    result = Triangulator(cameras).triangulate(seen)
    assert np.isnan(result.xyz[0]).all() and np.isnan(result.error_px[0])
    assert result.ncams[0] == 0 and result.ncams[1] == 2
    assert np.isfinite(result.xyz[1]).all()


def test_undistortion_inverts_the_lens_model() -> None:
    camera = rig_cameras(1, distorted=True)[0]
    points = random_points(10, seed=6)
    ideal = PinholeCamera(camera.name, camera.size, camera.matrix, np.zeros(5), camera.rotation,
                          camera.translation)  # fmt: skip
    np.testing.assert_allclose(
        undistort_pixels(camera, camera.project(points)), ideal.project(points), atol=1e-3
    )


def test_vectorised_solution_matches_one_svd_per_keypoint() -> None:
    cameras = rig_cameras(3)
    points = random_points(6, seed=7)
    seen = observe(cameras, points)
    seen[..., :2] += np.random.default_rng(8).normal(0, 2.0, seen[..., :2].shape)
    projections = np.stack([c.projection for c in cameras])
    fast = solve_dlt(projections, seen[..., :2], np.ones(seen.shape[:2], bool))
    for k in range(len(points)):
        rows = []
        for p, (x, y) in zip(projections, seen[:, k, :2], strict=True):
            for row in (x * p[2] - p[0], y * p[2] - p[1]):
                rows.append(row / np.linalg.norm(row))
        vector = np.linalg.svd(np.array(rows))[2][-1]
        np.testing.assert_allclose(fast[k], vector[:3] / vector[3], atol=1e-6)


def test_bad_shapes_and_too_few_cameras_are_refused() -> None:
    cameras = rig_cameras(3)
    with pytest.raises(ValueError, match="at least 2 calibrated cameras"):
        Triangulator(cameras[:1])
    with pytest.raises(ValueError, match=r"shape \(3, K, 3\)"):
        Triangulator(cameras).triangulate(np.zeros((2, 6, 3)))
