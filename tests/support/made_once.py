"""Things many tests read, made once per test run and shared by all of its pytest-xdist workers.

A recorded reference session, an exported model graph: costly to make, and read unchanged by
many tests. ``made_once`` makes one in a folder every worker of the run sees, under a lock
file (``O_CREAT | O_EXCL``: the same on Windows, macOS and Linux), and hands later callers the
same folder. A test that changes what it reads copies it first (``copied_for_the_test``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

# A maker runs beside other workers on two cores; a wait is never a bound on speed.
WAIT_LIMIT_S = 1800.0
POLL_S = 0.2


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this test run shares (the workers' base folders' parent)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "made-once"
    folder.mkdir(exist_ok=True)
    return folder


def made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """The folder ``make`` filled for ``name``, made by the first worker that asked this run.

    ``make`` gets an empty folder and fills it; it is renamed into place only when ``make``
    returned, so no one reads half of it. A maker that failed leaves its error for the others,
    who fail with it rather than wait; a maker whose process died is replaced.
    """
    root = run_folder(tmp_path_factory)
    done = root / name
    lock = root / f"{name}.lock"
    failed = root / f"{name}.failed"
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not done.exists():
        if failed.exists():
            pytest.fail(f"making {name} failed in another worker: {failed.read_text()}")
        if _take(lock):
            try:
                # Another maker may have renamed its folder into place and let the lock go
                # between this loop's look and the take: then it is made.
                if not done.exists():
                    _make_into(done, make)
            except BaseException as error:
                failed.write_text(f"{type(error).__name__}: {error}", encoding="utf-8")
                raise
            finally:
                lock.unlink(missing_ok=True)
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{name} was not made within {WAIT_LIMIT_S:.0f} s by another worker")
        time.sleep(POLL_S)
    return done


def copied_for_the_test(made: Path, tmp_path: Path) -> Path:
    """A copy of a made folder the test may change (tamper with, append to, delete from)."""
    copy = tmp_path / made.name
    shutil.copytree(made, copy, symlinks=True)
    return copy


def _take(lock: Path) -> bool:
    """Whether this process now holds ``lock`` (taken from a maker that died, too)."""
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            holder = int(lock.read_text() or "0")
        except (OSError, ValueError):
            return False  # being written or removed this instant: look again
        if holder and not psutil.pid_exists(holder):
            lock.unlink(missing_ok=True)  # its maker died: the next look takes it
        return False
    with os.fdopen(handle, "w") as file:
        file.write(str(os.getpid()))
    return True


def _make_into(done: Path, make: Callable[[Path], None]) -> None:
    part = done.with_name(done.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    make(part)
    part.rename(done)
