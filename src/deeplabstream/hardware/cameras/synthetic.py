"""The built-in simulated camera (``SOURCE = synthetic``): mice in an open field, no hardware.

docs/cameras.md, "The simulated arena".
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from deeplabstream.core.frames import FrameGeometry, FrameStamp, PixelFormat
from deeplabstream.core.pinhole import PinholeCamera
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.whole_rows import WholeRowsFile
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError
from deeplabstream.hardware.simulator.arena import (
    BEHAVIOUR_NAMES,
    KEYPOINT_NAMES,
    ArenaParams,
    SimulatedArena,
    Waypoint,
)
from deeplabstream.hardware.simulator.herd import (
    MAX_ANIMALS,
    HerdParams,
    SimulatedHerd,
    SocialKind,
    animal_names,
)
from deeplabstream.hardware.simulator.rig3d import (
    RIG_TARGET_MM,
    SimulatedBoardView,
    SimulatedRigView,
    floor_outside_view,
    sim_params,
    view_camera,
)

log = logging.getLogger(__name__)

#: A realtime frame later than this is not delivered: the camera skips to the frame due now
#: (a real camera's buffer drops what nobody took), so a stall never ends in a burst of old
#: frames stamped as if on time. A shorter lateness is caught up, none skipped.
CATCH_UP_LIMIT_S = 1.0

#: Grey levels of the LED spot when off for the whole exposure and when on for all of it; the
#: spot is drawn without noise, so its mean tells the lit fraction to 1 / 240 of an exposure.
LED_OFF_LEVEL = 10
LED_ON_LEVEL = 250

WAYPOINT_SYNTAX = (
    "waypoints 'FRAME: X Y' separated by ';' with strictly increasing whole frame numbers >= 0 "
    "and X, Y in pixels, e.g. '0: 100 240; 90: 320 240; 150: 320 400'"
)


def parse_waypoints(text: str) -> tuple[Waypoint, ...]:
    """Parse ``WAYPOINTS`` text such as ``0: 100 240; 90: 320 240`` into ``(frame, x, y)``.

    Raises ValueError naming the waypoint that cannot be read.
    """
    waypoints: list[Waypoint] = []
    items = [item.strip() for item in text.split(";")]
    for number, item in enumerate((item for item in items if item), start=1):
        waypoint = _parse_waypoint(number, item)
        if waypoints and waypoint[0] <= waypoints[-1][0]:
            raise ValueError(
                f"waypoint {number} '{item}': frame {waypoint[0]} is not after the previous "
                f"waypoint's frame {waypoints[-1][0]}"
            )
        waypoints.append(waypoint)
    return tuple(waypoints)


def _parse_waypoint(number: int, item: str) -> Waypoint:
    frame_text, colon, position_text = item.partition(":")
    if not colon:
        raise ValueError(f"waypoint {number} '{item}' has no ':' after the frame number")
    try:
        frame = int(frame_text)
    except ValueError:
        raise ValueError(
            f"waypoint {number} '{item}': frame '{frame_text.strip()}' is not a whole number"
        ) from None
    if frame < 0:
        raise ValueError(f"waypoint {number} '{item}': frame {frame} is negative")
    coordinates = position_text.replace(",", " ").split()
    if len(coordinates) != 2:
        raise ValueError(f"waypoint {number} '{item}': expected two numbers X Y after ':'")
    try:
        x, y = (float(value) for value in coordinates)
    except ValueError:
        raise ValueError(f"waypoint {number} '{item}': X and Y must be numbers") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"waypoint {number} '{item}': X and Y must be finite")
    return (frame, x, y)


POINT_SYNTAX = (
    "three numbers x, y, z in millimetres (world frame: floor z = 0, z up), e.g. 200, 150, 620"
)


def parse_point(text: str) -> tuple[float, ...]:
    """Parse ``x, y, z`` (millimetres); empty gives ``()``; else ValueError."""
    items = text.replace(",", " ").split()
    if not items:
        return ()
    try:
        values = tuple(float(item) for item in items)
    except ValueError:
        raise ValueError(f"'{text}' is not {POINT_SYNTAX}") from None
    if len(values) != 3 or not all(math.isfinite(value) for value in values):
        raise ValueError(f"'{text}' is not {POINT_SYNTAX}")
    return values


@dataclass(frozen=True)
class SyntheticSettings:
    """``[Camera NAME]`` with ``SOURCE = synthetic``: simulated mice in an open-field arena."""

    width: int = setting(640, doc="Frame width.", minimum=32, maximum=8192, unit="px")
    height: int = setting(480, doc="Frame height.", minimum=32, maximum=8192, unit="px")
    framerate: float = setting(
        30.0,
        doc="Frames per second. The animal's speeds and pauses are in real seconds, so its "
        "motion looks the same at any rate.",
        minimum=0.1,
        maximum=1000,
        unit="Hz",
    )
    pixel_format: PixelFormat = setting(
        "bgr8", doc="`bgr8`: colour frames (3 channels); `mono8`: greyscale frames."
    )
    seed: int = setting(
        0,
        doc="Seed of the simulation. The same seed and settings give exactly the same frames and "
        "keypoints every run; change it for a different animal path and floor texture.",
    )
    keypoints: tuple[str, ...] = setting(
        KEYPOINT_NAMES,
        doc="Keypoints written to the ground-truth file `<camera>.truth.csv`, in this order. "
        f"Any of: {', '.join(KEYPOINT_NAMES)}. The animal's left is its own left seen from "
        "above.",
    )
    motion: Literal["random", "waypoints"] = setting(
        "random",
        doc="`random`: a seeded random walk of a mouse (walks of 0.5-3 body lengths/s, "
        "occasional runs, freezes of 0.5-3 s, turning away from the walls). `waypoints`: the "
        "body centre follows WAYPOINTS, facing where it goes.",
    )
    waypoints: tuple[Waypoint, ...] = setting(
        (),
        doc="For MOTION = waypoints: `FRAME: X Y` entries separated by `;`, e.g. "
        "`0: 100 240; 90: 320 240; 150: 320 400`. The body centre moves in a straight line "
        "from one waypoint to the next by frame number, stays at the first before it and at "
        "the last after it. Positions are in pixels (x right, y down) inside the frame.",
        parse=parse_waypoints,
        allowed=WAYPOINT_SYNTAX,
    )
    animals: int = setting(
        1,
        doc="Number of mice, 1 to 3. They have one body plan and colour, as mice of one strain "
        "do, and carry the marks labs give theirs unless MARKS = false; they keep their "
        "identity `animal1`, `animal2`, `animal3` in the "
        "ground truth, which for 2 or 3 is in DeepLabCut's multi-animal layout. Where they "
        "overlap, the higher number is on top and the covered keypoints of the others have "
        "likelihood 0 in the truth.",
        minimum=1,
        maximum=MAX_ANIMALS,
    )
    social: SocialKind = setting(
        "free",
        doc="What 2 or 3 mice do. `free`: independent random walks (mouse 1 walks as a lone "
        "mouse with the same SEED). `cross`: they walk back and forth through the centre on "
        "crossing lines and meet there, bodies overlapping. `follow`: mouse 2 (and 3) follow "
        "mouse 1 around an oval about 1.5 body lengths apart. `touch`: mice 1 and 2 meet nose "
        "to nose, then mouse 2 sniffs mouse 1's tail base (mouse 3 joins the nose-to-nose "
        "meeting). The scripted scenarios repeat every few seconds; SEED mirrors them.",
    )
    marks: bool = setting(
        True,
        doc="With 2 or 3 mice: mark them as labs mark theirs, so that identities can come from "
        "their looks (docs/sleap-models.md, several animals): mouse 1 has a dark band round its "
        "tail, mouse 2 a bleached patch on its rump and a body 10 % smaller, mouse 3 a bleached "
        "patch on its head and two tail bands. `false`: the mice look alike and only motion "
        "tells them apart. A lone mouse is never marked.",
    )
    noise: float = setting(
        4.0,
        doc="Standard deviation of the pixel noise added to every frame, in grey levels.",
        minimum=0,
        maximum=64,
    )
    lighting_drift: float = setting(
        0.08,
        doc="Relative amplitude of the slow brightness drift (0.08 = up to 8 % brighter or "
        "darker, changing over tens of seconds); 0 for constant lighting.",
        minimum=0,
        maximum=0.5,
    )
    led_pin_log: str = setting(
        "",
        doc="Draw a stimulus LED: the pin log of the simulated stimulus board "
        "(`firmware/build/simstim --pins FILE`), whose lines `PIN <pin> <level> <board_ns> "
        "<host_ns>` say when the pin changed on the host clock. Empty: no LED. The LED's "
        "brightness in a frame is the fraction of that frame's exposure the pin was HIGH.",
    )
    led_pin: str = setting("PD4", doc="The pin of the LED in the pin log (`PD4` = channel 2).")
    led_x: int = setting(20, doc="Left edge of the LED spot.", minimum=0, maximum=8191, unit="px")
    led_y: int = setting(20, doc="Top edge of the LED spot.", minimum=0, maximum=8191, unit="px")
    led_size: int = setting(
        12, doc="Side of the square LED spot.", minimum=1, maximum=512, unit="px"
    )
    exposure: float = setting(
        0.0,
        doc="Exposure time of each frame, ending when the frame is due; 0: the whole frame "
        "interval (1 / FRAMERATE). Only the LED depends on it.",
        minimum=0,
        maximum=10000,
        unit="ms",
    )
    gain: float = setting(
        0.0,
        doc="Sensor gain: every pixel is multiplied by 10^(GAIN/20) (and clipped at 255), as a "
        "real camera's gain brightens or darkens its image; live from the Camera tab. 0: the "
        "frame as rendered.",
        minimum=-20,
        maximum=24,
        unit="dB",
    )
    behaviours: tuple[str, ...] = setting(
        (),
        doc="Labelled behaviours of the lone mouse, for training and scoring behaviour "
        f"classifiers: a comma list of {', '.join(BEHAVIOUR_NAMES)}. The random walk becomes "
        "bouts of these (walking 2-8 s, runs included; freezing 1-5 s, completely still; "
        "grooming 1.5-5 s, body still while the head strokes to and fro at 3-6 Hz and the nose "
        "draws back; rearing 0.8-3 s, body still while it shortens, seen from above, to 55-70 % "
        "of its length and back), one after another at random; only those named occur. Each "
        "frame's label is written to `<camera>.behaviour.csv` (columns `frame,behaviour`). "
        "Empty (the default): the plain random walk, exactly as without this key. Needs "
        "MOTION = random and ANIMALS = 1.",
        allowed=f"a comma-separated list of {', '.join(BEHAVIOUR_NAMES)}, or empty for none",
    )
    pacing: Literal["realtime", "free", "lockstep"] = setting(
        "realtime",
        doc="`realtime`: frame i is delivered i / FRAMERATE seconds after the first, like a real "
        "camera. `free`: frames are delivered as fast as they are rendered (tests, benchmarks). "
        "`lockstep`: as fast as pose estimation takes them, each only once the previous one was "
        "analysed, so that every frame is analysed whatever the machine's speed (tests; as a "
        "video file's PACING = lockstep).",
    )
    view_position: tuple[float, ...] = setting(
        (),
        doc="A view of the simulated 3D rig (docs/rig-3d.ini): where this camera is, in "
        "millimetres in the arena's world frame (the floor is z = 0, x from 0 to 400, y from 0 "
        "to 300, z up). The mouse of SEED is then a 3D mouse (it rears up to about 60 mm) "
        "seen through a pinhole camera at this position looking at VIEW_TARGET, and "
        "`<camera>.truth3d.csv` (columns `frame`, then `<keypoint>_x`, `_y`, `_z` in mm) is "
        "written beside the 2D truth. Empty (the default): the flat top-down arena, exactly as "
        "without this key. Needs ANIMALS = 1 and MOTION = random.",
        parse=parse_point,
        allowed=POINT_SYNTAX + ", or empty for the flat top-down arena",
    )
    view_target: tuple[float, ...] = setting(
        RIG_TARGET_MM,
        doc="The point (mm) that the 3D view (VIEW_POSITION) looks at; the middle of the image. "
        "The world's +y points up in the image.",
        parse=parse_point,
        allowed=POINT_SYNTAX,
    )
    focal_px: float = setting(
        0.0,
        doc="Focal length of the 3D view (VIEW_POSITION), in pixels; 0: the floor's width "
        "(400 mm) fills WIDTH at the distance of VIEW_TARGET, which makes the mouse as large "
        "as in the flat arena for a camera 600 mm above the floor.",
        minimum=0,
        maximum=100000,
        unit="px",
    )
    scene: Literal["mouse", "board"] = setting(
        "mouse",
        doc="What a 3D view (VIEW_POSITION) shows. `mouse`: the mouse of SEED. `board`: the "
        "ChArUco calibration board of `deeplabstream.hardware.simulator.board` instead, lying "
        "flat on the floor at its "
        "known pose for the first second (so a calibration takes the floor frame from it), then "
        "moved around over the floor, tilted and turned, deterministically from SEED and the "
        "same in every view of that seed; each frame's board pose goes to `<camera>.board.csv` "
        "(columns `frame,rx,ry,rz,tx,ty,tz`: Rodrigues board -> world and the board's origin "
        "corner in mm) instead of the mouse's truth files. Needs VIEW_POSITION.",
    )
    sync: bool = setting(
        False,
        doc="Synchronise the views of a rig (each camera runs in its own process): frame k is "
        "due at a shared grid of host times (multiples of 1 / FRAMERATE on the host's "
        "monotonic clock) counted from an epoch that every synthetic camera of the session "
        "reads from the file `sync-epoch.txt` in the session folder (the first to start writes "
        "it), its camera timestamp is k / FRAMERATE and it shows the simulation's frame k. "
        "Cameras with the same SEED, FRAMERATE and BEHAVIOURS thus show the same mouse at the "
        "same instant with equal timestamps. A camera that falls behind skips frame numbers "
        "rather than lag. Off: each camera counts from its own first frame.",
    )

    def __post_init__(self) -> None:
        """Check the keypoint names and the keys that depend on each other."""
        unknown = [name for name in self.keypoints if name not in KEYPOINT_NAMES]
        allowed = ", ".join(KEYPOINT_NAMES)
        if unknown:
            raise ValueError(
                f"KEYPOINTS: unknown keypoint(s) {', '.join(unknown)}; allowed: {allowed}"
            )
        if not self.keypoints:
            raise ValueError(f"KEYPOINTS: name at least one keypoint of: {allowed}")
        if len(set(self.keypoints)) != len(self.keypoints):
            raise ValueError(f"KEYPOINTS: each keypoint may appear once, got {self.keypoints}")
        if self.social != "free" and self.animals == 1:
            raise ValueError(
                f"SOCIAL = {self.social} needs ANIMALS = 2 or 3 (one mouse walks alone: "
                "SOCIAL = free)"
            )
        if self.motion == "waypoints" and self.animals > 1:
            raise ValueError(
                f"MOTION = waypoints moves one mouse, but ANIMALS = {self.animals}: set "
                "ANIMALS = 1, or MOTION = random with a SOCIAL scenario"
            )
        self._check_behaviours()
        if self.motion == "waypoints" and not self.waypoints:
            raise ValueError(
                "MOTION = waypoints needs WAYPOINTS, e.g. WAYPOINTS = 0: 100 240; 90: 320 240"
            )
        if self.led_pin_log and (
            self.led_x + self.led_size > self.width or self.led_y + self.led_size > self.height
        ):
            raise ValueError(
                f"LED_X, LED_Y, LED_SIZE: the LED spot does not fit in the {self.width}x"
                f"{self.height} frame"
            )
        if self.exposure * self.framerate > 1000:
            raise ValueError("EXPOSURE: longer than one frame interval (1000 / FRAMERATE ms)")
        for frame, x, y in self.waypoints:
            if not (0 <= x <= self.width - 1 and 0 <= y <= self.height - 1):
                raise ValueError(
                    f"WAYPOINTS: the waypoint at frame {frame} ({x:g}, {y:g}) is outside the "
                    f"{self.width}x{self.height} frame"
                )
        self._check_view()
        if self.animals > 1:
            try:
                self.herd_params()
            except ValueError as error:
                raise ValueError(
                    f"ANIMALS = {self.animals}, SOCIAL = {self.social}: {error}"
                ) from None

    def _check_behaviours(self) -> None:
        """BEHAVIOURS: known names, each once, for one randomly walking mouse."""
        valid = ", ".join(BEHAVIOUR_NAMES)
        unknown = [name for name in self.behaviours if name not in BEHAVIOUR_NAMES]
        if unknown:
            raise ValueError(
                f"BEHAVIOURS: unknown behaviour(s) {', '.join(unknown)}; valid: {valid}"
            )
        if len(set(self.behaviours)) != len(self.behaviours):
            raise ValueError(f"BEHAVIOURS: each behaviour may appear once, got {self.behaviours}")
        if self.behaviours and self.animals > 1:
            raise ValueError(
                f"BEHAVIOURS are simulated for one mouse only (not yet for several), but "
                f"ANIMALS = {self.animals}: set ANIMALS = 1 or leave BEHAVIOURS empty"
            )
        if self.behaviours and self.motion != "random":
            raise ValueError(
                "BEHAVIOURS need MOTION = random (the mouse's own walk), not MOTION = "
                f"{self.motion}"
            )

    def _check_view(self) -> None:
        """VIEW_POSITION, VIEW_TARGET, FOCAL_PX: a 3D view of one mouse that sees the floor."""
        if self.scene == "board" and not self.view_position:
            raise ValueError(
                "SCENE = board draws the calibration board into a 3D view: set VIEW_POSITION "
                "(and VIEW_TARGET, FOCAL_PX), e.g. VIEW_POSITION = 200, 150, 620"
            )
        if not self.view_position:
            return
        if self.animals > 1 or self.motion != "random":
            raise ValueError(
                "VIEW_POSITION: the 3D rig simulates one randomly walking mouse; set ANIMALS = 1 "
                "and MOTION = random, or leave VIEW_POSITION empty"
            )
        if len(self.view_target) != 3:
            raise ValueError(f"VIEW_TARGET: expected {POINT_SYNTAX}")
        z = self.view_position[2]
        if z <= 0:
            raise ValueError(
                f"VIEW_POSITION: the camera at z = {z:g} mm is not above the floor (z = 0); "
                "give a height above it, e.g. 600"
            )
        if not self.view_target[2] < z:
            raise ValueError(
                f"VIEW_TARGET: the camera at height {z:g} mm must look down at the floor, but "
                f"the target is at height {self.view_target[2]:g} mm (the floor would be behind "
                "or beside the view); put the target lower, e.g. on the floor (z = 0)"
            )
        problems = floor_outside_view(self.view_camera("view"), self.arena_params())
        if problems:
            raise ValueError(
                f"VIEW_POSITION, VIEW_TARGET, FOCAL_PX: the mouse could walk out of the "
                f"{self.width}x{self.height} view ({'; '.join(problems)}); move the camera "
                "farther away, aim it at the floor's middle (200, 150, 0) or lower FOCAL_PX"
            )

    @property
    def is_3d_view(self) -> bool:
        """True when VIEW_POSITION makes this camera a view of the 3D rig."""
        return bool(self.view_position)

    def view_camera(self, name: str) -> PinholeCamera:
        """Return the true calibration of this 3D view (VIEW_POSITION must be set)."""
        if not self.view_position:
            raise ValueError("VIEW_POSITION is empty: this camera has no 3D view")
        position = np.asarray(self.view_position)
        focal = self.focal_px or float(
            np.linalg.norm(np.asarray(self.view_target) - position) * self.width / 400.0
        )
        return view_camera(
            name, (self.width, self.height), focal, self.view_position, self.view_target
        )

    def arena_params(self) -> ArenaParams:
        """Return the simulation these settings describe (for a 3D view: the flat 640 x 480 one)."""
        if self.view_position:
            return sim_params(
                self.seed,
                self.framerate,
                self.behaviours,
                self.pixel_format == "bgr8",
                self.noise,
                self.lighting_drift,
            )
        return ArenaParams(
            width=self.width,
            height=self.height,
            framerate=self.framerate,
            seed=self.seed,
            color=self.pixel_format == "bgr8",
            motion=self.motion,
            waypoints=self.waypoints,
            noise=self.noise,
            lighting_drift=self.lighting_drift,
            behaviours=self.behaviours,
        )

    def herd_params(self) -> HerdParams:
        """Return the simulation of all ANIMALS (for one mouse, :meth:`arena_params` is used)."""
        return HerdParams(
            self.arena_params(), animals=self.animals, social=self.social, marked=self.marks
        )


class PinLogFollower:
    """Follows one pin (``PD4``) of the simulated board's pin log, never blocking."""

    def __init__(self, path: Path, pin: str) -> None:
        self.path = path
        self.pin = pin
        self.changes: list[tuple[int, int]] = []  # (host_ns, level), in order
        self._offset = 0
        self._partial = b""

    def update(self) -> None:
        """Read the complete lines added since the last call."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return  # the harness has not created it yet
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        for line in complete.split(b"\n"):
            fields = line.split()
            if len(fields) == 5 and fields[1].decode() == self.pin:
                self.changes.append((int(fields[4]), int(fields[2])))

    def high_fraction(self, start_ns: int, end_ns: int) -> float:
        """Return the fraction of ``[start_ns, end_ns]`` (host clock) in which the pin was HIGH."""
        if end_ns <= start_ns:
            return float(self.level_at(end_ns))
        high_ns = 0
        level = self.level_at(start_ns)
        since = start_ns
        for time_ns, new_level in self.changes:
            if time_ns <= start_ns:
                continue
            if time_ns >= end_ns:
                break
            if level:
                high_ns += time_ns - since
            level, since = new_level, time_ns
        if level:
            high_ns += end_ns - since
        return high_ns / (end_ns - start_ns)

    def level_at(self, time_ns: int) -> int:
        """Return the pin's level at ``time_ns`` (LOW before its first change)."""
        level = 0
        for change_ns, new_level in self.changes:
            if change_ns > time_ns:
                break
            level = new_level
        return level


