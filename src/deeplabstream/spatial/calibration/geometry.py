"""Rigid transforms (4 x 4, ``x_to = T @ x_from``; or Rodrigues + mm) and projection."""

from __future__ import annotations

import numpy as np

from deeplabstream.core.pinhole import matrix_to_rodrigues, rodrigues_to_matrix


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Return the 4 x 4 transform of a Rodrigues rotation and a translation."""
    transform = np.eye(4)
    transform[:3, :3] = rodrigues_to_matrix(np.asarray(rotation, float).reshape(3))
    transform[:3, 3] = np.asarray(translation, float).reshape(3)
    return transform


def pose_parameters(transform: np.ndarray) -> np.ndarray:
    """Return the 6 parameters (Rodrigues, translation) of a 4 x 4 transform."""
    return np.concatenate([matrix_to_rodrigues(transform[:3, :3]), transform[:3, 3]])


def invert(transform: np.ndarray) -> np.ndarray:
    """Return the inverse of a rigid 4 x 4 transform."""
    inverse = np.eye(4)
    inverse[:3, :3] = transform[:3, :3].T
    inverse[:3, 3] = -transform[:3, :3].T @ transform[:3, 3]
    return inverse


def mean_pose(transforms: list[np.ndarray]) -> np.ndarray:
    """Return the average of nearly equal rigid transforms (rotations averaged on SO(3) by SVD)."""
    stack = np.asarray(transforms)
    u, _, vt = np.linalg.svd(stack[:, :3, :3].mean(axis=0))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # a reflection: flip the weakest axis
        u[:, -1] *= -1
        rotation = u @ vt
    average = np.eye(4)
    average[:3, :3] = rotation
    average[:3, 3] = stack[:, :3, 3].mean(axis=0)
    return average


def medoid_pose(transforms: list[np.ndarray], mm_per_radian: float = 500.0) -> np.ndarray:
    """Return the transform closest to all others (robust to a few wrong ones: a flipped PnP)."""
    parameters = np.array([pose_parameters(t) for t in transforms])
    scaled = parameters * np.array([mm_per_radian] * 3 + [1.0] * 3)
    distances = np.linalg.norm(scaled[:, None, :] - scaled[None, :, :], axis=-1)
    return transforms[int(np.argmin(np.median(distances, axis=1)))]


def rotation_matrices(rotations: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices of (n, 3) Rodrigues vectors (vectorised Rodrigues formula)."""
    angles = np.linalg.norm(rotations, axis=1)
    safe = np.where(angles < 1e-12, 1.0, angles)
    axes = rotations / safe[:, None]
    k = np.zeros((len(rotations), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = axes[:, 2], -axes[:, 1], axes[:, 0]
    sin, cos = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3)[None] + sin * k + (1 - cos) * (k @ k)


def project_with_lens(
    points: np.ndarray, matrices: np.ndarray, distortions: np.ndarray
) -> np.ndarray:
    """Pixels of camera-frame points (n, 3) with each point's own intrinsics (OpenCV's model)."""
    x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
    k1, k2, p1, p2, k3 = distortions.T
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = matrices[:, 0, 0] * xd + matrices[:, 0, 1] * yd + matrices[:, 0, 2]
    v = matrices[:, 1, 1] * yd + matrices[:, 1, 2]
    return np.stack([u, v], axis=1)
