"""The DeepLabStream desktop application: one window runs a whole experiment session.

Exit codes: 0 done, 1 an error was shown, 2 bad command line or no display, 130 (143 for
SIGTERM) stopped during the start-up. docs/gui.md ("Closing, Ctrl-C and a second instance").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from deeplabstream.app.arguments import default_settings, default_settings_text
from deeplabstream.app.display.screen import (
    has_display,
    missing_library_message,
    missing_xcb_libraries,
    uses_xcb,
)
from deeplabstream.app.stop_requests import EXIT_INTERRUPTED, StopRequests, take_stop_signals
from deeplabstream.app.verify_after import EXIT_STOPPED, verify_in_console
from deeplabstream.core.errors import SettingsError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.optional import exit_with
from deeplabstream.core.plugins import PluginStopped

if TYPE_CHECKING:
    from PyQt5.QtWidgets import QApplication

    from deeplabstream.app.gui.main_window import MainWindow

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PART_NAMES = ("stream", "analysis", "recording", "experiment")
OFFSCREEN_DEFAULT = ("stream", "analysis", "experiment")

NO_DISPLAY_MESSAGE = """\
app.py needs a display, and this session has none (no DISPLAY or WAYLAND_DISPLAY).
  - On a server or over SSH, run it without a screen:
        QT_QPA_PLATFORM=offscreen python app.py
  - or on a virtual screen:
        xvfb-run python app.py
  - or use the command-line tool:
        python DeepLabStream.py --headless --experiment-enabled"""


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(description="Run an experiment session from one window.")
    parser.add_argument(
        "--settings",
        type=Path,
        help=f"settings file (default: {default_settings_text(sys.argv[0])})",
    )
    parser.add_argument("--output-dir", type=Path, help="folder for the session folders")
    parser.add_argument(
        "--start",
        type=_parts,
        help=f"press these Start buttons at once, comma-separated from {', '.join(PART_NAMES)}",
    )
    parser.add_argument("--duration", type=float, help="close the window after S seconds")
    return parser


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [part for part in parts if part not in PART_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PART_NAMES)}"
        )
    return parts


def main(argv: list[str] | None = None) -> int:
    """Show the window until it is closed; return the exit code."""
    # The launcher took them first thing (deeplabstream.launch); a stop since is in there.
    stops = take_stop_signals()
    args = build_parser().parse_args(argv)
    if not has_display():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return EXIT_USAGE
    if uses_xcb() and (missing := missing_xcb_libraries()):
        print(missing_library_message(missing), file=sys.stderr)  # not Qt's bare "could not load"
        return EXIT_USAGE
    offscreen = os.environ.get("QT_QPA_PLATFORM") == "offscreen"
    parts = args.start if args.start is not None else (OFFSCREEN_DEFAULT if offscreen else ())

    from PyQt5.QtCore import qInstallMessageHandler
    from PyQt5.QtWidgets import QApplication

    # Imported after the display checks, as Qt is: the window's modules take 2-3 s (measured).
    from deeplabstream.app.gui.main_window import MainWindow

    hold_here("command-import")  # a fault test's chosen moment (core/fault_hooks.py)
    if stops.reason is not None:
        return _stopped_before_the_start(stops)
    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:  # without --settings: the file beside this launcher, else the current folder's
        settings = args.settings or default_settings(sys.argv[0])
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    with abandoned_imports_kept() as abandoned:
        window = MainWindow(settings, args.output_dir)  # its Rig tab imports the lab's cameras
        code = EXIT_OK if abandoned else _show_window(app, window, args, parts, stops)
    if abandoned:  # a stop came while a slot imported a lab module: it was abandoned
        window.close()  # closed already when the stop came in its event loop
        print(f"Stopped: {abandoned[0]}", file=sys.stderr)
        return EXIT_INTERRUPTED + abandoned[0].signum
    return code


def _show_window(
    app: QApplication,
    window: MainWindow,
    args: argparse.Namespace,
    parts: tuple[str, ...],
    stops: StopRequests,
) -> int:
    """Run the window built until it closes; return the exit code."""
    from PyQt5.QtCore import QTimer

    from deeplabstream.app.gui.autopilot import Autopilot

    hold_here("window-built")
    if stops.reason is not None:
        window.close()  # nothing runs yet: its timers stop
        return _stopped_before_the_start(stops)
    offscreen = os.environ.get("QT_QPA_PLATFORM") == "offscreen"
    pilot = Autopilot(window, parts, args.duration, print_status=offscreen)
    during_start_up: list[bool] = []
    looping: list[bool] = []  # the event loop runs: a signal's handler only asks for the close

    def close_on(reason: str) -> None:
        # Judged when the signal arrives: the start it interrupted may still complete (its
        # camera opened meanwhile) before the window has closed.
        during_start_up.append(pilot.starting or window.controller.working)
        if looping:  # between two bytecodes of whatever runs: close from the event loop
            QTimer.singleShot(0, lambda: window.close_for(reason))
        else:
            window.close_for(reason)  # the session records the signal as its stop reason

    # Python runs signal handlers only between bytecodes: a timer gives it the chance.
    wake = QTimer()
    wake.setInterval(200)
    wake.timeout.connect(lambda: None)
    wake.start()
    window.show()
    hold_here("window-shown")
    stops.forward_to(close_on)  # a stop so far: at once
    if window.closed_down:  # stopped before any Start was pressed: no event loop to run
        return _stopped_before_the_start(stops)
    pilot.begin()
    looping.append(True)
    app.exec_()
    pilot.report()
    due = window.session_row.verify_button.due_after_close(window.controller.session_dir)
    if due is not None:  # [Session] VERIFY = after, and the window closed before it ended
        verified = verify_in_console(due, window.session_row.settings_path())
        if verified is not None and verified in EXIT_STOPPED.values():  # interrupted: said
            return verified
    if pilot.errors:
        return EXIT_FAILED
    if stops.signum is not None and (
        window.controller.start_interrupted or any(during_start_up[:1])
    ):
        return stops.exit_code
    return EXIT_OK


@contextmanager
def abandoned_imports_kept() -> Iterator[list[PluginStopped]]:
    """Keep, rather than abort on, a lab module's import abandoned by a stop inside a slot.

    A PluginStopped that leaves a slot is kept (yielded); any other exception aborts, as in PyQt.
    """
    abandoned: list[PluginStopped] = []
    previous = sys.excepthook

    def keep_abandoned_import(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        if isinstance(error, PluginStopped):
            abandoned.append(error)
            return
        previous(kind, error, trace)
        os.abort()  # what PyQt does with an exception that left a slot (qFatal)

    # PyQt aborts on an exception that leaves a slot unless sys.excepthook is replaced.
    sys.excepthook = keep_abandoned_import
    try:
        yield abandoned
    finally:
        sys.excepthook = previous


def _stopped_before_the_start(stops: StopRequests) -> int:
    print(stops.said)
    return stops.exit_code


# What Qt's offscreen platform says about every window: true, and of no use to a user.
_QT_NOISE = ("propagateSizeHints", "XDG_RUNTIME_DIR not set")


def _qt_message(kind: object, context: object, message: str | None) -> None:
    if message and not any(noise in message for noise in _QT_NOISE):
        print(message, file=sys.stderr)


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
