"""One streaming DeepLabStream per user and machine, so two instances never fight for cameras.

The lock is an operating-system file lock (``filelock``: ``flock`` on Linux and macOS,
``LockFileEx`` on Windows) on a small file that names the holder's process id. The system drops
it when the holder exits, even after a crash or ``kill -9``, so a stale lock cannot block the
next session. ``DEEPLABSTREAM_LOCK_FILE`` moves the file (tests, or several independent rigs on one
machine that use different cameras).
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_ENV = "DEEPLABSTREAM_LOCK_FILE"
# Windows locks byte 0 of the file against reading by other processes too, so the holder's process
# id is written after it; byte 0 is a newline.
_HOLDER_OFFSET = 1


class InstanceLockError(RuntimeError):
    """Another DeepLabStream is streaming; the message names it and says what to do."""


def lock_path() -> Path:
    """Return where the lock file lives."""
    configured = os.environ.get(LOCK_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"deeplabstream-{_user_tag()}.lock"


def _user_tag() -> str:
    """Return the user id (POSIX) or name (Windows has no ``getuid``): one lock per user."""
    getuid = getattr(os, "getuid", None)
    return str(getuid()) if getuid is not None else getpass.getuser()


class InstanceLock:
    """Held while this process streams cameras; :meth:`acquire` fails fast if another holds it.

    Keep the object while streaming: the lock is given up when it is released or collected.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_path()
        # thread_local=False: the GUI may take the lock in one thread and give it up in another.
        self._lock = FileLock(self.path, thread_local=False, on_acquired=_write_holder)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock or raise :class:`InstanceLockError` naming the process that holds it."""
        if self.held:
            return
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise InstanceLockError(
                f"another DeepLabStream (process {_read_holder(self.path)}) is streaming and "
                f"holds the cameras ({self.path}). Stop it first, or close its window."
            ) from None

    def release(self) -> None:
        """Give the lock up (safe to call when not held)."""
        if self.held:
            self._lock.release(force=True)

    def __enter__(self) -> InstanceLock:
        """Take the lock (see :meth:`acquire`)."""
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        """Give the lock up."""
        self.release()


def _write_holder(fd: int) -> None:
    """Write this process's id into the lock file, just taken (filelock's ``on_acquired``)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"\n{os.getpid()}\n".encode())


def _read_holder(path: Path) -> str:
    """Return the holder's process id as written in the lock file, or ``unknown``."""
    try:
        with path.open("rb") as file:
            file.seek(_HOLDER_OFFSET)
            text = file.read(32).decode().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return text or "unknown"
