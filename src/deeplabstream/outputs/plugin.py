"""The earlier path of the output plugin interface, kept for the outputs labs wrote against it.

The interface is :mod:`deeplabstream.outputs.interface` (docs/outputs.md, docs/plugins.md);
``from deeplabstream.outputs.plugin import Output`` keeps working in a lab's existing output,
with a DeprecationWarning naming the new path. Nothing in the package imports this module.
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
    "deeplabstream.outputs.plugin is deprecated: import the output interface from "
    "deeplabstream.outputs.interface (docs/plugins.md, \"Outputs\")",
    stacklevel=2,
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
