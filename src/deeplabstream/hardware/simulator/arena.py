"""A simulated open-field arena seen from above: a moving rodent, its true keypoints, and frames.

Pixels: x right, y down; heading ``h`` faces ``(cos h, sin h)``, the animal's left is
``(sin h, -cos h)``. docs/cameras.md, "The simulated arena".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Literal, NamedTuple, Protocol

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_ear",
    "right_ear",
    "neck",
    "body_center",
    "tail_base",
)
"""The simulated keypoints, in the order of the keypoint axis of every keypoint array."""

BEHAVIOUR_NAMES: tuple[str, ...] = ("walking", "freezing", "grooming", "rearing")
"""The behaviours the random walk can be labelled with (``ArenaParams.behaviours``)."""

MotionKind = Literal["random", "waypoints"]
Waypoint = tuple[int, float, float]
"""``(frame, x, y)``: where the body centre is at that frame."""

_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyPlan:
    """The animal's proportions, in body lengths; head parts from the neck along the head."""

    neck_ahead: float = 0.20
    nose_ahead_of_neck: float = 0.28
    tail_base_behind: float = 0.52
    ear_ahead_of_neck: float = 0.03
    ear_side: float = 0.12
    ear_radius: float = 0.07
    body_ellipse_center: float = -0.12  # the trunk: a long ellipse from the tail base to the neck
    body_half_length: float = 0.44
    body_half_width: float = 0.19
    head_ellipse_center: float = 0.11  # from the neck; reaches 0.03 beyond the nose
    head_half_length: float = 0.20
    head_half_width: float = 0.11
    tail_length: float = 0.75
    reach: float = 0.58  # radius around the body centre that holds everything but the tail

    @property
    def nose_ahead(self) -> float:
        """Distance of the nose ahead of the body centre when the head is straight."""
        return self.neck_ahead + self.nose_ahead_of_neck


BODY_PLAN = BodyPlan()


@dataclass(frozen=True)
class MouseBehaviour:
    """Constants of the random walk (walking, runs, freezes), in body lengths and seconds.

    The random processes are discretised exactly: the same statistics at any frame rate.
    """

    walk_speed: tuple[float, float] = (0.5, 3.0)  # BL/s, drawn log-uniformly per stretch
    run_speed: tuple[float, float] = (3.0, 6.0)  # BL/s
    walk_bout_mean: float = 5.0  # s; a walk ends in a freeze or a run
    walk_stretch_mean: float = 1.5  # s between changes of the walking target speed
    run_after_walk_probability: float = 0.25  # otherwise the walk ends in a freeze
    run_duration: tuple[float, float] = (0.4, 1.5)  # s
    freeze_duration: tuple[float, float] = (0.5, 3.0)  # s
    speed_time_constant: float = 0.3  # s; how quickly speed follows its target
    stop_time_constant: float = 0.08  # s; a freeze stops the animal quickly
    speed_jitter: float = 0.15  # relative standard deviation of speed within a stretch
    speed_jitter_time_constant: float = 0.4  # s
    turn_rate_std: float = 1.2  # rad/s: stationary spread of the random angular velocity
    turn_rate_time_constant: float = 0.5  # s: how long a turn lasts
    run_turn_factor: float = 0.4  # runs are straighter
    wall_zone: float = 0.6  # BL: walls are felt when the look-ahead point is this close
    look_ahead: float = 0.3  # BL, plus look_ahead_time of travel
    look_ahead_time: float = 0.4  # s
    wall_turn_time: float = 0.3  # s to turn to the wall-avoiding direction
    wall_push_gain: float = 2.0  # how far the push bends the wanted direction away from a wall
    wall_push_along: float = 0.25  # push when running along a wall (1 more when heading into it)
    wall_slowdown: float = 0.8  # fraction of speed lost when heading straight into a near wall
    max_turn_rate: float = 6.0  # rad/s
    head_turn_gain: float = 0.3  # s: the head looks into a turn by gain * angular velocity
    max_head_turn: float = 0.5  # rad
    tail_bend_gain: float = 0.5  # s: the tail trails a turn
    max_tail_bend: float = 1.2  # rad over the tail's length
    posture_time_constant: float = 0.15  # s, for head turn and tail bend


MOUSE = MouseBehaviour()


@dataclass(frozen=True)
class BehaviourBouts:
    """Constants of the labelled behaviours (:class:`BehaviourMotion`), in seconds, rad and BL.

    Bout durations are in seconds, so the statistics are the same at any frame rate.
    """

    walking_duration: tuple[float, float] = (2.0, 8.0)
    freezing_duration: tuple[float, float] = (1.0, 5.0)  # 3 in 4 freezes last over 2 s
    grooming_duration: tuple[float, float] = (1.5, 5.0)
    rearing_duration: tuple[float, float] = (0.8, 3.0)
    walking_after_other: float = 0.5  # after a still behaviour, walk (if enabled) this often
    run_probability: float = 0.25  # a change of walking speed is a run this often
    stop_lead: float = 0.25  # s: a walk before a still behaviour slows to a stop this long
    grooming_ramp: float = 0.3  # s to start and to end the head's strokes
    grooming_frequency: tuple[float, float] = (3.0, 6.0)  # Hz of the head's strokes, per bout
    grooming_amplitude: tuple[float, float] = (0.25, 0.45)  # rad of head turn, per bout
    grooming_jitter: float = 0.3  # relative standard deviation of the stroke amplitude
    grooming_jitter_time_constant: float = 0.25  # s
    grooming_retract: tuple[float, float] = (0.35, 0.6)  # deepest nose retraction, per bout
    grooming_retract_frequency: tuple[float, float] = (1.0, 2.0)  # Hz, per bout
    rearing_stretch: tuple[float, float] = (0.55, 0.70)  # shortest stretch, per bout
    rearing_ramp: float = 0.4  # s to rise and to come down (at most 0.4 of a bout each)

    def duration(self, behaviour: str) -> tuple[float, float]:
        """Return the range of a behaviour's bout durations, in seconds."""
        durations: tuple[float, float] = getattr(self, f"{behaviour}_duration")
        return durations


BOUTS = BehaviourBouts()


