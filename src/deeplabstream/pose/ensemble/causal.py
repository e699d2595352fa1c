"""The Ensemble Kalman Smoother's forward filter: the live half of EKS's single-camera model.

Design: docs/ensembles.md, "The causal filter, live".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeplabstream.pose.ensemble.statistics import (
    EnsembleFrame,
    VarMode,
    eks_observation_variance,
    ensemble_frame,
)

MIN_OBSERVATION_VARIANCE = 1e-12
"""EKS clips the observation variance to this from below (``eks.utils.build_R_from_vars``)."""


@dataclass(frozen=True)
class CausalStep:
    """The filter after one frame, (K, 2) each (x, y): what the causal EKS file writes.

    ``mean`` is NaN until the ensemble places the keypoint; ``variance``, ``observation_variance``
    and ``median`` are EKS's ``*_posterior_var``, ``*_ens_var`` and ``*_ens_median``.
    """

    mean: np.ndarray
    variance: np.ndarray
    observation_variance: np.ndarray
    median: np.ndarray


def smoothing_parameters(value: float | Sequence[float], keypoints: int) -> np.ndarray:
    """Return ``s`` per keypoint from one value for all, or one per keypoint (ValueError)."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.size == 1:
        values = np.full(keypoints, float(values[0]))
    if values.shape != (keypoints,):
        raise ValueError(
            f"EKS_SMOOTH_PARAM gives {values.size} values for {keypoints} keypoints: give one "
            "for all, or one per keypoint in the ensemble's order"
        )
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"EKS_SMOOTH_PARAM must be numbers > 0, not {value!r}")
    return values


class CausalEks:
    """EKS's forward filter over one camera's frames.

    ``smooth_param`` is EKS's ``s`` (one, or one per keypoint); ``prior_mean``, ``prior_variance``
    (K, 2) None: each keypoint starts at its first placed median.
    """

    def __init__(
        self,
        keypoints: int,
        smooth_param: float | Sequence[float],
        var_mode: VarMode = "confidence_weighted_var",
        prior_mean: np.ndarray | None = None,
        prior_variance: np.ndarray | None = None,
    ) -> None:
        self.smooth_param = smoothing_parameters(smooth_param, keypoints)
        self.var_mode: VarMode = var_mode
        self._prior_mean = None if prior_mean is None else np.array(prior_mean, np.float64)
        self._prior_variance = (
            None if prior_variance is None else np.array(prior_variance, np.float64)
        )
        self.mean = np.full((keypoints, 2), np.nan)
        self.variance = np.full((keypoints, 2), np.nan)
        self._started = np.zeros(keypoints, dtype=bool)

    def reset(self) -> None:
        """Forget every keypoint's state (a new stretch)."""
        self.mean[:] = np.nan
        self.variance[:] = np.nan
        self._started[:] = False

    def update(self, members: np.ndarray, frame: EnsembleFrame | None = None) -> CausalStep:
        """Take one frame's models' keypoints (M, K, 3); return the filter after it."""
        frame = frame or ensemble_frame(members)
        median = frame.keypoints[:, :2]
        noise = np.clip(
            eks_observation_variance(members, self.var_mode, frame), MIN_OBSERVATION_VARIANCE, None
        )
        placed = np.isfinite(median).all(axis=1)
        starting = ~self._started & (placed | (self._prior_mean is not None))
        # The prior of the frame: the last state moved one step of the random walk, or the
        # first frame's prior (the package's, or this frame's own median and noise).
        predicted_mean = self.mean.copy()
        predicted_variance = self.variance + self.smooth_param[:, None]
        if starting.any():
            first_mean = median if self._prior_mean is None else self._prior_mean
            first_variance = noise if self._prior_variance is None else self._prior_variance
            predicted_mean[starting] = first_mean[starting]
            predicted_variance[starting] = first_variance[starting]
            self._started |= starting
        gain = predicted_variance / (predicted_variance + noise)
        update = placed[:, None] & self._started[:, None]
        self.mean = np.where(
            update, predicted_mean + gain * (median - predicted_mean), predicted_mean
        )
        self.variance = np.where(update, (1.0 - gain) * predicted_variance, predicted_variance)
        return CausalStep(self.mean.copy(), self.variance.copy(), noise, median)

    def run(self, stretch: np.ndarray) -> list[CausalStep]:
        """Filter a whole stretch (T, M, K, 3), frame after frame; return every step."""
        return [self.update(members) for members in stretch]


def package_prior(stretch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the first-frame prior (mean, variance; (K, 2) each) EKS gives a stretch."""
    medians = np.stack([ensemble_frame(members).keypoints[:, :2] for members in stretch])
    return medians.mean(axis=0), np.nanvar(medians, axis=0)
