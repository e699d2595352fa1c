"""Several mice in the simulated arena: social scenarios, identities, occlusion-aware ground truth.

docs/cameras.md, "The simulated arena".
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, get_args

import numpy as np

from deeplabstream.hardware.simulator.arena import (
    _SCALE,
    BODY_PLAN,
    KEYPOINT_NAMES,
    MOUSE,
    TAIL_THICKNESSES,
    ArenaParams,
    ArenaRenderer,
    FrameSimulation,
    Pose,
    _cv2,
    _tail_points,
    head_ellipse,
    keypoints_from_poses,
    make_motion,
)
from deeplabstream.hardware.simulator.marks import Marks, draw_marks, marks_of

SocialKind = Literal["free", "cross", "follow", "touch"]
SOCIAL_KINDS: tuple[str, ...] = get_args(SocialKind)
MAX_ANIMALS = 3

_CONTACT_GAP = 0.04  # BL: half the distance between two touching noses
_TAIL_GAP = 0.06  # BL: nose to tail base in a nose-to-tail sniff (the head tip reaches 0.03)
_WALK_SPEED = 2.0  # BL/s: peak speed of a scripted walk between two keyframes
_MIN_ROOM = 1.3  # BL: the scripts need the body centre free to move this far from the centre


def animal_names(count: int) -> tuple[str, ...]:
    """Return the identities of ``count`` animals: ``animal1``, ``animal2``, ..."""
    return tuple(f"animal{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class HerdParams:
    """Several animals in one arena; equal params give identical frames and truth.

    ``arena.motion`` must be ``"random"`` unless ``free``; scripted ``social`` needs two animals.
    """

    arena: ArenaParams
    animals: int = 2
    social: SocialKind = "free"
    marked: bool = True

    def __post_init__(self) -> None:
        """Reject combinations the simulation cannot honour."""
        if not 1 <= self.animals <= MAX_ANIMALS:
            raise ValueError(f"animals must be 1 to {MAX_ANIMALS}, not {self.animals}")
        if self.social not in SOCIAL_KINDS:
            raise ValueError(f"social must be one of {', '.join(SOCIAL_KINDS)}, not {self.social}")
        if self.social != "free" and self.animals < 2:
            raise ValueError(f"the '{self.social}' scenario needs 2 or 3 animals")
        if self.arena.motion == "waypoints" and self.animals > 1:
            raise ValueError("waypoint motion moves one animal only")
        if self.arena.behaviours and self.animals > 1:
            raise ValueError(
                "labelled behaviours are simulated for one animal only (not yet for several)"
            )
        half_x, half_y = room(self.arena)
        if self.social != "free" and min(half_x, half_y) < _MIN_ROOM:
            raise ValueError(
                f"the '{self.social}' scenario needs the body centre free to move {_MIN_ROOM:g} "
                f"body lengths from the centre, but the {self.arena.width}x{self.arena.height} "
                f"arena leaves {half_x:.2f} x {half_y:.2f}"
            )

    @property
    def marks(self) -> tuple[Marks, ...]:
        """Each animal's marks, in identity order (all unmarked when ``marked`` is False)."""
        return marks_of(self.animals, self.marked)


def room(params: ArenaParams) -> tuple[float, float]:
    """Half the range of body-centre positions across and down the floor, in body lengths."""
    x_min, y_min, x_max, y_max = params.body_center_limits()
    length = params.body_length_px
    return (x_max - x_min) / (2.0 * length), (y_max - y_min) / (2.0 * length)


# --------------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------------


class HerdMotion(Protocol):
    """A source of the poses of all animals, one frame at a time from frame 0."""

    def step(self) -> list[Pose]:
        """Return the poses of the next frame (frame 0 on the first call), in identity order."""
        ...


def make_herd_motion(params: HerdParams) -> HerdMotion:
    """Make the motion model of ``params.social``."""
    if params.social == "free":
        return FreeHerdMotion(params)
    return ScriptedHerdMotion(params)


class FreeHerdMotion:
    """Independent random walks; animal 1 walks as a lone mouse of the same seed would."""

    def __init__(self, params: HerdParams) -> None:
        self._motions = [make_motion(params.arena)]
        for number in range(2, params.animals + 1):
            seed = int(np.random.SeedSequence([params.arena.seed, number]).generate_state(1)[0])
            self._motions.append(make_motion(replace(params.arena, seed=seed)))

    def step(self) -> list[Pose]:
        """Return the poses of the next frame (frame 0 on the first call)."""
        return [motion.step() for motion in self._motions]


