"""Frames in, keypoints in frame pixels out: :class:`PoseEstimator`, what every caller uses.

Each kind of model subclasses this protocol, which holds what the kinds share and the defaults
of what only some have; :func:`pose.loading.open_estimator` picks a model's kind. The kinds:
``pose.runtime.estimator.NetworkEstimator`` (a network and its decoder),
``pose.formats.dlc3_topdown.DlcTopDownEstimator``, ``pose.runtime.cropzoom.CropZoomEstimator``,
``pose.runtime.context.ContextEstimator`` and ``pose.runtime.ensemble.EnsembleEstimator``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np

from deeplabstream.pose.decoding.two_stage import CropFrom, PreviousDetections
from deeplabstream.pose.ensemble.statistics import EnsembleFrame
from deeplabstream.pose.model import Decoder, ModelDescription, decoder_of

#: The parts of every estimate that :attr:`PoseEstimator.last_timings` times.
TIMED_PARTS = ("preprocess", "inference", "decode")


class PoseEstimator(Protocol):
    """Keypoints of frames, in the frames' pixels, for one model of any kind.

    Attributes
    ----------
    description
        The model (an ensemble's: its first model's).
    decoder, multi_animal, animals
        Its decoder (looked up once, when built), whether it reports several animals, and the
        rows of each frame's result.
    last_timings, last_stage_timings
        Seconds of the last estimate in each of :data:`TIMED_PARTS`, and in the kind's own
        stages (a two-stage model's, an ensemble's ``model<i>``), else empty.
    last_identity_confidence
        An identity model's (N, A) confidences of the last frames; else None.
    last_members, last_frames
        An ensemble's (N, M, K, 3) member keypoints, and each frame's ensemble.
    two_stage, crop_from, previous
        A two-stage model: where its crops come from (:mod:`pose.decoding.two_stage`) and the
        detections kept for each camera's next crops.
    """

    description: ModelDescription
    decoder: Decoder
    multi_animal: bool
    animals: int
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
        # Known at load: every frame reads these, never the decoders' registry.
        self.decoder = decoder_of(description)
        self.multi_animal = description.multi_animal
        self.animals = description.animals
        self.last_timings = dict.fromkeys(TIMED_PARTS, 0.0)
        self.last_stage_timings = {}

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """(N, A, K, 3) float64 keypoints of every animal (A = :attr:`animals`) of each frame.

        ``frames``: BGR (or mono) uint8, of the shape the estimator was opened for, any number.
        ``flips``: per frame, flip it horizontally before the network (a right-side camera);
        the keypoints come back in the unflipped frame's pixels. ``keys``: per frame, its camera,
        which keys what a kind keeps of a camera's past (a context model's frames, a two-stage
        model's detections). Each row is x, y in frame pixels and the likelihood; NaN: not found.
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
        """Run what waits until the keypoints are out (``crop_from = previous_frame``'s detector).

        The inference worker calls it once the keypoints have gone to the experiment and files.
        """
        return  # a body, so not abstract: the kinds without a detector inherit it
