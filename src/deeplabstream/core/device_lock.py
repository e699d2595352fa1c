"""One lock per device: two rigs on one PC run side by side, one device is never used twice.

docs/cameras.md, "Two rigs on one computer: device locks".
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from filelock import lock_descriptor, unlock_descriptor

from deeplabstream.core.errors import DeviceError

LOCK_ENV = "DEEPLABSTREAM_LOCK_FILE"
WILDCARD = "*"
# A session claiming one device holds its family's gate only while it takes its own lock: a
# gate held longer, without a holder written in it, is a session that is starting.
GATE_WAIT_S = 10.0
GATE_POLL_S = 0.01
# A lock just taken names its holder a moment later; a refusal waits this long for the name.
HOLDER_WAIT_S = 2.0
# Windows locks byte 0 of the file against reading by other processes too, so the holder is
# written after it; byte 0 is a newline.
_HOLDER_OFFSET = 1
_COMMAND_CHARS = 300

SECOND_RIG_ADVICE = (
    "Nothing was started. Stop that session first (or close its window). To run a second rig on "
    "this PC, give it cameras and boards of its own: a settings file of its own (`python app.py "
    "--settings rig2.ini`, `python DeepLabStream.py --settings rig2.ini`) whose cameras (SERIAL, "
    "DEVICE) and devices (PORT, LINES, PINS) name other devices."
)


def lock_folder() -> Path:
    """Return the folder of the lock files: ``$DEEPLABSTREAM_LOCK_FILE.d``, or the user's own."""
    configured = os.environ.get(LOCK_ENV)
    if configured:
        return Path(configured + ".d")
    return Path(tempfile.gettempdir()) / f"deeplabstream-{_user_tag()}-locks"


def _user_tag() -> str:
    """Return the user id (POSIX) or name (Windows has no ``getuid``): one folder per user."""
    getuid = getattr(os, "getuid", None)
    return str(getuid()) if getuid is not None else getpass.getuser()


@dataclass(frozen=True)
class DeviceClaim:
    """One device a session will open: its lock key and who uses it (``camera 'left'``)."""

    key: str
    user: str

    def __post_init__(self) -> None:
        """Check the key's form: ``kind:identity``, both non-empty."""
        family, colon, identity = self.key.partition(":")
        if not (family and colon and identity):
            raise ValueError(
                f"{self.user}: lock key {self.key!r} is not of the form 'kind:identity' "
                "(e.g. 'basler:0815-0000', or 'basler:*' for any device of the kind)"
            )

    @property
    def family(self) -> str:
        """The kind of device (``basler``, ``serial-port``)."""
        return self.key.partition(":")[0]

    @property
    def wildcard(self) -> bool:
        """True when the claim is every device of its kind (``kind:*``)."""
        return self.key.partition(":")[2] == WILDCARD

    def describe(self) -> str:
        """Return ``camera 'left' (basler:0815-0000)``."""
        return f"{self.user} ({self.key})"


@dataclass(frozen=True)
class Holder:
    """The session that holds a lock, as written in its lock file."""

    pid: int
    command: str
    started: str
    settings: str
    user: str

    def describe(self) -> str:
        """Return ``process 4242 (python DeepLabStream.py ...), started ..., settings ...``."""
        settings = f", settings {self.settings}" if self.settings else ""
        return f"process {self.pid} ({self.command}), started {self.started}{settings}"


class DeviceBusyError(DeviceError):
    """A device is held by another session; the message names each device and its holder."""

    def __init__(self, busy: list[tuple[DeviceClaim, Holder | None]]) -> None:
        self.busy = busy
        lines = [f"{claim.describe()} is in use by {_holder_text(h)}." for claim, h in busy]
        super().__init__("\n".join([*lines, SECOND_RIG_ADVICE]))


def _holder_text(holder: Holder | None) -> str:
    if holder is None:
        return "another DeepLabStream that is starting (its process is not known yet)"
    uses = f" (its {holder.user})" if holder.user else ""
    return f"another DeepLabStream{uses}: {holder.describe()}"