class _Track(Protocol):
    """One scripted animal: position (BL from the centre), heading and turn rate at a time."""

    def at(self, seconds: float) -> tuple[float, float, float, float]:
        """Return ``(x, y, heading, turn rate in rad/s)`` at ``seconds`` from the start."""
        ...


@dataclass(frozen=True)
class _Keyframes:
    """A looping script of poses, eased between keyframes (headings unwrapped: turn direction)."""

    times: tuple[float, ...]
    poses: tuple[tuple[float, float, float], ...]  # (x, y, heading) per keyframe

    def at(self, seconds: float) -> tuple[float, float, float, float]:
        """Return ``(x, y, heading, turn rate)`` at ``seconds`` (the script repeats)."""
        t = seconds % self.times[-1]
        index = min(bisect_right(self.times, t) - 1, len(self.times) - 2)
        start, end = self.times[index], self.times[index + 1]
        (x0, y0, h0), (x1, y1, h1) = self.poses[index], self.poses[index + 1]
        u = (t - start) / (end - start)
        eased = 0.5 - 0.5 * math.cos(math.pi * u)
        rate = (h1 - h0) * 0.5 * math.pi / (end - start) * math.sin(math.pi * u)
        return x0 + eased * (x1 - x0), y0 + eased * (y1 - y0), h0 + eased * (h1 - h0), rate


def _script(*steps: tuple[float, float, float, float]) -> _Keyframes:
    """Keyframes from ``(duration of the move to it, x, y, heading)``; the first has duration 0."""
    times = tuple(np.cumsum([step[0] for step in steps]).tolist())
    return _Keyframes(times, tuple((x, y, h) for _, x, y, h in steps))


def _walk_time(distance: float) -> float:
    """Seconds for an eased walk over ``distance`` BL whose peak speed is ``_WALK_SPEED``."""
    return max(0.6, 0.5 * math.pi * distance / _WALK_SPEED)


def _cross_tracks(
    animals: int, half_x: float, half_y: float, scales: tuple[float, ...] = ()
) -> list[_Track]:
    """Back and forth through the centre on lines at different angles, all meeting there."""
    angles = (
        (0.25 * math.pi, 0.75 * math.pi) if animals == 2 else (0.0, math.pi / 3, 2 * math.pi / 3)
    )
    reach = min(
        min(half_x / max(abs(math.cos(a)), 1e-9), half_y / max(abs(math.sin(a)), 1e-9))
        for a in angles
    )
    distance = 0.9 * reach
    walk, turn = _walk_time(2 * distance), 1.0
    tracks: list[_Track] = []
    for a in angles[:animals]:
        dx, dy = distance * math.cos(a), distance * math.sin(a)
        tracks.append(
            _script(
                (0.0, -dx, -dy, a),
                (walk, dx, dy, a),
                (turn, dx, dy, a + math.pi),
                (walk, -dx, -dy, a + math.pi),
                (turn, -dx, -dy, a + 2 * math.pi),
            )
        )
    return tracks


def _touch_tracks(
    animals: int, half_x: float, half_y: float, scales: tuple[float, ...] = ()
) -> list[_Track]:
    """Return the touch loop's tracks, scaled by ``scales`` so that noses meet at any size."""
    plan, pi = BODY_PLAN, math.pi
    size = (*scales, 1.0, 1.0, 1.0)[:3]
    start = min(1.6, 0.9 * half_x)
    # Body centres of mice whose noses touch the other's.
    meet = plan.nose_ahead * size[0] + _CONTACT_GAP
    meet_second = plan.nose_ahead * size[1] + _CONTACT_GAP
    away = meet + 0.6  # animal 1 walks this far left, animal 2 sniffs its tail base
    sniff = -away + plan.tail_base_behind * size[0] + _TAIL_GAP + plan.nose_ahead * size[1]
    # Both walk in together (2 s), sniff (1.2 s); animal 1 turns away anticlockwise (up, off the
    # third animal) and walks on, animal 2 follows (1.5 s) and sniffs its tail base (1.2 s);
    # animal 2 turns, both walk back to their walls (2 s) and face each other again.
    first = _script(
        (0.0, -start, 0.0, 0.0),
        (2.0, -meet, 0.0, 0.0),
        (1.2, -meet, 0.0, 0.0),
        (0.8, -meet, 0.0, -pi),
        (1.5, -away, 0.0, -pi),
        (1.2, -away, 0.0, -pi),
        (0.8, -away, 0.0, -pi),
        (2.0, -start, 0.0, -pi),
        (0.8, -start, 0.0, 0.0),
    )
    second = _script(
        (0.0, start, 0.0, pi),
        (2.0, meet_second, 0.0, pi),
        (1.2, meet_second, 0.0, pi),
        (0.8, meet_second, 0.0, pi),
        (1.5, sniff, 0.0, pi),
        (1.2, sniff, 0.0, pi),
        (0.8, sniff, 0.0, 2 * pi),
        (2.0, start, 0.0, 2 * pi),
        (0.8, start, 0.0, 3 * pi),
    )
    tracks: list[_Track] = [first, second]
    if animals == 3:
        # From below, its nose just under the two touching noses; it turns (clockwise, away
        # from animal 1's turn) and is back at its wall before animal 2 walks over the spot.
        low = min(1.5, 0.9 * half_y)
        near = 0.12 + plan.nose_ahead * size[2]
        tracks.append(
            _script(
                (0.0, 0.0, low, -0.5 * pi),
                (0.4, 0.0, low, -0.5 * pi),
                (1.6, 0.0, near, -0.5 * pi),
                (1.0, 0.0, near, -0.5 * pi),
                (0.8, 0.0, near, 0.5 * pi),
                (1.0, 0.0, low, 0.5 * pi),
                (4.7, 0.0, low, 0.5 * pi),
                (0.8, 0.0, low, 1.5 * pi),
            )
        )
    return tracks


