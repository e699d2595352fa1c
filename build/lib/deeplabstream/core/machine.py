"""What the machine a session or benchmark ran on is: the figures depend on it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
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
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "av": package_version("av"),
    }
    if hasattr(os, "getloadavg"):  # other work on the machine disturbs the figures
        description["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    try:
        import psutil

        description["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    except ImportError:
        pass
    return description


def describe_machine_line(machine: dict[str, Any]) -> str:
    """Describe the machine in one line, for the top of a printed table."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python "
        f"{machine['python']}, numpy {machine['numpy']}, av {machine['av']}"
    )
