"""The stimulus board (firmware/) on a serial port: commands written at once, replies matched.

docs/stimulation-protocol.md.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial
import serial.tools.list_ports

from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    DeviceLostError,
    DeviceNotFoundError,
    StimulationDevice,
    StimulationError,
)
from deeplabstream.hardware.stimulation.latency import FlashReport, LatencyTestSpec
from deeplabstream.hardware.stimulation.protocol import (
    DURATION_MAX_US,
    DURATION_MIN_US,
    ID_MAX,
    BoardClock,
    Reply,
    format_command,
    format_latency_test,
    format_query,
    parse_reply,
)

log = logging.getLogger(__name__)

FIRMWARE_NAME = "stimulus"
READ_POLL_S = 0.05  # how often the reader looks at its stop flag while the port is quiet
CLOSE_RESET_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class SerialSettings:
    """``TYPE = serial``: the stimulus board of `firmware/` on a serial port (docs/arduino.md)."""

    port: str = setting("", doc="The board's port (`/dev/ttyACM0`, `COM3`).")
    baudrate: int = setting(115200, doc="Line speed.", minimum=1200, maximum=4_000_000)

    def __post_init__(self) -> None:
        """Check that the port is given: there is no sensible default."""
        if not self.port:
            raise ValueError("TYPE = serial needs PORT (for example /dev/ttyACM0)")


def describe_serial_ports() -> str:
    """Return the serial ports present, one per line with their description, for error messages."""
    ports = sorted(serial.tools.list_ports.comports(), key=lambda port: port.device)
    if not ports:
        return "no serial ports were found"
    lines = [f"  {port.device}: {port.description}" for port in ports]
    return "serial ports present:\n" + "\n".join(lines)


def _open_error_message(port: str, error: serial.SerialException) -> str:
    """Return what to tell the user when ``port`` cannot be opened."""
    code = getattr(error, "errno", None)
    if code == errno.ENOENT or not Path(port).exists():
        return f"serial port {port} does not exist; {describe_serial_ports()}"
    if code == errno.EACCES:
        return (
            f"no permission to open serial port {port}: add your user to the 'dialout' group "
            f"(sudo usermod -aG dialout $USER, then log in again)"
        )
    if code == errno.EBUSY:
        return f"serial port {port} is busy: close the program that holds it (serial monitor?)"
    return f"cannot open serial port {port}: {error}"


class SerialStimulator(StimulationDevice):
    """The stimulus board (Arduino Uno/Nano with firmware/) on a serial port (docs/arduino.md).

    ``hello_timeout_s`` covers an Uno's restart when its port opens (about a second); a write past
    ``write_timeout_s`` puts the device in its error state instead of blocking.
    """

    name = "serial"
    settings_class = SerialSettings
    min_duration_s = DURATION_MIN_US / 1e6
    max_duration_s = DURATION_MAX_US / 1e6

    @classmethod
    def lock_keys(cls, settings: SerialSettings) -> tuple[str, ...]:
        """Lock the port (a symbolic link such as ``/dev/serial/by-id/...`` as its device)."""
        port = settings.port.strip()
        if not port:
            return ()  # refused by the settings check: there is nothing to open
        if port.upper().startswith("COM"):
            return (f"serial-port:{port.upper()}",)
        return (f"serial-port:{os.path.realpath(port)}",)

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        hello_timeout_s: float = 4.0,
        hello_query_after_s: float = 2.0,
        write_timeout_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self.hello_timeout_s = hello_timeout_s
        self.hello_query_after_s = hello_query_after_s
        self.write_timeout_s = write_timeout_s
        self.firmware: str | None = None
        self.version: str | None = None
        self._channels = 0
        self._serial: serial.Serial | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: dict[int, ActionRecord] = {}  # id -> record awaiting ACK/ERR
        self._running: dict[int, ActionRecord] = {}  # id -> PULSE/PATTERN awaiting its end
        self._clock = BoardClock()
        self._error: StimulationError | None = None
        self._losing = ""  # why the port was lost, set before the records are failed
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._buffer = bytearray()
        self.unmatched: list[str] = []  # replies no record was waiting for ("ERR ? ...")
        # The latency self-test: one report per flash, in the order the board sent them; a LAT
        # is followed by the reply of the command that answered it, which names the answer.
        self.flash_reports: list[FlashReport] = []
        self._awaiting_answer: FlashReport | None = None
        self._sent: dict[int, ActionRecord] = {}  # id -> record, while a latency test runs
        self._latency_test_running = False
        self._latency_test_id: int | None = None  # its DONE or CANCEL ends it, expected

    # -- state -----------------------------------------------------------------------------

    @property
    def channel_count(self) -> int:
        """The channels the board announced in its HELLO (0 before :meth:`open`)."""
        return self._channels

    @property
    def error(self) -> StimulationError | None:
        """The error that ended the session (port vanished), or None while the board is fine."""
        return self._error

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`open` and :meth:`close`."""
        return self._serial is not None

    # -- open and close ----------------------------------------------------------------------

    def open(self) -> None:
        """Open the port and wait for the board's HELLO; raise with a helpful message if not."""
        if self._serial is not None:
            return
        try:
            port = serial.Serial(
                self.port, self.baudrate, timeout=READ_POLL_S, write_timeout=self.write_timeout_s
            )
        except serial.SerialException as error:
            raise DeviceNotFoundError(_open_error_message(self.port, error)) from error
        try:
            hello = self._wait_for_hello(port)
        except BaseException:
            port.close()
            raise
        assert hello.channels is not None  # a HELLO reply always carries its channel count
        self.firmware, self.version, self._channels = hello.firmware, hello.version, hello.channels
        if self.firmware != FIRMWARE_NAME:
            log.warning(
                "%s runs firmware %r, not %r: commands may be refused",
                self.port,
                self.firmware,
                FIRMWARE_NAME,
            )
        log.info("%s: %s %s, %d channels", self.port, self.firmware, self.version, self._channels)
        self._error = None
        self._losing = ""
        self._clock = BoardClock()  # opening an Uno's port restarts it: its clock starts again
        self._stop.clear()
        self._serial = port
        self._reader = threading.Thread(
            target=self._read_loop, name=f"stimulus reader {self.port}", daemon=True
        )
        self._reader.start()

    def check_present(self) -> None:
        """Open the port, wait for the board's HELLO, then close it (outputs off)."""
        if self._serial is None:
            self.open()
            self.close()

    def _wait_for_hello(self, port: serial.Serial) -> Reply:
        self._buffer.clear()  # nothing left over from an earlier session
        start = time.monotonic()
        queried = False
        while (waited := time.monotonic() - start) < self.hello_timeout_s:
            try:
                if not queried and waited >= self.hello_query_after_s:
                    port.write((format_query(0, "HELLO") + "\n").encode("ascii"))
                    queried = True
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as error:
                raise DeviceNotFoundError(f"serial port {self.port} failed: {error}") from error
            self._buffer += chunk
            for line in self._take_lines():
                reply = parse_reply(line)
                if reply.kind == "HELLO":
                    self._buffer.clear()  # an ACK of our HELLO query may follow: not needed
                    return reply
        raise DeviceNotFoundError(
            f"no HELLO from {self.port} within {self.hello_timeout_s:g} s: is the stimulus "
            f"firmware on the board (make -C firmware flash PORT={self.port}) and is it the "
            f"right port? {describe_serial_ports()}"
        )

    def close(self) -> None:
        """Turn every output off (RESET) if the board still answers, then release the port."""
        port = self._serial
        if port is None:
            return
        if self._error is None:
            try:
                record = self.reset()
                record.wait(CLOSE_RESET_TIMEOUT_S)
            except StimulationError:
                pass  # the board went away meanwhile: nothing left to switch off
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        self._serial = None
        port.close()
        self._fail_all("the device was closed")

    # -- actions ------------------------------------------------------------------------------

    def perform(self, action: Action) -> ActionRecord:
        """Send ``action`` as a protocol line; its record is acknowledged when the board answers."""
        timed = action.command in ("pulse", "pattern")
        return self._send(lambda command_id: format_command(command_id, action), timed=timed)

    def ping(self) -> ActionRecord:
        """Return a PING: its record's ACK gives the round trip and a host/board clock pair."""
        return self._send(lambda command_id: format_query(command_id, "PING"))

    def start_latency_test(self, spec: LatencyTestSpec, count: int = 0) -> ActionRecord:
        """Start the board's latency self-test (``LATENCY``); reports go to :attr:`flash_reports`.

        ``count`` 0: until :meth:`stop_latency_test`.
        """
        self.flash_reports = []
        self._awaiting_answer = None
        self._latency_test_running = True
        record = self._send(
            lambda command_id: format_latency_test(
                command_id,
                spec.channel,
                spec.min_interval_s,
                spec.max_interval_s,
                spec.on_s,
                count,
                spec.seed,
            ),
        )
        self._latency_test_id = record.command_id
        return record

    def stop_latency_test(self) -> ActionRecord:
        """``STOP``: end the latency test; flashes after it are not reported."""
        record = self._send(lambda command_id: format_query(command_id, "STOP"))
        self._latency_test_running = False
        return record

    def _send(self, make_line: Callable[[int], str], *, timed: bool = False) -> ActionRecord:
        with self._write_lock:
            port = self._check_usable()
            command_id = self._next_id()
            line = make_line(command_id)
            record = ActionRecord(line, host_now_ns(), command_id)
            with self._pending_lock:
                if self._losing:  # the reader is failing every record: this one would hang
                    raise DeviceLostError(self._losing)
                # Registered before the write: the reply can come before write() returns.
                self._pending[command_id] = record
                if timed:  # a pulse or pattern: its end (DONE, CANCEL) is awaited too
                    self._running[command_id] = record
                if self._latency_test_running:
                    self._sent[command_id] = record
            try:
                port.write(line.encode("ascii") + b"\n")
            except (serial.SerialException, OSError) as error:
                raise self._lose(f"writing to {self.port} failed: {error}") from error
            return record

    def _check_usable(self) -> serial.Serial:
        if self._error is not None:
            raise self._error
        if self._serial is None:
            raise StimulationError(f"serial device {self.port} is not open: call open() first")
        return self._serial

    def _next_id(self) -> int:
        command_id = next(self._ids)
        if command_id > ID_MAX:  # ids wrap on the board too; 0 is the open()'s HELLO query
            self._ids = itertools.count(2)
            command_id = 1
        return command_id

    # -- the reader thread ------------------------------------------------------------------

    def _read_loop(self) -> None:
        port = self._serial
        assert port is not None
        while not self._stop.is_set():
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as error:
                # TypeError: pyserial reading a port closed under it by another thread.
                if not self._stop.is_set():
                    self._lose(f"serial port {self.port} vanished: {error}")
                return
            if not chunk:
                continue
            host_ns = host_now_ns()  # one stamp per read: the replies in it arrived together
            self._buffer += chunk
            for line in self._take_lines():
                self._handle(parse_reply(line), host_ns)

    def _take_lines(self) -> list[str]:
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        return [line.decode("ascii", "replace").strip() for line in lines]

    def _handle(self, reply: Reply, host_ns: int) -> None:
        if reply.kind == "HELLO":
            # A banner mid-session: the board restarted (power, watchdog) and drove every
            # output low; nothing that was running will report its end.
            log.warning("%s restarted (HELLO mid-session): every output is low", self.port)
            self._fail_all("the board restarted")
            return
        board_us = None if reply.board_time_us is None else self._clock.unwrap(reply.board_time_us)
        if reply.kind in ("LAT", "MISS"):
            self._note_flash(reply, board_us)
            return
        if reply.kind in ("ACK", "ERR"):
            self._name_answer(reply.command_id)
        if reply.kind in ("DONE", "CANCEL") and reply.command_id == self._latency_test_id:
            self._latency_test_id = None  # the latency test ended (its count, or STOP)
            return
        with self._pending_lock:
            if reply.kind in ("ACK", "ERR") and reply.command_id is not None:
                record = self._pending.pop(reply.command_id, None)
                if reply.kind == "ERR":
                    self._running.pop(reply.command_id, None)
            elif reply.kind in ("DONE", "CANCEL") and reply.command_id is not None:
                record = self._running.pop(reply.command_id, None)
            else:
                record = None
        if record is None:
            if reply.command_id != 0:  # 0: the ACK of open()'s HELLO query
                log.warning("%s: unexpected reply %r", self.port, reply.text)
                self.unmatched.append(reply.text)
            return
        if reply.kind == "ACK":
            record.acknowledge(host_ns, board_us)
        elif reply.kind == "ERR":
            record.fail(f"{reply.reason} (board refused {record.command!r})")
        else:
            record.finish("DONE" if reply.kind == "DONE" else "CANCEL", host_ns, board_us)

    def _note_flash(self, reply: Reply, on_us: int | None) -> None:
        assert reply.flash is not None and on_us is not None
        command_us = None
        if reply.command_time_us is not None:
            command_us = self._clock.unwrap(reply.command_time_us)
        report = FlashReport(reply.flash, on_us, command_us)
        self.flash_reports.append(report)
        # The board sends a LAT right before the reply of the command that answered the flash.
        self._awaiting_answer = report if command_us is not None else None

    def _name_answer(self, command_id: int | None) -> None:
        report, self._awaiting_answer = self._awaiting_answer, None
        if report is None or command_id is None:
            return
        record = self._sent.get(command_id)
        report.answer_id = command_id
        if record is not None:
            report.answer_command = record.command
            report.answer_written_ns = record.written_ns

    def _lose(self, message: str) -> StimulationError:
        """Fail every waiting record, then enter the error state (once); return the error."""
        # In that order: whoever sees ``error`` sees every record failed; ``_losing`` (set under
        # the lock) makes ``_send`` refuse a command meanwhile.
        with self._pending_lock:
            self._losing = self._losing or message
        self._fail_all(message)
        if self._error is None:
            self._error = DeviceLostError(message)
            log.error("%s", message)
        return self._error

    def _fail_all(self, reason: str) -> None:
        with self._pending_lock:
            records = list(self._pending.values()) + list(self._running.values())
            self._pending.clear()
            self._running.clear()
        for record in records:
            record.fail(reason)
