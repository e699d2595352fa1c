"""Basler industrial cameras through pypylon (``SOURCE = basler``): USB3 Vision and GigE Vision.

``python -m deeplabstream.hardware.cameras.basler`` lists the cameras; docs/cameras.md, "Basler".
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from deeplabstream.core.frames import FrameGeometry, FrameStamp, PixelFormat
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError
from deeplabstream.hardware.cameras.basler_stamps import FrameStamps
from deeplabstream.hardware.cameras.genicam_nodes import NodeMap, first_line

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with `pip install pypylon` (the wheel brings the pylon runtime)"

#: Longest single wait inside the driver, so a stop request is seen while waiting for a trigger.
WAIT_SLICE_S = 0.2
#: Driver buffers when BUFFERS = 0: half a second of frames, within these bounds.
AUTO_BUFFER_SECONDS = 0.5
AUTO_BUFFERS_MIN, AUTO_BUFFERS_MAX_BYTES = 16, 512 << 20
#: This many failed (incomplete) buffers in a row mean the camera is lost, not just unlucky.
MAX_FAILED_IN_A_ROW = 20

_BAYER_PATTERN = {"BayerRG8": "RGGB", "BayerBG8": "BGGR", "BayerGR8": "GRBG", "BayerGB8": "GBRG"}
#: Camera pixel formats this module converts, in order of preference for colour output.
COLOUR_FORMATS = ("BGR8", "BGR8Packed", "RGB8", "RGB8Packed", *_BAYER_PATTERN)
MONO_FORMATS = ("Mono8",)
#: Features by each of their names (pylon's emulator has the older ...Abs ones beside them).
EXPOSURE_TIME = ("ExposureTime", "ExposureTimeAbs")
GAIN = ("Gain", "GainAbs")
FRAME_RATE = ("AcquisitionFrameRate", "AcquisitionFrameRateAbs")

#: The controls offered: name -> (label, camera features, unit, settings key, live).
#: Size and offsets are locked while the camera grabs, so they apply at the next Start Stream.
CONTROL_FEATURES: dict[str, tuple[str, tuple[str, ...], str, str, bool]] = {
    "exposure": ("Exposure", EXPOSURE_TIME, "µs", "EXPOSURE", True),
    "gain": ("Gain", GAIN, "dB", "GAIN", True),
    # The sensor's black level: the image's brightness, live, where the camera has it.
    "brightness": ("Brightness (black level)", ("BlackLevel", "BlackLevelRaw"), "", "", True),
    "framerate": ("Frame rate", FRAME_RATE, "Hz", "FRAMERATE", True),
    "width": ("Width", ("Width",), "px", "WIDTH", False),
    "height": ("Height", ("Height",), "px", "HEIGHT", False),
    "offset_x": ("Offset X", ("OffsetX",), "px", "OFFSET_X", False),
    "offset_y": ("Offset Y", ("OffsetY",), "px", "OFFSET_Y", False),
}

#: White balance of a colour camera: each channel's gain relative to green, chosen through
#: BalanceRatioSelector (one feature, BalanceRatio, holds the ratio of the selected channel).
WHITE_BALANCE_CHANNELS: dict[str, tuple[str, str]] = {
    "white_balance_red": ("White balance red (ratio to green)", "Red"),
    "white_balance_blue": ("White balance blue (ratio to green)", "Blue"),
}
BALANCE_RATIO: tuple[str, ...] = ("BalanceRatio", "BalanceRatioAbs")

TriggerName = Literal["off", "software", "line1", "line2", "line3", "line4"]

#: Files pylon's camera emulator can show (EMULATOR_IMAGES).
EMULATOR_IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def image_folder(path: Path) -> None:
    """``check`` for EMULATOR_IMAGES: a folder that holds images and nothing else."""
    if not path.is_dir():
        raise ValueError(f"not a folder: {path} (a relative path is relative to the settings file)")
    files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() not in EMULATOR_IMAGE_SUFFIXES]
    if others:
        raise ValueError(
            f"the folder must hold only images ({', '.join(EMULATOR_IMAGE_SUFFIXES)}): the "
            f"emulator cannot show {', '.join(others[:3])}"
        )
    if not files:
        raise ValueError(f"the folder {path} holds no images")


@dataclass(frozen=True)
class BaslerSettings:
    """Keys of a ``[Camera NAME]`` section with ``SOURCE = basler``."""

    serial: str = setting(
        "",
        doc="Serial number of the camera (on its label; `python -m "
        "deeplabstream.hardware.cameras.basler` lists the cameras found). Empty: the camera "
        "named USER_NAME, or the only camera connected.",
    )
    user_name: str = setting(
        "",
        doc="The camera's user-defined name (`DeviceUserID`, set in pylon Viewer), to choose it "
        "instead of by SERIAL.",
    )
    width: int | None = setting(
        None,
        doc="Width of the image (area of interest). Empty: as the camera is set now.",
        minimum=1,
        maximum=16384,
        unit="px",
    )
    height: int | None = setting(
        None,
        doc="Height of the image. Empty: as the camera is set now.",
        minimum=1,
        maximum=16384,
        unit="px",
    )
    offset_x: int = setting(
        0, doc="Left edge of the area of interest on the sensor.", minimum=0, unit="px"
    )
    offset_y: int = setting(
        0, doc="Top edge of the area of interest on the sensor.", minimum=0, unit="px"
    )
    pixel_format: PixelFormat = setting(
        "mono8",
        doc="Pixels handed on: `mono8` (grey, 1 byte) or `bgr8` (colour, 3 bytes). The camera's "
        "own format is converted (Bayer demosaicing, RGB to BGR).",
    )
    camera_pixel_format: str = setting(
        "",
        doc="The camera's `PixelFormat`: `Mono8`, `BGR8`, `RGB8` or a Bayer format such as "
        "`BayerRG8` (names as in pylon Viewer). Empty: `Mono8` for PIXEL_FORMAT = mono8, for "
        "bgr8 the first of BGR8, RGB8, Bayer 8-bit the camera offers.",
    )
    framerate: float = setting(
        30.0,
        doc="Frames per second (`AcquisitionFrameRate`). With a hardware trigger the trigger "
        "sets the rate and this is the rate expected (it sizes buffers and stall detection).",
        minimum=0.01,
        maximum=100_000,
        unit="Hz",
    )
    exposure: float | None = setting(
        None,
        doc="Exposure time; auto exposure is switched off. Empty: as the camera is set now. "
        "The exposure must be shorter than the frame interval, or it lowers the rate.",
        minimum=1,
        maximum=500_000,
        unit="µs",
    )
    gain: float | None = setting(
        None,
        doc="Gain; auto gain is switched off. Empty: as the camera is set now.",
        minimum=0,
        maximum=100,
        unit="dB",
    )
    trigger: TriggerName = setting(
        "off",
        doc="`off`: the camera runs free at FRAMERATE. `line1`...`line4`: each frame starts on a "
        "pulse on that input line (hardware trigger; see docs/cameras.md for wiring). "
        "`software`: the capture process triggers each frame at FRAMERATE.",
    )
    trigger_activation: Literal["rising_edge", "falling_edge"] = setting(
        "rising_edge", doc="Which edge of the trigger pulse starts a frame (hardware trigger)."
    )
    buffers: int = setting(
        0,
        doc="Frame buffers the driver fills while the capture process is busy; frames are lost "
        "only when all are full. 0: half a second of frames (at least 16, at most 512 MiB).",
        minimum=0,
        maximum=10_000,
    )
    chunks: bool = setting(
        True,
        doc="Take each frame's counter and timestamp from the camera's chunk data when it offers "
        "them (exact per frame); otherwise, or when false, from the grab result.",
    )
    emulator_images: Path | None = setting(
        None,
        doc="pylon's camera emulator only (`PYLON_CAMEMU`): a folder of images the emulated "
        "camera shows one per frame, in name order, over and over, instead of its test pattern. "
        "Images of WIDTH x HEIGHT are shown unchanged (docs/cameras.md).",
        check=image_folder,
    )
    timeout: float = setting(
        2.0,
        doc="No frame for this long is a camera failure (unplugged, power lost). With a hardware "
        "trigger the first frame is waited for without limit.",
        minimum=0.05,
        maximum=3600,
        unit="s",
    )

    def __post_init__(self) -> None:
        """Refuse SERIAL and USER_NAME together (which one would win is not obvious)."""
        if self.serial.strip() and self.user_name.strip():
            raise ValueError("give SERIAL or USER_NAME, not both")


def conversion_code(camera_format: str, mono_out: bool) -> int | None:
    """Return the OpenCV conversion from ``camera_format`` to mono8 or bgr8 (None: a plain copy).

    Raises KeyError for an unknown format.
    """
    if camera_format in MONO_FORMATS:
        return None if mono_out else cv2.COLOR_GRAY2BGR
    if camera_format in ("BGR8", "BGR8Packed"):
        return cv2.COLOR_BGR2GRAY if mono_out else None
    if camera_format in ("RGB8", "RGB8Packed"):
        return cv2.COLOR_RGB2GRAY if mono_out else cv2.COLOR_RGB2BGR
    # GenICam's and OpenCV's four-letter names both list the top-left 2x2 pixels.
    pattern = _BAYER_PATTERN[camera_format]
    return int(getattr(cv2, f"COLOR_Bayer{pattern}2{'GRAY' if mono_out else 'BGR'}"))


def import_pylon(label: str = "SOURCE = basler") -> tuple[ModuleType, ModuleType]:
    """Import pypylon: its ``pylon`` and ``genicam`` modules, or CameraError naming the package."""
    try:
        from pypylon import genicam, pylon
    except ImportError as error:
        raise CameraError(f"{label} needs the pypylon package ({error}); {INSTALL_HINT}") from None
    return pylon, genicam


def _device_facts(info: Any) -> dict[str, str]:
    """Return what a pylon DeviceInfo says about a camera, in plain words."""
    device_class = info.GetDeviceClass()
    interface = {"BaslerUsb": "USB3", "BaslerGigE": "GigE", "BaslerCamEmu": "emulator"}.get(
        device_class, device_class
    )
    return {
        "vendor": info.GetVendorName(),
        "model": info.GetModelName(),
        "serial": info.GetSerialNumber(),
        "user_name": info.GetUserDefinedName(),
        "interface": interface,
        "device_class": device_class,
        "full_name": info.GetFullName(),
    }


def list_cameras() -> list[dict[str, str]]:
    """Every Basler camera this computer sees: vendor, model, serial, user name, interface."""
    pylon, _ = import_pylon()
    return [_device_facts(info) for info in pylon.TlFactory.GetInstance().EnumerateDevices()]


def describe_cameras(cameras: list[dict[str, str]]) -> str:
    """Describe the cameras found, one line each, for messages and the listing command."""
    if not cameras:
        return (
            "No Basler camera found. Check the cable and power; for GigE cameras the network "
            "settings (pylon IP Configurator); that pylon Viewer sees it."
        )
    lines = []
    for camera in cameras:
        user = f", user name '{camera['user_name']}'" if camera["user_name"] else ""
        lines.append(f"{camera['model']} serial {camera['serial']} ({camera['interface']}{user})")
    return "Cameras found: " + "; ".join(lines)


def find_device(pylon: ModuleType, settings: BaslerSettings, camera: str) -> Any:
    """Return the pylon DeviceInfo chosen by SERIAL, USER_NAME, or the only camera connected.

    Raises CameraError listing the cameras found when none or several match.
    """
    devices = list(pylon.TlFactory.GetInstance().EnumerateDevices())
    facts = [_device_facts(info) for info in devices]
    serial, user_name = settings.serial.strip(), settings.user_name.strip()
    if serial:
        matches = [d for d, f in zip(devices, facts, strict=True) if f["serial"] == serial]
        wanted = f"serial number {serial} (SERIAL)"
    elif user_name:
        matches = [d for d, f in zip(devices, facts, strict=True) if f["user_name"] == user_name]
        wanted = f"user name '{user_name}' (USER_NAME)"
    elif len(devices) > 1:
        raise CameraError(
            f"camera '{camera}': {len(devices)} Basler cameras are connected; choose one with "
            f"SERIAL or USER_NAME. {describe_cameras(facts)}"
        )
    else:
        matches, wanted = devices, "SERIAL or USER_NAME"
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CameraError(
            f"camera '{camera}': {len(matches)} cameras have the {wanted}; give SERIAL. "
            f"{describe_cameras(facts)}"
        )
    raise CameraError(
        f"camera '{camera}': no Basler camera with {wanted}. {describe_cameras(facts)}"
    )


class BaslerSetup:
    """Applies a section's keys to an open camera; then holds ``applied``, ``conversion``."""

    def __init__(self, nodes: NodeMap, settings: BaslerSettings, device_class: str) -> None:
        self._nodes = nodes
        self.settings = settings
        self.device_class = device_class
        self.applied: dict[str, Any] = {}
        self.conversion: int | None = None
        self.stamps = FrameStamps()

    def apply(self, camera: Any, genicam: Any) -> FrameGeometry:
        """Apply every key to the pylon ``camera`` (pypylon's ``genicam``); return its geometry."""
        settings, nodes = self.settings, self._nodes
        nodes.set_enum(("TriggerSelector",), "FrameStart", "TRIGGER", required=False)
        nodes.set_enum(("TriggerMode",), "Off", "TRIGGER", required=False)
        camera_format = self._choose_pixel_format()
        nodes.set_enum(("PixelFormat",), camera_format, "CAMERA_PIXEL_FORMAT")
        self.conversion = conversion_code(camera_format, settings.pixel_format == "mono8")
        self._set_area_of_interest()
        if settings.exposure is not None:
            nodes.set_enum(("ExposureAuto",), "Off", "EXPOSURE", required=False)
            nodes.set_number(EXPOSURE_TIME, settings.exposure, "EXPOSURE", "µs")
        if settings.gain is not None:
            nodes.set_enum(("GainAuto",), "Off", "GAIN", required=False)
            nodes.set_number(GAIN, settings.gain, "GAIN", "dB")
        self._set_rate_and_trigger()
        self._show_emulator_images()
        self.stamps.set_up(nodes, genicam, settings.chunks, self.device_class)
        buffers = self._buffer_count()
        camera.MaxNumBuffer.Value = buffers
        width, height = int(nodes.param("Width").Value), int(nodes.param("Height").Value)
        self.applied.update(
            {
                "camera_pixel_format": camera_format,
                "width": width,
                "height": height,
                "offset_x": int(nodes.param("OffsetX").Value),
                "offset_y": int(nodes.param("OffsetY").Value),
                "exposure_us": nodes.read_number(EXPOSURE_TIME),
                "gain_db": nodes.read_number(GAIN),
                "resulting_framerate": nodes.read_number(
                    ("ResultingFrameRate", "ResultingFrameRateAbs")
                ),
                "buffers": buffers,
            }
        )
        self._warn_if_exposure_limits_rate()
        log.info(
            "%s: %dx%d %s -> %s, %g fps, trigger %s",
            nodes.label,
            width,
            height,
            camera_format,
            settings.pixel_format,
            settings.framerate,
            settings.trigger,
        )
        return FrameGeometry.for_pixel_format(width, height, settings.pixel_format)

    def _choose_pixel_format(self) -> str:
        param = self._nodes.param("PixelFormat")
        offered = tuple(param.Symbolics) if param is not None else ()
        wanted = self.settings.camera_pixel_format.strip()
        supported = (*MONO_FORMATS, *COLOUR_FORMATS)
        if wanted:
            if wanted not in offered:
                raise CameraError(
                    f"{self._nodes.label}: CAMERA_PIXEL_FORMAT = {wanted} is refused: the camera "
                    f"offers {', '.join(offered)}"
                )
            if wanted not in supported:
                usable = ", ".join(f for f in offered if f in supported) or "none"
                raise CameraError(
                    f"{self._nodes.label}: CAMERA_PIXEL_FORMAT = {wanted} cannot be converted; of "
                    f"the camera's formats these can: {usable}"
                )
            return wanted
        preference = MONO_FORMATS if self.settings.pixel_format == "mono8" else COLOUR_FORMATS
        for candidate in (*preference, *supported):
            if candidate in offered:
                return candidate
        raise CameraError(
            f"{self._nodes.label}: the camera offers no pixel format this program converts (it "
            f"offers {', '.join(offered)}; usable: {', '.join(supported)})"
        )

    def _set_area_of_interest(self) -> None:
        """Offsets to 0 first (they limit the size), then the size, then the offsets."""
        for name in ("OffsetX", "OffsetY"):
            param = self._nodes.param(name)
            if param is not None and self._nodes.writable(param):
                param.Value = int(param.GetMin())
        for key in ("WIDTH", "HEIGHT", "OFFSET_X", "OFFSET_Y"):
            value = getattr(self.settings, key.lower())
            if value:  # an empty size keeps the camera's; an offset of 0 is set already
                feature = key.title().replace("_", "")  # OFFSET_X: the camera's OffsetX
                self._nodes.set_number((feature,), value, key, "px")

    def _set_rate_and_trigger(self) -> None:
        settings = self.settings
        hardware = settings.trigger.startswith("line")
        # With a hardware trigger the pulses set the pace: a rate limit would drop some.
        self._nodes.set_bool(("AcquisitionFrameRateEnable",), not hardware)
        if not hardware:
            self._nodes.set_number(FRAME_RATE, settings.framerate, "FRAMERATE", "Hz")
        if settings.trigger == "off":
            return
        source = "Software" if settings.trigger == "software" else settings.trigger.title()
        self._nodes.set_enum(("TriggerSelector",), "FrameStart", "TRIGGER")
        self._nodes.set_enum(("TriggerMode",), "On", "TRIGGER")
        self._nodes.set_enum(("TriggerSource",), source, "TRIGGER")
        if hardware:
            activation = settings.trigger_activation.title().replace("_", "")  # RisingEdge
            self._nodes.set_enum(("TriggerActivation",), activation, "TRIGGER_ACTIVATION")
        self.applied["trigger"] = (
            f"{source} ({settings.trigger_activation})" if hardware else source
        )

    def _show_emulator_images(self) -> None:
        folder = self.settings.emulator_images
        if folder is None:
            return
        if self.device_class != "BaslerCamEmu":
            raise CameraError(
                f"{self._nodes.label}: EMULATOR_IMAGES works only with pylon's camera emulator "
                "(PYLON_CAMEMU); remove it for a real camera"
            )
        self._nodes.set_enum(("TestImageSelector",), "Off", "EMULATOR_IMAGES")
        self._nodes.set_enum(("ImageFileMode",), "On", "EMULATOR_IMAGES")
        self._nodes.param("ImageFilename").Value = str(Path(folder).resolve())
        self.applied["emulator_images"] = str(folder)

    def _buffer_count(self) -> int:
        if self.settings.buffers:
            return self.settings.buffers
        frame_bytes = max(1, int(self._nodes.read_number(("PayloadSize",)) or 1))
        wanted = math.ceil(self.settings.framerate * AUTO_BUFFER_SECONDS)
        return max(AUTO_BUFFERS_MIN, min(wanted, AUTO_BUFFERS_MAX_BYTES // frame_bytes))

    def _warn_if_exposure_limits_rate(self) -> None:
        exposure = self.applied.get("exposure_us")
        if exposure and not self.settings.trigger.startswith("line"):
            limit = 1e6 / exposure
            if limit < self.settings.framerate:
                log.warning(
                    "%s: EXPOSURE %g µs allows at most %.1f fps, below FRAMERATE %g",
                    self._nodes.label,
                    exposure,
                    limit,
                    self.settings.framerate,
                )


class BaslerCamera(Camera):
    """A Basler camera opened with pypylon; see :class:`BaslerSettings` for the options.

    Its frames' stamps: :class:`~hardware.cameras.basler_stamps.FrameStamps`.
    """

    settings_class: ClassVar[type] = BaslerSettings
    settings: BaslerSettings

    @classmethod
    def lock_keys(cls, settings: BaslerSettings) -> tuple[str, ...]:
        """Lock the camera's serial, or its user name if chosen by name; else every Basler.

        Choose cameras by SERIAL: a name in one rig and a serial in another are not seen as one.
        """
        if settings.serial.strip():
            return (f"basler:{settings.serial.strip()}",)
        if settings.user_name.strip():
            return (f"basler:name={settings.user_name.strip()}",)
        return ("basler:*",)  # "the only camera connected": any of them

    def __init__(self, name: str, settings: BaslerSettings) -> None:
        super().__init__(name, settings)
        self._pylon: ModuleType | None = None
        self._genicam: ModuleType | None = None
        self._camera: Any = None
        self._node_map: NodeMap | None = None  # the open camera's features
        self._facts: dict[str, str] = {}
        self._applied: dict[str, Any] = {}  # what was set, for session.json
        self._conversion: int | None = None
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._grabbing_started = False
        self._frames = 0
        self._failed_buffers = 0
        self._failed_in_a_row = 0
        self._stamps = FrameStamps()
        self._next_trigger_ns: int | None = None

    # -- Camera interface -----------------------------------------------------------------

    def open(self) -> FrameGeometry:
        """Find the camera, open it and apply every key; return the frame geometry.

        Raises CameraError: pypylon missing, camera not found or in use, a key refused (with its
        range).
        """
        self.close()
        self._reset_counters()
        self._pylon, self._genicam = import_pylon(f"camera '{self.name}': SOURCE = basler")
        info = find_device(self._pylon, self.settings, self.name)
        self._facts = _device_facts(info)
        try:
            factory = self._pylon.TlFactory.GetInstance()
            self._camera = self._pylon.InstantCamera(factory.CreateDevice(info))
            self._camera.Open()
            self._node_map = NodeMap(self._camera, self._genicam, lambda: self._label)
        except self._genicam.GenericException as error:
            self.close()
            raise CameraError(
                f"{self._label} could not be opened: {first_line(error)}. Is it open in another "
                "program (pylon Viewer, another DeepLabStream)?"
            ) from None
        setup = BaslerSetup(self._nodes, self.settings, self._facts["device_class"])
        try:
            geometry = setup.apply(self._camera, self._genicam)
        except BaseException:
            self.close()
            raise
        self._applied.update(setup.applied)
        self._conversion, self._stamps = setup.conversion, setup.stamps
        return geometry

    @property
    def nominal_fps(self) -> float | None:
        """FRAMERATE (with a hardware trigger: the trigger rate expected)."""
        return self.settings.framerate

    @property
    def live(self) -> bool:
        """A real camera (or pylon's emulator): watched for stalls."""
        return True

    @property
    def paced(self) -> bool:
        """False with a hardware trigger: its pulses, not the camera, set the pace."""
        return not self.settings.trigger.startswith("line")

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Wait for the next frame and write it into ``out``; None only when asked to stop.

        Raises CameraError: no frame within TIMEOUT, camera removed, too many failed buffers.
        """
        camera = self._camera
        if camera is None:
            raise CameraError(f"{self._label}: grab() before open() or after close()")
        if not self._grabbing_started:
            self._start_grabbing(camera)
        while True:
            result = self._retrieve(camera)
            if result is None:
                return None
            try:
                if not result.GrabSucceeded():
                    self._count_failed_buffer(result)
                    continue
                self._failed_in_a_row = 0
                host_ns = host_now_ns()
                stamp = self._stamps.stamp(result, host_ns)
                self._copy_pixels(result, out)
            finally:
                result.Release()
            self._frames += 1
            return stamp

    def close(self) -> None:
        """Stop grabbing and close the camera. Safe to call more than once."""
        camera, self._camera = self._camera, None
        self._node_map = None
        if camera is None:
            return
        genicam = self._genicam
        assert genicam is not None
        try:
            if camera.IsGrabbing():
                camera.StopGrabbing()
            camera.Close()
        except genicam.GenericException as error:
            log.warning("%s did not close cleanly: %s", self._label, first_line(error))
        with contextlib.suppress(genicam.GenericException):
            camera.DestroyDevice()

    def describe(self) -> dict[str, Any]:
        """Model, serial, interface, what was set, where stamps come from; the clock fit."""
        info: dict[str, Any] = {k: v for k, v in self._facts.items() if k != "full_name"}
        info.update(self._applied)
        if self._frames:
            info.update(frames=self._frames, failed_buffers=self._failed_buffers)
        info.update(self._stamps.describe(self._frames))
        return info

    # -- live controls ----------------------------------------------------------------------

    def controls(self) -> tuple[CameraControl, ...]:
        """Exposure, gain, frame rate (live; not when triggered) and the area of interest."""
        if self._camera is None:
            return ()
        found = []
        for name, (label, features, unit, key, live) in CONTROL_FEATURES.items():
            # Size and offsets are locked while grabbing: shown (readable), not writable.
            limits = self._nodes.limits(features, writable=live)
            value = self._nodes.read_number(features)
            if limits is None or value is None:
                continue
            _, low, high, step = limits
            if name == "framerate":
                live = not self.settings.trigger.startswith("line")
                # A slower rate would leave more than TIMEOUT between frames: a lost camera.
                low = max(low, math.ceil(2.0 / self.settings.timeout * 100) / 100)
            found.append(CameraControl(name, label, low, high, step, value, unit, live, key))
        return tuple(found) + self._white_balance_controls()

    def _white_balance_controls(self) -> tuple[CameraControl, ...]:
        """Return the red and blue balance ratios of a colour camera that has them (live)."""
        found = []
        for name, (label, channel) in WHITE_BALANCE_CHANNELS.items():
            if not self._select_balance_channel(channel):
                continue
            limits = self._nodes.limits(BALANCE_RATIO)
            value = self._nodes.read_number(BALANCE_RATIO)
            if limits is None or value is None:
                continue
            _, low, high, step = limits
            found.append(CameraControl(name, label, low, high, step, value, "", True, ""))
        return tuple(found)

    def _select_balance_channel(self, channel: str) -> bool:
        """Point BalanceRatio at ``channel``; False when the camera has no such selector."""
        selector = self._nodes.param("BalanceRatioSelector")
        if selector is None or not self._nodes.writable(selector):
            return False
        if channel not in tuple(selector.Symbolics):
            return False
        selector.Value = channel
        return True

    def set_control(self, name: str, value: float) -> float:
        """Set a live control between two grabs; return what the camera kept (auto modes off)."""
        control = self.checked_control(name, value)
        if name in WHITE_BALANCE_CHANNELS:
            self._nodes.set_enum(("BalanceWhiteAuto",), "Off", "white balance", required=False)
            self._select_balance_channel(WHITE_BALANCE_CHANNELS[name][1])
            features, unit, key = BALANCE_RATIO, "", control.label
        else:
            _, features, unit, key, _ = CONTROL_FEATURES[name]
        if name in ("exposure", "gain"):
            self._nodes.set_enum((f"{control.label}Auto",), "Off", key, required=False)
        if name == "framerate":
            self._nodes.set_bool(("AcquisitionFrameRateEnable",), True)
        self._nodes.set_number(features, value, key, unit)
        kept = self._nodes.read_number(features)
        assert kept is not None  # checked_control found it readable
        # The settings follow, so FRAMERATE paces a software trigger and sizes what it sized.
        if name in ("exposure", "gain", "framerate"):
            followed: dict[str, Any] = {name: kept}
            self.settings = replace(self.settings, **followed)
        applied = {"exposure": "exposure_us", "gain": "gain_db"}
        self._applied[applied.get(name, name)] = kept
        return kept

    # -- grabbing ---------------------------------------------------------------------------

    def _start_grabbing(self, camera: Any) -> None:
        assert self._pylon is not None and self._genicam is not None
        try:
            camera.StartGrabbing(self._pylon.GrabStrategy_OneByOne)
        except self._genicam.GenericException as error:
            raise CameraError(f"{self._label} could not start: {first_line(error)}") from None
        self._grabbing_started = True
        if self.settings.trigger.startswith("line"):
            log.info("%s: waiting for trigger pulses on %s", self._label, self.settings.trigger)

    def _retrieve(self, camera: Any) -> Any:
        """Return the next grab result, or None when a stop was requested while waiting."""
        pylon, genicam = self._pylon, self._genicam
        assert pylon is not None and genicam is not None
        waits_for_first_trigger = self.settings.trigger.startswith("line") and not self._frames
        deadline = None if waits_for_first_trigger else time.monotonic() + self.settings.timeout
        while True:
            if self.stop_requested:
                return None
            if self.settings.trigger == "software":
                self._software_trigger(camera)
            left_s = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
            wait_ms = max(1, round(min(WAIT_SLICE_S, left_s) * 1000))
            try:
                result = camera.RetrieveResult(wait_ms, pylon.TimeoutHandling_Return)
            except genicam.GenericException as error:
                raise self._lost(f"the driver reported: {first_line(error)}") from None
            if result is not None and result.IsValid():
                return result
            if camera.IsCameraDeviceRemoved():
                raise self._lost("the camera was removed (unplugged or lost power)")
            if not camera.IsGrabbing():
                raise self._lost("the camera stopped grabbing (closed or removed)")
            if deadline is not None and time.monotonic() >= deadline:
                raise self._lost(f"no frame within {self.settings.timeout:g} s (TIMEOUT)")

    def _software_trigger(self, camera: Any) -> None:
        """Trigger the next frame when it is due (FRAMERATE), at most once per frame."""
        now = host_now_ns()
        if self._next_trigger_ns is None:
            self._next_trigger_ns = now
        if now < self._next_trigger_ns:
            time.sleep((self._next_trigger_ns - now) / 1e9)
        assert self._pylon is not None
        if camera.WaitForFrameTriggerReady(1000, self._pylon.TimeoutHandling_Return):
            camera.ExecuteSoftwareTrigger()
            interval = round(1e9 / self.settings.framerate)
            self._next_trigger_ns = max(self._next_trigger_ns + interval, now)

    def _count_failed_buffer(self, result: Any) -> None:
        self._failed_buffers += 1
        self._failed_in_a_row += 1
        if self._failed_buffers == 1 or self._failed_buffers % 100 == 0:
            log.warning(
                "%s: %d failed buffer(s) (frame dropped): %s",
                self._label,
                self._failed_buffers,
                result.GetErrorDescription(),
            )
        if self._failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            raise self._lost(
                f"{self._failed_in_a_row} failed buffers in a row ({result.GetErrorDescription()})"
            )

    def _copy_pixels(self, result: Any, out: np.ndarray) -> None:
        with result.GetArrayZeroCopy() as pixels:
            if pixels.shape[:2] != out.shape[:2]:
                raise CameraError(
                    f"{self._label}: the frame size changed to {pixels.shape[1]}x"
                    f"{pixels.shape[0]} while running (expected {out.shape[1]}x{out.shape[0]})"
                )
            code = self._conversion
            if code is None:
                np.copyto(out, pixels.reshape(out.shape))
            else:
                converted = cv2.cvtColor(pixels, code, dst=out)
                if converted is not out:
                    np.copyto(out, converted)

    def _lost(self, why: str) -> CameraError:
        return CameraError(
            f"{self._label} stopped delivering frames after {self._frames} frames: {why}. Check "
            "its cable and power."
        )

    @property
    def _nodes(self) -> NodeMap:
        """The open camera's features."""
        if self._node_map is None:
            raise CameraError(f"{self._label}: its features are read before open()")
        return self._node_map

    @property
    def _label(self) -> str:
        model, serial = self._facts.get("model"), self._facts.get("serial")
        if model:
            return f"camera '{self.name}' (Basler {model}, serial {serial})"
        return f"camera '{self.name}' (Basler)"


def main() -> int:
    """``python -m deeplabstream.hardware.cameras.basler``: print the cameras seen, one per line."""
    try:
        cameras = list_cameras()
    except CameraError as error:
        print(error, file=sys.stderr)
        return 1
    if not cameras:
        print(describe_cameras(cameras))
        return 0
    columns = ("model", "serial", "user_name", "interface")
    rows = [columns, *[tuple(camera[c] or "-" for c in columns) for camera in cameras]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
