"""Two rigs on one PC: one lock per camera and board, never one per machine.

Real ``DeepLabStream.py`` sessions at once, each with an emulated Basler (pylon's camera
emulator, ``PYLON_CAMEMU=4``, chosen by serial) and a stimulation device of its own: the stimulus
firmware on a simulated board (simavr, a real pty) or Raspberry Pi pins (gpiozero's mock pin
factory). Rigs with different devices run side by side; a session naming a camera or board in
use is refused before anything starts, naming the holder; a killed session leaves nothing
locked. (One simulated board at a time: simavr runs in real time at real-time priority and
takes a whole core, so the side-by-side rigs drive pins.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deeplabstream.hardware.stimulation.simulated_board import SimulatedBoard
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

pytest.importorskip("pypylon", reason="pypylon is not installed (pip install pypylon)")

# Every test here starts real sessions (rig A alone takes half a minute on a busy machine).
pytestmark = pytest.mark.slow

ENV = {"PYLON_CAMEMU": "4", "GPIOZERO_PIN_FACTORY": "mock"}  # cameras 0815-0000 to 0815-0003
START_TIMEOUT_S = 120.0  # spawning, the model and two simulated boards on a busy 2-core machine

EXPERIMENT = """\
[Experiment]
DESCRIPTION = A pulse on the rig's board each time the nose enters the left half
[Trigger nose_left]
KIND = region
CAMERA = cam
SHAPE = rect 0 0 320 512
MODE = entered
KEYPOINT = nose
[Stimulation pulse]
DEVICE = board
COMMAND = pulse
CHANNEL = 1
DURATION = 0.05
[Rule pulse]
WHEN = nose_left
DO = pulse
"""


def rig(folder: Path, serial: str, device: str, name: str) -> Path:
    """Write a rig's settings: one emulated Basler by serial, its device, the experiment."""
    folder.mkdir(parents=True, exist_ok=True)
    experiment = folder / f"{name}_experiment.ini"
    experiment.write_text(EXPERIMENT, encoding="utf-8")
    return write_settings(
        folder,
        f"[Camera cam]\nSOURCE = basler\nSERIAL = {serial}\nWIDTH = 640\nHEIGHT = 512\n"
        "FRAMERATE = 15\nEXPOSURE = 1000\n"
        f"[Device board]\n{device}\n"
        # Side-by-side sessions on a busy 2-core machine: an emulated camera's pause of a second
        # is load, not a lost camera (what these tests check is the locks).
        "[Streaming]\nCAMERA_LOST_AFTER = 10\n"
        f"[Experiment]\nNAME = {experiment}\n",
        name=f"{name}.ini",
    )


@dataclass
class Running:
    """A DeepLabStream.py session started in the background."""

    process: subprocess.Popen
    output: Path
    settings: Path

    def info(self) -> dict:
        return json.loads((only_session(self.output) / "session.json").read_text())

    def stop(self) -> int:
        """Stop it as Ctrl-C does; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(120)


def start_session(settings: Path, output: Path, *options: str) -> Running:
    """Start ``DeepLabStream.py`` with the experiment; return once its camera delivers."""
    log = (output.parent / f"{output.name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--experiment-enabled", "--output-dir", str(output), *options],
        cwd=PROJECT_ROOT, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    running = Running(process, output, settings)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, (output.parent / f"{output.name}.log").read_text()
        sessions = list(output.glob("*/session.json"))
        try:
            if (
                sessions
                and json.loads(sessions[0].read_text())["cameras"]["cam"]["frames_captured"]
            ):
                return running
        except (KeyError, ValueError):
            pass  # not written with the camera's figures yet
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"no frame in time: {(output.parent / f'{output.name}.log').read_text()}")


def serial_board(port: str) -> str:
    return f"TYPE = serial\nPORT = {port}"


def pins(*numbers: int) -> str:
    return f"TYPE = gpio\nPINS = {', '.join(str(n) for n in numbers)}"


@pytest.fixture(scope="module")
def lock_folder(tmp_path_factory) -> Iterator[None]:
    """One lock folder for every session of this module, as on one PC."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DEEPLABSTREAM_LOCK_FILE", str(tmp_path_factory.mktemp("locks") / "pc.lock"))
    yield
    patch.undo()


