"""A stimulation device's interface and :class:`Action`, the one type from a rule to the wire.

What every output device (board, DAQ, GPIO, log) provides and what it is told to do; every
command returns at once, its timing kept by the device. docs/plugins.md, "Devices".
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from deeplabstream.core.errors import DeviceError
from deeplabstream.core.timing import host_now_ns

Command = Literal["on", "off", "pulse", "pattern", "reset"]
COMMANDS: tuple[str, ...] = ("on", "off", "pulse", "pattern", "reset")
#: The timing fields each command takes (the others take none).
_TIMING: dict[str, frozenset[str]] = {
    "pulse": frozenset({"duration_s"}),
    "pattern": frozenset({"on_s", "off_s", "count"}),
}


def _seconds(name: str, value: Any, command: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{command}: {name} must be a number of seconds, not {value!r}")
    if value <= 0:
        raise ValueError(f"{command}: {name} must be > 0 s, not {value!r}")
    return float(value)


def _check_animal(animal: Any) -> None:
    if animal is not None and (isinstance(animal, bool) or not isinstance(animal, int)
                               or animal < 1):  # fmt: skip
        raise ValueError(f"animal must be a whole number >= 1 or None, not {animal!r}")


@dataclass(frozen=True, slots=True)
class Action:
    """One command for one channel of one stimulation device (docs/plugins.md, "Devices").

    ``duration_s`` is for ``pulse``; ``on_s``, ``off_s``, ``count`` (None: until ``off``) for
    ``pattern``; ``reason`` and ``animal`` (from 1) only for the event log. ``reset`` keeps channel
    0.
    """

    device: str
    command: Command
    channel: int = 0
    duration_s: float | None = None
    on_s: float | None = None
    off_s: float | None = None
    count: int | None = None
    reason: str = ""
    animal: int | None = None

    def __post_init__(self) -> None:
        """Check the command and its timing fields (durations become floats)."""
        _check_animal(self.animal)
        device = self.device
        if not isinstance(device, str) or not device or any(c.isspace() for c in device):
            raise ValueError(f"device must be a device name without spaces, not {self.device!r}")
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}, not {self.command!r}")
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise ValueError(f"channel must be a whole number >= 0, not {self.channel!r}")
        used = {name for name in ("duration_s", "on_s", "off_s", "count")
                if getattr(self, name) is not None}  # fmt: skip
        allowed = _TIMING.get(self.command, frozenset())
        if used - allowed:
            extra = ", ".join(sorted(used - allowed))
            takes = ", ".join(sorted(allowed)) if allowed else "no timing"
            raise ValueError(f"{self.command} takes {takes}, not {extra}")
        if self.command == "pulse":
            object.__setattr__(self, "duration_s", _seconds("duration_s", self.duration_s, "pulse"))
        elif self.command == "pattern":
            object.__setattr__(self, "on_s", _seconds("on_s", self.on_s, "pattern"))
            object.__setattr__(self, "off_s", _seconds("off_s", self.off_s, "pattern"))
            count = self.count
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 1
            ):
                raise ValueError(f"pattern: count must be a whole number >= 1, not {count!r}")

    # Constructors that read like the command ------------------------------------------------

    @classmethod
    def on(cls, device: str, channel: int = 0, reason: str = "") -> Action:
        """Switch ``channel`` of ``device`` on (until an ``off``)."""
        return cls(device, "on", channel, reason=reason)

    @classmethod
    def off(cls, device: str, channel: int = 0, reason: str = "") -> Action:
        """Switch ``channel`` of ``device`` off."""
        return cls(device, "off", channel, reason=reason)

    @classmethod
    def pulse(cls, device: str, channel: int, duration_s: float, reason: str = "") -> Action:
        """One pulse of ``duration_s`` seconds, timed by the device."""
        return cls(device, "pulse", channel, duration_s=duration_s, reason=reason)

    @classmethod
    def pattern(
        cls,
        device: str,
        channel: int,
        on_s: float,
        off_s: float,
        count: int | None = None,
        reason: str = "",
    ) -> Action:
        """``count`` cycles of ``on_s`` on and ``off_s`` off (None: until an ``off``)."""
        return cls(device, "pattern", channel, on_s=on_s, off_s=off_s, count=count, reason=reason)

    # Properties -----------------------------------------------------------------------------

    @property
    def output(self) -> tuple[str, int]:
        """``(device, channel)``: the output this action drives."""
        return (self.device, self.channel)

    @property
    def holds(self) -> bool:
        """Whether the channel stays active until an ``off`` (``on``, endless ``pattern``)."""
        return self.command == "on" or (self.command == "pattern" and self.count is None)

    @property
    def total_s(self) -> float | None:
        """How long the output is active: a pulse's or a finite pattern's length, else None."""
        if self.command == "pulse":
            return self.duration_s
        if self.command == "pattern" and self.count is not None:
            return self.count * (self.on_s + self.off_s)  # type: ignore[operator]
        return None

    def with_reason(self, reason: str) -> Action:
        """Return the same command with another ``reason`` (not checked again: hot path)."""
        if reason == self.reason:
            return self
        clone = copy.copy(self)
        object.__setattr__(clone, "reason", reason)  # frozen: set as dataclasses.replace would
        return clone

    def for_animal(self, animal: int | None) -> Action:
        """Return the same command naming ``animal`` (metadata for the event log only)."""
        if animal == self.animal:
            return self
        _check_animal(animal)
        clone = copy.copy(self)
        object.__setattr__(clone, "animal", animal)  # frozen: set as dataclasses.replace would
        return clone

    def describe(self) -> str:
        """Short text for the event log: ``pulse channel=2 duration_s=0.5 reason=...``."""
        parts: list[str] = [self.command]
        if self.command != "reset":
            parts.append(f"channel={self.channel}")
        for name in ("duration_s", "on_s", "off_s", "count"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value:g}")
        if self.command == "pattern" and self.count is None:
            parts.append("count=until_off")
        if self.reason:
            parts.append(f"reason={self.reason}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Return the fields that are set, for JSON."""
        values = ((name, getattr(self, name)) for name in _FIELDS)
        return {name: value for name, value in values if value is not None and value != ""}


