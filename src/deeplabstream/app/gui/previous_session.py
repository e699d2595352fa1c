"""What the window says at its start about the previous session: how it ended, its verdict.

Read from the newest session folder's ``session.json`` and ``verify/summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SESSION_JSON = "session.json"
SUMMARY = Path("verify") / "summary.json"


def newest_session(sessions: Path) -> Path | None:
    """Return the newest session folder of ``sessions`` (named by their start time), if any."""
    try:
        folders = [p for p in sessions.iterdir() if (p / SESSION_JSON).is_file()]
    except OSError:  # no sessions folder yet, or not readable
        return None
    return max(folders, key=lambda p: p.name) if folders else None


def previous_session_line(sessions: Path | None) -> str | None:
    """Say how the newest session of ``sessions`` ended and its verify verdict; None: none."""
    folder = newest_session(sessions) if sessions is not None else None
    if folder is None:
        return None
    record = _json(folder / SESSION_JSON)
    status = record.get("status") or "unknown"
    ended = f"{status}" + (f" ({record['stop_reason']})" if record.get("stop_reason") else "")
    summary = _json(folder / SUMMARY)
    line = summary.get("verdict_line")
    if isinstance(line, str) and line:
        verdict = f"verify: {line}"
    else:
        verdict = "not verified (press Verify, or run deeplabstream-verify on it)"
    return f"Previous session {folder.name}: {ended}; {verdict}. Folder: {folder}"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
