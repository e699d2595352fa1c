"""The built-in exports: ``nwb`` (``session.nwb``) and ``slp`` (``<camera>.slp``).

Written after the stop from the finished folder.
"""

from __future__ import annotations

from pathlib import Path

from deeplabstream.outputs.interface import ExportContext, Output


class NwbOutput(Output):
    """``nwb`` (``[Output] NWB = on``): ``session.nwb``, unless the session only streamed."""

    export_files = "session.nwb"

    def export(self, context: ExportContext) -> list[Path]:
        """Write ``session.nwb`` (nothing for a preview: nothing recorded or analysed)."""
        if context.preview:
            return []
        # Imported here: pandas and pynwb add about half a second to every session's start.
        from deeplabstream.outputs.nwb import write_session_nwb

        return [write_session_nwb(context.session_dir)]


class SlpOutput(Output):
    """``slp`` (``[Output] SLP = on``): a ``.slp`` file beside each pose file."""

    export_files = "the .slp files"

    def export(self, context: ExportContext) -> list[Path]:
        """Write the ``.slp`` files of the pose files (nothing when no pose was estimated)."""
        if not context.analysed:
            return []
        from deeplabstream.outputs.slp import write_session_slp

        return list(write_session_slp(context.session_dir))
