"""Camera plugins, chosen by ``SOURCE = name`` in a ``[Camera NAME]`` section of settings.ini.

Each plugin module is imported only when a camera of its kind is used, so a missing optional
library (pypylon, pyrealsense2) matters only to the labs that use that camera.
"""

from __future__ import annotations

import importlib

from cameras.base import Camera, CameraError, FrameGeometry, FrameStamp, host_now_ns

# name -> "module:Class"; the module must be cheap to import (heavy imports inside open()).
CAMERA_SOURCES: dict[str, str] = {
    "synthetic": "cameras.synthetic:SyntheticCamera",
    "video": "cameras.video:VideoCamera",
    "opencv": "cameras.opencv:OpenCVCamera",
}


def camera_class(source: str) -> type[Camera]:
    """The camera class registered as ``source``; KeyError names the known sources."""
    try:
        target = CAMERA_SOURCES[source]
    except KeyError:
        known = ", ".join(sorted(CAMERA_SOURCES))
        raise KeyError(f"unknown camera source {source!r}; known sources: {known}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = [
    "CAMERA_SOURCES",
    "Camera",
    "CameraError",
    "FrameGeometry",
    "FrameStamp",
    "camera_class",
    "host_now_ns",
]
