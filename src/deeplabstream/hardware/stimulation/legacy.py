"""The earlier releases' device interfaces, for lab devices written against them (until 0.8.0).

Release 0.5.0's device's ``perform`` took a ``DeviceCommand`` with a vocabulary of its own
(``kind`` ``"PULSE"``, a pulse's length in ``on_s``, ``count`` 0 for an endless pattern and 1
for a pulse, ``describe()`` ``"PULSE 2 0.5 s"``), and a device of release 0.4.0 wrote the
private ``_perform(command) -> ActionRecord`` instead (release 0.5.0 deprecated it; 0.6.0
refused such a device, unannounced, as defining "no stimulation device class"). Devices now
take the :class:`Action` itself. A device written either way still works: it is warned once, at
its class's definition, with what to change, and given a ``DeviceCommand`` made from the
action, as before. This module goes in release :data:`REMOVED_IN`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deeplabstream.core.plugins import deprecated
from deeplabstream.hardware.stimulation.action import Action

_MIGRATION = (
    "perform(self, action: Action) (from deeplabstream.hardware.stimulation.base import "
    "Action): action.command is 'on', 'off', 'pulse', 'pattern' or 'reset' (was kind 'ON' ...), "
    "a pulse's length is action.duration_s (was on_s), an endless pattern's count is None "
    "(was 0), and action.describe() reads 'pulse channel=2 duration_s=0.5' (was "
    "'PULSE 2 0.5 s') (docs/plugins.md, \"Devices\")"
)
#: The release that removes this module (CHANGELOG.md, "Deprecated").
REMOVED_IN = "0.8.0"


@dataclass(frozen=True)
class DeviceCommand:
    """Deprecated: the command a device of release 0.5.0 takes (see the module docstring).

    ``on_s`` is the PULSE length or the PATTERN on-phase, ``off_s`` the PATTERN off-phase,
    ``count`` the number of PATTERN on-phases (0 = until stopped; 1 for a PULSE).
    """

    kind: str
    channel: int | None = None
    on_s: float = 0.0
    off_s: float = 0.0
    count: int = 1

    @classmethod
    def of(cls, action: Action) -> DeviceCommand:
        """Return release 0.5.0's form of ``action``."""
        kind = action.command.upper()
        if action.command == "pulse":
            return cls(kind, action.channel, on_s=action.duration_s or 0.0)
        if action.command == "pattern":
            on_s, off_s = action.on_s or 0.0, action.off_s or 0.0
            return cls(kind, action.channel, on_s, off_s, action.count or 0)
        return cls(kind, None if action.command == "reset" else action.channel)

    def describe(self) -> str:
        """Return its text as release 0.5.0 wrote it, e.g. ``PULSE 2 0.5 s``."""
        if self.kind in ("ON", "OFF"):
            return f"{self.kind} {self.channel}"
        if self.kind == "PULSE":
            return f"PULSE {self.channel} {self.on_s:g} s"
        if self.kind == "PATTERN":
            return f"PATTERN {self.channel} {self.on_s:g} s {self.off_s:g} s x{self.count}"
        return self.kind


def adapt_if_previous(cls: type) -> None:
    """Give ``cls`` a ``perform`` taking an :class:`Action` when it is written for an earlier one.

    Called when a device class is defined: a ``perform`` written for a :class:`DeviceCommand`
    is wrapped, and a private ``_perform`` without a ``perform`` of the class's own becomes its
    ``perform``; either is warned (DeprecationWarning, pointing at the class's definition). A
    class whose ``perform`` takes an :class:`Action`, or that inherits its ``perform``, is left
    as it is.
    """
    if "_perform" in vars(cls) and "perform" not in vars(cls):
        _warn(
            f"{cls.__module__}.{cls.__qualname__} writes the private _perform(command) -> "
            "ActionRecord of release 0.4.0, deprecated in release 0.5.0: write"
        )
        cls.perform = _perform_through_private  # type: ignore[attr-defined]
        return
    perform = vars(cls).get("perform")
    if not callable(perform) or not _takes_device_command(perform):
        return
    _warn(
        f"{cls.__module__}.{cls.__qualname__}.perform takes release 0.5.0's DeviceCommand, "
        "deprecated in release 0.6.0: write"
    )

    @functools.wraps(perform)
    def perform_with_device_command(self: Any, action: Action) -> Any:
        return perform(self, DeviceCommand.of(action))

    cls.perform = perform_with_device_command  # type: ignore[attr-defined]


def _warn(what: str) -> None:
    """Say once, in the console and in session.json, what a device of an earlier release does."""
    deprecated(  # not only to Python's filter, which hides it from a lab
        f"{what} {_MIGRATION}",
        removed_in=REMOVED_IN,
        stacklevel=5,  # here, adapt_if_previous, __init_subclass__, ABCMeta.__new__, the class
    )


def _perform_through_private(self: Any, action: Action) -> Any:
    """``perform`` of a device written for the private ``_perform``: its record, as it made it."""
    return self._perform(DeviceCommand.of(action))


def _takes_device_command(perform: Callable[..., Any]) -> bool:
    """Whether ``perform(self, x)`` is written for a :class:`DeviceCommand`.

    By its parameter's annotation (the class, or its name as a string); unannotated, by whether
    its module imports :class:`DeviceCommand`.
    """
    try:
        parameters = list(inspect.signature(perform).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(parameters) < 2:
        return False
    annotation = parameters[1].annotation
    if annotation is inspect.Parameter.empty:
        module_names = getattr(perform, "__globals__", {})
        return any(value is DeviceCommand for value in module_names.values())
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "DeviceCommand"
    return annotation is DeviceCommand
