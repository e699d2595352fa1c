"""Intel RealSense depth cameras through pyrealsense2 (``SOURCE = realsense``): D400 series.

Depth (and infrared) are companion streams. docs/cameras.md, "RealSense".
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from deeplabstream.core.frames import NO_CAMERA_TIMESTAMP, FrameGeometry, FrameStamp, PixelFormat
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError, CompanionStream
from deeplabstream.hardware.cameras.clock import ClockFit, CounterUnwrapper

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with `pip install pyrealsense2` (on Debian/Ubuntu it needs the libusb-1.0-0 "
    "package: scripts/setup.sh installs it)"
)
#: Longest single wait for a frameset, so a stop request is seen while waiting.
WAIT_SLICE_S = 0.2
#: Framesets the syncer may hold while the capture process is busy.
SYNCER_QUEUE = 16
#: The hardware clock counts microseconds in 32 bits: it wraps every 71.6 minutes.
HARDWARE_CLOCK_WRAP_US = 1 << 32


#: The live controls offered where the main image's sensor has the option: name -> (label,
#: unit, settings key). Sizes and rates are fixed by the stream profile chosen at open.
CONTROL_OPTIONS: dict[str, tuple[str, str, str]] = {
    "exposure": ("Exposure", "µs", "EXPOSURE"),
    "gain": ("Gain", "", ""),
    "brightness": ("Brightness", "", ""),
    "white_balance": ("White balance", "K", ""),
}
# The automatic mode each control switches off first (the value would be overridden).
AUTO_OPTIONS = {
    "exposure": "enable_auto_exposure",
    "gain": "enable_auto_exposure",
    "white_balance": "enable_auto_white_balance",
}


@dataclass(frozen=True)
class RealSenseSettings:
    """Keys of a ``[Camera NAME]`` section with ``SOURCE = realsense``."""

    serial: str = setting(
        "",
        doc="Serial number of the device (`python -m deeplabstream.hardware.cameras.realsense` "
        "lists them). Empty: the only device connected.",
    )
    main_stream: Literal["color", "infrared"] = setting(
        "color",
        doc="The image that goes through the ring, is analysed and recorded as `<camera>.mp4`: "
        "`color`, or `infrared` (the left imager: sees in the dark under IR light, and depth "
        "is registered to it by construction).",
    )
    width: int = setting(640, doc="Width of the main image.", minimum=1, maximum=4096, unit="px")
    height: int = setting(480, doc="Height of the main image.", minimum=1, maximum=4096, unit="px")
    framerate: int = setting(
        30,
        doc="Frames per second of every stream (the device offers 6, 15, 30, 60 or 90 "
        "depending on the resolution).",
        minimum=1,
        maximum=300,
        unit="Hz",
    )
    pixel_format: PixelFormat = setting(
        "bgr8",
        doc="Pixels of the main image handed on: `bgr8` (colour) or `mono8` (grey). The "
        "infrared image is always grey.",
    )
    depth: bool = setting(
        True,
        doc="Deliver the depth image as the companion stream `<camera>_depth` (16-bit, "
        "recorded losslessly, readable by experiments).",
    )
    depth_width: int | None = setting(
        None,
        doc="Width of the depth stream as the device makes it. Empty: WIDTH. With ALIGN_DEPTH "
        "the delivered depth image has the main image's size.",
        minimum=1,
        maximum=4096,
        unit="px",
    )
    depth_height: int | None = setting(
        None, doc="Height of the depth stream. Empty: HEIGHT.", minimum=1, maximum=4096, unit="px"
    )
    align_depth: bool = setting(
        True,
        doc="Resample depth onto the main image's pixels (colour: the SDK's align; infrared: "
        "already aligned), so depth at (x, y) is the depth under the main image's (x, y).",
    )
    infrared: bool = setting(
        False,
        doc="With MAIN_STREAM = color, also deliver the left infrared image as the companion "
        "stream `<camera>_infrared` (recorded losslessly).",
    )
    emitter: bool = setting(
        True,
        doc="Switch the infrared dot projector on (better depth on plain surfaces; the dots show "
        "in the infrared image).",
    )
    exposure: float | None = setting(
        None,
        doc="Exposure of the main image's sensor; auto exposure is switched off. Empty: auto.",
        minimum=1,
        maximum=200_000,
        unit="µs",
    )
    sync_mode: Literal["default", "master", "slave"] = setting(
        "default",
        doc="Hardware sync between devices over the sync cable (`inter_cam_sync_mode`): one "
        "`master`, the others `slave`.",
    )
    timeout: float = setting(
        2.0,
        doc="No frame for this long is a camera failure (unplugged, USB reset).",
        minimum=0.1,
        maximum=600,
        unit="s",
    )

    def __post_init__(self) -> None:
        """Refuse an infrared companion of an infrared main image."""
        if self.infrared and self.main_stream == "infrared":
            raise ValueError("INFRARED = true only with MAIN_STREAM = color (it is the main one)")


def import_realsense(label: str = "SOURCE = realsense") -> ModuleType:
    """Import pyrealsense2, or raise CameraError saying what to install."""
    try:
        import pyrealsense2 as rs
    except ImportError as error:
        raise CameraError(f"{label} needs pyrealsense2 ({error}); {INSTALL_HINT}") from None
    return rs


def _device_facts(rs: ModuleType, device: Any) -> dict[str, str]:
    facts = {}
    for key, info in (
        ("name", rs.camera_info.name),
        ("serial", rs.camera_info.serial_number),
        ("firmware", rs.camera_info.firmware_version),
        ("usb", rs.camera_info.usb_type_descriptor),
        ("product_line", rs.camera_info.product_line),
    ):
        if device.supports(info):
            facts[key] = device.get_info(info)
    return facts


def list_devices() -> list[dict[str, str]]:
    """Every RealSense device this computer sees: name, serial, firmware, USB type."""
    rs = import_realsense()
    return [_device_facts(rs, device) for device in rs.context().query_devices()]


def describe_devices(devices: list[dict[str, str]]) -> str:
    """Describe the devices found, for messages."""
    if not devices:
        return (
            "No RealSense device found: check the USB cable (a USB 3 port and cable), and on "
            "Linux the udev rules that let this user open it (librealsense's "
            "99-realsense-libusb.rules)."
        )
    names = [
        f"{d.get('name', '?')} serial {d.get('serial', '?')} (USB {d.get('usb', '?')})"
        for d in devices
    ]
    return "Devices found: " + "; ".join(names)


@dataclass(frozen=True)
class _Wanted:
    """One stream to open: what it is called here and the profile it needs."""

    key: str  # "color", "infrared", "depth"
    stream: Any  # rs.stream
    index: int
    format: Any  # rs.format
    width: int
    height: int


class RealSenseCamera(Camera):
    """A RealSense device; see :class:`RealSenseSettings` for the options.

    Companion images share the main image's host time. ``device`` (a test's ``rs.software_device``,
    not picklable) replaces the SERIAL look-up.
    """

    settings_class: ClassVar[type] = RealSenseSettings
    settings: RealSenseSettings

    @classmethod
    def lock_keys(cls, settings: RealSenseSettings) -> tuple[str, ...]:
        """Lock the device's serial; every RealSense when none is given (the only one connected)."""
        serial = settings.serial.strip()
        return (f"realsense:{serial or '*'}",)

    def __init__(self, name: str, settings: RealSenseSettings, device: Any = None) -> None:
        super().__init__(name, settings)
        self._given_device = device
        self._rs: ModuleType | None = None
        self._device: Any = None
        self._sensors: list[Any] = []
        self._syncer: Any = None
        self._align: Any = None
        self._wanted: list[_Wanted] = []
        self._facts: dict[str, str] = {}
        self._depth_units_m: float | None = None
        self._companions: tuple[CompanionStream, ...] = ()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._started = False
        self._frameset: Any = None
        self._frames = 0
        self._incomplete = 0
        self._host_ns = 0
        self._indexes: dict[str, CounterUnwrapper] = {}
        self._times: dict[str, CounterUnwrapper] = {}
        self._domains: dict[str, str] = {}
        self._clock = ClockFit()

    # -- Camera interface -----------------------------------------------------------------

    def open(self) -> FrameGeometry:
        """Find the device, choose its stream profiles and open its sensors.

        Raises CameraError: pyrealsense2 missing, device not found (those found listed), or no
        profile for the size and rate (those it has listed).
        """
        self.close()
        self._reset_counters()
        self._rs = rs = import_realsense(f"camera '{self.name}': SOURCE = realsense")
        self._device = self._given_device or self._find_device(rs)
        self._facts = _device_facts(rs, self._device)
        try:
            self._open_sensors(rs)
        except BaseException:
            self.close()
            raise
        main = self._wanted[0]
        return FrameGeometry.for_pixel_format(
            main.width,
            main.height,
            "mono8" if main.key == "infrared" else self.settings.pixel_format,
        )

    @property
    def nominal_fps(self) -> float | None:
        """FRAMERATE."""
        return float(self.settings.framerate)

    @property
    def live(self) -> bool:
        """A device: watched for stalls."""
        return True

    def companions(self) -> tuple[CompanionStream, ...]:
        """Return the depth image (``depth``) and with INFRARED the infrared one (``infrared``)."""
        return self._companions

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Wait for the next frameset; write the main image into ``out``; None only when stopped.

        Raises CameraError when no frameset comes within TIMEOUT (unplugged, USB reset).
        """
        frameset = self._next_frameset()
        if frameset is None:
            return None
        main_key = self._wanted[0].key
        main = self._frame_of(frameset, main_key)
        pixels = np.asanyarray(main.get_data())
        if pixels.ndim == 3 and out.ndim == 2:
            cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY, dst=out)
        else:
            np.copyto(out, pixels.reshape(out.shape))
        stamp = self._stamp(main_key, main)
        self._clock.add(stamp.camera_timestamp, stamp.host_timestamp_ns)
        self._frames += 1
        return stamp

    def grab_companions(self, outs: dict[str, np.ndarray]) -> dict[str, FrameStamp]:
        """Copy the depth (and infrared) image of the frameset :meth:`grab` returned last."""
        if self._frameset is None:
            raise CameraError(f"{self._label}: grab_companions() before a frame was grabbed")
        stamps = {}
        for suffix, out in outs.items():
            frame = self._frame_of(self._frameset, suffix)
            np.copyto(out, np.asanyarray(frame.get_data()).reshape(out.shape))
            stamps[suffix] = self._stamp(suffix, frame)
        return stamps

    def controls(self) -> tuple[CameraControl, ...]:
        """Exposure and gain of the main image's sensor, where it has them (live)."""
        sensor = self._control_sensor()
        if sensor is None:
            return ()
        found = []
        for name, (label, unit, key) in CONTROL_OPTIONS.items():
            option = getattr(self._rs.option, name, None) if self._rs else None
            try:
                if option is None or not sensor.supports(option):
                    continue
                if sensor.is_option_read_only(option):
                    continue
                limits = sensor.get_option_range(option)
                value = float(sensor.get_option(option))
            except RuntimeError:  # an option the device lists but cannot read now
                continue
            found.append(
                CameraControl(
                    name, label, limits.min, limits.max, limits.step, value, unit, key=key
                )
            )
        return tuple(found)

    def set_control(self, name: str, value: float) -> float:
        """Set a control (its automatic mode off first), rounded to the option's step."""
        control = self.checked_control(name, value)
        rs, sensor = self._rs, self._control_sensor()
        assert rs is not None and sensor is not None  # checked_control found the control
        option = getattr(rs.option, name)
        if control.step > 0:  # the SDK refuses a value between two steps
            value = control.minimum + round((value - control.minimum) / control.step) * control.step
            value = min(value, control.maximum)
        auto = AUTO_OPTIONS.get(name)
        if auto is not None and getattr(rs.option, auto, None) is not None:
            _set_option(sensor, getattr(rs.option, auto), 0)
        try:
            sensor.set_option(option, value)
            kept = float(sensor.get_option(option))
        except RuntimeError as error:
            raise CameraError(
                f"{self._label}: {control.label} = {value:g} is refused ({error}); the device "
                f"allows {control.limits}"
            ) from None
        if name == "exposure":  # the settings follow, for describe() and a reopen
            self.settings = replace(self.settings, exposure=kept)
        return kept

    def _control_sensor(self) -> Any:
        """Return the sensor of the main image (opened first), or None before open."""
        if self._sensors:
            return self._sensors[0]
        return None

    def close(self) -> None:
        """Stop and close the sensors. Safe to call more than once."""
        sensors, self._sensors = self._sensors, []
        for sensor in sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError:  # not started, or the device is gone
                    pass
        self._syncer = self._align = self._frameset = None
        self._device = None
        self._started = False

    def describe(self) -> dict[str, Any]:
        """Device facts, streams, depth units, timestamp domains and the clock fit."""
        info: dict[str, Any] = dict(self._facts)
        info["streams"] = {
            w.key: f"{w.width}x{w.height} {getattr(w.format, 'name', w.format)} "
            f"@ {self.settings.framerate} Hz"
            for w in self._wanted
        }
        info["main_stream"] = self.settings.main_stream
        if self._depth_units_m is not None:
            info["depth_units_m"] = self._depth_units_m
        info["depth_aligned_to"] = self._aligned_to()
        if self._domains:
            info["timestamp_domains"] = dict(self._domains)
        if self._frames:
            info["frames"] = self._frames
            info["incomplete_framesets"] = self._incomplete
            info["clock"] = self._clock.summary()
        return info

    # -- opening --------------------------------------------------------------------------

    def _find_device(self, rs: ModuleType) -> Any:
        devices = list(rs.context().query_devices())
        facts = [_device_facts(rs, device) for device in devices]
        serial = self.settings.serial.strip()
        if not serial:
            if len(devices) == 1:
                return devices[0]
            if not devices:
                raise CameraError(f"camera '{self.name}': {describe_devices(facts)}")
            raise CameraError(
                f"camera '{self.name}': {len(devices)} RealSense devices are connected; choose "
                f"one with SERIAL. {describe_devices(facts)}"
            )
        for device, fact in zip(devices, facts, strict=True):
            if fact.get("serial") == serial:
                return device
        raise CameraError(
            f"camera '{self.name}': no RealSense device with serial number {serial} (SERIAL). "
            f"{describe_devices(facts)}"
        )

    def _wanted_streams(self, rs: ModuleType) -> list[_Wanted]:
        settings = self.settings
        size = (settings.width, settings.height)
        depth_size = (
            settings.depth_width or settings.width,
            settings.depth_height or settings.height,
        )
        if settings.main_stream == "infrared":
            # The left imager and depth come from one sensor: one size for both.
            depth_size = size
            wanted = [_Wanted("infrared", rs.stream.infrared, 1, rs.format.y8, *size)]
        else:
            wanted = [_Wanted("color", rs.stream.color, 0, rs.format.bgr8, *size)]
        if settings.depth:
            wanted.append(_Wanted("depth", rs.stream.depth, 0, rs.format.z16, *depth_size))
        if settings.infrared:
            wanted.append(_Wanted("infrared", rs.stream.infrared, 1, rs.format.y8, *depth_size))
        return wanted

    def _open_sensors(self, rs: ModuleType) -> None:
        self._wanted = self._wanted_streams(rs)
        sensors = list(self._device.query_sensors())  # each query makes new wrappers: once
        chosen: dict[int, list[Any]] = {}  # sensor's position -> its profiles
        for wanted in self._wanted:
            position, profile = self._find_profile(rs, wanted, sensors)
            chosen.setdefault(position, []).append(profile)
        self._configure_options(rs)
        self._syncer = rs.syncer(SYNCER_QUEUE)
        for position, profiles in chosen.items():
            sensor = sensors[position]
            try:
                sensor.open(profiles if len(profiles) > 1 else profiles[0])
            except RuntimeError as error:
                raise CameraError(
                    f"{self._label}: its {_sensor_name(rs, sensor)} could not be opened: {error}. "
                    "Is the device in use by another program (realsense-viewer)?"
                ) from None
            self._sensors.append(sensor)
        if self.settings.depth:
            self._depth_units_m = self._depth_units(rs)
            if self.settings.align_depth and self.settings.main_stream == "color":
                self._align = rs.align(rs.stream.color)
        self._companions = tuple(
            CompanionStream(
                w.key,
                self._companion_geometry(w),
                self._companion_description(w),
            )
            for w in self._wanted[1:]
        )

    def _companion_geometry(self, wanted: _Wanted) -> FrameGeometry:
        if wanted.key == "depth":
            if self._aligned_to() is not None:
                main = self._wanted[0]
                return FrameGeometry(main.height, main.width, 1, "uint16")
            return FrameGeometry(wanted.height, wanted.width, 1, "uint16")
        return FrameGeometry(wanted.height, wanted.width, 1, "uint8")

    def _companion_description(self, wanted: _Wanted) -> dict[str, Any]:
        if wanted.key == "depth":
            return {
                "kind": "depth",
                "depth_units_m": self._depth_units_m,
                "aligned_to": self._aligned_to(),
                "zero_means": "no depth measured at this pixel",
            }
        return {"kind": "infrared", "stream": "left imager"}

    def _aligned_to(self) -> str | None:
        if not (self.settings.depth and self.settings.align_depth):
            return None
        return self.settings.main_stream

    def _find_profile(self, rs: ModuleType, wanted: _Wanted, sensors: list[Any]) -> tuple[int, Any]:
        """Find ``wanted``'s sensor (position) and profile; CameraError lists what is offered."""
        offered = []
        for position, sensor in enumerate(sensors):
            for profile in sensor.get_stream_profiles():
                if profile.stream_type() != wanted.stream or not profile.is_video_stream_profile():
                    continue
                video = profile.as_video_stream_profile()
                if wanted.stream == rs.stream.infrared and profile.stream_index() not in (
                    wanted.index,
                    0,
                ):
                    continue
                offered.append(
                    f"{video.width()}x{video.height()} {profile.format().name} @ {profile.fps()}"
                )
                if (
                    video.width() == wanted.width
                    and video.height() == wanted.height
                    and profile.fps() == self.settings.framerate
                    and profile.format() == wanted.format
                ):
                    return position, profile
        if not offered:
            raise CameraError(f"{self._label} has no {wanted.key} stream")
        size = f"{wanted.width}x{wanted.height} {wanted.format.name} @ {self.settings.framerate} Hz"
        keys = "WIDTH/HEIGHT" if wanted is self._wanted[0] else "DEPTH_WIDTH/DEPTH_HEIGHT"
        choices = ", ".join(sorted(set(offered), key=_profile_order))
        raise CameraError(
            f"{self._label}: {wanted.key} {size} is refused ({keys}, FRAMERATE): the device "
            f"offers {choices}"
        )

    def _configure_options(self, rs: ModuleType) -> None:
        """Hardware clock timestamps, emitter, exposure and sync mode, where supported."""
        settings = self.settings
        for sensor in self._device.query_sensors():
            # Device time in the frames, not the SDK's estimate of host time: the mapping to the
            # host clock is fitted here and its drift reported.
            _set_option(sensor, rs.option.global_time_enabled, 0)
            if sensor.is_depth_sensor():
                _set_option(sensor, rs.option.emitter_enabled, 1 if settings.emitter else 0)
                sync = {"default": 0, "master": 1, "slave": 2}[settings.sync_mode]
                if settings.sync_mode != "default" and not _set_option(
                    sensor, rs.option.inter_cam_sync_mode, sync
                ):
                    raise CameraError(f"{self._label}: SYNC_MODE is not supported by this device")
        if settings.exposure is not None:
            sensor = self._main_sensor(rs)
            _set_option(sensor, rs.option.enable_auto_exposure, 0)
            if not _set_option(sensor, rs.option.exposure, settings.exposure, check_range=True):
                low, high = _option_range(sensor, rs.option.exposure)
                raise CameraError(
                    f"{self._label}: EXPOSURE = {settings.exposure:g} µs is refused: the device "
                    f"allows {low:g} to {high:g} µs"
                )

    def _main_sensor(self, rs: ModuleType) -> Any:
        main = self._wanted[0]
        for sensor in self._device.query_sensors():
            if any(p.stream_type() == main.stream for p in sensor.get_stream_profiles()):
                return sensor
        raise CameraError(f"{self._label} has no sensor for its {main.key} stream")

    def _depth_units(self, rs: ModuleType) -> float:
        for sensor in self._device.query_sensors():
            if sensor.is_depth_sensor():
                return float(sensor.as_depth_sensor().get_depth_scale())
        return 0.001

    # -- grabbing ---------------------------------------------------------------------------

    def _start(self) -> None:
        for sensor in self._sensors:
            sensor.start(self._syncer)
        self._started = True

    def _next_frameset(self) -> Any:
        """Return the next frameset holding every wanted stream (aligned), or None on stop."""
        if self._syncer is None:
            raise CameraError(f"{self._label}: grab() before open() or after close()")
        if not self._started:
            self._start()
        deadline = time.monotonic() + self.settings.timeout
        while True:
            if self.stop_requested:
                return None
            wait_s = min(WAIT_SLICE_S, max(0.001, deadline - time.monotonic()))
            try:
                ok, frameset = self._syncer.try_wait_for_frames(max(1, round(wait_s * 1000)))
            except RuntimeError as error:
                raise self._lost(f"the SDK reported: {error}") from None
            host_ns = host_now_ns()
            if ok and self._complete(frameset):
                if self._align is not None:
                    frameset = self._align.process(frameset)
                self._frameset, self._host_ns = frameset, host_ns
                return frameset
            if ok:
                self._incomplete += 1  # one stream's frame came without its partners
                continue
            if time.monotonic() >= deadline:
                raise self._lost(f"no frame within {self.settings.timeout:g} s (TIMEOUT)")

    def _complete(self, frameset: Any) -> bool:
        return all(self._frame_of(frameset, w.key) for w in self._wanted)

    def _frame_of(self, frameset: Any, key: str) -> Any:
        rs = self._rs
        assert rs is not None
        if key == "color":
            return frameset.get_color_frame()
        if key == "depth":
            return frameset.get_depth_frame()
        frame = frameset.get_infrared_frame(1)
        return frame or frameset.get_infrared_frame(0)

    def _stamp(self, key: str, frame: Any) -> FrameStamp:
        """Return the frame's counter and device time (unwrapped), with the frameset's host time."""
        rs = self._rs
        assert rs is not None
        domain = frame.get_frame_timestamp_domain()
        self._domains.setdefault(key, domain.name)
        index = self._indexes.setdefault(key, CounterUnwrapper(None))(int(frame.get_frame_number()))
        milliseconds = frame.get_timestamp()
        if domain == rs.timestamp_domain.hardware_clock:
            unwrap = self._times.setdefault(key, CounterUnwrapper(HARDWARE_CLOCK_WRAP_US))
            seconds = unwrap(round(milliseconds * 1000)) / 1e6
        elif milliseconds > 0:
            seconds = milliseconds / 1000
        else:
            seconds = NO_CAMERA_TIMESTAMP
        return FrameStamp(index, seconds, self._host_ns)

    def _lost(self, why: str) -> CameraError:
        return CameraError(
            f"{self._label} stopped delivering frames after {self._frames} frames: {why}. Check "
            "the USB cable (and that it is a USB 3 port)."
        )

    @property
    def _label(self) -> str:
        if self._facts.get("serial"):
            return (
                f"camera '{self.name}' (RealSense {self._facts.get('name', '')}, serial "
                f"{self._facts['serial']})"
            )
        return f"camera '{self.name}' (RealSense)"


