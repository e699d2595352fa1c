"""The public device extension point: ``perform(action)``, its acknowledgement rule, old devices.

A device written against today's interface implements ``perform(action) -> None`` and is
acknowledged when it returns; a device answered later returns its own record.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.experiments.actions import Action as ExperimentAction
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
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
        self.seen: list[tuple[int, Action, int]] = []

    @property
    def channel_count(self) -> int:
        return self.channels

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def perform(self, action: Action) -> None:
        started = host_now_ns()
        self.seen.append((started, action, host_now_ns()))


def test_a_device_that_returns_none_is_acknowledged_when_perform_returns() -> None:
    device = PinDevice.from_settings(PinSettings(channels=3))  # settings keys: keywords
    assert device.channel_count == 3
    before = host_now_ns()
    record = device.pulse(2, 0.25)
    ((started, command, ended),) = device.seen
    assert command == Action("PinDevice", "pulse", 2, duration_s=0.25)
    assert before <= record.written_ns <= started  # written: just before perform
    assert record.acked_ns is not None and ended <= record.acked_ns <= host_now_ns()
    assert record.command == "pulse channel=2 duration_s=0.25"
    assert record.ok and device.records == [record]
    with pytest.raises(ValueError, match=r"channel 3 is outside 0\.\.2"):
        device.on(3)  # checked before perform: perform sees only valid commands
    assert len(device.seen) == 1


class AnsweringDevice(PinDevice):
    """Answered later, from another thread: returns its own record and acknowledges it then."""

    def perform(self, action: Action) -> ActionRecord:
        record = ActionRecord(action.describe(), host_now_ns())
        threading.Timer(0.05, record.acknowledge, args=(host_now_ns() + 1, 777)).start()
        return record


def test_a_device_that_answers_itself_returns_its_record_and_acknowledges_it_later() -> None:
    device = AnsweringDevice()
    record = device.on(1)
    assert not record.settled  # the base left it to the device
    assert record.wait(5) and record.board_time_us == 777 and device.records == [record]


class BrokenDevice(PinDevice):
    def perform(self, action: Action) -> None:
        raise RuntimeError("the relay is stuck")


def test_an_exception_in_perform_is_a_stimulation_error_naming_the_device() -> None:
    failure = r"'BrokenDevice' failed on on channel=0: RuntimeError: the relay is stuck"
    with pytest.raises(StimulationError, match=failure):
        BrokenDevice().on(0)


def test_an_experiments_action_reaches_perform_as_it_is() -> None:
    """One type from the rule to the wire: the dispatcher's send hands the action itself."""
    assert ExperimentAction is Action
    device = PinDevice()
    action = Action.pattern("led", 1, 0.01, 0.02, reason="cue").for_animal(2)
    record = device.send(action)
    assert device.seen[0][1] is action
    assert record.command == "pattern channel=1 on_s=0.01 off_s=0.02 count=until_off reason=cue"
    with pytest.raises(ValueError, match=r"on-phase 0\.0001 s is outside 0\.001"):
        device.send(Action.pattern("led", 0, 1e-4, 0.02))  # the device's own limits
    assert device.pattern(0, 0.01, 0.01, 0).command.endswith("count=until_off")  # the board's 0


def test_an_unknown_command_never_reaches_a_device() -> None:
    with pytest.raises(ValueError, match="command must be one of on, off, pulse, pattern, reset"):
        Action("led", "PULSE", 0, duration_s=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reset takes no timing, not duration_s"):
        Action("led", "reset", duration_s=0.1)
    assert Action("led", "reset", reason="stop").describe() == "reset reason=stop"


def test_a_device_without_perform_cannot_be_made() -> None:
    class Incomplete(StimulationDevice):
        channel_count = 1

        def open(self) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(TypeError, match="perform"):
        Incomplete()  # type: ignore[abstract]
