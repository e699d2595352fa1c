"""Stimulation devices: the outputs an experiment switches (LEDs, lasers, valves) by name.

:data:`DEVICES` is the kind's registry (``TYPE = name``): ``serial``, ``log``, ``nidaq``,
``gpio``, ``visual``, installed packages' (``deeplabstream.devices``); each module is imported
only when used. docs/plugins.md, "Devices".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import Registry, subclass_check, subclasses_in
from deeplabstream.hardware.stimulation.action import Action
from deeplabstream.hardware.stimulation.base import (
    ActionRecord,
    DeviceLostError,
    DeviceNotFoundError,
    StimulationDevice,
    StimulationError,
)

# name -> "module:Class"; the modules import their hardware libraries inside open(), except
# serial_device (pyserial is small and always installed with requirements.txt).
DEVICES: Registry[type[StimulationDevice]] = Registry(
    "stimulation device",
    "deeplabstream.devices",
    {
        "serial": "deeplabstream.hardware.stimulation.serial_device:SerialStimulator",
        "log": "deeplabstream.hardware.stimulation.log_device:LogStimulator",
        "nidaq": "deeplabstream.hardware.stimulation.nidaq:NidaqStimulator",
        "gpio": "deeplabstream.hardware.stimulation.gpio:GpioStimulator",
        "visual": "deeplabstream.hardware.stimulation.visual:VisualStimulator",
    },
    advice="Set TYPE to one of them; for the lab's own device, put its module in the devices/ "
    "folder beside the settings file (TYPE = module, or module:Class), or install the package "
    "that provides it (its entry point in the group deeplabstream.devices; docs/plugins.md).",
    check=subclass_check(StimulationDevice),
    lab_folder="devices",
    normalise=lambda name: name.strip().lower(),
    find_in_module=lambda module: subclasses_in(module, StimulationDevice),
)


def device_class(name: str, settings_folder: Path | None = None) -> type[StimulationDevice]:
    """Return the device class ``TYPE = name`` names: registered, or a lab's ``devices/`` module.

    ``settings_folder``: the settings file's folder (None: the process's, set when the
    settings were loaded; core/plugins/lab_files.py).

    Raises
    ------
    deeplabstream.core.plugins.UnknownPluginError
        An unknown name (also a KeyError); the message lists the known devices.
    deeplabstream.core.plugins.PluginLoadError
        A device whose module cannot be imported, or a class that is not a device.
    """
    return DEVICES.get(name, settings_folder)


def create_device(name: str, **options: Any) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` built with ``options``.

    Examples: ``create_device("serial", port="/dev/ttyACM0")``,
    ``create_device("gpio", pins=[17, 27])``, ``create_device("log")``.
    """
    return device_class(name)(**options)


def device_from_settings(
    name: str, settings: Any | None = None, settings_folder: Path | None = None
) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` (the section's ``TYPE``).

    ``settings`` is the device's ``settings_class`` instance (None: its defaults);
    ``settings_folder`` holds the lab's ``devices/`` (None: the process's).

    Raises
    ------
    KeyError
        For an unknown ``name``.
    ValueError
        When the settings do not make a device (the message says which key).
    """
    cls = device_class(name, settings_folder)
    return cls.from_settings(cls.settings_class() if settings is None else settings)


__all__ = [
    "DEVICES",
    "Action",
    "ActionRecord",
    "DeviceLostError",
    "DeviceNotFoundError",
    "StimulationDevice",
    "StimulationError",
    "create_device",
    "device_class",
    "device_from_settings",
]
