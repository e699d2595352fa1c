"""The stimulus board's line protocol: command lines and replies.

docs/stimulation-protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deeplabstream.hardware.stimulation.base import Action

ID_MAX = 2**32 - 1  # ids are unsigned 32-bit numbers on the board
BOARD_TIME_MODULUS = 2**32  # the board's microsecond clock wraps every 71.6 minutes
DURATION_MIN_US = 100  # 0.1 ms: the firmware refuses shorter phases (BAD_VALUE)
DURATION_MAX_US = 2_000_000_000  # 2000 s

ReplyKind = Literal["HELLO", "ACK", "ERR", "DONE", "CANCEL", "LAT", "MISS", "OTHER"]


def format_duration_ms(seconds: float) -> str:
    """Seconds as the protocol's milliseconds: whole microseconds, at most three decimals.

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
    """Return the line for ``action`` with ``command_id``, no newline (``17 PULSE 2 500``)."""
    if not 0 <= command_id <= ID_MAX:
        raise ValueError(f"command id {command_id} is outside 0..{ID_MAX}")
    words = [str(command_id), action.command.upper()]
    if action.command != "reset":
        words.append(str(action.channel))
    if action.command == "pulse":
        words.append(format_duration_ms(action.duration_s))  # type: ignore[arg-type]
    elif action.command == "pattern":
        words += [
            format_duration_ms(action.on_s),  # type: ignore[arg-type]
            format_duration_ms(action.off_s),  # type: ignore[arg-type]
            str(action.count or 0),
        ]
    return " ".join(words)


def format_query(command_id: int, word: Literal["PING", "HELLO", "SEEN", "STOP"]) -> str:
    """Return a line of one word (PING, HELLO, SEEN, STOP), without its newline."""
    return f"{command_id} {word}"


def format_latency_test(
    command_id: int,
    channel: int,
    min_interval_s: float,
    max_interval_s: float,
    on_s: float,
    count: int = 0,
    seed: int | None = None,
) -> str:
    """Return the ``LATENCY`` line that starts the board's latency self-test (no newline)."""
    if not min_interval_s <= max_interval_s:
        raise ValueError(
            f"the shortest wait {min_interval_s} s is longer than the longest {max_interval_s} s"
        )
    words = [
        str(command_id),
        "LATENCY",
        str(channel),
        format_duration_ms(min_interval_s),
        format_duration_ms(max_interval_s),
        format_duration_ms(on_s),
        str(count),
    ]
    if seed is not None:
        if not 1 <= seed <= ID_MAX:
            raise ValueError(f"the seed must be 1 .. {ID_MAX}, not {seed}")
        words.append(str(seed))
    return " ".join(words)


@dataclass(frozen=True)
class Reply:
    """One line from the board, parsed; ``command_id`` None for HELLO, ``ERR ?`` and OTHER lines."""

    kind: ReplyKind
    text: str
    command_id: int | None = None
    board_time_us: int | None = None
    reason: str | None = None
    firmware: str | None = None
    version: str | None = None
    channels: int | None = None
    flash: int | None = None  # LAT / MISS: the latency test's flash number (from 1)
    command_time_us: int | None = None  # LAT: board time the answering line was complete


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
        answer: ReplyKind = "ACK" if kind == "ACK" else "DONE" if kind == "DONE" else "CANCEL"
        return Reply(answer, text, command_id=command_id, board_time_us=board_time)
    if kind in ("LAT", "MISS") and len(words) == (4 if kind == "LAT" else 3):
        numbers = [_number(word) for word in words[1:]]
        if any(number is None for number in numbers):
            return other
        return Reply(
            "LAT" if kind == "LAT" else "MISS",
            text,
            flash=numbers[0],
            board_time_us=numbers[1],  # the flash's switch-on
            command_time_us=numbers[2] if kind == "LAT" else None,
        )
    if kind == "ERR" and len(words) == 3:
        command_id = _number(words[1])
        if command_id is None and words[1] != "?":
            return other
        return Reply("ERR", text, command_id=command_id, reason=words[2])
    return other


class BoardClock:
    """Unwraps the board's 32-bit microsecond times into one increasing count.

    Successive times must be less than half the wrap (35.8 minutes) apart.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, raw_us: int) -> int:
        """Return the unwrapped time of ``raw_us`` (0 .. 2^32 - 1), nearest to the previous one."""
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
