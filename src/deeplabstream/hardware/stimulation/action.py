"""Release 0.7.0's path of :class:`Action`, kept until release 0.9.0: ``stimulation.base`` since."""

from deeplabstream.core.plugins.notices import deprecated
from deeplabstream.hardware.stimulation.base import COMMANDS, Action, Command

deprecated(
    "deeplabstream.hardware.stimulation.action is in deeplabstream.hardware.stimulation.base "
    "since release 0.8.0: write `from deeplabstream.hardware.stimulation import Action`",
    removed_in="0.9.0",
)

__all__ = ["COMMANDS", "Action", "Command"]
