"""How well tracked identities follow the true animals: identity switches and keypoint errors.

Offline measures for tests, benchmarks and replays with ground truth (the simulator's): each frame
the true animals are matched to the tracked identities as CLEAR MOT does (a true animal keeps the
identity it last matched while that pair is within ``max_distance_px``; the others by the
Hungarian algorithm on their mean keypoint distance, gated), and an identity switch is counted the
MOT way: when a true animal's matched identity differs from the identity it last matched (a gap
in between does not forgive it).
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
    """Identity switches and matching over a tracked sequence.

    Attributes
    ----------
    switches
        Identity switches (MOT definition), all animals together.
    events
        Each switch, in frame order.
    frames
        Frames compared.
    frames_matched
        Frames in which every true animal present was matched to an identity.
    animal_frames
        (frame, true animal) pairs with the animal present (some keypoint known).
    animal_frames_matched
        Those matched to an identity.
    """

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

    A true animal keeps the identity it last matched while that pair is within the gate (so two
    animals passing through the same spot do not swap in the count because of noise); the others
    are matched by the Hungarian algorithm on the mean keypoint distance.

    Parameters
    ----------
    tracked
        (T, A, K, 3) tracker output, or (T, A, K, 2) positions; NaN where unseen.
    truth
        (T, B, K, 2) true positions, animals in a fixed order; NaN where absent.
    max_distance_px
        A pair whose mean keypoint distance (over keypoints known in both) is larger is never
        matched.
    min_likelihood
        Tracked keypoints below this likelihood count as unseen (for 3 columns).

    Returns
    -------
    numpy.ndarray
        (T, B) int: the identity matched to each true animal, -1 where none.
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
    """Count identity switches of tracker output against ground truth.

    Parameters
    ----------
    tracked
        (T, A, K, 3) tracker output, or (T, A, K, 2) positions; NaN where unseen.
    truth
        (T, B, K, 2) true positions of B animals in a fixed order; NaN where absent.
    max_distance_px
        Gate of the per-frame matching (mean keypoint distance).
    min_likelihood
        Tracked keypoints below this likelihood count as unseen (for 3 columns).

    Returns
    -------
    SwitchReport
        Switches (a true animal matched to another identity than the one it last matched),
        where they happened and how much was matched.
    """
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
    """Return the distance of each true keypoint to its tracked keypoint, for error figures.

    Parameters
    ----------
    tracked
        (T, A, K, 3) tracker output, or (T, A, K, 2) positions; NaN where unseen.
    truth
        (T, B, K, 2) true positions of B animals in a fixed order; NaN where absent.
    per_frame
        False (the default): each true animal is compared with the identity it matched in the
        first frame it was matched, in every frame, so an identity switch shows up as large
        errors (the figure a closed loop lives with). True: with the identity matched in each
        frame, a pure pose-accuracy figure.
    max_distance_px
        Gate of the matching (mean keypoint distance).
    min_likelihood
        Tracked keypoints below this likelihood count as unseen (for 3 columns).

    Returns
    -------
    numpy.ndarray
        (T, B, K) distances in pixels; NaN where the keypoint is unknown in either, or the animal
        was never (per_frame: not in this frame) matched. ``np.nanmedian`` of it is the median
        keypoint error.
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