class DeviceLocks:
    """The locks of one session's devices; :meth:`acquire` takes all or none.

    Keep the object while the devices are in use; :meth:`release` (or the process's end) frees them.
    """

    def __init__(
        self,
        claims: Iterable[DeviceClaim],
        *,
        settings_file: Path | None = None,
        folder: Path | None = None,
    ) -> None:
        unique: dict[str, DeviceClaim] = {}
        for claim in claims:
            unique.setdefault(claim.key, claim)
        # Wildcards first: a session claiming "kind:*" and "kind:X" holds the gate already
        # when it takes X.
        self.claims = sorted(unique.values(), key=lambda c: (not c.wildcard, c.key))
        self.settings_file = settings_file
        self.folder = folder or lock_folder()
        self._held: dict[str, int] = {}  # key -> open, locked file descriptor
        self._acquired = False

    @property
    def held(self) -> bool:
        """True while this object holds its locks (also when it has none to hold)."""
        return self._acquired

    @property
    def keys(self) -> list[str]:
        """The keys of the claims, in the order they are taken."""
        return [claim.key for claim in self.claims]

    def acquire(self) -> None:
        """Take every claim's lock, or none; DeviceBusyError names every busy device."""
        if self._acquired:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        busy: list[tuple[DeviceClaim, Holder | None]] = []
        for claim in self.claims:
            taken, holder = self._take(claim)
            if taken is None:
                busy.append((claim, holder))
            else:
                self._held[claim.key] = taken
        if busy:
            self.release()
            raise DeviceBusyError(busy)
        self._acquired = True

    def release(self) -> None:
        """Give every lock up and empty the files' holder lines (safe when none is held)."""
        for fd in self._held.values():
            _let_go(fd)
        self._held.clear()
        self._acquired = False

    def __enter__(self) -> DeviceLocks:
        """Take the locks (see :meth:`acquire`)."""
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        """Give the locks up."""
        self.release()

    # -- taking one claim ------------------------------------------------------------------

    def _take(self, claim: DeviceClaim) -> tuple[int | None, Holder | None]:
        """Lock ``claim``; return the locked descriptor, or None and who holds the device."""
        gate_path = self.folder / f"{_safe(claim.family)}.lock"
        own_gate = self._held.get(f"{claim.family}:{WILDCARD}")
        if claim.wildcard:
            gate, holder = _take_gate(gate_path)
            if gate is None:
                return None, holder
            _write_holder(gate, claim, self.settings_file)
            holder = self._held_member(claim.family)
            if holder is not None:
                _let_go(gate)
                return None, holder
            return gate, None
        gate = None
        if own_gate is None:
            gate, holder = _take_gate(gate_path)
            if gate is None:
                return None, holder
        try:
            fd = _open(self.folder / _member_name(claim))
            if not lock_descriptor(fd, blocking=False):
                os.close(fd)
                return None, _live_holder(self.folder / _member_name(claim))
            _write_holder(fd, claim, self.settings_file)
            return fd, None
        finally:
            if gate is not None:
                _let_go(gate, clear=False)

    def _held_member(self, family: str) -> Holder | None:
        """Return the holder of a lock of ``family`` held by another session, if one is."""
        for path in sorted(self.folder.glob(f"{_safe(family)}@*.lock")):
            fd = _open(path)
            try:
                if not lock_descriptor(fd, blocking=False):
                    return _live_holder(path) or Holder(0, "unknown", "unknown", "", "")
                unlock_descriptor(fd)
            finally:
                os.close(fd)
        return None


def _take_gate(path: Path) -> tuple[int | None, Holder | None]:
    """Lock a family's gate; wait while a session takes one device, not while one holds all."""
    fd = _open(path)
    deadline = time.monotonic() + GATE_WAIT_S
    while not lock_descriptor(fd, blocking=False):
        holder = _read_holder(path)
        if (holder is not None and psutil.pid_exists(holder.pid)) or time.monotonic() > deadline:
            os.close(fd)
            return None, holder
        time.sleep(GATE_POLL_S)
    _clear(fd)  # a crashed wildcard session's lines
    return fd, None


def _live_holder(path: Path) -> Holder | None:
    """Return the living holder of a held lock; it writes its lines just after it takes it."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        holder = _read_holder(path)
        if (holder is not None and psutil.pid_exists(holder.pid)) or time.monotonic() > deadline:
            return holder
        time.sleep(GATE_POLL_S)


def _member_name(claim: DeviceClaim) -> str:
    """Return the lock file's name: readable, and unique by a hash of the whole key."""
    identity = claim.key.partition(":")[2]
    digest = hashlib.sha1(claim.key.encode()).hexdigest()[:10]
    return f"{_safe(claim.family)}@{_safe(identity)[:60]}-{digest}.lock"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)


def _write_holder(fd: int, claim: DeviceClaim, settings_file: Path | None) -> None:
    """Write who holds the lock just taken: process id, command, start time, settings, user."""
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    record = {
        "pid": os.getpid(),
        "command": command[:_COMMAND_CHARS],
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": str(settings_file) if settings_file else "",
        "user": claim.user,
    }
    _clear(fd)
    os.write(fd, ("\n" + json.dumps(record) + "\n").encode())


def _clear(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)


def _let_go(fd: int, *, clear: bool = True) -> None:
    """Empty the holder lines (when asked), unlock and close."""
    try:
        if clear:
            _clear(fd)
        unlock_descriptor(fd)
    except OSError:
        pass  # closing releases it anyway
    finally:
        os.close(fd)


def _read_holder(path: Path) -> Holder | None:
    """Return the holder written in the lock file, or None when it names none (yet)."""
    try:
        with path.open("rb") as file:
            file.seek(_HOLDER_OFFSET)
            record: dict[str, Any] = json.loads(file.read(4096).decode())
        return Holder(
            int(record["pid"]),
            str(record.get("command", "")),
            str(record.get("started", "")),
            str(record.get("settings", "")),
            str(record.get("user", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
