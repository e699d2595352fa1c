"""Camera plugins, chosen by ``SOURCE = name`` in a ``[Camera NAME]`` section of settings.ini.

Each plugin module is imported only when a camera of its kind is used, so a missing optional
library (pypylon, pyrealsense2) matters only to the labs that use that camera.
"""

from __future__ import annotations

import importlib

from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError, CompanionStream

# name -> "module:Class"; the module must be cheap to import (heavy imports inside open()).
CAMERA_SOURCES: dict[str, str] = {
    "synthetic": "deeplabstream.hardware.cameras.synthetic:SyntheticCamera",
    "video": "deeplabstream.hardware.cameras.video:VideoCamera",
    "opencv": "deeplabstream.hardware.cameras.opencv:OpenCVCamera",
    "basler": "deeplabstream.hardware.cameras.basler:BaslerCamera",
    "realsense": "deeplabstream.hardware.cameras.realsense:RealSenseCamera",
}


def camera_class(source: str) -> type[Camera]:
    """Return the camera class registered as ``source``; KeyError names the known sources.

    ``source`` may also be a ``module:Class`` path to a Camera subclass outside this package
    (for code that builds its settings itself, such as tests with a fault-injecting camera).
    """
    if ":" in source and source not in CAMERA_SOURCES:
        target = source
    else:
        try:
            target = CAMERA_SOURCES[source]
        except KeyError:
            known = ", ".join(sorted(CAMERA_SOURCES))
            raise KeyError(f"unknown camera source {source!r}; known sources: {known}") from None
    module_name, _, class_name = target.partition(":")
    if target is source:  # a path given by the caller: say clearly when it does not load
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise KeyError(f"camera class {source!r} cannot be loaded: {error}") from None
    return getattr(importlib.import_module(module_name), class_name)


__all__ = [
    "CAMERA_SOURCES",
    "Camera",
    "CameraControl",
    "CameraError",
    "CompanionStream",
    "camera_class",
]
