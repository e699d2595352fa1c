"""The copies of a session written after its stop: ``session.nwb`` and the ``.slp`` files.

They are built from the finished session folder (``session.json`` and the pose files), so they
come last. A failure is handed to ``on_failure`` (the session reports it and rewrites
``session.json``), never raised: the session's own files stand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def write_exports(
    session_dir: Path, *, nwb: bool, slp: bool, on_failure: Callable[[str], None]
) -> None:
    """Write the exports asked for: ``session.nwb`` (``nwb``), then the ``.slp`` files."""
    if nwb:
        write_nwb(session_dir, on_failure)
    if slp:
        write_slp(session_dir, on_failure)


def write_nwb(session_dir: Path, on_failure: Callable[[str], None]) -> None:
    """Write ``session.nwb`` from the finished folder; a failure goes to ``on_failure``."""
    # Imported here: its pandas adds 0.5 s to every session's start (1.8 -> 2.3 s, measured),
    # for a file written after the stop, and only with [Output] NWB = on.
    from deeplabstream.outputs.nwb import write_session_nwb

    began = time.monotonic()
    try:
        path = write_session_nwb(session_dir)
    except Exception as error:  # the NWB file is a copy: the session's own files stand
        on_failure(f"session.nwb could not be written: {error}")
        return
    log.info("wrote %s in %.1f s", path.name, time.monotonic() - began)


def write_slp(session_dir: Path, on_failure: Callable[[str], None]) -> None:
    """Write the ``.slp`` files of the pose files; a failure goes to ``on_failure``."""
    # Imported here: pandas, as above (only with [Output] SLP = on).
    from deeplabstream.outputs.slp import write_session_slp

    try:
        paths = write_session_slp(session_dir)
    except Exception as error:  # copies of the pose files: the session's own files stand
        on_failure(f"the .slp files could not be written: {error}")
        return
    log.info("wrote %s", ", ".join(path.name for path in paths))