class TruthCsvWriter(WholeRowsFile):
    """Writes ground-truth keypoints in DeepLabCut's CSV layout, one whole row per frame.

    Multi-animal layout with ``individuals`` (likelihood 0.0 where covered). A disk error stops the
    file, not the camera (:attr:`error`). An existing file is refused.
    """

    SCORER = "simulation"

    def __init__(
        self, path: Path, keypoint_names: tuple[str, ...], individuals: tuple[str, ...] = ()
    ) -> None:
        self._columns = np.array([KEYPOINT_NAMES.index(name) for name in keypoint_names])
        self._animals = len(individuals)
        if individuals:
            per_row = len(individuals) * len(keypoint_names)
            self._row_template = "%d" + ",%.3f,%.3f,%.1f" * per_row + "\n"
        else:
            self._row_template = "%d" + ",%.3f,%.3f,1.0" * len(keypoint_names) + "\n"
        super().__init__(path, _truth_header(keypoint_names, individuals, self.SCORER))

    def write(self, frame_index: int, keypoints: np.ndarray) -> None:
        """Append one frame's row: keypoints (6, 2), or (A, 6, 3) with visibility per animal."""
        if self._animals:
            if keypoints.shape[0] != self._animals or keypoints.shape[-1] != 3:
                raise ValueError(
                    f"expected the truth of {self._animals} animals, shape "
                    f"({self._animals}, {len(KEYPOINT_NAMES)}, 3), but got {keypoints.shape}"
                )
            coordinates = keypoints[:, self._columns].ravel().tolist()
        else:
            coordinates = keypoints[self._columns].ravel().tolist()
        self.write_row(self._row_template % (frame_index, *coordinates))