@dataclass(frozen=True)
class ArenaParams:
    """Everything the simulation and rendering depend on; equal params give identical output.

    ``motion`` ``"waypoints"``: the body centre follows ``waypoints`` ``(frame, x, y)`` (linear, not
    checked against the walls). ``body_length`` None: 0.2 x the smaller frame side. ``behaviours``
    (:data:`BEHAVIOUR_NAMES`) make the walk labelled bouts.
    """

    width: int = 640
    height: int = 480
    framerate: float = 30.0
    seed: int = 0
    color: bool = True
    motion: MotionKind = "random"
    waypoints: tuple[Waypoint, ...] = ()
    noise: float = 4.0
    lighting_drift: float = 0.08
    body_length: float | None = None
    behaviours: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject values the simulation cannot honour."""
        if self.width < 16 or self.height < 16:
            raise ValueError(f"frame {self.width}x{self.height} is too small (at least 16x16)")
        if not self.framerate > 0:
            raise ValueError(f"framerate must be positive, not {self.framerate}")
        if self.noise < 0 or not 0 <= self.lighting_drift < 1:
            raise ValueError("noise must be >= 0 and lighting_drift in [0, 1)")
        self._check_waypoints()
        self._check_body_fits()
        self._check_behaviours()

    def _check_waypoints(self) -> None:
        if self.motion == "waypoints" and not self.waypoints:
            raise ValueError("motion 'waypoints' needs at least one waypoint")
        frames = [frame for frame, _, _ in self.waypoints]
        if any(later <= earlier for earlier, later in itertools.pairwise(frames)):
            raise ValueError(f"waypoint frames must increase strictly, got {frames}")

    def _check_behaviours(self) -> None:
        unknown = [name for name in self.behaviours if name not in BEHAVIOUR_NAMES]
        if unknown:
            raise ValueError(
                f"unknown behaviour(s) {', '.join(map(str, unknown))}; valid: "
                f"{', '.join(BEHAVIOUR_NAMES)}"
            )
        if len(set(self.behaviours)) != len(self.behaviours):
            raise ValueError(f"each behaviour may be named once, got {', '.join(self.behaviours)}")
        if self.behaviours and self.motion != "random":
            raise ValueError("behaviours need the random motion, not waypoints")

    @property
    def enabled_behaviours(self) -> tuple[str, ...]:
        """``behaviours`` in the order of :data:`BEHAVIOUR_NAMES` (so the order given is moot)."""
        return tuple(name for name in BEHAVIOUR_NAMES if name in self.behaviours)

    def _check_body_fits(self) -> None:
        x_min, y_min, x_max, y_max = self.body_center_limits()
        if not self.body_length_px > 0 or x_min > x_max or y_min > y_max:
            raise ValueError(
                f"a body length of {self.body_length_px:g} px does not fit in the "
                f"{self.width}x{self.height} arena"
            )

    @property
    def body_length_px(self) -> float:
        """Nose to tail base in pixels."""
        if self.body_length is not None:
            return float(self.body_length)
        return 0.2 * min(self.width, self.height)

    @property
    def wall_margin_px(self) -> float:
        """Width of the wall band drawn around the floor."""
        return 0.04 * min(self.width, self.height)

    def arena_rect(self) -> tuple[float, float, float, float]:
        """Return the floor inside the walls as ``(x_min, y_min, x_max, y_max)`` in pixels."""
        margin = self.wall_margin_px
        return (margin, margin, self.width - 1 - margin, self.height - 1 - margin)

    def body_center_limits(self) -> tuple[float, float, float, float]:
        """Where the body centre may be so that the body stays on the floor (random walk)."""
        x_min, y_min, x_max, y_max = self.arena_rect()
        reach = BODY_PLAN.reach * self.body_length_px
        return (x_min + reach, y_min + reach, x_max - reach, y_max - reach)


class Pose(NamedTuple):
    """Where the animal is in one frame (pixels, radians).

    ``head_turn`` is relative to the body; ``stretch`` scales lengths along the body (rearing:
    0.55-0.7); ``head_retract`` draws the nose back (grooming). Both default, so arrays of the first
    five fields still describe an animal.
    """

    x: float
    y: float
    heading: float
    head_turn: float = 0.0
    tail_bend: float = 0.0
    stretch: float = 1.0
    head_retract: float = 0.0


POSE_WIDTH = len(Pose._fields)
"""Number of fields of a :class:`Pose`: the width of the pose arrays made here."""

_NEUTRAL_POSE = Pose(0.0, 0.0, 0.0)


def neutral_poses(n_frames: int) -> np.ndarray:
    """Shape (n_frames, :data:`POSE_WIDTH`): zeros but for the default fields (``stretch`` 1)."""
    return np.tile(np.asarray(_NEUTRAL_POSE, dtype=np.float64), (n_frames, 1))


# --------------------------------------------------------------------------------------------------
# Keypoints
# --------------------------------------------------------------------------------------------------


def keypoints_from_poses(poses: np.ndarray, body_length: float) -> np.ndarray:
    """Compute the keypoints (..., 6, 2) of poses (..., F), in :data:`KEYPOINT_NAMES` order.

    F is 5 (``stretch`` 1), 6 or 7; ``body_length`` is in pixels at ``stretch`` 1.
    """
    poses = np.asarray(poses, dtype=np.float64)
    plan, length = BODY_PLAN, body_length
    x, y, heading, head_turn = poses[..., 0], poses[..., 1], poses[..., 2], poses[..., 3]
    width = poses.shape[-1]
    # Scaling by a stretch of exactly 1 (or retracting by 0) changes no bit of the result.
    axis = length * poses[..., 5] if width > 5 else length  # body-axis length scale, pixels
    nose = plan.nose_ahead_of_neck * (1.0 - poses[..., 6]) if width > 6 else plan.nose_ahead_of_neck
    body_dx, body_dy = np.cos(heading), np.sin(heading)
    head_dx, head_dy = np.cos(heading + head_turn), np.sin(heading + head_turn)
    neck_x = x + plan.neck_ahead * axis * body_dx
    neck_y = y + plan.neck_ahead * axis * body_dy
    ear_x = neck_x + plan.ear_ahead_of_neck * axis * head_dx
    ear_y = neck_y + plan.ear_ahead_of_neck * axis * head_dy
    # The head's left is (sin, -cos) of its direction: see the module docstring.
    side_x, side_y = plan.ear_side * length * head_dy, -plan.ear_side * length * head_dx
    keypoints = np.empty((*poses.shape[:-1], len(KEYPOINT_NAMES), 2))
    keypoints[..., 0, 0] = neck_x + nose * axis * head_dx
    keypoints[..., 0, 1] = neck_y + nose * axis * head_dy
    keypoints[..., 1, 0], keypoints[..., 1, 1] = ear_x + side_x, ear_y + side_y
    keypoints[..., 2, 0], keypoints[..., 2, 1] = ear_x - side_x, ear_y - side_y
    keypoints[..., 3, 0], keypoints[..., 3, 1] = neck_x, neck_y
    keypoints[..., 4, 0], keypoints[..., 4, 1] = x, y
    keypoints[..., 5, 0] = x - plan.tail_base_behind * axis * body_dx
    keypoints[..., 5, 1] = y - plan.tail_base_behind * axis * body_dy
    return keypoints


def simulate_poses(params: ArenaParams, n_frames: int) -> np.ndarray:
    """Simulate the poses (n_frames, :data:`POSE_WIDTH`) a :class:`SimulatedArena` renders."""
    if params.motion == "waypoints":
        return WaypointMotion(params).poses(np.arange(n_frames))
    motion = BehaviourMotion(params) if params.behaviours else RandomWalkMotion(params)
    poses = np.empty((n_frames, POSE_WIDTH))
    for index in range(n_frames):
        poses[index] = motion.step()
    return poses


def simulate_behaviours(params: ArenaParams, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Poses and behaviour labels of frames from 0, as :class:`SimulatedArena` and the camera give.

    Raises ValueError when ``params.behaviours`` is empty.
    """
    if not params.behaviours:
        raise ValueError(
            f"simulate_behaviours needs params.behaviours (some of {', '.join(BEHAVIOUR_NAMES)})"
        )
    motion = BehaviourMotion(params)
    poses = np.empty((n_frames, POSE_WIDTH))
    labels: list[str] = []
    for index in range(n_frames):
        poses[index] = motion.step()
        labels.append(motion.behaviour)
    return poses, np.array(labels, dtype=f"<U{max(map(len, BEHAVIOUR_NAMES))}")