@dataclass(frozen=True)
class _OvalTrack:
    """An animal walking an oval; ``delay`` seconds behind the leader: a follower."""

    half_x: float
    half_y: float
    delay: float = 0.0
    mean_speed: float = 1.5  # BL/s
    speed_swing: float = 0.25  # relative
    swing_period: float = 7.0  # s
    _angles: np.ndarray = field(init=False, repr=False, compare=False)
    _lengths: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Tabulate arc length against the ellipse angle (to walk it at a given speed)."""
        angles = np.linspace(0.0, 2 * math.pi, 4097)
        steps = np.hypot(
            np.diff(self.half_x * np.cos(angles)), np.diff(self.half_y * np.sin(angles))
        )
        object.__setattr__(self, "_angles", angles)
        object.__setattr__(self, "_lengths", np.concatenate(([0.0], np.cumsum(steps))))

    def at(self, seconds: float) -> tuple[float, float, float, float]:
        """Return ``(x, y, heading, turn rate)`` at ``seconds`` (the leader starts at angle 0)."""
        t = seconds - self.delay
        omega = 2 * math.pi / self.swing_period
        travelled = self.mean_speed * (t - self.speed_swing / omega * (math.cos(omega * t) - 1))
        speed = self.mean_speed * (1 + self.speed_swing * math.sin(omega * t))
        angle = float(np.interp(travelled % self._lengths[-1], self._lengths, self._angles))
        a, b = self.half_x, self.half_y
        sin, cos = math.sin(angle), math.cos(angle)
        heading = math.atan2(b * cos, -a * sin)
        curvature = a * b / (a * a * sin * sin + b * b * cos * cos) ** 1.5
        return a * cos, b * sin, heading, curvature * speed


def _follow_tracks(
    animals: int, half_x: float, half_y: float, scales: tuple[float, ...] = ()
) -> list[_Track]:
    """Animal 1 leads around the oval, the others follow about 1.5 body lengths apart."""
    gap = 1.5  # BL along the path at the mean speed
    leader = _OvalTrack(0.85 * half_x, 0.85 * half_y)
    delay = gap / leader.mean_speed
    return [_OvalTrack(leader.half_x, leader.half_y, delay=k * delay) for k in range(animals)]


_TRACKS = {"cross": _cross_tracks, "touch": _touch_tracks, "follow": _follow_tracks}


class ScriptedHerdMotion:
    """The animals of a scripted scenario; a pose is a pure function of the frame index."""

    def __init__(self, params: HerdParams) -> None:
        arena = params.arena
        self._framerate = arena.framerate
        self._length = arena.body_length_px
        x_min, y_min, x_max, y_max = arena.body_center_limits()
        self._center = (0.5 * (x_min + x_max), 0.5 * (y_min + y_max))
        flips = np.random.default_rng([arena.seed, 0x50C1A1]).integers(0, 2, size=2)
        self._sign_x, self._sign_y = (1.0 - 2.0 * float(flip) for flip in flips)
        scales = tuple(marks.scale for marks in params.marks)
        self._tracks = _TRACKS[params.social](params.animals, *room(arena), scales)
        self._next_index = 0

    def poses_at(self, frame_index: int) -> list[Pose]:
        """Return the poses of one frame, in identity order."""
        seconds = frame_index / self._framerate
        return [self._pose(*track.at(seconds)) for track in self._tracks]

    def step(self) -> list[Pose]:
        """Return the poses of the next frame (frame 0 on the first call)."""
        poses = self.poses_at(self._next_index)
        self._next_index += 1
        return poses

    def _pose(self, x: float, y: float, heading: float, turn_rate: float) -> Pose:
        """Scale a scripted pose to pixels, mirror it by the seed, and bend head and tail."""
        sx, sy = self._sign_x, self._sign_y
        # A mirror image turns the other way round; the head looks into a turn, the tail trails.
        turn_rate *= sx * sy
        b = MOUSE
        head_turn = min(max(b.head_turn_gain * turn_rate, -b.max_head_turn), b.max_head_turn)
        tail_bend = min(max(-b.tail_bend_gain * turn_rate, -b.max_tail_bend), b.max_tail_bend)
        return Pose(
            x=self._center[0] + sx * x * self._length,
            y=self._center[1] + sy * y * self._length,
            heading=math.atan2(sy * math.sin(heading), sx * math.cos(heading)),
            head_turn=head_turn,
            tail_bend=tail_bend,
        )


# --------------------------------------------------------------------------------------------------
# Truth and occlusion
# --------------------------------------------------------------------------------------------------


def truth_from_poses(
    poses: list[Pose], params: ArenaParams, marks: tuple[Marks, ...] | None = None
) -> np.ndarray:
    """Keypoints and visibility (A, 6, 3) of one frame's animals (0.0: covered by a later one)."""
    scales = [1.0] * len(poses) if marks is None else [mark.scale for mark in marks]
    length = params.body_length_px
    if all(scale == 1.0 for scale in scales):  # the usual case: one call for all
        keypoints = keypoints_from_poses(np.asarray(poses, dtype=np.float64), length)
    else:
        keypoints = np.stack(
            [
                keypoints_from_poses(np.asarray(pose, dtype=np.float64), length * scale)
                for pose, scale in zip(poses, scales, strict=True)
            ]
        )
    truth = np.ones((len(poses), len(KEYPOINT_NAMES), 3))
    truth[..., :2] = keypoints
    for later in range(1, len(poses)):
        points = keypoints[:later].reshape(-1, 2)
        covered = covered_by(poses[later], points, params, scales[later])
        truth[:later, :, 2][covered.reshape(later, -1)] = 0.0
    return truth


