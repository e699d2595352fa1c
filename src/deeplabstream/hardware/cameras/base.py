"""The camera plugin interface: what every frame source provides.

In its capture process a camera is opened once, then :meth:`Camera.grab` fills each
shared-memory slot, then :meth:`Camera.close`. ``open``, ``grab`` and ``close`` are required;
locks, session hooks, companion streams and live controls are optional. docs/cameras.md, "A
lab's own camera".
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

    The capture process gives it a shared-memory ring of its own and records it beside the main
    video as ``<camera>_<suffix>``; frame ``seq`` of the companion ring belongs to frame ``seq``
    of the camera's ring. ``description`` (units, alignment) goes to ``session.json``.
    """

    suffix: str
    geometry: FrameGeometry
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraControl:
    """One setting of an opened camera, with the camera's own limits and its value now.

    ``live`` controls change while the camera streams (:meth:`Camera.set_control`); the others
    (size, offsets) are fixed once the stream runs and take effect at the next Start Stream,
    from the settings file. ``key`` is the ``[Camera NAME]`` settings key that keeps the value
    (empty when the source has none).
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

        Before a session starts it locks every key of its cameras and devices
        (:mod:`core.device_lock`); a second session naming a key in use is refused, naming the
        holder. Return ``kind:*`` when the settings do not say which device will open (every
        device of the kind is then taken); return nothing for sources any number of sessions
        may share (files, simulations). Called in the main process before anything opens: read
        the settings, open nothing. The default, for a plugin that does not say, is
        ``<its class>:*``: one session at a time uses this kind of camera.
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

        ``out`` has the shape and dtype of :meth:`open`'s geometry. Return None at the normal end
        of the stream (end of a video file); raise CameraError when the camera fails.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or file. Safe to call more than once."""

    def start_session(self, session_dir: Path) -> None:  # noqa: B027 - optional hook
        """Prepare side outputs in the session folder; called once before the first grab."""

    def finish_session(self) -> None:  # noqa: B027 - optional hook
        """Finalise side outputs; called once after the last grab, before :meth:`close`."""

    def describe(self) -> dict[str, Any]:
        """Facts about the opened camera for ``session.json`` (model, serial, file...).

        Called after :meth:`open` and again after the last frame (:meth:`finish_session`), so
        figures known only at the end (the camera clock's drift) reach ``session.json`` too.
        """
        return {}

    @property
    def waits_for_analysis(self) -> bool:
        """True when a frame may be published only once the previous one was analysed.

        A video file read in ``PACING = lockstep`` says so; the capture process does the
        waiting (``live/processes/capture/camera.py``). Live cameras and simulations never wait.
        """
        return False

    @property
    def live(self) -> bool:
        """True for a device that can be unplugged or stall.

        Live cameras are watched for stalls (``[Streaming] ON_CAMERA_LOST``); files and
        simulations, which may pause on purpose, are not.
        """
        return False

    @property
    def paced(self) -> bool:
        """True when the camera delivers frames at :attr:`nominal_fps` on its own.

        Such a camera's delivered rate is judged against its rate
        (``live/session/report/delivery.py``): one that delivers fewer frames is warned about.
        A camera paced by something else (a file read as fast as it decodes, lockstep with the
        analysis, a hardware trigger) says False. A lab's camera is paced unless it says otherwise.
        """
        return not self.waits_for_analysis

    def companions(self) -> tuple[CompanionStream, ...]:
        """Extra images delivered with every frame (valid after :meth:`open`); none by default."""
        return ()

    def grab_companions(self, outs: dict[str, np.ndarray]) -> dict[str, FrameStamp]:
        """Write the companion images of the frame :meth:`grab` returned last into ``outs``.

        ``outs`` maps each companion's suffix to its ring slot; return each one's stamp (its own
        frame counter and device time, the main frame's host time). Only called by cameras that
        declare :meth:`companions`.
        """
        raise NotImplementedError(f"camera {self.name!r} declares no companion streams")

    def controls(self) -> tuple[CameraControl, ...]:
        """Return the settings this camera lets the user change, with limits (after open)."""
        return ()

    def set_control(self, name: str, value: float) -> float:
        """Apply a live control while streaming; return the value the camera really took.

        Called by the capture process between two grabs, so it must be quick. The camera may
        round the value (to its step); the result says what it kept.

        Raises
        ------
        CameraError
            The camera has no such control, it is not live, or the value is out of range; the
            message names the camera, the control and the allowed range.
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
        """Give the camera a way to see the stop flag while it waits for a frame.

        A camera that can wait long (a hardware trigger that has not come yet) checks it
        between short waits and returns None from :meth:`grab` once it is set.
        """
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
