"""The stimulus board's firmware on a simulated ATmega328P (simavr), its UART on a pty.

Needs ``gcc-avr``, ``avr-libc``, ``simavr`` and ``libsimavr-dev``; logs every pin change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from deeplabstream.core.errors import DeviceError
from deeplabstream.core.lifetime import children_leave_stop_signals_to_parent

FIRMWARE = Path(__file__).resolve().parents[4] / "firmware"  # the repository's firmware/
SIMSTIM = FIRMWARE / "build" / "simstim"
FIRMWARE_ELF = FIRMWARE / "build" / "stimulus.elf"
PIN_LOG_FILE = "board_pins.log"
#: How the simulated board's UART takes a line (docs/latency-test.md, "On the simulated rig"):
#: simavr frames every byte with a parity bit even with parity off (11 bits a byte), and simstim
#: hands the host's bytes to the UART when it polls the pty, every 100 us of board time (the
#: first bit waits 0-100 us: 50 us on average).
SIMULATED_BITS_PER_BYTE = 11
SIMULATED_LINK_DELAY_MS = 0.05
START_TIMEOUT_S = 10.0


class SimulatedBoardError(DeviceError):
    """The simulated board could not be built or started; the message says what to install."""


def build_firmware() -> None:
    """Build the firmware and the simulator harness (``make`` rebuilds only what changed)."""
    missing = [tool for tool in ("make", "avr-gcc", "gcc") if shutil.which(tool) is None]
    if missing:
        raise SimulatedBoardError(
            f"--simulated-board needs {', '.join(missing)} to build the firmware: run "
            "`bash scripts/setup.sh --tests` (it installs gcc-avr, avr-libc, simavr and "
            "libsimavr-dev)"
        )
    result = subprocess.run(
        ["make", "-C", str(FIRMWARE), "all", "sim"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SimulatedBoardError(
            f"building the firmware and its simulator failed (make -C {FIRMWARE} all sim); "
            f"is simavr's libsimavr-dev installed? make said:\n{result.stderr[-2000:]}"
        )


def pin_name(channel: int) -> str:
    """Return the ATmega328P pin of a board channel: channel n is Arduino D(n + 2)."""
    if not 0 <= channel <= 11:
        raise ValueError(f"the board has channels 0..11, not {channel}")
    return f"PD{channel + 2}" if channel < 6 else f"PB{channel - 6}"


def _prefer_real_time(pid: int) -> str:
    """Give the simulator real-time priority where allowed; return what it got."""
    # The simulator keeps board time only while the host runs it on time; it sleeps 90 % of
    # the time, so the lowest real-time priority costs the app little.
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))
        return "real-time (SCHED_FIFO 1)"
    except (PermissionError, OSError, AttributeError):
        return "normal (real-time priority not permitted)"


class SimulatedBoard:
    """simstim running the firmware; the board starts when its pty is first opened.

    The pin log (:data:`PIN_LOG_FILE`) goes to ``folder``; ``build`` builds the firmware if needed.
    """

    def __init__(self, folder: Path, build: bool = True) -> None:
        self.folder = folder
        self.pin_log = folder / PIN_LOG_FILE
        self.port = ""
        self._build = build
        self._process: subprocess.Popen[str] | None = None
        self.scheduling = "not started"

    def start(self) -> None:
        """Build (if asked) and start the simulator; returns once its pty exists."""
        if self._build:
            build_firmware()
        if not SIMSTIM.exists() or not FIRMWARE_ELF.exists():
            raise SimulatedBoardError(f"{SIMSTIM} or {FIRMWARE_ELF} is missing: make -C firmware")
        self.folder.mkdir(parents=True, exist_ok=True)
        # Ctrl-C and a group SIGTERM are the app's: it stops the session, then the board (closing
        # its stdin). simstim never unblocks them, so they cannot end it before the session.
        with children_leave_stop_signals_to_parent():
            self._process = self._popen()
        assert self._process.stdout is not None
        line = _first_line_within(self._process.stdout, START_TIMEOUT_S)
        if not line.startswith("PTY "):
            self.stop()
            raise SimulatedBoardError(f"the simulated board did not start (simstim said {line!r})")
        self.port = line.split()[1]
        self.scheduling = _prefer_real_time(self._process.pid)

    def _popen(self) -> subprocess.Popen[str]:
        """Start simstim on the firmware, its pins logged to ``pin_log``."""
        return subprocess.Popen(
            [
                str(SIMSTIM),
                "--quit-on-eof",  # never outlives the app, even when the app is killed
                "--wait-open",  # starts at the port's opening, as an Uno restarts then
                "--pins",
                str(self.pin_log),
                str(FIRMWARE_ELF),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int | None:
        """The simulator's process id while it runs."""
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """End the simulator (closing its stdin ends it; killed after 10 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self) -> Self:
        """Start the simulated board for a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the simulated board at the end of the block."""
        self.stop()


def _first_line_within(stream: IO[str], timeout_s: float) -> str:
    """Return the first line of ``stream`` if it comes within ``timeout_s``, else ""."""
    # A thread reads it: select on a pipe is POSIX only. A left reader ends at end of file.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return lines[0] if lines else ""
