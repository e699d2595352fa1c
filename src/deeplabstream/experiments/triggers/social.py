"""Several animals: any trigger for one chosen animal, and triggers on two animals together.

Its design: docs/experiments-internals.md (`experiments.triggers.social`).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Unpack

from deeplabstream.experiments.observation import (
    FilteredPoint,
    FilterOptions,
    KeypointFilter,
    Observation,
)
from deeplabstream.experiments.triggers.animals import (
    AnyAnimal,
    EachAnimal,
    ForAnimal,
    check_confidence,
)
from deeplabstream.experiments.triggers.base import (
    LossHold,
    Trigger,
    check_number,
)
from deeplabstream.experiments.triggers.geometry import Line, Shape
from deeplabstream.experiments.triggers.kinds import (
    FILTER,
    MAX_ANIMAL_NUMBER,
    SECONDS,
    TriggerKind,
    keypoint_name,
    keypoint_names,
    number,
    trigger_parameter,
)
from deeplabstream.experiments.triggers.motion import WindowSpeed

Point = tuple[float, float]

# The one-animal views live in experiments.triggers.animals; re-exported here, where they were.
__all__ = [
    "AnimalDistance",
    "AnyAnimal",
    "Approach",
    "Contact",
    "EachAnimal",
    "Following",
    "ForAnimal",
    "require_identity_confidence",
]


def _check_animals(animals: Sequence[int]) -> tuple[int, int]:
    """``animals`` as two different animal numbers >= 1, or ValueError saying what is allowed."""
    try:
        a, b = animals
    except (TypeError, ValueError):
        raise ValueError(f"animals must name two animals 'A,B', not {animals!r}") from None
    for value in (a, b):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"animals must be two whole numbers >= 1 (animals are numbered from 1), not "
                f"{animals!r}"
            )
    if a == b:
        raise ValueError(f"animals must be two different animals, not {a} and {b}")
    return a, b


def _check_pair(name: str, names: Sequence[str]) -> tuple[str, str]:
    """Two keypoint names (of the first animal, of the second), or ValueError."""
    try:
        first, second = names
    except (TypeError, ValueError):
        raise ValueError(f"{name} must name two keypoints 'A,B', not {names!r}") from None
    return str(first), str(second)


class _TwoAnimals(Trigger):
    """Shared parts of the two-animal triggers: the animals, a filter per animal, their views."""

    _pair: tuple[Point, Point] | None

    def __init__(
        self,
        animals: Sequence[int],
        camera: str | None,
        filtering: FilterOptions,
    ) -> None:
        super().__init__(camera)
        self.animals = _check_animals(animals)
        self.filters = (KeypointFilter(**filtering), KeypointFilter(**filtering))
        self.keypoint_filters = self.filters
        # A short loss of either animal's keypoints keeps the state (policy "hold": the filters
        # bridge it with the last positions instead).
        first = self.filters[0]
        self.loss_hold: LossHold | None = LossHold(
            first.hold_s if first.policy == "missing" else 0.0
        )
        self.min_identity_confidence = 0.0

    def require_identity_confidence(self, minimum: float) -> None:
        """See an animal as missing while its identity confidence is below ``minimum``."""
        self.min_identity_confidence = check_confidence(minimum)

    def animals_read(self) -> tuple[int, ...]:
        """Return the two animals."""
        return self.animals

    def _views(self, obs: Observation) -> tuple[Observation, Observation]:
        """Return the frame seen as each animal; ValueError when the model lacks one."""
        least = self.min_identity_confidence
        try:
            return obs.for_animal(self.animals[0], least), obs.for_animal(self.animals[1], least)
        except ValueError as error:
            raise ValueError(f"{self._who()}: {error}") from None

    def _lookup(self, view: Observation, which: int, name: str) -> FilteredPoint | None:
        return self.filters[which].lookup(view, name)

    def _pair_keypoints(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return the keypoints of the first animal and of the second the state needs seen."""
        raise NotImplementedError

    def _doubtful(self, obs: Observation) -> bool:
        """Whether either animal's identity confidence is below the minimum asked for."""
        least = self.min_identity_confidence
        return least > 0 and not all(
            obs.identity_confidence_of(number) >= least for number in self.animals
        )

    def _bridged(self, obs: Observation) -> bool:
        """As every trigger's, but a doubtful identity is decided at once, never bridged."""
        if self._doubtful(obs):
            self.end_hold()
        return super()._bridged(obs)

    def _inputs_seen(self, obs: Observation) -> bool:
        """Whether the keypoints of both animals the state needs are seen (for the hold)."""
        views = self._views(obs)
        return all(
            self._lookup(views[which], which, name) is not None
            for which, names in enumerate(self._pair_keypoints())
            for name in names
        )

    def describe(self) -> dict[str, Any]:
        """Return the parameters, the likelihood policy's (and the identity confidence) included."""
        described = {**super().describe(), **self.filters[0].describe()}
        if self.min_identity_confidence:
            described["min_identity_confidence"] = self.min_identity_confidence
        return described

    def _animals_param(self) -> dict[str, Any]:
        return {"animals": f"{self.animals[0]},{self.animals[1]}"}

    def shapes(self) -> list[Shape]:
        """Return the segment between the two points measured at the last update.

        The two keypoints (``distance``, ``approach``), the follower's head and the leader's
        tail (``following``), the closest pair of keypoints (``contact``); none while unseen.
        """
        return _pair_line(self._pair)

    def _who(self) -> str:
        return f"trigger {self.kind!r} (animals {self.animals[0]},{self.animals[1]})"


def require_identity_confidence(trigger: Trigger, minimum: float) -> None:
    """Have a social trigger see an animal as missing while its identity confidence is lower.

    ValueError for a trigger that does not read two animals (wrap one-animal triggers in
    :class:`ForAnimal` instead).
    """
    if not isinstance(trigger, _TwoAnimals):
        raise ValueError(
            f"min_identity_confidence is for triggers that read animals, not {trigger.kind!r}"
        )
    trigger.require_identity_confidence(minimum)


def _gap(p: Point, q: Point) -> float:
    return math.hypot(p[0] - q[0], p[1] - q[1])


def _pair_line(pair: tuple[Point, Point] | None) -> list[Shape]:
    if pair is None:
        return []
    (x0, y0), (x1, y1) = pair
    return [Line(x0, y0, x1, y1)]


class _KeypointPair(_TwoAnimals):
    """Shared parts of the triggers on one keypoint of each animal (``distance``, ``approach``)."""

    keypoints: tuple[str, str]

    def _pair_keypoints(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return the keypoint of each animal."""
        return (self.keypoints[0],), (self.keypoints[1],)

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoint of each animal."""
        return tuple(dict.fromkeys(self.keypoints))


class AnimalDistance(_KeypointPair):
    """Two animals' keypoints closer than ``below_px`` (or further than ``above_px``), hysteresis.

    Parameters
    ----------
    below_px
        True once the distance is below this (px); give this or ``above_px``.
    above_px
        True once the distance is above this (px) instead.
    release_px
        Hysteresis: once true, true until the distance is above ``release_px`` (with
        ``below_px``; ``release_px >= below_px``) or below it (with ``above_px``;
        ``release_px <= above_px``). Default: no hysteresis (the threshold itself).
    animals
        The two animals (numbered from 1), default 1 and 2.
    keypoints
        The keypoint of the first animal and that of the second (default nose, nose).
    camera, **filtering
        See :class:`~experiments.triggers.base.KeypointTrigger` (per animal, measured positions).

    Off while either keypoint is not seen; the hysteresis then starts afresh.
    """

    kind = "distance"

    def __init__(
        self,
        below_px: float | None = None,
        above_px: float | None = None,
        release_px: float | None = None,
        animals: Sequence[int] = (1, 2),
        keypoints: Sequence[str] = ("nose", "nose"),
        camera: str | None = None,
        **filtering: Unpack[FilterOptions],
    ) -> None:
        super().__init__(animals, camera, filtering)
        if (below_px is None) == (above_px is None):
            raise ValueError(
                "give one of below_px (true while closer) or above_px (true while further), "
                f"not {'both' if below_px is not None else 'neither'}"
            )
        self.below_px = None if below_px is None else check_number("below_px", below_px, 0.0)
        self.above_px = None if above_px is None else check_number("above_px", above_px, 0.0)
        threshold = self.below_px if self.below_px is not None else self.above_px
        assert threshold is not None
        self.threshold = threshold
        self.release_px = (
            threshold if release_px is None else check_number("release_px", release_px, 0.0)
        )
        if self.below_px is not None and self.release_px < self.below_px:
            raise ValueError(
                f"release_px = {release_px!r} must be >= below_px = {below_px!r} (it turns off "
                "further away than it turns on)"
            )
        if self.above_px is not None and self.release_px > self.above_px:
            raise ValueError(
                f"release_px = {release_px!r} must be <= above_px = {above_px!r} (it turns off "
                "closer than it turns on)"
            )
        self.keypoints = _check_pair("keypoints", keypoints)
        self.forget()

    def forget(self) -> None:
        self.last_distance: float | None = None
        self._pair = None

    def step(self, obs: Observation) -> bool:
        view_a, view_b = self._views(obs)
        pa = self._lookup(view_a, 0, self.keypoints[0])
        pb = self._lookup(view_b, 1, self.keypoints[1])
        if pa is None or pb is None:
            self.last_distance, self._pair = None, None
            return False
        self._pair = ((pa.x, pa.y), (pb.x, pb.y))
        distance = _gap(*self._pair)
        self.last_distance = distance
        closer = self.below_px is not None
        if self.state:  # on: stay on until beyond the release distance
            return distance <= self.release_px if closer else distance >= self.release_px
        return distance < self.threshold if closer else distance > self.threshold

    def measurement(self) -> str:
        """Return the distance at the last update."""
        return "" if self.last_distance is None else f"distance {self.last_distance:.1f} px"

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self._animals_param()
        params["keypoints"] = ",".join(self.keypoints)
        if self.below_px is not None:
            params["below_px"] = self.below_px
        else:
            params["above_px"] = self.above_px
        params["release_px"] = self.release_px
        return params


class ClosingSpeed:
    """How fast a distance shrinks: ``(d(t - window_s) - d(t)) / window_s``, px/s.

    As :class:`~experiments.triggers.motion.WindowSpeed` does for positions: ``d(t - window_s)``
    is interpolated linearly between the two observations around it, so the window is the same
    length in seconds whatever frames were skipped; until the history covers a whole window, the
    change since the first observation divided by the time since it. Negative while the
    distance grows.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = check_number("window_s", window_s, 0.0, strict=True)
        self._samples: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        """Forget the history (a dropout, a new trial)."""
        self._samples.clear()

    def add(self, t: float, distance: float) -> float | None:
        """Add the distance at frame time ``t``; return the closing speed (None: unknown yet)."""
        samples = self._samples
        if samples and t < samples[-1][0]:
            self.reset()  # time went backwards: a new replay
        if samples and t == samples[-1][0]:
            samples[-1] = (t, distance)
        else:
            samples.append((t, distance))
        start = t - self.window_s
        while len(samples) >= 2 and samples[1][0] <= start:
            samples.popleft()
        first_t, first_d = samples[0]
        if t <= first_t:
            return None
        if start < first_t:  # history shorter than the window
            return (first_d - distance) / (t - first_t)
        return (self._distance_at(start) - distance) / self.window_s

    def _distance_at(self, t: float) -> float:
        samples = self._samples
        after = bisect.bisect_left(samples, t, key=_sample_time)
        if after == 0:
            return samples[0][1]
        (t0, d0), (t1, d1) = samples[after - 1], samples[after]
        return d0 + (t - t0) / (t1 - t0) * (d1 - d0)


def _sample_time(sample: tuple[float, float]) -> float:
    return sample[0]


class Approach(_KeypointPair):
    """The first animal closing in on the second: their distance shrinks faster than ``speed``.

    Parameters
    ----------
    speed
        Closing speed in px/s (> 0): how fast the distance between the two keypoints shrinks,
        over the last ``window_s`` seconds (:class:`ClosingSpeed`). The distance is shared, so
        the second animal walking backwards into the first closes it too.
    window_s
        The window, seconds of frame time (> 0, default 0.2).
    within_px
        Only while the keypoints are no further apart than this (px); None: at any distance.
    animals, keypoints, camera, **filtering
        As :class:`AnimalDistance`.

    Off while either keypoint is not seen; the history then restarts (two new observations are
    needed). Held keypoints (policy ``"hold"``) add no sample and keep the state.
    """

    kind = "approach"

    def __init__(
        self,
        speed: float,
        window_s: float = 0.2,
        within_px: float | None = None,
        animals: Sequence[int] = (1, 2),
        keypoints: Sequence[str] = ("nose", "nose"),
        camera: str | None = None,
        **filtering: Unpack[FilterOptions],
    ) -> None:
        super().__init__(animals, camera, filtering)
        self.speed = check_number("speed", speed, 0.0, strict=True)
        self.within_px = None if within_px is None else check_number("within_px", within_px, 0.0)
        self.keypoints = _check_pair("keypoints", keypoints)
        self._closing = ClosingSpeed(window_s)
        self.forget()

    @property
    def window_s(self) -> float:
        """The window in seconds."""
        return self._closing.window_s

    def forget(self) -> None:
        self._closing.reset()
        self.last_distance: float | None = None
        self.last_closing_speed: float | None = None
        self._pair = None

    def step(self, obs: Observation) -> bool:
        view_a, view_b = self._views(obs)
        pa = self._lookup(view_a, 0, self.keypoints[0])
        pb = self._lookup(view_b, 1, self.keypoints[1])
        if pa is None or pb is None:
            self.forget()
            return False
        self._pair = ((pa.x, pa.y), (pb.x, pb.y))
        if pa.held or pb.held:
            return self.state
        distance = _gap(*self._pair)
        closing = self._closing.add(obs.time_s, distance)
        self.last_distance, self.last_closing_speed = distance, closing
        if closing is None or not closing > self.speed:
            return False
        return self.within_px is None or distance <= self.within_px

    def measurement(self) -> str:
        """Return the closing speed and the distance at the last update."""
        if self.last_closing_speed is None or self.last_distance is None:
            return ""
        return f"closing {self.last_closing_speed:.1f} px/s at {self.last_distance:.1f} px"

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self._animals_param()
        params.update(keypoints=",".join(self.keypoints), speed=self.speed, window_s=self.window_s)
        if self.within_px is not None:
            params["within_px"] = self.within_px
        return params


def _axis(body: tuple[FilteredPoint, FilteredPoint]) -> Point:
    """Return the body axis, tail -> head, of (head, tail)."""
    head, tail = body
    return (head.x - tail.x, head.y - tail.y)


def _angle_between_deg(u: Point, v: Point) -> float | None:
    """Unsigned angle between two vectors, degrees in [0, 180]; None for a zero vector."""
    if u == (0.0, 0.0) or v == (0.0, 0.0):
        return None
    return abs(math.degrees(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1])))


class Following(_TwoAnimals):
    """The first animal following the second: close behind it, same heading, both moving.

    Each observation the condition holds when all of these do:

    * the first animal's ``head`` keypoint is within ``distance_px`` of the second's ``tail``;
    * both animals' headings agree within ``angle_deg``. An animal's heading is its body axis,
      from its ``tail`` keypoint to its ``head`` keypoint (not its direction of motion, which is
      unknown while it stands and noisy at low speed);
    * both move faster than ``min_speed`` px/s: the windowed speed (over ``window_s``,
      :class:`~experiments.triggers.motion.WindowSpeed`) of the midpoint of its head and tail.

    The trigger is true once the condition has held continuously for ``duration_s`` seconds of
    frame time (from the first observation it held).

    Parameters
    ----------
    distance_px
        How close the follower's head must be to the leader's tail (px, required).
    angle_deg
        Largest difference of the two headings, degrees in (0, 180] (default 45).
    duration_s
        How long the condition must hold (seconds of frame time, >= 0, default 1).
    min_speed
        Both animals move faster than this (px/s, >= 0, default 20).
    window_s
        The speed window (seconds of frame time, > 0, default 0.2).
    head, tail
        Keypoint names (default the simulated mouse's ``nose`` and ``tail_base``).
    animals
        The follower, then the leader (default 1 follows 2).
    camera, **filtering
        As :class:`AnimalDistance`.

    Off, with its timer and speed histories restarted, while any of the four keypoints is not
    seen. Held keypoints (policy ``"hold"``) keep the state and the timer as they are.
    """

    kind = "following"

    def __init__(
        self,
        distance_px: float,
        angle_deg: float = 45.0,
        duration_s: float = 1.0,
        min_speed: float = 20.0,
        window_s: float = 0.2,
        head: str = "nose",
        tail: str = "tail_base",
        animals: Sequence[int] = (1, 2),
        camera: str | None = None,
        **filtering: Unpack[FilterOptions],
    ) -> None:
        super().__init__(animals, camera, filtering)
        self.distance_px = check_number("distance_px", distance_px, 0.0)
        self.angle_deg = check_number("angle_deg", angle_deg, 0.0, strict=True)
        if self.angle_deg > 180.0:
            raise ValueError(f"angle_deg must be <= 180, not {angle_deg!r}")
        self.duration_s = check_number("duration_s", duration_s, 0.0)
        self.min_speed = check_number("min_speed", min_speed, 0.0)
        self.head, self.tail = head, tail
        self._speeds = (WindowSpeed(window_s), WindowSpeed(window_s))
        self.forget()

    @property
    def window_s(self) -> float:
        """The speed window in seconds."""
        return self._speeds[0].window_s

    @property
    def following_since(self) -> float | None:
        """When the current run of the condition began (frame time); None when it does not hold."""
        return self._since

    def forget(self) -> None:
        for speed in self._speeds:
            speed.reset()
        self._since: float | None = None
        self.last_speeds: tuple[float | None, float | None] = (None, None)
        self.last_angle_deg: float | None = None
        self._pair = None

    def _pair_keypoints(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return the head and tail of both animals."""
        return (self.head, self.tail), (self.head, self.tail)

    def _body(self, view: Observation, which: int) -> tuple[FilteredPoint, FilteredPoint] | None:
        """Return an animal's head and tail, or None when either is not seen."""
        head, tail = self._lookup(view, which, self.head), self._lookup(view, which, self.tail)
        return None if head is None or tail is None else (head, tail)

    def step(self, obs: Observation) -> bool:
        t = obs.time_s
        view_a, view_b = self._views(obs)
        body_a, body_b = self._body(view_a, 0), self._body(view_b, 1)
        if body_a is None or body_b is None:
            self.forget()
            return False
        self._pair = ((body_a[0].x, body_a[0].y), (body_b[1].x, body_b[1].y))
        if any(point.held for point in (*body_a, *body_b)):
            return self.state
        speeds = (self._add_speed(0, t, body_a), self._add_speed(1, t, body_b))
        self.last_speeds = speeds
        self.last_angle_deg = _angle_between_deg(_axis(body_a), _axis(body_b))
        holds = (
            _gap(*self._pair) <= self.distance_px
            and self.last_angle_deg is not None
            and self.last_angle_deg <= self.angle_deg
            and all(speed is not None and speed > self.min_speed for speed in speeds)
        )
        if not holds:
            self._since = None
            return False
        if self._since is None or t < self._since:
            self._since = t
        return t - self._since >= self.duration_s

    def _add_speed(
        self, which: int, t: float, body: tuple[FilteredPoint, FilteredPoint]
    ) -> float | None:
        """Add the body's midpoint to that animal's speed window; return its speed (px/s)."""
        head, tail = body
        return self._speeds[which].add(t, 0.5 * (head.x + tail.x), 0.5 * (head.y + tail.y))

    def measurement(self) -> str:
        """Return the gap, the heading difference and the two speeds at the last update."""
        if self._pair is None or self.last_angle_deg is None:
            return ""
        speeds = "/".join("?" if s is None else f"{s:.0f}" for s in self.last_speeds)
        return (
            f"gap {_gap(*self._pair):.1f} px, headings {self.last_angle_deg:.0f} deg apart, "
            f"speeds {speeds} px/s"
        )

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the head and tail keypoints (of both animals)."""
        return (self.head, self.tail)

    def params(self) -> dict[str, Any]:
        return {
            **self._animals_param(),
            "distance_px": self.distance_px,
            "angle_deg": self.angle_deg,
            "duration_s": self.duration_s,
            "min_speed": self.min_speed,
            "window_s": self.window_s,
            "head": self.head,
            "tail": self.tail,
        }


class Contact(_TwoAnimals):
    """Any keypoint of the first animal within ``radius_px`` of any keypoint of the second.

    Parameters
    ----------
    radius_px
        Largest distance that counts as contact (px, >= 0, default 10).
    keypoints_a, keypoints_b
        The keypoints of each animal that count (default: all the model has).
    animals, camera, **filtering
        As :class:`AnimalDistance`.

    Keypoints not seen are left out: off when no pair of seen keypoints is close enough, in
    particular while either animal is not seen at all.
    """

    kind = "contact"

    def __init__(
        self,
        radius_px: float = 10.0,
        keypoints_a: Sequence[str] | None = None,
        keypoints_b: Sequence[str] | None = None,
        animals: Sequence[int] = (1, 2),
        camera: str | None = None,
        **filtering: Unpack[FilterOptions],
    ) -> None:
        super().__init__(animals, camera, filtering)
        self.radius_px = check_number("radius_px", radius_px, 0.0)
        self.keypoints_a = None if keypoints_a is None else _names("keypoints_a", keypoints_a)
        self.keypoints_b = None if keypoints_b is None else _names("keypoints_b", keypoints_b)
        self.forget()

    def forget(self) -> None:
        self.last_gap: float | None = None
        self._pair = None

    def _inputs_seen(self, obs: Observation) -> bool:
        """Whether some keypoint of each animal is seen (for the hold)."""
        view_a, view_b = self._views(obs)
        return bool(self._seen(view_a, 0, self.keypoints_a)) and bool(
            self._seen(view_b, 1, self.keypoints_b)
        )

    def _seen(self, view: Observation, which: int, names: tuple[str, ...] | None) -> list[Point]:
        found = (self._lookup(view, which, name) for name in names or view.names)
        return [(point.x, point.y) for point in found if point is not None]

    def step(self, obs: Observation) -> bool:
        view_a, view_b = self._views(obs)
        points_a = self._seen(view_a, 0, self.keypoints_a)
        points_b = self._seen(view_b, 1, self.keypoints_b)
        pairs = [(p, q) for p in points_a for q in points_b]
        if not pairs:
            self.forget()
            return False
        self._pair = min(pairs, key=lambda pair: _gap(*pair))
        self.last_gap = _gap(*self._pair)
        return self.last_gap <= self.radius_px

    def measurement(self) -> str:
        """Return the smallest gap between the two animals' keypoints at the last update."""
        return "" if self.last_gap is None else f"closest {self.last_gap:.1f} px"

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the keypoints named for either animal (none named: every one the model has)."""
        return tuple(dict.fromkeys((*(self.keypoints_a or ()), *(self.keypoints_b or ()))))

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {**self._animals_param(), "radius_px": self.radius_px}
        if self.keypoints_a is not None:
            params["keypoints_a"] = ",".join(self.keypoints_a)
        if self.keypoints_b is not None:
            params["keypoints_b"] = ",".join(self.keypoints_b)
        return params


def _names(name: str, names: Sequence[str]) -> tuple[str, ...]:
    listed = tuple(str(n) for n in names)
    if not listed or not all(listed):
        raise ValueError(f"{name} must list keypoint names 'A,B,...', not {names!r}")
    return listed


# --- parameters ---------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [word.strip() for word in text.split(",")]


def _animals_parse(text: str) -> tuple[int, int]:
    words = _split(text)
    if len(words) != 2 or not all(word.isdigit() for word in words):
        raise ValueError
    a, b = int(words[0]), int(words[1])
    if not (1 <= a <= MAX_ANIMAL_NUMBER and 1 <= b <= MAX_ANIMAL_NUMBER) or a == b:
        raise ValueError
    return a, b


def _pair_parse(text: str) -> tuple[str, str]:
    words = _split(text)
    if len(words) != 2 or not all(words) or any(" " in word for word in words):
        raise ValueError
    return words[0], words[1]


def _list_parse(text: str) -> tuple[str, ...]:
    words = _split(text)
    if not all(words) or any(" " in word for word in words):
        raise ValueError
    return tuple(words)


ANIMALS = trigger_parameter(
    _animals_parse,
    f"two different animal numbers 'A,B' from 1 to {MAX_ANIMAL_NUMBER} (default 1,2)",
)
PIXELS = "px"
# Measured positions of several animals: an ensemble (and so its spread and smoothing) is of
# single-animal models, and forward prediction follows animal 1 only.
_SOCIAL_FILTER = {
    key: param
    for key, param in FILTER.items()
    if key not in ("predicted", "smoothed", "max_ensemble_std")
}
# Forward prediction follows animal 1 only: the social kinds read measured positions.
_PAIR = {
    "animals": ANIMALS,
    "keypoints": keypoint_names(
        _pair_parse, "two keypoint names 'A,B', of the first animal and the second"
    ),
}

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "distance",
        AnimalDistance,
        "Two animals (`ANIMALS`, default 1,2): keypoint `KEYPOINTS` (default nose,nose) of the "
        "first closer than `BELOW_PX` to that of the second (or further than `ABOVE_PX`); once "
        "true, true until beyond `RELEASE_PX` (hysteresis).",
        {
            **_PAIR,
            "below_px": number(unit=PIXELS),
            "above_px": number(unit=PIXELS),
            "release_px": number(unit=PIXELS),
            **_SOCIAL_FILTER,
        },
        per_animal=False,
    ),
    TriggerKind(
        "approach",
        Approach,
        "The distance between the two animals' `KEYPOINTS` shrinks faster than `SPEED` px/s "
        "over `WINDOW_S` (default 0.2 s), optionally only within `WITHIN_PX`.",
        {
            **_PAIR,
            "speed": number(required=True, strict=True, unit="px/s"),
            "window_s": number(strict=True, unit=SECONDS),
            "within_px": number(unit=PIXELS),
            **_SOCIAL_FILTER,
        },
        per_animal=False,
    ),
    TriggerKind(
        "following",
        Following,
        "The first of `ANIMALS` follows the second: its `HEAD` (nose) within `DISTANCE_PX` of "
        "the other's `TAIL` (tail_base), body axes within `ANGLE_DEG` (45), both faster than "
        "`MIN_SPEED` (20 px/s), for `DURATION_S` (1 s).",
        {
            "animals": ANIMALS,
            "distance_px": number(required=True, unit=PIXELS),
            "angle_deg": number(strict=True, maximum=180.0, unit="degrees"),
            "duration_s": number(unit=SECONDS),
            "min_speed": number(unit="px/s"),
            "window_s": number(strict=True, unit=SECONDS),
            "head": keypoint_name(),
            "tail": keypoint_name(),
            **_SOCIAL_FILTER,
        },
        per_animal=False,
    ),
    TriggerKind(
        "contact",
        Contact,
        "Any of `KEYPOINTS_A` (default all) of the first of `ANIMALS` within `RADIUS_PX` "
        "(default 10) of any of `KEYPOINTS_B` (default all) of the second.",
        {
            "animals": ANIMALS,
            "radius_px": number(unit=PIXELS),
            "keypoints_a": keypoint_names(_list_parse, "keypoint names 'A,B,...' (default all)"),
            "keypoints_b": keypoint_names(_list_parse, "keypoint names 'A,B,...' (default all)"),
            **_SOCIAL_FILTER,
        },
        per_animal=False,
    ),
)
