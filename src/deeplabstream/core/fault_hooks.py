"""A hook for the fault tests only: hold a process at a named moment of its start-up.

With ``DEEPLABSTREAM_TEST_HOLD=<moment>`` and ``DEEPLABSTREAM_TEST_HOLD_DIR=<folder>``,
:func:`hold_here` writes ``<folder>/<moment>.<pid>`` and waits for ``<folder>/release``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

HOLD_VARIABLE = "DEEPLABSTREAM_TEST_HOLD"
HOLD_DIR_VARIABLE = "DEEPLABSTREAM_TEST_HOLD_DIR"
RELEASE_FILE = "release"
HOLD_LIMIT_S = 120.0  # a test that never releases still ends


def hold_here(moment: str, *, importing: bool = False) -> None:
    """Wait here while a test holds ``moment`` (at most :data:`HOLD_LIMIT_S`); else return at once.

    ``importing``: only a ``spawn`` child importing its entry's modules holds, not the main process.
    """
    if os.environ.get(HOLD_VARIABLE) != moment:
        return
    if importing and not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    folder = Path(os.environ.get(HOLD_DIR_VARIABLE, "."))
    (folder / f"{moment}.{os.getpid()}").write_text("held\n", encoding="ascii")
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not (folder / RELEASE_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
