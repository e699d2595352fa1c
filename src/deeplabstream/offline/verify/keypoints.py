"""Live keypoints against the offline reference, frame by frame, with the cause of each difference.

Every frame analysed live that the recording holds is compared with the reference's keypoints
of the same frame. A difference is *explained* when one of these applies to the frame (the first
that applies names it in the split by cause):

``lossy_codec``
    The recording is H.264: the reference saw the decoded, compressed frame, live the raw one.
``dynamic_crop``
    Live analysed another region of the frame than the reference (the crop follows the poses
    of the frames before, and live skipped some).
``skipped_before``
    A context model (the last two analysed frames are its context) or ``CROP_FROM =
    previous_frame`` (the crop comes from the last analysed frame), and live skipped one of the
    two frames before (or the recording lacks it, so the reference did not see it).
``tracking_history``
    Several animals: identities follow the frames before, and live (or the recording) skipped
    some of them.
``batched``
    Live analysed the frame in a batch of another size (batched kernels may round otherwise).
``gpu``
    The model ran on a GPU provider, whose kernels need not repeat to the bit.

A frame none applies to must agree to the bit (lossless recording, full-precision live file):
the first one that does not is named. With the lossy codec alone the keypoints must agree
within ``tolerance_px`` at the 99th percentile.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeplabstream.offline.verify.frames import PoseSeries

CAUSES = (
    "lossy_codec",
    "dynamic_crop",
    "skipped_before",
    "tracking_history",
    "batched",
    "gpu",
)
CONTEXT_FRAMES_BEFORE = 2  # a context model's causal context; a previous-frame crop needs 1


@dataclass(frozen=True)
class CameraFacts:
    """What decides which causes can apply to a camera's frames."""

    lossless: bool
    context_model: bool
    crop_from_previous: bool
    dynamic_crop: bool
    animals: int
    gpu: bool
    likelihood_threshold: float


@dataclass
class KeypointComparison:
    """One camera's keypoints, live against offline."""

    camera: str
    exact_live_file: bool
    frames_analysed_live: int = 0
    frames_not_in_recording: int = 0  # analysed live, but the recording lost the frame
    frames_compared: int = 0
    frames_equal_to_the_bit: int = 0
    frames_without_cause: int = 0
    first_unexplained_frame: int | None = None
    unexplained_frames: int = 0
    by_cause: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_keypoint: list[dict[str, Any]] = field(default_factory=list)
    likelihood_difference: dict[str, float | None] = field(default_factory=dict)
    seen_only_live: int = 0  # keypoints above threshold live, below (or missing) offline
    seen_only_offline: int = 0
    # Frames where an animal has no keypoint seen on one side and some on the other.
    frames_animal_only_live: int = 0
    frames_animal_only_offline: int = 0
    identity_swaps: int = 0  # frames whose animals match offline only in another order
    identity_swaps_unexplained: int = 0
    codec_p99_px: float | None = None
    tolerance_px: float = 0.0
    truth: dict[str, Any] | None = None
    series: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def reasons(self) -> list[str]:
        """Why this camera does not agree (empty: it agrees)."""
        reasons = []
        if self.first_unexplained_frame is not None:
            what = "to the bit" if self.exact_live_file else "to the pose CSV's 0.001 px"
            reasons.append(
                f"{self.camera}: {self.unexplained_frames} frame(s) with no cause to differ "
                f"differ from the offline analysis (not equal {what}); the first is frame "
                f"{self.first_unexplained_frame}"
            )
        if self.identity_swaps_unexplained:
            reasons.append(
                f"{self.camera}: {self.identity_swaps_unexplained} frame(s) have the animals' "
                "identities swapped against the offline analysis with no skipped frame before"
            )
        if self.codec_p99_px is not None and self.codec_p99_px > self.tolerance_px:
            reasons.append(
                f"{self.camera}: keypoints differ by {self.codec_p99_px:.3f} px (p99) on frames "
                f"whose only difference is the lossy recording, above the tolerance of "
                f"{self.tolerance_px} px (--tolerance-px)"
            )
        return reasons


