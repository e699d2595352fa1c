"""Forward prediction: where each keypoint will be when the command reaches the device.

The two predictors, the lead and when prediction helps: docs/experiments.md (Forward
prediction). Both run on the frames' own timestamps; time going backwards (a new replay)
forgets everything.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

from deeplabstream.core.schema import check_quantity
from deeplabstream.experiments.observation import Observation, Observations

Method = Literal["off", "constant-velocity", "kalman"]
METHODS: tuple[str, ...] = ("off", "constant-velocity", "kalman")
LATENCY_WINDOW = 50
"""Auto lead: the median of this many latest measured latencies (frame -> command written)."""
MAX_LEAD_MS = 500.0
"""The longest lead, fixed or auto (a stalled device must not send predictions into the future)."""
DEFAULT_WINDOW_S = 0.1
DEFAULT_MAX_GAP_S = 0.25
DEFAULT_LEAD_MARGIN_MS = 1.0
DEFAULT_PROCESS_NOISE = 3.0e4
"""px^2/s^3: white-noise acceleration of the Kalman filter. Chosen by a sweep (3e4 to 3e6,
with 0.5 to 2 px of measurement noise) on the simulated mouse's true keypoints plus 0.7 px of
noise, 20 ms ahead: among the smallest median and 95th-percentile errors."""
DEFAULT_MEASUREMENT_NOISE = 1.0
"""px: the keypoints' measurement noise, standard deviation (the bundled model's error is
about 0.5 px; a model with noisier keypoints wants its own figure)."""
INITIAL_SPEED_STD = 1000.0
"""px/s: the Kalman filter's velocity uncertainty when a track starts (no velocity known)."""
_SAME_TIME_S = 1e-9


