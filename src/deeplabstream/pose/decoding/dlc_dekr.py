"""Several animals from DeepLabCut 3.0's DEKR models, as DeepLabCut's ``DEKRPredictor`` finds them.

Design: docs/pose-internals.md, "pose.decoding.dlc_dekr".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.pose.decoding.graph_outputs import named_outputs
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError, decoding_of

#: The outputs of the graph, in order.
OUTPUT_NAMES = ("heatmaps", "peaks", "offsets")
SCORE_TYPES = ("heatmap", "center", "combined")


@dataclass(frozen=True)
class DekrSettings:
    """DeepLabCut's ``DEKRPredictor`` settings of one model (the per-cell ones are in the graph)."""

    individuals: int
    stride: float
    use_heatmap: bool = True
    keypoint_score_type: str = "combined"
    clip_scores: bool = False
    max_absorb_distance: float = 75.0
    nms_threshold: float = 0.05
    apply_pose_nms: bool = True

    def __post_init__(self) -> None:
        """Refuse settings DeepLabCut's predictor would refuse."""
        if self.individuals < 1:
            raise ModelError(f"DEKR num_animals must be >= 1, not {self.individuals}")
        if self.keypoint_score_type not in SCORE_TYPES:
            raise ModelError(
                f"DEKR keypoint_score_type {self.keypoint_score_type!r}: one of {SCORE_TYPES}"
            )


def top_cells(values: np.ndarray, count: int) -> np.ndarray:
    """Return the indices of the ``count`` highest values, highest first; ties by lower index."""
    return np.argsort(-values, kind="stable")[:count]


def regressed_poses(offsets: np.ndarray, centre_cells: np.ndarray, width: int) -> np.ndarray:
    """Return (A, K, 2) float32 positions in cells: each centre cell minus its offsets."""
    keypoints = offsets.shape[0] // 2
    rows, cols = np.divmod(centre_cells, width)
    flat = offsets.reshape(keypoints, 2, -1)[:, :, centre_cells]  # (K, 2, A)
    x = cols.astype(np.float32)[None, :] - flat[:, 0]
    y = rows.astype(np.float32)[None, :] - flat[:, 1]
    return np.stack((x, y), axis=-1).transpose(1, 0, 2).astype(np.float32)


def absorb_into_peaks(
    poses: np.ndarray, keypoint_peaks: np.ndarray, settings: DekrSettings
) -> np.ndarray:
    """Step 3: move each keypoint to the nearest of its map's top peaks when near enough."""
    keypoints, height, width = keypoint_peaks.shape
    flat = keypoint_peaks.reshape(keypoints, height * width)
    cells = np.stack([top_cells(row, settings.individuals) for row in flat])  # (K, A)
    rows, cols = np.divmod(cells, width)
    heat = np.stack((cols, rows), axis=-1).astype(np.float32)  # (K, A, 2)
    difference = poses[:, :, None, :] - heat[None, :, :, :]  # (A, K, A, 2)
    distance = np.sqrt((difference**2).sum(axis=-1, dtype=np.float32))
    nearest = distance.argmin(axis=-1)  # the first minimum, as torch.argmin
    nearest_distance = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0]
    taken = heat[np.arange(keypoints)[None, :], nearest]  # (A, K, 2)
    absorbed = nearest_distance < settings.max_absorb_distance
    return np.where(absorbed[..., None], taken, poses).astype(np.float32)


def heat_values(poses: np.ndarray, keypoint_maps: np.ndarray) -> np.ndarray:
    """Return (A, K): each keypoint map's value at its pose's cell (floor, clamped into it)."""
    keypoints, height, width = keypoint_maps.shape
    x = np.clip(np.floor(poses[..., 0]), 0, width - 1).astype(np.int64)
    y = np.clip(np.floor(poses[..., 1]), 0, height - 1).astype(np.int64)
    return keypoint_maps[np.arange(keypoints)[None, :], y, x]


