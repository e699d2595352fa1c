"""What a stimulation device is told to do: :class:`Action`, one type from the rule to the wire.

Every command returns at once, its timing kept by the device. docs/plugins.md, "Devices".
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import Any, Literal

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
