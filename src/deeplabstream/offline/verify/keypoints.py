"""Live keypoints against the reference, frame by frame: checked, explained, or not verifiable.

Design: docs/verify.md, "offline.verify.keypoints".
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeplabstream.offline.verify.frames import PoseSeries

CATEGORIES = ("to_the_bit", "within_bound", "explained", "differs", "not_verifiable")
CAUSES = ("history_not_recorded", "identity_order", "batched", "gpu")
CONTEXT_FRAMES_BEFORE = 2  # a context model's causal context; a previous-frame crop needs 1
#: A keypoint's mean offset is judged over at least this many frames (noise averages out).
MIN_OFFSET_FRAMES = 30
#: A lossy camera's frames beyond its bound that are left unjudged as the codec's own rare
#: larger moves (at least one): at most this share of them, each within twice the bound.
RARE_TAIL_SHARE = 0.001
RARE_TAIL = "beyond the bound on a rare frame, within twice it (the codec's rare larger move)"


@dataclass(frozen=True)
class CameraFacts:
    """What decides which causes can apply to a camera's frames, and its lossy bound."""

    lossless: bool
    context_model: bool
    crop_from_previous: bool
    dynamic_crop: bool
    animals: int
    gpu: bool
    likelihood_threshold: float
    bound_px: float | None  # lossy: measured from the recording (codec_bound.py); None: none


@dataclass
class KeypointComparison:
    """One camera's keypoints, live against the reference."""

    camera: str
    exact_live_file: bool
    lossless: bool = True
    bound_px: float | None = None
    bound: dict[str, Any] = field(default_factory=dict)  # how the bound was measured
    frames_analysed_live: int = 0
    frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    by_cause: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    not_verifiable: dict[str, int] = field(default_factory=dict)  # why -> frames
    unverifiable_frames: list[int] = field(default_factory=list, repr=False)
    first_differing_frame: int | None = None
    differing_frames: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # px over the compared keypoints
    per_keypoint: list[dict[str, Any]] = field(default_factory=list)
    likelihood_difference: dict[str, float | None] = field(default_factory=dict)
    identity_swaps: int = 0
    #: Lossy: keypoints that sit off the reference on average, beyond what noise averages to.
    offsets: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] | None = None
    series: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @property
    def frames_compared(self) -> int:
        """Frames judged against the reference (all but the not verifiable)."""
        return sum(n for c, n in self.frames.items() if c != "not_verifiable")

    def reasons(self) -> list[str]:
        """Why this camera does not agree (empty: it agrees)."""
        found = [
            f"{self.camera}: the live {o['keypoint']} sits {o['offset_px']:.2f} px off the "
            f"reference on average over {o['frames']} frames (x {o['dx_px']:+.2f}, y "
            f"{o['dy_px']:+.2f} px), where the codec's noise averages out (at most "
            f"{o['limit_px']:.2f} px, a quarter of the bound): the keypoints were moved"
            for o in self.offsets
        ]
        count = self.frames["differs"]
        if not count:
            return found
        if self.lossless:
            how = (
                "not equal to the bit, with no recorded cause"
                if self.exact_live_file
                else ("not equal to the pose CSV's 0.001 px, with no recorded cause")
            )
        else:
            how = f"a keypoint beyond the lossy recording's bound of {self.bound_px:.2f} px"
        return [
            *found,
            f"{self.camera}: {count} frame(s) differ from the reference ({how}); the first is "
            f"frame {self.first_differing_frame}",
        ]


