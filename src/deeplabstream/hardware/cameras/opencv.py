"""Any camera OpenCV can open (``SOURCE = opencv``): webcams, capture cards, network streams.

Every call runs on one private thread: OpenCV's read blocks in the driver with no portable timeout,
and waiting from outside is the only way to honour ``TIMEOUT``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import cv2
import numpy as np

from deeplabstream.core.frames import NO_CAMERA_TIMESTAMP, FrameGeometry, FrameStamp, PixelFormat
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result")

#: BACKEND key -> name of OpenCV's API constant.
BACKEND_APIS: dict[str, str] = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "ffmpeg": "CAP_FFMPEG",
    "gstreamer": "CAP_GSTREAMER",
    "dshow": "CAP_DSHOW",
    "msmf": "CAP_MSMF",
    "avfoundation": "CAP_AVFOUNDATION",
}

#: Opening a USB camera or a network stream can take seconds; a short TIMEOUT meant for frames
#: must not make it fail.
OPEN_TIMEOUT_FLOOR_S = 10.0

#: Pause between attempts to read the first frame (cameras often fail the first reads).
FIRST_FRAME_RETRY_S = 0.05

#: Controls read from a device at open: name -> (OpenCV property, label, minimum, maximum, unit,
#: settings key, live). OpenCV does not report a device's limits: these are wide, and the
#: device clamps (the value read back says what it took). Exposure's unit depends on the
#: backend (V4L2: 100 µs steps; DirectShow: log2 seconds), so it has none here.
CONTROL_PROPERTIES: dict[str, tuple[int, str, float, float, str, str, bool]] = {
    "exposure": (cv2.CAP_PROP_EXPOSURE, "Exposure", -20.0, 100_000.0, "", "", True),
    "gain": (cv2.CAP_PROP_GAIN, "Gain", 0.0, 1000.0, "", "", True),
    # The driver's own scale (V4L2: often -64..64 or 0..255); offered only where it reports it.
    "brightness": (cv2.CAP_PROP_BRIGHTNESS, "Brightness", -255.0, 255.0, "", "", True),
    "white_balance": (cv2.CAP_PROP_WB_TEMPERATURE, "White balance", 1000.0, 10e3, "K", "", True),
    "framerate": (cv2.CAP_PROP_FPS, "Frame rate", 0.1, 1000.0, "Hz", "FRAMERATE", False),
    "width": (cv2.CAP_PROP_FRAME_WIDTH, "Width", 1.0, 16384.0, "px", "WIDTH", False),
    "height": (cv2.CAP_PROP_FRAME_HEIGHT, "Height", 1.0, 16384.0, "px", "HEIGHT", False),
}


@dataclass(frozen=True)
class OpenCVSettings:
    """Keys of a ``[Camera NAME]`` section with ``SOURCE = opencv``."""

    device: str = setting(
        doc="What to open: a device index (`0` is the first camera), a video file path, a "
        "stream URL (`rtsp://...`) or, with `BACKEND = gstreamer`, a GStreamer pipeline. On Linux "
        "index `N` is `/dev/videoN`. A relative file path is relative to the working folder; for "
        "files, `SOURCE = video` gives frame-accurate timestamps and pacing.",
    )
    width: int | None = setting(
        None,
        doc="Frame width to ask the camera for. The camera may choose another size; the size it "
        "delivers is used and a warning is logged. Empty: the camera's default.",
        minimum=1,
        maximum=16384,
        unit="px",
    )
    height: int | None = setting(
        None,
        doc="Frame height to ask the camera for (see `WIDTH`). Empty: the camera's default.",
        minimum=1,
        maximum=16384,
        unit="px",
    )
    framerate: float | None = setting(
        None,
        doc="Frame rate to ask the camera for. Many webcams only honour some rates, or lower "
        "the rate in dim light. Empty: the camera's default.",
        minimum=0.1,
        maximum=1000,
        unit="Hz",
    )
    pixel_format: PixelFormat = setting(
        "bgr8",
        doc="Pixels handed on: `bgr8` (colour, 3 bytes per pixel) or `mono8` (grey, 1 byte; "
        "converted from the camera's colour image).",
    )
    backend: Literal["any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation"] = (
        setting(
            "any",
            doc="OpenCV capture backend. `any` lets OpenCV choose; name one when it picks the "
            "wrong one or for a GStreamer pipeline. `v4l2` is Linux, `dshow` and `msmf` are "
            "Windows, `avfoundation` is macOS.",
        )
    )
    timeout: float = setting(
        5.0,
        doc="A camera that delivers no frame for this long is reported as failed, which stops "
        "the run. Opening the camera is given at least 10 s.",
        minimum=0.1,
        maximum=60,
        unit="s",
    )

    def __post_init__(self) -> None:
        """Reject an empty DEVICE, which OpenCV would silently read as camera 0 or nothing."""
        if not self.device.strip():
            raise ValueError("DEVICE is empty; give a device index such as 0, a path or a URL")


@dataclass(frozen=True)
class _Delivery:
    """The outcome of one read on the capture thread."""

    ok: bool
    pixels: np.ndarray | None
    host_timestamp_ns: int
    position_s: float  # the file position OpenCV reports; NaN for live devices


class _CaptureThread:
    """Runs callables on a private daemon thread, each with a deadline; stuck after a miss."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.stuck = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, job: Callable[[], _Result], timeout_s: float) -> _Result:
        """Run ``job`` on the thread and return its result; TimeoutError after ``timeout_s``."""
        if self.stuck:
            raise TimeoutError("an earlier call on the capture thread has not returned")
        future: Future[_Result] = Future()
        self._jobs.put((job, future))
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            if not future.done():  # not a TimeoutError raised by the job itself
                self.stuck = True
            raise

    def stop(self) -> None:
        """Let the thread end once it has finished the work it was given."""
        self._jobs.put(None)
        if not self.stuck:
            self._thread.join(timeout=1.0)

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except Exception as error:  # handed to the caller, who raises it
                future.set_exception(error)


