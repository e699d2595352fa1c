"""A child process's signs of life and the guarded call it is in, in lock-free shared memory.

docs/reliability.md, "How the guarantees are kept".
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from deeplabstream.core.timing import host_now_ns

#: The guarded call's name is kept to this many bytes (UTF-8; a longer one is cut).
TEXT_BYTES = 240

_BEAT, _TURN, _STOPPING, _SEQ, _STARTED, _LIMIT, _LENGTH = range(7)
_FIELDS = 7


@dataclass(frozen=True)
class GuardedCall:
    """The call a child is inside, as its parent reads it."""

    what: str  # "experiment 'Hang': its update"
    limit_s: float
    started_ns: int

    def elapsed_s(self, now_ns: int) -> float:
        """Return how long it has run at ``now_ns`` (host clock)."""
        return (now_ns - self.started_ns) / 1e9


class Heartbeat:
    """One child's signs of life; made by the parent with the child's multiprocessing context."""

    def __init__(self, context: BaseContext) -> None:
        now = host_now_ns()
        self._numbers: Any = context.RawArray(ctypes.c_int64, _FIELDS)
        self._text: Any = context.RawArray(ctypes.c_char, TEXT_BYTES)
        self._numbers[_BEAT] = self._numbers[_TURN] = now  # alive since it was made
        self._encoded: dict[str, bytes] = {}  # the child's names, encoded once each

    def __getstate__(self) -> dict[str, Any]:
        """Travel to the child (at its spawn) without the parent's cache."""
        return {"_numbers": self._numbers, "_text": self._text}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Take the shared block in the child."""
        self._numbers, self._text = state["_numbers"], state["_text"]
        self._encoded = {}

    # -- the child ---------------------------------------------------------------------------

    def beat(self) -> None:
        """Say the process is alive now."""
        self._numbers[_BEAT] = host_now_ns()

    def turned(self) -> None:
        """Say the loop came round now (a sign of life too)."""
        now = host_now_ns()
        self._numbers[_TURN] = now
        self._numbers[_BEAT] = now

    def stopping(self) -> None:
        """Say the loop took the order to stop (it finishes its files now)."""
        now = host_now_ns()
        self._numbers[_STOPPING] = now
        self._numbers[_BEAT] = now

    def enter(self, what: str, limit_s: float, started_ns: int) -> None:
        """Say the process is inside the guarded call ``what`` since ``started_ns``."""
        text = self._encoded.get(what)
        if text is None:
            text = self._encoded.setdefault(what, what.encode("utf-8")[:TEXT_BYTES])
        numbers = self._numbers
        numbers[_SEQ] += 1  # odd: being written
        ctypes.memmove(self._text, text, len(text))
        numbers[_LENGTH] = len(text)
        numbers[_LIMIT] = round(limit_s * 1e9)
        numbers[_STARTED] = started_ns
        numbers[_SEQ] += 1

    def leave(self) -> None:
        """Say the process is inside no guarded call."""
        numbers = self._numbers
        numbers[_SEQ] += 1
        numbers[_STARTED] = 0
        numbers[_SEQ] += 1

    # -- the parent --------------------------------------------------------------------------

    def silent_s(self, now_ns: int) -> float:
        """Return how long the child has given no sign of life at ``now_ns``."""
        return max(0.0, (now_ns - int(self._numbers[_BEAT])) / 1e9)

    def unturned_s(self, now_ns: int) -> float:
        """Return how long the child's loop has not come round at ``now_ns``."""
        return max(0.0, (now_ns - int(self._numbers[_TURN])) / 1e9)

    @property
    def stopping_since_ns(self) -> int | None:
        """Return when the loop took the order to stop; None while it has not."""
        since = int(self._numbers[_STOPPING])
        return since or None

    def call(self) -> GuardedCall | None:
        """Return the guarded call the child is inside now; None when it is inside none."""
        numbers = self._numbers
        for _ in range(100):  # the child writes three numbers and a name: never for long
            before = int(numbers[_SEQ])
            if before % 2:
                continue
            started, limit, length = (
                int(numbers[_STARTED]),
                int(numbers[_LIMIT]),
                int(numbers[_LENGTH]),
            )
            text = bytes(self._text[:length])
            if int(numbers[_SEQ]) == before:
                if not started:
                    return None
                return GuardedCall(text.decode("utf-8", "replace"), limit / 1e9, started)
        return None
