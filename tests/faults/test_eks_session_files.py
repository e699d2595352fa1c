"""``deeplabstream-eks`` on a session folder whose ensemble files are not what it wrote (issue 63).

A FIFO in place of ``<camera>.pose_exact.csv`` held the command for ever (and Ctrl-C then gave a
traceback); random bytes or a file cut in half gave raw codec or NumPy errors naming no file;
a deleted ``pose_exact.csv`` read "no camera ran an ensemble". Each is now named with the file
(and line), the command ends with exit 1, and a Ctrl-C at any moment says it stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from deeplabstream.offline.eks.command import main as eks_command
from deeplabstream.outputs.pose.files import (
    EnsembleCsvWriter,
    ExactPoseWriter,
    read_ensemble_exact,
)
from tests.support.paths import PROJECT_ROOT

KEYPOINTS = ("nose", "tail")
MODELS = 3


def _ensemble_session(folder: Path, frames: int = 12) -> Path:
    """Write an ensemble camera's files as a session does: pose_exact.csv and ensemble.csv."""
    rng = np.random.default_rng(7)
    exact = ExactPoseWriter(folder / "top.pose_exact.csv", KEYPOINTS, members=MODELS)
    ensemble = EnsembleCsvWriter(folder / "top.ensemble.csv", "ens", KEYPOINTS)
    for index in range(frames):
        members = np.empty((MODELS, len(KEYPOINTS), 3))
        members[..., :2] = 100 + index + rng.normal(0, 1, (MODELS, len(KEYPOINTS), 2))
        members[..., 2] = 0.9
        median = np.median(members[..., :2], axis=0)
        keypoints = np.column_stack([median, members[..., 2].mean(axis=0)])
        exact.write(index, keypoints, members=members)
        ensemble.write(index, keypoints, median, np.var(members[..., :2], axis=0))
    exact.close()
    ensemble.close()
    return folder / "top.pose_exact.csv"


@pytest.mark.skipif(os.name == "nt", reason="FIFOs are POSIX's")
def test_a_fifo_in_place_of_pose_exact_is_named_not_waited_on(tmp_path: Path, capsys) -> None:
    exact = _ensemble_session(tmp_path)
    exact.unlink()
    os.mkfifo(exact)  # opened for reading, it would wait for a writer for ever
    assert eks_command([str(tmp_path)]) == 1
    assert f"{exact} is not a regular file (a FIFO); it was not opened" in capsys.readouterr().err


def test_random_bytes_are_named_with_the_file(tmp_path: Path, capsys) -> None:
    exact = _ensemble_session(tmp_path)
    exact.write_bytes(np.random.default_rng(3).bytes(20000) + b"\xff")
    assert eks_command([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{exact}: not a pose_exact.csv: byte " in err and "is not text (UTF-8)" in err
    assert "codec can't decode" not in err


def test_a_row_of_another_length_is_named_with_its_line(tmp_path: Path, capsys) -> None:
    exact = _ensemble_session(tmp_path)
    lines = exact.read_text().splitlines(keepends=True)
    lines[5] = lines[5].split(",", 4)[0] + ",1,2\n"  # line 6 edited short
    exact.write_text("".join(lines))
    assert eks_command([str(tmp_path)]) == 1
    assert f"{exact}: line 6 has 3 values, the header " in capsys.readouterr().err


def test_a_file_cut_in_half_keeps_its_whole_rows_and_says_where_it_ends(tmp_path: Path) -> None:
    exact = _ensemble_session(tmp_path)
    before = read_ensemble_exact(exact)
    whole = exact.read_bytes()
    exact.write_bytes(whole[: len(whole) // 2])  # a copy that did not finish
    read = read_ensemble_exact(exact)
    assert before is not None and before.cut_line == 0
    assert read is not None and read.cut_line == len(exact.read_text().splitlines())
    kept = read.cut_line - 2  # the rows between the header and the cut line
    assert 0 < kept < len(before.frames) and list(read.frames) == list(range(kept))
    np.testing.assert_array_equal(read.members, before.members[:kept])  # every bit


@pytest.mark.slow  # the smoother itself runs (the package's JAX, seconds)
def test_eks_on_a_file_cut_in_half_smooths_its_whole_rows_and_exits_1(tmp_path: Path, capsys):
    pytest.importorskip("eks", reason="pip install --no-deps -r requirements-ensembles.txt")
    exact = _ensemble_session(tmp_path, frames=40)
    whole = exact.read_bytes()
    exact.write_bytes(whole[: len(whole) // 2])
    assert eks_command([str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"Error: {exact}: it ends inside line " in captured.err
    assert "the whole rows before it were smoothed" in captured.err
    assert (tmp_path / "top.eks.csv").is_file() and "analysed frames smoothed" in captured.out


def test_a_deleted_pose_exact_is_named_not_no_ensemble(tmp_path: Path, capsys) -> None:
    exact = _ensemble_session(tmp_path)
    exact.unlink()  # the ensemble.csv says the camera ran an ensemble
    assert eks_command([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"Error: {exact}: gone. The session wrote it (its camera ran an ensemble)" in err
    assert "no camera ran an ensemble" not in err


@pytest.mark.slow  # a command's imports (pandas), seconds
@pytest.mark.skipif(os.name == "nt", reason="signals to a process group are POSIX's")
def test_ctrl_c_while_eks_runs_says_it_stopped_without_a_traceback(tmp_path: Path) -> None:
    _ensemble_session(tmp_path)
    holds = tmp_path / "holds"
    holds.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", "from deeplabstream.launch import eks; eks()", str(tmp_path)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        env={**os.environ, HOLD_VARIABLE: "command-import", HOLD_DIR_VARIABLE: str(holds)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(holds.glob("command-import.*")):  # its imports done, about to read
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        (holds / RELEASE_FILE).write_text("go\n")
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, (out, err)
    assert "Stopped: Ctrl-C received" in err and "Traceback" not in out + err
    assert not list(tmp_path.glob("*.eks.*"))  # nothing half written