def simulate_keypoints(params: ArenaParams, n_frames: int) -> np.ndarray:
    """Ground-truth keypoints (n_frames, 6, 2) a :class:`SimulatedArena` delivers."""
    return keypoints_from_poses(simulate_poses(params, n_frames), params.body_length_px)


# --------------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------------


class Motion(Protocol):
    """A source of poses, one per frame from frame 0."""

    def step(self) -> Pose:
        """Return the pose of the next frame (frame 0 on the first call)."""
        ...


def make_motion(params: ArenaParams) -> Motion:
    """Make the motion model that ``params.motion`` (and ``params.behaviours``) name."""
    if params.motion == "waypoints":
        return WaypointMotion(params)
    if params.behaviours:
        return BehaviourMotion(params)
    return RandomWalkMotion(params)


class _RandomStream:
    """Random numbers drawn from a Generator in blocks: a numpy call per number would dominate."""

    _BLOCK = 4096

    def __init__(self, generator: np.random.Generator) -> None:
        self._generator = generator
        self._normals: list[float] = []
        self._uniforms: list[float] = []

    def normal(self) -> float:
        if not self._normals:
            self._normals = self._generator.standard_normal(self._BLOCK).tolist()
        return self._normals.pop()

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        if not self._uniforms:
            self._uniforms = self._generator.random(self._BLOCK).tolist()
        return low + (high - low) * self._uniforms.pop()

    def log_uniform(self, low: float, high: float) -> float:
        return math.exp(self.uniform(math.log(low), math.log(high)))

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.uniform())


def _decay(dt: float, time_constant: float) -> float:
    """Factor by which a first-order process forgets its state in one step (exact in ``dt``)."""
    return math.exp(-dt / time_constant)


def _wrap_angle(angle: float) -> float:
    return (angle + math.pi) % _TWO_PI - math.pi


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


