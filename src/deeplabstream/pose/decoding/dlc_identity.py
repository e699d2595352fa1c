"""DeepLabCut 3.0's identity head: which assembled animal is which individual, as DeepLabCut does.

Design: docs/pose-internals.md, "pose.decoding.dlc_identity".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.model import ModelError

#: DeepLabCut's value for the pose rows its assembly leaves unused (x, y and likelihood).
UNUSED_ROW = -1.0


@dataclass(frozen=True)
class DlcIdentitySettings:
    """The identity head's settings: its individuals and its stride (input pixels per cell)."""

    individuals: tuple[str, ...]
    stride: float
    apply_sigmoid: bool = True

    def __post_init__(self) -> None:
        """Check what the export's config gave."""
        if len(self.individuals) < 1 or self.stride <= 0:
            raise ModelError(
                f"an identity head of {len(self.individuals)} individuals, stride {self.stride}"
            )


def antialiased_weights(in_size: int, out_size: int, index: np.ndarray) -> np.ndarray:
    """Return the (len(index), in_size) weights of PyTorch's antialiased resize at ``index``."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    centre = scale * (index.astype(np.float64) + 0.5)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    cells = np.arange(in_size)[None, :]
    inside = (cells >= first[:, None]) & (cells < last[:, None])
    weights = np.clip(1.0 - np.abs((cells - centre[:, None] + 0.5) * inverse), 0.0, None)
    weights = np.where(inside, weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)


def map_size(logits: np.ndarray, stride: float) -> tuple[int, int]:
    """(height, width) of DeepLabCut's resized identity maps for (I, h, w) ``logits``."""
    h, w = logits.shape[-2:]
    return int(h * stride), int(w * stride)


def keypoint_scores(
    logits: np.ndarray, poses: np.ndarray, settings: DlcIdentitySettings
) -> np.ndarray:
    """Return the (R, K, I) identity scores of ``poses`` (R, K, 3) in input pixels."""
    height, width = map_size(logits, settings.stride)
    rows, keypoints = poses.shape[:2]
    scores = np.zeros((rows, keypoints, logits.shape[0]))
    xy = poses[..., :2]
    valid = np.isfinite(xy).all(axis=-1)
    if not valid.any():
        return scores
    cells = np.rint(xy[valid]).astype(np.int64)
    xs = np.clip(cells[:, 0], 0, width - 1)
    ys = np.clip(cells[:, 1], 0, height - 1)
    along_x = antialiased_weights(logits.shape[2], width, xs)  # (P, w)
    along_y = antialiased_weights(logits.shape[1], height, ys)  # (P, h)
    values = np.einsum("ph,ihw,pw->pi", along_y, logits.astype(np.float64), along_x)
    if settings.apply_sigmoid:
        values = 1.0 / (1.0 + np.exp(-values))
    scores[valid] = values
    return scores


def assignment_order(poses: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Return ``order``: row i of the result is ``poses[order[i]]`` (DeepLabCut's rule).

    Raises ModelError where DeepLabCut's own assignment fails (a likelihood that is not a number).
    """
    cost = np.mean(poses[:, :, 2:3] * scores, axis=1)
    if not np.isfinite(cost).all():  # as DeepLabCut's own step, which scipy refuses then
        raise ModelError("DeepLabCut's identity assignment got a likelihood that is not a number")
    rows, columns = linear_sum_assignment(cost, maximize=True)
    order = np.zeros_like(rows)
    order[columns] = rows
    return order


@dataclass(frozen=True)
class IdentifiedAnimals:
    """One frame's animals by individual: row i is individual i."""

    animals: np.ndarray  # (I, K, 3): NaN rows for individuals not found
    confidence: np.ndarray  # (I,): mean score of each animal for its individual, NaN if absent
    scores: np.ndarray  # (I, K, I): DeepLabCut's per-keypoint identity scores, rows reordered


def identify(
    animals: np.ndarray, logits: np.ndarray, settings: DlcIdentitySettings
) -> IdentifiedAnimals:
    """Order one frame's assembled ``animals`` (A, K, 3) by individual."""
    found = ~np.isnan(animals[..., 0]).all(axis=1)
    # DeepLabCut's predictor gives an animal's missing keypoints NaN x, y and likelihood 0
    as_deeplabcut = animals.copy()
    as_deeplabcut[..., 2] = np.nan_to_num(as_deeplabcut[..., 2], nan=0.0)
    poses = np.where(found[:, None, None], as_deeplabcut, UNUSED_ROW)
    scores = keypoint_scores(logits, poses, settings)
    individuals = len(settings.individuals)
    if len(poses) != individuals:
        raise ModelError(
            f"DeepLabCut assigns identities to as many pose rows as individuals: {len(poses)} "
            f"rows, {individuals} individuals"
        )
    if not found.any():  # DeepLabCut sorts -1 rows too; all of them stay empty here
        empty = np.full_like(animals, np.nan)
        return IdentifiedAnimals(empty, np.full(individuals, np.nan), scores)
    order = assignment_order(poses, scores)
    ordered = animals[order]
    ordered_scores = scores[order]
    confidence = np.full(individuals, np.nan)
    for individual in range(individuals):
        present = ~np.isnan(ordered[individual, :, 0])
        if present.any():
            confidence[individual] = ordered_scores[individual, present, individual].mean()
    return IdentifiedAnimals(ordered, confidence, ordered_scores)
