"""Keep animals' identities across frames of a live multi-animal pose stream.

Row i is always identity i. What a user sees: docs/pose-models.md, "Several animals";
design: docs/pose-internals.md, "pose.tracking.tracker".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.tracking.contact import ContactRegrouper
from deeplabstream.pose.tracking.motion import MotionModel

# count_nonzero and nonzero()[0] on small masks on the loop: see identities.py.

DEFAULT_VELOCITY_TIME_CONSTANT_S = 0.1
DEFAULT_IDENTITY_WEIGHT_PX = 20.0
DEFAULT_AMBIGUITY_MARGIN = 0.2
# In contact, a keypoint moves to another identity than its instance's when that identity
# predicts it this much closer (a keypoint jitters by a pixel or two; a chimera's wrong half is
# usually 15 to 30 px from where its instance's identity expects it).
DEFAULT_REGROUP_MARGIN_PX = 5.0
# Identities whose closest keypoints are within this are in contact (a few keypoint errors;
# about 0.4 body length for the simulated mice).
DEFAULT_CONTACT_DISTANCE_PX = 40.0
# Two assignments whose total costs differ by less than this cannot be told apart whatever the
# relative margin says: a pose model's keypoints jitter by about a pixel (matters when the best
# total is near zero, e.g. two animals on top of each other).
AMBIGUITY_FLOOR_PX = 1.0
# Class probabilities are clipped to this before the log, so a zero costs a finite amount.
MIN_PROBABILITY = 1e-6


@dataclass
class TrackerCounts:
    """What the tracker has seen and done since it was made; for the session's summary."""

    frames: int = 0
    identities_lost: int = 0
    identities_reacquired: int = 0
    detections_dropped: int = 0
    identities_restarted: int = 0
    ambiguous_assignments: int = 0
    time_resets: int = 0
    repair_frames: int = 0
    repair_points_moved: int = 0
    repair_points_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts by name (for ``session.json``)."""
        return asdict(self)


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise ValueError when it is not a finite positive number."""
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        wanted = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"Expected {name} to be {wanted}, but got {value!r}")
    return number