def covered_by(
    pose: Pose, points: np.ndarray, params: ArenaParams, scale: float = 1.0
) -> np.ndarray:
    """Which of the (N, 2) pixel ``points`` lie under the drawn outline of an animal at ``pose``."""
    plan, length = BODY_PLAN, params.body_length_px * scale
    axis = length * pose.stretch  # lengths along the body and head axes (widths do not scale)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    body = np.array([math.cos(pose.heading), math.sin(pose.heading)])
    head_angle = pose.heading + pose.head_turn
    head = np.array([math.cos(head_angle), math.sin(head_angle)])
    center = np.array([pose.x, pose.y])
    neck = center + plan.neck_ahead * axis * body
    trunk_center = center + plan.body_ellipse_center * axis * body
    head_ahead, head_half_length = head_ellipse(pose)
    head_center = neck + head_ahead * length * head
    covered = _in_ellipse(
        points, trunk_center, body, plan.body_half_length * axis, plan.body_half_width * length
    )
    covered |= _in_ellipse(
        points, head_center, head, head_half_length * length, plan.head_half_width * length
    )
    ears = neck + plan.ear_ahead_of_neck * axis * head
    side = plan.ear_side * length * np.array([head[1], -head[0]])
    for ear in (ears + side, ears - side):
        covered |= np.hypot(*(points - ear).T) <= plan.ear_radius * length
    return covered | _on_tail(pose, points, params, length)


def _in_ellipse(
    points: np.ndarray, center: np.ndarray, axis: np.ndarray, half_length: float, half_width: float
) -> np.ndarray:
    offset = points - center
    along = offset @ axis
    across = offset @ np.array([-axis[1], axis[0]])
    return (along / half_length) ** 2 + (across / half_width) ** 2 <= 1.0


