"""A command's ``main(argv)`` run in the test's process, as its console script would run it.

For the checks where a separate process is not the point (a refusal, option parsing, a verdict
read from the files): the same parser, checks and exit code without a new Python that imports
the whole package again (seconds each on a busy two-core machine). The commands take Ctrl-C and
SIGTERM for themselves first thing; the handlers and the signal mask are given back, so the next
test finds the process as it was. Cases that prove a process boundary, a real signal or which
code runs start the command itself.
"""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
from collections.abc import Callable

from tests.support.processes import sets_its_deadline


def run_main_here(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    """Run ``main(argv)`` here; return its exit code and what it printed to stdout and stderr."""
    stops = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    handlers = {sig: signal.getsignal(sig) for sig in stops}
    has_mask = hasattr(signal, "pthread_sigmask")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set()) if has_mask else None
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # a usage error: argparse's exit, as the command's
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        for sig, handler in handlers.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)
        if has_mask and mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return code, out.getvalue(), err.getvalue()


def headless_here(*args: str) -> subprocess.CompletedProcess[str]:
    """``run_cli(*args)`` for a ``DeepLabStream.py`` run refused before anything starts.

    The command's ``main`` (``app/headless.py``) in this process: its parser, the settings read
    and the checks before the start, which refuse with exit code 2 before any camera, lock or
    folder is made. Only for runs that are refused: one that is not would start here. As
    ``run_cli``, a run whose settings set no deadline gets ``--deadline off``.
    """
    from deeplabstream.app.headless import main

    if not sets_its_deadline(args):
        args = (*args, "--deadline", "off")
    code, out, err = run_main_here(main, list(args))
    return subprocess.CompletedProcess(["DeepLabStream.py", *args], code, out, err)
