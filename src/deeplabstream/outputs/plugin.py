"""The earlier path of the output plugin interface, kept for the outputs labs wrote against it.

The interface is :mod:`deeplabstream.outputs.interface` (docs/outputs.md, docs/plugins.md);
``from deeplabstream.outputs.plugin import Output`` keeps working in a lab's existing output.
"""

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
