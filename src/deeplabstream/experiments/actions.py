"""What an experiment asks the stimulation hardware to do: :class:`Action`.

An experiment never touches a device. It returns actions, and a dispatcher (in the inference
worker, right after pose estimation) hands each one, as it is, to :meth:`StimulationDevice.send
<deeplabstream.hardware.stimulation.base.StimulationDevice.send>` of the device named by
:attr:`Action.device` (the name of a configured stimulation device). The action is the one
command type from the rule to the wire (:mod:`deeplabstream.hardware.stimulation.action`, where
its commands are described): an experiment imports it from here, a device from the device
interface.
"""

from deeplabstream.hardware.stimulation.action import COMMANDS, Action, Command

__all__ = ["COMMANDS", "Action", "Command"]
