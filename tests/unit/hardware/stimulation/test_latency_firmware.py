"""The firmware's latency self-test (LATENCY / SEEN / STOP) on the simulated ATmega328P.

The test plays the host's part: it watches the LED channel in the simulator's pin log and
answers each flash with ``SEEN``, then checks the board's ``LAT`` pairs against the pin log
(both in board time) and the protocol's order and errors.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import serial

from tests.fixtures.firmware import PinChange, Simulator

LED_PIN = "PD4"  # channel 2
WAIT_S = 10.0  # a generous guard against a hung test, not a timing bound


@pytest.fixture
def port(sim) -> Iterator[serial.Serial]:
    with serial.Serial(sim.port, 115200, timeout=WAIT_S) as connection:
        assert connection.readline().startswith(b"HELLO stimulus")
        yield connection


def send(port: serial.Serial, line: str) -> None:
    port.write(line.encode("ascii") + b"\n")


def read_line(port: serial.Serial) -> list[str]:
    line = port.readline().decode("ascii")
    assert line.endswith("\n"), f"no reply line (got {line!r})"
    return line.split()


def rises(sim: Simulator) -> list[PinChange]:
    return [change for change in sim.changes(LED_PIN) if change.level == 1]


def wait_for_rise(sim: Simulator, count: int) -> None:
    """Poll the pin log until the LED has risen ``count`` times."""
    deadline = time.monotonic() + WAIT_S
    while len(rises(sim)) < count:
        assert time.monotonic() < deadline, f"flash {count} never came"
        time.sleep(0.0005)


def falls(sim: Simulator) -> list[PinChange]:
    return [change for change in sim.changes(LED_PIN) if change.level == 0]


def wait_for_fall(sim: Simulator, count: int) -> None:
    """Poll the pin log until the LED has gone off ``count`` times (on the simulator's clock)."""
    deadline = time.monotonic() + WAIT_S
    while len(falls(sim)) < count:
        assert time.monotonic() < deadline, f"flash {count} never ended"
        time.sleep(0.0005)


def answer_flashes(sim: Simulator, port: serial.Serial, count: int) -> list[list[str]]:
    """Answer ``count`` flashes with SEEN; return the board's lines up to the last ACK."""
    lines = []
    for n in range(1, count + 1):
        wait_for_rise(sim, n)
        send(port, f"{100 + n} SEEN")
        while True:
            lines.append(read_line(port))
            if lines[-1][:2] == ["ACK", str(100 + n)]:
                break
    return lines


def test_flashes_are_random_within_range_last_on_ms_and_pair_with_answers(sim, port):
    send(port, "1 LATENCY 2 20 40 10 8 12345")
    assert read_line(port)[:2] == ["ACK", "1"]
    lines = answer_flashes(sim, port, 8)
    assert read_line(port)[:2] == ["DONE", "1"]
    pairs = [line for line in lines if line[0] == "LAT"]
    acks = [line for line in lines if line[0] == "ACK"]
    assert [line[1] for line in pairs] == [str(n) for n in range(1, 9)]
    # Each LAT comes right before the ACK of the SEEN that answered it.
    assert [line[0] for line in lines] == ["LAT", "ACK"] * 8

    changes = sim.changes(LED_PIN)
    assert [change.level for change in changes] == [1, 0] * 8
    rise_us = [change.time_ns / 1000 for change in changes[0::2]]
    fall_us = [change.time_ns / 1000 for change in changes[1::2]]
    on_us = [int(line[2]) for line in pairs]
    command_us = [int(line[3]) for line in pairs]
    # micros() starts when the firmware has set up its clock, a fixed time after reset.
    offset_us = on_us[0] - rise_us[0]
    for rise, fall, board_on, board_command, ack in zip(
        rise_us, fall_us, on_us, command_us, acks, strict=True
    ):
        assert abs(fall - rise - 10_000) <= 20  # on for 10 ms of board time
        assert abs(board_on - rise - offset_us) <= 20  # t_on is the rising edge
        assert board_on < board_command <= int(ack[2])  # the answer came after the flash
    # The wait before each flash: 20..40 ms from the later of the last flash's end and its
    # answer (plus the few hundred us the board takes to handle the answer's line).
    waits = [
        rise_us[n + 1] - max(fall_us[n], command_us[n] - offset_us) for n in range(len(rise_us) - 1)
    ]
    assert all(20_000 <= wait <= 40_000 + 1_000 for wait in waits), waits
    assert max(waits) - min(waits) > 2_000, f"the waits look constant, not random: {waits}"


def test_stop_ends_the_test_with_cancel_before_its_ack(sim, port):
    send(port, "1 LATENCY 2 5 10 3")  # count 0: until stopped
    assert read_line(port)[:2] == ["ACK", "1"]
    answer_flashes(sim, port, 2)
    send(port, "2 STOP")
    assert read_line(port)[:2] == ["CANCEL", "1"]
    assert read_line(port)[:2] == ["ACK", "2"]
    seen = len(sim.changes(LED_PIN))
    time.sleep(0.1)  # ten times the longest wait: no more flashes
    assert len(sim.changes(LED_PIN)) == seen
    assert sim.changes(LED_PIN)[-1].level == 0
    send(port, "3 STOP")  # nothing runs: still answered
    assert read_line(port)[:2] == ["ACK", "3"]


def test_other_channels_answer_and_the_test_channel_or_reset_ends_it(sim, port):
    send(port, "1 LATENCY 2 5 10 3")
    assert read_line(port)[:2] == ["ACK", "1"]
    wait_for_rise(sim, 1)
    send(port, "2 PULSE 5 1")  # a real stimulus on another channel answers the flash
    assert read_line(port)[:2] == ["LAT", "1"]
    assert read_line(port)[:2] == ["ACK", "2"]
    assert read_line(port)[:2] == ["DONE", "2"]
    send(port, "3 ON 2")  # its own channel: the test ends
    assert read_line(port)[:2] == ["CANCEL", "1"]
    assert read_line(port)[:2] == ["ACK", "3"]
    send(port, "4 LATENCY 3 5 10 3")
    assert read_line(port)[:2] == ["ACK", "4"]
    send(port, "5 RESET")
    assert read_line(port)[:2] == ["CANCEL", "4"]
    assert read_line(port)[:2] == ["ACK", "5"]


def test_an_unanswered_flash_is_a_miss(sim, port):
    send(port, "1 LATENCY 2 10 10 5 1")
    assert read_line(port)[:2] == ["ACK", "1"]
    miss = read_line(port)  # after the board's one-second answer window
    assert miss[:2] == ["MISS", "1"]
    assert len(rises(sim)) == 1
    assert read_line(port)[:2] == ["DONE", "1"]


def test_a_command_sent_before_the_flash_is_not_its_answer(sim, port):
    send(port, "1 LATENCY 2 200 200 5 1")
    assert read_line(port)[:2] == ["ACK", "1"]
    send(port, "2 SEEN")  # long before the flash
    assert read_line(port)[:2] == ["ACK", "2"]
    wait_for_rise(sim, 1)
    send(port, "3 SEEN")
    lat = read_line(port)
    assert lat[:2] == ["LAT", "1"] and int(lat[3]) > int(lat[2])
    assert read_line(port)[:2] == ["ACK", "3"]
    assert read_line(port)[:2] == ["DONE", "1"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("7 LATENCY 12 10 20 5", "ERR 7 BAD_CHANNEL"),
        ("7 LATENCY 2 30 20 5", "ERR 7 BAD_VALUE"),  # min above max
        ("7 LATENCY 2 0.05 20 5", "ERR 7 BAD_VALUE"),  # below 0.1 ms
        ("7 LATENCY 2 10 20 0", "ERR 7 BAD_VALUE"),
        ("7 LATENCY 2 10 20 5 65536", "ERR 7 BAD_VALUE"),
        ("7 LATENCY 2 10 20 5 3 0", "ERR 7 BAD_VALUE"),  # seed 0 would stop the generator
        ("7 LATENCY 2 10 20 5 3 x", "ERR 7 BAD_VALUE"),
        ("7 LATENCY 2 10 20", "ERR 7 MISSING_ARGUMENT"),
        ("7 LATENCY 2 10 20 5 3 9 1", "ERR 7 TOO_MANY_ARGUMENTS"),
        ("7 SEEN 1", "ERR 7 TOO_MANY_ARGUMENTS"),
        ("7 STOP now", "ERR 7 TOO_MANY_ARGUMENTS"),
    ],
)
def test_bad_latency_arguments_get_err_and_change_nothing(sim, port, line, expected):
    send(port, line)
    assert " ".join(read_line(port)).startswith(expected)
    send(port, "8 PING")
    assert read_line(port)[:2] == ["ACK", "8"]
    assert sim.changes(LED_PIN) == []


