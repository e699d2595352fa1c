"""How well tracked identities follow the true animals: identity switches and keypoint errors.

Offline, against ground truth. Design: docs/pose-internals.md, "pose.tracking.switches".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment

DEFAULT_MAX_DISTANCE_PX = 20.0
DEFAULT_MIN_LIKELIHOOD = 0.1
_CHUNK_FRAMES = 1024  # frames whose (B, A, K) distances are held at once: bounded memory
_UNMATCHED = -1


@dataclass(frozen=True)
class SwitchEvent:
    """One identity switch: at ``frame``, true ``animal`` went from one identity to another."""

    frame: int
    animal: int
    from_identity: int
    to_identity: int


@dataclass(frozen=True)
class SwitchReport:
    """Identity switches (MOT definition) and matching over a tracked sequence."""

    switches: int
    events: tuple[SwitchEvent, ...]
    frames: int
    frames_matched: int
    animal_frames: int
    animal_frames_matched: int

    @property
    def switch_frames(self) -> tuple[int, ...]:
        """The frames where at least one switch happened, ascending."""
        return tuple(sorted({event.frame for event in self.events}))

    @property
    def matched_fraction(self) -> float:
        """Fraction of the animal-frames matched (NaN when no animal was ever present)."""
        if self.animal_frames == 0:
            return float("nan")
        return self.animal_frames_matched / self.animal_frames


def _positions(
    tracked: np.ndarray, truth: np.ndarray, min_likelihood: float
) -> tuple[np.ndarray, np.ndarray]:
    """Check the shapes; return tracked x, y with unseen keypoints NaN, and truth x, y."""
    tracked = np.asarray(tracked, np.float64)
    truth = np.asarray(truth, np.float64)
    if tracked.ndim != 4 or tracked.shape[3] not in (2, 3):
        raise ValueError(f"Expected tracked of shape (T, A, K, 2 or 3), but got {tracked.shape}")
    if truth.ndim != 4 or truth.shape[3] != 2:
        raise ValueError(f"Expected truth of shape (T, B, K, 2), but got {truth.shape}")
    if truth.shape[0] != tracked.shape[0] or truth.shape[2] != tracked.shape[2]:
        raise ValueError(
            "Expected tracked and truth with the same frames T and keypoints K, but got "
            f"{tracked.shape} and {truth.shape}"
        )
    xy = tracked[..., :2].copy()
    if tracked.shape[3] == 3:
        xy[~(tracked[..., 2] >= min_likelihood)] = np.nan
    return xy, truth


def _distances(xy: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return (T, B, A, K) distances of true keypoints to tracked ones (NaN where either is)."""
    diff = truth[:, :, None] - xy[:, None]
    return np.sqrt((diff * diff).sum(axis=-1))


def match_identities(
    tracked: np.ndarray,
    truth: np.ndarray,
    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX,
    *,
    min_likelihood: float = DEFAULT_MIN_LIKELIHOOD,
) -> np.ndarray:
    """Match the true animals to tracked identities in every frame, the CLEAR MOT way.

    ``tracked`` is (T, A, K, 3) or (T, A, K, 2), ``truth`` (T, B, K, 2), NaN where unseen;
    ``min_likelihood`` applies to 3 columns. Returns (T, B) int identities, -1 where none.
    """
    if not max_distance_px > 0:
        raise ValueError(f"Expected max_distance_px > 0, but got {max_distance_px!r}")
    xy, truth = _positions(tracked, truth, min_likelihood)
    frames, animals = truth.shape[:2]
    matched = np.full((frames, animals), _UNMATCHED, np.intp)
    last = np.full(animals, _UNMATCHED, np.intp)
    for start in range(0, frames, _CHUNK_FRAMES):
        stop = min(start + _CHUNK_FRAMES, frames)
        distance = _distances(xy[start:stop], truth[start:stop])
        known = np.isfinite(distance)
        count = known.sum(axis=-1)
        cost = np.where(known, distance, 0.0).sum(axis=-1) / np.maximum(count, 1)
        allowed = (count > 0) & (cost <= max_distance_px)
        for offset in np.flatnonzero(allowed.any(axis=(1, 2))):
            found = _match_frame(cost[offset], allowed[offset], last)
            matched[start + offset] = found
            last = np.where(found == _UNMATCHED, last, found)
    return matched