class OpenCVCamera(Camera):
    """A camera opened with ``cv2.VideoCapture``; see :class:`OpenCVSettings` for the options.

    ``camera_timestamp`` is NaN for live devices, the position in seconds for a file.
    """

    settings_class: ClassVar[type] = OpenCVSettings
    settings: OpenCVSettings

    @classmethod
    def lock_keys(cls, settings: OpenCVSettings) -> tuple[str, ...]:
        """Lock a device index or ``/dev`` path (links resolved); files and URLs take none."""
        return _device_lock_keys(settings.device)

    def __init__(self, name: str, settings: OpenCVSettings) -> None:
        super().__init__(name, settings)
        self._thread: _CaptureThread | None = None
        self._capture: cv2.VideoCapture | None = None
        self._frame_buffer: np.ndarray | None = None  # OpenCV reads into it; reused
        self._pending: _Delivery | None = None  # the frame open() read, for the first grab
        self._next_index = 0
        self._fps: float | None = None
        self._backend_used: str | None = None
        self._is_file = _is_video_file(settings.device)
        self._control_values: dict[str, float] = {}  # read at open, updated by set_control

    # -- Camera interface -----------------------------------------------------------------

    def open(self) -> FrameGeometry:
        """Open the device, apply the requested size and rate, and read a first frame.

        Returns the geometry really delivered (a warning when not WIDTH x HEIGHT). Raises
        CameraError when the device cannot be opened or delivers no frame within TIMEOUT.
        """
        self.close()  # opening again starts afresh
        self._next_index = 0
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    @property
    def nominal_fps(self) -> float | None:
        """The rate the camera reports, else the requested FRAMERATE, else None."""
        return self._fps

    @property
    def live(self) -> bool:
        """A device or stream (watched for stalls); not when DEVICE is a video file."""
        return not self._is_file

    @property
    def paced(self) -> bool:
        """A device or stream; not a video file, read as fast as it decodes."""
        return not self._is_file

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Wait for the next frame and write it into ``out``; None only at the end of a video file.

        Raises CameraError when the read failed or no frame came within TIMEOUT.
        """
        delivery = self._pending if self._pending is not None else self._read_next()
        self._pending = None
        if not delivery.ok or delivery.pixels is None:
            if self._is_file:
                return None  # a file simply ended
            raise CameraError(
                f"{self._label} stopped delivering frames: the read failed after "
                f"{self._next_index} frames. Check the cable or network and that no other "
                "program took the camera."
            )
        _convert_into(delivery.pixels, out, self._label)
        index = self._next_index
        self._next_index += 1
        return FrameStamp(index, delivery.position_s, delivery.host_timestamp_ns)

    def controls(self) -> tuple[CameraControl, ...]:
        """Exposure and gain (live), rate and size (next Start Stream), where the device reports."""
        return tuple(
            CameraControl(name, label, low, high, 0.0, self._control_values[name], unit, live, key)
            for name, (_, label, low, high, unit, key, live) in CONTROL_PROPERTIES.items()
            if name in self._control_values
        )

    def set_control(self, name: str, value: float) -> float:
        """Set a live control on the capture thread; return the value the device reports."""
        control = self.checked_control(name, value)
        capture = self._capture
        if capture is None:
            raise CameraError(f"{self._label}: set_control() before open() or after close()")
        prop = CONTROL_PROPERTIES[name][0]

        def apply() -> tuple[bool, float]:
            if name == "white_balance":
                capture.set(cv2.CAP_PROP_AUTO_WB, 0.0)  # a driver without it ignores this
            return capture.set(prop, float(value)), capture.get(prop)

        accepted, kept = self._on_thread(
            apply,
            f"did not take {control.label}",
        )
        if not accepted:
            raise CameraError(
                f"{self._label}: {control.label} = {value:g} is refused by the device (its "
                f"backend {self._backend_used} cannot set it)"
            )
        self._control_values[name] = float(kept)
        return float(kept)

    def close(self) -> None:
        """Release the device and end the capture thread. Safe to call more than once."""
        thread, capture = self._thread, self._capture
        self._thread, self._capture, self._pending, self._frame_buffer = None, None, None, None
        if thread is None:
            return
        if capture is not None and not thread.stuck:
            try:
                thread.call(capture.release, OPEN_TIMEOUT_FLOOR_S)
            except (TimeoutError, cv2.error) as error:
                logger.warning("%s: could not release the device: %r", self._label, error)
        if thread.stuck:
            # Releasing while a read hangs in the driver could crash the process; the daemon
            # thread and the device go when the capture process exits.
            logger.warning("%s: left a hung read behind; it ends with the process", self._label)
        thread.stop()

    def describe(self) -> dict[str, Any]:
        """Describe the device, the backend OpenCV chose and the requested size and rate."""
        info: dict[str, Any] = {
            "device": self.settings.device,
            "backend": self.settings.backend,
            "requested_width": self.settings.width,
            "requested_height": self.settings.height,
            "requested_framerate": self.settings.framerate,
        }
        if self._backend_used is not None:
            info["backend_used"] = self._backend_used
        return info

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> FrameGeometry:
        api = _backend_api(self.settings.backend, self._label)
        self._thread = _CaptureThread(name=f"opencv-camera-{self.name}")
        open_timeout = max(self.settings.timeout, OPEN_TIMEOUT_FLOOR_S)
        source = _capture_source(self.settings.device)
        capture = self._on_thread(
            lambda: _open_capture(source, api), "did not open", timeout_s=open_timeout
        )
        if capture is None:
            raise CameraError(self._not_opened_message())
        self._capture = capture
        self._on_thread(
            lambda: self._apply_requests(capture), "did not accept WIDTH/HEIGHT/FRAMERATE"
        )
        self._backend_used = self._on_thread(capture.getBackendName, "did not name its backend")
        first = self._read_first_frame()
        assert first.pixels is not None
        height, width = first.pixels.shape[:2]
        self._warn_if_size_differs(width, height)
        self._fps = self._reported_fps(capture)
        if not self._is_file:
            self._control_values = self._on_thread(
                lambda: _read_controls(capture), "did not report its settings"
            )
        self._pending = first
        return FrameGeometry.for_pixel_format(width, height, self.settings.pixel_format)

    def _apply_requests(self, capture: cv2.VideoCapture) -> None:
        """Ask for the configured size and rate; the first frame tells what the camera chose."""
        requests = (
            (cv2.CAP_PROP_FRAME_WIDTH, self.settings.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height),
            (cv2.CAP_PROP_FPS, self.settings.framerate),
        )
        for prop, value in requests:
            if value is not None:
                capture.set(prop, float(value))

    def _read_first_frame(self) -> _Delivery:
        """Read until a frame arrives; cameras often fail the first reads after opening."""
        deadline = time.monotonic() + self.settings.timeout
        while True:
            remaining = deadline - time.monotonic()
            delivery = self._on_thread(
                self._read_job, "delivered no first frame", timeout_s=max(remaining, 0.001)
            )
            if delivery.ok and delivery.pixels is not None:
                return delivery
            if self._is_file or time.monotonic() + FIRST_FRAME_RETRY_S > deadline:
                raise CameraError(
                    f"{self._label} opened but delivered no frame within "
                    f"{self.settings.timeout:g} s (TIMEOUT). Check the requested WIDTH, HEIGHT "
                    "and FRAMERATE (an unsupported mode can stall a camera) and the BACKEND."
                )
            time.sleep(FIRST_FRAME_RETRY_S)

    def _warn_if_size_differs(self, width: int, height: int) -> None:
        wanted_width = self.settings.width or width
        wanted_height = self.settings.height or height
        if (wanted_width, wanted_height) != (width, height):
            logger.warning(
                "%s: asked for %dx%d, the camera delivers %dx%d; using %dx%d",
                self._label,
                wanted_width,
                wanted_height,
                width,
                height,
                width,
                height,
            )

    def _reported_fps(self, capture: cv2.VideoCapture) -> float | None:
        reported = self._on_thread(lambda: capture.get(cv2.CAP_PROP_FPS), "did not report its rate")
        wanted = self.settings.framerate
        if reported > 0 and wanted is not None and abs(reported - wanted) > 0.01 * wanted:
            logger.warning(
                "%s: asked for %g frames/s, the camera reports %g", self._label, wanted, reported
            )
        if reported > 0:
            return float(reported)
        return wanted

    def _not_opened_message(self) -> str:
        device = self.settings.device.strip()
        lead = f"{self._label} could not be opened with BACKEND = {self.settings.backend}."
        if isinstance(_capture_source(device), int):
            return (
                f"{lead} Check that the camera is connected, that no other program is using it "
                f"and that DEVICE is its index. {_video_devices_hint()}"
            )
        if "://" not in device and "!" not in device and not Path(device).exists():
            return f"{lead} No such file: {device}. Give an existing file, a URL or an index."
        available = ", ".join(_available_backends()) or "none"
        return (
            f"{lead} Check the path, URL or pipeline, and that this OpenCV build has the backend "
            f"it needs (available here: {available})."
        )

    # -- reading --------------------------------------------------------------------------

    def _read_next(self) -> _Delivery:
        if self._thread is None:
            raise CameraError(f"{self._label}: grab() before open() or after close()")
        return self._on_thread(
            self._read_job,
            f"stopped delivering frames: no frame after {self._next_index} frames",
        )

    def _read_job(self) -> _Delivery:
        """Read one frame (runs on the capture thread)."""
        assert self._capture is not None
        ok, pixels = self._capture.read(self._frame_buffer)
        host_ns = host_now_ns()
        if pixels is not None:
            self._frame_buffer = pixels  # reused by the next read when the size is unchanged
        position = (
            self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if self._is_file
            else NO_CAMERA_TIMESTAMP
        )
        return _Delivery(bool(ok), pixels if ok else None, host_ns, position)

    def _on_thread(
        self, job: Callable[[], _Result], failure: str, timeout_s: float | None = None
    ) -> _Result:
        """Run ``job`` on the capture thread in ``timeout_s`` (TIMEOUT); CameraError if it fails."""
        assert self._thread is not None
        timeout = self.settings.timeout if timeout_s is None else timeout_s
        try:
            return self._thread.call(job, timeout)
        except TimeoutError:
            source = " (TIMEOUT)" if timeout_s is None else ""
            raise CameraError(f"{self._label} {failure} within {timeout:g} s{source}") from None
        except cv2.error as error:
            raise CameraError(f"{self._label} {failure}: OpenCV error: {error}") from None

    @property
    def _label(self) -> str:
        return f"camera '{self.name}' (opencv device {self.settings.device})"


# -- helpers ------------------------------------------------------------------------------

#: (channels delivered, channels wanted) -> OpenCV conversion; None = plain copy.
_CONVERSIONS: dict[tuple[int, int], int | None] = {
    (3, 3): None,
    (1, 1): None,
    (3, 1): cv2.COLOR_BGR2GRAY,
    (1, 3): cv2.COLOR_GRAY2BGR,
    (4, 3): cv2.COLOR_BGRA2BGR,
    (4, 1): cv2.COLOR_BGRA2GRAY,
}


def _convert_into(pixels: np.ndarray, out: np.ndarray, label: str) -> None:
    """Write a frame as OpenCV delivered it into ``out`` in the slot's pixel format."""
    if pixels.shape[:2] != out.shape[:2]:
        raise CameraError(
            f"{label}: the frame size changed from {out.shape[1]}x{out.shape[0]} to "
            f"{pixels.shape[1]}x{pixels.shape[0]} while running"
        )
    delivered = 1 if pixels.ndim == 2 else pixels.shape[2]
    wanted = 1 if out.ndim == 2 else out.shape[2]
    try:
        code = _CONVERSIONS[(delivered, wanted)]
    except KeyError:
        raise CameraError(f"{label}: frames with {delivered} channels are not supported") from None
    if code is None:
        np.copyto(out, pixels.reshape(out.shape))
        return
    converted = cv2.cvtColor(pixels, code, dst=out)
    if converted is not out:  # OpenCV could not write in place (a non-contiguous slot)
        np.copyto(out, converted)


