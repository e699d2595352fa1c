"""What an experiment asks the stimulation hardware to do: :class:`Action`.

An experiment imports it from here, a device from the device interface: it is the one command
type from the rule to the wire (:mod:`deeplabstream.hardware.stimulation.base`).
"""

from deeplabstream.hardware.stimulation.base import COMMANDS, Action, Command

__all__ = ["COMMANDS", "Action", "Command"]
