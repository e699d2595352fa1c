"""Where animals touch: keypoints re-assigned one type at a time, bodies moved as a whole.

Design: docs/pose-internals.md, "pose.tracking.contact".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment

# count_nonzero and nonzero()[0] on small masks on the loop: see identities.py.


class RepairCounts(Protocol):
    """Where the repair is counted (:class:`~pose.tracking.tracker.TrackerCounts`)."""

    repair_frames: int
    repair_points_moved: int
    repair_points_dropped: int


# In contact, an identity's body is fitted (rotation) to the keypoints within this of where its
# median innovation moves them (a keypoint jitters by a pixel or two, a turn moves a body's ends
# by a few pixels per frame; another animal's keypoint is usually farther).
RIGID_INLIER_PX = 10.0
# The most an identity in contact may turn in one update (17 degrees; 9 rad/s at 30 fps).
RIGID_MAX_TURN_RAD = 0.3


class ContactRegrouper:
    """Re-assign the keypoints of identities in contact (:class:`IdentityTracker`'s)."""

    def __init__(
        self,
        animals: int,
        keypoints: int,
        *,
        contact_distance_px: float,
        margin_px: float,
        gated: float,
        score_cost: Callable[[np.ndarray], np.ndarray],
        counts: RepairCounts,
    ) -> None:
        self.max_animals = animals
        self.keypoints = keypoints
        self.contact_distance_px = contact_distance_px
        self.regroup_margin_px = margin_px
        self._gated = gated
        self._score_cost = score_cost
        self.counts = counts

    def regroup(
        self,
        xy: np.ndarray,
        seen: np.ndarray,
        scores: np.ndarray | None,
        predicted: np.ndarray,
        known: np.ndarray,
        rows: np.ndarray,
        ids: np.ndarray,
        distance: np.ndarray,
        last_seen: np.ndarray,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Re-assign the matched detections' keypoints to identities, one keypoint type at once.

        Arrays: ``xy`` (D, K, 2), ``seen`` (D, K), ``scores`` (D, A) or None, ``predicted`` (A, K,
        2), ``known`` (A, K), ``distance`` (D, A, K), ``last_seen`` (A,) (NaN: not tracked). Returns
        the (A, K) detection row of each identity's keypoint (-1: none), or None when every keypoint
        stays with its instance; and the (A,) identities in contact, or None.
        """
        tracked = np.isfinite(last_seen).nonzero()[0]
        if tracked.size < 2:
            return None, None
        here = np.searchsorted(tracked, ids)  # each matched identity's place among the tracked
        # Where each tracked identity is: its detection's keypoints, else its prediction; and
        # its whole predicted body besides. A decoder near another animal often gives fragments
        # (two keypoints of one animal, or of both) that leave out the keypoints between the
        # two: judged on the fragments alone, animals whose bodies overlap look apart, and a
        # chimera is not repaired.
        body = np.where(known[tracked][..., None], predicted[tracked], np.nan)
        where = np.concatenate([body, body], axis=1)  # (T, 2K, 2)
        where[here, : self.keypoints] = np.where(seen[rows][..., None], xy[rows], np.nan)
        # Cheap first: identities whose bounding boxes are farther apart than the contact
        # distance along x or y are not in contact (the usual case).
        low, high = np.fmin.reduce(where, axis=1), np.fmax.reduce(where, axis=1)
        apart = (
            np.maximum(low[:, None] - high[None], low[None] - high[:, None])
            > self.contact_distance_px
        ).any(axis=2)
        if np.count_nonzero(apart) == apart.size - tracked.size:
            return None, None
        flat = where.reshape(-1, 2)
        gap = flat[:, None] - flat[None]
        gap = np.abs(gap.view(np.complex128)[..., 0]).reshape(
            tracked.size, 2 * self.keypoints, tracked.size, 2 * self.keypoints
        )
        closest = np.fmin.reduce(np.fmin.reduce(gap, axis=3), axis=1)  # NaN: nothing known
        with np.errstate(invalid="ignore"):
            near = closest <= self.contact_distance_px
        np.fill_diagonal(near, False)
        if not np.count_nonzero(near):
            return None, None
        in_contact = np.zeros(self.max_animals, bool)
        in_contact[tracked] = near.any(axis=1)
        # (m, T, K): each matched detection's keypoints against each tracked identity.
        cost = distance[rows[:, None], tracked]
        own = ids[:, None] == tracked[None]  # (m, T)
        extra = np.where(own, 0.0, self.regroup_margin_px)
        if scores is not None:
            extra = extra + self._score_cost(scores[rows[:, None], tracked])
        cost = cost + extra[..., None]
        usable = seen[rows][:, None, :] & known[tracked][None]
        allowed = usable & (own | near[here])[..., None]
        # A keypoint its own identity predicts nothing for stays with it; others may not take
        # one from an identity they are not in contact with.
        cost = np.where(allowed, cost, np.where(own[..., None], 0.0, self._gated))
        kept = cost[np.arange(rows.size), here]  # (m, K)
        # Where every detection's keypoint is cheapest with its own identity, the grouping is
        # optimal (the sum of row minima bounds every assignment from below): no re-solve.
        fine = ~seen[rows] | (kept <= cost.min(axis=1))
        check = (~fine.all(axis=0)).nonzero()[0]
        if check.size == 0:
            return None, in_contact
        source = np.full((self.max_animals, self.keypoints), -1, np.intp)
        source[ids] = np.where(seen[rows], rows[:, None], -1)
        for k in check.tolist():  # own identities are always admissible: nothing is dropped
            present = seen[rows, k].nonzero()[0]
            sub = cost[present, :, k]
            sub_rows, sub_cols = linear_sum_assignment(sub)
            good = sub[sub_rows, sub_cols] < self._gated
            source[tracked, k] = -1
            source[tracked[sub_cols[good]], k] = rows[present[sub_rows[good]]]
        return source, in_contact

    @staticmethod
    def move_rigidly(
        xy: np.ndarray,
        seen: np.ndarray,
        in_contact: np.ndarray,
        predicted: np.ndarray,
        known: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return what the identities in contact remember: their bodies moved as a whole."""
        both = seen & known
        ordered = np.where(both[..., None], xy - predicted, np.nan)  # the innovations
        # The median of each identity's finite innovations: sorting puts the NaNs last (in
        # place: np.sort's copy and wrapper cost more than the sort).
        ordered.sort(axis=1)
        count = both.sum(axis=1)
        which = np.arange(xy.shape[0])
        shift = 0.5 * (ordered[which, (count - 1) // 2] + ordered[which, count // 2])
        # As complex numbers x + iy (views of the contiguous x, y pairs): a turn is a product.
        before = np.ascontiguousarray(predicted).view(np.complex128)[..., 0]
        after = np.ascontiguousarray(xy).view(np.complex128)[..., 0]
        moved = before + np.ascontiguousarray(shift).view(np.complex128)
        inlier = np.abs(after - moved) <= RIGID_INLIER_PX  # NaN: False
        inliers = inlier.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):  # no inlier: not used below
            centre_before = np.where(inlier, before, 0.0).sum(axis=1) / inliers
            centre_after = np.where(inlier, after, 0.0).sum(axis=1) / inliers
            arm = before - centre_before[:, None]
            turn = np.where(inlier, arm.conj() * (after - centre_after[:, None]), 0.0).sum(axis=1)
        # np.clip costs ten times more than this on a few numbers.
        angle = np.arctan2(turn.imag, turn.real)  # np.angle, without its wrapper
        angle = np.minimum(np.maximum(angle, -RIGID_MAX_TURN_RAD), RIGID_MAX_TURN_RAD)
        turned = centre_after[:, None] + np.exp(1j * angle)[:, None] * arm
        body = np.where((inliers >= 2)[:, None], turned, moved)  # a turn needs two
        move = known & (in_contact & (count > 0))[:, None]  # count 0: shift NaN, unused
        remembered = np.where(move[..., None], body.view(np.float64).reshape(xy.shape), xy)
        return remembered, seen | move

    def whole_animals(
        self,
        rows: np.ndarray,
        ids: np.ndarray,
        source: np.ndarray,
        seen: np.ndarray,
        chimeras: np.ndarray,
        foreign: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the identity of each matched instance ``rows``, whole, from the keypoints' votes.

        Marks in ``chimeras`` (A,) an identity whose row holds a seen keypoint another identity
        took; ``foreign`` (A, K), when given, gets which keypoints those are.
        """
        counted = (source[None] == rows[:, None, None]).sum(axis=2)
        votes = counted.astype(np.float64)
        votes[np.arange(rows.size), ids] += 0.5
        sub_rows, sub_ids = linear_sum_assignment(-votes)
        placed = ids.copy()
        placed[sub_rows] = sub_ids
        own = (source[placed] == rows[:, None]) | ~seen[rows]
        chimeras[placed[~own.all(axis=1)]] = True
        if foreign is not None:
            foreign[placed] = ~own
        return placed

    def repair(
        self,
        out: np.ndarray,
        instances: np.ndarray,
        seen: np.ndarray,
        rows: np.ndarray,
        ids: np.ndarray,
        source: np.ndarray,
        *,
        count: bool = True,
    ) -> None:
        """Apply the re-assignment's (A, K) ``source`` rows to ``out``; count it (``count``)."""
        own = np.full(self.max_animals, -1, np.intp)
        own[ids] = rows
        own_seen = np.zeros((self.max_animals, self.keypoints), bool)
        own_seen[ids] = seen[rows]
        elsewhere = source != own[:, None]
        moved_in = (source >= 0) & elsewhere
        moved_out = own_seen & elsewhere
        if not (np.count_nonzero(moved_in) or np.count_nonzero(moved_out)):
            return
        keypoint = np.arange(self.keypoints)
        brought = instances[np.maximum(source, 0), keypoint]
        out[:] = np.where(moved_in[..., None], brought, np.where(moved_out[..., None], np.nan, out))
        if not count:
            return
        # Which of the framework's keypoints (of the matched instances) are still in a row.
        written = np.zeros(seen.shape, bool)
        kept = ~(moved_in | moved_out)
        written[own[ids][:, None], keypoint] = kept[ids]
        written[source[moved_in], np.nonzero(moved_in)[1]] = True
        placed = np.isfinite(instances[rows, :, 0]) & np.isfinite(instances[rows, :, 1])
        self.counts.repair_frames += 1
        self.counts.repair_points_moved += int(np.count_nonzero(moved_in))
        self.counts.repair_points_dropped += int(np.count_nonzero(placed & ~written[rows]))
