"""How close the animals come to each other, hidden ones included, for the identity keeper."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from deeplabstream.pose.tracking.patches import BodyPatches
from deeplabstream.pose.tracking.tracker import IdentityTracker

# count_nonzero and nonzero()[0] on small masks on the loop: see identities.py.

APART_BODY_LENGTHS = 0.5
"""Tracks whose closest keypoints are farther apart than this many template lengths are apart."""
APART_HOLD_S = 0.1
"""An animal's looks count alone (and are learned) once it has been apart this long: a pose
model that drops the keypoints where two animals touch makes them look apart for a frame or
two (three frames at 30 fps)."""


class AnimalProximity:
    """Where each track is, hidden or not, and how close the tracks come."""

    def __init__(
        self, tracker: IdentityTracker, patches: BodyPatches | None, min_likelihood: float
    ) -> None:
        animals = tracker.max_animals
        self.tracker = tracker
        self.patches = patches
        self.animals = animals
        self.min_likelihood = min_likelihood
        self.last_xy = np.full((animals, tracker.keypoints, 2), np.nan)  # last seen keypoints
        self.was_active = np.zeros(animals, bool)
        self.near_last = np.zeros(animals, bool)  # last frame: within apart_px of another
        self._apart: float | None = None  # apart_px once the template is set
        self._under = np.zeros(animals, bool)  # lost next to another: presumed under it
        self._clear_since = np.full(animals, np.nan)  # apart from every other animal since

    def carry_hidden(self, tracks: np.ndarray, under: np.ndarray, gaps: np.ndarray) -> None:
        """Move each hidden animal with the detection it lies under (its nearest)."""
        for hidden in np.nonzero(under.any(axis=0))[0].tolist():
            coverers = under[:, hidden].nonzero()[0]
            coverer = int(coverers[np.argmin(gaps[coverers, hidden])])
            xy = tracks[coverer, :, :2]
            self.last_xy[hidden] = np.where(np.isfinite(xy), xy, self.last_xy[hidden])

    def presume_under(self, active: np.ndarray) -> np.ndarray:
        """Return (A,) the tracks present: tracked, or lost next to another (presumed under it)."""
        lost = self.was_active & ~active
        self._under |= lost & self.near_last
        if np.count_nonzero(active & ~self.was_active):
            self._under[:] = False  # the hidden animal reappeared
        self._under &= ~active
        return active | self._under

    def all_apart(self, instances: np.ndarray, detections: Collection[int]) -> bool:
        """Whether every tracked animal has a patch, each showing one animal only."""
        active = self.tracker.active
        if len(detections) < np.count_nonzero(active):
            return False
        xy = instances[list(detections), :, :2].astype(np.float64)
        # The detections may lack the keypoints where two animals touch: their bodies as the
        # tracker last knew them must be apart too.
        return self._each_apart(xy) and self._each_apart(self.tracker.bodies()[active])

    def _each_apart(self, animals: np.ndarray) -> bool:
        """Whether the closest keypoints of every two of ``animals`` (N, K, 2) are apart."""
        for index in range(1, animals.shape[0]):
            diff = animals[index, :, None] - animals[:index, None]  # (K, i, K, 2)
            closest = np.fmin.reduce(
                np.hypot(diff[..., 0], diff[..., 1]), axis=None, initial=np.inf
            )
            if not closest > self.apart_px():
                return False
        return True

    def gaps(self, tracks: np.ndarray, seen: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Return (A, A) closest keypoint distances between tracks (inf: diagonal, untracked)."""
        where = np.where(seen[:, None, None], tracks[..., :2], self.last_xy)
        where = np.where(active[:, None, None], where, np.nan)
        flat = where.reshape(-1, 2)
        diff = flat[:, None] - flat[None]
        distance = np.hypot(diff[..., 0], diff[..., 1]).reshape(
            self.animals, where.shape[1], self.animals, where.shape[1]
        )
        gaps = np.fmin.reduce(np.fmin.reduce(distance, axis=3), axis=1)
        gaps[np.isnan(gaps)] = np.inf
        np.fill_diagonal(gaps, np.inf)
        return gaps

    def reach(
        self, tracks: np.ndarray, instances: np.ndarray, seen: np.ndarray, present: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return how close the animals come, judged on everything known of them.

        Returns (A, A) the closest distances between present animals (inf on the diagonal and for
        absent ones; beyond :meth:`apart_px` only a lower bound) and (A,) which seen animals are
        farther than :meth:`apart_px` from everything else.
        """
        animals, keypoints = self.animals, self.tracker.keypoints
        ok = np.isfinite(instances[..., 0]) & (instances[..., 2] >= self.min_likelihood)
        points = np.where(ok[..., None], instances[..., :2], np.nan)  # (D, K, 2)
        rows = self.tracker.last_detections
        taken = seen & (rows >= 0)
        left = np.ones(points.shape[0], bool)
        left[rows[taken]] = False
        # (A + U, 3, K, 2): each animal's row, its detection and its remembered body; then
        # the detections no track took. NaN where nothing.
        parts = np.full((animals + int(np.count_nonzero(left)), 3, keypoints, 2), np.nan)
        # (Whole-array assignments first, then the few exceptions: fewer numpy calls, on the
        # loop, in the usual case of every animal seen.)
        parts[:animals, 0] = tracks[..., :2]
        parts[:animals, 2] = self.tracker.bodies()
        if np.count_nonzero(seen) < seen.size:
            parts[:animals, 0][~seen] = self.last_xy[~seen]
            parts[:animals, 2][~seen] = np.nan
            parts[:animals, 0][~present] = np.nan
        parts[:animals, 1][taken] = points[rows[taken]]
        if np.count_nonzero(left):
            parts[animals:, 0] = points[left]
        everything = parts.reshape(parts.shape[0], -1, 2)  # (N, 3K, 2)
        apart_px = self.apart_px()
        # Cheap first: boxes farther apart than apart_px along x or y (the usual case).
        low, high = np.fmin.reduce(everything, axis=1), np.fmax.reduce(everything, axis=1)
        closest = np.maximum(low[:, None] - high[None], low[None] - high[:, None]).max(axis=2)
        closest[np.isnan(closest)] = np.inf  # animals with nothing known
        np.fill_diagonal(closest, np.inf)
        if not np.count_nonzero(closest <= apart_px):
            return closest[:animals, :animals], seen.copy()
        # Boxes overlap or come close: the closest keypoints, as complex numbers x + iy.
        flat = np.ascontiguousarray(everything).view(np.complex128)[..., 0]  # (N, 3K)
        distance = np.abs(flat[:, :, None, None] - flat[None, None])  # (N, 3K, N, 3K)
        closest = np.fmin.reduce(np.fmin.reduce(distance, axis=3), axis=1)  # NaN: nothing
        closest[np.isnan(closest)] = np.inf
        np.fill_diagonal(closest, np.inf)
        clear = seen & (closest[:animals].min(axis=1) > apart_px)
        return closest[:animals, :animals], clear

    def settled(self, time_s: float, clear: np.ndarray) -> np.ndarray:
        """Return (A,) the tracks apart from everything for :data:`APART_HOLD_S` or longer."""
        settled = np.zeros(self.animals, bool)
        since = self._clear_since
        # At most A numbers: plain floats cost less than numpy calls here.
        for track, is_clear in enumerate(clear.tolist()):
            if not is_clear:
                since[track] = math.nan
                continue
            if not since[track] <= time_s:  # NaN (newly apart), or a clock that started over
                since[track] = time_s
            # A hair of slack: frame times are k / fps, whose differences are not exact.
            settled[track] = time_s - since[track] >= APART_HOLD_S - 1e-6
        return settled

    def contact_px(self) -> float:
        """Distance within which two animals touch (the tracker's)."""
        return self.tracker.contact_distance_px

    def apart_px(self) -> float:
        """Distance beyond which a patch holds nothing of another animal."""
        if self._apart is not None:
            return self._apart
        template = self.patches.template if self.patches is not None else None
        if template is None:
            return self.contact_px()
        # The template is kept for the session: computed once (this is asked a few times
        # per frame, on the loop).
        self._apart = max(self.contact_px(), APART_BODY_LENGTHS * float(np.ptp(template[:, 0])))
        return self._apart
