"""Speed, freezing and distance: keypoint kinematics in seconds of frame time.

Its design: docs/experiments-internals.md (`experiments.triggers.motion`).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any, Unpack

from deeplabstream.experiments.observation import (
    Observation,
    Observations,
)
from deeplabstream.experiments.triggers.base import (
    AnyObservation,
    KeypointOptions,
    KeypointTrigger,
    check_number,
)
from deeplabstream.experiments.triggers.geometry import Line, Shape
from deeplabstream.experiments.triggers.kinds import (
    FILTER,
    SECONDS,
    TriggerKind,
    identifier,
    keypoint_name,
    number,
)

_HELD = object()


class WindowSpeed:
    """Displacement over the last ``window_s`` seconds / ``window_s`` (experiments-internals.md).

    The observed positions are joined by straight lines (the trajectory the estimator assumes
    between frames); :meth:`speed_at` is the windowed speed of that trajectory at any time since
    the previous sample, which :class:`Freezing` uses to find when the speed crossed its threshold.
    Feed it with :meth:`add`; it keeps only the samples that needs.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = check_number("window_s", window_s, 0.0, strict=True)
        self._samples: deque[tuple[float, float, float]] = deque()
        self.history_start = math.nan

    def reset(self) -> None:
        """Forget the history (a dropout, a new trial)."""
        self._samples.clear()
        self.history_start = math.nan

    def add(self, t: float, x: float, y: float) -> float | None:
        """Add the position at frame time ``t``; return the speed then (None: unknown yet)."""
        samples = self._samples
        if samples and t < samples[-1][0]:
            self.reset()  # time went backwards: a new replay
        previous = samples[-1][0] if samples else t
        if samples and t == previous:
            samples[-1] = (t, x, y)
        else:
            samples.append((t, x, y))
        if len(samples) == 1:
            self.history_start = t
        keep_from = previous - self.window_s  # speed_at() may look back to here
        while len(samples) >= 2 and samples[1][0] <= keep_from:
            samples.popleft()
        return self.speed()

    def speed(self) -> float | None:
        """Return the speed at the newest sample, px/s (None with fewer than two sample times)."""
        if len(self._samples) < 2:
            return None
        return self.speed_at(self._samples[-1][0])

    def position_at(self, t: float) -> tuple[float, float]:
        """Return the position at time ``t`` within the kept samples, on the line between them."""
        samples = self._samples
        after = bisect.bisect_left(samples, t, key=_sample_time)
        if after == 0:
            return samples[0][1], samples[0][2]
        if after == len(samples):
            return samples[-1][1], samples[-1][2]
        (t0, x0, y0), (t1, x1, y1) = samples[after - 1], samples[after]
        fraction = (t - t0) / (t1 - t0)
        return x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0)

    def speed_at(self, t: float) -> float | None:
        """Return the windowed speed at time ``t`` (between the previous and the newest sample)."""
        if len(self._samples) < 2 or not t > self.history_start:
            return None
        x, y = self.position_at(t)
        start = t - self.window_s
        if start >= self.history_start:
            x_start, y_start = self.position_at(start)
            return math.hypot(x - x_start, y - y_start) / self.window_s
        x0, y0 = self.position_at(self.history_start)  # history shorter than the window
        return math.hypot(x - x0, y - y0) / (t - self.history_start)


def _sample_time(sample: tuple[float, float, float]) -> float:
    return sample[0]