@dataclass(frozen=True)
class PredictionSettings:
    """How an experiment predicts keypoints (docs/experiments.md, Forward prediction).

    ``method``: ``"off"``, ``"constant-velocity"`` or ``"kalman"``; ``lead_ms`` a fixed lead (0 to
    :data:`MAX_LEAD_MS`), None for ``auto``; ``min_likelihood`` None: the experiment's threshold.
    Units: ``window_s`` and ``max_gap_s`` seconds, ``process_noise`` px^2/s^3 (white-noise
    acceleration), ``measurement_noise`` px (standard deviation).
    """

    method: Method = "off"
    lead_ms: float | None = None
    lead_margin_ms: float = DEFAULT_LEAD_MARGIN_MS
    window_s: float = DEFAULT_WINDOW_S
    max_gap_s: float = DEFAULT_MAX_GAP_S
    min_likelihood: float | None = None
    process_noise: float = DEFAULT_PROCESS_NOISE
    measurement_noise: float = DEFAULT_MEASUREMENT_NOISE

    def __post_init__(self) -> None:
        """Reject values no predictor can use, naming the parameter and what is allowed."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        lead_ms = self.lead_ms
        if lead_ms is not None and not 0.0 <= check_quantity("lead_ms", lead_ms, "ms") <= (
            MAX_LEAD_MS
        ):
            raise ValueError(f"lead_ms must be from 0 to {MAX_LEAD_MS:g} ms, not {lead_ms!r}")
        check_quantity("lead_margin_ms", self.lead_margin_ms, "ms", 0.0)
        check_quantity("window_s", self.window_s, "s", 0.0, strict=True)
        check_quantity("max_gap_s", self.max_gap_s, "s", 0.0, strict=True)
        check_quantity("process_noise", self.process_noise, "px^2/s^3", 0.0, strict=True)
        check_quantity("measurement_noise", self.measurement_noise, "px", 0.0, strict=True)
        if self.min_likelihood is not None and not 0.0 <= self.min_likelihood <= 1.0:
            raise ValueError(f"min_likelihood must be in [0, 1], not {self.min_likelihood!r}")

    @property
    def enabled(self) -> bool:
        """Whether anything is predicted."""
        return self.method != "off"

    def describe(self) -> dict[str, Any]:
        """Return the parameters that matter for the method, for session.json."""
        described: dict[str, Any] = {
            "method": self.method,
            "lead_ms": "auto" if self.lead_ms is None else self.lead_ms,
            "max_gap_s": self.max_gap_s,
            "min_likelihood": self.min_likelihood,
        }
        if self.lead_ms is None:
            described["lead_margin_ms"] = self.lead_margin_ms
        if self.method == "constant-velocity":
            described["window_s"] = self.window_s
        elif self.method == "kalman":
            described["process_noise"] = self.process_noise
            described["measurement_noise"] = self.measurement_noise
        return described


# --------------------------------------------------------------------------------------------------
# The lead
# --------------------------------------------------------------------------------------------------


class LeadEstimator:
    """How far ahead of a frame's time to predict, in seconds (docs/experiments.md).

    ``fixed_ms`` None: ``auto``, the median of the ``window`` latest measured latencies; before
    any, the frame -> update time plus ``margin_ms`` (or the margin alone).
    """

    def __init__(
        self,
        fixed_ms: float | None = None,
        margin_ms: float = DEFAULT_LEAD_MARGIN_MS,
        window: int = LATENCY_WINDOW,
    ) -> None:
        self.fixed_s = None if fixed_ms is None else float(fixed_ms) / 1e3
        self.margin_s = float(margin_ms) / 1e3
        self._latencies: deque[float] = deque(maxlen=int(window))
        self._median_s: float | None = None
        self._elapsed_s: float | None = None
        self._replayed_s: float | None = None
        self.source = "fixed" if self.fixed_s is not None else "margin"
        """Where the last :meth:`current_s` came from: fixed, measured, elapsed or margin."""

    def replay(self, seconds: float) -> None:
        """Give the next updates the lead a live session used (``pose_exact.csv``'s lead_s).

        ``deeplabstream-verify`` re-derives the decisions with the leads the live loop had, to
        the bit; the live loop never calls this.
        """
        self._replayed_s = float(seconds)
        self.source = "recorded"

    def add_latency(self, seconds: float) -> None:
        """One measured latency: a frame's arrival -> its command written (host clock)."""
        if math.isfinite(seconds) and seconds >= 0.0:
            self._latencies.append(float(seconds))
            self._median_s = None  # recomputed when next needed

    def set_elapsed(self, seconds: float | None) -> None:
        """Return the time from the prompting frame's arrival to this update (None: not known)."""
        self._elapsed_s = None if seconds is None or not math.isfinite(seconds) else seconds

    @property
    def measured(self) -> int:
        """How many latencies the running estimate holds."""
        return len(self._latencies)

    def median_latency_s(self) -> float | None:
        """Return the median of the measured latencies held, None before the first."""
        if not self._latencies:
            return None
        if self._median_s is None:
            self._median_s = statistics.median(self._latencies)
        return self._median_s

    def current_s(self) -> float:
        """Return the lead for the update in progress, seconds (0 to :data:`MAX_LEAD_MS`)."""
        if self._replayed_s is not None:
            return self._replayed_s
        if self.fixed_s is not None:
            return self.fixed_s
        measured = self.median_latency_s()
        if measured is not None:
            self.source, lead = "measured", measured
        elif self._elapsed_s is not None:
            self.source, lead = "elapsed", max(0.0, self._elapsed_s) + self.margin_s
        else:
            self.source, lead = "margin", self.margin_s
        return min(lead, MAX_LEAD_MS / 1e3)


# --------------------------------------------------------------------------------------------------
# Predictors: one camera's keypoints, vectorised over the keypoints
# --------------------------------------------------------------------------------------------------


class KeypointPredictor(Protocol):
    """One camera's keypoints over time -> their positions at a later time."""

    def update(self, time_s: float, keypoints: np.ndarray) -> None:
        """Add one frame: its time and keypoints (K, 3: x, y, likelihood)."""
        ...

    def predict(self, time_s: float) -> np.ndarray:
        """Positions (K, 2) at ``time_s``; NaN for keypoints it knows nothing recent about."""
        ...

    def reset(self) -> None:
        """Forget everything."""
        ...


def _seen(keypoints: np.ndarray, min_likelihood: float) -> np.ndarray:
    """Which keypoints count as seen: likelihood at or above the threshold, finite x and y."""
    # x + y is finite exactly when both are (one addition instead of a reduction).
    return (keypoints[:, 2] >= min_likelihood) & np.isfinite(keypoints[:, 0] + keypoints[:, 1])


class _Track:
    """What both predictors share: the frame clock, sightings, and forgetting after a gap."""

    def __init__(self, max_gap_s: float, min_likelihood: float) -> None:
        self.max_gap_s = check_quantity("max_gap_s", max_gap_s, "s", 0.0, strict=True)
        if not 0.0 <= min_likelihood <= 1.0:
            raise ValueError(f"min_likelihood must be in [0, 1], not {min_likelihood!r}")
        self.min_likelihood = float(min_likelihood)
        self.now_s: float | None = None
        self.last_seen_s = np.empty(0)

    def _accept(self, time_s: float, keypoints: np.ndarray) -> np.ndarray | None:
        """Return a new frame's seen mask (None: given again); time going back starts afresh."""
        if self.now_s is not None:
            if abs(time_s - self.now_s) <= _SAME_TIME_S:
                return None
            if time_s < self.now_s or len(keypoints) != len(self.last_seen_s):
                self.reset()
        if self.now_s is None:
            self._allocate(len(keypoints))
        self.now_s = float(time_s)
        return _seen(keypoints, self.min_likelihood)

    def _fresh(self, seen: np.ndarray, time_s: float) -> np.ndarray:
        """Seen keypoints whose track starts now: never seen, or not seen for ``max_gap_s``."""
        return seen & (time_s - self.last_seen_s > self.max_gap_s)

    def _stale(self) -> np.ndarray:
        """Keypoints not seen for longer than ``max_gap_s`` (or never): no prediction."""
        assert self.now_s is not None
        return self.now_s - self.last_seen_s > self.max_gap_s

    def _allocate(self, count: int) -> None:
        self.last_seen_s = np.full(count, -np.inf)

    def reset(self) -> None:
        """Forget everything."""
        self.now_s = None
        self.last_seen_s = np.empty(0)


class ConstantVelocity(_Track):
    """The least-squares line through each keypoint's positions of the last ``window_s`` (> 0).

    One sighting in the window predicts that position (no velocity yet).
    """

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        min_likelihood: float = 0.5,
    ) -> None:
        super().__init__(max_gap_s, min_likelihood)
        self.window_s = check_quantity("window_s", window_s, "s", 0.0, strict=True)
        self._times: deque[float] = deque()
        self._points: deque[np.ndarray] = deque()  # (K, 2) each, 0 where not seen
        self._seen: deque[np.ndarray] = deque()  # (K,) each
        self._last_xy = np.empty((0, 2))

    def _allocate(self, count: int) -> None:
        super()._allocate(count)
        self._track_start_s = np.full(count, -np.inf)  # samples before it are another track's
        self._last_xy = np.full((count, 2), np.nan)

    def reset(self) -> None:
        """Forget every position."""
        super().reset()
        self._times.clear()
        self._points.clear()
        self._seen.clear()
        self._last_xy = np.empty((0, 2))

    def update(self, time_s: float, keypoints: np.ndarray) -> None:
        """Add one frame (see :class:`KeypointPredictor`)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        seen = self._accept(time_s, keypoints)
        if seen is None:
            return
        self._track_start_s[self._fresh(seen, time_s)] = time_s
        self.last_seen_s[seen] = time_s
        self._last_xy[seen] = keypoints[seen, :2]
        self._times.append(float(time_s))
        self._points.append(np.where(seen[:, None], keypoints[:, :2], 0.0))
        self._seen.append(seen)
        oldest = time_s - self.window_s - _SAME_TIME_S
        while self._times[0] < oldest:
            self._times.popleft()
            self._points.popleft()
            self._seen.popleft()

    def predict(self, time_s: float) -> np.ndarray:
        """Positions (K, 2) at ``time_s`` (see :class:`KeypointPredictor`)."""
        if self.now_s is None:
            return np.empty((0, 2))
        # Times relative to now (small numbers: the sums below lose no precision).
        times = np.fromiter(self._times, np.float64, len(self._times)) - self.now_s
        usable = np.array(self._seen) & (times[:, None] >= self._track_start_s - self.now_s)
        weight = usable.astype(np.float64)  # (n, K)
        points = np.array(self._points) * weight[..., None]  # (n, K, 2), 0 where not usable
        # Weighted least squares of x(t) = a + b t, in closed form from the sums.
        s0 = weight.sum(axis=0)
        st = times @ weight
        stt = (times * times) @ weight
        sx = points.sum(axis=0)
        stx = np.einsum("n,nkd->kd", times, points)
        determinant = s0 * stt - st * st
        # One sighting (or several at one time) gives a position but no velocity yet: the
        # determinant is then 0, and dividing by infinity instead makes the slope 0.
        moving = determinant > 1e-12 * s0 * stt
        slope = (s0[:, None] * stx - st[:, None] * sx) / np.where(moving, determinant, np.inf)[
            :, None
        ]
        predicted = (sx - slope * st[:, None]) / np.maximum(s0, 1.0)[:, None]
        predicted += slope * (time_s - self.now_s)
        unseen = s0 == 0
        if unseen.any():  # seen recently but not within the window: where it was last seen
            predicted[unseen] = self._last_xy[unseen]
        stale = self._stale()
        if stale.any():
            predicted[stale] = np.nan
        return predicted


class KalmanConstantVelocity(_Track):
    """A constant-velocity Kalman filter per keypoint (x and y independent, same noise).

    ``process_noise`` (px^2/s^3) and ``measurement_noise`` (px) are both > 0; x and y share one
    covariance, because they see the same frames and noise.
    """

    def __init__(
        self,
        process_noise: float = DEFAULT_PROCESS_NOISE,
        measurement_noise: float = DEFAULT_MEASUREMENT_NOISE,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        min_likelihood: float = 0.5,
    ) -> None:
        super().__init__(max_gap_s, min_likelihood)
        self.process_noise = check_quantity(
            "process_noise", process_noise, "px^2/s^3", 0.0, strict=True
        )
        self.measurement_noise = check_quantity(
            "measurement_noise", measurement_noise, "px", 0.0, strict=True
        )
        self._allocate(0)

    def _allocate(self, count: int) -> None:
        super()._allocate(count)
        self.position = np.full((count, 2), np.nan)
        self.velocity = np.zeros((count, 2))
        self._state_s = np.zeros(count)  # when each keypoint's state was last corrected
        # The shared 2 x 2 covariance of (position, velocity): [[p00, p01], [p01, p11]].
        self._p00, self._p01, self._p11 = np.zeros(count), np.zeros(count), np.zeros(count)

    def update(self, time_s: float, keypoints: np.ndarray) -> None:
        """Add one frame (see :class:`KeypointPredictor`)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        seen = self._accept(time_s, keypoints)
        if seen is None:
            return
        start = self._fresh(seen, time_s)
        correct = seen & ~start
        if start.any():
            self._start(start, keypoints[start, :2], time_s)
        if correct.all():  # the usual frame: every keypoint seen (a slice, no copies)
            self._correct(slice(None), keypoints[:, :2], time_s)
        elif correct.any():
            self._correct(correct, keypoints[correct, :2], time_s)
        self.last_seen_s[seen] = time_s

    def _start(self, rows: np.ndarray, measured: np.ndarray, time_s: float) -> None:
        """Return a new track: at the measurement, no velocity, velocity uncertain."""
        self.position[rows] = measured
        self.velocity[rows] = 0.0
        self._state_s[rows] = time_s
        self._p00[rows] = self.measurement_noise**2
        self._p01[rows] = 0.0
        self._p11[rows] = INITIAL_SPEED_STD**2

    def _correct(self, rows: np.ndarray | slice, measured: np.ndarray, time_s: float) -> None:
        """Predict each row's state to ``time_s``, then correct it with its measurement."""
        dt = time_s - self._state_s[rows]
        q = self.process_noise
        p00, p01, p11 = self._p00[rows], self._p01[rows], self._p11[rows]
        # Prediction: F = [[1, dt], [0, 1]], Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]].
        p00 = p00 + 2.0 * dt * p01 + dt * dt * p11 + q * dt**3 / 3.0
        p01 = p01 + dt * p11 + q * dt * dt / 2.0
        p11 = p11 + q * dt
        position = self.position[rows] + self.velocity[rows] * dt[:, None]
        # Correction with H = [1, 0]: gains for position and velocity.
        innovation_var = p00 + self.measurement_noise**2
        gain_p, gain_v = p00 / innovation_var, p01 / innovation_var
        innovation = measured - position
        self.position[rows] = position + gain_p[:, None] * innovation
        self.velocity[rows] = self.velocity[rows] + gain_v[:, None] * innovation
        self._p00[rows] = (1.0 - gain_p) * p00
        self._p01[rows] = (1.0 - gain_p) * p01
        self._p11[rows] = p11 - gain_v * p01
        self._state_s[rows] = time_s

    def predict(self, time_s: float) -> np.ndarray:
        """Positions (K, 2) at ``time_s`` (see :class:`KeypointPredictor`)."""
        if self.now_s is None:
            return np.empty((0, 2))
        predicted = self.position + self.velocity * (time_s - self._state_s)[:, None]
        stale = self._stale()
        if stale.any():
            predicted[stale] = np.nan
        return predicted


