"""Camera plugins, chosen by ``SOURCE = name`` in a ``[Camera NAME]`` section of settings.ini.

docs/cameras.md, "A lab's own camera".
"""

from __future__ import annotations

from pathlib import Path

from deeplabstream.core.plugins import Registry, subclass_check, subclasses_in
from deeplabstream.hardware.cameras.base import Camera, CameraControl, CameraError, CompanionStream

# name -> "module:Class"; the module must be cheap to import (heavy imports inside open()).
CAMERAS: Registry[type[Camera]] = Registry(
    "camera",
    "deeplabstream.cameras",
    {
        "synthetic": "deeplabstream.hardware.cameras.synthetic:SyntheticCamera",
        "video": "deeplabstream.hardware.cameras.video:VideoCamera",
        "opencv": "deeplabstream.hardware.cameras.opencv:OpenCVCamera",
        "basler": "deeplabstream.hardware.cameras.basler:BaslerCamera",
        "realsense": "deeplabstream.hardware.cameras.realsense:RealSenseCamera",
    },
    advice="Set SOURCE to one of them; for the lab's own camera, put its module in the cameras/ "
    "folder beside the settings file (SOURCE = module, or module:Class), or install the package "
    'that provides it (docs/cameras.md, "A lab\'s own camera").',
    check=subclass_check(Camera),
    lab_folder="cameras",
    normalise=lambda name: name.strip().lower(),
    find_in_module=lambda module: subclasses_in(module, Camera),
)


def camera_class(source: str, settings_folder: Path | None = None) -> type[Camera]:
    """Return the camera class that ``SOURCE = source`` names (never a path).

    Raises :class:`UnknownPluginError` (also a KeyError; lists the known cameras) or
    :class:`PluginLoadError` (cannot import, or not a Camera).
    """
    return CAMERAS.get(source, settings_folder)


__all__ = [
    "CAMERAS",
    "Camera",
    "CameraControl",
    "CameraError",
    "CompanionStream",
    "camera_class",
]
