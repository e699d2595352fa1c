"""The closed-loop benchmark's board stand-in, for GPU machines that cannot build simavr's.

A real process on a real pty, driven by the project's own serial device, as the benchmark does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import serial

from deeplabstream.hardware.stimulation import create_device
from tests.support.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the stand-in serves a POSIX pty")


@pytest.fixture
def standin() -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen(
        # by its file, as benchmarks.closed_loop starts it: stdlib only, found under PYTHONSAFEPATH
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "board_standin.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    port = process.stdout.readline().split()[1]
    yield process, port
    if process.poll() is None:
        process.kill()
        process.wait(5)


def test_the_serial_device_opens_it_and_every_pulse_is_acknowledged(standin) -> None:
    process, port = standin
    device = create_device("serial", port=port, hello_timeout_s=10.0, hello_query_after_s=0.1)
    device.open()
    try:
        assert device.firmware == "stimulus" and device.version == "standin"
        records = [device.pulse(channel, 0.002) for channel in (0, 1, 0)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(r.acked_ns is None for r in records):
            time.sleep(0.01)
        assert all(r.acked_ns is not None and r.acked_ns >= r.written_ns for r in records)
    finally:
        device.close()
    assert process.stdin is not None
    process.stdin.close()  # the benchmark is over: the stand-in ends
    assert process.wait(10) == 0


def _lines_until(link: serial.Serial, last: str) -> list[str]:
    """The lines the stand-in sends, up to one that starts with ``last`` (5 s at most)."""
    lines: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (lines and lines[-1].startswith(last)):
        line = link.readline().decode().strip()
        if line:
            lines.append(line)
    return lines


def test_it_answers_the_protocol_line_by_line(standin) -> None:
    _, port = standin
    with serial.Serial(port, 115200, timeout=0.5) as link:
        link.write(b"7 PULSE 2 1\n8 PULSE 3 500\n9 OFF 3\n10 FLASH 1\nX PING\n")
        replies = _lines_until(link, "DONE 7")  # the 1 ms pulse ends by itself, last
        link.write(b"11 HELLO\n")  # the banner sent before the port opened may be gone
        hello = _lines_until(link, "ACK 11")
    kinds = [line.split()[:2] for line in replies]
    assert ["ACK", "7"] in kinds and ["DONE", "7"] in kinds
    assert ["ACK", "8"] in kinds and ["CANCEL", "8"] in kinds  # cut short by the OFF
    assert ["ACK", "9"] in kinds
    assert "ERR 10 UNKNOWN_COMMAND" in replies and "ERR ? BAD_ID" in replies
    assert hello[-2:][0] == "HELLO stimulus standin 12"
