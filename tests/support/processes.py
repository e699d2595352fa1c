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
    """Run a project command in a fresh interpreter, as a user would.

    A session whose settings do not set ``[Experiment] DEADLINE_MS`` (the checkout's own, a
    shipped example) gets ``--deadline off``: the loop's deadline judges the machine's speed,
    and a test that is not about timing must not fail on a loaded machine (``write_settings``
    does the same for the files a test writes). The deadline's own tests set it themselves.
    """
    if script == "DeepLabStream.py" and not sets_its_deadline(args):
        args = (*args, "--deadline", "off")
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


def sets_its_deadline(args: tuple[str, ...]) -> bool:
    if "--deadline" in args or "--help" in args:
        return True
    if "--settings" not in args:
        return False
    settings = Path(args[args.index("--settings") + 1])
    return settings.is_file() and "DEADLINE_MS" in settings.read_text(encoding="utf-8")
