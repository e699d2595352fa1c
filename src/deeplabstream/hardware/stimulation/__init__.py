"""Stimulation devices: the outputs an experiment switches (LEDs, lasers, valves) by name.

docs/plugins.md, "Devices".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import Registry, subclass_check, subclasses_in
from deeplabstream.hardware.stimulation.base import (
    Action,
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

    Raises :class:`UnknownPluginError` (also a KeyError; lists the known devices) or
    :class:`PluginLoadError`.
    """
    return DEVICES.get(name, settings_folder)


def create_device(name: str, **options: Any) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` built with ``options``.

    For example ``create_device("serial", port="/dev/ttyACM0")``.
    """
    return device_class(name)(**options)


def device_from_settings(
    name: str, settings: Any | None = None, settings_folder: Path | None = None
) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` from its ``settings`` (None: defaults).

    Raises KeyError for an unknown ``name``, ValueError when the settings make no device.
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
