"""The emulated platform's rules, applied in each process (see ``sitecustomize.py`` beside it)."""

from __future__ import annotations

import ctypes
import errno
import importlib.abc
import importlib.machinery
import multiprocessing
import os
import select
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

WSAENOTSOCK = 10038
ERROR_INVALID_PARAMETER = 87
SHM_NAME_MAX = 30  # macOS PSHMNAMLEN is 31 with the leading "/"
NO_SHM_FOLDER = "/nonexistent-dev-shm"

_post_import: dict[str, list[Callable[[ModuleType], None]]] = {}


def apply(platform: str) -> None:
    """Apply ``platform``'s rules to this process."""
    _spawn_only(refuse_others=platform == "windows")
    for name in ("sched_setaffinity", "sched_getaffinity", "sched_setscheduler"):
        _remove(os, name)
    _remove(signal, "SIGRTMIN")
    _remove(signal, "SIGRTMAX")
    _no_prctl(libc_loads=platform == "macos")
    _after_import("deeplabstream.transport.ring", _no_shm_folder)
    _after_import("deeplabstream.core.machine", _no_proc_cpuinfo)
    _after_import("deeplabstream.app.gui.stall_monitor", _no_proc_schedstat)
    if platform == "windows":
        _remove(os, "nice")
        _remove(os, "getloadavg")
        _remove(signal, "pthread_sigmask")
        _remove(signal, "SIGHUP")
        _windows_kill()
        _fixed_getppid()
        _terminate_is_a_hard_kill()
        _select_takes_sockets_only()
        _after_import("deeplabstream.transport.channel", _no_posix_pipes)
    if platform == "macos":
        _short_shared_memory_names()
        _after_import("psutil", _no_cpu_affinity)
    sys.meta_path.insert(0, _PostImportFinder())


def _remove(module: ModuleType, name: str) -> None:
    if hasattr(module, name):
        delattr(module, name)


def _spawn_only(refuse_others: bool) -> None:
    multiprocessing.set_start_method("spawn", force=True)
    if not refuse_others:
        return
    original = multiprocessing.get_context

    def get_context(method: str | None = None) -> Any:
        if method not in (None, "spawn"):
            raise ValueError(f"cannot find context for {method!r} (emulated Windows: spawn only)")
        return original(method)

    multiprocessing.get_context = get_context  # type: ignore[assignment]


def _no_prctl(libc_loads: bool) -> None:
    original = ctypes.CDLL

    class CDLL(original):  # type: ignore[misc, valid-type]
        def __init__(self, name: str | None, *args: Any, **kwargs: Any) -> None:
            if not libc_loads and (name is None or "libc" in str(name)):
                raise OSError(errno.ENOENT, f"{name!r}: no C library (emulated Windows)")
            super().__init__(name, *args, **kwargs)

        def __getattr__(self, attribute: str) -> Any:
            if attribute == "prctl":
                raise AttributeError("prctl: Linux only (emulated platform)")
            return super().__getattr__(attribute)

        def __getitem__(self, attribute: Any) -> Any:
            if attribute == "prctl":
                raise AttributeError("prctl: Linux only (emulated platform)")
            return super().__getitem__(attribute)

    ctypes.CDLL = CDLL  # type: ignore[misc]


def _windows_kill() -> None:
    """Our code's ``os.kill``: no probe, every signal a hard kill (libraries keep their own)."""
    original = os.kill

    def kill(pid: int, sig: int) -> None:
        if not _called_from_the_project():
            return original(pid, sig)  # psutil's pid_exists, multiprocessing: their own code
        if sig == 0:
            raise OSError(errno.EINVAL, "The parameter is incorrect (WinError 87: signal 0)")
        return original(pid, signal.SIGKILL)  # TerminateProcess, whatever the signal

    os.kill = kill


def _called_from_the_project(depth: int = 2) -> bool:
    caller = sys._getframe(depth).f_globals.get("__name__", "")
    return bool(caller.startswith("deeplabstream"))


def _fixed_getppid() -> None:
    first = os.getppid()
    os.getppid = lambda: first


def _terminate_is_a_hard_kill() -> None:
    from multiprocessing import popen_fork

    popen_fork.Popen.terminate = popen_fork.Popen.kill  # type: ignore[method-assign]


def _select_takes_sockets_only() -> None:
    original = select.select

    def only_sockets(rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any],
                     timeout: float | None = None) -> Any:  # fmt: skip
        if _called_from_the_project():
            for item in (*rlist, *wlist, *xlist):
                if not _is_socket(item):
                    raise OSError(WSAENOTSOCK, "An operation was attempted on something that is "
                                  "not a socket (WinError 10038)")  # fmt: skip
        return original(rlist, wlist, xlist, timeout)

    select.select = only_sockets


def _is_socket(item: Any) -> bool:
    if isinstance(item, socket.socket):
        return True
    fd = item if isinstance(item, int) else item.fileno()
    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def _short_shared_memory_names() -> None:
    from multiprocessing import shared_memory

    original = shared_memory.SharedMemory.__init__

    def init(self: Any, name: str | None = None, create: bool = False, size: int = 0) -> None:
        if name is not None and len(name.lstrip("/")) > SHM_NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, f"File name too long (emulated macOS): {name!r}")
        original(self, name, create, size)

    shared_memory.SharedMemory.__init__ = init  # type: ignore[method-assign]


def _no_shm_folder(ring: ModuleType) -> None:
    from pathlib import Path

    ring.SHM_FOLDER = Path(NO_SHM_FOLDER)  # type: ignore[attr-defined]


def _no_proc_cpuinfo(machine: ModuleType) -> None:
    from pathlib import Path

    machine.CPUINFO = Path("/nonexistent-proc/cpuinfo")  # type: ignore[attr-defined]


def _no_proc_schedstat(stall_monitor: ModuleType) -> None:
    from pathlib import Path

    stall_monitor.SCHEDSTAT = Path("/nonexistent-proc/schedstat")  # type: ignore[attr-defined]


def _no_posix_pipes(channel: ModuleType) -> None:
    channel.fcntl = None  # type: ignore[attr-defined]


def _no_cpu_affinity(psutil: ModuleType) -> None:
    _remove(psutil.Process, "cpu_affinity")  # type: ignore[attr-defined]


def _after_import(module: str, patch: Callable[[ModuleType], None]) -> None:
    """Run ``patch`` on ``module`` as soon as it is imported (now, if it is already)."""
    if module in sys.modules:
        patch(sys.modules[module])
    else:
        _post_import.setdefault(module, []).append(patch)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of the patched modules to patch after."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _post_import:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, _post_import.pop(fullname))
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patches: list[Callable[[ModuleType], None]]) -> None:
        self._loader = loader
        self._patches = patches

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for patch in self._patches:
            patch(module)