def compare_keypoints(
    camera: str,
    live: PoseSeries,
    offline: PoseSeries,
    recorded: set[int],
    first_recorded: int | None,
    facts: CameraFacts,
    truth: np.ndarray | None = None,
    truth_frames: np.ndarray | None = None,
) -> KeypointComparison:
    """Judge every frame ``live`` analysed against ``offline``'s of the same frame.

    ``recorded``: the live frame indices the recording holds; ``first_recorded`` the first.
    """
    result = KeypointComparison(
        camera,
        live.exact,
        lossless=facts.lossless,
        bound_px=None if facts.lossless else facts.bound_px,
    )
    result.frames_analysed_live = len(live.frames)
    offline_rows = offline.index_of()
    analysed = [int(f) for f in live.frames.tolist()]
    missing = sorted(f for f in analysed if f not in recorded or f not in offline_rows)
    rows: list[tuple[int, int, int]] = []
    for live_row, frame in enumerate(analysed):
        offline_row = offline_rows.get(frame)
        if offline_row is None or frame not in recorded:
            before = first_recorded is None or frame < first_recorded
            why = "before the recording started" if before else "not in the recording"
            _count_unverifiable(result, why, frame)
            continue
        rows.append((frame, live_row, offline_row))
    if not rows:
        return result
    frames = np.array([r[0] for r in rows])
    a = live.points[[r[1] for r in rows]].astype(np.float64)
    b = offline.points[[r[2] for r in rows]].astype(np.float64)
    animals = min(a.shape[1], b.shape[1])
    a, b = a[:, :animals], b[:, :animals]
    if not live.exact:  # live read from the pose CSV: the reference as that file writes it
        b = _as_pose_csv_writes(b)
    equal = np.array([_same(x, y) for x, y in zip(a, b, strict=True)])
    distance = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])  # (N, A, K)
    seen = (a[..., 2] >= facts.likelihood_threshold) & (b[..., 2] >= facts.likelihood_threshold)
    reordered = _equal_in_another_order(a, b) if animals > 1 else np.zeros(len(a), dtype=bool)
    result.identity_swaps = int(reordered.sum())
    flat = np.where(seen & np.isfinite(distance), distance, 0.0).reshape(len(rows), -1)
    frame_max = flat.max(axis=1) if flat.shape[1] else np.zeros(len(rows))
    rare = _rare_tail(frame_max, seen, facts)
    categories = []
    for i, frame in enumerate(frames.tolist()):
        if i in rare:  # beyond the bound, as rarely and as little as the codec itself moves
            categories.append("not_verifiable")
            _count_unverifiable(result, RARE_TAIL, frame)
            continue
        category, cause = _judge(
            int(frame),
            bool(equal[i]),
            bool(reordered[i]),
            distance[i],
            seen[i],
            live,
            offline,
            missing,
            facts,
        )
        categories.append(category)
        if category == "not_verifiable":
            why = (
                "no keypoint seen on both sides (lossy recording)"
                if facts.bound_px is not None
                else "no bound could be measured for the lossy recording"
            )
            _count_unverifiable(result, why, frame)
            continue
        result.frames[category] += 1
        if cause is not None:
            result.by_cause[cause] += 1
        if category == "differs":
            result.differing_frames.append(int(frame))
    if result.differing_frames:
        result.first_differing_frame = result.differing_frames[0]
    if not facts.lossless and facts.bound_px is not None:
        result.offsets = _offsets(a, b, seen, live.keypoints, facts.bound_px / 4.0)
    compared = distance[seen & np.isfinite(distance)]
    result.stats = _px_stats(compared)
    result.stats["frames_equal_to_the_bit"] = int(equal.sum())
    _per_keypoint(result, live.keypoints, distance, a, b, animals)
    result.series = {
        "frame": frames.tolist(),
        "max_px": [float(x) for x in frame_max],
        "category": categories,
    }
    if truth is not None and truth_frames is not None:
        result.truth = _against_truth(frames, a, b, truth, truth_frames, facts)
    return result


def _rare_tail(frame_max: np.ndarray, seen: np.ndarray, facts: CameraFacts) -> set[int]:
    """Return the rows of a lossy camera beyond its bound when they are the codec's rare tail."""
    # The bound is statistical (codec_bound.py): on a long recording a valid frame may now and then
    # exceed it. At most RARE_TAIL_SHARE of the frames (at least one), each within twice the bound,
    # are such; more, or farther, differ.
    bound = facts.bound_px
    if facts.lossless or bound is None:
        return set()
    judged = np.asarray(seen.reshape(len(frame_max), -1).any(axis=1), dtype=bool)
    beyond = [i for i in range(len(frame_max)) if judged[i] and frame_max[i] > bound]
    allowed = max(1, int(RARE_TAIL_SHARE * int(judged.sum())))
    if not beyond or len(beyond) > allowed or frame_max[beyond].max() > 2.0 * bound:
        return set()
    return set(beyond)


def _offsets(
    a: np.ndarray, b: np.ndarray, seen: np.ndarray, keypoints: tuple[str, ...], limit: float
) -> list[dict[str, Any]]:
    """Return each keypoint whose live position sits off the reference on average."""
    # A codec's noise moves a keypoint either way and averages out over many frames; a hand that
    # moved the keypoints (and rewrote the digests) moved them one way. Each keypoint seen on both
    # sides on MIN_OFFSET_FRAMES frames or more is judged: its mean offset beyond limit (a quarter
    # of the bound) is named.
    found = []
    for animal, (k, name) in itertools.product(range(a.shape[1]), enumerate(keypoints)):
        pick = seen[:, animal, k]
        if int(pick.sum()) < MIN_OFFSET_FRAMES:
            continue
        dx = float(np.mean(a[pick, animal, k, 0] - b[pick, animal, k, 0]))
        dy = float(np.mean(a[pick, animal, k, 1] - b[pick, animal, k, 1]))
        offset = float(np.hypot(dx, dy))
        if offset > limit:
            label = name if a.shape[1] == 1 else f"{name} of animal {animal + 1}"
            found.append(
                {
                    "keypoint": label,
                    "frames": int(pick.sum()),
                    "dx_px": dx,
                    "dy_px": dy,
                    "offset_px": offset,
                    "limit_px": limit,
                }
            )
    return found


def _count_unverifiable(result: KeypointComparison, why: str, frame: int) -> None:
    result.frames["not_verifiable"] += 1
    result.unverifiable_frames.append(int(frame))
    result.not_verifiable[why] = result.not_verifiable.get(why, 0) + 1