class BehaviourCsvWriter(WholeRowsFile):
    """Writes each frame's behaviour label (``frame,behaviour``) as the truth file; no overwrite."""

    HEADER = "frame,behaviour\n"

    def __init__(self, path: Path) -> None:
        super().__init__(path, self.HEADER)

    def write(self, frame_index: int, behaviour: str) -> None:
        """Append the row of one frame: its index and its label."""
        self.write_row(f"{frame_index},{behaviour}\n")


class Truth3dCsvWriter(WholeRowsFile):
    """Writes each frame's 3D truth in millimetres, laid out like Anipose's ``points3d.csv``."""

    def __init__(self, path: Path, keypoint_names: tuple[str, ...]) -> None:
        self._columns = np.array([KEYPOINT_NAMES.index(name) for name in keypoint_names])
        columns = [f"{name}_{axis}" for name in keypoint_names for axis in "xyz"]
        self._row_template = "%d" + ",%.3f" * len(columns) + "\n"
        super().__init__(path, ",".join(["frame", *columns]) + "\n")

    def write(self, frame_index: int, keypoints: np.ndarray) -> None:
        """Append the row of one frame: its index and the (6, 3) keypoints (all, in mm)."""
        coordinates = keypoints[self._columns].ravel().tolist()
        self.write_row(self._row_template % (frame_index, *coordinates))


