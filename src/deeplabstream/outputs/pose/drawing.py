"""Drawing poses on a copy of a frame: keypoints by likelihood, the skeleton, animals by identity.

The live view and the annotated video draw with these functions, so both show the same; a
recorded or analysed frame is never drawn on (:func:`display_copy`).
"""

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
    canvas = display_copy(image)
    draw_pose_on(canvas, pose, threshold, skeleton_indices)
    return canvas


def display_copy(image: np.ndarray) -> np.ndarray:
    """Return a BGR copy of a BGR or mono frame, to draw on (the frame itself is never touched)."""
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


def draw_pose_on(
    canvas: np.ndarray,
    pose: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
) -> None:
    """Draw keypoints (K, 3) above ``threshold`` and the skeleton on ``canvas`` in place."""
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


# One colour per identity (BGR), distinct from the likelihood ramp and the trigger colours;
# identities beyond the list reuse it in turn.
IDENTITY_COLOURS = (
    (255, 80, 255),  # magenta: animal 1
    (255, 255, 0),  # cyan: animal 2
    (0, 200, 255),  # yellow-orange: animal 3
    (255, 120, 60),  # blue: animal 4
    (120, 255, 120),  # light green: animal 5
    (60, 60, 255),  # red: animal 6
)


def identity_colour(identity: int) -> tuple[int, int, int]:
    """BGR colour of identity ``identity`` (0-based: animal 1 is identity 0)."""
    return IDENTITY_COLOURS[identity % len(IDENTITY_COLOURS)]


def draw_animals_on(
    canvas: np.ndarray,
    animals: np.ndarray,
    threshold: float,
    skeleton_indices: tuple[tuple[int, int], ...] = (),
    confidence: np.ndarray | None = None,
) -> None:
    """Draw every animal (A, K, 3) in its identity's colour, numbered from 1, on ``canvas``.

    With ``confidence`` (A,), the number is followed by it in percent while below
    :data:`SURE_IDENTITY` (``2 ?62%``).
    """
    radius = max(2, round(min(canvas.shape[:2]) / 120))
    for identity, pose in enumerate(animals):
        visible = np.isfinite(pose[:, 0]) & (pose[:, 2] >= threshold)
        if not visible.any():
            continue
        colour = identity_colour(identity)
        for a, b in skeleton_indices:
            if visible[a] and visible[b]:
                cv2.line(
                    canvas,
                    pixel_point(*pose[a, :2]),
                    pixel_point(*pose[b, :2]),
                    colour,
                    1,
                    cv2.LINE_AA,
                )
        for x, y, _ in pose[visible]:
            cv2.circle(canvas, pixel_point(x, y), radius, colour, -1, cv2.LINE_AA)
        x, y = pose[np.argmax(visible), :2]
        label_at = (round(float(x)) + radius + 2, round(float(y)) - radius - 2)
        cv2.putText(
            canvas, _identity_label(identity, confidence), label_at, cv2.FONT_HERSHEY_SIMPLEX,
            0.5, colour, 1, cv2.LINE_AA,
        )  # fmt: skip


SURE_IDENTITY = 0.95
"""Identity confidence from which the live view shows an animal's number alone."""


def _identity_label(identity: int, confidence: np.ndarray | None) -> str:
    """Return ``"2"``, or ``"2 ?62%"`` while identity 2's confidence is below SURE_IDENTITY."""
    if confidence is None or identity >= len(confidence):
        return str(identity + 1)
    value = float(confidence[identity])
    if not np.isfinite(value) or value >= SURE_IDENTITY:
        return str(identity + 1)
    return f"{identity + 1} ?{round(100 * value)}%"


def pixel_point(x: float, y: float) -> tuple[int, int]:
    """Return the pixel nearest to ``(x, y)`` (OpenCV draws at integer points)."""
    return round(float(x)), round(float(y))
