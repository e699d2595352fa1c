"""Issue 71 (fails 2): ``deeplabstream-verify`` ends on every Ctrl-C and SIGTERM, saying so.

Before: a SIGTERM once its replay's video had ended was lost (the verdict "agrees", exit 0); a
SIGTERM while it imported killed it with no word, a Ctrl-C then printed a ``KeyboardInterrupt``
traceback; after a Ctrl-C in the replay it said "nothing was written" and left the replay's
partial pose files and session.json in ``verify/offline/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from tests.support.paths import PROJECT_ROOT
from tests.support.verify_sessions import copy_session, make_session

WAIT_LIMIT_S = 300


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_session(tmp_path_factory.mktemp("verify-stops"), frames=150)


def _start_verify(folder: Path, holds: Path | None = None, moment: str = "") -> subprocess.Popen:
    hold = {HOLD_VARIABLE: moment, HOLD_DIR_VARIABLE: str(holds)} if moment else {}
    return subprocess.Popen(
        [sys.executable, "-m", "deeplabstream.offline.verify", str(folder)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, **hold},
    )  # fmt: skip


def _held(process: subprocess.Popen, holds: Path, moment: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not any(holds.glob(f"{moment}.*")):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"never held at {moment}: {process.poll()}\n{process.communicate()[0]}")
        time.sleep(0.02)


def _output(process: subprocess.Popen) -> str:
    try:
        return process.communicate(timeout=WAIT_LIMIT_S)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


STOPS = [signal.SIGTERM, signal.SIGINT, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


def _said(sig: int) -> str:
    return "Ctrl-C" if sig == signal.SIGINT else signal.Signals(sig).name


@pytest.mark.parametrize("sig", STOPS, ids=_said)
def test_a_stop_while_verify_imports_is_said_without_a_traceback(tmp_path: Path, sig) -> None:
    holds = tmp_path / "holds"
    holds.mkdir()
    process = _start_verify(tmp_path / "no-session", holds, "stop-signals-taken")
    _held(process, holds, "stop-signals-taken")
    os.kill(process.pid, sig)
    (holds / RELEASE_FILE).touch()
    output = _output(process)
    assert process.returncode == 128 + sig, output
    assert f"deeplabstream-verify: stopped ({_said(sig)} received); nothing was written" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


@pytest.mark.slow
def test_sigterm_after_the_replays_video_ended_still_stops_verify(
    session: Path, tmp_path: Path
) -> None:
    folder = copy_session(session, tmp_path)
    holds = tmp_path / "holds"
    holds.mkdir()
    process = _start_verify(folder, holds, "replay-finishing")
    _held(process, holds, "replay-finishing")  # the video replayed, its record not yet written
    os.kill(process.pid, signal.SIGTERM)
    (holds / RELEASE_FILE).touch()
    output = _output(process)
    assert process.returncode == 143, output
    assert "stopped (SIGTERM received during the offline analysis); nothing was written" in output
    assert "verdict:" not in output
    assert not (folder / "verify").exists(), list((folder / "verify").rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", STOPS[1:], ids=_said)  # Ctrl-C, a closed terminal
def test_ctrl_c_in_the_replay_leaves_no_partial_offline_files(
    session: Path, tmp_path: Path, sig: int
) -> None:
    folder = copy_session(session, tmp_path)
    process = _start_verify(folder)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("verify: replaying"):
            break
    os.killpg(process.pid, sig)  # as a terminal sends them: to the whole group
    output = _output(process)
    assert process.returncode == 128 + sig, output
    said = f"stopped ({_said(sig)} received during the offline analysis); nothing was written"
    assert said in output
    assert "Traceback" not in output, output
    assert not (folder / "verify").exists(), list((folder / "verify").rglob("*"))