def _read_controls(capture: cv2.VideoCapture) -> dict[str, float]:
    """Read the control properties the backend reports (runs on the capture thread)."""
    values = {}
    for name, (prop, *_) in CONTROL_PROPERTIES.items():
        value = float(capture.get(prop))
        if math.isfinite(value) and value != -1.0:  # -1: the backend does not know it
            values[name] = value
    return values


def _open_capture(source: int | str, api: int) -> cv2.VideoCapture | None:
    """Open a capture (runs on the capture thread); None when OpenCV cannot open ``source``."""
    capture = cv2.VideoCapture(source, api)
    if capture.isOpened():
        return capture
    capture.release()
    return None


def _capture_source(device: str) -> int | str:
    """Return a device index for digits (``0``), the text itself otherwise (path, URL, pipeline)."""
    text = device.strip()
    return int(text) if text.isdigit() else text


def _device_lock_keys(device: str) -> tuple[str, ...]:
    """Return ``video-device:/dev/videoN`` (elsewhere ``video-device:index N``); none for a file."""
    source = _capture_source(device)
    if isinstance(source, int):
        if sys.platform.startswith("linux"):
            return (f"video-device:/dev/video{source}",)
        return (f"video-device:index {source}",)
    if source.startswith("/dev/"):
        return (f"video-device:{os.path.realpath(source)}",)
    return ()


