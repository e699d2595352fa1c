"""National Instruments DAQ outputs (nidaqmx): digital lines, plus one analog output.

Software-timed; channels are the digital lines in order, then the analog output.
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

DRIVER_HELP = (
    "NI-DAQmx, NI's driver, is not installed on this machine (the nidaqmx Python package "
    "alone cannot reach a DAQ). Install it from ni.com (NI-DAQmx for Linux or Windows), or run "
    "`python -m nidaqmx installdriver`, then restart."
)


@dataclass(frozen=True)
class NidaqSettings:
    """``TYPE = nidaq``: NI DAQ digital lines, and optionally one analog output (needs NI-DAQmx)."""

    lines: tuple[str, ...] = setting(
        ("Dev1/port0/line0",), doc="The digital line of each channel, in channel order."
    )
    analog_output: str = setting(
        "",
        doc="An analog output (`Dev1/ao0`) added as the last channel, switching between "
        "ANALOG_ON_VOLTS and ANALOG_OFF_VOLTS (a laser driver's modulation input). Empty: none.",
    )
    analog_on_volts: float = setting(
        5.0, doc="The analog channel's voltage when on.", minimum=-10, maximum=10, unit="V"
    )
    analog_off_volts: float = setting(
        0.0, doc="The analog channel's voltage when off.", minimum=-10, maximum=10, unit="V"
    )

    def __post_init__(self) -> None:
        """Check that there is at least one channel."""
        if not self.lines and not self.analog_output:
            raise ValueError("TYPE = nidaq needs LINES or ANALOG_OUTPUT")


class NidaqStimulator(SoftwareTimedDevice):
    """Digital lines (``"Dev1/port0/line0"``...) and optionally one analog output, last."""

    name = "nidaq"
    settings_class = NidaqSettings
    min_duration_s = 1e-3  # host threads: shorter phases would be mostly scheduling jitter

    @classmethod
    def lock_keys(cls, settings: NidaqSettings) -> tuple[str, ...]:
        """Lock each digital line and the analog output (NI's names ignore case)."""
        channels = [*settings.lines, settings.analog_output]
        return tuple(f"nidaq:{c.strip().lower()}" for c in channels if c.strip())

    def __init__(
        self,
        lines: Sequence[str] = ("Dev1/port0/line0",),
        analog_output: str | None = None,
        analog_on_volts: float = 5.0,
        analog_off_volts: float = 0.0,
    ) -> None:
        super().__init__()
        if not lines and analog_output is None:
            raise ValueError("NidaqStimulator needs at least one line or an analog output")
        self.lines = list(lines)
        self.analog_output = analog_output
        self.analog_on_volts = analog_on_volts
        self.analog_off_volts = analog_off_volts
        self._tasks: list[Any] = []  # one nidaqmx.Task per channel, imported lazily
        self._timing: SoftwareTimedOutputs | None = None

    @classmethod
    def from_settings(cls, settings: NidaqSettings) -> Self:
        """Return a device for ``settings``; an empty ANALOG_OUTPUT means none."""
        return cls(
            settings.lines,
            analog_output=settings.analog_output or None,
            analog_on_volts=settings.analog_on_volts,
            analog_off_volts=settings.analog_off_volts,
        )

    @property
    def channel_count(self) -> int:
        """The digital lines, plus the analog output if there is one."""
        return len(self.lines) + (self.analog_output is not None)

    def check_present(self) -> None:
        """Check that nidaqmx, NI's driver and every channel's device are there; opens nothing."""
        _check_devices(_import_nidaqmx(), [*self.lines, *filter(None, [self.analog_output])])

    def open(self) -> None:
        """Check the driver and devices, then create one output task per channel, all off."""
        if self._timing is not None:
            return
        nidaqmx = _import_nidaqmx()
        _check_devices(nidaqmx, [*self.lines, *filter(None, [self.analog_output])])
        try:
            for line in self.lines:
                task = self._new_task(nidaqmx)
                task.do_channels.add_do_chan(line)
            if self.analog_output is not None:
                task = self._new_task(nidaqmx)
                task.ao_channels.add_ao_voltage_chan(
                    self.analog_output,
                    min_val=min(self.analog_off_volts, self.analog_on_volts),
                    max_val=max(self.analog_off_volts, self.analog_on_volts),
                )
            for channel in range(self.channel_count):
                self._set_level(channel, False)
        except nidaqmx.errors.DaqError as error:
            self._release()
            raise DeviceNotFoundError(f"NI-DAQmx refused the outputs: {error}") from error
        self._timing = SoftwareTimedOutputs(self.channel_count, self._set_level, "nidaq")

    def _new_task(self, nidaqmx: Any) -> Any:
        task = nidaqmx.Task()
        self._tasks.append(task)
        return task

    def _set_level(self, channel: int, high: bool) -> None:
        task = self._tasks[channel]
        if channel < len(self.lines):
            task.write(high)
        else:
            task.write(self.analog_on_volts if high else self.analog_off_volts)

    def _release(self) -> None:
        for task in self._tasks:
            try:
                task.close()
            except Exception as error:  # release the others anyway
                log.warning("nidaq: cannot close task: %s", error)
        self._tasks = []


def _import_nidaqmx() -> Any:
    """nidaqmx, with its driver present; DeviceNotFoundError (with what to do) otherwise."""
    try:
        import nidaqmx
        import nidaqmx.errors
        import nidaqmx.system
    except ImportError as error:
        raise DeviceNotFoundError(
            "the nidaq device needs the nidaqmx package: pip install -r requirements.txt"
        ) from error
    try:
        version = nidaqmx.system.System.local().driver_version
    except nidaqmx.errors.DaqNotFoundError as error:
        raise DeviceNotFoundError(DRIVER_HELP) from error
    except nidaqmx.errors.DaqError as error:
        raise DeviceNotFoundError(f"NI-DAQmx does not answer: {error}") from error
    log.info(
        "NI-DAQmx %d.%d.%d",
        version.major_version,
        version.minor_version,
        version.update_version,
    )
    return nidaqmx


def _check_devices(nidaqmx: Any, physical_channels: list[str]) -> None:
    """Raise DeviceNotFoundError naming the devices present when a channel's device is not."""
    present = [device.name for device in nidaqmx.system.System.local().devices]
    wanted = sorted({channel.split("/")[0] for channel in physical_channels})
    missing = [name for name in wanted if name not in present]
    if missing:
        listing = ", ".join(present) if present else "none"
        raise DeviceNotFoundError(
            f"NI-DAQmx device {', '.join(missing)} not found; devices present: {listing} "
            f"(NI MAX lists them and their names)"
        )
