"""Running the project's commands as a user would, and what they leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None, script: str = "DeepLabStream.py"
) -> subprocess.CompletedProcess:
    """Run a project command in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def shared_memory_of(pid: int) -> list[str]:
    """Shared-memory blocks made by the process ``pid`` that still exist."""
    shm = Path("/dev/shm")
    return sorted(p.name for p in shm.glob(f"dls{pid}_*")) if shm.is_dir() else []


def only_session(output: Path) -> Path:
    """The one session folder in ``output``."""
    sessions = [p for p in output.iterdir() if p.is_dir()]
    assert len(sessions) == 1, sessions
    return sessions[0]