def _on_tail(pose: Pose, points: np.ndarray, params: ArenaParams, length: float) -> np.ndarray:
    """Points within half the drawn thickness of the tail (three tapering sections as drawn)."""
    tail = _tail_points(pose, length, params.arena_rect()) / _SCALE
    per_section = (len(tail) - 1) // len(TAIL_THICKNESSES)
    covered = np.zeros(len(points), dtype=bool)
    for segment in range(len(tail) - 1):
        radius = 0.5 * max(1, round(TAIL_THICKNESSES[segment // per_section] * length))
        start, end = tail[segment], tail[segment + 1]
        direction = end - start
        span = float(direction @ direction)
        fraction = np.clip((points - start) @ direction / span, 0.0, 1.0) if span else 0.0
        nearest = start + np.multiply.outer(fraction, direction)
        covered |= np.hypot(*(points - nearest).T) <= radius
    return covered


# --------------------------------------------------------------------------------------------------
# Frame by frame
# --------------------------------------------------------------------------------------------------


@dataclass
class SimulatedHerd(FrameSimulation):
    """Motion, rendering and truth of several animals: each call renders the next frame."""

    params: HerdParams
    motion: HerdMotion = field(init=False)
    renderer: ArenaRenderer = field(init=False)
    next_frame_index: int = field(init=False, default=0)
    _lookup: HerdMotion | None = field(init=False, default=None, repr=False)
    _lookup_index: int = field(init=False, default=0, repr=False)
    _lookup_poses: list[Pose] = field(init=False, default_factory=list, repr=False)

    def __post_init__(self) -> None:
        """Build the motion model and the renderer (the renderer precomputes its images)."""
        self.motion = make_herd_motion(self.params)
        self.renderer = ArenaRenderer(self.params.arena)

    @property
    def animal_names(self) -> tuple[str, ...]:
        """The identities, in the order of the animal axis: ``animal1``, ``animal2``, ..."""
        return animal_names(self.params.animals)

    def render_next(self, out: np.ndarray) -> tuple[int, np.ndarray]:
        """Render the next frame into ``out``; return its index and truth (A, 6, 3)."""
        index = self.next_frame_index
        poses = self.motion.step()
        marks = self.params.marks
        render_herd(self.renderer, self.params.arena, poses, marks, index, out)
        self.next_frame_index = index + 1
        return index, truth_from_poses(poses, self.params.arena, marks)

    def truth_at(self, frame_index: int) -> np.ndarray:
        """Return the truth of any frame without rendering, shape (A, 6, 3).

        Random walks are replayed from frame 0: cheap in increasing order.
        """
        if frame_index < 0:
            raise ValueError(f"frame index must be >= 0, not {frame_index}")
        # A motion of its own, so that looking up never disturbs the rendered stream.
        if self._lookup is None:
            self._lookup = make_herd_motion(self.params)
        if isinstance(self._lookup, ScriptedHerdMotion):
            return truth_from_poses(
                self._lookup.poses_at(frame_index), self.params.arena, self.params.marks
            )
        # A random walk has stepped through frames 0 .. _lookup_index - 1 (the last poses kept).
        if frame_index < self._lookup_index - 1:
            self._lookup, self._lookup_index = make_herd_motion(self.params), 0
        while self._lookup_index <= frame_index:
            self._lookup_poses = self._lookup.step()
            self._lookup_index += 1
        return truth_from_poses(self._lookup_poses, self.params.arena, self.params.marks)


def render_herd(
    renderer: ArenaRenderer,
    arena: ArenaParams,
    poses: list[Pose],
    marks: tuple[Marks, ...],
    frame_index: int,
    out: np.ndarray,
) -> None:
    """Draw frame ``frame_index`` of animals at ``poses`` with ``marks`` into ``out``, in order."""
    if not any(mark.marked for mark in marks):
        renderer.render_animals(poses, frame_index, out)
        return
    np.copyto(out, renderer.floor)
    cv2, floor = _cv2(), arena.arena_rect()
    for pose, mark in zip(poses, marks, strict=True):
        renderer.draw_animal(out, pose, mark.scale)
        draw_marks(cv2, out, pose, mark, arena.body_length_px * mark.scale, floor)
    renderer.light_and_add_noise(out, frame_index)


def simulate_herd_truth(params: HerdParams, n_frames: int) -> np.ndarray:
    """Truth (n_frames, A, 6, 3) a :class:`SimulatedHerd` delivers, without rendering."""
    motion = make_herd_motion(params)
    truth = np.empty((n_frames, params.animals, len(KEYPOINT_NAMES), 3))
    for index in range(n_frames):
        truth[index] = truth_from_poses(motion.step(), params.arena, params.marks)
    return truth
