"""Is the process that wrote a record still running? Portable and proof against reused pids."""

from __future__ import annotations

import psutil

#: Start times of one process read twice differ by rounding only (psutil reports the boot
#: time plus clock ticks, 10 ms on Linux); two processes of one pid start far more apart.
START_TIME_TOLERANCE_S = 1.0


def process_start_time(pid: int) -> float | None:
    """Return when process ``pid`` started (seconds since the epoch); None when it is gone."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except (psutil.AccessDenied, OSError):
        return None  # exists, but its start is not ours to read: the caller falls back


def is_same_process_running(pid: int, start_time: float | None) -> bool:
    """Return True when the process ``pid`` started at ``start_time`` still runs (not a zombie).

    ``start_time`` None (an older record): True when a Python process of that pid exists.
    """
    if pid <= 0 or not psutil.pid_exists(pid):
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if start_time is None:
            return looks_like_python(process)
        return abs(process.create_time() - start_time) <= START_TIME_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        # Another user's process of that pid: ours would be readable, so it is not ours.
        return False


def looks_like_python(process: psutil.Process) -> bool:
    """Return True when ``process`` is a Python interpreter (its name or first argument)."""
    try:
        name = process.name().lower()
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    first = command[0].lower() if command else ""
    return "python" in name or "python" in first.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