class RandomWalkMotion:
    """A seeded random walk of a mouse (:class:`MouseBehaviour`); it follows the walls."""

    def __init__(self, params: ArenaParams, behaviour: MouseBehaviour = MOUSE) -> None:
        self._b = behaviour
        self._dt = 1.0 / params.framerate
        self._length = params.body_length_px
        self._limits = params.body_center_limits()
        self._random = _RandomStream(np.random.default_rng(params.seed))
        self._speed_decay = _decay(self._dt, behaviour.speed_time_constant)
        self._stop_decay = _decay(self._dt, behaviour.stop_time_constant)
        self._jitter_decay = _decay(self._dt, behaviour.speed_jitter_time_constant)
        self._turn_decay = _decay(self._dt, behaviour.turn_rate_time_constant)
        self._posture_decay = _decay(self._dt, behaviour.posture_time_constant)
        x_min, y_min, x_max, y_max = self._limits
        self._pose = Pose(
            x=self._random.uniform(0.75 * x_min + 0.25 * x_max, 0.25 * x_min + 0.75 * x_max),
            y=self._random.uniform(0.75 * y_min + 0.25 * y_max, 0.25 * y_min + 0.75 * y_max),
            heading=self._random.uniform(-math.pi, math.pi),
        )
        self._speed = 0.0  # BL/s
        self._speed_jitter = 0.0
        self._turn_rate = 0.0  # rad/s, the random part
        self._wall_turn_sign = 0.0  # direction of the current turn away from a wall, 0 = none
        self._started = False
        self._start_walk()

    # Behavioural states ----------------------------------------------------------------------

    def _start_walk(self) -> None:
        self._state = "walk"
        self._state_left = self._random.exponential(self._b.walk_bout_mean)
        self._new_walk_stretch()

    def _new_walk_stretch(self) -> None:
        self._target_speed = self._random.log_uniform(*self._b.walk_speed)
        self._stretch_left = self._random.exponential(self._b.walk_stretch_mean)

    def _end_walk(self) -> None:
        if self._random.uniform() < self._b.run_after_walk_probability:
            self._state = "run"
            self._state_left = self._random.uniform(*self._b.run_duration)
            self._target_speed = self._random.uniform(*self._b.run_speed)
        else:
            self._state = "freeze"
            self._state_left = self._random.uniform(*self._b.freeze_duration)
            self._target_speed = 0.0

    def _advance_state(self) -> None:
        self._state_left -= self._dt
        if self._state == "walk":
            self._stretch_left -= self._dt
            if self._state_left <= 0:
                self._end_walk()
            elif self._stretch_left <= 0:
                self._new_walk_stretch()
        elif self._state_left <= 0:
            self._start_walk()

    # One step ----------------------------------------------------------------------------------

    def step(self) -> Pose:
        """Return the pose of the next frame (frame 0 on the first call)."""
        if self._started:
            self._advance()
        self._started = True
        return self._pose

    def _advance(self) -> None:
        self._advance_state()
        frozen = self._state == "freeze"
        self._update_random_processes()
        self._pose = self._move(self._pose, frozen)

    def _move(self, pose: Pose, frozen: bool) -> Pose:
        """Return the next pose: walking on (steering off walls), or stopping quickly if frozen."""
        b = self._b
        if frozen:
            turn_rate, wall_slowdown = 0.0, 1.0
            self._speed *= self._stop_decay
        else:
            turn_rate, wall_slowdown = self._steer(pose)
            target = self._target_speed * (1.0 + b.speed_jitter * self._speed_jitter)
            target = max(0.0, target) * wall_slowdown
            self._speed = target + (self._speed - target) * self._speed_decay
        heading = _wrap_angle(pose.heading + turn_rate * self._dt)
        step_px = self._speed * self._length * self._dt
        x_min, y_min, x_max, y_max = self._limits
        x = _clamp(pose.x + step_px * math.cos(heading), x_min, x_max)
        y = _clamp(pose.y + step_px * math.sin(heading), y_min, y_max)
        head_turn, tail_bend = pose.head_turn, pose.tail_bend
        if not frozen:  # a freezing animal holds its posture
            head_target = _clamp(b.head_turn_gain * turn_rate, -b.max_head_turn, b.max_head_turn)
            tail_target = _clamp(-b.tail_bend_gain * turn_rate, -b.max_tail_bend, b.max_tail_bend)
            head_turn = head_target + (head_turn - head_target) * self._posture_decay
            tail_bend = tail_target + (tail_bend - tail_target) * self._posture_decay
        return Pose(x, y, heading, head_turn, tail_bend)

    def _update_random_processes(self) -> None:
        """Advance the Ornstein-Uhlenbeck processes of turning and speed jitter (exact steps)."""
        b = self._b
        spread = b.turn_rate_std * (b.run_turn_factor if self._state == "run" else 1.0)
        kick = math.sqrt(1.0 - self._turn_decay**2)
        self._turn_rate = self._turn_rate * self._turn_decay + spread * kick * self._random.normal()
        jitter_kick = math.sqrt(1.0 - self._jitter_decay**2)
        self._speed_jitter = (
            self._speed_jitter * self._jitter_decay + jitter_kick * self._random.normal()
        )

    def _steer(self, pose: Pose) -> tuple[float, float]:
        """Return the angular velocity (rad/s) and speed factor keeping the animal off the walls."""
        b, length = self._b, self._length
        dx, dy = math.cos(pose.heading), math.sin(pose.heading)
        look = (b.look_ahead + b.look_ahead_time * self._speed) * length
        ahead_x, ahead_y = pose.x + dx * look, pose.y + dy * look
        zone = b.wall_zone * length
        x_min, y_min, x_max, y_max = self._limits
        # Inward normals: +x at x_min, -x at x_max, and so on.
        along = b.wall_push_along
        push_x = _wall_push(ahead_x - x_min, zone, -dx, along) - _wall_push(
            x_max - ahead_x, zone, dx, along
        )
        push_y = _wall_push(ahead_y - y_min, zone, -dy, along) - _wall_push(
            y_max - ahead_y, zone, dy, along
        )
        strength = math.hypot(push_x, push_y)
        if strength == 0.0:
            self._wall_turn_sign = 0.0
            return self._turn_rate, 1.0
        gain = b.wall_push_gain
        wanted = math.atan2(dy + gain * push_y, dx + gain * push_x)
        error = _wrap_angle(wanted - pose.heading)
        if abs(error) > 0.5 * math.pi and self._wall_turn_sign != 0.0:
            # Facing into a corner the wanted direction is nearly behind the animal and the sign
            # of the error flips from step to step; keep turning the way it started.
            error = math.copysign(error, self._wall_turn_sign)
        self._wall_turn_sign = math.copysign(1.0, error)
        wall_turn_rate = _clamp(error / b.wall_turn_time, -b.max_turn_rate, b.max_turn_rate)
        weight = min(1.0, strength)
        facing = max(0.0, -(dx * push_x + dy * push_y) / strength)  # 1 = straight into the wall
        turn_rate = (1.0 - weight) * self._turn_rate + weight * wall_turn_rate
        return turn_rate, 1.0 - b.wall_slowdown * weight * facing


def _wall_push(distance: float, zone: float, heading_into_wall: float, along: float) -> float:
    """Return one wall's push: 0 beyond ``zone``, growing closer, most when heading into it."""
    closeness = _clamp(1.0 - distance / zone, 0.0, 2.0)
    return closeness * (along + max(0.0, heading_into_wall))


def _smooth_bump(elapsed: float, total: float, ramp: float) -> float:
    """0 at both ends of a bout, rising smoothly over ``ramp`` to 1 (exactly 0 at ``total``)."""
    edge = min(elapsed, total - elapsed) / ramp
    if edge >= 1.0:
        return 1.0
    edge = max(edge, 0.0)
    return edge * edge * (3.0 - 2.0 * edge)


