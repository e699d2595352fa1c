"""Issue 53 (9): a FIFO (or any special file) in place of a session's file never hangs a reader.

``deeplabstream-nwb`` hung on a FIFO standing in place of ``events.csv`` or ``arena.pose.csv``
(only ``session.json`` was guarded). Every reader of a session's files now opens regular files
only (core/regular_files.py): the export ends at once, exit 1, naming the file and what it is.
A FIFO is made with ``os.mkfifo``; the subprocess's timeout only ends a hang that would fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.core.regular_files import SpecialFileError, open_regular, regular_file
from deeplabstream.core.schema import existing_file
from tests.faults.test_loop_health import session_of
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFO on this platform")

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
    "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n"
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished session folder with poses, events and a recording (each test copies it)."""
    base = tmp_path_factory.mktemp("finished")
    settings = write_settings(base, SETTINGS)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(base / "out"), "--experiment-enabled",
         "--recording-enabled", "--frames", "45"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, _ = session_of(base / "out")
    return folder


@pytest.mark.parametrize("name", ["events.csv", "arena.pose.csv", "arena.frames.csv"])
def test_the_nwb_export_refuses_a_fifo_in_place_of_a_session_file(finished, tmp_path, name):
    pytest.importorskip("pynwb")
    folder = tmp_path / finished.name
    shutil.copytree(finished, folder)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.outputs.nwb", str(folder)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{folder / name} is not a regular file (a FIFO)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (folder / "session.nwb").exists()


def test_special_files_are_refused_by_path_and_by_descriptor(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SpecialFileError, match=r"fifo is not a regular file \(a FIFO\)"):
        open_regular(fifo)  # would block in open() until a writer came
    with pytest.raises(SpecialFileError, match=r"\(a folder\)"):
        regular_file(tmp_path)
    with pytest.raises(SpecialFileError, match=r"\(a character device\)"):
        regular_file("/dev/null")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "socket"))
        with pytest.raises(SpecialFileError, match=r"\(a socket\)"):
            regular_file(tmp_path / "socket")
    with pytest.raises(FileNotFoundError):
        regular_file(tmp_path / "missing")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,2\n")
    with open_regular(plain, newline="", encoding="utf-8") as file:
        assert file.read() == "a,b\n1,2\n"
    # A settings key naming an input file (a camera's video PATH) refuses a FIFO when read.
    with pytest.raises(ValueError, match=r"is not a regular file \(a FIFO\); expected a file"):
        existing_file(fifo)
