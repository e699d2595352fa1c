"""Frames in, keypoints in frame pixels out: :class:`PoseEstimator`, what every caller uses.

Each kind of model has its estimator, and each kind subclasses this one protocol, which holds
what they share (:meth:`~PoseEstimator.estimate`, :attr:`~PoseEstimator.animals`, the timings)
and the defaults of the capabilities only some kinds have (an identity model's confidences, an
ensemble's models, a two-stage model's crops and its :meth:`~PoseEstimator.refresh`), so that a
caller reads them all without asking what it holds:

- :class:`pose.runtime.estimator.NetworkEstimator`: a network and its decoder (a sleap-nn
  top-down model's two stages among them);
- :class:`pose.formats.dlc3_topdown.DlcTopDownEstimator` (and its ``Animals`` kind): a
  DeepLabCut top-down model, detector then pose network;
- :class:`pose.runtime.cropzoom.CropZoomEstimator`: a Lightning Pose crop-zoom pair;
- :class:`pose.runtime.context.ContextEstimator`: a Lightning Pose context model;
- :class:`pose.runtime.ensemble.EnsembleEstimator`: several models run as one.

:func:`pose.loading.open_estimator` picks a model's kind: the inference worker, replays, the
labelled images and the checks open their estimators there.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np

from deeplabstream.pose.decoding.two_stage import CropFrom, PreviousDetections
from deeplabstream.pose.ensemble.statistics import EnsembleFrame
from deeplabstream.pose.model import ModelDescription

#: The parts of every estimate that :attr:`PoseEstimator.last_timings` times.
TIMED_PARTS = ("preprocess", "inference", "decode")


class PoseEstimator(Protocol):
    """Keypoints of frames, in the frames' pixels, for one model of any kind.

    Attributes
    ----------
    description
        The model (an ensemble's: its first model's).
    last_timings
        Seconds spent by the last estimate in each of :data:`TIMED_PARTS`.
    last_stage_timings
        Seconds of the last estimate in the kind's own stages (a two-stage model's detector,
        crop and pose, an ensemble's ``model<i>``...), parts of ``last_timings``; empty for a
        model of one network.
    last_identity_confidence
        For a model that names the animals itself, the (N, A) identity confidence of each
        animal of the last frames (NaN for an animal not found); None for the others.
    last_members
        For an ensemble, (N, M, K, 3): each model's own keypoints of the last frames; None for
        one model.
    last_frames
        For an ensemble, the ensemble of each of the last frames (median, variance, spread);
        empty for one model.
    two_stage
        True for a model in two stages (a detector, then the pose model on crops).
    crop_from
        Where a two-stage model's crops come from (:mod:`pose.decoding.two_stage`).
    previous
        A two-stage model's detections kept for each camera's next crops, and its counts of
        the frames cropped each way; None for the others.
    """

    description: ModelDescription
    last_timings: dict[str, float]
    last_stage_timings: dict[str, float]
    last_identity_confidence: np.ndarray | None = None
    last_members: np.ndarray | None = None
    last_frames: Sequence[EnsembleFrame] = ()
    two_stage: bool = False
    crop_from: CropFrom = "same_frame"
    previous: PreviousDetections | None = None

    def __init__(self, description: ModelDescription) -> None:
        self.description = description
        self.last_timings = dict.fromkeys(TIMED_PARTS, 0.0)
        self.last_stage_timings = {}

    @property
    def animals(self) -> int:
        """How many animals each frame's result holds (1 for a single-animal model)."""
        return self.description.animals

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """Keypoints of every animal of each frame.

        Parameters
        ----------
        frames
            BGR (or mono) uint8 frames of the shape the estimator was opened for, any number.
        flips
            Per frame, whether to flip it horizontally before the network (a right-side camera,
            so that one network serves both sides); keypoints come back in the unflipped frame's
            pixels. None flips none.
        keys
            Per frame, its camera (any hashable): an estimator that keeps a camera's past (a
            context model's frames, ``crop_from = previous_frame``'s detections) keys it by
            this; None: no past.

        Returns
        -------
        numpy.ndarray
            (N, A, K, 3) float64: x, y in frame pixels and the likelihood, A = :attr:`animals`.
            Rows of animals not found are NaN.
        """
        ...

    def estimate(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """(N, K, 3) keypoints of each frame: its first animal (see :meth:`estimate_animals`)."""
        return self.estimate_animals(frames, flips, keys)[:, 0]

    def refresh(self) -> None:
        """Run what waits until the last frames' keypoints are out; nothing by default.

        A two-stage model with ``crop_from = previous_frame`` runs its detector on the last
        frames here, for their cameras' next crops; the inference worker calls it once the
        keypoints have gone to the experiment and the files.
        """
        return  # a protocol member with a body: the kinds without a detector inherit it
