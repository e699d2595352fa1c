"""Which plugins a session's settings name, and where each comes from, for ``session.json``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import PluginError, Registry
from deeplabstream.settings.outputs import chosen_outputs
from deeplabstream.settings.plugin_kinds import PLUGIN_KINDS
from deeplabstream.settings.sections import Settings


def origin_of(registry: Registry[Any], name: str, settings_folder: Path | None) -> str:
    """Return where ``registry``'s plugin ``name`` comes from, or why that is unknown."""
    try:
        return registry.origin(name, settings_folder)
    except PluginError as error:
        return f"unknown: {error}"


def plugins_named(
    settings: Settings, pose: bool = True, model_formats: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Return ``{kind: {name: origin}}`` of the plugins the settings choose.

    With ``pose``, the backend and ``model_formats`` (as the worker reported them).
    """
    chosen: dict[str, list[str]] = {
        "camera": [camera.source for camera in settings.cameras],
        "device": [device.type for device in settings.devices.values()],
        "output": [output.name for output in chosen_outputs(settings)],
    }
    if pose:
        chosen["backend"] = [settings.pose.backend]
    folder = settings.source_file.parent
    named = {
        kind: {name: origin_of(PLUGIN_KINDS[kind], name, folder) for name in names}
        for kind, names in chosen.items()
    }
    if pose:
        named["model format"] = dict(model_formats or {})
    return {kind: names for kind, names in named.items() if names}