class BoardPoseCsvWriter(WholeRowsFile):
    """Writes the calibration board's pose per frame (SCENE = board): ``frame,rx,ry,rz,tx,ty,tz``.

    Rodrigues rotation board -> world; translation in world millimetres. No overwrite.
    """

    HEADER = "frame,rx,ry,rz,tx,ty,tz\n"

    def __init__(self, path: Path) -> None:
        super().__init__(path, self.HEADER)

    def write(self, frame_index: int, rotation: np.ndarray, translation: np.ndarray) -> None:
        """Append the row of one frame: its index, the board's rotation and origin."""
        values = (*np.asarray(rotation).tolist(), *np.asarray(translation).tolist())
        self.write_row(("%d" + ",%.6f" * 3 + ",%.3f" * 3 + "\n") % (frame_index, *values))


SYNC_EPOCH_FILE = "sync-epoch.txt"
"""The file in a session folder that holds the synchronised views' epoch (host ns)."""

_SYNC_LEAD_NS = 1_000_000_000  # the epoch is a whole second at least this far ahead


def agree_on_epoch(session_dir: Path, now_ns: int) -> int:
    """Return the session's sync epoch (host ns), writing it first if no camera has yet."""
    path = Path(session_dir) / SYNC_EPOCH_FILE
    proposal = (now_ns // 1_000_000_000) * 1_000_000_000 + 2 * _SYNC_LEAD_NS
    aside = path.with_name(f".{SYNC_EPOCH_FILE}.{os.getpid()}")
    aside.write_text(f"{proposal}\n", encoding="ascii")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink(missing_ok=True)
    return int(path.read_text(encoding="ascii").strip())


class FrameGrid:
    """Due times of synchronised frames at ``framerate`` from ``epoch_ns``, in integers only."""

    def __init__(self, framerate: float, epoch_ns: int) -> None:
        self._rate = Fraction(framerate).limit_denominator(1_000_000)
        self.epoch_tick = self.tick_at_or_after(epoch_ns)

    def tick_at_or_after(self, time_ns: int) -> int:
        """Return the first tick whose due time (:meth:`due_ns`, whole ns) is at or after it."""
        rate = self._rate
        return ((time_ns - 1) * rate.numerator) // (1_000_000_000 * rate.denominator) + 1

    def due_ns(self, frame_index: int) -> int:
        """Return the host time at which frame ``frame_index`` (from the epoch) is due."""
        rate, tick = self._rate, self.epoch_tick + frame_index
        return -((-tick * 1_000_000_000 * rate.denominator) // rate.numerator)

    def frame_at_or_after(self, time_ns: int) -> int:
        """Return the first frame index due at or after ``time_ns`` (0 before the epoch)."""
        return max(0, self.tick_at_or_after(time_ns) - self.epoch_tick)


def _truth_header(
    keypoint_names: tuple[str, ...], individuals: tuple[str, ...], scorer: str
) -> str:
    """Return the header rows of a truth table: DeepLabCut's single- or multi-animal layout."""
    animals = individuals or ("",)
    columns = [(animal, name) for animal in animals for name in keypoint_names]
    triples = [column for column in columns for _ in range(3)]
    rows = [["scorer", *[scorer] * len(triples)]]
    if individuals:
        rows.append(["individuals", *[animal for animal, _ in triples]])
    rows.append(["bodyparts", *[name for _, name in triples]])
    rows.append(["coords", *["x", "y", "likelihood"] * len(columns)])
    return "".join(",".join(row) + "\n" for row in rows)


class SyntheticCamera(Camera):
    """A simulated top-down camera over an open field with 1 to 3 mice (``hardware.simulator``).

    The stream never ends; docs/cameras.md.
    """

    settings_class: ClassVar[type] = SyntheticSettings

    @classmethod
    def lock_keys(cls, settings: SyntheticSettings) -> tuple[str, ...]:
        """Lock nothing: any number of sessions may simulate the arena."""
        return ()

    def __init__(self, name: str, settings: SyntheticSettings) -> None:
        super().__init__(name, settings)
        self.settings: SyntheticSettings = settings
        self._arena: (
            SimulatedArena | SimulatedHerd | SimulatedRigView | SimulatedBoardView | None
        ) = None
        self._truth: TruthCsvWriter | None = None
        self._labels: BehaviourCsvWriter | None = None
        self._truth3d: Truth3dCsvWriter | None = None
        self._board: BoardPoseCsvWriter | None = None
        self._grid: FrameGrid | None = None  # SYNC = on: the shared grid, once agreed
        self._first_grab_ns: int | None = None
        self._led: PinLogFollower | None = None
        self._gain_lut: tuple[float, np.ndarray] | None = None  # (GAIN, its table)
        # Frame rate changes while streaming: (index, due host ns, camera s) of the frame the
        # current rate counts from, so pacing and camera time go on without a jump.
        self._rate_origin: tuple[int, int, float] = (0, 0, 0.0)
        self._last_index: int | None = None

    def open(self) -> FrameGeometry:
        """Build the simulation (floor texture and noise are precomputed here)."""
        if self.settings.is_3d_view:
            camera = self.settings.view_camera(self.name)
            salt = sum(self.name.encode())  # each view's own pixel noise
            scene = SimulatedBoardView if self.settings.scene == "board" else SimulatedRigView
            self._arena = scene(self.settings.arena_params(), camera, salt)
        elif self.settings.animals > 1:
            self._arena = SimulatedHerd(self.settings.herd_params())
        else:
            self._arena = SimulatedArena(self.settings.arena_params())
        self._first_grab_ns = None
        self._grid = None
        self._last_index = None
        if self.settings.led_pin_log:
            self._led = PinLogFollower(Path(self.settings.led_pin_log), self.settings.led_pin)
        return FrameGeometry.for_pixel_format(
            self.settings.width, self.settings.height, self.settings.pixel_format
        )

    @property
    def nominal_fps(self) -> float | None:
        """FRAMERATE."""
        return self.settings.framerate

    @property
    def waits_for_analysis(self) -> bool:
        """True with ``PACING = lockstep`` (the capture process does the waiting)."""
        return self.settings.pacing == "lockstep"

    @property
    def paced(self) -> bool:
        """True with ``PACING = realtime``: a frame is due every 1 / FRAMERATE s."""
        return self.settings.pacing == "realtime"

    def grab(self, out: np.ndarray) -> FrameStamp:
        """Render the next frame into ``out``, record its truth, and wait until it is due."""
        if self._arena is None:
            raise CameraError(f"camera {self.name!r}: grab() before open()")
        if self.settings.sync:
            self._skip_to_grid()
        elif self._first_grab_ns is None:
            self._first_grab_ns = host_now_ns()
            self._rate_origin = (0, self._first_grab_ns, 0.0)
        elif self.settings.pacing == "realtime":
            self._skip_after_stall()
        index = self._render_and_record(out)
        self._last_index = index
        if self._labels is not None and isinstance(self._arena, SimulatedArena | SimulatedRigView):
            self._labels.write(index, self._arena.behaviour or "")
        if self.settings.pacing == "realtime":
            self._sleep_until_due(index)
        if self._led is not None:
            self._draw_led(out, self.exposure_end_ns(index))
        if self._gain_table is not None:
            cv2.LUT(out, self._gain_table, dst=out)
        origin_index, _, origin_s = self._rate_origin
        camera_s = origin_s + (index - origin_index) / self.settings.framerate
        return FrameStamp(
            frame_index=index, camera_timestamp=camera_s, host_timestamp_ns=host_now_ns()
        )

    def _render_and_record(self, out: np.ndarray) -> int:
        """Render the next frame into ``out``, write its truth (or board pose); return its index."""
        assert self._arena is not None
        if isinstance(self._arena, SimulatedBoardView):
            index, rotation, translation = self._arena.render_next(out)
            if self._board is not None:
                self._board.write(index, rotation, translation)
            return index
        if isinstance(self._arena, SimulatedRigView):
            index, keypoints, keypoints3d = self._arena.render_next(out)
            if self._truth3d is not None:
                self._truth3d.write(index, keypoints3d)
        else:
            index, keypoints = self._arena.render_next(out)
        if self._truth is not None:
            self._truth.write(index, keypoints)
        return index

    def _skip_to_grid(self) -> None:
        """Move the simulation to the grid's next frame (SYNC = on), from the session's epoch."""
        assert self._arena is not None
        if self._grid is None:
            now = host_now_ns()
            self._grid = FrameGrid(self.settings.framerate, (now // 10**9 + 1) * 10**9)
        if self._first_grab_ns is None:
            self._first_grab_ns = self._grid.due_ns(0)
            self._rate_origin = (0, self._first_grab_ns, 0.0)
        wanted = self._grid.frame_at_or_after(host_now_ns())
        if self.settings.pacing != "realtime" or wanted < self._arena.next_frame_index:
            return  # free pacing renders every frame; an early call waits for its frame
        self._arena.skip_to(wanted)

    def _skip_after_stall(self) -> None:
        """Go on with the frame due now when the next one is over CATCH_UP_LIMIT_S late."""
        assert self._arena is not None
        now_ns = host_now_ns()
        late_ns = now_ns - self.exposure_end_ns(self._arena.next_frame_index)
        if late_ns <= CATCH_UP_LIMIT_S * 1e9:
            return
        origin_index, origin_ns, _ = self._rate_origin
        due_now = origin_index + math.ceil((now_ns - origin_ns) * self.settings.framerate / 1e9)
        self._arena.skip_to(due_now)

    @property
    def _gain_table(self) -> np.ndarray | None:
        """The 256-entry table that applies GAIN to a frame; None at 0 dB (nothing to do)."""
        gain_db = self.settings.gain
        if gain_db == 0.0:
            return None
        if self._gain_lut is None or self._gain_lut[0] != gain_db:
            factor = 10.0 ** (gain_db / 20.0)
            table = np.clip(np.round(np.arange(256) * factor), 0, 255).astype(np.uint8)
            self._gain_lut = (gain_db, table)
        return self._gain_lut[1]

    def controls(self) -> tuple[CameraControl, ...]:
        """Frame rate, exposure and gain (live); the frame size (at the next Start Stream)."""
        s = self.settings
        return (
            CameraControl("gain", "Gain", -20.0, 24.0, 0.0, s.gain, "dB", key="GAIN"),
            CameraControl(
                "framerate",
                "Frame rate",
                0.1,
                min(1000.0, 1000.0 / s.exposure) if s.exposure else 1000.0,
                0.0,
                s.framerate,
                "Hz",
                key="FRAMERATE",
            ),
            CameraControl(
                "exposure",
                "Exposure (0: whole frame)",
                0.0,
                min(10000.0, 1000.0 / s.framerate),
                0.0,
                s.exposure,
                "ms",
                key="EXPOSURE",
            ),
            CameraControl("width", "Width", 32, 8192, 1, s.width, "px", live=False, key="WIDTH"),
            CameraControl(
                "height", "Height", 32, 8192, 1, s.height, "px", live=False, key="HEIGHT"
            ),
        )

    def set_control(self, name: str, value: float) -> float:
        """Change the frame rate or exposure (the animal's step per frame stays till restart)."""
        self.checked_control(name, value)
        if name == "framerate" and self.settings.sync:
            raise CameraError(
                f"camera {self.name!r}: FRAMERATE cannot change while SYNC = on (the views of "
                "the rig would fall out of step); change it in the settings of every view"
            )
        if name == "framerate":
            if self._last_index is not None:
                index = self._last_index
                origin_index, _, origin_s = self._rate_origin
                camera_s = origin_s + (index - origin_index) / self.settings.framerate
                self._rate_origin = (index, self.exposure_end_ns(index), camera_s)
            self._replace_settings(framerate=float(value))
            return self.settings.framerate
        if name == "gain":
            self._replace_settings(gain=float(value))
            return self.settings.gain
        self._replace_settings(exposure=float(value))
        return self.settings.exposure

    def _replace_settings(self, **changes: float) -> None:
        """Keep the changed keys in ``settings`` (its checks apply); CameraError if refused."""
        try:
            self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        except ValueError as error:
            raise CameraError(f"camera {self.name!r}: {error}") from None

    @property
    def exposure_ns(self) -> int:
        """The exposure of each frame (EXPOSURE, or the whole frame interval)."""
        exposure_ms = self.settings.exposure or 1000.0 / self.settings.framerate
        return round(exposure_ms * 1e6)

    def exposure_end_ns(self, index: int) -> int:
        """Host time at which frame ``index``'s exposure ends: when it is due."""
        if self._grid is not None:
            return self._grid.due_ns(index)
        if self._first_grab_ns is None:
            raise CameraError(f"camera {self.name!r}: no frame grabbed yet")
        origin_index, origin_ns, _ = self._rate_origin
        return origin_ns + round((index - origin_index) * 1e9 / self.settings.framerate)

    def _draw_led(self, out: np.ndarray, exposure_end_ns: int) -> None:
        """Draw the LED as the sensor integrates it: lit for the part of the exposure it was on."""
        # Called once the exposure is over, so every pin change inside it is in the log already.
        assert self._led is not None
        self._led.update()
        fraction = self._led.high_fraction(exposure_end_ns - self.exposure_ns, exposure_end_ns)
        level = round(LED_OFF_LEVEL + fraction * (LED_ON_LEVEL - LED_OFF_LEVEL))
        s = self.settings
        out[s.led_y : s.led_y + s.led_size, s.led_x : s.led_x + s.led_size] = level

    def _sleep_until_due(self, index: int) -> None:
        """Sleep (never spin) until frame ``index`` is due; a late frame goes out at once."""
        remaining_ns = self.exposure_end_ns(index) - host_now_ns()
        if remaining_ns > 0:
            time.sleep(remaining_ns / 1e9)

    def start_session(self, session_dir: Path) -> None:
        """Start the session's truth files in ``session_dir``, as the settings ask.

        ``<name>.truth.csv``, with BEHAVIOURS ``.behaviour.csv``, with VIEW_POSITION
        ``.truth3d.csv``; with SCENE = board only ``.board.csv``. With SYNC = on, the epoch is
        agreed on here.
        """
        self._close_files()
        if self.settings.sync and self._grid is None:
            epoch_ns = agree_on_epoch(Path(session_dir), host_now_ns())
            self._grid = FrameGrid(self.settings.framerate, epoch_ns)
        if self.settings.scene == "board":
            board = Path(session_dir) / f"{self.name}.board.csv"
            self._board = BoardPoseCsvWriter(board)
            return
        path = Path(session_dir) / f"{self.name}.truth.csv"
        animals = self.settings.animals
        individuals = animal_names(animals) if animals > 1 else ()
        self._truth = TruthCsvWriter(path, self.settings.keypoints, individuals)
        if self.settings.behaviours:
            labels = Path(session_dir) / f"{self.name}.behaviour.csv"
            self._labels = BehaviourCsvWriter(labels)
        if self.settings.is_3d_view:
            truth3d = Path(session_dir) / f"{self.name}.truth3d.csv"
            self._truth3d = Truth3dCsvWriter(truth3d, self.settings.keypoints)

    def finish_session(self) -> None:
        """Flush the truth (and behaviour) file so that it is complete on disk."""
        for writer in (self._truth, self._labels, self._truth3d, self._board):
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        """Close the truth (and behaviour) file and drop the simulation; safe to call again."""
        self._close_files()
        self._arena = None

    def _close_files(self) -> None:
        for writer in (self._truth, self._labels, self._truth3d, self._board):
            if writer is not None:
                writer.close()
        self._truth = self._labels = self._truth3d = self._board = None

    def describe(self) -> dict[str, Any]:
        """Kind, seed, motion and keypoints (and the animals when several), for ``session.json``."""
        animals = self.settings.animals
        herd = (
            {
                "animals": list(animal_names(animals)),
                "social": self.settings.social,
                # Each mouse's marks (hardware.simulator.marks): its size, tail bands, bleached
                # patch.
                "marks": [dataclasses.asdict(m) for m in self.settings.herd_params().marks],
            }
            if animals > 1
            else {}
        )
        return {
            "kind": "simulated arena",
            "seed": self.settings.seed,
            "motion": self.settings.motion,
            "keypoints": list(self.settings.keypoints),
            "body_length_px": self.settings.arena_params().body_length_px,
            # The frame's camera timestamp is when its exposure ended (when it was due).
            "timestamp_marks": "exposure_end",
            "timestamp_clock": "host",  # index / FRAMERATE after the first frame's host time
            # ... which is this (known after the first frame): exposure ends exactly, no fit.
            "timestamp_origin_ns": self._first_grab_ns,
            "exposure_ms": self.exposure_ns / 1e6,
            "led": self.settings.led_pin if self.settings.led_pin_log else None,
            **herd,
            **({"behaviours": list(self.settings.behaviours)} if self.settings.behaviours else {}),
            **self._view_description(),
            **self._file_errors(),
        }

    def _view_description(self) -> dict[str, Any]:
        """Return the 3D view's true calibration and the sync, when set (empty when neither)."""
        described: dict[str, Any] = {}
        if self.settings.is_3d_view:
            described["view"] = self.settings.view_camera(self.name).to_toml_table()
        if self.settings.sync:
            described["sync"] = "grid of 1 / FRAMERATE from the session's sync-epoch.txt"
        return described

    def _file_errors(self) -> dict[str, Any]:
        """``file_errors`` when the ground truth stopped early (the session reports them)."""
        writers = (self._truth, self._labels, self._truth3d, self._board)
        errors = [w.error for w in writers if w is not None and w.error]
        return {"file_errors": errors} if errors else {}


# --------------------------------------------------------------------------------------------------
# The true calibration of a simulated rig
# --------------------------------------------------------------------------------------------------


def rig_cameras(cameras: Iterable[tuple[str, object]]) -> list[PinholeCamera]:
    """Return the true calibration of the synthetic 3D views (VIEW_POSITION) among ``cameras``."""
    return [
        options.view_camera(name)
        for name, options in cameras
        if isinstance(options, SyntheticSettings) and options.is_3d_view
    ]