def _is_video_file(device: str) -> bool:
    return not isinstance(_capture_source(device), int) and Path(device.strip()).is_file()


def _backend_api(backend: str, label: str) -> int:
    """OpenCV's API constant for BACKEND; CameraError when this OpenCV build lacks it."""
    api = int(getattr(cv2, BACKEND_APIS[backend]))
    if api != cv2.CAP_ANY and not cv2.videoio_registry.hasBackend(api):
        available = ", ".join(_available_backends()) or "none"
        raise CameraError(
            f"{label}: this OpenCV build has no {backend} backend (BACKEND = {backend}); "
            f"available here: {available}"
        )
    return api


def _available_backends() -> list[str]:
    """Names of the capture backends this OpenCV build can use, in its order of preference."""
    registry = cv2.videoio_registry
    usable = [
        registry.getBackendName(api) for api in registry.getBackends() if registry.hasBackend(api)
    ]
    return list(dict.fromkeys(usable))  # the registry lists some backends more than once


def _video_devices_hint() -> str:
    """Which camera devices exist, so the user sees what there is to choose from (Linux)."""
    if not sys.platform.startswith("linux"):
        return "The first camera is usually index 0."
    devices = sorted(Path("/dev").glob("video*"), key=_device_sort_key)
    if not devices:
        return "No video devices found (no /dev/video*): is the camera plugged in?"
    names = ", ".join(str(d) for d in devices)
    return f"Video devices on this computer: {names} (index N is /dev/videoN)."


def _device_sort_key(path: Path) -> tuple[int, str]:
    """Sort /dev/video10 after /dev/video9."""
    suffix = path.name.removeprefix("video")
    return (int(suffix) if suffix.isdigit() else -1, path.name)