class BehaviourMotion(RandomWalkMotion):
    """The random walk as labelled behaviour bouts; :attr:`behaviour` labels the last pose."""

    def __init__(
        self, params: ArenaParams, behaviour: MouseBehaviour = MOUSE, bouts: BehaviourBouts = BOUTS
    ) -> None:
        super().__init__(params, behaviour)
        if not params.behaviours:
            raise ValueError(f"no behaviours enabled; name some of {', '.join(BEHAVIOUR_NAMES)}")
        self._bouts = bouts
        self._framerate = params.framerate
        self._enabled = params.enabled_behaviours
        self._groom_jitter_decay = _decay(self._dt, bouts.grooming_jitter_time_constant)
        self._groom_jitter = 0.0
        first = self._enabled[int(self._random.uniform() * len(self._enabled)) % len(self._enabled)]
        self._start_bout(first)

    @property
    def behaviour(self) -> str:
        """The label of the last pose :meth:`step` returned (of frame 0 before the first call)."""
        return self._behaviour

    # Bouts -------------------------------------------------------------------------------------

    def _start_bout(self, behaviour: str) -> None:
        """Begin a bout: its length in frames, the behaviour after it, its own parameters."""
        bouts, rand = self._bouts, self._random
        self._behaviour = behaviour
        seconds = rand.uniform(*bouts.duration(behaviour))
        self._bout_frames = max(1, round(seconds * self._framerate))
        self._bout_frame = 0
        self._next_behaviour = self._draw_next(behaviour)
        self._bout_start = self._pose
        if behaviour == "walking":
            self._start_walk()
        else:
            self._state = "still"
            self._speed = 0.0
        if behaviour == "grooming":
            self._groom_frequency = rand.uniform(*bouts.grooming_frequency)
            self._groom_amplitude = rand.uniform(*bouts.grooming_amplitude)
            self._groom_phase = rand.uniform(0.0, _TWO_PI)
            self._retract_depth = rand.uniform(*bouts.grooming_retract)
            self._retract_frequency = rand.uniform(*bouts.grooming_retract_frequency)
        elif behaviour == "rearing":
            self._rear_depth = 1.0 - rand.uniform(*bouts.rearing_stretch)

    def _draw_next(self, current: str) -> str:
        """Draw the behaviour after a bout of ``current``: another enabled one if there is one."""
        others = [name for name in self._enabled if name != current]
        if not others:
            return current
        if current != "walking" and "walking" in others:
            rest = [name for name in others if name != "walking"]
            if not rest or self._random.uniform() < self._bouts.walking_after_other:
                return "walking"
            others = rest
        return others[int(self._random.uniform() * len(others)) % len(others)]

    # One step ----------------------------------------------------------------------------------

    def _advance(self) -> None:
        self._bout_frame += 1
        if self._bout_frame >= self._bout_frames:
            self._start_bout(self._next_behaviour)
        if self._behaviour == "walking":
            self._advance_walk()
        self._update_random_processes()
        elapsed = (self._bout_frame + 1) * self._dt  # at the bout's last frame: its duration
        total = self._bout_frames * self._dt
        if self._behaviour == "walking":
            stopping = self._next_behaviour != "walking" and total - elapsed < self._bouts.stop_lead
            self._pose = self._move(self._pose, frozen=stopping)
        elif self._behaviour == "grooming":
            self._pose = self._groom(elapsed, total)
        elif self._behaviour == "rearing":
            self._pose = self._rear(elapsed, total)
        # freezing: the pose stays exactly as it was

    def _advance_walk(self) -> None:
        """Advance walking's own states: stretches of one target speed, now and then a run."""
        b = self._b
        self._state_left -= self._dt
        self._stretch_left -= self._dt
        if self._state == "run":
            if self._state_left <= 0:
                self._state = "walk"
                self._new_walk_stretch()
        elif self._stretch_left <= 0:
            if self._random.uniform() < self._bouts.run_probability:
                self._state = "run"
                self._state_left = self._random.uniform(*b.run_duration)
                self._target_speed = self._random.uniform(*b.run_speed)
            else:
                self._new_walk_stretch()

    def _groom(self, elapsed: float, total: float) -> Pose:
        """Body, heading and tail still; the head strokes to and fro, the nose drawn back."""
        bouts = self._bouts
        envelope = _smooth_bump(elapsed, total, bouts.grooming_ramp)
        kick = math.sqrt(1.0 - self._groom_jitter_decay**2)
        self._groom_jitter = self._groom_jitter * self._groom_jitter_decay + kick * (
            self._random.normal()
        )
        amplitude = self._groom_amplitude * max(
            0.2, 1.0 + bouts.grooming_jitter * self._groom_jitter
        )
        stroke = amplitude * math.sin(_TWO_PI * self._groom_frequency * elapsed + self._groom_phase)
        retract_wave = 0.5 - 0.5 * math.cos(_TWO_PI * self._retract_frequency * elapsed)
        start = self._bout_start
        return start._replace(
            head_turn=(1.0 - envelope) * start.head_turn + envelope * stroke,
            head_retract=envelope * self._retract_depth * retract_wave,
        )

    def _rear(self, elapsed: float, total: float) -> Pose:
        """Body centre, heading and tail still; the body shortens smoothly and comes back."""
        ramp = min(self._bouts.rearing_ramp, 0.4 * total)
        height = _smooth_bump(elapsed, total, ramp)
        start = self._bout_start
        return start._replace(
            head_turn=(1.0 - height) * start.head_turn, stretch=1.0 - self._rear_depth * height
        )


class WaypointMotion:
    """The body centre follows scripted waypoints; the heading is the direction of travel.

    Held before the first and after the last; a standing animal keeps its heading.
    ``params.waypoints`` must not be empty.
    """

    def __init__(self, params: ArenaParams) -> None:
        if not params.waypoints:
            raise ValueError("waypoint motion needs at least one waypoint")
        table = np.asarray(params.waypoints, dtype=np.float64)
        self._frames, self._xs, self._ys = table[:, 0], table[:, 1], table[:, 2]
        self._segment_headings = _segment_headings(self._xs, self._ys)
        self._next_index = 0

    def poses(self, frame_indices: np.ndarray) -> np.ndarray:
        """Poses of the given frames: shape (n, :data:`POSE_WIDTH`), fields of :class:`Pose`."""
        frames = np.asarray(frame_indices, dtype=np.float64)
        poses = neutral_poses(frames.size)
        poses[:, 0] = np.interp(frames, self._frames, self._xs)
        poses[:, 1] = np.interp(frames, self._frames, self._ys)
        # Segment k runs from waypoint k to k + 1 and covers frames in (frame_k, frame_k+1].
        segment = np.searchsorted(self._frames, frames, side="left") - 1
        headings = np.concatenate(
            ([self._segment_headings[0]], self._segment_headings, [self._segment_headings[-1]])
        )
        poses[:, 2] = headings[np.clip(segment + 1, 0, headings.size - 1)]
        return poses

    def pose_at(self, frame_index: int) -> Pose:
        """Return the pose of one frame."""
        return Pose(*self.poses(np.array([frame_index]))[0].tolist())

    def step(self) -> Pose:
        """Return the pose of the next frame (frame 0 on the first call)."""
        pose = self.pose_at(self._next_index)
        self._next_index += 1
        return pose