#: The fields an action is made from, in their order (what :meth:`Action.as_dict` writes).
_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Action))


EndKind = Literal["DONE", "CANCEL", "LOST"]

# The board counts PATTERN on-phases in 16 bits; other devices keep the same limit.
PATTERN_COUNT_MAX = 65535
#: The newest action records a device keeps (:attr:`StimulationDevice.records`); every action
#: is in events.csv. Keeping all of them grew a long experiment by about a kilobyte an action.
RECORDS_KEPT = 1000


class StimulationError(DeviceError):
    """A stimulation device failed; the message says which device and what to do."""


class DeviceNotFoundError(StimulationError):
    """The device, its port or its driver is absent at :meth:`StimulationDevice.open`."""


class DeviceLostError(StimulationError):
    """The device vanished during the session (unplugged, port closed by the other end)."""


class ActionRecord:
    """What happened to one action; safe to read from any thread while the device fills it.

    ``command``: the text sent; ``command_id``: the protocol line's id (None without one);
    ``written_ns``: :func:`host_now_ns` right before the device got it.
    """

    def __init__(self, command: str, written_ns: int, command_id: int | None = None) -> None:
        self.command = command
        self.command_id = command_id
        self.written_ns = written_ns
        self._lock = threading.Lock()
        self._settled = threading.Event()
        self._ended = threading.Event()
        self._acked_ns: int | None = None
        self._board_time_us: int | None = None
        self._error: str | None = None
        self._end_kind: EndKind | None = None
        self._end_ns: int | None = None
        self._end_board_time_us: int | None = None

    def __repr__(self) -> str:
        """Describe the record: its action and how far it got."""
        with self._lock:
            state = (
                f"error={self._error!r}"
                if self._error is not None
                else f"acked_ns={self._acked_ns}, board_time_us={self._board_time_us}"
            )
            return f"ActionRecord({self.command!r}, written_ns={self.written_ns}, {state})"

    # -- read side -------------------------------------------------------------------------

    @property
    def acked_ns(self) -> int | None:
        """Host time the device's acknowledgement was read (or the local write returned)."""
        with self._lock:
            return self._acked_ns

    @property
    def board_time_us(self) -> int | None:
        """The device's own clock when the command took effect, in microseconds, if it has one."""
        with self._lock:
            return self._board_time_us

    @property
    def error(self) -> str | None:
        """Why the device refused or never confirmed the command; None while fine."""
        with self._lock:
            return self._error

    @property
    def settled(self) -> bool:
        """True once the command was acknowledged or failed."""
        return self._settled.is_set()

    @property
    def ok(self) -> bool:
        """True once the command was acknowledged without error."""
        with self._lock:
            return self._acked_ns is not None and self._error is None

    @property
    def end_kind(self) -> EndKind | None:
        """How a PULSE or PATTERN ended: DONE (ran out), CANCEL (cut short), LOST (unknown)."""
        with self._lock:
            return self._end_kind

    @property
    def end_ns(self) -> int | None:
        """Host time the end was reported."""
        with self._lock:
            return self._end_ns

    @property
    def end_board_time_us(self) -> int | None:
        """The device's clock at the end (the last falling edge, or the cut), if it has one."""
        with self._lock:
            return self._end_board_time_us

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the command is acknowledged or failed; False on timeout."""
        return self._settled.wait(timeout)

    def wait_end(self, timeout: float | None = None) -> bool:
        """Wait until a PULSE or PATTERN has ended (or failed); False on timeout.

        ON, OFF and RESET have no end of their own: for them this returns only on failure.
        """
        return self._ended.wait(timeout)

    # -- write side (devices) --------------------------------------------------------------

    def acknowledge(self, host_ns: int, board_time_us: int | None = None) -> None:
        """Record the device's confirmation; later calls are ignored."""
        with self._lock:
            if self._settled.is_set():
                return
            self._acked_ns = host_ns
            self._board_time_us = board_time_us
        self._settled.set()

    def fail(self, reason: str) -> None:
        """Record the command refused or never confirmed (if acknowledged: its end is LOST)."""
        with self._lock:
            if not self._settled.is_set():
                self._error = reason
        self._settled.set()
        self.finish("LOST", host_now_ns())

    def finish(self, kind: EndKind, host_ns: int, board_time_us: int | None = None) -> None:
        """Record how a PULSE or PATTERN ended; the first report wins."""
        with self._lock:
            if self._ended.is_set():
                return
            self._end_kind = kind
            self._end_ns = host_ns
            self._end_board_time_us = board_time_us
        self._ended.set()


