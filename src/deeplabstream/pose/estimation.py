"""Frames in, keypoints in frame pixels out: :class:`PoseEstimator`, what every caller uses.

Each kind of model subclasses it; :func:`pose.loading.open_estimator` picks the kind.
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

    ``description`` is the model's (an ensemble's first model's); ``last_timings`` the seconds of
    the last estimate in each of :data:`TIMED_PARTS`, ``last_stage_timings`` in the kind's own
    stages; ``last_identity_confidence`` an identity model's (N, A), else None; ``last_members`` and
    ``last_frames`` an ensemble's; ``crop_from`` and ``previous`` a two-stage model's.
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

        ``frames``: BGR or mono uint8 of the shape opened for. ``flips``: per frame, mirror it first
        (keypoints still come back in the unflipped frame's pixels). ``keys``: per frame, its camera
        (what a context or two-stage model keeps per camera). NaN: not found.
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
        """Run what waits until the keypoints are out (the ``previous_frame`` detector)."""
        return  # a body, so not abstract: the kinds without a detector inherit it
