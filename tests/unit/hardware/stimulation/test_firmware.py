"""The stimulus firmware on a simulated ATmega328P (simavr, firmware/sim/simstim).

Each test starts the harness, which runs firmware/build/stimulus.elf at 16 MHz with its UART on
a pty and logs every output pin change with the simulated time; the test talks to the board
through the pty (SerialStimulator or raw pyserial) and checks the pin log in board time.
The firmware and harness are built with make when needed; without avr-gcc or simavr the tests
are skipped with the reason.
"""

from __future__ import annotations

import itertools
import time

import pytest
import serial

from deeplabstream.hardware.stimulation.base import DeviceLostError
from tests.fixtures.firmware import (
    TOLERANCE_NS,
    firmware_version,
    high_lengths_ns,
    pin_of,
)


def test_hello_banner_at_boot(board):
    assert board.firmware == "stimulus"
    assert board.version == firmware_version()
    assert board.channel_count == 12


def test_ping_acks_carry_increasing_board_times(board):
    paced = []
    for _ in range(5):  # one at a time
        paced.append(board.ping())
        paced[-1].wait(10)
    burst = [board.ping() for _ in range(60)]  # written at once: the board keeps up
    records = paced + burst
    assert all(record.wait(10) and record.ok for record in records)
    times = [record.board_time_us for record in records]
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    assert board.unmatched == []


def test_on_and_off_toggle_the_pin_when_acked(sim, board):
    on = board.on(2)
    assert on.wait(10) and on.ok
    off = board.off(2)
    assert off.wait(10) and off.ok
    assert [c.level for c in sim.changes("PD4")] == [1, 0]
    rise, fall = sim.changes("PD4")
    # The ACK's board time is when the edge was made: both clocks see the same interval.
    board_ns = (off.board_time_us - on.board_time_us) * 1000
    assert abs((fall.time_ns - rise.time_ns) - board_ns) < 20_000


def test_pulse_2_500_is_500_ms_of_board_time(sim, board):
    record = board.pulse(2, 0.5)
    assert record.wait(10) and record.ok
    assert sim.changes("PD4")[-1].level == 1  # high right after the ACK, timed by the board
    assert record.wait_end(20) and record.end_kind == "DONE"
    (length_ns,) = high_lengths_ns(sim.changes("PD4"))
    assert abs(length_ns - 500_000_000) <= TOLERANCE_NS
    reported_us = record.end_board_time_us - record.board_time_us
    assert abs(reported_us - 500_000) <= TOLERANCE_NS // 1000
    print(f"\nPULSE 2 500 under simavr: {length_ns} ns high ({length_ns - 500_000_000:+d} ns)")


def test_pattern_makes_its_count_of_pulses_with_their_phases(sim, board):
    record = board.pattern(3, 0.02, 0.03, 5)
    assert record.wait_end(20) and record.end_kind == "DONE"
    changes = sim.changes("PD5")
    assert [c.level for c in changes] == [1, 0] * 5
    assert all(abs(n - 20_000_000) <= TOLERANCE_NS for n in high_lengths_ns(changes))
    lows = [b.time_ns - a.time_ns for a, b in itertools.pairwise(changes) if a.level == 0]
    assert len(lows) == 4 and all(abs(n - 30_000_000) <= TOLERANCE_NS for n in lows)
    assert abs(record.end_board_time_us - record.board_time_us - 220_000) <= 1000


def test_off_cuts_a_pattern_short_and_reset_switches_everything_off(sim, board):
    pattern = board.pattern(4, 0.005, 0.005, 0)
    assert pattern.wait(10)
    time.sleep(0.1)  # let it run a few phases
    off = board.off(4)
    assert pattern.wait_end(10) and pattern.end_kind == "CANCEL"
    assert off.wait(10) and sim.changes("PD6")[-1].level == 0
    assert len(sim.changes("PD6")) >= 4
    records = [board.on(0), board.on(11), board.pulse(5, 10.0)]
    assert all(r.wait(10) for r in records)
    reset = board.reset()
    assert reset.wait(10) and reset.ok
    assert records[2].wait_end(10) and records[2].end_kind == "CANCEL"
    last = {c.pin: c.level for c in sim.changes()}
    assert last["PD2"] == last["PB5"] == last["PD7"] == 0