def check_channel(channel: int | None, channel_count: int) -> int:
    """``channel`` as an int in ``0 .. channel_count - 1``; ValueError otherwise."""
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise ValueError(f"channel must be an int, not {channel!r}")
    if not 0 <= channel < channel_count:
        raise ValueError(f"channel {channel} is outside 0..{channel_count - 1}")
    return channel


def check_duration(seconds: float | None, minimum_s: float, maximum_s: float, what: str) -> float:
    """``seconds`` as a float within the device's limits; ValueError otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"{what} must be a number of seconds, not {seconds!r}")
    value = float(seconds)
    if not math.isfinite(value) or not minimum_s <= value <= maximum_s:
        raise ValueError(f"{what} {seconds!r} s is outside {minimum_s:g} .. {maximum_s:g} s")
    return value


def check_count(count: int) -> int:
    """``count`` as an int in ``0 .. PATTERN_COUNT_MAX`` (0 = until stopped)."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"count must be an int, not {count!r}")
    if not 0 <= count <= PATTERN_COUNT_MAX:
        raise ValueError(f"count {count} is outside 0..{PATTERN_COUNT_MAX} (0 = until stopped)")
    return count


@dataclass(frozen=True)
class NoDeviceSettings:
    """The settings of a device that has no keys besides ``TYPE``."""