def make_predictor(settings: PredictionSettings, min_likelihood: float) -> KeypointPredictor:
    """Return a fresh predictor of ``settings.method`` for one camera."""
    threshold = settings.min_likelihood if settings.min_likelihood is not None else min_likelihood
    if settings.method == "constant-velocity":
        return ConstantVelocity(settings.window_s, settings.max_gap_s, threshold)
    if settings.method == "kalman":
        return KalmanConstantVelocity(
            settings.process_noise, settings.measurement_noise, settings.max_gap_s, threshold
        )
    raise ValueError(f"no predictor for method {settings.method!r}")


# --------------------------------------------------------------------------------------------------
# An experiment's prediction: every camera, and the lead
# --------------------------------------------------------------------------------------------------


class PosePredictor:
    """Adds predicted keypoints to every observation an experiment receives.

    ``settings.method`` must not be ``"off"``; ``min_likelihood`` is used when
    ``settings.min_likelihood`` is None.
    """

    def __init__(self, settings: PredictionSettings, min_likelihood: float) -> None:
        if not settings.enabled:
            raise ValueError("PosePredictor needs a method other than 'off'")
        self.settings = settings
        self.min_likelihood = float(min_likelihood)
        self.lead = LeadEstimator(settings.lead_ms, settings.lead_margin_ms)
        self._by_camera: dict[str, KeypointPredictor] = {}
        self.last_lead_s: float | None = None

    def apply(self, observations: Observation | Observations) -> Observation | Observations:
        """``observations`` with :attr:`Observation.predicted` and ``lead_s`` filled in.

        Every camera is predicted at one moment, the reference time plus the lead. An observation
        given again (a camera with no new frame) adds no sample.
        """
        lead = self.lead.current_s()
        self.last_lead_s = lead
        target = observations.time_s + lead
        if isinstance(observations, Observation):
            return self._predict(observations, target)
        by_camera = {
            camera: self._predict(obs, target) for camera, obs in observations.by_camera.items()
        }
        return Observations(observations.time_s, by_camera)

    def _predict(self, obs: Observation, target_s: float) -> Observation:
        predictor = self._by_camera.get(obs.camera)
        if predictor is None:
            predictor = make_predictor(self.settings, self.min_likelihood)
            self._by_camera[obs.camera] = predictor
        predictor.update(obs.time_s, obs.keypoints)
        predicted = obs.keypoints.copy()  # the likelihoods stay the measured ones
        predicted[:, :2] = predictor.predict(target_s)
        # replace() keeps every other field (animals, depth, calibration) as measured
        return replace(obs, predicted=predicted, lead_s=target_s - obs.time_s)

    def reset(self) -> None:
        """Forget every camera's tracks (the measured latencies are kept)."""
        self._by_camera.clear()

    def describe(self) -> dict[str, Any]:
        """Return the settings, and the lead as it stands, for session.json."""
        median = self.lead.median_latency_s()
        threshold = self.settings.min_likelihood
        return {
            **self.settings.describe(),
            "min_likelihood": self.min_likelihood if threshold is None else threshold,
            "last_lead_ms": None if self.last_lead_s is None else self.last_lead_s * 1e3,
            "lead_source": self.lead.source,
            "latencies_measured": self.lead.measured,
            "median_latency_ms": None if median is None else median * 1e3,
        }
