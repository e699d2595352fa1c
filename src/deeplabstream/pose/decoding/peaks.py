"""Heatmaps to keypoints: the peak of each map, refined below one heatmap pixel.

Design: docs/pose-internals.md, "pose.decoding.peaks".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deeplabstream.pose.model import Decoder, ModelDescription, ModelError


def heatmap_to_input_coordinate(index: np.ndarray, stride: float) -> np.ndarray:
    """Input-pixel coordinate of the centre of heatmap pixel ``index`` (rows or columns)."""
    return index * stride + (stride - 1) / 2


def decode_argmax(
    heatmaps: np.ndarray,
    stride: float,
    *,
    locref: np.ndarray | None = None,
    locref_std: float = 1.0,
    heatmaps_are_probabilities: bool = True,
) -> np.ndarray:
    """Keypoints from heatmaps: (N, K, 3) of x, y (input pixels) and likelihood.

    Refined by a parabola (clamped to half a heatmap pixel), or by ``locref`` (N, 2K, h, w) offsets
    at the peak as DeepLabCut does.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    peak = np.argmax(flat, axis=2)
    rows, cols = np.divmod(peak, w)
    value = np.take_along_axis(flat, peak[..., None], axis=2)[..., 0].astype(np.float64)
    if locref is not None:
        offsets = locref.reshape(n, k, 2, h, w)
        batch = np.arange(n)[:, None]
        keypoint = np.arange(k)[None, :]
        dx = offsets[batch, keypoint, 0, rows, cols] * locref_std
        dy = offsets[batch, keypoint, 1, rows, cols] * locref_std
        x = heatmap_to_input_coordinate(cols, stride) + dx
        y = heatmap_to_input_coordinate(rows, stride) + dy
    else:
        dx = _parabola_offset(heatmaps, rows, cols, axis="x")
        dy = _parabola_offset(heatmaps, rows, cols, axis="y")
        x = heatmap_to_input_coordinate(cols + dx, stride)
        y = heatmap_to_input_coordinate(rows + dy, stride)
    likelihood = value if heatmaps_are_probabilities else 1.0 / (1.0 + np.exp(-value))
    return np.stack([x, y, likelihood], axis=-1)


def _parabola_offset(
    heatmaps: np.ndarray, rows: np.ndarray, cols: np.ndarray, axis: str
) -> np.ndarray:
    """Sub-pixel offset of each peak along one axis, from the parabola through 3 samples."""
    n, k, h, w = heatmaps.shape
    batch = np.arange(n)[:, None]
    keypoint = np.arange(k)[None, :]
    if axis == "x":
        size, centre = w, cols
        before = heatmaps[batch, keypoint, rows, np.clip(cols - 1, 0, w - 1)]
        after = heatmaps[batch, keypoint, rows, np.clip(cols + 1, 0, w - 1)]
    else:
        size, centre = h, rows
        before = heatmaps[batch, keypoint, np.clip(rows - 1, 0, h - 1), cols]
        after = heatmaps[batch, keypoint, np.clip(rows + 1, 0, h - 1), cols]
    middle = heatmaps[batch, keypoint, rows, cols]
    before, middle, after = (a.astype(np.float64) for a in (before, middle, after))
    curvature = before - 2 * middle + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    offset = np.where((centre == 0) | (centre == size - 1), 0.0, offset)  # no neighbour
    return np.clip(offset, -0.5, 0.5)


def decode_network_outputs(
    outputs: Sequence[np.ndarray], description: ModelDescription
) -> np.ndarray:
    """Keypoints (N, K, 3) of a model of ``decoder = "argmax"``, by its ``output_kind``."""
    d = description
    first = outputs[0]
    if d.output_kind == "coordinates":
        return np.asarray(first, np.float64).reshape(len(first), len(d.keypoints), 3)
    if d.output_kind == "heatmaps+locref":
        if len(outputs) < 2:
            raise ModelError(f"{d.model_file}: heatmaps+locref needs two outputs")
        return decode_argmax(
            first,
            d.stride,
            locref=outputs[1],
            locref_std=d.locref_std,
            heatmaps_are_probabilities=d.heatmaps_are_probabilities,
        )
    return decode_argmax(first, d.stride, heatmaps_are_probabilities=d.heatmaps_are_probabilities)


#: ``decoder = "argmax"``: this project's models, DeepLabCut's single-animal models.
ARGMAX = Decoder.of_points(decode_network_outputs)
