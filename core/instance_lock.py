"""One streaming DeepLabStream per user and machine, so two instances never fight for cameras.

The lock is an advisory ``flock`` on a small file that names the holder's process id. The kernel
drops it when the holder exits, even after a crash or ``kill -9``, so a stale lock cannot block the
next session. ``DEEPLABSTREAM_LOCK_FILE`` moves the file (tests, or several independent rigs on one
machine that use different cameras).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

LOCK_ENV = "DEEPLABSTREAM_LOCK_FILE"


class InstanceLockError(RuntimeError):
    """Another DeepLabStream is streaming; the message names it and says what to do."""


def lock_path() -> Path:
    """Where the lock file lives."""
    configured = os.environ.get(LOCK_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"deeplabstream-{os.getuid()}.lock"


class InstanceLock:
    """Held while this process streams cameras; :meth:`acquire` fails fast if another holds it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_path()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`InstanceLockError` naming the process that holds it."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InstanceLockError(
                f"another DeepLabStream (process {holder}) is streaming and holds the cameras "
                f"({self.path}). Stop it first, or close its window."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (safe to call when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        text = ""
    return text or "unknown"
