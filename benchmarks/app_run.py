"""Run ``DeepLabStream.py`` from a benchmark as a user would, whatever its exit code says.

The app exits 1 when its loop missed the session's deadline more often than
``[Experiment] DEADLINE_MISS_TOLERANCE`` allows, or stalled (``session.json`` -> ``health``,
issue 25), as well as when a camera failed. A benchmark that measures a loop at its limits
must not stop there: :func:`run_app` accepts exit codes 0 and 1, and the benchmark keeps the
code and :func:`health_summary` (the verdict and what was wrong) beside its figures. Any other
exit code (2: bad settings, 130: interrupted) or a run without its session folder raises
:class:`AppRunError` with the last lines the app printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.outputs.session_record import SessionRecord, read_session_record

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCEPTED_EXIT_CODES = (0, 1)  # 1: deadline missed, a stall, or a camera error (see health)
TAIL_LINES = 20


class AppRunError(RuntimeError):
    """``DeepLabStream.py`` did not run to a session folder (the message has its last lines)."""


@dataclass(frozen=True)
class AppRun:
    """A finished run of ``DeepLabStream.py``: its exit code, session folder and output."""

    exit_code: int
    session: Path
    output: str

    def tail(self, lines: int = TAIL_LINES) -> str:
        """Return the last ``lines`` lines the app printed."""
        return "\n".join(self.output.splitlines()[-lines:])

    def health(self) -> dict[str, Any]:
        """Return the exit code with :func:`health_summary` of the session."""
        return {"exit_code": self.exit_code, **health_summary(read_session_record(self.session))}


def health_summary(session: SessionRecord | Mapping[str, Any]) -> dict[str, Any]:
    """Return a session's health verdict, its problems, errors and deadline misses per camera.

    ``session`` is the session's record (JSON data is read as one); sessions from before the
    health check give the verdict None.
    """
    if not isinstance(session, SessionRecord):
        session = SessionRecord.from_json(dict(session))
    health = session.health
    cameras = health.cameras
    return {
        "verdict": health.verdict if session.has("health") else None,
        "problems": list(health.problems),
        "errors": list(session.errors),
        "deadline_ms": {name: camera.deadline_ms for name, camera in cameras.items()},
        "deadline_misses": {name: camera.misses for name, camera in cameras.items()},
        "deadline_miss_percent": {name: camera.miss_percent for name, camera in cameras.items()},
    }


def run_app(
    settings: Path,
    arguments: Sequence[str],
    output_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    root: Path = PROJECT_ROOT,
) -> AppRun:
    """Run ``DeepLabStream.py --settings SETTINGS --headless ARGUMENTS`` into ``output_dir``.

    ``output_dir`` must be new or empty: the one session folder made in it is the run's.
    ``root`` is the checkout whose ``DeepLabStream.py`` runs (another one: the code before a
    change, measured beside this one).

    Raises
    ------
    AppRunError
        The exit code is not 0 or 1, or no single session folder was made.
    """
    command = [
        sys.executable,
        str(root / "DeepLabStream.py"),
        "--settings",
        str(settings),
        "--headless",
        *arguments,
        "--output-dir",
        str(output_dir),
        "--log-level",
        "WARNING",
    ]
    completed = subprocess.run(
        command,
        cwd=root,
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(root, env),
    )
    sessions = sorted(p for p in output_dir.iterdir() if p.is_dir()) if output_dir.is_dir() else []
    if completed.returncode not in ACCEPTED_EXIT_CODES or len(sessions) != 1:
        tail = "\n".join(completed.stdout.splitlines()[-TAIL_LINES:])
        raise AppRunError(
            f"DeepLabStream.py exited with code {completed.returncode} and "
            f"{len(sessions)} session folder(s) in {output_dir}; its last lines:\n{tail}"
        )
    return AppRun(completed.returncode, sessions[0], completed.stdout)


def _environment(root: Path, env: Mapping[str, str] | None) -> dict[str, str] | None:
    """The run's environment: another checkout's package first on the path.

    The project is installed editable from this checkout: without ``PYTHONPATH``, an earlier
    checkout's ``DeepLabStream.py`` would import this checkout's package, and "before" would
    measure the code of now.
    """
    if root.resolve() == PROJECT_ROOT.resolve():
        return None if env is None else dict(env)
    base = dict(os.environ if env is None else env)
    paths = [str(root / "src"), *filter(None, [base.get("PYTHONPATH")])]
    return {**base, "PYTHONPATH": os.pathsep.join(paths)}