def _segment_headings(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Return each segment's heading between waypoints, held through segments without a move."""
    dx, dy = np.diff(xs), np.diff(ys)
    moving = np.hypot(dx, dy) > 1e-9
    if not moving.any():
        return np.zeros(max(1, dx.size))
    headings = np.arctan2(dy, dx)
    last = headings[np.argmax(moving)]  # before the first move: face where it will go
    for index in range(headings.size):
        if moving[index]:
            last = headings[index]
        headings[index] = last
    return headings


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel positions, smooth motion
_SCALE = 1 << _SHIFT
_NOISE_PAD = 48  # the noise bank is this much larger than a frame; each frame uses a random window
_NOISE_BIAS = 128.0  # noise is stored as uint8 around this level
_LIGHTING_PERIODS_S = (41.0, 13.0)  # two slow incommensurate sines: drift without visible period
_LIGHTING_WEIGHTS = (0.7, 0.3)


@dataclass(frozen=True)
class _Palette:
    """Grey levels (BGR) of the scene before lighting; a dark mouse on a light floor."""

    floor: tuple[float, float, float] = (168.0, 176.0, 182.0)
    wall: tuple[float, float, float] = (112.0, 116.0, 120.0)
    wall_edge: tuple[float, float, float] = (70.0, 72.0, 75.0)
    body: tuple[int, int, int] = (34, 34, 38)
    back: tuple[int, int, int] = (48, 48, 53)  # a faint highlight along the spine
    head: tuple[int, int, int] = (40, 40, 44)
    ear: tuple[int, int, int] = (82, 88, 112)
    tail: tuple[int, int, int] = (70, 76, 96)


def mouse_colors(color: bool) -> _Colors:
    """Return the drawing colours of the mouse's parts, for colour (BGR) or mono frames."""
    return _Colors.for_format(_Palette(), color)


def _cv2() -> ModuleType:
    # Imported when a renderer is built only: the settings loader imports this module.
    import cv2

    return cv2


def _grey(bgr: tuple[float, ...]) -> float:
    blue, green, red = bgr
    return 0.114 * blue + 0.587 * green + 0.299 * red


@dataclass
class _Colors:
    """Drawing colours in the frame's format (cv2 takes a tuple per channel)."""

    body: tuple[float, ...]
    back: tuple[float, ...]
    head: tuple[float, ...]
    ear: tuple[float, ...]
    tail: tuple[float, ...]

    @classmethod
    def for_format(cls, palette: _Palette, color: bool) -> _Colors:
        def convert(bgr: tuple[int, int, int]) -> tuple[float, ...]:
            return tuple(float(c) for c in bgr) if color else (float(round(_grey(bgr))),)

        parts = ("body", "back", "head", "ear", "tail")
        return cls(*(convert(getattr(palette, name)) for name in parts))


class ArenaRenderer:
    """Draws frames of the arena: floor texture, walls, the animal, lighting drift and noise.

    A frame is a pure function of (params, pose, frame index).
    """

    def __init__(self, params: ArenaParams) -> None:
        self._cv2 = _cv2()
        self._params = params
        self._length = params.body_length_px
        self._arena_rect = params.arena_rect()
        seeds = np.random.SeedSequence([params.seed, 0xA4E7A]).spawn(3)
        texture_rng, noise_rng, lighting_rng = (np.random.default_rng(s) for s in seeds)
        palette = _Palette()
        self._colors = _Colors.for_format(palette, params.color)
        self.floor = _make_floor(self._cv2, params, palette, texture_rng)
        self._noise_bank = _make_noise_bank(params, noise_rng) if params.noise > 0 else None
        self._noise_salt = int(noise_rng.integers(1 << 32))
        self._lighting_phases = lighting_rng.uniform(0.0, _TWO_PI, size=2).tolist()

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (H, W, 3) for colour, (H, W) for mono."""
        return self.floor.shape

    def lighting_gain(self, frame_index: int) -> float:
        """Brightness factor of a frame: 1 +- ``lighting_drift``, drifting over tens of seconds."""
        drift = self._params.lighting_drift
        if drift == 0:
            return 1.0
        seconds = frame_index / self._params.framerate
        wave = sum(
            weight * math.sin(_TWO_PI * seconds / period + phase)
            for weight, period, phase in zip(
                _LIGHTING_WEIGHTS, _LIGHTING_PERIODS_S, self._lighting_phases, strict=True
            )
        )
        return 1.0 + drift * wave

    def render(self, pose: Pose, frame_index: int, out: np.ndarray) -> None:
        """Draw frame ``frame_index`` with the animal at ``pose`` into ``out`` (C-contiguous)."""
        np.copyto(out, self.floor)
        self._draw_animal(out, pose)
        self._light_and_add_noise(out, frame_index)

    def render_animals(self, poses: list[Pose], frame_index: int, out: np.ndarray) -> None:
        """Draw the frame with several animals into ``out``; later animals cover earlier ones."""
        np.copyto(out, self.floor)
        for pose in poses:
            self._draw_animal(out, pose)
        self._light_and_add_noise(out, frame_index)

    def draw_animal(self, image: np.ndarray, pose: Pose, scale: float = 1.0) -> None:
        """Draw one animal at ``pose`` into ``image`` (no lighting, no noise), ``scale`` x its size.

        For scenes composed elsewhere: copy :attr:`floor`, draw, then :meth:`light_and_add_noise`.
        """
        self._draw_animal(image, pose, scale)

    def light_and_add_noise(self, out: np.ndarray, frame_index: int) -> None:
        """Apply frame ``frame_index``'s lighting gain and pixel noise to ``out``, in place."""
        self._light_and_add_noise(out, frame_index)

    def _light_and_add_noise(self, out: np.ndarray, frame_index: int) -> None:
        """Apply the frame's lighting gain and add its window of the noise bank, in place."""
        cv2 = self._cv2
        gain = self.lighting_gain(frame_index)
        if self._noise_bank is not None:
            row, col = self._noise_offset(frame_index)
            height, width = out.shape[:2]
            window = self._noise_bank[row : row + height, col : col + width]
            cv2.addWeighted(out, gain, window, 1.0, -_NOISE_BIAS, dst=out)
        elif gain != 1.0:
            cv2.convertScaleAbs(out, dst=out, alpha=gain)

    def _noise_offset(self, frame_index: int) -> tuple[int, int]:
        """Pick the noise window by a well-mixed 32-bit hash of the frame index (no state)."""
        value = (frame_index * 0x9E3779B1 + self._noise_salt) & 0xFFFFFFFF
        value ^= value >> 16
        value = (value * 0x85EBCA6B) & 0xFFFFFFFF
        value ^= value >> 13
        value = (value * 0xC2B2AE35) & 0xFFFFFFFF
        value ^= value >> 16
        side = _NOISE_PAD + 1
        return value % side, (value // side) % side

    def _draw_animal(self, image: np.ndarray, pose: Pose, scale: float = 1.0) -> None:
        cv2, plan, colors = self._cv2, BODY_PLAN, self._colors
        length = self._length * scale  # a scale of exactly 1 changes no bit
        # Lengths along the body and head axes scale with the stretch (exactly: 1 changes no
        # bit), the nose and the head's front draw back with the retraction; widths stay.
        stretch, axis = pose.stretch, length * pose.stretch
        body_dx, body_dy = math.cos(pose.heading), math.sin(pose.heading)
        head_angle = pose.heading + pose.head_turn
        head_dx, head_dy = math.cos(head_angle), math.sin(head_angle)
        neck_x = pose.x + plan.neck_ahead * axis * body_dx
        neck_y = pose.y + plan.neck_ahead * axis * body_dy

        self._draw_tail(image, pose, colors.tail, length)
        trunk = plan.body_ellipse_center * stretch * length
        trunk_center = (pose.x + trunk * body_dx, pose.y + trunk * body_dy)
        trunk_length, trunk_width = plan.body_half_length * stretch, plan.body_half_width
        self._ellipse(
            image, trunk_center, (trunk_length, trunk_width), pose.heading, colors.body, length
        )
        spine_length = 0.6 * plan.body_half_length * stretch
        spine_width = 0.35 * plan.body_half_width
        self._ellipse(
            image, trunk_center, (spine_length, spine_width), pose.heading, colors.back, length
        )
        ear_x = neck_x + plan.ear_ahead_of_neck * axis * head_dx
        ear_y = neck_y + plan.ear_ahead_of_neck * axis * head_dy
        side_x, side_y = plan.ear_side * length * head_dy, -plan.ear_side * length * head_dx
        radius = round(plan.ear_radius * length * _SCALE)
        for sign in (1.0, -1.0):
            center = _fixed(ear_x + sign * side_x, ear_y + sign * side_y)
            cv2.circle(image, center, radius, colors.ear, -1, cv2.LINE_AA, _SHIFT)
        head_center_ahead, head_half_length = head_ellipse(pose)
        head = head_center_ahead * length
        head_center = (neck_x + head * head_dx, neck_y + head * head_dy)
        head_axes = (head_half_length, plan.head_half_width)
        self._ellipse(image, head_center, head_axes, head_angle, colors.head, length)

    def _ellipse(
        self,
        image: np.ndarray,
        center: tuple[float, float],
        half_axes: tuple[float, float],
        angle: float,
        color: tuple[float, ...],
        length: float,
    ) -> None:
        """Draw a filled ellipse along ``angle``; ``half_axes`` in body lengths of ``length`` px."""
        cv2 = self._cv2
        half_length, half_width = half_axes
        axes = (round(half_length * length * _SCALE), round(half_width * length * _SCALE))
        degrees = math.degrees(angle)
        cv2.ellipse(image, _fixed(*center), axes, degrees, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)

    def _draw_tail(
        self, image: np.ndarray, pose: Pose, color: tuple[float, ...], length: float
    ) -> None:
        """Draw the tail from its base: tapering, bent by ``pose.tail_bend``, kept on the floor."""
        cv2 = self._cv2
        points = _tail_points(pose, length, self._arena_rect)
        per_section = (len(points) - 1) // len(TAIL_THICKNESSES)
        for section, thickness in enumerate(TAIL_THICKNESSES):
            part = points[section * per_section : (section + 1) * per_section + 1]
            pixels = max(1, round(thickness * length))
            cv2.polylines(image, [part], False, color, pixels, cv2.LINE_AA, _SHIFT)


def head_ellipse(pose: Pose) -> tuple[float, float]:
    """Return the drawn head ellipse's centre ahead of the neck and its half length, in BL."""
    plan = BODY_PLAN
    shortening = 0.5 * plan.nose_ahead_of_neck * pose.head_retract
    center = (plan.head_ellipse_center - shortening) * pose.stretch
    half_length = (plan.head_half_length - shortening) * pose.stretch
    return center, half_length


def _fixed(x: float, y: float) -> tuple[int, int]:
    """Convert a point to cv2's fixed-point coordinates (``_SHIFT`` fractional bits)."""
    return (round(x * _SCALE), round(y * _SCALE))


_TAIL_SEGMENTS = 9  # a multiple of the three drawn thickness sections
TAIL_THICKNESSES = (0.05, 0.035, 0.022)
"""Drawn thickness of the tail's three sections, in body lengths, from base to tip."""
_TAIL_FRACTIONS = np.linspace(0.0, 1.0, _TAIL_SEGMENTS + 1)


def _tail_points(
    pose: Pose, length: float, arena_rect: tuple[float, float, float, float]
) -> np.ndarray:
    """Fixed-point int32 points along the tail, clipped to the floor (a tail lies along a wall)."""
    return np.rint(tail_polyline(pose, length, arena_rect) * _SCALE).astype(np.int32)


def tail_polyline(
    pose: Pose, length: float, arena_rect: tuple[float, float, float, float]
) -> np.ndarray:
    """Points (N, 2) in pixels along the tail from its base, clipped to ``arena_rect``."""
    plan = BODY_PLAN
    base_x = pose.x - plan.tail_base_behind * length * pose.stretch * math.cos(pose.heading)
    base_y = pose.y - plan.tail_base_behind * length * pose.stretch * math.sin(pose.heading)
    # The tail points backwards and bends steadily along its length by tail_bend in total.
    angles = pose.heading + math.pi + pose.tail_bend * _TAIL_FRACTIONS
    step = plan.tail_length * length / _TAIL_SEGMENTS
    xs = base_x + np.concatenate(([0.0], np.cumsum(step * np.cos(angles[:-1]))))
    ys = base_y + np.concatenate(([0.0], np.cumsum(step * np.sin(angles[:-1]))))
    x_min, y_min, x_max, y_max = arena_rect
    return np.stack((np.clip(xs, x_min, x_max), np.clip(ys, y_min, y_max)), axis=1)


def _make_floor(
    cv2: ModuleType, params: ArenaParams, palette: _Palette, rng: np.random.Generator
) -> np.ndarray:
    """Render the static scene: a mottled, slightly vignetted floor inside a band of wall tops."""
    height, width = params.height, params.width
    cell = max(4, min(height, width) // 20)
    coarse = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), 0.8)
    texture = 5.0 * blotches + 6.0 * grain  # grey levels around 0
    # An overhead lamp: the floor is about 12 % darker in the corners than in the middle.
    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    lamp = 1.0 - 0.06 * (rows**2 + cols**2)
    x_min, y_min, x_max, y_max = params.arena_rect()
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]
    on_floor = (xs >= x_min) & (xs <= x_max) & (ys >= y_min) & (ys <= y_max)
    edge_width = max(1.0, 0.006 * min(height, width))
    near_edge = ~on_floor & (
        (xs >= x_min - edge_width)
        & (xs <= x_max + edge_width)
        & (ys >= y_min - edge_width)
        & (ys <= y_max + edge_width)
    )
    planes = []
    for channel in range(3) if params.color else (None,):
        floor, wall, edge = (
            _channel_level(bgr, channel) for bgr in (palette.floor, palette.wall, palette.wall_edge)
        )
        plane = np.where(on_floor, floor + texture, wall + 1.5 * texture)
        plane = np.where(near_edge, edge + texture, plane) * lamp
        planes.append(np.clip(plane, 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.stack(planes, axis=-1) if params.color else planes[0])


def _channel_level(bgr: tuple[float, float, float], channel: int | None) -> float:
    """One channel of a BGR level, or its grey value for mono (``channel`` None)."""
    return bgr[channel] if channel is not None else _grey(bgr)


def _make_noise_bank(params: ArenaParams, rng: np.random.Generator) -> np.ndarray:
    """uint8 Gaussian noise around ``_NOISE_BIAS``, ``_NOISE_PAD`` pixels larger than a frame."""
    shape: tuple[int, ...] = (params.height + _NOISE_PAD, params.width + _NOISE_PAD)
    if params.color:
        shape = (*shape, 3)
    bank = np.empty(shape, dtype=np.uint8)
    rows_per_chunk = 256  # bounded float32 temporaries even for very large frames
    for start in range(0, shape[0], rows_per_chunk):
        chunk_shape = (min(rows_per_chunk, shape[0] - start), *shape[1:])
        noise = rng.standard_normal(chunk_shape, dtype=np.float32)
        noise = noise * np.float32(params.noise) + np.float32(_NOISE_BIAS)
        bank[start : start + chunk_shape[0]] = np.clip(np.rint(noise), 0, 255)
    return bank


# --------------------------------------------------------------------------------------------------
# Frame by frame
# --------------------------------------------------------------------------------------------------


class Stepping(Protocol):
    """A motion of one animal or of several: what :meth:`FrameSimulation.skip_to` steps on."""

    def step(self) -> object:
        """Return what the next frame shows (frame 0 on the first call)."""
        ...


class FrameSimulation:
    """What a frame-by-frame simulation shares: renderer, motion, next frame (set by subclasses)."""

    motion: Stepping
    renderer: ArenaRenderer
    next_frame_index: int

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (H, W, 3) for colour, (H, W) for mono."""
        return self.renderer.frame_shape

    def skip_to(self, frame_index: int) -> None:
        """Move the animals on, unrendered, so the next frame is ``frame_index`` (not back)."""
        while self.next_frame_index < frame_index:
            self.motion.step()
            self.next_frame_index += 1


@dataclass
class SimulatedArena(FrameSimulation):
    """Motion and rendering together: each call renders the next frame and returns its truth."""

    params: ArenaParams
    motion: Motion = field(init=False)
    renderer: ArenaRenderer = field(init=False)
    next_frame_index: int = field(init=False, default=0)
    behaviour: str | None = field(init=False, default=None)
    """The behaviour label of the last rendered frame; None when ``params.behaviours`` is empty."""

    def __post_init__(self) -> None:
        """Build the motion model and the renderer (the renderer precomputes its images)."""
        self.motion = make_motion(self.params)
        self.renderer = ArenaRenderer(self.params)

    def render_next(self, out: np.ndarray) -> tuple[int, np.ndarray]:
        """Render the next frame into ``out``; return its index and keypoints (6, 2)."""
        index = self.next_frame_index
        pose = self.motion.step()
        if isinstance(self.motion, BehaviourMotion):
            self.behaviour = self.motion.behaviour
        self.renderer.render(pose, index, out)
        self.next_frame_index = index + 1
        return index, keypoints_from_poses(np.asarray(pose), self.params.body_length_px)

    def skip_to(self, frame_index: int) -> None:
        """Move the mouse on, unrendered, so the next frame is ``frame_index`` (never backwards)."""
        super().skip_to(frame_index)
        if isinstance(self.motion, BehaviourMotion):
            self.behaviour = self.motion.behaviour
