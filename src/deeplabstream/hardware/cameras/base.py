"""The camera plugin interface: what every frame source provides.

``open``, ``grab`` and ``close`` are required; the rest optional. docs/cameras.md, "A lab's own
camera".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deeplabstream.core.errors import CameraError
from deeplabstream.core.frames import FrameGeometry, FrameStamp


@dataclass(frozen=True)
class CompanionStream:
    """A second image a camera delivers with each of its frames (a RealSense depth image).

    Recorded as ``<camera>_<suffix>``; its frame ``seq`` belongs to the camera's frame ``seq``.
    """

    suffix: str
    geometry: FrameGeometry
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraControl:
    """One setting of an opened camera, with the camera's own limits and its value now.

    Non-``live`` controls take effect at the next Start Stream; ``key`` is the settings key that
    keeps the value (empty: none).
    """

    name: str  # e.g. "exposure"; what set_control takes
    label: str  # e.g. "Exposure"
    minimum: float
    maximum: float
    step: float  # smallest change the camera takes; 0: any
    value: float
    unit: str = ""
    live: bool = True
    key: str = ""

    @property
    def limits(self) -> str:
        """Describe the allowed range for messages and labels: ``1 to 10000 µs``."""
        return f"{short_number(self.minimum)} to {short_number(self.maximum)} {self.unit}".rstrip()


class Camera(ABC):
    """A source of frames, created from its settings section by name (``SOURCE = ...``)."""

    #: The settings dataclass for this source's keys in a ``[Camera NAME]`` section.
    settings_class: ClassVar[type]

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = settings
        self._stop_check: Callable[[], bool] = _never

    @classmethod
    def lock_keys(cls, settings: Any) -> tuple[str, ...]:
        """Return what identifies the device ``settings`` open, as lock keys (``kind:identity``).

        Called in the main process before anything opens: read the settings, open nothing.
        ``kind:*`` takes every device of the kind; nothing: any number of sessions may share the
        source. The default is ``<its class>:*``.
        """
        return (f"{cls.__module__}.{cls.__qualname__}:*",)

    @abstractmethod
    def open(self) -> FrameGeometry:
        """Open the device or file; return the geometry of its frames or raise CameraError."""

    @property
    @abstractmethod
    def nominal_fps(self) -> float | None:
        """The rate the camera is set to (None when unknown); valid after :meth:`open`."""

    @abstractmethod
    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Wait for the next frame, write its pixels into ``out``, and return its stamp.

        Return None at the normal end of the stream; raise CameraError when the camera fails.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or file. Safe to call more than once."""

    def start_session(self, session_dir: Path) -> None:  # noqa: B027 - optional hook
        """Prepare side outputs in the session folder; called once before the first grab."""

    def finish_session(self) -> None:  # noqa: B027 - optional hook
        """Finalise side outputs; called once after the last grab, before :meth:`close`."""

    def describe(self) -> dict[str, Any]:
        """Facts about the opened camera for ``session.json``; asked after open and at the end."""
        return {}

    @property
    def waits_for_analysis(self) -> bool:
        """True when a frame may be published only once the previous one was analysed."""
        return False

    @property
    def live(self) -> bool:
        """True for a device that can be unplugged or stall (watched for stalls)."""
        return False

    @property
    def paced(self) -> bool:
        """True when the camera delivers frames at :attr:`nominal_fps` on its own (rate judged).

        A lab's camera is paced unless it says otherwise.
        """
        return not self.waits_for_analysis

    def companions(self) -> tuple[CompanionStream, ...]:
        """Extra images delivered with every frame (valid after :meth:`open`); none by default."""
        return ()

    def grab_companions(self, outs: dict[str, np.ndarray]) -> dict[str, FrameStamp]:
        """Write the last frame's companion images into ``outs``; return their stamps."""
        raise NotImplementedError(f"camera {self.name!r} declares no companion streams")

    def controls(self) -> tuple[CameraControl, ...]:
        """Return the settings this camera lets the user change, with limits (after open)."""
        return ()

    def set_control(self, name: str, value: float) -> float:
        """Apply a live control while streaming (quick: between two grabs); return the value taken.

        Raises CameraError for an unknown or non-live control or a value out of range.
        """
        self.checked_control(name, value)
        raise CameraError(f"camera {self.name!r}: {name} cannot be changed while streaming")

    def checked_control(self, name: str, value: float) -> CameraControl:
        """Return the live control ``name`` if ``value`` is within its limits; else CameraError."""
        controls = {control.name: control for control in self.controls()}
        control = controls.get(name)
        if control is None:
            offered = ", ".join(controls) or "none"
            raise CameraError(
                f"camera {self.name!r} has no control {name!r} (its controls: {offered})"
            )
        if not control.live:
            where = f" ({control.key} in its settings)" if control.key else ""
            raise CameraError(
                f"camera {self.name!r}: {control.label} cannot change while streaming; it "
                f"applies at the next Start Stream{where}"
            )
        if not control.minimum <= value <= control.maximum:  # NaN fails this too
            raise CameraError(
                f"camera {self.name!r}: {control.label} = {short_number(value)} is refused: the "
                f"camera allows {control.limits}"
            )
        return control

    def set_stop_check(self, stop_requested: Callable[[], bool]) -> None:
        """Give the camera the stop flag: a long wait checks it, and :meth:`grab` returns None."""
        self._stop_check = stop_requested

    @property
    def stop_requested(self) -> bool:
        """True once the stream was asked to stop (see :meth:`set_stop_check`)."""
        return self._stop_check()


def _never() -> bool:
    return False


def short_number(value: float) -> str:
    """Format a number for a message: whole numbers in full (3000000, not 3e+06), others short."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"
