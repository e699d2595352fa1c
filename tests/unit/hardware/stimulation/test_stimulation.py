"""Stimulation devices: protocol helpers, the serial device against a fake box on a socat pty
pair, the log device, gpiozero's mock pins, and nidaqmx without NI's driver.

The firmware itself, under simavr, is tested in test_firmware.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from deeplabstream.hardware.stimulation import (
    DEVICES,
    DeviceLostError,
    DeviceNotFoundError,
    StimulationError,
    create_device,
    device_class,
)
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    check_channel,
    check_count,
    check_duration,
)
from deeplabstream.hardware.stimulation.log_device import LogStimulator
from deeplabstream.hardware.stimulation.protocol import (
    BoardClock,
    format_command,
    format_duration_ms,
    parse_reply,
)
from deeplabstream.hardware.stimulation.serial_device import SerialStimulator
from tests.support.paths import PROJECT_ROOT

# -- protocol helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500"), (0.00025, "0.25"), (0.0121255, "12.126"), (1e-4, "0.1"), (2000, "2000000")],
)
def test_durations_are_written_as_milliseconds_with_three_decimals(seconds, text):
    assert format_duration_ms(seconds) == text


@pytest.mark.parametrize("seconds", [0.0, 9e-5, 2000.001, -1.0])
def test_durations_outside_the_boards_range_are_refused(seconds):
    with pytest.raises(ValueError, match="outside"):
        format_duration_ms(seconds)


def test_command_lines_for_every_action():
    assert format_command(17, Action.pulse("box", 2, 0.5)) == "17 PULSE 2 500"
    assert format_command(1, Action.on("box", 0)) == "1 ON 0"
    assert format_command(2, Action.off("box", 11)) == "2 OFF 11"
    assert format_command(3, Action("box", "reset")) == "3 RESET"
    pattern = Action.pattern("box", 4, on_s=0.01, off_s=0.0205)  # until stopped: count 0
    assert format_command(4294967295, pattern) == "4294967295 PATTERN 4 10 20.5 0"
    assert format_command(5, Action.pattern("box", 4, 0.01, 0.0205, 7)) == "5 PATTERN 4 10 20.5 7"
    with pytest.raises(ValueError):
        format_command(2**32, Action("box", "reset"))


def test_replies_are_parsed_and_anything_else_is_other():
    hello = parse_reply("HELLO stimulus 1.0.0 12")
    assert (hello.kind, hello.firmware, hello.version, hello.channels) == (
        "HELLO",
        "stimulus",
        "1.0.0",
        12,
    )
    ack = parse_reply("ACK 17 123456\r")
    assert (ack.kind, ack.command_id, ack.board_time_us) == ("ACK", 17, 123456)
    assert parse_reply("DONE 5 9").kind == "DONE"
    assert parse_reply("CANCEL 5 9").board_time_us == 9
    err = parse_reply("ERR 8 BAD_VALUE")
    assert (err.kind, err.command_id, err.reason) == ("ERR", 8, "BAD_VALUE")
    anonymous = parse_reply("ERR ? BAD_ID")
    assert (anonymous.kind, anonymous.command_id) == ("ERR", None)
    for junk in ["", "ACK", "ACK x 1", "ACK 1 -5", "HELLO a b c", "ERR x Y", "garbage \x00"]:
        assert parse_reply(junk).kind == "OTHER"


def test_board_clock_unwraps_the_32_bit_microseconds():
    clock = BoardClock()
    assert clock.unwrap(4_294_967_000) == 4_294_967_000
    assert clock.unwrap(200) == 2**32 + 200  # wrapped
    assert clock.unwrap(4_294_967_100) == 4_294_967_100  # a late DONE from before the wrap
    assert clock.unwrap(300) == 2**32 + 300


def test_argument_checks():
    assert check_channel(3, 4) == 3
    for bad in [4, -1, 1.0, True, "1"]:
        with pytest.raises(ValueError):
            check_channel(bad, 4)
    assert check_duration(1, 0.001, 10, "x") == 1.0
    for bad in [0.0, float("nan"), float("inf"), 11, "1", None]:
        with pytest.raises(ValueError):
            check_duration(bad, 0.001, 10, "x")
    assert check_count(0) == 0
    for bad in [-1, 65536, 1.5, False]:
        with pytest.raises(ValueError):
            check_count(bad)


def test_action_record_is_filled_from_another_thread():
    record = ActionRecord("1 PULSE 0 10", written_ns=5, command_id=1)
    assert not record.settled and record.acked_ns is None and not record.wait(0.01)
    threading.Timer(0.02, record.acknowledge, args=(10, 1234)).start()
    assert record.wait(5)
    assert record.ok and (record.acked_ns, record.board_time_us) == (10, 1234)
    record.acknowledge(99, 99)  # the first report wins
    assert record.acked_ns == 10
    record.finish("DONE", 20, 11234)
    record.fail("too late")  # acknowledged already: the error stays None
    assert record.wait_end(0) and record.end_kind == "DONE" and record.error is None


# -- registry -------------------------------------------------------------------------------


def test_registry_names_every_device_and_imports_lazily():
    assert set(DEVICES.builtin_names()) == {"serial", "log", "nidaq", "gpio", "visual"}
    assert device_class("log") is LogStimulator
    assert device_class("serial") is SerialStimulator
    with pytest.raises(KeyError, match="known: gpio, log, nidaq, serial, visual"):
        device_class("laser")
    code = (
        "import sys, deeplabstream.hardware.stimulation, deeplabstream.hardware.stimulation.gpio, "
        "deeplabstream.hardware.stimulation.nidaq;"
        "print('gpiozero' in sys.modules, 'nidaqmx' in sys.modules)"
    )
    root = PROJECT_ROOT
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


# -- log device -----------------------------------------------------------------------------


def test_log_device_records_actions_for_a_dry_run(tmp_path):
    path = tmp_path / "stimulation.log"
    device = create_device("log", channels=4, path=path)
    with pytest.raises(StimulationError, match="not open"):
        device.on(0)
    with device:
        records = [
            device.on(0),
            device.pulse(1, 0.5),
            device.pattern(2, 0.01, 0.02, 3),
            device.off(0),
            device.reset(),
        ]
        with pytest.raises(ValueError):
            device.on(4)
    assert [r.command for r in records] == [
        "on channel=0",
        "pulse channel=1 duration_s=0.5",
        "pattern channel=2 on_s=0.01 off_s=0.02 count=3",
        "off channel=0",
        "reset",
    ]
    assert all(r.ok and r.board_time_us is None for r in records)
    assert device.records == records
    lines = path.read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == [r.command for r in records]
    assert [int(line.split("\t")[0]) for line in lines] == [r.written_ns for r in records]


# -- the serial device against a fake box on a pty pair -------------------------------------


class FakeBox:
    """A stand-in for the stimulus board on the far end of a pty: it answers like the firmware
    (HELLO to a HELLO query, ACK with a made-up microsecond clock, DONE right after a PULSE's
    or PATTERN's ACK) but times nothing. It notes the host time it read each line.
    """

    def __init__(self, path: str, answer: bool = True, refuse: str | None = None) -> None:
        self.port = serial.Serial(path, 115200, timeout=0.05)
        self.answer = answer
        self.refuse = refuse  # a command word to answer with ERR
        self.send_done = True
        self.received: list[tuple[int, str]] = []  # (perf_counter_ns when read, line)
        self.t0 = time.perf_counter_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def board_us(self) -> int:
        return (time.perf_counter_ns() - self.t0) // 1000

    def send(self, text: str) -> None:
        self.port.write(text.encode("ascii"))

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                return  # the pty went away (the test killed socat)
            read_ns = time.perf_counter_ns()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode("ascii")
                self.received.append((read_ns, line))
                if self.answer:
                    self._reply(line)

    def _reply(self, line: str) -> None:
        command_id, word, *_ = [*line.split(), ""]
        if word == "HELLO":
            self.send("HELLO fakebox 0.0 4\n")
        if word == self.refuse:
            self.send(f"ERR {command_id} BAD_VALUE\n")
            return
        self.send(f"ACK {command_id} {self.board_us()}\n")
        if word in ("PULSE", "PATTERN") and self.send_done:
            self.send(f"DONE {command_id} {self.board_us()}\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.port.close()


class PtyPair:
    """Two linked pseudo-terminals made by socat: the host's end and the box's end."""

    def __init__(self, folder: Path) -> None:
        self.host = str(folder / "host")
        self.box = str(folder / "box")
        self.process = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.host}", f"pty,raw,echo=0,link={self.box}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (os.path.exists(self.host) and os.path.exists(self.box)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                pytest.fail("socat did not create its pty pair")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def ptys(tmp_path) -> Iterator[PtyPair]:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    pair = PtyPair(tmp_path)
    yield pair
    pair.kill()


def open_against(box_path: str, host_path: str, **options) -> tuple[FakeBox, SerialStimulator]:
    box = FakeBox(box_path, **options)
    # The fake box sends no banner of its own: the device asks for it (as with a board that
    # did not restart when its port was opened).
    device = SerialStimulator(host_path, hello_timeout_s=5.0, hello_query_after_s=0.05)
    device.open()
    return box, device


def test_protocol_round_trip_against_a_fake_box_on_a_pty(ptys):
    box, device = open_against(ptys.box, ptys.host)
    try:
        assert (device.firmware, device.version, device.channel_count) == ("fakebox", "0.0", 4)
        pulse = device.pulse(2, 0.5)
        on = device.on(3)
        pattern = device.pattern(1, 0.01, 0.02, 5)
        ping = device.ping()
        for record in (pulse, on, pattern, ping):
            assert record.wait(5), record
            assert record.ok
            assert record.acked_ns > record.written_ns
        assert pulse.wait_end(5) and pulse.end_kind == "DONE"
        assert pattern.wait_end(5) and pattern.end_board_time_us >= pattern.board_time_us
        times = [r.board_time_us for r in (pulse, on, pattern, ping)]
        assert times == sorted(times)
        lines = [line for _, line in box.received]
        assert lines[-4:] == [
            f"{pulse.command_id} PULSE 2 500",
            f"{on.command_id} ON 3",
            f"{pattern.command_id} PATTERN 1 10 20 5",
            f"{ping.command_id} PING",
        ]
        with pytest.raises(ValueError):
            device.on(4)  # the box said it has 4 channels
    finally:
        device.close()
        box.close()
    assert [line.split()[1] for _, line in box.received][-1] == "RESET"  # close switched off


def test_bytes_arrive_in_order_and_write_to_read_latency_against_a_fake_box_on_a_pty(ptys):
    box, device = open_against(ptys.box, ptys.host)
    try:
        # A burst, written as fast as the caller can: every line arrives whole and in order.
        burst = [device.on(i % 4) if i % 2 else device.off(i % 4) for i in range(500)]
        assert all(record.wait(10) for record in burst)
        # Paced, one at a time: the time from the host's write to the box's read.
        paced = []
        for i in range(1000):
            record = device.pulse(i % 4, 0.001)
            assert record.wait(10)
            paced.append(record)
    finally:
        device.close()
        box.close()
    read_at = {int(line.split()[0]): ns for ns, line in box.received if line.split()[0] != "0"}
    sent = [r.command for r in burst + paced]
    received = [line for _, line in box.received if line.split()[0] != "0"]
    assert received[: len(sent)] == sent
    latencies_us = [(read_at[r.command_id] - r.written_ns) / 1000 for r in paced]
    assert min(latencies_us) > 0  # the box never reads a line before it was written
    p50 = statistics.median(latencies_us)
    p99 = statistics.quantiles(latencies_us, n=100)[98]
    count = len(paced)
    print(f"\npty write -> read latency over {count} commands: p50 {p50:.0f} us, p99 {p99:.0f} us")


def test_an_err_reply_fails_the_record_against_a_fake_box_on_a_pty(ptys):
    box, device = open_against(ptys.box, ptys.host, refuse="PATTERN")
    try:
        record = device.pattern(0, 0.01, 0.01, 2)
        assert record.wait(5)
        assert not record.ok
        assert "BAD_VALUE" in record.error and "PATTERN" in record.error
        assert record.wait_end(0) and record.end_kind == "LOST"
        assert device.on(0).wait(5)  # the session goes on
    finally:
        device.close()
        box.close()


def test_a_hello_mid_session_fails_what_was_running_against_a_fake_box_on_a_pty(ptys):
    box, device = open_against(ptys.box, ptys.host)
    box.send_done = False
    try:
        record = device.pattern(0, 0.01, 0.01, 0)
        assert record.wait(5) and record.ok
        box.send("HELLO fakebox 0.0 4\n")  # the board restarted: every output went low
        assert record.wait_end(5) and record.end_kind == "LOST"
        assert device.ping().wait(5)
    finally:
        device.close()
        box.close()


def test_port_vanishing_mid_session_is_a_clear_error_not_a_hang(ptys):
    box, device = open_against(ptys.box, ptys.host)
    box.answer = False  # the next command stays unanswered until the port vanishes
    try:
        assert device.error is None
        waiting = device.pulse(1, 1.0)
        ptys.kill()
        deadline = time.monotonic() + 10
        while device.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(device.error, DeviceLostError)
        assert ptys.host in str(device.error) and "vanished" in str(device.error)
        assert waiting.wait(0) and waiting.error is not None
        with pytest.raises(DeviceLostError, match="vanished"):
            device.on(0)
    finally:
        device.close()  # returns at once: nothing left to switch off
        box.close()
    assert not device.is_open


def test_a_missing_port_is_named_and_the_present_ports_listed(monkeypatch):
    class FakePort:
        def __init__(self, device: str, description: str) -> None:
            self.device, self.description = device, description

    monkeypatch.setattr(
        serial.tools.list_ports,
        "comports",
        lambda: [FakePort("/dev/ttyUSB0", "USB2.0-Serial"), FakePort("/dev/ttyACM0", "Uno")],
    )
    with pytest.raises(DeviceNotFoundError) as caught:
        SerialStimulator("/dev/ttyNOSUCHPORT").open()
    message = str(caught.value)
    assert "/dev/ttyNOSUCHPORT does not exist" in message
    assert "/dev/ttyACM0: Uno" in message and "/dev/ttyUSB0: USB2.0-Serial" in message
    monkeypatch.setattr(serial.tools.list_ports, "comports", list)
    with pytest.raises(DeviceNotFoundError, match="no serial ports were found"):
        SerialStimulator("/dev/ttyNOSUCHPORT").open()


def test_no_hello_gives_a_clear_message_against_a_silent_fake_box_on_a_pty(ptys):
    box = FakeBox(ptys.box, answer=False)
    device = SerialStimulator(ptys.host, hello_timeout_s=0.5, hello_query_after_s=0.1)
    try:
        with pytest.raises(DeviceNotFoundError, match=f"no HELLO from {ptys.host} within 0.5 s"):
            device.open()
        assert not device.is_open
        assert [line for _, line in box.received] == ["0 HELLO"]  # it asked once
    finally:
        box.close()


def test_actions_before_open_raise():
    device = SerialStimulator("/dev/null")
    with pytest.raises(ValueError):
        device.on(0)  # no channels before the HELLO
    with pytest.raises(StimulationError, match="not open"):
        device.reset()


# -- gpiozero with mock pins -----------------------------------------------------------------


@pytest.fixture
def mock_gpio(monkeypatch) -> Iterator[None]:
    gpiozero = pytest.importorskip("gpiozero")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    gpiozero.Device.pin_factory = None  # chosen again, from the environment, at first use
    yield
    if gpiozero.Device.pin_factory is not None:
        gpiozero.Device.pin_factory.reset()
        gpiozero.Device.pin_factory = None


def high_spans(pin) -> list[tuple[float, float]]:
    """(start, length) in seconds of every high stretch of a gpiozero mock pin.

    A mock pin stamps each state with the time since the previous state.
    """
    spans, rise, now = [], None, 0.0
    for state in pin.states:
        now += state.timestamp
        if state.state and rise is None:
            rise = now
        elif not state.state and rise is not None:
            spans.append((rise, now - rise))
            rise = None
    return spans


def test_gpio_mock_pins_switch_pulse_and_pattern(mock_gpio):
    device = create_device("gpio", pins=[17, 27, 22])
    with device:
        pins = [output.pin for output in device.outputs]
        assert not any(pin.state for pin in pins)
        assert device.on(0).ok and pins[0].state
        assert device.off(0).ok and not pins[0].state
        pulse = device.pulse(1, 0.05)
        # high before the call returned (the mock pin records every change), low later
        # without the caller; read from the record, not the pin, so a slow test thread that
        # looks after the 50 ms still sees what happened
        assert pulse.ok and any(state.state for state in pins[1].states)
        assert pulse.wait_end(5) and pulse.end_kind == "DONE"
        pattern = device.pattern(2, 0.02, 0.03, 3)
        assert pattern.wait_end(5) and pattern.end_kind == "DONE"
    # Timer threads wake late on a busy machine, never early: only the lower bounds are
    # checked (wait_end above catches a timer that never ends). Every edge is planned from
    # the first one (no drift), so a late rise shortens its own high span: each edge is
    # checked against its planned time from the first rise, not against the previous edge.
    # 1 ms allows the mock pin's and the planner's clocks to be read at different instants.
    ((_, length),) = high_spans(pins[1])
    assert length >= 0.049
    spans = high_spans(pins[2])
    assert len(spans) == 3
    first_rise = spans[0][0]
    for cycle, (rise, length) in enumerate(spans):
        assert rise - first_rise >= cycle * 0.05 - 0.001
        assert rise + length - first_rise >= cycle * 0.05 + 0.02 - 0.001
    assert not any(pin.state for pin in pins)


def test_gpio_off_cuts_a_pattern_short(mock_gpio):
    device = create_device("gpio", pins=[5], active_high=False)
    with device:
        pin = device.outputs[0].pin
        assert pin.state  # active low: off is a high pin
        changes_before = len(pin.states)
        pattern = device.pattern(0, 0.01, 0.01, 0)
        # the first edge (on: the pin low) is made before the call returns; read it from the
        # record, since a test thread that runs 10 ms late already sees the worker's next edge
        assert not pin.states[changes_before].state
        stop = device.off(0)
        assert pattern.wait_end(5) and pattern.end_kind == "CANCEL"
        changes = len(pin.states)
        time.sleep(0.05)  # a cancelled worker must not touch the pin again
        assert len(pin.states) == changes and pin.state and stop.ok


def test_gpio_without_a_pin_factory_is_a_clear_error(monkeypatch):
    gpiozero = pytest.importorskip("gpiozero")
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nosuchfactory")
    gpiozero.Device.pin_factory = None
    try:
        with pytest.raises(DeviceNotFoundError, match="GPIOZERO_PIN_FACTORY=mock"):
            create_device("gpio", pins=[17]).open()
    finally:
        gpiozero.Device.pin_factory = None


# -- nidaqmx without NI's driver ---------------------------------------------------------------


def test_nidaq_open_without_the_driver_gives_a_clear_message():
    pytest.importorskip("nidaqmx", reason="nidaqmx is not installed")
    import nidaqmx.errors
    import nidaqmx.system

    try:
        version = nidaqmx.system.System.local().driver_version
    except nidaqmx.errors.DaqNotFoundError:
        pass
    else:
        pytest.skip(f"NI-DAQmx {version} is installed here: this test is for machines without it")
    device = create_device("nidaq", lines=["Dev1/port0/line0"], analog_output="Dev1/ao0")
    assert device.channel_count == 2
    with pytest.raises(DeviceNotFoundError, match="NI-DAQmx, NI's driver, is not installed"):
        device.open()
    with pytest.raises(StimulationError, match="not open"):
        device.on(0)
    device.close()  # harmless after a failed open