def _judge(
    frame: int,
    equal: bool,
    reordered: bool,
    distance: np.ndarray,
    seen: np.ndarray,
    live: PoseSeries,
    offline: PoseSeries,
    missing: list[int],
    facts: CameraFacts,
) -> tuple[str, str | None]:
    """Return a frame's category and, when explained, its cause."""
    if not facts.lossless:
        if not seen.any() or facts.bound_px is None:
            return "not_verifiable", None
        within = bool(np.all(distance[seen] <= facts.bound_px))
        return ("within_bound" if within else "differs"), None
    if equal:
        return "to_the_bit", None
    cause = _cause(frame, reordered, live, offline, missing, facts)
    return ("explained", cause) if cause is not None else ("differs", None)


def _cause(
    frame: int,
    reordered: bool,
    live: PoseSeries,
    offline: PoseSeries,
    missing: list[int],
    facts: CameraFacts,
) -> str | None:
    """Return the first recorded cause (in :data:`CAUSES` order) that applies, or None."""
    # missing: the frames analysed live that the recording lacks, ascending.
    earlier = bisect.bisect_left(missing, frame)
    if earlier:
        follows_all = facts.dynamic_crop or facts.animals > 1  # crop and tracker: every frame
        if follows_all or _within_context(frame, missing[earlier - 1], live, facts):
            return "history_not_recorded"
    if reordered:
        return "identity_order"
    if live.batch_sizes.get(frame, 1) != offline.batch_sizes.get(frame, 1):
        return "batched"
    if facts.gpu:
        return "gpu"
    return None


def _within_context(frame: int, missing: int, live: PoseSeries, facts: CameraFacts) -> bool:
    """Whether ``missing`` was among the analysed frames a context or previous crop reads."""
    if not (facts.context_model or facts.crop_from_previous):
        return False
    before = CONTEXT_FRAMES_BEFORE if facts.context_model else 1
    row = int(np.searchsorted(live.frames, frame))  # live.frames ascending
    return missing in live.frames[max(0, row - before) : row].tolist()


def _equal_in_another_order(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame: True when the animals are equal to the bit in some other order."""
    orders = list(itertools.permutations(range(a.shape[1])))[1:]
    found = np.zeros(len(a), dtype=bool)
    for i in range(len(a)):
        found[i] = any(_same(a[i], b[i, list(order)]) for order in orders)
    return found


def _as_pose_csv_writes(points: np.ndarray) -> np.ndarray:
    """Round like ``<camera>.pose.csv`` writes: x, y ``%.3f``, likelihood ``%.9g``."""

    def written(values: np.ndarray, form: str) -> np.ndarray:
        flat = [float(form % value) for value in values.ravel().tolist()]
        return np.array(flat, dtype=np.float64).reshape(values.shape)

    rounded = points.copy()
    rounded[..., :2] = written(points[..., :2], "%.3f")
    rounded[..., 2] = written(points[..., 2], "%.9g")
    return rounded


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Equal to the bit, NaN where NaN (an animal not seen)."""
    return bool(np.array_equal(x, y, equal_nan=True))


def _px_stats(values: np.ndarray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"median_px": None, "p99_px": None, "max_px": None}
    return {
        "median_px": float(np.median(values)),
        "p99_px": float(np.percentile(values, 99)),
        "max_px": float(values.max()),
    }


def _per_keypoint(
    result: KeypointComparison,
    keypoints: tuple[str, ...],
    distance: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    animals: int,
) -> None:
    likelihood = np.abs(a[..., 2] - b[..., 2])
    finite = likelihood[np.isfinite(likelihood)]
    result.likelihood_difference = {
        "median": float(np.median(finite)) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
    }
    for animal, (k, name) in itertools.product(range(animals), enumerate(keypoints)):
        values = distance[:, animal, k]
        lk = likelihood[:, animal, k]
        lk = lk[np.isfinite(lk)]
        result.per_keypoint.append(
            {
                "animal": animal + 1,
                "keypoint": name,
                **_px_stats(values),
                "likelihood_max_difference": float(lk.max()) if lk.size else None,
            }
        )


def _against_truth(
    frames: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    truth: np.ndarray,
    truth_frames: np.ndarray,
    facts: CameraFacts,
) -> dict[str, Any]:
    """Live and offline errors against where the simulated animal was (its truth.csv)."""
    rows = {int(f): i for i, f in enumerate(truth_frames.tolist())}
    pick = [(i, rows[int(f)]) for i, f in enumerate(frames.tolist()) if int(f) in rows]
    if not pick:
        return {"frames": 0}
    mine = np.array([p[0] for p in pick])
    true = truth[[p[1] for p in pick]][:, : a.shape[1]]
    live = _truth_error(a[mine], true, facts.likelihood_threshold)
    offline = _truth_error(b[mine], true, facts.likelihood_threshold)
    return {"frames": len(pick), "live": _px_stats(live), "offline": _px_stats(offline)}


def _truth_error(points: np.ndarray, truth: np.ndarray, threshold: float) -> np.ndarray:
    animals = min(points.shape[1], truth.shape[1])
    points, truth = points[:, :animals], truth[:, :animals]
    seen = points[..., 2] >= threshold
    distance = np.hypot(points[..., 0] - truth[..., 0], points[..., 1] - truth[..., 1])
    return distance[seen]
