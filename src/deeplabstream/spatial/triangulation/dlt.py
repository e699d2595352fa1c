"""Triangulation of keypoints seen by several calibrated cameras (linear DLT).

docs/3d.md, "Live triangulation".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deeplabstream.core.pinhole import PinholeCamera

MIN_VIEWS = 2
"""A keypoint needs at least this many views above the likelihood threshold."""


@dataclass(frozen=True)
class Triangulated:
    """The triangulation of the K keypoints of one synchronised set (NaN or 0 where not solved).

    ``xyz`` (K, 3) mm; ``error_px`` mean reprojection error; ``ncams`` views used; ``score`` their
    mean likelihood.
    """

    xyz: np.ndarray
    error_px: np.ndarray
    ncams: np.ndarray
    score: np.ndarray


def undistort_pixels(camera: PinholeCamera, pixels: np.ndarray) -> np.ndarray:
    """Return pixel positions (N, 2) with the lens's distortion removed (same camera matrix)."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if not np.any(camera.distortions) or len(pixels) == 0:
        return pixels
    finite = np.isfinite(pixels).all(axis=1)
    out = np.full_like(pixels, np.nan)
    if finite.any():
        undistorted = cv2.undistortPoints(
            pixels[finite].reshape(-1, 1, 2), camera.matrix, camera.distortions, P=camera.matrix
        )
        out[finite] = undistorted.reshape(-1, 2)
    return out


class Triangulator:
    """Triangulates synchronised keypoints of a fixed list of calibrated cameras.

    A view below ``min_likelihood`` is not used for that keypoint.
    """

    def __init__(self, cameras: Sequence[PinholeCamera], min_likelihood: float = 0.5) -> None:
        if len(cameras) < MIN_VIEWS:
            raise ValueError(
                f"triangulation needs at least {MIN_VIEWS} calibrated cameras, got {len(cameras)}"
            )
        if not 0.0 <= min_likelihood <= 1.0:
            raise ValueError(f"min_likelihood must be in [0, 1], not {min_likelihood!r}")
        self.cameras = tuple(cameras)
        self.min_likelihood = float(min_likelihood)
        self._projections = np.stack([camera.projection for camera in self.cameras])  # (C, 3, 4)
        # Reprojection with every view at once: no per-call Rodrigues, no per-camera loop.
        self._rotations = np.stack([camera.rotation_matrix for camera in self.cameras])
        self._translations = np.stack([camera.translation for camera in self.cameras])
        self._matrices = np.stack([camera.matrix for camera in self.cameras])
        self._distortions = np.stack([camera.distortions for camera in self.cameras])
        self._distorted = bool(np.any(self._distortions))

    def triangulate(self, keypoints: np.ndarray) -> Triangulated:
        """Triangulate one set: ``keypoints`` (C, K, 3), raw pixels and likelihood per camera."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        count = len(self.cameras)
        if keypoints.ndim != 3 or keypoints.shape[0] != count or keypoints.shape[2] != 3:
            raise ValueError(
                f"keypoints must have shape ({count}, K, 3) for {count} cameras, "
                f"not {keypoints.shape}"
            )
        observed = keypoints[..., :2]
        undistorted = np.stack(
            [undistort_pixels(c, p) for c, p in zip(self.cameras, observed, strict=True)]
        )
        used = (keypoints[..., 2] >= self.min_likelihood) & np.isfinite(undistorted).all(axis=2)
        xyz = solve_dlt(self._projections, undistorted, used)
        return self._measure(xyz, observed, keypoints[..., 2], used)

    def _measure(
        self, xyz: np.ndarray, observed: np.ndarray, likelihood: np.ndarray, used: np.ndarray
    ) -> Triangulated:
        """Add the reprojection error, the views used and the score to the solved points."""
        ncams = used.sum(axis=0)
        solved = ncams >= MIN_VIEWS
        xyz[~solved] = np.nan
        reprojected = self.project(xyz)
        distance = np.linalg.norm(reprojected - observed, axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(used, distance, 0.0).sum(axis=0) / ncams
            score = np.where(used, likelihood, 0.0).sum(axis=0) / ncams
        error[~solved] = np.nan
        score[~solved] = np.nan
        return Triangulated(xyz, error, np.where(solved, ncams, 0).astype(np.int64), score)

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """Return world points (K, 3) projected into every view (C, K, 2), lens included."""
        camera = np.einsum("cij,kj->cki", self._rotations, xyz) + self._translations[:, None, :]
        z = camera[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = camera[..., 0] / z, camera[..., 1] / z
        if self._distorted:
            k1, k2, p1, p2, k3 = (self._distortions[:, i : i + 1] for i in range(5))
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
            x, y = (
                x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
            )
        m = self._matrices
        pixels = np.stack(
            [m[:, 0, 0:1] * x + m[:, 0, 2:3], m[:, 1, 1:2] * y + m[:, 1, 2:3]], axis=-1
        )
        pixels[z <= 0] = np.nan
        return pixels


def solve_dlt(projections: np.ndarray, pixels: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Return the DLT solution (K, 3) of K keypoints seen in C views (undistorted pixels).

    Keypoints with fewer than two ``used`` views come out arbitrary; the caller masks them.
    """
    p1, p2, p3 = projections[:, 0, :], projections[:, 1, :], projections[:, 2, :]  # (C, 4)
    x, y = np.nan_to_num(pixels[..., 0:1]), np.nan_to_num(pixels[..., 1:2])  # (C, K, 1)
    rows_x = x * p3[:, None, :] - p1[:, None, :]  # (C, K, 4)
    rows_y = y * p3[:, None, :] - p2[:, None, :]
    rows = np.concatenate([rows_x, rows_y], axis=0)  # (2C, K, 4)
    # Unit rows: a far view's equations have larger coefficients, not more information.
    norms = np.linalg.norm(rows, axis=2, keepdims=True)
    weights = np.concatenate([used, used], axis=0)[..., None] / np.where(norms > 0, norms, 1.0)
    rows = rows * weights
    normal = np.einsum("rki,rkj->kij", rows, rows)  # (K, 4, 4): A^T A per keypoint
    _, vectors = np.linalg.eigh(normal)
    homogeneous = vectors[:, :, 0]  # eigenvector of the smallest eigenvalue, (K, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        return homogeneous[:, :3] / homogeneous[:, 3:4]
