"""Keep animals' identities across frames of a live multi-animal pose stream.

A multi-animal pose model gives, per frame, up to A *unordered* instances, an array (A, K, 3) of
x, y (pixels, x right, y down) and likelihood per keypoint, with all-NaN rows for unused slots.
:class:`IdentityTracker` reorders them so that row i is always the same animal (identity i).

Each identity predicts where its keypoints are now (a constant-velocity motion model, see
:class:`IdentityTracker`), the detections are matched to the predictions by the Hungarian
algorithm on the mean keypoint distance (gated at ``max_distance_px``), and detections left over
take free identities. It runs at every pose update of the live loop, so it is about fifty
vectorised numpy calls on (A, A, K) arrays, at about a microsecond each whatever A <= 4 and
K <= 20: some 50 to 65 µs per update on one core.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

DEFAULT_VELOCITY_TIME_CONSTANT_S = 0.1
DEFAULT_IDENTITY_WEIGHT_PX = 20.0
DEFAULT_AMBIGUITY_MARGIN = 0.2
# Two assignments whose total costs differ by less than this cannot be told apart whatever the
# relative margin says: a pose model's keypoints jitter by about a pixel (matters when the best
# total is near zero, e.g. two animals on top of each other).
AMBIGUITY_FLOOR_PX = 1.0
# Class probabilities are clipped to this before the log, so a zero costs a finite amount.
MIN_PROBABILITY = 1e-6


@dataclass
class TrackerCounts:
    """What the tracker has seen and done since it was made; for the session's summary.

    Attributes
    ----------
    frames
        Calls of :meth:`IdentityTracker.update`.
    identities_lost
        Identities that went unseen for longer than ``max_gap_s`` and were given up.
    identities_reacquired
        Identities taken by a detection again after being lost.
    detections_dropped
        Detections left without an identity because every identity was taken.
    ambiguous_assignments
        Frames whose best and second-best assignments cost nearly the same: a likely identity
        switch (see :meth:`IdentityTracker.update`).
    time_resets
        Frames whose time was before the previous frame's: every identity was forgotten.
    """

    frames: int = 0
    identities_lost: int = 0
    identities_reacquired: int = 0
    detections_dropped: int = 0
    ambiguous_assignments: int = 0
    time_resets: int = 0

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

    Motion model: one velocity per identity, applied to the last seen position of each of its
    keypoints. The velocity is the mean displacement, over the keypoints seen in both this and the
    identity's previous update, divided by the real time between them (frames may be skipped), and
    smoothed exponentially with a time constant, so one noisy frame moves it only a little
    whatever the frame rate. Why not a velocity per keypoint: the keypoints of one animal move
    together to first order, so a mean over K keypoints has about 1/sqrt(K) of the noise, and a
    keypoint missed for a few frames still moves with its body. Why not a centroid: the centroid of
    the *visible* keypoints jumps when a keypoint appears or disappears, which a centroid velocity
    reads as motion; displacements of the same keypoints do not. A keypoint unseen for longer than
    ``max_gap_s`` is forgotten; an identity unseen for longer is lost, its motion reset, and it is
    free for a later detection.

    Parameters
    ----------
    max_animals
        A, the number of identities (rows of the output).
    keypoints
        K, the keypoints per animal.
    max_distance_px
        Gate: a detection whose mean keypoint distance to an identity's prediction is larger is
        never matched to it.
    max_gap_s
        Time an identity may go unseen before it is lost.
    min_likelihood
        Keypoints below this likelihood (or with a NaN coordinate) count as unseen.
    velocity_time_constant_s
        Time constant of the velocity's exponential smoothing.
    identity_weight_px
        Weight (pixels per nat) of the identity-score term of the cost, when scores are given.
    ambiguity_margin
        A frame is ambiguous when its second-best assignment costs at most this fraction more
        than the best (plus :data:`AMBIGUITY_FLOOR_PX`).
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
        # Larger than any sum of admissible costs, so the Hungarian algorithm first makes as many
        # admissible matches as it can, then the cheapest; a gated pair is never kept.
        largest = self.max_distance_px - self.identity_weight_px * math.log(MIN_PROBABILITY)
        self._gated = 10.0 * (self.max_animals + 1) * largest
        self.counts = TrackerCounts()
        self.reset()

    def reset(self) -> None:
        """Forget every identity and the last frame time (the counts are kept)."""
        # Per identity and keypoint: where and when it was last seen; NaN where unknown, all NaN
        # for an identity not tracked.
        self._kp_xy = np.full((self.max_animals, self.keypoints, 2), np.nan)
        self._kp_time = np.full((self.max_animals, self.keypoints), np.nan)
        self._vel = np.zeros((self.max_animals, 2))  # px/s, one per identity
        self._vel_known = np.zeros(self.max_animals, bool)
        self._last_seen = np.full(self.max_animals, np.nan)  # NaN: not tracked
        self._was_lost = np.zeros(self.max_animals, bool)
        self._expires_s = math.inf  # no identity is lost before this time
        self._time: float | None = None
        self._last_ambiguous = False

    @property
    def last_ambiguous(self) -> bool:
        """Whether the last update's assignment was ambiguous (a likely switch)."""
        return self._last_ambiguous

    @property
    def active(self) -> np.ndarray:
        """(A,) bool: the identities tracked as of the last update (not lost)."""
        return np.isfinite(self._last_seen)

    def update(
        self, time_s: float, instances: np.ndarray, identity_scores: np.ndarray | None = None
    ) -> np.ndarray:
        """Assign this frame's instances to identities.

        Parameters
        ----------
        time_s
            The frame's time in seconds. A repeated time (the same frame again) moves the
            identities but leaves their velocities; a time before the previous call's forgets
            every identity (as :meth:`reset`) and is counted in ``counts.time_resets``.
        instances
            (D, K, 3) unordered instances: x, y, likelihood per keypoint; rows without a seen
            keypoint are empty slots and ignored. D is usually A but may be anything.
        identity_scores
            Optional (D, A) class probabilities of each detection being identity i (a SLEAP ID
            model's output, classes in identity order). They add
            ``identity_weight_px * -log(p)`` to the cost of each pair, so a detection prefers its
            most probable identity; the gate still looks at distance only. Detections that take
            free identities take them by these scores too instead of by position.

        Returns
        -------
        numpy.ndarray
            A new (A, K, 3) array: row i is identity i's instance as given, all-NaN when identity
            i was not seen in this frame.
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
        if time_s > self._expires_s:
            self._expire(time_s)

        dtype = instances.dtype if instances.dtype.kind == "f" else np.float64
        out = np.full((self.max_animals, self.keypoints, 3), np.nan, dtype)
        # Contiguous float64 x, y pairs: numpy is several times faster on them than on strided
        # views of the instances, and each pair viewed as one complex number takes one call
        # where x and y would take two (finiteness here, distances in _match).
        xy = np.ascontiguousarray(instances[..., :2], dtype=np.float64)
        seen = np.isfinite(xy.view(np.complex128)[..., 0])  # both x and y finite
        seen &= instances[..., 2] >= self.min_likelihood
        present = seen.sum(axis=1)
        if np.count_nonzero(present) < present.size:  # drop the empty slots
            rows = np.flatnonzero(present)
            instances, xy, seen = instances[rows], xy[rows], seen[rows]
            if scores is not None:
                scores = scores[rows]
        if instances.shape[0] == 0:
            return out

        rows, ids, innovation = self._match(time_s, xy, seen, scores)
        new_rows, new_ids = self._take_free(rows, instances, seen, scores)
        if rows.size:
            out[ids] = instances[rows]
            moved = previous is None or time_s > previous
            self._follow(time_s, xy[rows], seen[rows], ids, innovation[rows, ids], moved)
        if new_rows.size:
            out[new_ids] = instances[new_rows]
            self._start(time_s, xy[new_rows], seen[new_rows], new_ids)
        return out

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

    def _expire(self, time_s: float) -> None:
        """Give up the identities unseen for longer than ``max_gap_s``."""
        lost = time_s > self._last_seen + self.max_gap_s
        self.counts.identities_lost += int(np.count_nonzero(lost))
        self._was_lost |= lost
        self._last_seen[lost] = np.nan
        self._kp_xy[lost] = np.nan
        self._kp_time[lost] = np.nan
        # A lower bound of the next loss, exact here; identities seen later only push it back.
        earliest = float(np.fmin.reduce(self._last_seen))  # NaN when none is tracked
        self._expires_s = earliest + self.max_gap_s if math.isfinite(earliest) else math.inf

    def _score_cost(self, scores: np.ndarray) -> np.ndarray:
        """Return the identity term of the cost, ``weight * -log(p)``, for (D, A) scores."""
        # fmax takes MIN_PROBABILITY for NaN too (a detection the ID model gave no score).
        clipped = np.fmin(np.fmax(scores, MIN_PROBABILITY), 1.0)
        return -self.identity_weight_px * np.log(clipped)

    def _match(
        self, time_s: float, xy: np.ndarray, seen: np.ndarray, scores: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Match detections to the tracked identities.

        Parameters
        ----------
        time_s
            The frame's time.
        xy
            (D, K, 2) contiguous float64 positions of the detections' keypoints.
        seen
            (D, K) which of them are seen.
        scores
            (D, A) identity scores, or None.

        Returns
        -------
        tuple of numpy.ndarray
            The detection rows and their identities, and the (D, A, K, 2) innovations (the
            detections' keypoints minus the predictions).
        """
        age = time_s - self._kp_time  # NaN where unknown: compares False below
        predicted = self._kp_xy + self._vel[:, None, :] * age[..., None]
        innovation = xy[:, None] - predicted[None]  # (D, A, K, 2), contiguous
        distance = np.abs(innovation.view(np.complex128)[..., 0])  # hypot of each x, y pair
        known = age <= self.max_gap_s
        both = seen[:, None, :] & known[None]
        with np.errstate(invalid="ignore", divide="ignore"):
            # NaN where no keypoint is seen in both, as for every identity not tracked.
            cost = np.where(both, distance, 0.0).sum(axis=2) / both.sum(axis=2)
            untracked = np.count_nonzero(np.isnan(self._last_seen))
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
        return rows, ids, innovation

    @staticmethod
    def _centroid_cost(
        xy: np.ndarray, seen: np.ndarray, predicted: np.ndarray, known: np.ndarray
    ) -> np.ndarray:
        """Return (D, A) distances between detections' and predictions' keypoint centroids.

        NaN for identities without a known keypoint (callers silence the 0/0 warning).
        """
        detected = np.where(seen[..., None], xy, 0.0).sum(axis=1)
        detected /= seen.sum(axis=1)[:, None]
        expected = np.where(known[..., None], predicted, 0.0).sum(axis=1)
        expected /= known.sum(axis=1)[:, None]
        diff = detected[:, None] - expected[None]
        return np.hypot(diff[..., 0], diff[..., 1])

    def _is_ambiguous(
        self, cost: np.ndarray, admissible: np.ndarray, rows: np.ndarray, ids: np.ndarray
    ) -> bool:
        """Whether another assignment with as many matches costs nearly as little as the best.

        The second-best assignment differs from the best in at least one pair, so it is the
        cheapest of the assignments with one of the best's pairs forbidden (a re-solve per
        pair, about a microsecond each for A <= 4). Skipped when no other admissible pair is
        cheap enough to take part in a close second (all costs are >= 0).
        """
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
        """Give the unmatched detections free identities; return (detection rows, identities).

        Without scores, the free identities go lowest index first to the detections in order of
        their centroid's x (left to right), so a start is deterministic; when there are more
        detections than free identities, the most likely ones (mean likelihood of their seen
        keypoints) are kept. With scores, the Hungarian algorithm on the score term decides.
        The rest are dropped and counted.
        """
        empty = rows[:0]
        if rows.size == instances.shape[0]:
            return empty, empty
        matched = np.zeros(instances.shape[0], bool)
        matched[rows] = True
        left = np.flatnonzero(~matched)
        unmatched = int(left.size)
        free = np.flatnonzero(np.isnan(self._last_seen))
        if free.size == 0:
            self.counts.detections_dropped += unmatched
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
        self.counts.detections_dropped += unmatched - int(new_rows.size)
        return new_rows, new_ids

    def _follow(
        self,
        time_s: float,
        xy: np.ndarray,
        seen: np.ndarray,
        ids: np.ndarray,
        innovation: np.ndarray,
        moved: bool,
    ) -> None:
        """Move the matched identities ``ids`` to their detections ``xy``, update velocity.

        The velocity takes ``alpha`` of the mean prediction error per second over the keypoints
        seen both now and at the identity's previous update: the velocity step of an alpha-beta
        filter, the same as smoothing the measured velocity (displacement over real time)
        exponentially. The first measurement is taken whole. ``innovation`` is (m, K, 2), the
        detections minus the predictions; ``moved`` is False for a repeated frame time.
        """
        times = self._kp_time[ids]
        if moved:
            last = self._last_seen[ids]
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
                if not self._vel_known[identity]:
                    alpha, self._vel_known[identity] = 1.0, True
                gains.append(alpha / (count * dt))
            self._vel[ids] += np.array(gains)[:, None] * error
        self._kp_xy[ids] = np.where(seen[..., None], xy, self._kp_xy[ids])
        self._kp_time[ids] = np.where(seen, time_s, times)
        self._last_seen[ids] = time_s

    def _start(self, time_s: float, xy: np.ndarray, seen: np.ndarray, ids: np.ndarray) -> None:
        """Start the free identities ``ids`` at their detections ``xy``, with no motion yet."""
        self.counts.identities_reacquired += int(np.count_nonzero(self._was_lost[ids]))
        self._was_lost[ids] = False
        self._kp_xy[ids] = np.where(seen[..., None], xy, np.nan)
        self._kp_time[ids] = np.where(seen, time_s, np.nan)
        self._vel[ids] = 0.0
        self._vel_known[ids] = False
        self._last_seen[ids] = time_s
        self._expires_s = min(self._expires_s, time_s + self.max_gap_s)