def compare_keypoints(
    camera: str,
    live: PoseSeries,
    offline: PoseSeries,
    analysed_live: tuple[np.ndarray, np.ndarray],
    facts: CameraFacts,
    tolerance_px: float,
    truth: np.ndarray | None = None,
    truth_frames: np.ndarray | None = None,
) -> KeypointComparison:
    """Compare every frame ``live`` analysed with ``offline``'s keypoints of the same frame.

    ``analysed_live``: the live frame indices in capture order with whether each was analysed.
    """
    result = KeypointComparison(camera, live.exact, tolerance_px=tolerance_px)
    result.frames_analysed_live = len(live.frames)
    offline_rows = offline.index_of()
    # A frame captured live that the recording lacks (lost by the recorder, or before the
    # recording started) is one the reference never saw: the frames after it have another
    # history offline, as after a frame live skipped.
    skipped = _skipped_set(analysed_live) | {
        int(f) for f in analysed_live[0].tolist() if int(f) not in offline_rows
    }
    first_skip = min(skipped) if skipped else None
    rows: list[tuple[int, int, int]] = []
    for live_row, frame in enumerate(live.frames):
        offline_row = offline_rows.get(int(frame))
        if offline_row is None:
            result.frames_not_in_recording += 1
            continue
        rows.append((int(frame), live_row, offline_row))
    if not rows:
        return result
    frames = np.array([r[0] for r in rows])
    a = live.points[[r[1] for r in rows]]
    b = offline.points[[r[2] for r in rows]]
    animals = min(a.shape[1], b.shape[1])
    a, b = a[:, :animals], b[:, :animals]
    if not live.exact:  # live read from the pose CSV: the reference as that file writes it
        b = _as_pose_csv_writes(b)
    swapped = _identity_swaps(a, b, facts.likelihood_threshold) if animals > 1 else None
    causes = [_cause(int(f), live, offline, skipped, first_skip, facts) for f in frames.tolist()]
    equal = np.array([_same(x, y) for x, y in zip(a, b, strict=True)])
    result.frames_compared = len(rows)
    result.frames_equal_to_the_bit = int(equal.sum())
    distance = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])  # (N, A, K)
    seen_a = a[..., 2] >= facts.likelihood_threshold
    seen_b = b[..., 2] >= facts.likelihood_threshold
    result.seen_only_live = int((seen_a & ~seen_b).sum())
    result.seen_only_offline = int((~seen_a & seen_b).sum())
    animal_a, animal_b = np.any(seen_a, axis=2), np.any(seen_b, axis=2)  # (N, A): an animal seen
    result.frames_animal_only_live = int(np.any(animal_a & ~animal_b, axis=1).sum())
    result.frames_animal_only_offline = int(np.any(~animal_a & animal_b, axis=1).sum())
    _split(result, frames, equal, causes, distance, seen_a & seen_b, swapped)
    _per_keypoint(result, live.keypoints, distance, a, b, animals)
    flat = np.where(np.isfinite(distance), distance, 0.0).reshape(len(rows), -1)
    frame_max = flat.max(axis=1) if flat.shape[1] else np.zeros(len(rows))
    result.series = {
        "frame": frames.tolist(),
        "max_px": [float(x) for x in frame_max],
        "cause": [c or "" for c in causes],
        "equal": [bool(e) for e in equal],
    }
    if truth is not None and truth_frames is not None:
        result.truth = _against_truth(frames, a, b, truth, truth_frames, facts)
    return result


def _as_pose_csv_writes(points: np.ndarray) -> np.ndarray:
    """Round like ``<camera>.pose.csv`` writes: x, y ``%.3f``, likelihood ``%.9g``."""

    def written(values: np.ndarray, form: str) -> np.ndarray:
        flat = [float(form % value) for value in values.ravel().tolist()]
        return np.array(flat, dtype=np.float64).reshape(values.shape)

    rounded = points.copy()
    rounded[..., :2] = written(points[..., :2], "%.3f")
    rounded[..., 2] = written(points[..., 2], "%.9g")
    return rounded


def _skipped_set(analysed_live: tuple[np.ndarray, np.ndarray]) -> set[int]:
    """Live frame indices captured but not analysed."""
    frames, analysed = analysed_live
    return {int(f) for f, done in zip(frames.tolist(), analysed.tolist(), strict=True) if not done}


def _cause(
    frame: int,
    live: PoseSeries,
    offline: PoseSeries,
    skipped: set[int],
    first_skip: int | None,
    facts: CameraFacts,
) -> str | None:
    """Return the first cause (in :data:`CAUSES` order) that applies to ``frame``, or None."""
    if not facts.lossless:
        return "lossy_codec"
    if facts.dynamic_crop and live.crops.get(frame) != offline.crops.get(frame):
        return "dynamic_crop"
    before = CONTEXT_FRAMES_BEFORE if facts.context_model else 1
    if (facts.context_model or facts.crop_from_previous) and any(
        frame - step in skipped for step in range(1, before + 1)
    ):
        return "skipped_before"
    if facts.animals > 1 and first_skip is not None and first_skip < frame:
        return "tracking_history"
    if live.batch_sizes.get(frame, 1) != offline.batch_sizes.get(frame, 1):
        return "batched"
    if facts.gpu:
        return "gpu"
    return None


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Equal to the bit, NaN where NaN (an animal not seen)."""
    return bool(np.array_equal(x, y, equal_nan=True))


def _split(
    result: KeypointComparison,
    frames: np.ndarray,
    equal: np.ndarray,
    causes: list[str | None],
    distance: np.ndarray,
    seen: np.ndarray,
    swapped: np.ndarray | None,
) -> None:
    """Fill the split by cause, the unexplained frames and the codec-only percentile."""
    for cause in [*CAUSES, None]:
        mask = np.array([c == cause for c in causes])
        if not mask.any():
            continue
        name = cause or "none"
        values = distance[mask][seen[mask]]
        result.by_cause[name] = {
            "frames": int(mask.sum()),
            "frames_equal_to_the_bit": int(equal[mask].sum()),
            **_px_stats(values),
        }
        if cause is None:
            result.frames_without_cause = int(mask.sum())
            differing = mask & ~equal
            result.unexplained_frames = int(differing.sum())
            if differing.any():
                result.first_unexplained_frame = int(frames[np.argmax(differing)])
            if swapped is not None:
                result.identity_swaps_unexplained = int((swapped & mask).sum())
        if cause == "lossy_codec" and values.size:
            result.codec_p99_px = float(np.percentile(values, 99))
    if swapped is not None:
        result.identity_swaps = int(swapped.sum())


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


def _identity_swaps(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """Per frame: True when the live animals match the offline ones best in another order."""
    animals = a.shape[1]
    orders = list(itertools.permutations(range(animals)))
    swapped = np.zeros(len(a), dtype=bool)
    for i in range(len(a)):
        costs = [_order_cost(a[i], b[i, list(order)], threshold) for order in orders]
        finite = [c for c in costs if np.isfinite(c)]
        if finite and costs[0] > min(finite):
            swapped[i] = True
    return swapped


def _order_cost(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    seen = (a[..., 2] >= threshold) & (b[..., 2] >= threshold)
    if not seen.any():
        return float("inf")
    distance = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])
    return float(distance[seen].mean())


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
