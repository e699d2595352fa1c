"""``[Session] VERIFY = after`` in the console: the session just ended, verified, stoppable.

Design: docs/verify.md.
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


#: What verify writes in the session folder: an empty one left by a stop is taken away.
VERIFY_FOLDER = "verify"
EXIT_STOPPED = {signal.SIGINT: 130, signal.SIGTERM: 143}


def verify_command(
    folder: Path, lab_settings: Path | None = None, *, quiet: bool = False
) -> list[str]:
    """Return the argv of ``deeplabstream-verify`` on ``folder`` (the console's and the window's).

    ``lab_settings``: the run's settings file, whose folder's ``allowed_signers`` are trusted
    (never a file the record names); ``quiet``: print only the verdict.
    """
    settings = ["--settings", str(lab_settings)] if lab_settings is not None else []
    shown = ["--quiet"] if quiet else []
    return [sys.executable, "-m", VERIFY_MODULE, *shown, *settings, str(folder)]


def verify_in_console(folder: Path, lab_settings: Path | None = None) -> int | None:
    """Verify ``folder`` now, printing its verdict; return its exit code (None: could not start).

    Stopped by Ctrl-C or SIGTERM, it removes its empty ``verify/`` folder and returns 130 (143).
    """
    print(f"Verify (VERIFY = after): checking {folder} against its recording (Ctrl-C stops it)")
    later = f"run `deeplabstream-verify {folder}` to check it later"
    known = lab_settings if lab_settings is not None and lab_settings.is_file() else None
    command = verify_command(folder, known, quiet=True)
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
        signum = stopped[0] if stopped else (signal.SIGINT if code == 130 else signal.SIGTERM)
        _remove_if_empty(folder / VERIFY_FOLDER)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"Verify stopped before it finished: interrupted ({name}), no verdict; {later}")
        return EXIT_STOPPED.get(signal.Signals(signum), 128 + int(signum))
    return code


def _remove_if_empty(folder: Path) -> None:
    """Take away a folder a stopped verify left empty (anything in it stays, with it)."""
    try:
        folder.rmdir()
    except OSError:  # not there, or not empty
        pass


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