def test_two_rigs_with_their_own_camera_and_pins_run_side_by_side(
    lock_folder, tmp_path: Path
) -> None:
    first = start_session(
        rig(tmp_path / "a", "0815-0002", pins(17, 27), "rig_a"), tmp_path / "a" / "out",
        "--duration", "600",
    )  # fmt: skip
    try:
        captured_before = first.info()["cameras"]["cam"]["frames_captured"]
        settings = rig(tmp_path / "b", "0815-0003", pins(22, 23), "rig_b")
        second = run_cli(
            "--headless", "--settings", str(settings), "--experiment-enabled", "--frames", "45",
            "--output-dir", str(tmp_path / "b" / "out"), env=ENV, timeout=240,
        )  # fmt: skip
        assert second.returncode == 0, second.stdout + second.stderr
        assert first.process.poll() is None  # A ran all the while B did
        assert first.info()["cameras"]["cam"]["frames_captured"] > captured_before
        same_pin = run_cli(
            "--headless", "--settings", str(rig(tmp_path / "c", "0815-0003", pins(27), "rig_c")),
            "--experiment-enabled", "--frames", "10", "--output-dir", str(tmp_path / "c" / "out"),
            env=ENV,
        )  # fmt: skip
        assert same_pin.returncode == 1
        assert "device 'board' (gpio:BCM27) is in use by another DeepLabStream" in same_pin.stderr
    finally:
        exit_code = first.stop()
    assert exit_code == 0
    for side, serial in (("a", "0815-0002"), ("b", "0815-0003")):
        info = json.loads((only_session(tmp_path / side / "out") / "session.json").read_text())
        assert info["status"] == "finished" and not info["errors"], info["errors"]
        assert info["cameras"]["cam"]["device"]["serial"] == serial
        assert info["experiment"]["error"] is None  # its pins opened
        assert info["pose"]["cameras"]["cam"]["frames_analysed"] > 0


def test_a_killed_session_leaves_its_camera_and_pins_free(lock_folder, tmp_path: Path) -> None:
    settings = rig(tmp_path, "0815-0001", pins(5, 6), "rig_e")
    killed = start_session(settings, tmp_path / "killed", "--duration", "600")
    killed.process.kill()  # SIGKILL: nothing of it runs its clean-up
    killed.process.wait(30)
    result = run_cli(
        "--headless", "--settings", str(settings), "--experiment-enabled", "--frames", "30",
        "--output-dir", str(tmp_path / "next"), env=ENV, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in use by" not in result.stderr
    info = json.loads((only_session(tmp_path / "next") / "session.json").read_text())
    assert info["status"] == "finished" and info["experiment"]["error"] is None


# Rig A streams with camera 0815-0000 and the simulated board while others try to start. Its
# tests come last in this file: the module's fixtures start when first used and end with the
# module, so the slow tests above never share the machine with rig A and its board.


@pytest.fixture(scope="module")
def board(built, tmp_path_factory) -> Iterator[SimulatedBoard]:
    """The stimulus firmware under simavr, on its own pty."""
    with SimulatedBoard(tmp_path_factory.mktemp("board"), build=False) as board:
        yield board


@pytest.fixture(scope="module")
def rig_a(board, lock_folder, tmp_path_factory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("rig_a")
    running = start_session(
        rig(folder, "0815-0000", serial_board(board.port), "rig_a"), folder / "out",
        "--duration", "900",
    )  # fmt: skip
    yield running
    running.stop()


def test_a_second_session_on_the_same_camera_is_refused_naming_the_holder(
    rig_a: Running, tmp_path: Path
) -> None:
    settings = rig(tmp_path, "0815-0000", pins(17), "rig_c")  # A's camera, its own pins
    result = run_cli(
        "--headless", "--settings", str(settings), "--frames", "20",
        "--output-dir", str(tmp_path / "out"), env=ENV,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr
    assert "camera 'cam' (basler:0815-0000) is in use by another DeepLabStream" in error
    assert f"process {rig_a.process.pid} (" in error and "DeepLabStream.py" in error
    assert str(rig_a.settings) in error and "started 20" in error
    assert "second rig" in error and "--settings rig2.ini" in error
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()  # nothing started: no session folder
    assert rig_a.process.poll() is None  # the holder goes on


def test_a_second_session_on_the_same_board_is_refused_naming_the_holder(
    rig_a: Running, board: SimulatedBoard, tmp_path: Path
) -> None:
    settings = rig(tmp_path, "0815-0001", serial_board(board.port), "rig_d")  # A's board
    result = run_cli(
        "--headless", "--settings", str(settings), "--experiment-enabled", "--frames", "20",
        "--output-dir", str(tmp_path / "out"), env=ENV,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    port = os.path.realpath(board.port)
    assert f"device 'board' (serial-port:{port}) is in use by another DeepLabStream" in (
        result.stderr
    )
    assert f"process {rig_a.process.pid} (" in result.stderr
    assert "camera 'cam'" not in result.stderr  # its camera is free
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert rig_a.process.poll() is None


def test_the_soak_says_in_one_line_which_camera_another_session_holds(rig_a: Running) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **ENV},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"Soak not run: camera 'left' (basler:0815-0000) is in use by process {rig_a.process.pid} ("
    )
    assert rig_a.process.poll() is None
