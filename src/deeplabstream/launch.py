"""The commands' entry points: Ctrl-C and SIGTERM are taken before anything heavy is imported.

``DeepLabStream.py``, ``app.py``, ``utils/VideoAnalyzer.py`` and the installed scripts
(``deeplabstream``, ``deeplabstream-app``, ``deeplabstream-replay``, ``deeplabstream-verify``)
start here. Each takes the
stop signals first (:func:`~deeplabstream.app.stop_requests.take_stop_signals`), then imports
its command, which loads numpy, OpenCV, Qt or the pose runtimes (seconds): a Ctrl-C during those
imports is remembered and honoured when the command looks (exit 130, nothing started), instead
of a ``KeyboardInterrupt`` traceback, or nothing at all for a command started with Ctrl-C
ignored. The commands are imported inside the functions for that reason.
"""

from __future__ import annotations

from deeplabstream.app.stop_requests import take_stop_signals


def headless() -> None:
    """``DeepLabStream.py``: the headless command (:mod:`deeplabstream.app.headless`)."""
    take_stop_signals()
    _stops_abandon_plugin_imports()
    from deeplabstream.app.headless import run

    run()


def _stops_abandon_plugin_imports() -> None:
    """Let a stop during a lab plugin's import abandon it (core/plugins/, ``import_watch``).

    The window too: while it is built (its Rig tab imports the cameras' modules), and in its
    event loop, where ``app.desktop`` keeps the exception from aborting the program.
    """
    from deeplabstream.core.plugins import abandon_imports_on_stop

    abandon_imports_on_stop()


def desktop() -> None:
    """``app.py``: the desktop window (:mod:`deeplabstream.app.desktop`)."""
    take_stop_signals()
    _stops_abandon_plugin_imports()
    from deeplabstream.app.desktop import run

    run()


def eks() -> None:
    """``deeplabstream-eks`` (:mod:`deeplabstream.offline.eks.command`): Ctrl-C at any moment.

    Its imports take seconds (pandas, the smoother's JAX): a Ctrl-C then says it stopped, as
    one later does (``core.optional.exit_with``), never a ``KeyboardInterrupt`` traceback.
    """
    try:
        from deeplabstream.offline.eks.command import run
    except KeyboardInterrupt:
        import sys

        print("Stopped: Ctrl-C received", file=sys.stderr)
        sys.exit(130)
    run()


def replay() -> None:
    """``utils/VideoAnalyzer.py``: offline replay (:mod:`deeplabstream.offline.replay.command`)."""
    take_stop_signals()
    _stops_abandon_plugin_imports()
    from deeplabstream.offline.replay.command import run

    run()


def verify() -> None:
    """``deeplabstream-verify`` (:mod:`deeplabstream.offline.verify.command`).

    Its imports take seconds (numpy, PyAV, the pose runtimes): a SIGTERM then ended it with no
    word, a Ctrl-C with a ``KeyboardInterrupt`` traceback. Taken first, either is said and
    exits 128 + its number once the command looks (before it reads anything).
    """
    take_stop_signals()
    from deeplabstream.offline.verify.command import run

    run()
