"""One frame's ensemble: the models' keypoints combined, and how far they disagree.

Design: docs/ensembles.md, "What the spread means".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

VarMode = Literal["confidence_weighted_var", "var"]
"""How EKS turns the models' spread into its observation noise (``eks.core.ensemble``'s
``var_mode``): the variance divided by the models' mean likelihood (its default), or the plain
variance."""
VAR_MODES: tuple[str, ...] = ("confidence_weighted_var", "var")
EKS_NAN_VARIANCE = 1000.0
"""The variance EKS gives a keypoint where the models' variance is NaN (its ``nan_replacement``)."""


@dataclass(frozen=True)
class EnsembleFrame:
    """One frame's ensemble of a camera, per keypoint (docs/ensembles.md).

    ``keypoints`` (K, 3): median x, y, mean likelihood; ``variance`` (K, 2) in px²; ``std`` (K,) in
    px, NaN with fewer than two models.
    """

    keypoints: np.ndarray
    variance: np.ndarray
    std: np.ndarray


def ensemble_frame(members: np.ndarray) -> EnsembleFrame:
    """Return the ensemble of one frame's ``members`` (M, K, 3): x, y, likelihood per model."""
    # Not NumPy's NaN-aware functions: their all-NaN warnings would cost a warning filter a frame.
    xy = members[:, :, :2]
    placed = np.isfinite(xy)
    count = placed.sum(axis=0)  # (K, 2): models that placed each coordinate
    median = _median(xy, count)
    mean = np.where(placed, xy, 0.0).sum(axis=0) / np.maximum(count, 1)
    squares = np.where(placed, (xy - mean) ** 2, 0.0).sum(axis=0)
    variance = np.where(count > 0, squares / np.maximum(count, 1), np.nan)
    std = np.where(count.min(axis=1) >= 2, np.sqrt(variance).mean(axis=1), np.nan)
    likelihoods = members[:, :, 2]
    seen = np.isfinite(likelihoods)
    likelihood = np.where(seen, likelihoods, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    keypoints = np.concatenate([median, likelihood[:, None]], axis=1)
    return EnsembleFrame(keypoints, variance, std)


def _median(xy: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Return the median over the models (axis 0) of the finite values; NaN where none."""
    ordered = np.sort(xy, axis=0)  # NaN sorts last
    last = len(xy) - 1
    low = np.take_along_axis(ordered, np.clip((count - 1) // 2, 0, last)[None], axis=0)[0]
    high = np.take_along_axis(ordered, np.clip(count // 2, 0, last)[None], axis=0)[0]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def eks_observation_variance(
    members: np.ndarray, var_mode: VarMode, frame: EnsembleFrame | None = None
) -> np.ndarray:
    """Return EKS's observation variance of x and y (K, 2) for one frame's ``members``.

    As ``eks.core.ensemble``: one model, one over its likelihood; else the models' variance (over
    their mean likelihood with ``confidence_weighted_var``); NaN becomes :data:`EKS_NAN_VARIANCE`.
    """
    models = len(members)
    mean_likelihood = members[:, :, 2].sum(axis=0) / models
    if models == 1:
        single = 1.0 / np.maximum(mean_likelihood, 1e-5)
        variance = np.stack([single, single], axis=1)
    else:
        variance = (frame or ensemble_frame(members)).variance
        if var_mode == "confidence_weighted_var":
            variance = variance / mean_likelihood[:, None]
    return np.nan_to_num(variance, nan=EKS_NAN_VARIANCE)