def _check_count(name: str, value: int) -> int:
    """Return ``value``, or raise ValueError when it is not an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"Expected {name} to be an integer >= 1, but got {value!r}")
    return int(value)


class IdentityTracker:
    """Give the unordered instances of each frame stable identities.

    ``max_distance_px`` gates a match (mean keypoint distance); ``identity_weight_px`` is pixels per
    nat of the identity-score term; ``regroup`` is the merged-instance repair (off: whole animals
    only).
    """

    def __init__(
        self,
        max_animals: int,
        keypoints: int,
        *,
        max_distance_px: float = 100.0,
        max_gap_s: float = 1.0,
        min_likelihood: float = 0.1,
        velocity_time_constant_s: float = DEFAULT_VELOCITY_TIME_CONSTANT_S,
        identity_weight_px: float = DEFAULT_IDENTITY_WEIGHT_PX,
        ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN,
        regroup_margin_px: float = DEFAULT_REGROUP_MARGIN_PX,
        contact_distance_px: float = DEFAULT_CONTACT_DISTANCE_PX,
        regroup: bool = False,
    ) -> None:
        self.max_animals = _check_count("max_animals", max_animals)
        self.keypoints = _check_count("keypoints", keypoints)
        self.max_distance_px = _check_positive("max_distance_px", max_distance_px)
        self.max_gap_s = _check_positive("max_gap_s", max_gap_s)
        self.min_likelihood = _check_positive("min_likelihood", min_likelihood, allow_zero=True)
        self.velocity_time_constant_s = _check_positive(
            "velocity_time_constant_s", velocity_time_constant_s
        )
        self.identity_weight_px = _check_positive(
            "identity_weight_px", identity_weight_px, allow_zero=True
        )
        self.ambiguity_margin = _check_positive(
            "ambiguity_margin", ambiguity_margin, allow_zero=True
        )
        self.regroup_margin_px = _check_positive(
            "regroup_margin_px", regroup_margin_px, allow_zero=True
        )
        self.contact_distance_px = _check_positive("contact_distance_px", contact_distance_px)
        self.regroup = bool(regroup)
        # Larger than any sum of admissible costs, so the Hungarian algorithm first makes as many
        # admissible matches as it can, then the cheapest; a gated pair is never kept.
        largest = self.max_distance_px - self.identity_weight_px * math.log(MIN_PROBABILITY)
        self._gated = 10.0 * (self.max_animals + 1) * largest
        self.counts = TrackerCounts()
        self.contact = ContactRegrouper(
            self.max_animals,
            self.keypoints,
            contact_distance_px=self.contact_distance_px,
            margin_px=self.regroup_margin_px,
            gated=self._gated,
            score_cost=self._score_cost,
            counts=self.counts,
        )
        self.reset()

    def reset(self) -> None:
        """Forget every identity and the last frame time (the counts are kept)."""
        self.motion = MotionModel(
            self.max_animals, self.keypoints, self.max_gap_s, self.velocity_time_constant_s
        )
        self._time: float | None = None
        self._last_ambiguous = False
        # The input row each identity was matched to in the last update (-1: none).
        self.last_detections = np.full(self.max_animals, -1, np.intp)
        # What each identity followed in the last update (the keypoints re-assigned to it where
        # animals touch), when that differs from the output rows; None: the output rows.
        self._followed: np.ndarray | None = None
        # Identities whose output row, in the last update, holds a seen keypoint that another
        # identity followed (a chimera, or one animal assembled twice): written whole, but not
        # wholly this identity's animal.
        self.last_chimeras = np.zeros(self.max_animals, bool)
        # Of those rows, the keypoints another identity followed (A, K).
        self.last_foreign = np.zeros((self.max_animals, self.keypoints), bool)

    @property
    def last_ambiguous(self) -> bool:
        """Whether the last update's assignment was ambiguous (a likely switch)."""
        return self._last_ambiguous

    def followed(self, rows: np.ndarray) -> np.ndarray:
        """Return (A, K, 3): what each identity followed in the update that returned ``rows``.

        ``rows`` itself unless animals touched; then keypoints re-assigned one type at a time,
        possibly from several instances.
        """
        return rows if self._followed is None else self._followed

    @property
    def active(self) -> np.ndarray:
        """(A,) bool: the identities tracked as of the last update (not lost)."""
        return np.isfinite(self.motion.last_seen)

    def bodies(self) -> np.ndarray:
        """Return (A, K, 2): each identity's whole body as of the last update (NaN where unknown).

        Unseen keypoints are where motion puts them, until ``max_gap_s``.
        """
        if self._time is None:
            return np.full_like(self.motion.kp_xy, np.nan)
        where, known = self.motion.predict(self._time)
        return np.where(known[..., None], where, np.nan)

    def update(
        self, time_s: float, instances: np.ndarray, identity_scores: np.ndarray | None = None
    ) -> np.ndarray:
        """Assign this frame's (D, K, 3) instances to identities; return a new (A, K, 3) array.

        A repeated ``time_s`` moves identities but keeps velocities; an earlier one forgets every
        identity (``counts.time_resets``). ``identity_scores``: optional (D, A) class probabilities,
        classes in identity order. Row i is identity i's instance whole, all-NaN when it has none;
        with ``regroup``, identities in contact get their re-assigned keypoints.
        """
        time_s = float(time_s)
        if not math.isfinite(time_s):
            raise ValueError(f"Expected a finite frame time, but got {time_s!r}")
        instances = np.asarray(instances)
        if instances.ndim != 3 or instances.shape[1:] != (self.keypoints, 3):
            raise ValueError(
                f"Expected instances of shape (D, {self.keypoints}, 3), but got {instances.shape}"
            )
        scores = self._check_scores(identity_scores, instances.shape[0])
        previous = self._time
        if previous is not None and time_s < previous:
            # A clock that started over (a camera reconnected): no motion spans it, and raising
            # here would stop the live loop. Start over, counted.
            self.reset()
            self.counts.time_resets += 1
            previous = None
        self._time = time_s
        self.counts.frames += 1
        self._last_ambiguous = False
        self.last_detections[:] = -1
        self.last_chimeras[:] = False
        self.last_foreign[:] = False
        self._followed = None
        if time_s > self.motion.expires_s:
            self.counts.identities_lost += self.motion.expire(time_s)

        dtype = instances.dtype if instances.dtype.kind == "f" else np.float64
        out = np.full((self.max_animals, self.keypoints, 3), np.nan, dtype)
        # Contiguous float64 x, y pairs: numpy is several times faster on them than on strided
        # views of the instances, and each pair viewed as one complex number takes one call
        # where x and y would take two (finiteness here, distances in _match).
        xy = np.ascontiguousarray(instances[..., :2], dtype=np.float64)
        finite = np.isfinite(xy.view(np.complex128)[..., 0])  # both x and y finite
        seen = finite & (instances[..., 2] >= self.min_likelihood)
        present = seen.sum(axis=1)
        # Rows with keypoints but none seen: written whole in a row left, never tracked.
        faint = ((present == 0) & finite.any(axis=1)).nonzero()[0]
        whole = instances, xy, seen  # every input row, for the rows placed last
        given = np.arange(present.size)  # the input row of each instance kept
        if np.count_nonzero(present) < present.size:  # drop the empty slots
            rows = given = present.nonzero()[0]
            instances, xy, seen = instances[rows], xy[rows], seen[rows]
            if scores is not None:
                scores = scores[rows]
        taken = np.zeros(self.max_animals, bool)  # identities given a row in this frame
        matched = taken  # of those, the ones matched to what they remember
        left = given[:0]
        if instances.shape[0]:
            rows, ids, predicted, distance, known = self._match(time_s, xy, seen, scores)
            new_rows, new_ids = self._take_free(rows, instances, seen, scores)
            if rows.size:
                ids = self._follow_matched(
                    time_s, previous, out, instances, xy, seen, scores, rows, ids,
                    (predicted, distance, known),
                )  # fmt: skip
            self.last_detections[ids] = given[rows]
            self.last_detections[new_ids] = given[new_rows]
            taken[ids] = True
            matched = taken.copy()
            taken[new_ids] = True
            unplaced = np.ones(given.size, bool)
            unplaced[rows] = unplaced[new_rows] = False
            left = given[unplaced]
            if new_rows.size:
                out[new_ids] = instances[new_rows]
                reacquired = self.motion.start(time_s, xy[new_rows], seen[new_rows], new_ids)
                self.counts.identities_reacquired += reacquired
        if left.size or faint.size:
            self._place_rest(time_s, out, whole, (left, faint), taken)
        if self._followed is not None:  # rows given after the matching: followed as written
            later = taken & ~matched
            self._followed[later] = out[later]
        return out

    def _follow_matched(
        self,
        time_s: float,
        previous: float | None,
        out: np.ndarray,
        instances: np.ndarray,
        xy: np.ndarray,
        seen: np.ndarray,
        scores: np.ndarray | None,
        rows: np.ndarray,
        ids: np.ndarray,
        matched: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Write the matched instances to their identities' rows; return the identities used."""
        predicted, distance, known = matched
        moved = previous is None or time_s > previous
        contact = self.contact
        source, in_contact = contact.regroup(
            xy, seen, scores, predicted, known, rows, ids, distance, self.motion.last_seen
        )
        placed = ids
        if source is not None and not self.regroup:  # whole animals, by their keypoints' votes
            placed = contact.whole_animals(
                rows, ids, source, seen, self.last_chimeras, self.last_foreign
            )
        out[placed] = instances[rows]
        if source is None:  # every keypoint stays with its instance
            kp_xy, kp_seen = xy[rows], seen[rows]
        else:
            if self.regroup:  # the rows are what the identities follow
                contact.repair(out, instances, seen, rows, ids, source)
            else:  # what they follow, beside the whole animals
                self._followed = np.full_like(out, np.nan)
                self._followed[ids] = instances[rows]
                contact.repair(self._followed, instances, seen, rows, ids, source, count=False)
            ids = np.nonzero((source >= 0).any(axis=1))[0]
            source = source[ids]
            taken = source >= 0
            pick = np.maximum(source, 0), np.arange(self.keypoints)
            kp_xy, kp_seen = xy[pick], taken
        if in_contact is not None and np.count_nonzero(in_contact[ids]):
            kp_xy, kp_seen = contact.move_rigidly(
                kp_xy, kp_seen, in_contact[ids], predicted[ids], known[ids]
            )
        self.motion.follow(time_s, kp_xy, kp_seen, ids, kp_xy - predicted[ids], moved)
        return placed

    def _place_rest(
        self,
        time_s: float,
        out: np.ndarray,
        whole: tuple[np.ndarray, np.ndarray, np.ndarray],
        groups: tuple[np.ndarray, np.ndarray],
        taken: np.ndarray,
    ) -> None:
        """Give the rows no identity took the identities left, so no animal is dropped."""
        instances, xy, seen = whole
        for group, tracked in zip(groups, (True, False), strict=True):
            free = (~taken).nonzero()[0]
            if group.size == 0:
                continue
            if group.size > free.size:
                scores = np.nan_to_num(instances[group, :, 2].astype(np.float64), nan=0.0)
                order = np.argsort(-scores.sum(axis=1), kind="stable")  # most likely first
                self.counts.detections_dropped += int(group.size - free.size)
                group = np.sort(group[order[: free.size]])
            if group.size == 0:
                continue
            cost = self.motion.centroid_distances(time_s, xy[group], free)
            sub_rows, sub_ids = linear_sum_assignment(cost)
            chosen, identities = group[sub_rows], free[sub_ids]
            out[identities] = instances[chosen]
            self.last_detections[identities] = chosen
            taken[identities] = True
            if tracked:
                self.counts.identities_restarted += int(
                    np.count_nonzero(np.isfinite(self.motion.last_seen[identities]))
                )
                reacquired = self.motion.start(time_s, xy[chosen], seen[chosen], identities)
                self.counts.identities_reacquired += reacquired

    def _check_scores(self, scores: np.ndarray | None, detections: int) -> np.ndarray | None:
        """Return the identity scores as floats, or raise ValueError for a wrong shape or value."""
        if scores is None:
            return None
        scores = np.asarray(scores, np.float64)
        if scores.shape != (detections, self.max_animals):
            raise ValueError(
                f"Expected identity scores of shape ({detections}, {self.max_animals}), "
                f"but got {scores.shape}"
            )
        # NaN scores (an empty slot's) are fine: such rows are dropped with their detection.
        if (scores < 0).any():
            raise ValueError("Expected identity scores >= 0 (class probabilities)")
        return scores

    def _score_cost(self, scores: np.ndarray) -> np.ndarray:
        """Return the identity term of the cost, ``weight * -log(p)``, for (D, A) scores."""
        # fmax takes MIN_PROBABILITY for NaN too (a detection the ID model gave no score).
        clipped = np.fmin(np.fmax(scores, MIN_PROBABILITY), 1.0)
        return -self.identity_weight_px * np.log(clipped)

    def _match(
        self, time_s: float, xy: np.ndarray, seen: np.ndarray, scores: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Match detections to identities: rows, ids, predictions, distances, known keypoints."""
        predicted, known = self.motion.predict(time_s)
        innovation = xy[:, None] - predicted[None]  # (D, A, K, 2), contiguous
        distance = np.abs(innovation.view(np.complex128)[..., 0])  # hypot of each x, y pair
        both = seen[:, None, :] & known[None]
        with np.errstate(invalid="ignore", divide="ignore"):
            # NaN where no keypoint is seen in both, as for every identity not tracked.
            cost = np.where(both, distance, 0.0).sum(axis=2) / both.sum(axis=2)
            untracked = np.count_nonzero(np.isnan(self.motion.last_seen))
            if np.count_nonzero(np.isnan(cost)) > cost.shape[0] * untracked:
                # A tracked identity shares no keypoint with a detection (say it saw nose and
                # tail, now only ears are seen): compare the centroids of what each has, biased
                # by up to half a body but better than no match at all.
                centroid = self._centroid_cost(xy, seen, predicted, known)
                cost = np.where(np.isnan(cost), centroid, cost)
        admissible = cost <= self.max_distance_px  # NaN never is
        if scores is not None:
            cost = cost + self._score_cost(scores)
        cost = np.where(admissible, cost, self._gated)
        rows, ids = linear_sum_assignment(cost)
        keep = admissible[rows, ids]
        if np.count_nonzero(keep) < keep.size:
            rows, ids = rows[keep], ids[keep]
        if self._is_ambiguous(cost, admissible, rows, ids):
            self._last_ambiguous = True
            self.counts.ambiguous_assignments += 1
        return rows, ids, predicted, distance, known

    @staticmethod
    def _centroid_cost(
        xy: np.ndarray, seen: np.ndarray, predicted: np.ndarray, known: np.ndarray
    ) -> np.ndarray:
        """Return (D, A) centroid distances; NaN for identities without a known keypoint."""
        detected = np.where(seen[..., None], xy, 0.0).sum(axis=1)
        detected /= seen.sum(axis=1)[:, None]
        expected = np.where(known[..., None], predicted, 0.0).sum(axis=1)
        expected /= known.sum(axis=1)[:, None]
        diff = detected[:, None] - expected[None]
        return np.hypot(diff[..., 0], diff[..., 1])

    def _is_ambiguous(
        self, cost: np.ndarray, admissible: np.ndarray, rows: np.ndarray, ids: np.ndarray
    ) -> bool:
        """Whether another assignment with as many matches costs nearly as little as the best."""
        matched = rows.size
        if matched == 0 or np.count_nonzero(admissible) <= matched:
            return False  # no admissible pair outside the best: nothing to confuse it with
        best = float(cost[rows, ids].sum())
        limit = best + self.ambiguity_margin * best + AMBIGUITY_FLOOR_PX
        others = cost.copy()
        others[rows, ids] = self._gated
        if others.min() > limit:
            return False
        second = math.inf
        for row, identity in zip(rows, ids, strict=True):
            trial = cost.copy()
            trial[row, identity] = self._gated
            other_rows, other_ids = linear_sum_assignment(trial)
            pairs = trial[other_rows, other_ids]
            kept = pairs < self._gated
            if np.count_nonzero(kept) == matched:
                second = min(second, float(pairs[kept].sum()))
        return second <= limit

    def _take_free(
        self, rows: np.ndarray, instances: np.ndarray, seen: np.ndarray, scores: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Give the unmatched detections free identities; return (detection rows, identities)."""
        empty = rows[:0]
        if rows.size == instances.shape[0]:
            return empty, empty
        matched = np.zeros(instances.shape[0], bool)
        matched[rows] = True
        left = (~matched).nonzero()[0]
        free = np.isnan(self.motion.last_seen).nonzero()[0]
        if free.size == 0:
            return empty, empty
        if scores is not None:
            sub_rows, sub_ids = linear_sum_assignment(self._score_cost(scores[left][:, free]))
            new_rows, new_ids = left[sub_rows], free[sub_ids]
        else:
            seen_left = seen[left]
            counts = seen_left.sum(axis=1)
            if left.size > free.size:
                likelihood = np.where(seen_left, instances[left, :, 2], 0.0).sum(axis=1) / counts
                keep = np.sort(np.argsort(-likelihood, kind="stable")[: free.size])
                left, seen_left, counts = left[keep], seen_left[keep], counts[keep]
            centre_x = np.where(seen_left, instances[left, :, 0], 0.0).sum(axis=1) / counts
            new_rows = left[np.argsort(centre_x, kind="stable")]
            new_ids = free[: new_rows.size]
        return new_rows, new_ids
