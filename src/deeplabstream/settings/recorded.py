"""The settings a session ran with, read back from its ``session.json``.

Design: docs/architecture.md, "settings.recorded".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.schema import path_list_keys
from deeplabstream.settings.loader import (
    CAMERA_PREFIX,
    DEVICE_PREFIX,
    SECTION_CLASSES,
    parse_settings_text,
)
from deeplabstream.settings.outputs import OUTPUT_PREFIX
from deeplabstream.settings.sections import CameraCommonSettings, Settings

# Keys whose several paths are written "a; b" (a comma may stand in a folder's name): MODEL_PATH.
_PATH_LIST_KEYS = frozenset().union(
    *(path_list_keys(cls) for cls in (*SECTION_CLASSES.values(), CameraCommonSettings))
)


def settings_from_record(recorded: dict[str, Any], place: Path) -> Settings:
    """Return the :class:`Settings` of ``session.json``'s ``settings``; ``place`` names it."""
    return parse_settings_text(settings_text(recorded), place)


def settings_text(recorded: dict[str, Any]) -> str:
    """Return ``session.json``'s ``settings`` as settings text (``[Output] DIRECTORY`` absolute)."""
    recorded = _with_absolute_output(recorded)
    blocks = [_section(name, recorded[name]) for name in SECTION_CLASSES if name in recorded]
    blocks += [
        _section(f"{CAMERA_PREFIX}{name}", keys)
        for name, keys in (recorded.get("cameras") or {}).items()
    ]
    blocks += [
        _section(f"{DEVICE_PREFIX}{name}", keys)
        for name, keys in (recorded.get("devices") or {}).items()
    ]
    blocks += [
        _section(f"{OUTPUT_PREFIX}{name}", keys)
        for name, keys in (recorded.get("outputs") or {}).items()
    ]
    return "\n".join(blocks)


def _with_absolute_output(recorded: dict[str, Any]) -> dict[str, Any]:
    output = dict(recorded.get("Output") or {})
    directory, file = output.get("DIRECTORY"), recorded.get("file")
    if directory and file and not Path(directory).expanduser().is_absolute():
        output["DIRECTORY"] = str(Path(file).parent / directory)
        return {**recorded, "Output": output}
    return recorded


def _section(name: str, keys: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in keys.items():
        if key.upper() in _PATH_LIST_KEYS and isinstance(value, list):
            text = "; ".join(str(path) for path in value) or None
        else:
            text = _value_text(value)
        if text is not None:
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _value_text(value: Any) -> str | None:
    """Return a recorded value as a settings file writes it; None for a key left at default."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        # The one nested value, the simulated arena's WAYPOINTS: "FRAME: X Y; FRAME: X Y".
        rows = [[_value_text(part) or "" for part in row] for row in value]
        return "; ".join(f"{row[0]}: {' '.join(row[1:])}" for row in rows if row)
    if isinstance(value, list):
        items = [_value_text(item) for item in value]
        return ", ".join(item for item in items if item is not None)
    if isinstance(value, float):
        return repr(value)
    return str(value)
