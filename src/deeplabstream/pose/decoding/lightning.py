"""Lightning Pose's heatmap decoder (``run_subpixelmaxima``), re-implemented without torch.

Design: docs/pose-internals.md, "pose.decoding.lightning".
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from deeplabstream.pose.model import Decoder, ModelDescription

SOFTMAX_TEMPERATURE = 1000.0
CONFIDENCE_WINDOW = 5
_GAUSSIAN_1D = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
# OpenCV takes at most 128 channels per image, and groups that fit in the CPU's cache are
# faster: maps go through in groups of this many.
_MAPS_PER_CALL = 32
# Softmax logits below this (relative to the map's maximum) are raised to it: exp() of it is
# 1e-304, nothing next to the peak's 1, and exp() of lower values gives subnormal numbers,
# which make np.exp several times slower.
_LOWEST_LOGIT = -700.0


def decode_lightning_pose(heatmaps: np.ndarray, downsample_factor: int) -> np.ndarray:
    """Keypoints (N, K, 3) float64 from soft-maxed Lightning Pose heatmaps, as it computes them.

    x, y are in model-input pixels of Lightning Pose's convention (after its shift).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {heatmaps.shape}")
    if downsample_factor < 0:
        raise ValueError(f"downsample_factor must be >= 0, got {downsample_factor}")
    n, k, h, w = heatmaps.shape
    maps = heatmaps.reshape(n * k, h, w)
    keypoints = np.empty((n * k, 3), np.float64)
    for start in range(0, n * k, _MAPS_PER_CALL):
        group = maps[start : start + _MAPS_PER_CALL]
        probabilities = _softmax2d(_upsampled_logits(group, downsample_factor))
        x, y = _soft_argmax(probabilities)
        keypoints[start : start + len(group), 2] = _window_sum(probabilities, x, y)
        shift = 2.0**downsample_factor / 2.0 - 0.5
        keypoints[start : start + len(group), 0] = x - shift
        keypoints[start : start + len(group), 1] = y - shift
    return keypoints.reshape(n, k, 3)


def _upsampled_logits(maps: np.ndarray, passes: int) -> np.ndarray:
    """Return (M, h, w) maps upsampled and blurred ``passes`` times, times the temperature."""
    # OpenCV takes (height, width, channels), so the maps become the channels; float32 there
    # (SIMD, twice as fast as float64) moves keypoints by 1e-5 px. The transpose back, the cast
    # to float64 and the temperature are one pass over the large maps.
    m, h, w = maps.shape
    image = np.ascontiguousarray(maps.transpose(1, 2, 0), dtype=np.float32)
    kernel = _GAUSSIAN_1D.astype(np.float32)
    for _ in range(passes):
        h, w = 2 * h, 2 * w
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
        image = cv2.sepFilter2D(image, -1, kernel, kernel, borderType=cv2.BORDER_CONSTANT)
    logits = np.empty((m, h, w), np.float64)
    # OpenCV drops a channel axis of length 1: reshape restores it.
    np.multiply(image.reshape(h, w, m).transpose(2, 0, 1), SOFTMAX_TEMPERATURE, out=logits)
    return logits


def _softmax2d(logits: np.ndarray) -> np.ndarray:
    """Softmax over each (h, w) map of (M, h, w) logits, in place."""
    flat = logits.reshape(len(logits), -1)
    flat -= flat.max(axis=1, keepdims=True)
    np.maximum(flat, _LOWEST_LOGIT, out=flat)
    np.exp(flat, out=flat)
    flat /= flat.sum(axis=1, keepdims=True)
    return logits


def _soft_argmax(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the expected column and row index of each (h, w) probability map."""
    _, h, w = probabilities.shape
    x = probabilities.sum(axis=1) @ np.arange(w, dtype=np.float64)
    y = probabilities.sum(axis=2) @ np.arange(h, dtype=np.float64)
    return x, y


def _window_sum(probabilities: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sum of each map in the 5x5 window centred on (int(y), int(x)), zero outside the map."""
    m, h, w = probabilities.shape
    half = CONFIDENCE_WINDOW // 2
    # int() truncates towards zero; x and y are expectations of indices >= 0, so this is floor.
    offsets = np.arange(-half, half + 1)
    rows = np.trunc(y).astype(np.intp)[:, None] + offsets
    cols = np.trunc(x).astype(np.intp)[:, None] + offsets
    row_inside = (rows >= 0) & (rows < h)
    col_inside = (cols >= 0) & (cols < w)
    window = probabilities[
        np.arange(m)[:, None, None],
        np.clip(rows, 0, h - 1)[:, :, None],
        np.clip(cols, 0, w - 1)[:, None, :],
    ]
    inside = row_inside[:, :, None] & col_inside[:, None, :]  # zero padding
    return np.where(inside, window, 0.0).sum(axis=(1, 2))


def _decode_outputs(outputs: Sequence[np.ndarray], description: ModelDescription) -> np.ndarray:
    return decode_lightning_pose(outputs[0], description.downsample_factor)


#: ``decoder = "lightning-pose"``: its keypoints map to frames by a pure scale (``corners``).
LIGHTNING_POSE = Decoder.of_points(_decode_outputs, convention="corners")
