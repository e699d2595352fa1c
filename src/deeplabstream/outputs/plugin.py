"""The output interface's path until release 0.4.0, kept for the outputs labs wrote against it.

The interface is :mod:`deeplabstream.outputs.interface` (docs/plugins.md, "Outputs"). Release
0.5.0 deprecated this path with a warning Python hid from labs, and 0.6.0 removed it without a
word in any notes, so a lab's output that imported it failed with ``ModuleNotFoundError``. It is
back, deprecated, until release 0.8.0: ``from deeplabstream.outputs.plugin import Output`` works
and is said once, in the console and in ``session.json``, naming the new import. Nothing in the
package imports this module.
"""

from deeplabstream.core.plugins import deprecated
from deeplabstream.outputs.interface import (
    OUTPUTS,
    POSE_OUTPUT,
    AnalysedFrame,
    ChosenOutput,
    EventMarkers,
    ExportContext,
    LiveOutput,
    NoOutputSettings,
    Output,
    OutputCamera,
    OutputSession,
    PoseSink,
)

deprecated(
    "deeplabstream.outputs.plugin, the output interface's path until release 0.4.0, is "
    "deprecated: import the same names from deeplabstream.outputs.interface "
    '(docs/plugins.md, "Outputs")',
    removed_in="0.8.0",
    stacklevel=2,  # the lab's import (the import machinery's frames are skipped)
)

__all__ = [
    "OUTPUTS",
    "POSE_OUTPUT",
    "AnalysedFrame",
    "ChosenOutput",
    "EventMarkers",
    "ExportContext",
    "LiveOutput",
    "NoOutputSettings",
    "Output",
    "OutputCamera",
    "OutputSession",
    "PoseSink",
]
