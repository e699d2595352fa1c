"""The stimulus board's line protocol (docs/stimulation-protocol.md): command lines and replies.

Host -> board, one command per line: ``<id> <COMMAND> [arguments]``, e.g. ``17 PULSE 2 500``.
Board -> host: ``HELLO <firmware> <version> <channels>`` at boot, then ``ACK <id> <board_us>``
or ``ERR <id> <CODE>`` for every command, and ``DONE``/``CANCEL <id> <board_us>`` when a PULSE or
PATTERN ends by itself or is cut short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stimulation.base import Action

ID_MAX = 2**32 - 1  # ids are unsigned 32-bit numbers on the board
BOARD_TIME_MODULUS = 2**32  # the board's microsecond clock wraps every 71.6 minutes
DURATION_MIN_US = 100  # 0.1 ms: the firmware refuses shorter phases (BAD_VALUE)
DURATION_MAX_US = 2_000_000_000  # 2000 s

ReplyKind = Literal["HELLO", "ACK", "ERR", "DONE", "CANCEL", "OTHER"]


def format_duration_ms(seconds: float) -> str:
    """Seconds as the protocol's milliseconds: whole microseconds, at most three decimals.

    ``0.5`` -> ``"500"``, ``0.00025`` -> ``"0.25"``, ``0.0121255`` -> ``"12.126"``.
    ValueError when the rounded value is outside 0.1 ms .. 2000 s.
    """
    micros = round(seconds * 1_000_000)
    if not DURATION_MIN_US <= micros <= DURATION_MAX_US:
        raise ValueError(f"{seconds!r} s is outside the board's 0.1 ms .. 2000 s")
    whole, fraction = divmod(micros, 1000)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{fraction:03d}".rstrip("0")


def format_command(command_id: int, action: Action) -> str:
    """The line for ``action`` with ``command_id``, without its newline."""
    if not 0 <= command_id <= ID_MAX:
        raise ValueError(f"command id {command_id} is outside 0..{ID_MAX}")
    words = [str(command_id), action.kind]
    if action.kind in ("ON", "OFF", "PULSE", "PATTERN"):
        words.append(str(action.channel))
    if action.kind in ("PULSE", "PATTERN"):
        words.append(format_duration_ms(action.on_s))
    if action.kind == "PATTERN":
        words += [format_duration_ms(action.off_s), str(action.count)]
    return " ".join(words)


def format_query(command_id: int, word: Literal["PING", "HELLO"]) -> str:
    """A PING or HELLO query line, without its newline."""
    return f"{command_id} {word}"


@dataclass(frozen=True)
class Reply:
    """One line from the board, parsed.

    ``command_id`` is None for HELLO, for ``ERR ? <CODE>`` (a line without a readable id) and
    for lines that are not part of the protocol (kind OTHER). ``reason`` is the ERR code.
    """

    kind: ReplyKind
    text: str
    command_id: int | None = None
    board_time_us: int | None = None
    reason: str | None = None
    firmware: str | None = None
    version: str | None = None
    channels: int | None = None


def _number(word: str) -> int | None:
    return int(word) if word.isdigit() and len(word) <= 10 else None


def parse_reply(line: str) -> Reply:
    """Parse one line (without its newline); anything unexpected becomes kind OTHER."""
    text = line.strip()
    words = text.split()
    other = Reply("OTHER", text)
    if not words:
        return other
    kind = words[0]
    if kind == "HELLO" and len(words) == 4 and (channels := _number(words[3])) is not None:
        return Reply("HELLO", text, firmware=words[1], version=words[2], channels=channels)
    if kind in ("ACK", "DONE", "CANCEL") and len(words) == 3:
        command_id, board_time = _number(words[1]), _number(words[2])
        if command_id is None or board_time is None:
            return other
        return Reply(kind, text, command_id=command_id, board_time_us=board_time)
    if kind == "ERR" and len(words) == 3:
        command_id = _number(words[1])
        if command_id is None and words[1] != "?":
            return other
        return Reply("ERR", text, command_id=command_id, reason=words[2])
    return other


class BoardClock:
    """Unwraps the board's 32-bit microsecond times into one increasing count.

    Successive times must be less than half the wrap (35.8 minutes) apart, which a session
    that hears from its board at least that often always satisfies.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, raw_us: int) -> int:
        """The unwrapped time of ``raw_us`` (0 .. 2^32 - 1), nearest to the previous one."""
        if self._last is None:
            self._last = raw_us
            return raw_us
        base = self._last - self._last % BOARD_TIME_MODULUS
        value = base + raw_us
        half = BOARD_TIME_MODULUS // 2
        if value - self._last > half:
            value -= BOARD_TIME_MODULUS
        elif self._last - value > half:
            value += BOARD_TIME_MODULUS
        self._last = max(self._last, value)
        return value
