"""The commands' entry points: Ctrl-C and SIGTERM are taken before anything heavy is imported.

The scripts and the installed commands start here; each command is imported inside its
function, after the stop signals are taken, so a stop during its imports (seconds) exits
130 or 143 with one line. What a stop does then: docs/reliability.md.
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
    """Let a stop during a lab plugin's import (the window's too) abandon it."""
    from deeplabstream.core.plugins import abandon_imports_on_stop

    abandon_imports_on_stop()


def desktop() -> None:
    """``app.py``: the desktop window (:mod:`deeplabstream.app.desktop`)."""
    take_stop_signals()
    _stops_abandon_plugin_imports()
    from deeplabstream.app.desktop import run

    run()


def eks() -> None:
    """``deeplabstream-eks`` (:mod:`deeplabstream.offline.eks.command`): Ctrl-C at any moment."""
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
    """``deeplabstream-verify`` (:mod:`deeplabstream.offline.verify.command`): stops taken first."""
    take_stop_signals()
    from deeplabstream.offline.verify.command import run

    run()