def test_pairs_stay_ordered_when_answers_come_late(sim, port):
    """An answer after the LED went off still pairs; the next flash waits for it."""
    send(port, "1 LATENCY 2 5 5 2 3 99")
    assert read_line(port)[:2] == ["ACK", "1"]
    for n in range(1, 4):
        wait_for_rise(sim, n)
        # Answer once the 2 ms flash has ended on the simulator's own clock: a host sleep would
        # not do, simavr runs slower than real time on a busy machine.
        wait_for_fall(sim, n)
        assert len(rises(sim)) == n  # no new flash before the answer
        send(port, f"{10 + n} SEEN")
        lat = read_line(port)
        assert lat[:2] == ["LAT", str(n)]
        # Flash n's own edges: once answered, flash n+1 may already have risen in the log.
        rise, fall = rises(sim)[n - 1], falls(sim)[n - 1]
        offset_us = int(lat[2]) - rise.time_ns / 1000  # micros() starts after reset
        assert int(lat[3]) > fall.time_ns / 1000 + offset_us  # answered after the LED went off
        assert read_line(port)[:2] == ["ACK", str(10 + n)]
    assert read_line(port)[:2] == ["DONE", "1"]
    assert all(a.time_ns < b.time_ns for a, b in itertools.pairwise(sim.changes(LED_PIN)))
