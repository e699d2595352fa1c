"""The outputs written after a session's stop: each chosen output's export, in order.

A failure goes to ``on_failure``, never raised: the session's own files stand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from deeplabstream.core.plugins import PluginError
from deeplabstream.outputs.interface import ChosenOutput, ExportContext

log = logging.getLogger(__name__)


def write_exports(
    session_dir: Path,
    outputs: Iterable[ChosenOutput],
    *,
    analysed: bool,
    preview: bool,
    on_failure: Callable[[str], None],
) -> None:
    """Run the export of every chosen output, in order; each failure goes to ``on_failure``."""
    context = ExportContext(session_dir, analysed=analysed, preview=preview)
    for chosen in outputs:
        write_export(chosen, context, on_failure)


def write_export(
    chosen: ChosenOutput, context: ExportContext, on_failure: Callable[[str], None]
) -> None:
    """Run one output's export; a failure (its plugin's too) goes to ``on_failure``."""
    try:
        output = chosen.plugin()
    except PluginError as error:  # checked before the start; an uninstalled package since
        on_failure(f"output {chosen.name!r} could not be loaded: {error}")
        return
    what = output.export_files or "its files"
    began = time.monotonic()
    try:
        paths = output.export(context)
    except Exception as error:  # an export is a copy (or a lab's code): the session's files stand
        # Named by the output (the settings' [Output NAME]): its files' words alone may not
        # tell which of the chosen outputs failed, nor where to look.
        on_failure(f"output {chosen.name!r}: {what} could not be written: {error}")
        return
    if paths:
        names = ", ".join(path.name for path in paths)
        log.info("wrote %s in %.1f s", names, time.monotonic() - began)


def write_nwb(session_dir: Path, on_failure: Callable[[str], None]) -> None:
    """Write ``session.nwb`` from the finished folder; a failure goes to ``on_failure``."""
    context = ExportContext(session_dir, analysed=True, preview=False)
    write_export(ChosenOutput("nwb"), context, on_failure)
