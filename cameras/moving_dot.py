"""An example of a lab's own camera: a bright dot circling on a grey field, paced in real time.

Copy this file, rename it, and replace what ``open``, ``grab`` and ``close`` do with your
camera's SDK. A settings file beside this ``cameras/`` folder uses it by the module's name:

    [Camera rig]
    SOURCE = moving_dot
    WIDTH = 320
    FRAMERATE = 30

``SOURCE = moving_dot`` finds the one Camera class defined here; with several, write
``SOURCE = moving_dot:MovingDotCamera``. The keys of the section are the fields of the
``settings_class`` (declared with ``setting(...)``, parsed and checked like every other key:
a wrong value stops the start naming the file, section and key). docs/cameras.md, "A lab's own
camera", walks through it; tests/unit/hardware/cameras/test_lab_cameras.py runs this file.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.cameras.base import Camera, CameraError


@dataclass(frozen=True)
class MovingDotSettings:
    """``[Camera NAME]`` with ``SOURCE = moving_dot``."""

    width: int = setting(320, doc="Frame width.", minimum=32, maximum=4096, unit="px")
    height: int = setting(240, doc="Frame height.", minimum=32, maximum=4096, unit="px")
    framerate: float = setting(30.0, doc="Frames per second.", minimum=1, maximum=500, unit="Hz")
    period_s: float = setting(4.0, doc="Seconds per turn of the dot.", minimum=0.1, unit="s")


class MovingDotCamera(Camera):
    """A dot circling the centre; frame ``i`` is due ``i / FRAMERATE`` s after the first."""

    settings_class = MovingDotSettings

    @classmethod
    def lock_keys(cls, settings: MovingDotSettings) -> tuple[str, ...]:
        """None: sessions may share a simulated camera (a real one returns ``kind:serial``)."""
        return ()

    def open(self) -> FrameGeometry:
        """Nothing to open here; a real camera connects to its device and raises CameraError."""
        self._index = 0
        self._first_ns: int | None = None
        return FrameGeometry(self.settings.height, self.settings.width, 3)

    @property
    def nominal_fps(self) -> float:
        """FRAMERATE."""
        return self.settings.framerate

    def grab(self, out: np.ndarray) -> FrameStamp:
        """Draw the next frame into ``out`` and return its stamp when it is due."""
        if not hasattr(self, "_index"):
            raise CameraError(f"camera {self.name!r}: grab() before open()")
        settings = self.settings
        now_ns = host_now_ns()
        if self._first_ns is None:
            self._first_ns = now_ns
        due_ns = self._first_ns + round(self._index * 1e9 / settings.framerate)
        if due_ns > now_ns:
            time.sleep((due_ns - now_ns) / 1e9)  # sleep, never spin: the machine runs a network too
            now_ns = host_now_ns()
        seconds = self._index / settings.framerate
        angle = 2 * math.pi * seconds / settings.period_s
        centre_x = settings.width / 2 + settings.width / 4 * math.cos(angle)
        centre_y = settings.height / 2 + settings.height / 4 * math.sin(angle)
        out[:] = 96
        radius = max(3, settings.height // 20)
        rows, cols = np.ogrid[: settings.height, : settings.width]
        out[(rows - centre_y) ** 2 + (cols - centre_x) ** 2 <= radius**2] = 250
        # Stamped when the frame was due and taken, as a camera stamps its exposure, not after
        # the drawing: a frame is never stamped before it is due, however busy the machine.
        stamp = FrameStamp(self._index, seconds, now_ns)
        self._index += 1
        return stamp

    def close(self) -> None:
        """Nothing to release; a real camera stops its acquisition and disconnects here."""
