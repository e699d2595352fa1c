"""Several models of the same keypoints run as one estimator, frames sent together to each.

Design: docs/pose-internals.md, "pose.runtime.ensemble".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from deeplabstream.pose.ensemble.statistics import EnsembleFrame, ensemble_frame
from deeplabstream.pose.estimation import TIMED_PARTS, PoseEstimator
from deeplabstream.pose.model import ModelDescription

#: The stage of the pose timing file (and of the deadline's blame) that is model ``i``'s
#: estimate: ``model1``, ``model2``...
MEMBER_STAGE = "model{}"


class EnsembleEstimator(PoseEstimator):
    """The ensemble's keypoints of frames, in the frames' pixels (docs/ensembles.md)."""

    def __init__(
        self,
        description: ModelDescription,
        members: Sequence[PoseEstimator],
        rows: Sequence[np.ndarray],
    ) -> None:
        if len(members) < 2 or len(rows) != len(members):
            raise ValueError("an ensemble has at least two models, each with its keypoint rows")
        super().__init__(description)
        self.members = list(members)
        self.rows = [np.asarray(r, dtype=np.intp) for r in rows]
        keypoints = len(description.keypoints)
        self.last_members: np.ndarray = np.empty((0, len(members), keypoints, 3))
        self.last_frames: list[EnsembleFrame] = []

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """Return (N, 1, K, 3) float64: the ensemble's keypoints of each frame, in frame pixels."""
        timings = dict.fromkeys(TIMED_PARTS, 0.0)
        stages: dict[str, float] = {}
        members = np.empty((len(frames), len(self.members), len(self.description.keypoints), 3))
        for index, (member, rows) in enumerate(zip(self.members, self.rows, strict=True)):
            found = member.estimate_animals(frames, flips, keys)
            members[:, index] = found[:, 0, rows]
            for name, seconds in member.last_timings.items():
                timings[name] = timings.get(name, 0.0) + seconds
            # Its network and decoding: a part of the ensemble's (pre-processing is apart).
            own = member.last_timings
            stages[MEMBER_STAGE.format(index + 1)] = own.get("inference", 0.0) + own.get(
                "decode", 0.0
            )
        self.last_timings = timings
        self.last_stage_timings = stages
        self.last_members = members
        self.last_frames = [ensemble_frame(frame_members) for frame_members in members]
        return np.stack([frame.keypoints for frame in self.last_frames])[:, None]

    def refresh(self) -> None:
        """Refresh the members that crop from the previous frame (two-stage models)."""
        for member in self.members:
            member.refresh()
