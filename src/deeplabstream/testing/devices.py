"""A stimulation device run alone, as the experiment's dispatcher drives it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.hardware.stimulation import device_class
from deeplabstream.hardware.stimulation.base import Action, ActionRecord, StimulationDevice
from deeplabstream.live.processes.analysis.dispatch import PERFORM_LIMIT_S
from deeplabstream.testing.plugin_settings import (
    PluginCheckError,
    close_twice,
    plugin_settings,
    returns_within,
)

SETTLE_S = 5.0  # how long each command may take to be acknowledged or failed


@dataclass(frozen=True)
class DeviceRun:
    """What a device did in :func:`run_device`: each command's settled record, its ``lock_keys``."""

    commands: list[Action]
    records: list[ActionRecord]
    channel_count: int
    lock_keys: tuple[str, ...]

    @property
    def errors(self) -> list[str]:
        """Why each command the device failed or refused failed (``record.error``)."""
        return [r.error for r in self.records if r.error is not None]


def every_kind(channel_count: int, shortest_s: float, device: str = "device") -> list[Action]:
    """Return one command of each kind on the last channel (the default of :func:`run_device`)."""
    last, phase = channel_count - 1, max(shortest_s, 0.01)
    return [
        Action.on(device, last),
        Action.off(device, last),
        Action.pulse(device, last, phase),
        Action.pattern(device, last, phase, phase, count=2),
        Action(device, "reset"),
    ]


def run_device(
    device: str | type[StimulationDevice],
    keys: Mapping[str, str] | None = None,
    commands: Sequence[Action] | None = None,
    *,
    name: str = "device",
    settings_folder: Path | None = None,
    check_present: bool = True,
    settle_s: float = SETTLE_S,
) -> DeviceRun:
    """Make ``device`` from its keys, open it, send ``commands``, wait for them, close it.

    ``device`` is its ``TYPE`` or class; ``commands`` None: on, off, pulse, pattern on the last
    channel, then reset (ValueError outside its channels or limits); ``settle_s``: how long each may
    take. Raises DeviceNotFoundError from ``check_present``, and :class:`PluginCheckError` for a
    broken rule of the device interface (docs/plugins.md, "Testing a plugin alone").
    """
    with using_settings_folder(settings_folder):
        cls = device_class(device, settings_folder) if isinstance(device, str) else device
        options = plugin_settings(
            cls.settings_class, keys, settings_folder=settings_folder, section=f"Device {name}"
        )
        label = f"device {name!r} ({cls.__name__})"
        locks = tuple(cls.lock_keys(options))
        if not all(isinstance(key, str) for key in locks):
            raise PluginCheckError(f"{label}: lock_keys returned {locks!r}; expected texts")
        instance = cls.from_settings(options)
        if check_present:
            instance.check_present()
        instance.open()
        try:
            count = instance.channel_count
            sent = (
                list(commands)
                if commands is not None
                else every_kind(count, instance.min_duration_s)
            )
            records = [_send(instance, label, command, settle_s) for command in sent]
        finally:
            close_twice(instance, label, PERFORM_LIMIT_S)
    return DeviceRun(sent, records, count, locks)


def _send(device: StimulationDevice, label: str, command: Action, settle_s: float) -> ActionRecord:
    """Send one command as the dispatcher does; check that it returned at once and settled."""
    record = returns_within(
        label,
        f"perform({command.describe()})",
        PERFORM_LIMIT_S,
        lambda: device.send(command),
        f"The worker interrupts one that has not returned after {PERFORM_LIMIT_S:g} s. Return "
        "at once: time a pulse in the hardware or a thread of the device, never by sleeping "
        "in perform",
    )
    if not record.wait(settle_s):
        raise PluginCheckError(
            f"{label}: {command.describe()} was neither acknowledged nor failed within "
            f"{settle_s:g} s; a device answered later calls record.acknowledge() or "
            "record.fail() when the answer comes"
        )
    return record
