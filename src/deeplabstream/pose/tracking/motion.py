"""Where each identity's keypoints are and how fast it moves: :class:`IdentityTracker`'s motion.

Design: docs/pose-internals.md, "pose.tracking.motion".
"""

from __future__ import annotations

import math

import numpy as np


class MotionModel:
    """Each identity's keypoints, when each was seen (NaN: unknown), and its velocity (px/s)."""

    def __init__(
        self, animals: int, keypoints: int, max_gap_s: float, velocity_time_constant_s: float
    ) -> None:
        self.max_gap_s = max_gap_s
        self.velocity_time_constant_s = velocity_time_constant_s
        self.kp_xy = np.full((animals, keypoints, 2), np.nan)
        self.kp_time = np.full((animals, keypoints), np.nan)
        self.vel = np.zeros((animals, 2))  # px/s, one per identity
        self.vel_known = np.zeros(animals, bool)
        self.last_seen = np.full(animals, np.nan)  # NaN: not tracked
        self.was_lost = np.zeros(animals, bool)
        self.expires_s = math.inf  # no identity is lost before this time

    def predict(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (A, K, 2) where motion puts each keypoint at ``time_s``, (A, K) which are known.

        Known: seen within ``max_gap_s``; NaN where nothing is known.
        """
        age = time_s - self.kp_time  # NaN where unknown: compares False below
        predicted = self.kp_xy + self.vel[:, None, :] * age[..., None]
        return predicted, age <= self.max_gap_s

    def centroid_distances(self, time_s: float, xy: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(R, I) distances of the rows' keypoint centroids to identities' predicted centroids."""
        with np.errstate(invalid="ignore"):
            rows = np.nanmean(xy, axis=1)  # every row has a finite keypoint
            predicted, known = self.predict(time_s)
            where = predicted[ids]
            where[~known[ids]] = np.nan
            counts = np.count_nonzero(np.isfinite(where[..., 0]), axis=1)
            centres = np.where(np.isfinite(where), where, 0.0).sum(axis=1)
            centres /= np.maximum(counts, 1)[:, None]
        distance = np.hypot(*(rows[:, None] - centres[None]).transpose(2, 0, 1))
        unknown = counts == 0
        return np.where(unknown[None], 1e12, distance)

    def expire(self, time_s: float) -> int:
        """Give up the identities unseen for longer than ``max_gap_s``; return how many."""
        lost = time_s > self.last_seen + self.max_gap_s
        self.was_lost |= lost
        self.last_seen[lost] = np.nan
        self.kp_xy[lost] = np.nan
        self.kp_time[lost] = np.nan
        # A lower bound of the next loss, exact here; identities seen later only push it back.
        earliest = float(np.fmin.reduce(self.last_seen))  # NaN when none is tracked
        self.expires_s = earliest + self.max_gap_s if math.isfinite(earliest) else math.inf
        return int(np.count_nonzero(lost))

    def follow(
        self,
        time_s: float,
        xy: np.ndarray,
        seen: np.ndarray,
        ids: np.ndarray,
        innovation: np.ndarray,
        moved: bool,
    ) -> None:
        """Move the matched identities ``ids`` to their detections ``xy``, update velocity.

        ``innovation`` is (m, K, 2), detections minus predictions; ``moved`` is False for a repeated
        frame time. The first measurement is taken whole.
        """
        times = self.kp_time[ids]
        if moved:
            last = self.last_seen[ids]
            fresh = seen & (times == last[:, None])
            error = np.where(fresh[..., None], innovation, 0.0).sum(axis=1)
            # At most A numbers each: plain floats cost less than numpy calls here.
            gains = []
            for identity, since, count in zip(
                ids.tolist(), last.tolist(), fresh.sum(axis=1).tolist(), strict=True
            ):
                if count == 0:  # matched by centroid only: nothing to measure
                    gains.append(0.0)
                    continue
                dt = time_s - since
                alpha = -math.expm1(-dt / self.velocity_time_constant_s)  # 1 - exp(-dt / tau)
                if not self.vel_known[identity]:
                    alpha, self.vel_known[identity] = 1.0, True
                gains.append(alpha / (count * dt))
            self.vel[ids] += np.array(gains)[:, None] * error
        self.kp_xy[ids] = np.where(seen[..., None], xy, self.kp_xy[ids])
        self.kp_time[ids] = np.where(seen, time_s, times)
        self.last_seen[ids] = time_s

    def start(self, time_s: float, xy: np.ndarray, seen: np.ndarray, ids: np.ndarray) -> int:
        """Start the free identities ``ids`` at their detections; return how many were lost."""
        reacquired = int(np.count_nonzero(self.was_lost[ids]))
        self.was_lost[ids] = False
        self.kp_xy[ids] = np.where(seen[..., None], xy, np.nan)
        self.kp_time[ids] = np.where(seen, time_s, np.nan)
        self.vel[ids] = 0.0
        self.vel_known[ids] = False
        self.last_seen[ids] = time_s
        self.expires_s = min(self.expires_s, time_s + self.max_gap_s)
        return reacquired
