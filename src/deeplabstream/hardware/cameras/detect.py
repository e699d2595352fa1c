"""Find the cameras this computer can open, for a rig panel: Basler, RealSense, OpenCV indices.

Never fails (:func:`detect_with_notes` says why nothing was found); a camera in use is not found.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: OpenCV device indices tried (0 to 3): a lab rig rarely has more webcams, and each try costs.
OPENCV_INDICES = 4


@dataclass(frozen=True)
class DetectedCamera:
    """A camera found, with the ``[Camera NAME]`` keys that open it (``SOURCE``, ``SERIAL``...)."""

    source: str  # a name of cameras.CAMERAS
    label: str  # for a list: "Basler acA1300-200um serial 0815-0000 (USB3)"
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """What a search found: the cameras, and per kind of camera found none of, why not."""

    cameras: list[DetectedCamera]
    notes: list[str]

    @property
    def hardware(self) -> list[DetectedCamera]:
        """The cameras found other than the simulated arena."""
        return [camera for camera in self.cameras if camera.source != "synthetic"]


def detect_cameras() -> list[DetectedCamera]:
    """Return every camera found: Basler, RealSense, OpenCV devices, then the simulated arena."""
    return detect_with_notes().cameras


def detect_with_notes(say: Callable[[str], None] | None = None) -> Detection:
    """Look for every kind of camera; say why a kind was not found (``say``: each step)."""
    probes: tuple[tuple[str, Callable[[], list[DetectedCamera]], Callable[[], str]], ...] = (
        ("Basler", detect_basler, _basler_absent),
        ("RealSense", detect_realsense, _realsense_absent),
        ("OpenCV", detect_opencv, _opencv_absent),
    )
    found: list[DetectedCamera] = []
    notes: list[str] = []
    for kind, probe, absent in probes:
        if say is not None:
            say(f"looking for {kind} cameras")
        try:
            cameras = probe()
        except Exception as error:  # a driver's surprise must not break the panel
            log.debug("camera probe %s failed: %r", probe.__name__, error)
            notes.append(f"{kind}: the driver failed while looking ({type(error).__name__}: "
                         f"{error})")  # fmt: skip
            continue
        found += cameras
        if not cameras:
            notes.append(f"{kind}: {absent()}")
    found.append(synthetic_camera())
    return Detection(found, notes)


def _basler_absent() -> str:
    if not _installed("pypylon"):
        return "pypylon is not installed (pip install pypylon), so no Basler camera can be seen"
    return "pylon sees no Basler camera (is it plugged in, and free of the pylon Viewer?)"


def _realsense_absent() -> str:
    if not _installed("pyrealsense2"):
        return "pyrealsense2 is not installed (pip install pyrealsense2)"
    return "librealsense sees no RealSense device (is it plugged in to a USB 3 port?)"


def _opencv_absent() -> str:
    if sys.platform.startswith("linux"):
        nodes = [f"/dev/video{i}" for i in range(OPENCV_INDICES) if Path(f"/dev/video{i}").exists()]
        if not nodes:
            return f"no /dev/video0 to /dev/video{OPENCV_INDICES - 1} on this computer"
        return f"{', '.join(nodes)} opened but delivered no frame (in use, or a metadata node)"
    return f"no OpenCV device 0 to {OPENCV_INDICES - 1} delivered a frame"


def synthetic_camera() -> DetectedCamera:
    """Return the simulated arena, which needs no hardware."""
    return DetectedCamera(
        "synthetic", "Simulated arena (synthetic mouse, no hardware)", {"SOURCE": "synthetic"}
    )


def detect_basler() -> list[DetectedCamera]:
    """Return the Basler cameras pylon sees (pylon's emulator too, with ``PYLON_CAMEMU``)."""
    if not _installed("pypylon"):
        return []
    from deeplabstream.hardware.cameras.basler import list_cameras  # pypylon: optional, heavy

    return [
        DetectedCamera(
            "basler",
            f"Basler {c['model']} serial {c['serial']} ({c['interface']})",
            {"SOURCE": "basler", "SERIAL": c["serial"]},
        )
        for c in list_cameras()
    ]


def detect_realsense() -> list[DetectedCamera]:
    """Return the RealSense devices librealsense sees."""
    if not _installed("pyrealsense2"):
        return []
    from deeplabstream.hardware.cameras.realsense import list_devices  # pyrealsense2: optional

    return [
        DetectedCamera(
            "realsense",
            f"RealSense {d.get('name', '?')} serial {d.get('serial', '?')}",
            {"SOURCE": "realsense", "SERIAL": d.get("serial", "")},
        )
        for d in list_devices()
    ]


def detect_opencv(indices: int = OPENCV_INDICES) -> list[DetectedCamera]:
    """Return the OpenCV device indices below ``indices`` that open and deliver a frame."""
    import cv2

    found = []
    for index in range(indices):
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            continue  # no device node: nothing to open, and trying may be slow
        capture = cv2.VideoCapture(index)
        try:
            # A metadata node (a webcam's second /dev/video) opens but delivers no frame.
            if capture.isOpened() and capture.grab():
                found.append(
                    DetectedCamera(
                        "opencv",
                        f"Camera {index} (OpenCV, {capture.getBackendName()})",
                        {"SOURCE": "opencv", "DEVICE": str(index)},
                    )
                )
        finally:
            capture.release()
    return found


def _installed(module: str) -> bool:
    """Return True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None