def _set_option(sensor: Any, option: Any, value: float, check_range: bool = False) -> bool:
    """Set ``option`` where the sensor supports it; False when it does not (or refuses)."""
    try:
        if not sensor.supports(option) or sensor.is_option_read_only(option):
            return False
        if check_range:
            low, high = _option_range(sensor, option)
            if not low <= value <= high:
                return False
        sensor.set_option(option, value)
    except RuntimeError as error:
        log.warning("RealSense option %s = %g refused: %s", option, value, error)
        return False
    return True


def _option_range(sensor: Any, option: Any) -> tuple[float, float]:
    option_range = sensor.get_option_range(option)
    return float(option_range.min), float(option_range.max)


def _sensor_name(rs: ModuleType, sensor: Any) -> str:
    return (
        sensor.get_info(rs.camera_info.name) if sensor.supports(rs.camera_info.name) else "sensor"
    )


def _profile_order(text: str) -> tuple[int, ...]:
    size, _, rest = text.partition(" ")
    width, _, height = size.partition("x")
    fps = rest.rpartition("@ ")[2]
    return (int(width), int(height), int(fps) if fps.isdigit() else 0)


def main() -> int:
    """Print the devices seen, one per line (``python -m ...cameras.realsense``)."""
    try:
        devices = list_devices()
    except CameraError as error:
        print(error, file=sys.stderr)
        return 1
    if not devices:
        print(describe_devices(devices))
        return 0
    for device in devices:
        print("  ".join(f"{key}: {value}" for key, value in device.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
