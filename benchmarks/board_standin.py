"""A Python stand-in for the stimulus board, on a pty, for machines that cannot build simavr's.

    python benchmarks/board_standin.py        prints "PTY <path>", serves until stdin closes

The closed-loop benchmark runs the project's firmware under simavr (``make -C firmware all
sim``: avr-gcc, gcc and libsimavr). A GPU machine often has none of them; there the benchmark
talks to this stand-in instead, which speaks the board's line protocol
(docs/stimulation-protocol.md) for what the benchmark sends: ``HELLO`` at start and on request,
``ACK <id> <t>`` for ``PING``, ``HELLO``, ``ON``, ``OFF``, ``PULSE``, ``PATTERN`` and
``RESET``, ``DONE <id> <t>`` when a pulse or pattern ends, ``CANCEL`` when a later command on
its channel cuts it short, ``ERR <id> UNKNOWN_COMMAND`` for the rest (the latency self-test
needs the real firmware).

Its timing, which the benchmark states beside its figures: a line is answered as soon as the
stand-in reads it (it blocks on the pty: no polling period), ``<t>`` is the host's monotonic
clock in microseconds, and no UART is simulated (the firmware under simavr spends 11 bits per
byte at 115200 baud and polls its pty every 100 us of board time). The "acknowledged" figures
of a run with it are the host's and this process's, not a board's.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time

CHANNELS = 12
# The firmware's name, so that the host takes it for the board; "standin" where the version goes.
BANNER = f"HELLO stimulus standin {CHANNELS}"


def board_us() -> int:
    """The stand-in's clock: the host's monotonic clock in microseconds, wrapped as a board's."""
    return (time.monotonic_ns() // 1000) % (2**32)


class StandInBoard:
    """The protocol of the board, answered on the pty's board side (see the module's notes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        # channel -> (command id, board time its output ends) of a running PULSE or PATTERN
        self.running: dict[int, tuple[int, float]] = {}

    def send(self, line: str) -> None:
        with self.lock:
            os.write(self.fd, (line + "\n").encode("ascii"))

    def answer(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        if not words[0].isdigit():
            self.send("ERR ? BAD_ID")
            return
        command_id, command = int(words[0]), (words[1] if len(words) > 1 else "")
        if command == "HELLO":
            self.send(BANNER)
        if command in ("ON", "OFF", "PULSE", "PATTERN", "RESET"):
            channel = int(words[2]) if len(words) > 2 and words[2].isdigit() else -1
            self._cancel(None if command == "RESET" else channel)
        if command in ("PING", "HELLO", "ON", "OFF", "RESET"):
            self.send(f"ACK {command_id} {board_us()}")
        elif command in ("PULSE", "PATTERN"):
            self._start(command_id, words)
        else:
            self.send(f"ERR {command_id} UNKNOWN_COMMAND")

    def _start(self, command_id: int, words: list[str]) -> None:
        if len(words) < (6 if words[1] == "PATTERN" else 4):
            self.send(f"ERR {command_id} MISSING_ARGUMENT")
            return
        channel = int(words[2])
        on_s = float(words[3]) / 1000
        if words[1] == "PATTERN":
            off_s, count = float(words[4]) / 1000, int(words[5])
            length_s = float("inf") if count == 0 else count * on_s + (count - 1) * off_s
        else:
            length_s = on_s
        ends = time.monotonic() + length_s
        self.running[channel] = (command_id, ends)
        self.send(f"ACK {command_id} {board_us()}")

    def _cancel(self, channel: int | None) -> None:
        for held in [c for c in self.running if channel is None or c == channel]:
            command_id, _ = self.running.pop(held)
            self.send(f"CANCEL {command_id} {board_us()}")

    def finish_due(self) -> float:
        """Send DONE for every output whose time is up; return seconds to the next one due."""
        now = time.monotonic()
        for channel, (command_id, ends) in list(self.running.items()):
            if ends <= now:
                del self.running[channel]
                self.send(f"DONE {command_id} {board_us()}")
        pending = [ends - now for _, ends in self.running.values()]
        return max(0.0, min(pending, default=1.0))


def serve(board: StandInBoard) -> None:
    """Read lines from the pty and answer them until stdin closes."""
    pending = b""
    while True:
        wait = min(board.finish_due(), 0.5)
        ready, _, _ = select.select([board.fd, sys.stdin], [], [], wait)
        if sys.stdin in ready and not sys.stdin.buffer.read1(1024):
            return  # the benchmark closed our stdin: it is over
        if board.fd in ready:
            try:
                pending += os.read(board.fd, 4096)
            except OSError:  # the host side was closed and reopened: keep serving
                time.sleep(0.01)
                continue
            *lines, pending = pending.split(b"\n")
            for line in lines:
                board.answer(line.decode("ascii", "replace").strip())


def main() -> int:
    import tty

    board_side, host_side = os.openpty()
    tty.setraw(board_side)
    tty.setraw(host_side)
    board = StandInBoard(board_side)
    print(f"PTY {os.ttyname(host_side)}", flush=True)
    board.send(BANNER)
    serve(board)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
