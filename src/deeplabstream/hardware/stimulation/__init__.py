"""Stimulation devices: the outputs an experiment switches (LEDs, lasers, valves) by name.

Every device is a :class:`~hardware.stimulation.base.StimulationDevice`: it writes ``open()``,
``close()``, ``channel_count`` and ``perform(action)``; every command comes in through its
``send(action)``, an :class:`~hardware.stimulation.action.Action` (an experiment's, as it is;
``on``, ``off``, ``pulse``, ``pattern`` and ``reset`` make one), returning an
:class:`~hardware.stimulation.base.ActionRecord` at once (docs/plugins.md, "Devices").
:data:`DEVICES` is the kind's registry (:class:`~deeplabstream.core.plugins.Registry`): the
devices shipped here by name, and those of installed packages (entry point group
``deeplabstream.devices``); each module is imported only
when its device is used, so a missing optional library (pyserial, gpiozero, nidaqmx) matters only
to the labs that use that device. Each device class declares the keys of its ``[Device NAME]``
section (``TYPE = name``) as its ``settings_class``, so a new device is one module and one line
here (or one entry point in a lab's own package).

* ``serial``: the stimulus board (Arduino Uno/Nano with ``firmware/``), board-timed pulses.
* ``log``: records actions only, for dry runs.
* ``nidaq``: NI DAQ digital lines and an analog output (needs NI's NI-DAQmx driver).
* ``gpio``: Raspberry Pi GPIO pins through gpiozero.
* ``visual``: colours or images on a screen, in a Qt window of its own process.
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
    'that provides it (its entry point in the group deeplabstream.devices; docs/plugins.md).',
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
    """Return a new, not yet opened device of kind ``name`` built from its settings.

    Parameters
    ----------
    name
        A key of :data:`DEVICES` or a module of the lab's ``devices/`` folder (the section's
        ``TYPE``).
    settings
        An instance of the device's ``settings_class`` (None: its defaults).
    settings_folder
        The settings file's folder, where the lab's ``devices/`` is (None: the process's).

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
