"""A window job (app/gui/jobs.py) that stays in one stage for as long as its test wants.

It runs in the job's own helper process, like Detect, Inspect or a calibration: it says its
stage, then waits until the test creates the file it was given. The test thereby watches the
progress line of a running job without depending on how fast the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

STAGE = "waiting for the test"


def held_job(say: Callable[[str], None], release: str) -> str:
    """Say :data:`STAGE`, then wait until the file ``release`` exists; return "released"."""
    say(STAGE)
    path = Path(release)
    while not path.exists():
        time.sleep(0.02)
    return "released"
