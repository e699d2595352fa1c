"""Behaviour features from keypoints, declared once and computed live or in batch.

docs/behaviour-classifiers.md, "The features".
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from deeplabstream.core.errors import ModelError

SPEC_FORMAT = "deeplabstream-behaviour-features/1"
"""The ``format`` of a feature spec's JSON; a spec with another format is refused."""

AGGREGATES = ("mean", "std", "min", "max")
"""The aggregates a spec may take over its window, in their canonical order."""


class FeatureSpecError(ModelError):
    """A feature spec that cannot be used: unknown keypoints, bad window, unknown format."""


def _as_tuple(value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise FeatureSpecError(f"Expected {what} to be a list, but got {value!r}")
    return tuple(tuple(item) if isinstance(item, list) else item for item in value)


@dataclass(frozen=True)
class FeatureSpec:
    """The features of a behaviour classifier, declared once (docs/behaviour-classifiers.md).

    Distances in mm, angles in degrees, turn rates in degrees/s, speeds in mm/s, accelerations in
    mm/s^2; ``aggregates`` are over ``window_s`` seconds.
    """

    keypoints: tuple[str, ...]
    distances: tuple[tuple[str, str], ...] = ()
    angles: tuple[tuple[str, str, str], ...] = ()
    turn_rates: tuple[tuple[str, str], ...] = ()
    speeds: tuple[str, ...] = ()
    accelerations: tuple[str, ...] = ()
    window_s: float = 1.0
    aggregates: tuple[str, ...] = AGGREGATES
    likelihood_threshold: float = 0.5
    missing_value: float = 0.0

    def __post_init__(self) -> None:
        """Check the names, the window and the aggregates."""
        names = self.keypoints
        if not names or len(set(names)) != len(names):
            raise FeatureSpecError(
                f"Expected a non-empty list of distinct keypoint names, but got {list(names)}"
            )
        known = set(names)
        groups: list[tuple[str, Sequence[Sequence[str]], int]] = [
            ("distances", self.distances, 2),
            ("angles", self.angles, 3),
            ("turn_rates", self.turn_rates, 2),
            ("speeds", [(k,) for k in self.speeds], 1),
            ("accelerations", [(k,) for k in self.accelerations], 1),
        ]
        for what, items, size in groups:
            for item in items:
                if len(item) != size or len(set(item)) != size:
                    raise FeatureSpecError(
                        f"Expected each of {what} to name {size} different keypoints, "
                        f"but got {list(item)}"
                    )
                unknown = [k for k in item if k not in known]
                if unknown:
                    raise FeatureSpecError(
                        f"{what} names {unknown}, which are not among the keypoints {list(names)}"
                    )
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise FeatureSpecError(
                f"Expected window_s to be a positive number of seconds, but got {self.window_s}"
            )
        if not self.aggregates or any(a not in AGGREGATES for a in self.aggregates):
            raise FeatureSpecError(
                f"Expected aggregates among {list(AGGREGATES)}, but got {list(self.aggregates)}"
            )
        if len(set(self.aggregates)) != len(self.aggregates):
            raise FeatureSpecError(f"aggregates repeats a name: {list(self.aggregates)}")
        if not 0.0 <= self.likelihood_threshold <= 1.0:
            raise FeatureSpecError(
                "Expected likelihood_threshold between 0 and 1, "
                f"but got {self.likelihood_threshold}"
            )
        if not self.frame_feature_names():
            raise FeatureSpecError("The spec declares no per-frame feature at all")

    def frame_feature_names(self) -> tuple[str, ...]:
        """Return the names of the per-frame quantities, in the order the vector uses."""
        return (
            tuple(f"distance({a},{b})" for a, b in self.distances)
            + tuple(f"angle({a},{v},{b})" for v, a, b in self.angles)
            + tuple(f"turn_rate({b}->{f})" for b, f in self.turn_rates)
            + tuple(f"speed({k})" for k in self.speeds)
            + tuple(f"acceleration({k})" for k in self.accelerations)
        )

    def feature_names(self) -> tuple[str, ...]:
        """Return the names of every feature of the vector, in order."""
        return tuple(
            f"{name}.{aggregate}"
            for name in self.frame_feature_names()
            for aggregate in self.aggregates
        ) + tuple(f"missing({k})" for k in self.keypoints)

    @property
    def n_features(self) -> int:
        """The length of the feature vector."""
        return len(self.frame_feature_names()) * len(self.aggregates) + len(self.keypoints)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict (with its ``format``)."""
        out: dict[str, Any] = {"format": SPEC_FORMAT}
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[spec_field.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Build a spec from ``to_dict``'s output; refuse another format or unknown keys."""
        if not isinstance(data, dict):
            raise FeatureSpecError(f"Expected a feature spec (a JSON object), but got {data!r}")
        found = data.get("format")
        if found != SPEC_FORMAT:
            raise FeatureSpecError(
                f"Expected a feature spec of format '{SPEC_FORMAT}', but got {found!r}: it was "
                "written by another version; retrain the classifier with this one"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"format"})
        if unknown:
            raise FeatureSpecError(f"Unknown keys in the feature spec: {unknown}")
        if "keypoints" not in data:
            raise FeatureSpecError("The feature spec has no 'keypoints'")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "format":
                continue
            if key in ("window_s", "likelihood_threshold", "missing_value"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise FeatureSpecError(f"Expected {key} to be a number, but got {value!r}")
                kwargs[key] = float(value)
            else:
                kwargs[key] = _as_tuple(value, key)
        return cls(**kwargs)

    def to_json(self) -> str:
        """Return the spec as JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Read a spec from ``to_json``'s text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise FeatureSpecError(f"The feature spec is not valid JSON: {error}") from error
        return cls.from_dict(data)

    def with_window(self, window_s: float) -> FeatureSpec:
        """Return the same spec with another window length."""
        return FeatureSpec(**{**self._kwargs(), "window_s": float(window_s)})

    def with_threshold(self, likelihood_threshold: float) -> FeatureSpec:
        """Return the same spec with another likelihood threshold."""
        return FeatureSpec(
            **{**self._kwargs(), "likelihood_threshold": float(likelihood_threshold)}
        )

    def _kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FRONT_NAMES = ("nose", "snout", "nose_tip", "head", "head_center", "headcenter")
_CENTER_NAMES = (
    "body_center", "bodycenter", "body_centre", "center", "centre", "centroid", "mid_body",
    "midbody", "spine", "spine1", "spine_1", "back", "thorax", "neck",
)  # fmt: skip
_BACK_NAMES = (
    "tail_base", "tailbase", "tail_root", "base_of_tail", "tail_start", "tail1", "abdomen",
    "rump", "tail",
)  # fmt: skip
_SIDES = {"left": "right", "l": "r"}


def _normalised(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _pick(names: Sequence[str], wanted: Sequence[str], taken: Sequence[str]) -> str | None:
    by_norm = {_normalised(n): n for n in names if n not in taken}
    for candidate in wanted:
        if candidate in by_norm:
            return by_norm[candidate]
    return None


def default_spec(
    keypoints: Sequence[str], window_s: float = 1.0, likelihood_threshold: float = 0.5
) -> FeatureSpec:
    """Return a sensible spec for any keypoint names (tuned on mice, general by construction)."""
    names = tuple(keypoints)
    if not names:
        raise FeatureSpecError("Expected at least one keypoint name, but got none")
    front = _pick(names, _FRONT_NAMES, ()) or names[0]
    back = _pick(names, _BACK_NAMES, (front,)) or (names[-1] if names[-1] != front else None)
    center = _pick(names, _CENTER_NAMES, tuple(n for n in (front, back) if n))
    if center is None and len(names) >= 3:
        middle = [n for n in names if n not in (front, back)]
        center = middle[len(middle) // 2]
    distances: list[tuple[str, str]] = []

    def add_pair(a: str, b: str) -> None:
        if a != b and (a, b) not in distances and (b, a) not in distances:
            distances.append((a, b))

    if back is not None:
        add_pair(front, back)
    if center is not None:
        for name in names:
            add_pair(center, name)
    lowered = {_normalised(n): n for n in names}
    for norm, name in lowered.items():
        parts = norm.split("_")
        for position, part in enumerate(parts):
            if part in _SIDES:
                mirrored = "_".join([*parts[:position], _SIDES[part], *parts[position + 1 :]])
                if mirrored in lowered:
                    add_pair(name, lowered[mirrored])
                    break
    angles: list[tuple[str, str, str]] = []
    if center is not None and back is not None:
        angles.append((center, front, back))
    neck = lowered.get("neck")
    if neck is not None and center is not None and neck not in (center, front):
        angles.append((neck, front, center))
    return FeatureSpec(
        keypoints=names,
        distances=tuple(distances),
        angles=tuple(angles),
        turn_rates=((back, front),) if back is not None else (),
        speeds=names,
        accelerations=(center or front,),
        window_s=float(window_s),
        likelihood_threshold=float(likelihood_threshold),
    )


class _Indices:
    """A spec's names turned into index arrays once."""

    def __init__(self, spec: FeatureSpec) -> None:
        where = {name: i for i, name in enumerate(spec.keypoints)}

        def index(items: Sequence[Sequence[str]], size: int) -> np.ndarray:
            return np.array([[where[k] for k in item] for item in items], np.intp).reshape(-1, size)

        self.distances = index(spec.distances, 2)
        self.angles = index(spec.angles, 3)
        self.turns = index(spec.turn_rates, 2)
        self.speeds = np.array([where[k] for k in spec.speeds], np.intp)
        self.accelerations = np.array([where[k] for k in spec.accelerations], np.intp)
        self.n_static = len(self.distances) + len(self.angles)
        # Vectors head - tail: the distance pairs, the angles' two arms, the body axes.
        self.heads = np.concatenate(
            [self.distances[:, 0], self.angles[:, 1], self.angles[:, 2], self.turns[:, 1]]
        )
        self.tails = np.concatenate(
            [self.distances[:, 1], self.angles[:, 0], self.angles[:, 0], self.turns[:, 0]]
        )
        self.n_frame = self.n_static + len(self.turns) + len(self.speeds) + len(self.accelerations)


def _check_pixels_per_mm(pixels_per_mm: float) -> float:
    value = float(pixels_per_mm)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Expected pixels_per_mm to be a positive number, but got {pixels_per_mm}")
    return value


def _static_values(
    idx: _Indices, xy: np.ndarray, valid: np.ndarray, pixels_per_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distances and angles (values, known) and axis orientations (degrees, known), one gather."""
    vectors = xy[..., idx.heads, :] - xy[..., idx.tails, :]
    known = valid[..., idx.heads] & valid[..., idx.tails]
    d, a = len(idx.distances), len(idx.angles)
    dist = np.hypot(vectors[..., :d, 0], vectors[..., :d, 1]) / pixels_per_mm
    u1 = vectors[..., d : d + a, :]
    u2 = vectors[..., d + a : d + 2 * a, :]
    cross = u1[..., 0] * u2[..., 1] - u1[..., 1] * u2[..., 0]
    dot = u1[..., 0] * u2[..., 0] + u1[..., 1] * u2[..., 1]
    angle = np.degrees(np.arctan2(np.abs(cross), dot))
    axes = vectors[..., d + 2 * a :, :]
    orientation = np.degrees(np.arctan2(axes[..., 1], axes[..., 0]))
    values = np.concatenate([dist, angle], axis=-1)
    values_ok = np.concatenate(
        [known[..., :d], known[..., d : d + a] & known[..., d + a : d + 2 * a]], axis=-1
    )
    return values, values_ok, orientation, known[..., d + 2 * a :]


def _turn(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Return the absolute change of orientation in degrees, the short way round (0-180)."""
    return np.abs((now - before + 180.0) % 360.0 - 180.0)


def _valid_keypoints(keypoints: np.ndarray, threshold: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] >= threshold)


class FeatureWindow:
    """The feature vector of the newest frame, kept up to date at constant cost per frame."""

    def __init__(self, spec: FeatureSpec, pixels_per_mm: float) -> None:
        self.spec = spec
        self.pixels_per_mm = _check_pixels_per_mm(pixels_per_mm)
        self._idx = _Indices(spec)
        self._n_keypoints = len(spec.keypoints)
        self._aggregates = spec.aggregates
        self._n_features = spec.n_features
        self.reset()

    def reset(self) -> None:
        """Forget every frame (a new session, or the animal was lost for long)."""
        n = self._idx.n_frame
        self._frames: deque[tuple[int, float, np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._count = np.zeros(n, np.int64)
        self._sum = np.zeros(n)
        self._sumsq = np.zeros(n)
        self._shift = np.zeros(n)
        self._missing = np.zeros(self._n_keypoints, np.int64)
        self._mins: list[deque[tuple[int, float]]] = [deque() for _ in range(n)]
        self._maxs: list[deque[tuple[int, float]]] = [deque() for _ in range(n)]
        self._seq = 0
        self._first_time: float | None = None
        self._last_time: float | None = None
        self._prev_xy = np.zeros((self._n_keypoints, 2))
        self._prev_valid = np.zeros(self._n_keypoints, bool)
        self._prev_orientation = np.zeros(len(self._idx.turns))
        self._prev_orientation_ok = np.zeros(len(self._idx.turns), bool)
        self._prev_speed = np.zeros(self._n_keypoints)
        self._prev_speed_ok = np.zeros(self._n_keypoints, bool)

    @property
    def full(self) -> bool:
        """Whether the frames since the last reset span the whole window (``window_s`` or more)."""
        if self._first_time is None or self._last_time is None:
            return False
        return self._last_time - self._first_time >= self.spec.window_s

    @property
    def frames_in_window(self) -> int:
        """How many frames the window holds now."""
        return len(self._frames)

    def update(self, keypoints: np.ndarray, time_s: float) -> np.ndarray | None:
        """Add a frame (later than the last); return the feature vector (float32); see ``full``."""
        points = np.asarray(keypoints, dtype=np.float64)
        if points.shape != (self._n_keypoints, 3):
            raise ValueError(
                f"Expected keypoints of shape ({self._n_keypoints}, 3) (x, y, likelihood of "
                f"{list(self.spec.keypoints)}), but got {points.shape}"
            )
        now = float(time_s)
        if not math.isfinite(now):
            raise ValueError(f"Expected a finite time in seconds, but got {time_s}")
        if self._last_time is not None and now <= self._last_time:
            raise ValueError(
                f"Expected frame times to increase, but got {now} after {self._last_time}"
            )
        idx = self._idx
        valid = _valid_keypoints(points, self.spec.likelihood_threshold)
        xy = np.where(valid[:, None], points[:, :2], 0.0)
        static, static_ok, orientation, orientation_ok = _static_values(
            idx, xy, valid, self.pixels_per_mm
        )
        cutoff = now - self.spec.window_s
        previous_in_window = self._last_time is not None and self._last_time > cutoff
        if previous_in_window:
            dt = now - self._last_time  # type: ignore[operator]
            moved = np.hypot(xy[:, 0] - self._prev_xy[:, 0], xy[:, 1] - self._prev_xy[:, 1])
            speed = moved / self.pixels_per_mm / dt
            speed_ok = valid & self._prev_valid
            turn = _turn(orientation, self._prev_orientation) / dt
            turn_ok = orientation_ok & self._prev_orientation_ok
            acceleration = (speed - self._prev_speed) / dt
            acceleration_ok = speed_ok & self._prev_speed_ok
        else:
            speed = np.zeros(self._n_keypoints)
            speed_ok = np.zeros(self._n_keypoints, bool)
            turn = np.zeros(len(idx.turns))
            turn_ok = np.zeros(len(idx.turns), bool)
            acceleration = speed
            acceleration_ok = speed_ok
        values = np.concatenate([static, turn, speed[idx.speeds], acceleration[idx.accelerations]])
        ok = np.concatenate(
            [static_ok, turn_ok, speed_ok[idx.speeds], acceleration_ok[idx.accelerations]]
        )
        self._prev_xy = xy
        self._prev_valid = valid
        self._prev_orientation = orientation
        self._prev_orientation_ok = orientation_ok
        self._prev_speed = speed
        self._prev_speed_ok = speed_ok
        self._last_time = now
        if self._first_time is None:
            self._first_time = now
        self._evict(cutoff)
        self._add(values, ok, ~valid, now)
        return self._vector()

    def _evict(self, cutoff: float) -> None:
        last_evicted = -1
        while self._frames and self._frames[0][1] <= cutoff:
            seq, _, values, ok, missing = self._frames.popleft()
            shifted = np.where(ok, values - self._shift, 0.0)
            self._sum -= shifted
            self._sumsq -= shifted * shifted
            self._count -= ok
            self._missing -= missing
            last_evicted = seq
        if last_evicted < 0:
            return
        # Start the sums afresh where at most one value is left (the min deque holds it): the
        # rounding left by the values that came and went is dropped with them.
        for column in np.flatnonzero(self._count <= 1).tolist():
            low = self._mins[column]
            while low and low[0][0] <= last_evicted:
                low.popleft()
            self._shift[column] = low[0][1] if low else 0.0
            self._sum[column] = 0.0
            self._sumsq[column] = 0.0
        for queue in self._mins:
            while queue and queue[0][0] <= last_evicted:
                queue.popleft()
        for queue in self._maxs:
            while queue and queue[0][0] <= last_evicted:
                queue.popleft()

    def _add(self, values: np.ndarray, ok: np.ndarray, missing: np.ndarray, now: float) -> None:
        seq = self._seq
        self._seq += 1
        restart = ok & (self._count == 0)
        self._shift[restart] = values[restart]
        shifted = np.where(ok, values - self._shift, 0.0)
        self._sum += shifted
        self._sumsq += shifted * shifted
        self._count += ok
        self._missing += missing
        self._frames.append((seq, now, values, ok, missing))
        known = values.tolist()
        for column in np.flatnonzero(ok).tolist():
            value = known[column]
            low = self._mins[column]
            while low and low[-1][1] >= value:
                low.pop()
            low.append((seq, value))
            high = self._maxs[column]
            while high and high[-1][1] <= value:
                high.pop()
            high.append((seq, value))

    def _vector(self) -> np.ndarray:
        count = self._count
        known = count > 0
        safe = np.maximum(count, 1)
        mean_shifted = self._sum / safe
        columns: list[np.ndarray] = []
        for aggregate in self._aggregates:
            if aggregate == "mean":
                columns.append(mean_shifted + self._shift)
            elif aggregate == "std":
                variance = self._sumsq / safe - mean_shifted * mean_shifted
                columns.append(np.sqrt(np.maximum(variance, 0.0)))
            elif aggregate == "min":
                columns.append(np.array([q[0][1] if q else 0.0 for q in self._mins]))
            else:
                columns.append(np.array([q[0][1] if q else 0.0 for q in self._maxs]))
        table = np.stack(columns, axis=1)
        table[~known] = self.spec.missing_value
        out = np.empty(self._n_features, np.float32)
        out[: table.size] = table.ravel()
        out[table.size :] = self._missing / len(self._frames)
        return out


def features_of(
    keypoints: np.ndarray, times_s: np.ndarray, spec: FeatureSpec, pixels_per_mm: float
) -> np.ndarray:
    """Return every frame's feature vector, (N, F) float32, as :class:`FeatureWindow` would."""
    ppm = _check_pixels_per_mm(pixels_per_mm)
    points = np.asarray(keypoints, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    k = len(spec.keypoints)
    if points.ndim != 3 or points.shape[1:] != (k, 3):
        raise ValueError(
            f"Expected keypoints of shape (N, {k}, 3) for {list(spec.keypoints)}, "
            f"but got {points.shape}"
        )
    if times.shape != (len(points),):
        raise ValueError(f"Expected {len(points)} frame times, but got shape {times.shape}")
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise ValueError("Expected finite frame times that increase from frame to frame")
    n = len(points)
    if n == 0:
        return np.zeros((0, spec.n_features), np.float32)
    idx = _Indices(spec)
    valid = _valid_keypoints(points, spec.likelihood_threshold)
    xy = np.where(valid[..., None], points[..., :2], 0.0)
    static, static_ok, orientation, orientation_ok = _static_values(idx, xy, valid, ppm)

    # Derivatives against the previous frame, when it is still in the window.
    previous_ok = np.zeros(n, bool)
    previous_ok[1:] = times[:-1] > times[1:] - spec.window_s
    dt = np.ones(n)
    dt[1:] = times[1:] - times[:-1]
    speed = np.zeros((n, k))
    speed_ok = np.zeros((n, k), bool)
    step = xy[1:] - xy[:-1]
    speed[1:] = np.hypot(step[..., 0], step[..., 1]) / ppm / dt[1:, None]
    speed_ok[1:] = valid[1:] & valid[:-1] & previous_ok[1:, None]
    turns = np.zeros(orientation.shape)
    turns_ok = np.zeros(orientation.shape, bool)
    turns[1:] = _turn(orientation[1:], orientation[:-1]) / dt[1:, None]
    turns_ok[1:] = orientation_ok[1:] & orientation_ok[:-1] & previous_ok[1:, None]
    acceleration = np.zeros((n, k))
    acceleration_ok = np.zeros((n, k), bool)
    acceleration[1:] = (speed[1:] - speed[:-1]) / dt[1:, None]
    acceleration_ok[1:] = speed_ok[1:] & speed_ok[:-1]

    values = np.concatenate(
        [static, turns, speed[:, idx.speeds], acceleration[:, idx.accelerations]], axis=1
    )
    ok = np.concatenate(
        [static_ok, turns_ok, speed_ok[:, idx.speeds], acceleration_ok[:, idx.accelerations]],
        axis=1,
    )
    missing = ~valid
    values = np.where(ok, values, 0.0)  # no NaN or inf from missing keypoints in the sums

    first = np.searchsorted(times, times - spec.window_s, side="right")
    longest = int((np.arange(n) - first).max()) + 1
    n_frame = values.shape[1]
    out = np.empty((n, spec.n_features), np.float32)
    chunk = max(1, 2_000_000 // max(1, longest * n_frame))
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        members = first[rows, None] + np.arange(longest)[None, :]
        inside = members <= rows[:, None]
        members = np.minimum(members, n - 1)
        window_values = values[members]
        window_ok = ok[members] & inside[..., None]
        count = window_ok.sum(axis=1)
        safe = np.maximum(count, 1)
        mean = np.where(window_ok, window_values, 0.0).sum(axis=1) / safe
        columns: list[np.ndarray] = []
        for aggregate in spec.aggregates:
            if aggregate == "mean":
                columns.append(mean)
            elif aggregate == "std":
                deviation = np.where(window_ok, window_values - mean[:, None, :], 0.0)
                columns.append(np.sqrt((deviation * deviation).sum(axis=1) / safe))
            elif aggregate == "min":
                columns.append(np.where(window_ok, window_values, np.inf).min(axis=1))
            else:
                columns.append(np.where(window_ok, window_values, -np.inf).max(axis=1))
        table = np.stack(columns, axis=2)
        table[count == 0] = spec.missing_value
        out[rows, : table.shape[1] * table.shape[2]] = table.reshape(len(rows), -1)
        frames_in = inside.sum(axis=1)
        out[rows, table.shape[1] * table.shape[2] :] = (missing[members] & inside[..., None]).sum(
            axis=1
        ) / frames_in[:, None]
    return out
