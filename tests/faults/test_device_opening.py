"""Opening the stimulation devices: before the start where it can be, never on the loop (issue 44).

A serial port that exists but where no firmware answers (a real pty, nobody on the other end),
an NI-DAQ device without NI's driver and Raspberry Pi pins off a Pi (this machine has neither)
are refused by ``DeepLabStream.py`` before anything starts: exit 2, the device's section, what
is missing and what to do, no session folder. Started while the stream and analysis run (the
window's Start Experiment, through the session API the window uses), the board is opened off
the inference loop: poses keep coming while it waits for the HELLO that never comes, no stall is
said or counted, and the device's own message is the one reported (the error, session.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.core.timing import host_now_ns
from deeplabstream.live.session.analysis import PoseError
from deeplabstream.live.session.live import LiveSession
from deeplabstream.settings import load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A real serial port (a pty) that exists but where no firmware answers."""
    if not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals on this platform")
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def run_cli(tmp_path: Path, settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}  # real absence
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def assert_refused_before_start(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "nothing was started" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a whole session: the slow step (the default suite keeps under 15 min)
def test_a_serial_port_where_no_firmware_answers_is_refused_before_the_start(
    tmp_path: Path, silent_port: str
) -> None:
    settings = write_settings(
        tmp_path, CAMERA + f"[Device stimulus_box]\nTYPE = serial\nPORT = {silent_port}\n"
    )
    result = run_cli(tmp_path, settings, "--experiment-enabled", "--frames", "10")
    assert_refused_before_start(tmp_path, result)
    assert f"[Device stimulus_box] (TYPE = serial): no HELLO from {silent_port}" in result.stderr
    assert "make -C firmware flash" in result.stderr  # what to do


@pytest.mark.parametrize(
    ("section", "missing"),
    [
        ("TYPE = nidaq\nLINES = Dev1/port0/line0\n", "NI-DAQmx"),
        ("TYPE = gpio\nPINS = 17\n", "cannot claim GPIO pin 17"),
    ],
    ids=["nidaq", "gpio"],
)
def test_an_absent_nidaq_or_gpio_device_is_refused_before_the_start(
    tmp_path: Path, section: str, missing: str
) -> None:
    settings = write_settings(tmp_path, CAMERA + f"[Device stimulus_box]\n{section}")
    result = run_cli(tmp_path, settings, "--experiment-enabled", "--frames", "10")
    assert_refused_before_start(tmp_path, result)
    kind = section.split("\n")[0].split(" = ")[1]
    assert f"[Device stimulus_box] (TYPE = {kind}): " in result.stderr
    assert missing in result.stderr


@pytest.mark.slow  # a whole live session with a 4 s wait for the board
def test_a_board_that_never_answers_opens_off_the_loop_and_its_message_is_kept(
    tmp_path: Path, silent_port: str
) -> None:
    settings = load_settings(
        write_settings(
            tmp_path, CAMERA + f"[Device stimulus_box]\nTYPE = serial\nPORT = {silent_port}\n"
        )
    )
    poses: list[int] = []  # the host time each pose reached the main process's listener
    outcome: list[BaseException] = []
    stream = LiveSession(settings, output_dir=tmp_path / "out")
    try:
        stream.open()
        stream.pose.start_analysis()
        stream.start()
        assert stream.pose.analysis is not None
        stream.pose.analysis.pose_listeners.append(
            lambda camera, record: poses.append(record.ready_ns)
        )

        def start_experiment() -> None:  # as the window does: on a thread of its own
            try:
                stream.pose.start_experiment()
            except PoseError as error:
                outcome.append(error)

        asked_ns = host_now_ns()
        task = threading.Thread(target=start_experiment)
        task.start()
        task.join(timeout=120)
        answered_ns = host_now_ns()
        assert not task.is_alive()
        for _ in range(30):  # the window's timer goes on: what it would say comes now
            stream.service(0.05)
        (error,) = outcome
        assert f"no HELLO from {silent_port}" in str(error)
        # The worker analysed frames while the board was opening (its 4 s wait for a HELLO).
        during = [t for t in poses if asked_ns + 1e9 < t < answered_ns - 1e9]
        assert during, "no pose while the board was opening: the loop was blocked"
        assert stream.report.health.stalls.count == 0
    finally:
        stream.stop("test over")
    (folder,) = (tmp_path / "out").iterdir()
    info = json.loads((folder / "session.json").read_text())
    assert any(f"no HELLO from {silent_port}" in e for e in info["errors"]), info["errors"]
    assert not any("stalled" in e for e in info["errors"] + info["warnings"]), info
