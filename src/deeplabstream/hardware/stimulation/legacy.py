"""The previous release's device command, for lab devices written against it (for one release).

Until this release a device's ``perform`` took a ``DeviceCommand`` with a vocabulary of its own
(``kind`` ``"PULSE"``, a pulse's length in ``on_s``, ``count`` 0 for an endless pattern and 1
for a pulse, ``describe()`` ``"PULSE 2 0.5 s"``). Devices now take the :class:`Action` itself.
A device whose ``perform`` is written for ``DeviceCommand`` (its parameter annotated so, or,
unannotated, in a module that imports it) still works: it is warned once, at its class's
definition, with what to change, and its ``perform`` is given a ``DeviceCommand`` made from the
action, as before. This module goes in the next release.
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
    "'PULSE 2 0.5 s'). DeviceCommand goes in the next release (docs/plugins.md, \"Devices\")"
)


@dataclass(frozen=True)
class DeviceCommand:
    """Deprecated: the command a device of the previous release takes (see the module docstring).

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
        """Return the previous release's form of ``action``."""
        kind = action.command.upper()
        if action.command == "pulse":
            return cls(kind, action.channel, on_s=action.duration_s or 0.0)
        if action.command == "pattern":
            on_s, off_s = action.on_s or 0.0, action.off_s or 0.0
            return cls(kind, action.channel, on_s, off_s, action.count or 0)
        return cls(kind, None if action.command == "reset" else action.channel)

    def describe(self) -> str:
        """Return its text as the previous release wrote it, e.g. ``PULSE 2 0.5 s``."""
        if self.kind in ("ON", "OFF"):
            return f"{self.kind} {self.channel}"
        if self.kind == "PULSE":
            return f"PULSE {self.channel} {self.on_s:g} s"
        if self.kind == "PATTERN":
            return f"PATTERN {self.channel} {self.on_s:g} s {self.off_s:g} s x{self.count}"
        return self.kind


def adapt_if_previous(cls: type) -> None:
    """Give ``cls``'s own ``perform`` a :class:`DeviceCommand` when it is written for one.

    Called when a device class is defined: warns (DeprecationWarning, pointing at the class's
    definition) and wraps its ``perform``. A class whose ``perform`` takes an :class:`Action`,
    or that inherits its ``perform``, is left as it is.
    """
    perform = vars(cls).get("perform")
    if not callable(perform) or not _takes_device_command(perform):
        return
    deprecated(  # said once in the console and in session.json, not only to Python's filter
        f"{cls.__module__}.{cls.__qualname__}.perform takes the previous release's "
        f"DeviceCommand, which is deprecated: write {_MIGRATION}",
        stacklevel=4,  # here, __init_subclass__, ABCMeta.__new__, the lab's class statement
    )

    @functools.wraps(perform)
    def perform_with_device_command(self: Any, action: Action) -> Any:
        return perform(self, DeviceCommand.of(action))

    cls.perform = perform_with_device_command  # type: ignore[attr-defined]


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
