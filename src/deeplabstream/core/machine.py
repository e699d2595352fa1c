"""What the machine a session or benchmark ran on is: the figures depend on it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil

#: Linux's description of the CPUs (macOS and Windows have none: :mod:`platform` answers there).
CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    if CPUINFO.is_file():
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    """Return an installed package's version, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """Describe the machine: CPU, cores, memory, OS, host, Python and the key packages."""
    description: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "av": package_version("av"),
    }
    # Other work on the machine disturbs the figures.
    description["load_average_1m_at_start"] = load_average_1m()
    description["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    return description


def load_average_1m() -> float | None:
    """Return the 1-minute load average (psutil; on Windows estimated: 0.0 at the first call)."""
    try:
        return round(float(psutil.getloadavg()[0]), 2)
    except (OSError, AttributeError, RuntimeError):
        return None


def _usable_cores() -> int | None:
    """How many cores this process may use (its affinity where the OS has one)."""
    try:
        return len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error, OSError):  # macOS has no affinity: every core
        return os.cpu_count()


def describe_machine_line(machine: dict[str, Any]) -> str:
    """Describe the machine in one line, for the top of a printed table."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python "
        f"{machine['python']}, numpy {machine['numpy']}, av {machine['av']}"
    )
