"""The public device extension point: ``perform(command)``, its acknowledgement rule, old devices.

A device written against today's interface implements ``perform(command) -> None`` and is
acknowledged when it returns; a device answered later returns its own record; a device written
for the old private ``_perform`` still works, with a DeprecationWarning that names ``perform``.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import pytest

from deeplabstream.core.clock import host_now_ns
from deeplabstream.core.schema import setting
from deeplabstream.hardware.stimulation.base import (
    ActionRecord,
    DeviceCommand,
    StimulationDevice,
    StimulationError,
)


@dataclass(frozen=True)
class PinSettings:
    channels: int = setting(2, doc="Channels.", minimum=1)


class PinDevice(StimulationDevice):
    """Keeps every command with the host times around its perform."""

    settings_class = PinSettings

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.seen: list[tuple[int, DeviceCommand, int]] = []

    @property
    def channel_count(self) -> int:
        return self.channels

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def perform(self, command: DeviceCommand) -> None:
        started = host_now_ns()
        self.seen.append((started, command, host_now_ns()))


def test_a_device_that_returns_none_is_acknowledged_when_perform_returns() -> None:
    device = PinDevice.from_settings(PinSettings(channels=3))  # settings keys: keywords
    assert device.channel_count == 3
    before = host_now_ns()
    record = device.pulse(2, 0.25)
    (started, command, ended), = device.seen
    assert command == DeviceCommand("PULSE", 2, on_s=0.25)
    assert before <= record.written_ns <= started  # written: just before perform
    assert record.acked_ns is not None and ended <= record.acked_ns <= host_now_ns()
    assert record.ok and record.command == "PULSE 2 0.25 s" and device.records == [record]
    with pytest.raises(ValueError, match=r"channel 3 is outside 0\.\.2"):
        device.on(3)  # checked before perform: perform sees only valid commands
    assert len(device.seen) == 1


class AnsweringDevice(PinDevice):
    """Answered later, from another thread: returns its own record and acknowledges it then."""

    def perform(self, command: DeviceCommand) -> ActionRecord:
        record = ActionRecord(command.describe(), host_now_ns())
        threading.Timer(0.05, record.acknowledge, args=(host_now_ns() + 1, 777)).start()
        return record


def test_a_device_that_answers_itself_returns_its_record_and_acknowledges_it_later() -> None:
    device = AnsweringDevice()
    record = device.on(1)
    assert not record.settled  # the base left it to the device
    assert record.wait(5) and record.board_time_us == 777 and device.records == [record]


class BrokenDevice(PinDevice):
    def perform(self, command: DeviceCommand) -> None:
        raise RuntimeError("the relay is stuck")


def test_an_exception_in_perform_is_a_stimulation_error_naming_the_device() -> None:
    failure = r"'BrokenDevice' failed on ON 0: RuntimeError: the relay is stuck"
    with pytest.raises(StimulationError, match=failure):
        BrokenDevice().on(0)


def test_a_device_written_for_the_old_private_perform_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"implement perform\(self, command") as caught:

        class OldDevice(PinDevice):
            def _perform(self, action: DeviceCommand) -> ActionRecord:
                record = ActionRecord(action.describe(), host_now_ns())
                record.acknowledge(record.written_ns)
                return record

    assert caught[0].filename == __file__  # the warning points at the lab's class
    device = OldDevice()
    record = device.off(1)
    assert record.ok and record.acked_ns == record.written_ns and device.records == [record]
    assert device.seen == []  # its _perform ran, not the parent's perform
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Later(OldDevice):  # a subclass of an old device is not warned about again
            pass

    assert Later().on(0).ok


def test_a_device_without_perform_cannot_be_made() -> None:
    class Incomplete(StimulationDevice):
        channel_count = 1

        def open(self) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(TypeError, match="perform"):
        Incomplete()  # type: ignore[abstract]
