"""Ctrl-C and SIGTERM of a command, taken from its very start and passed on to its run.

The headless command installs them before it imports the session's stack, opens the cameras or
loads the model: a stop then is remembered and honoured by the run (the waits for the cameras
and the model look at it), never a ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

import signal
from typing import Any

EXIT_INTERRUPTED = 128  # + the signal's number (130: Ctrl-C, 143: SIGTERM) during start-up


class StopRequests:
    """Ctrl-C and SIGTERM from the very start: remembered, then passed on to the run.

    A stop during start-up (imports, opening cameras, loading the model) is honoured at once
    (the waits for cameras and the model look at it), instead of raising KeyboardInterrupt or
    waiting for the start-up to end; such a run exits with :attr:`exit_code`.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signum: int | None = None
        self._forward: Any = None

    @property
    def exit_code(self) -> int:
        """The exit code of a run stopped by the first signal, as a shell reports it (130)."""
        return EXIT_INTERRUPTED + (self.signum or 2)

    def install(self) -> None:
        """Take Ctrl-C and SIGTERM from now on."""
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    def forward_to(self, on_stop: Any) -> None:
        """Pass this and later requests to ``on_stop`` (a request already made: at once)."""
        self._forward = on_stop
        if self.reason is not None:
            on_stop(self.reason)

    def __call__(self, reason: str) -> None:
        """Remember the first reason to stop; pass every one on once there is a run."""
        if self.reason is None:
            self.reason = reason
        if self._forward is not None:
            self._forward(reason)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        self(
            "Ctrl-C received"
            if signum == signal.SIGINT
            else f"{signal.Signals(signum).name} received"
        )