class _SpeedTrigger(KeypointTrigger):
    # SpeedAbove's (and SpeedBelow's) signature: see SpeedAbove for the parameters.
    def __init__(
        self,
        threshold: float,
        keypoint: str = "body_center",
        window_s: float = 0.2,
        mm_per_px: float | None = None,
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(camera, **options)
        self.threshold = check_number("threshold", threshold, 0.0)
        self.keypoint = keypoint
        self.mm_per_px = (
            None if mm_per_px is None else check_number("mm_per_px", mm_per_px, 0.0, strict=True)
        )
        self._speed = WindowSpeed(window_s)
        self.last_speed: float | None = None

    @property
    def window_s(self) -> float:
        """The speed window in seconds."""
        return self._speed.window_s

    def _measure(self, obs: Observation) -> Any:
        """Return the speed now (px/s or mm/s), None when unknown, ``_HELD`` for a held keypoint."""
        found = self._lookup(obs, self.keypoint)
        if found is None:
            self._speed.reset()
            self.last_speed = None
            return None
        if found.held:
            return _HELD
        speed = self._speed.add(obs.time_s, found.x, found.y)
        if speed is not None and self.mm_per_px is not None:
            speed *= self.mm_per_px
        self.last_speed = speed
        return speed

    def forget(self) -> None:
        self._speed.reset()
        self.last_speed = None

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint whose speed it measures."""
        return (self.keypoint,)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "threshold": self.threshold,
            "keypoint": self.keypoint,
            "window_s": self.window_s,
        }
        if self.mm_per_px is not None:
            params["mm_per_px"] = self.mm_per_px
        return params


class SpeedAbove(_SpeedTrigger):
    """True while the keypoint's windowed speed is above ``threshold`` (px/s, or mm/s).

    Parameters
    ----------
    threshold
        px/s, or mm/s with ``mm_per_px``.
    keypoint
        Default the body centre.
    window_s
        The speed window in seconds of frame time (> 0).
    mm_per_px
        Calibration; None keeps pixels.
    camera, **options
        See :class:`~experiments.triggers.base.KeypointTrigger`.
    """

    kind = "speed_above"

    def step(self, obs: Observation) -> bool:
        speed = self._measure(obs)
        if speed is _HELD:
            return self.state
        return speed is not None and speed > self.threshold


class SpeedBelow(SpeedAbove):
    """True while the keypoint's windowed speed is known and below ``threshold``."""

    kind = "speed_below"

    def step(self, obs: Observation) -> bool:
        speed = self._measure(obs)
        if speed is _HELD:
            return self.state
        return speed is not None and speed < self.threshold


class Freezing(_SpeedTrigger):
    """True once the windowed speed has stayed below ``threshold`` for ``duration_s``.

    How the freeze is dated: docs/experiments-internals.md. Parameters as :class:`SpeedAbove`,
    plus ``duration_s`` (seconds of frame time, >= 0).
    """

    kind = "freezing"

    def __init__(
        self,
        threshold: float,
        duration_s: float,
        keypoint: str = "body_center",
        window_s: float = 0.2,
        mm_per_px: float | None = None,
        camera: str | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        super().__init__(
            threshold,
            keypoint,
            window_s,
            mm_per_px,
            camera,
            **options,
        )
        self.duration_s = check_number("duration_s", duration_s, 0.0)
        self._run_start: float | None = None
        self._previous: tuple[float, float] | None = None

    def forget(self) -> None:
        super().forget()
        self._run_start = None
        self._previous = None

    @property
    def frozen_since(self) -> float | None:
        """When the current slow run began (frame time), or None when not slow."""
        return self._run_start

    def step(self, obs: Observation) -> bool:
        speed = self._measure(obs)
        if speed is _HELD:
            return self.state
        t = obs.time_s
        if speed is None:
            self._run_start, self._previous = None, None
            return False
        if speed < self.threshold:
            if self._run_start is None:
                crossed = t
                if self._previous is not None and self._previous[1] >= self.threshold:
                    crossed = self._crossing(self._previous[0], t)
                self._run_start = max(crossed - self.window_s, self._speed.history_start)
            frozen = t - self._run_start >= self.duration_s
        else:
            self._run_start = None
            frozen = False
        self._previous = (t, speed)
        return frozen

    def _crossing(self, t_fast: float, t_slow: float) -> float:
        """When the windowed speed fell below the threshold, between two observations."""
        for _ in range(60):
            middle = 0.5 * (t_fast + t_slow)
            if middle in (t_fast, t_slow):
                break
            speed = self._speed.speed_at(middle)
            if speed is not None and self.mm_per_px is not None:
                speed *= self.mm_per_px
            if speed is None or speed >= self.threshold:
                t_fast = middle
            else:
                t_slow = middle
        return t_slow

    def params(self) -> dict[str, Any]:
        return {**super().params(), "duration_s": self.duration_s}


class DistanceBelow(KeypointTrigger):
    """True while the distance between keypoints ``a`` and ``b`` is below ``threshold``.

    Parameters
    ----------
    a, b
        Keypoint names: two body parts (``"nose"``, ``"tail_base"``), or the same part of two
        animals (a multi-animal model's names, ``"mouse1_nose"``, ``"mouse2_nose"``), or with
        ``camera_a`` / ``camera_b`` the same name in two cameras.
    threshold
        Pixels, or mm with ``mm_per_px``.
    camera
        The camera both points come from (None: see docs/experiments-internals.md).
    camera_a, camera_b
        Two different cameras: ``a`` from ``camera_a`` and ``b`` from ``camera_b``, read from
        :class:`~experiments.observation.Observations` (paired by time); a single-camera
        observation then brings no news (the state is kept). Their pixels must share a
        coordinate frame for the distance to mean anything.
    mm_per_px, **options
        Calibration, the likelihood policy, and whether to read predicted positions (see
        :class:`~experiments.triggers.base.KeypointTrigger`). False while either point is
        missing.
    """

    kind = "distance_below"

    def __init__(
        self,
        a: str,
        b: str,
        threshold: float,
        camera: str | None = None,
        camera_a: str | None = None,
        camera_b: str | None = None,
        mm_per_px: float | None = None,
        **options: Unpack[KeypointOptions],
    ) -> None:
        if (camera_a is None) != (camera_b is None):
            raise ValueError("camera_a and camera_b go together: give both or neither")
        if camera_a is not None and camera is not None:
            raise ValueError("give either camera or camera_a and camera_b, not both")
        if camera_a is not None and camera_a == camera_b:
            camera, camera_a, camera_b = camera_a, None, None
        super().__init__(camera, **options)
        self.a, self.b = a, b
        self.camera_a, self.camera_b = camera_a, camera_b
        self.whole_observation = camera_a is not None  # two cameras: paired observations
        self.threshold = check_number("threshold", threshold, 0.0)
        self.mm_per_px = (
            None if mm_per_px is None else check_number("mm_per_px", mm_per_px, 0.0, strict=True)
        )
        self.forget()

    def forget(self) -> None:
        self.last_distance: float | None = None
        self._points: tuple[tuple[float, float], tuple[float, float]] | None = None

    def cameras_read(self) -> tuple[str, ...] | None:
        """Return both cameras when the points are on two, else as any one-camera trigger."""
        if self.camera_a is not None and self.camera_b is not None:
            return (self.camera_a, self.camera_b)
        return super().cameras_read()

    def step(self, obs: AnyObservation) -> bool:
        """Return the state after an observation of its camera, or paired ones of its two."""
        if self.camera_a is None:
            assert isinstance(obs, Observation)  # one camera: the base chose it
            return self._compare(self._point(obs, self.a), self._point(obs, self.b))
        if not isinstance(obs, Observations):
            return self.state
        obs_a, obs_b = obs.by_camera.get(self.camera_a), obs.by_camera.get(self.camera_b or "")
        if obs_a is None or obs_b is None:
            self.last_distance, self._points = None, None
            return False
        pa, pb = self._point(obs_a, self.a), self._point(obs_b, self.b)
        hold = self.loss_hold
        if hold is not None and pa is not None and pb is not None:
            hold.seen(obs.time_s)
            self.holding = False
        elif hold is not None and hold.bridges(obs.time_s):
            self.holding = True  # a short loss of either point: the state holds
            return self.state
        return self._compare(pa, pb)

    def _compare(self, pa: tuple[float, float] | None, pb: tuple[float, float] | None) -> bool:
        if pa is None or pb is None:
            self.last_distance, self._points = None, None
            return False
        self._points = (pa, pb)
        distance = math.hypot(pa[0] - pb[0], pa[1] - pb[1])
        if self.mm_per_px is not None:
            distance *= self.mm_per_px
        self.last_distance = distance
        return self._holds(distance)

    def _holds(self, distance: float) -> bool:
        return distance < self.threshold

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the two keypoints whose distance it measures."""
        return (self.a, self.b)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"a": self.a, "b": self.b, "threshold": self.threshold}
        if self.camera_a is not None:
            params.update(camera_a=self.camera_a, camera_b=self.camera_b)
        if self.mm_per_px is not None:
            params["mm_per_px"] = self.mm_per_px
        return params

    def shapes(self) -> list[Shape]:
        """Return the segment between the two points at the last update (one camera only)."""
        if self._points is None or self.camera_a is not None:
            return []
        (x0, y0), (x1, y1) = self._points
        return [Line(x0, y0, x1, y1)]


class DistanceAbove(DistanceBelow):
    """True while the distance between keypoints ``a`` and ``b`` is above ``threshold``."""

    kind = "distance_above"

    def _holds(self, distance: float) -> bool:
        return distance > self.threshold


_SPEED_PARAMETERS = {
    "threshold": number(required=True, unit="px/s, or mm/s with mm_per_px"),
    "keypoint": keypoint_name(),
    "window_s": number(strict=True, unit=SECONDS),
    "mm_per_px": number(strict=True),
    **FILTER,
}
_DISTANCE_PARAMETERS = {
    "a": keypoint_name(required=True),
    "b": keypoint_name(required=True),
    "threshold": number(required=True, unit="px, or mm with mm_per_px"),
    "camera_a": identifier(),
    "camera_b": identifier(),
    "mm_per_px": number(strict=True),
    **FILTER,
}

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "speed_above",
        SpeedAbove,
        "A keypoint (default `body_center`) moves faster than `THRESHOLD` px/s (mm/s with "
        "`MM_PER_PX`), measured as its displacement over `WINDOW_S` (default 0.2 s).",
        _SPEED_PARAMETERS,
    ),
    TriggerKind(
        "speed_below",
        SpeedBelow,
        "The same speed, known and below `THRESHOLD`.",
        _SPEED_PARAMETERS,
    ),
    TriggerKind(
        "freezing",
        Freezing,
        "The speed has stayed below `THRESHOLD` for `DURATION_S` seconds.",
        {**_SPEED_PARAMETERS, "duration_s": number(required=True, unit=SECONDS)},
    ),
    TriggerKind(
        "distance_above",
        DistanceAbove,
        "Keypoints `A` and `B` are further apart than `THRESHOLD` px (mm with `MM_PER_PX`); "
        "`CAMERA_A`/`CAMERA_B` take them from two cameras.",
        _DISTANCE_PARAMETERS,
    ),
    TriggerKind(
        "distance_below",
        DistanceBelow,
        "Keypoints `A` and `B` are closer than `THRESHOLD`.",
        _DISTANCE_PARAMETERS,
    ),
)
