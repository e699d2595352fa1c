"""Camera plugins, chosen by ``SOURCE = name`` in a ``[Camera NAME]`` section of settings.ini.

:data:`CAMERAS` is the kind's registry: built-in, installed (``deeplabstream.cameras``) and the
lab's ``cameras/`` folder; each module is imported only when used. docs/cameras.md, "A lab's own
camera".
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
    """Return the camera class that ``SOURCE = source`` names.

    ``source`` is a name of :data:`CAMERAS`, a module of the lab's ``cameras/`` folder
    (``module`` or ``module:Class``), or a ``deeplabstream....:Class``; never a path.
    ``settings_folder`` None: the process's.

    Raises
    ------
    deeplabstream.core.plugins.UnknownPluginError
        An unknown name (also a KeyError); the message lists the known cameras.
    deeplabstream.core.plugins.PluginLoadError
        A camera that cannot be imported, or a class that is not a Camera.
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
