"""Issue 71 (partly): a session folder made unwritable while the session runs.

Before: the errors were named live, then the stop ended in an uncaught ``PermissionError`` from
``release_reserve`` and no summary was printed. Now the reserve stays (said in the log), the
stop goes on and the summary is printed, saying that session.json could not be written.

The folder is made unwritable for real: ``chmod a-w`` for a normal user; for root (whom
permissions do not stop) the folder is made immutable with ``chattr +i``, where the file system
allows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.outputs.folder import RESERVE_FILE, release_reserve, reserve_space
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"


def _lock(folder: Path) -> None:
    """Make ``folder`` unwritable (its files can be neither made nor removed)."""
    if os.name == "nt":
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root, and no chattr to make the folder immutable")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"root, and the folder cannot be made immutable: {made.stderr.strip()}")


def _unlock(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    else:
        folder.chmod(0o755)


@pytest.fixture
def unwritable() -> Iterator[list[Path]]:
    locked: list[Path] = []
    yield locked
    for folder in locked:
        _unlock(folder)


def test_a_reserve_in_a_folder_made_unwritable_is_kept_not_raised(
    tmp_path: Path, unwritable: list[Path]
) -> None:
    reserve_space(tmp_path)
    _lock(tmp_path)
    unwritable.append(tmp_path)
    assert release_reserve(tmp_path) is False
    assert (tmp_path / RESERVE_FILE).exists()


@pytest.mark.slow  # a whole session
def test_a_session_whose_folder_becomes_unwritable_stops_with_its_summary(
    tmp_path: Path, unwritable: list[Path]
) -> None:
    settings = write_settings(tmp_path, CAMERA)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(out), "--recording-enabled", "--pose-enabled",
         "--frames", "240"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:  # until the stream runs: its first status line
        lines.append(line)
        if line.startswith("arena:") and "fps" in line:
            break
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    _lock(folder)
    unwritable.append(folder)
    output = "".join(lines) + process.communicate(timeout=300)[0]
    assert "Traceback" not in output and "PermissionError" not in output, output[-4000:]
    assert f"Session folder: {folder}" in output, output[-4000:]
    assert "error: session.json could not be written at the close" in output, output[-4000:]
    assert process.returncode == 1, output[-4000:]
