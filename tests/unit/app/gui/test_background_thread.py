"""A window's background thread that nothing refers to any more never takes the process down.

Qt aborts the process when a ``QThread`` is destroyed while its thread runs. A CI run lost a test
worker to an abort during a garbage collection in an unrelated test; a running thread of the
window let go of is one way there (three kinds could be). Each case runs in a
child process, so that the abort it guards against ends the child, not the tests; the thread is
held in its ``run`` by an event until the child lets it go, so it is surely running when the
last reference goes, on any machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, sys, threading
    from PyQt5.QtCore import QCoreApplication, QThread
    from deeplabstream.app.gui.background_thread import BackgroundThread, running_threads

    app = QCoreApplication(sys.argv)
    release = threading.Event()
    base = BackgroundThread if sys.argv[1] == "background" else QThread

    class Work(base):
        def run(self):
            release.wait(30)

    work = Work()
    work.start()
    del work  # the window that held it closed
    gc.collect()
    release.set()
    while running_threads():
        app.processEvents()
    print("still here")
    """
)


def _child(base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, base], capture_output=True, text=True, timeout=120
    )


def test_a_background_thread_let_go_of_while_it_runs_finishes_and_is_released() -> None:
    done = _child("background")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "still here"


def test_a_plain_qthread_let_go_of_while_it_runs_aborts_the_process() -> None:
    # What the window's threads are kept from: the hazard itself, so that the case above
    # cannot pass for a reason that has nothing to do with holding the thread.
    done = _child("plain")
    assert done.returncode != 0
    assert "Destroyed while thread is still running" in done.stderr