class StimulationDevice(ABC):
    """Digital outputs (channels 0..n-1) that switch, pulse and pattern on command.

    A subclass writes :meth:`open`, :meth:`close`, :attr:`channel_count` and :meth:`perform`. Every
    action returns at once with its :class:`ActionRecord`; a device that cannot take commands raises
    :class:`StimulationError`, arguments out of range ValueError.
    """

    #: The ``TYPE`` it is registered as, for messages ("" : the class's name is used).
    name: ClassVar[str] = ""
    #: The settings dataclass of this device's keys in a ``[Device NAME]`` section; each key
    #: is a keyword of the constructor (:meth:`from_settings`).
    settings_class: ClassVar[type] = NoDeviceSettings
    # Shortest and longest PULSE or PATTERN phase the device times, in seconds.
    min_duration_s: ClassVar[float] = 1e-3
    max_duration_s: ClassVar[float] = 2e6

    def __init__(self) -> None:
        self._records: deque[ActionRecord] = deque(maxlen=RECORDS_KEPT)
        self._records_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        """Return a new, unopened device from a ``settings_class`` instance (keys as keywords)."""
        return cls(**dataclasses.asdict(settings))

    @classmethod
    def lock_keys(cls, settings: Any) -> tuple[str, ...]:
        """Return what identifies the hardware ``settings`` drive, as lock keys (``kind:identity``).

        Read the settings only, open nothing. ``kind:*`` takes every device of the kind; nothing:
        any number of sessions may share it. The default is ``<its class>:*``.
        """
        return (f"{cls.__module__}.{cls.__qualname__}:*",)

    def check_present(self) -> None:  # noqa: B027 (optional: most devices cannot tell)
        """Raise :class:`DeviceNotFoundError` when its hardware, driver or library is absent.

        Called before a session starts; must leave nothing open. The default checks nothing.
        """

    # -- to write in a subclass ------------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Connect; raise :class:`DeviceNotFoundError` with a helpful message when impossible."""

    @abstractmethod
    def close(self) -> None:
        """Turn every output off (where the device still answers) and disconnect; idempotent."""

    @property
    @abstractmethod
    def channel_count(self) -> int:
        """Number of output channels (known after :meth:`open` for some devices)."""

    @abstractmethod
    def perform(self, action: Action) -> ActionRecord | None:
        """Carry out ``action`` (already checked against the channels and limits); never wait.

        Called from the loop that analyses frames: a pulse is timed by the device or a thread, never
        by sleeping here. Return None when done as this returns; a device answered later returns its
        own :class:`ActionRecord` and acknowledges, fails or finishes it when the answer comes.
        Raise :class:`StimulationError` when the device cannot take the command.
        """

    # -- the one way in ------------------------------------------------------------------------

    def send(self, action: Action) -> ActionRecord:
        """Check ``action`` against the channels and limits, perform it, return its record at once.

        Raises ValueError outside the device's channels or limits, :class:`StimulationError` when
        the device fails on it.
        """
        self._check(action)
        written_ns = host_now_ns()
        try:
            answered = self.perform(action)
        except StimulationError:
            raise
        except Exception as error:  # the device's own code: named, and stops the experiment
            raise StimulationError(
                f"device {self._label()!r} failed on {action.describe()}: "
                f"{type(error).__name__}: {error}"
            ) from error
        if answered is None:
            record = ActionRecord(action.describe(), written_ns)
            record.acknowledge(host_now_ns())
        else:
            record = answered
        with self._records_lock:
            self._records.append(record)
        return record

    # -- the actions ------------------------------------------------------------------------

    def on(self, channel: int) -> ActionRecord:
        """Drive ``channel`` high until told otherwise (ends a pulse or pattern on it)."""
        return self.send(Action(self._own_name(), "on", channel))

    def off(self, channel: int) -> ActionRecord:
        """Drive ``channel`` low (ends a pulse or pattern on it)."""
        return self.send(Action(self._own_name(), "off", channel))

    def pulse(self, channel: int, duration_s: float) -> ActionRecord:
        """Drive ``channel`` high now and low after ``duration_s`` seconds, timed by the device."""
        return self.send(Action(self._own_name(), "pulse", channel, duration_s=duration_s))

    def pattern(
        self, channel: int, on_s: float, off_s: float, count: int | None = None
    ) -> ActionRecord:
        """``count`` pulses of ``on_s`` seconds, ``off_s`` apart (None or 0: until stopped)."""
        action = Action(self._own_name(), "pattern", channel, on_s=on_s, off_s=off_s,
                        count=count or None)  # fmt: skip
        return self.send(action)

    def reset(self) -> ActionRecord:
        """Every channel low, every pulse and pattern ended."""
        return self.send(Action(self._own_name(), "reset"))

    @property
    def records(self) -> list[ActionRecord]:
        """The device's newest action records (at most :data:`RECORDS_KEPT`), oldest first."""
        with self._records_lock:
            return list(self._records)

    def __enter__(self) -> Self:
        """Open the device for a ``with`` block."""
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the device at the end of the block."""
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _check(self, action: Action) -> None:
        """Raise ValueError when ``action`` is outside this device's channels or limits."""
        command = action.command
        if command == "reset":
            return
        check_channel(action.channel, self.channel_count)
        if command == "pulse":
            self._duration(action.duration_s, "pulse duration")
        elif command == "pattern":
            self._duration(action.on_s, "on-phase")
            self._duration(action.off_s, "off-phase")
            check_count(action.count or 0)

    def _duration(self, seconds: float | None, what: str) -> float:
        return check_duration(seconds, self.min_duration_s, self.max_duration_s, what)

    def _label(self) -> str:
        return self.name or type(self).__name__

    def _own_name(self) -> str:
        """Return the device name the five actions' :class:`Action` carries (without spaces)."""
        return "_".join(self._label().split())
