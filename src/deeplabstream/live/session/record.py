"""Parts of ``session.json`` the session fills: its metadata, run labels, the clean-up at the start.

The record's shape is :mod:`outputs.session_record`'s (one owner); this module and
``status.py`` fill it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deeplabstream.outputs.session_record import (
    Cleanup,
    Metadata,
    Subject,
    recover_interrupted_sessions,
)
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.ring import remove_stale_rings

log = logging.getLogger(__name__)

#: session.json is rewritten (atomically) this often while the session runs, so that a session
#: killed hard still says how far it got.
SESSION_JSON_PERIOD_S = 2.0


def clean_up_after_killed_sessions(output_dir: Path) -> Cleanup:
    """Remove the shared memory of dead sessions; mark their session folders ``interrupted``.

    Its ``warnings`` (damaged ``session.json`` files moved aside) are the new session's to
    report (``session.json`` -> ``warnings``).
    """
    rings = remove_stale_rings()
    if rings:
        megabytes = sum(ring.nbytes for ring in rings) / 2**20
        owners = sorted({ring.owner_pid for ring in rings})
        log.warning(
            "removed %d shared-memory ring(s) (%.0f MB) left in /dev/shm by killed session(s) "
            "(process ids %s)",
            len(rings),
            megabytes,
            ", ".join(map(str, owners)),
        )
    recovery = recover_interrupted_sessions(output_dir)
    for folder in recovery.interrupted:
        log.warning("session %s was interrupted (killed); marked so in its session.json", folder)
    return Cleanup(
        stale_rings_removed=tuple(ring.name for ring in rings),
        stale_ring_bytes=sum(ring.nbytes for ring in rings),
        interrupted_sessions_marked=tuple(str(folder) for folder in recovery.interrupted),
        # session.json files that were not a session's record: renamed, never deleted
        damaged_session_files_moved=tuple(str(path) for path in recovery.damaged),
        warnings=tuple(recovery.warnings),
    )


def is_live(settings: Settings) -> bool:
    """Return False when a camera delivers frames as fast as they are taken (a replayed video)."""
    return not any(
        getattr(camera.options, "pacing", "realtime") in ("free", "lockstep")
        for camera in settings.cameras
    )


def run_label(run: int) -> str:
    """Return what goes into the file names of a session's ``run``-th analysis or experiment."""
    return "" if run == 1 else f".run{run}"


def session_metadata(settings: Settings) -> Metadata:
    """Return ``session.json``'s ``metadata``: the ``[Session]`` keys the user filled in."""
    session = settings.session
    return Metadata(
        animal=session.animal,
        experimenter=session.experimenter,
        notes=session.notes,
        planned_duration_s=session.planned_duration,
        recorded_cameras=tuple(c.name for c in settings.cameras if c.common.record),
        # the subject and the lab (issue 29), for session.nwb: NWB's forms, checked in settings
        subject=Subject(
            species=session.species,
            age=session.age,
            date_of_birth=session.date_of_birth,
            sex=session.sex,
            strain=session.strain,
        ),
        institution=session.institution,
        lab=session.lab,
        experiment_description=session.experiment_description,
    )