def _match_frame(cost: np.ndarray, allowed: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Return the (B,) identities of one frame: last frames' pairs kept, the rest Hungarian."""
    found = np.full(cost.shape[0], _UNMATCHED, np.intp)
    taken = np.zeros(cost.shape[1], bool)
    for animal, identity in enumerate(last.tolist()):
        if identity != _UNMATCHED and allowed[animal, identity] and not taken[identity]:
            found[animal], taken[identity] = identity, True
    animals = np.flatnonzero((found == _UNMATCHED) & allowed.any(axis=1))
    identities = np.flatnonzero(~taken)
    if animals.size and identities.size:
        sub_allowed = allowed[np.ix_(animals, identities)]
        # Gated pairs cost more than all admissible ones together: as many matches as can be,
        # then the cheapest.
        gated = 1e3 * (float(cost[allowed].max()) + 1.0) * cost.shape[0]
        sub_cost = np.where(sub_allowed, cost[np.ix_(animals, identities)], gated)
        rows, cols = linear_sum_assignment(sub_cost)
        keep = sub_allowed[rows, cols]
        found[animals[rows[keep]]] = identities[cols[keep]]
    return found


def count_identity_switches(
    tracked: np.ndarray,
    truth: np.ndarray,
    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX,
    *,
    min_likelihood: float = DEFAULT_MIN_LIKELIHOOD,
) -> SwitchReport:
    """Count identity switches against ground truth (arrays as :func:`match_identities`)."""
    matched = match_identities(tracked, truth, max_distance_px, min_likelihood=min_likelihood)
    present = np.isfinite(np.asarray(truth, np.float64)).all(axis=-1).any(axis=-1)  # (T, B)
    last = np.full(matched.shape[1], _UNMATCHED)
    events: list[SwitchEvent] = []
    for frame, animal in zip(*np.nonzero(matched != _UNMATCHED), strict=True):
        identity = int(matched[frame, animal])
        if last[animal] != _UNMATCHED and last[animal] != identity:
            events.append(SwitchEvent(int(frame), int(animal), int(last[animal]), identity))
        last[animal] = identity
    is_matched = matched != _UNMATCHED
    return SwitchReport(
        switches=len(events),
        events=tuple(events),
        frames=int(matched.shape[0]),
        frames_matched=int((is_matched | ~present).all(axis=1).sum()),
        animal_frames=int(present.sum()),
        animal_frames_matched=int((is_matched & present).sum()),
    )


def keypoint_errors(
    tracked: np.ndarray,
    truth: np.ndarray,
    *,
    per_frame: bool = False,
    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX,
    min_likelihood: float = DEFAULT_MIN_LIKELIHOOD,
) -> np.ndarray:
    """Return the distance of each true keypoint to its tracked keypoint, (T, B, K) pixels.

    Arrays as :func:`match_identities`. ``per_frame`` False: each true animal against the identity
    it first matched (a switch shows as large errors); True: the identity matched each frame. NaN
    where unknown or unmatched.
    """
    matched = match_identities(tracked, truth, max_distance_px, min_likelihood=min_likelihood)
    xy, truth = _positions(tracked, truth, min_likelihood)
    frames, animals = matched.shape
    if not per_frame:
        first = np.full(animals, _UNMATCHED, np.intp)
        for animal in range(animals):
            hits = np.flatnonzero(matched[:, animal] != _UNMATCHED)
            if hits.size:
                first[animal] = matched[hits[0], animal]
        matched = np.broadcast_to(first, (frames, animals))
    chosen = xy[np.arange(frames)[:, None], np.maximum(matched, 0)]  # (T, B, K, 2)
    diff = chosen - truth
    errors = np.sqrt((diff * diff).sum(axis=-1))
    errors[matched == _UNMATCHED] = np.nan
    return errors