def test_bad_lines_get_err_and_the_board_keeps_answering(sim):
    cases = [
        ("garbage", "ERR ? BAD_ID"),
        ("5 FOO", "ERR 5 UNKNOWN_COMMAND"),
        ("6 ON 12", "ERR 6 BAD_CHANNEL"),
        ("7 PULSE 1 0", "ERR 7 BAD_VALUE"),
        ("8 PULSE 1 0.05", "ERR 8 BAD_VALUE"),  # below the 0.1 ms minimum
        ("9 PULSE 1 1.2345", "ERR 9 BAD_VALUE"),  # a fourth decimal
        ("10 PULSE 1", "ERR 10 MISSING_ARGUMENT"),
        ("11 ON 1 2", "ERR 11 TOO_MANY_ARGUMENTS"),
        ("12 PATTERN 1 10 10 65536", "ERR 12 BAD_VALUE"),
        ("13 ON -1", "ERR 13 BAD_CHANNEL"),
        ("4294967296 PING", "ERR ? BAD_ID"),
        ("14 PING " + "x" * 80, "ERR 14 LINE_TOO_LONG"),
        ("15 ping", "ACK 15"),  # words are not case-sensitive
    ]
    with serial.Serial(sim.port, 115200, timeout=10) as port:
        assert port.readline().startswith(b"HELLO stimulus")
        for line, expected in cases:
            port.write(line.encode("ascii") + b"\n")
            reply = port.readline().decode("ascii").strip()
            assert reply.startswith(expected), (line, reply)
        port.write(b"\x00\xff\r\n")  # binary junk is one more bad line
        assert port.readline().startswith(b"ERR ? BAD_ID")
        port.write(b"\n   \n99 PING\n")  # blank lines get no reply
        assert port.readline().startswith(b"ACK 99 ")
    assert all(c.level == 0 for c in sim.changes())


def test_twelve_channels_of_the_shortest_phases_never_hang_the_board(sim, board):
    patterns = [board.pattern(channel, 1e-4, 1e-4, 0) for channel in range(12)]
    assert all(record.wait(10) and record.ok for record in patterns)
    pings = [board.ping() for _ in range(5)]
    assert all(record.wait(10) and record.ok for record in pings)
    assert not any(record.wait_end(0) for record in patterns)  # no restart, nothing lost
    reset = board.reset()
    assert reset.wait(10) and reset.ok
    assert all(record.wait_end(10) and record.end_kind == "CANCEL" for record in patterns)
    assert {c.pin: c.level for c in sim.changes()} == {pin_of(c): 0 for c in range(12)}


def test_the_simulator_vanishing_is_a_clear_error(sim, board):
    assert board.ping().wait(10)
    sim.process.kill()
    sim.process.wait(10)
    deadline = time.monotonic() + 10
    while board.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(board.error, DeviceLostError)
    with pytest.raises(DeviceLostError, match=sim.port):
        board.pulse(0, 0.1)


def test_a_reply_to_a_command_this_host_never_sent_is_kept_unmatched(board):
    """An answer whose id the host did not send (another program on the port, a host that
    restarted mid-command) is logged and kept in ``unmatched``, never taken for a record's."""
    from deeplabstream.hardware.stimulation.protocol import format_query

    with board._write_lock:
        board._serial.write((format_query(9999, "PING") + "\n").encode("ascii"))
    deadline = time.monotonic() + 10
    while not board.unmatched and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(board.unmatched) == 1 and board.unmatched[0].startswith("ACK 9999")
    ping = board.ping()  # the device goes on answering its own commands
    assert ping.wait(10) and ping.ok
