"""A hook for the fault tests only: hold a process at a named moment of its start-up.

The tests of Ctrl-C during start-up (``tests/faults/test_start_up_stop.py``) must
send the signal at a chosen moment, not after a sleep that depends on the machine's speed. With
``DEEPLABSTREAM_TEST_HOLD=<moment>`` and ``DEEPLABSTREAM_TEST_HOLD_DIR=<folder>`` in the
environment, a process reaching :func:`hold_here` with that moment writes
``<folder>/<moment>.<pid>`` and waits until ``<folder>/release`` exists (at most
:data:`HOLD_LIMIT_S`), so the test knows where it is, signals, then lets it go on.

Without the variable (every real run) :func:`hold_here` returns at once. The moments, where
the code calls it:

- ``stop-signals-taken``: a command (``DeepLabStream.py``, ``app.py``, ``utils/VideoAnalyzer.py``)
  at its first line, Ctrl-C and SIGTERM just taken, before it imports numpy or Qt;
- ``command-import``: a command with its heavy modules imported, before it uses them;
- ``window-built`` / ``window-shown``: ``app.py``'s window made, not yet shown / shown, before
  any Start is pressed;
- ``main-before-start``: ``DeepLabStream.py`` after its checks, before anything starts;
- ``start-up-step-N``: ``DeepLabStream.py`` before the N-th step of its start-up (1: open the
  cameras, then start the analysis, the recording, the stream, as the command line asks);
- ``capture-import``: a capture process importing its modules, before its entry function runs;
- ``pose-load``: the inference worker about to load its model;
- ``stream-stop``: a live session's stop begun, before its cameras are stopped (the window stops
  a running experiment before: its outputs are off by then);
- ``replay-finishing``: an offline replay (``deeplabstream-verify``'s too) with its stream
  stopped at the video's end, before it writes its record.
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
    """Wait here while a test holds ``moment`` (see the module's docstring); else return.

    With ``importing`` (a call at a module's top level), only a ``spawn`` child that is
    importing the modules of its entry function holds: not the main process, which imports the
    same module.
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
