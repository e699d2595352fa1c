"""Issue 71 (fails 1): a signing key that is no key file never hangs; found before the start.

A key that was a FIFO blocked the read at the close (deaf to Ctrl-C and SIGTERM; session.json
unsigned); one that was a folder or not PEM was found only at the close, so a week of sessions
would all read "differs: not signed". The key is now read without blocking (a FIFO, a folder,
a device refused unread; a read that does not answer given up after a bound) and checked before
the start, where a problem refuses it naming the file and what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.outputs import signature
from deeplabstream.outputs.signature import (
    KEY_VARIABLE,
    SigningError,
    installation_key,
    key_problem,
)
from deeplabstream.settings import load_settings
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFO on this system")
CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"


@pytest.fixture
def key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "signing" / "key.pem"
    path.parent.mkdir()
    monkeypatch.setenv(KEY_VARIABLE, str(path))
    return path


def _read_in_thread(fifo: Path) -> tuple[threading.Thread, dict[str, Any]]:
    """Read the key in a thread, so that a read blocked on the FIFO fails the test, not hangs it."""
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            outcome["key"] = installation_key(create=False)
        except BaseException as error:
            outcome["error"] = error

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # blocked in open(): a writer's open lets it go, then fail
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(descriptor)
    return reader, outcome


@needs_fifo
def test_a_signing_key_that_is_a_fifo_is_refused_at_once_unread(key_path: Path) -> None:
    os.mkfifo(key_path)
    reader, outcome = _read_in_thread(key_path)
    assert not reader.is_alive() or "error" in outcome, "the key's read blocked on the FIFO"
    error = outcome["error"]
    assert isinstance(error, SigningError)
    assert str(key_path) in str(error) and "a FIFO, not a file" in str(error)
    assert KEY_VARIABLE in str(error)  # what to do


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda path: path.mkdir(), "is a folder, not a file"),
        (lambda path: path.write_text("not a key\n"), "is not a PEM private key"),
        (lambda path: path.write_bytes(b"-" * (200 * 1024)), "larger than 64 KiB"),
    ],
    ids=["folder", "not-pem", "too-large"],
)
def test_a_signing_key_that_is_no_key_is_named_with_what_to_do(key_path: Path, make, said) -> None:
    make(key_path)
    if not key_path.is_dir():  # not a key half written by another process this moment
        os.utime(key_path, (1e9, 1e9))
    problem = key_problem()
    assert problem is not None
    assert str(key_path) in problem and said in problem, problem
    assert "move it away" in problem and KEY_VARIABLE in problem


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_signing_key_is_named(key_path: Path) -> None:
    key_path.write_text("x")
    key_path.chmod(0)
    problem = key_problem()
    assert problem is not None and str(key_path) in problem and "cannot be read" in problem


def test_a_key_read_that_never_answers_is_given_up_simulated(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated: a network share that stops answering cannot be made here; its read is an
    # open that never returns (held until the test ends).
    key_path.write_text("x")
    release = threading.Event()

    def hanging_open(path: Path, mode: str = "r") -> Any:
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(signature, "open_regular", hanging_open)
    monkeypatch.setattr(signature, "KEY_READ_TIMEOUT_S", 0.2)
    try:
        problem = key_problem()
    finally:
        release.set()
    assert problem is not None and "did not answer within" in problem and str(key_path) in problem


def test_a_missing_cryptography_package_is_named_simulated_by_a_blocked_import(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated: the package is installed here. A GPU machine's image without it (2026-11-28)
    # gave a traceback at the start; Python refuses an import whose sys.modules entry is None.
    for name in [name for name in sys.modules if name.split(".")[0] == "cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    problem = key_problem()
    assert problem is not None and "cryptography package" in problem, problem
    assert "pip install -r requirements.txt" in problem


@needs_fifo
def test_the_start_checks_refuse_a_fifo_key_naming_it(tmp_path: Path, key_path: Path) -> None:
    os.mkfifo(key_path)
    settings = load_settings(write_settings(tmp_path, CAMERA))
    problems = check_before_start(settings, pose=False, experiment=False)
    assert any(str(key_path) in problem and "a FIFO" in problem for problem in problems), problems


@needs_fifo
def test_a_session_with_a_fifo_key_is_refused_before_any_camera_opens(
    tmp_path: Path, key_path: Path
) -> None:
    os.mkfifo(key_path)
    settings = write_settings(tmp_path, CAMERA)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--frames", "30"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, KEY_VARIABLE: str(key_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "cannot start; nothing was started" in result.stderr
    assert f"{key_path}: the signing key is a FIFO" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
