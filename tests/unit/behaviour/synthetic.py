"""Synthetic sessions with a clearly learnable rule: walking, still, hunched (a short body)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

KEYPOINTS = ("nose", "left_ear", "right_ear", "neck", "body_center", "tail_base")
BEHAVIOURS = ("walking", "still", "hunched")
PIXELS_PER_MM = 2.0
FPS = 30.0

# Offsets along the body axis (mm, from the centre) and sideways, of a 60 mm mouse.
_ALONG = np.array([30.0, 22.0, 22.0, 15.0, 0.0, -30.0])
_SIDE = np.array([0.0, 5.0, -5.0, 0.0, 0.0, 0.0])


def session(seed: int, seconds: float = 40.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (frames, (N, 6, 3) keypoints in pixels, per-frame behaviour)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    labels: list[str] = []
    while len(labels) < n:
        labels += [str(rng.choice(BEHAVIOURS))] * int(rng.integers(45, 100))
    labels = labels[:n]
    centre = np.array([200.0, 200.0])
    heading = 0.0
    points = np.empty((n, len(KEYPOINTS), 3))
    for i, label in enumerate(labels):
        heading += rng.normal(0, 0.05)
        scale = 0.55 if label == "hunched" else 1.0
        speed = 100.0 if label == "walking" else 3.0  # mm/s
        centre = centre + speed / FPS * np.array([np.cos(heading), np.sin(heading)])
        axis = np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-axis[1], axis[0]])
        body = centre[None] + scale * _ALONG[:, None] * axis[None] + _SIDE[:, None] * normal[None]
        points[i, :, :2] = body * PIXELS_PER_MM + rng.normal(0, 0.6, (len(KEYPOINTS), 2))
        points[i, :, 2] = rng.uniform(0.7, 1.0, len(KEYPOINTS))
    low = rng.random((n, len(KEYPOINTS))) < 0.04
    points[low, 2] = rng.uniform(0, 0.3, low.sum())
    return np.arange(n), points, labels


def write_pose_csv(path: Path, frames: np.ndarray, points: np.ndarray) -> None:
    """Write a DeepLabCut-layout single-animal pose CSV."""
    columns = pd.MultiIndex.from_tuples(
        [("synthetic", k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    pd.DataFrame(points.reshape(len(frames), -1), index=frames, columns=columns).to_csv(path)


def write_labels_csv(path: Path, frames: np.ndarray, labels: list[str], skip: int = 0) -> None:
    """Write ``frame,behaviour``; every ``skip``-th frame is left unlabelled (0: none)."""
    lines = ["frame,behaviour"]
    for frame, label in zip(frames.tolist(), labels, strict=True):
        if skip and frame % skip == 0:
            continue
        lines.append(f"{frame},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_session(folder: Path, name: str, seed: int) -> tuple[Path, Path]:
    """Write ``name.pose.csv`` and ``name.behaviour.csv``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    frames, points, labels = session(seed)
    pose = folder / f"{name}.pose.csv"
    behaviour = folder / f"{name}.behaviour.csv"
    write_pose_csv(pose, frames, points)
    write_labels_csv(behaviour, frames, labels, skip=17)
    return pose, behaviour
