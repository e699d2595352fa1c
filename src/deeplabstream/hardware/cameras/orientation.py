"""Turn and mirror any camera's frames in its capture process, before anyone sees them.

Mirroring may change while streaming; ROTATE applies at the next Start Stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError, CompanionStream

ROTATIONS = (0, 90, 180, 270)  # degrees, clockwise
MIRRORS = ("off", "horizontal", "vertical", "both")
_MIRROR_CONTROLS = {"mirror_horizontal": "horizontal", "mirror_vertical": "vertical"}


def turned(frame: np.ndarray, rotate: int, mirror: str) -> np.ndarray:
    """Return a view of ``frame`` rotated clockwise by ``rotate`` degrees, then mirrored."""
    view = np.rot90(frame, k=-(rotate // 90)) if rotate else frame
    if mirror in ("horizontal", "both"):
        view = view[:, ::-1]
    if mirror in ("vertical", "both"):
        view = view[::-1]
    return view


def turned_geometry(geometry: FrameGeometry, rotate: int) -> FrameGeometry:
    """Return the geometry of frames rotated by ``rotate`` (90 and 270 swap width and height)."""
    if rotate in (90, 270):
        return FrameGeometry(geometry.width, geometry.height, geometry.channels, geometry.dtype)
    return geometry


class OrientedCamera(Camera):
    """Another camera, its frames rotated and mirrored; everything else is the camera's own."""

    settings_class = type(None)  # never chosen by SOURCE: it wraps the camera that is

    def __init__(self, inner: Camera, rotate: int = 0, mirror: str = "off") -> None:
        if rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, not {rotate!r}")
        if mirror not in MIRRORS:
            raise ValueError(f"mirror must be one of {', '.join(MIRRORS)}, not {mirror!r}")
        super().__init__(inner.name, inner.settings)
        self.inner = inner
        self.rotate = rotate
        self.mirror = mirror
        self._buffer: np.ndarray | None = None

    @property
    def identity(self) -> bool:
        """True while frames pass unchanged (no copy is made then)."""
        return self.rotate == 0 and self.mirror == "off"

    def open(self) -> FrameGeometry:
        """Open the camera; return the geometry of the turned frames."""
        geometry = self.inner.open()
        if self.inner.companions() and not self.identity:
            raise CameraError(
                f"camera {self.name!r}: ROTATE and MIRROR cannot be used with its depth or "
                "infrared images (they would no longer line up); set them to 0 and off"
            )
        self._buffer = np.empty(geometry.shape, dtype=geometry.dtype)
        return turned_geometry(geometry, self.rotate)

    @property
    def nominal_fps(self) -> float | None:
        """The camera's rate."""
        return self.inner.nominal_fps

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Grab the camera's next frame and write it turned into ``out``."""
        if self.identity:
            return self.inner.grab(out)
        assert self._buffer is not None, "open() first"
        stamp = self.inner.grab(self._buffer)
        if stamp is not None:
            np.copyto(out, turned(self._buffer, self.rotate, self.mirror))
        return stamp

    def close(self) -> None:
        """Close the camera."""
        self.inner.close()

    def start_session(self, session_dir: Path) -> None:
        """Let the camera prepare its side outputs."""
        self.inner.start_session(session_dir)

    def finish_session(self) -> None:
        """Let the camera finalise its side outputs."""
        self.inner.finish_session()

    def describe(self) -> dict[str, Any]:
        """Return the camera's facts and the orientation applied."""
        return {**self.inner.describe(), "rotate": self.rotate, "mirror": self.mirror}

    @property
    def waits_for_analysis(self) -> bool:
        """Whether the camera waits for analysis (a video in lockstep)."""
        return self.inner.waits_for_analysis

    @property
    def live(self) -> bool:
        """Whether the camera is a device that can stall."""
        return self.inner.live

    @property
    def paced(self) -> bool:
        """Whether the camera delivers its frames at its own rate."""
        return self.inner.paced

    def companions(self) -> tuple[CompanionStream, ...]:
        """Return the camera's companion streams (never turned: see :meth:`open`)."""
        return self.inner.companions()

    def grab_companions(self, outs: dict[str, np.ndarray]) -> dict[str, FrameStamp]:
        """Grab the camera's companion images."""
        return self.inner.grab_companions(outs)

    def controls(self) -> tuple[CameraControl, ...]:
        """Return the camera's controls, then mirroring (live) and rotation (next start)."""
        mirrored = {name: self.mirror in (side, "both") for name, side in _MIRROR_CONTROLS.items()}
        own = tuple(
            CameraControl(name, f"Mirror {side}", 0, 1, 1, float(mirrored[name]), key="MIRROR")
            for name, side in _MIRROR_CONTROLS.items()
        )
        rotation = CameraControl(
            "rotate", "Rotate clockwise", 0, 270, 90, self.rotate, "°", live=False, key="ROTATE"
        )
        return (*self.inner.controls(), *own, rotation)

    def set_control(self, name: str, value: float) -> float:
        """Mirror live, or pass any other control to the camera."""
        if name not in (*_MIRROR_CONTROLS, "rotate"):
            return self.inner.set_control(name, value)
        self.checked_control(name, value)  # refuses rotate: it applies at the next start
        sides = {side for n, side in _MIRROR_CONTROLS.items() if n != name and self._mirrors(n)}
        if value >= 0.5:
            sides.add(_MIRROR_CONTROLS[name])
        self.mirror = "both" if len(sides) == 2 else next(iter(sides), "off")
        return 1.0 if value >= 0.5 else 0.0

    def _mirrors(self, control: str) -> bool:
        return self.mirror in (_MIRROR_CONTROLS[control], "both")

    def set_stop_check(self, stop_requested: Any) -> None:
        """Give the camera the stop flag."""
        super().set_stop_check(stop_requested)
        self.inner.set_stop_check(stop_requested)


def mirror_setting(horizontal: bool, vertical: bool) -> str:
    """Return the ``MIRROR`` value for the two mirror boxes."""
    if horizontal and vertical:
        return "both"
    return "horizontal" if horizontal else "vertical" if vertical else "off"