def suppressed_poses(poses: np.ndarray, threshold: float) -> np.ndarray:
    """Step 6: (A,) True for an animal that shares a keypoint with an animal before it."""
    xy = poses[..., :2]
    extent = xy.max(axis=1) - xy.min(axis=1)  # (A, 2)
    area = np.maximum((extent**2).sum(axis=-1, dtype=np.float32), np.float32(1.0))
    limit = np.float32(threshold) * np.sqrt(area)  # (A,): of the later animal j
    distance = np.sqrt(((xy[:, None] - xy[None, :]) ** 2).sum(axis=-1, dtype=np.float32))
    close = (distance < limit[None, :, None]).sum(axis=-1) > threshold  # (A, A): [i, j]
    return np.triu(close, k=1).any(axis=0)


def nms_order(kept: np.ndarray) -> np.ndarray:
    """DeepLabCut's order of rows after pose NMS: kept first, each group in reverse order."""
    count = len(kept)
    keys = kept.astype(np.float32) + (np.arange(count, dtype=np.float32) + 1) / (count + 1)
    return np.argsort(-keys, kind="stable")


def decode_frame(
    heatmaps: np.ndarray,
    peaks: np.ndarray,
    offsets: np.ndarray,
    settings: DekrSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's animals (A, K, 3) in input pixels and their centre scores (A,).

    An animal DeepLabCut drops (its -1 row) is NaN with centre score -inf.
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    peaks = np.asarray(peaks, np.float32)
    offsets = np.asarray(offsets, np.float32)
    width = heatmaps.shape[2]
    centre_peaks = peaks[-1].reshape(-1)
    centres = top_cells(centre_peaks, settings.individuals)
    centre_scores = centre_peaks[centres]
    poses = regressed_poses(offsets, centres, width)
    if settings.use_heatmap:
        poses = absorb_into_peaks(poses, peaks[:-1], settings)
    scored_maps = peaks[:-1] if settings.use_heatmap else heatmaps[:-1]
    kind = settings.keypoint_score_type
    centre = np.broadcast_to(centre_scores[:, None], poses.shape[:2])
    if kind == "center":
        scores = centre.astype(np.float32)
    elif kind == "heatmap":
        scores = heat_values(poses, scored_maps)
    else:
        scores = centre * heat_values(poses, scored_maps)
    stride = float(settings.stride)
    xy = poses * stride + 0.5 * stride
    if settings.clip_scores:
        scores = np.clip(scores, 0.0, 1.0)
    animals = np.concatenate((xy, scores[..., None]), axis=-1).astype(np.float32)
    ranks = centre_scores.astype(np.float64)
    if settings.apply_pose_nms and len(animals):
        kept = ~suppressed_poses(animals, settings.nms_threshold)
        order = nms_order(kept)
        animals = np.where(kept[:, None, None], animals, np.nan)[order]
        ranks = np.where(kept, ranks, -np.inf)[order]
    return animals.astype(np.float64), ranks


def keep_best(animals: np.ndarray, ranks: np.ndarray, count: int) -> np.ndarray:
    """Keep the ``count`` animals with the highest centre scores, in order; NaN rows added."""
    result = np.full((count, *animals.shape[1:]), np.nan)
    best = np.sort(np.argsort(-ranks, kind="stable")[:count])
    result[: len(best)] = animals[best]
    return result


def decode_dlc_dekr(outputs: list[np.ndarray], description: ModelDescription) -> np.ndarray:
    """Return each frame's animals (N, A, K, 3), A = ``description.max_animals``, input pixels.

    Fewer than DeepLabCut's ``num_animals``: those of highest centre score (in its order); more:
    empty rows added.
    """
    settings = decoding_of(description, DekrSettings, "DeepLabCut DEKR settings")
    named = named_outputs(outputs, description, OUTPUT_NAMES, "a DeepLabCut DEKR model's graph")
    animals = int(description.max_animals)
    frames = len(named["heatmaps"])
    result = np.full((frames, animals, len(description.keypoints), 3), np.nan)
    for i in range(frames):
        found, ranks = decode_frame(
            named["heatmaps"][i], named["peaks"][i], named["offsets"][i], settings
        )
        result[i] = keep_best(found, ranks, animals)
    return result


#: ``decoder = "dlc-dekr"``: DeepLabCut 3.0's multi-animal DEKR models.
DLC_DEKR = Decoder.of_points(decode_dlc_dekr, multi_animal=True)
