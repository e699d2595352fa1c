"""``[Session] VERIFY = after`` in the console: the session just ended, verified, stoppable.

``DeepLabStream.py`` verifies a recorded session after its summary; the window verifies it in
the background, and when the window closes before that verify has finished (``app.py --start
... --duration S`` closes it at the session's end), the console finishes it. Either way the
command runs as a child (``python -m deeplabstream.offline.verify``) that prints its verdict and
writes ``verify/summary.json``; Ctrl-C or SIGTERM stops it within seconds, and what to run later
is said.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

VERIFY_MODULE = "deeplabstream.offline.verify"
STOP_GRACE_S = 5.0  # after the child was asked to stop, how long before it is killed


def verify_in_console(folder: Path) -> int | None:
    """Verify ``folder`` now, printing its verdict; return its exit code (None: stopped)."""
    print(f"Verify (VERIFY = after): checking {folder} against its recording (Ctrl-C stops it)")
    later = f"run `deeplabstream-verify {folder}` to check it later"
    command = [sys.executable, "-m", VERIFY_MODULE, "--quiet", str(folder)]
    try:
        process = subprocess.Popen(command)
    except OSError as error:
        print(f"Verify could not start ({error}); {later}")
        return None
    stopped: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        process.terminate()  # the child ends its own work at once (exit 143)

    previous = _take_stops(stop)
    try:
        code = _wait(process, stopped)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped or code in (130, 143):
        print(f"Verify stopped before it finished; {later}")
        return None
    return code


def _wait(process: subprocess.Popen[Any], stopped: list[int]) -> int:
    while True:
        try:
            return process.wait(timeout=STOP_GRACE_S if stopped else None)
        except subprocess.TimeoutExpired:  # asked to stop and still running: ended
            process.kill()
        except KeyboardInterrupt:  # a process whose Ctrl-C raises: stop the child too
            stopped.append(signal.SIGINT)
            process.terminate()


def _take_stops(handler: Any) -> dict[int, Any]:
    """Let Ctrl-C and SIGTERM stop the child while it runs; return the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous
