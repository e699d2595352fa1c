"""Drawing poses on a display copy of a frame (never on the frame that is recorded or analysed)."""

from __future__ import annotations

import cv2
import numpy as np


def likelihood_colour(likelihood: float) -> tuple[int, int, int]:
    """BGR colour from red (just above the threshold) to green (certain)."""
    level = float(np.clip(likelihood, 0.0, 1.0))
    return (0, int(255 * level), int(255 * (1 - level)))


def draw_pose(
    image: np.ndarray,
    pose: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
) -> np.ndarray:
    """Draw keypoints (K, 3) above ``threshold`` on a BGR copy of ``image``; return the copy."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    radius = max(2, round(min(canvas.shape[:2]) / 120))
    visible = pose[:, 2] >= threshold
    for a, b in skeleton_indices:
        if visible[a] and visible[b]:
            start = (round(float(pose[a, 0])), round(float(pose[a, 1])))
            end = (round(float(pose[b, 0])), round(float(pose[b, 1])))
            cv2.line(canvas, start, end, (255, 200, 0), 1, cv2.LINE_AA)
    for x, y, likelihood in pose[visible]:
        centre = (round(float(x)), round(float(y)))
        cv2.circle(canvas, centre, radius, likelihood_colour(likelihood), -1, cv2.LINE_AA)
    return canvas
