"""Raspberry Pi (or any gpiozero board) GPIO pins as stimulation channels, host-timed.

``GPIOZERO_PIN_FACTORY=mock`` runs it without GPIO hardware.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from deeplabstream.core.schema import setting
from deeplabstream.hardware.stimulation.base import (
    DeviceNotFoundError,
)
from deeplabstream.hardware.stimulation.software_timing import (
    SoftwareTimedDevice,
    SoftwareTimedOutputs,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpioSettings:
    """``TYPE = gpio``: Raspberry Pi GPIO pins through gpiozero, one per channel."""

    pins: tuple[str, ...] = setting(
        (), doc="The pin of each channel, in channel order (BCM numbers, `GPIO17`, `BOARD11`)."
    )
    active_high: bool = setting(
        True, doc="False for drivers that switch on when the pin is low: `on` then drives it low."
    )

    def __post_init__(self) -> None:
        """Check that pins are given: there is no sensible default."""
        if not self.pins:
            raise ValueError("TYPE = gpio needs PINS (for example 17, 27)")


class GpioStimulator(SoftwareTimedDevice):
    """GPIO pins driven through gpiozero; channel n is ``pins[n]`` (``17``, ``"GPIO17"``...).

    ``active_high`` False: ``on`` drives the pin low.
    """

    name = "gpio"
    settings_class = GpioSettings
    min_duration_s = 1e-3  # host threads: shorter phases would be mostly scheduling jitter

    @classmethod
    def lock_keys(cls, settings: GpioSettings) -> tuple[str, ...]:
        """Lock each pin (``17``, ``GPIO17``, ``BCM17`` are one; ``BOARD11`` is not translated)."""
        return tuple(f"gpio:{_pin_key(str(pin))}" for pin in settings.pins)

    def __init__(self, pins: Sequence[int | str], active_high: bool = True) -> None:
        super().__init__()
        if not pins:
            raise ValueError("GpioStimulator needs at least one pin")
        self.pins = list(pins)
        self.active_high = active_high
        self._outputs: list[Any] = []  # gpiozero.DigitalOutputDevice, imported lazily
        self._timing: SoftwareTimedOutputs | None = None

    @classmethod
    def from_settings(cls, settings: GpioSettings) -> Self:
        """Return a device for ``settings``; pins given as digits are BCM numbers."""
        pins = [int(pin) if pin.isdigit() else pin for pin in settings.pins]
        return cls(pins, active_high=settings.active_high)

    @property
    def channel_count(self) -> int:
        """One channel per pin."""
        return len(self.pins)

    @property
    def outputs(self) -> list[Any]:
        """The gpiozero ``DigitalOutputDevice`` of each channel (empty until :meth:`open`)."""
        return list(self._outputs)

    def check_present(self) -> None:
        """Claim every pin (driven off) and release it: gpiozero, a pin factory, pins free."""
        if self._timing is None:
            self.open()
            self.close()

    def open(self) -> None:
        """Claim every pin as an output driven off; DeviceNotFoundError says why it cannot."""
        if self._timing is not None:
            return
        try:
            import gpiozero
        except ImportError as error:
            raise DeviceNotFoundError(
                "the gpio device needs gpiozero: pip install -r requirements.txt"
            ) from error
        try:
            for pin in self.pins:
                self._outputs.append(
                    gpiozero.DigitalOutputDevice(
                        pin, active_high=self.active_high, initial_value=False
                    )
                )
        except gpiozero.GPIOZeroError as error:
            self._release()
            raise DeviceNotFoundError(
                f"cannot claim GPIO pin {pin!r}: {error}. Off a Raspberry Pi, set "
                f"GPIOZERO_PIN_FACTORY=mock for a dry run."
            ) from error
        self._timing = SoftwareTimedOutputs(len(self._outputs), self._set_level, "gpio")

    def _set_level(self, channel: int, high: bool) -> None:
        if high:
            self._outputs[channel].on()
        else:
            self._outputs[channel].off()

    def _release(self) -> None:
        for output in self._outputs:
            try:
                output.close()
            except Exception as error:  # release the others anyway
                log.warning("gpio: cannot release %s: %s", output, error)
        self._outputs = []


def _pin_key(pin: str) -> str:
    """Return ``BCM17`` for ``17``, ``GPIO17`` or ``BCM17``; other names in capitals."""
    name = pin.strip().upper()
    for prefix in ("GPIO", "BCM"):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            name = name[len(prefix) :]
    return f"BCM{int(name)}" if name.isdigit() else name
