"""Stimulation devices: the outputs an experiment switches (LEDs, lasers, valves) by name.

Every device implements :class:`~hardware.stimulation.base.StimulationDevice`: ``open()``, ``on``,
``off``, ``pulse``, ``pattern``, ``reset`` and ``close()``, each action returning an
:class:`~hardware.stimulation.base.ActionRecord` at once. The registry :data:`DEVICES` maps a name
to the class; each module is imported only when its device is used, so a missing optional library
(pyserial, gpiozero, nidaqmx) matters only to the labs that use that device. Each device class
declares the keys of its ``[Device NAME]`` section (``TYPE = name``) as its ``settings_class``, so a
new device is one module and one line here.

* ``serial``: the stimulus board (Arduino Uno/Nano with ``firmware/``), board-timed pulses.
* ``log``: records actions only, for dry runs.
* ``nidaq``: NI DAQ digital lines and an analog output (needs NI's NI-DAQmx driver).
* ``gpio``: Raspberry Pi GPIO pins through gpiozero.
* ``visual``: colours or images on a screen, in a Qt window of its own process.
"""

from __future__ import annotations

import importlib
from typing import Any

from deeplabstream.hardware.stimulation.base import (
    ActionRecord,
    DeviceLostError,
    DeviceNotFoundError,
    StimulationDevice,
    StimulationError,
)

# name -> "module:Class"; the modules import their hardware libraries inside open(), except
# serial_device (pyserial is small and always installed with requirements.txt).
DEVICES: dict[str, str] = {
    "serial": "deeplabstream.hardware.stimulation.serial_device:SerialStimulator",
    "log": "deeplabstream.hardware.stimulation.log_device:LogStimulator",
    "nidaq": "deeplabstream.hardware.stimulation.nidaq:NidaqStimulator",
    "gpio": "deeplabstream.hardware.stimulation.gpio:GpioStimulator",
    "visual": "deeplabstream.hardware.stimulation.visual:VisualStimulator",
}


def device_class(name: str) -> type[StimulationDevice]:
    """Return the device class registered as ``name``; KeyError names the known devices."""
    try:
        target = DEVICES[name]
    except KeyError:
        known = ", ".join(sorted(DEVICES))
        raise KeyError(f"unknown stimulation device {name!r}; known devices: {known}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_device(name: str, **options: Any) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` built with ``options``.

    Examples: ``create_device("serial", port="/dev/ttyACM0")``,
    ``create_device("gpio", pins=[17, 27])``, ``create_device("log")``.
    """
    return device_class(name)(**options)


def device_from_settings(name: str, settings: Any | None = None) -> StimulationDevice:
    """Return a new, not yet opened device of kind ``name`` built from its settings.

    Parameters
    ----------
    name
        A key of :data:`DEVICES` (the section's ``TYPE``).
    settings
        An instance of the device's ``settings_class`` (None: its defaults).

    Raises
    ------
    KeyError
        For an unknown ``name``.
    ValueError
        When the settings do not make a device (the message says which key).
    """
    cls = device_class(name)
    return cls.from_settings(cls.settings_class() if settings is None else settings)


__all__ = [
    "DEVICES",
    "ActionRecord",
    "DeviceLostError",
    "DeviceNotFoundError",
    "StimulationDevice",
    "StimulationError",
    "create_device",
    "device_class",
    "device_from_settings",
]
