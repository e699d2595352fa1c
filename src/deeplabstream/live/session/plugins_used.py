"""Which plugins a session's settings name, and where each comes from, for ``session.json``.

``session.json`` -> ``plugins`` says, by kind, each plugin the settings chose and its origin:
``built in``, ``distribution NAME VERSION`` (an installed package's entry point) or
``lab folder: FILE`` (a module of the lab's folder beside the settings file). The experiment and
its trigger kinds are in each experiment run's own ``plugins`` (an experiment may start later).
A name that cannot be placed (a plugin gone since the check) is recorded with why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.core.plugins import PluginError, Registry
from deeplabstream.hardware.cameras import CAMERAS
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.outputs.plugin import OUTPUTS
from deeplabstream.pose.loading import BUNDLED_MODEL
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.model_format import MODEL_FORMATS, format_of
from deeplabstream.pose.runtime.backends import BACKENDS
from deeplabstream.settings.effective import resolve_cameras
from deeplabstream.settings.outputs import chosen_outputs
from deeplabstream.settings.sections import Settings


def origin_of(registry: Registry[Any], name: str, settings_folder: Path | None) -> str:
    """Return where ``registry``'s plugin ``name`` comes from, or why that is unknown."""
    try:
        return registry.origin(name, settings_folder)
    except PluginError as error:
        return f"unknown: {error}"


def plugins_named(settings: Settings, pose: bool = True) -> dict[str, dict[str, str]]:
    """Return ``{kind: {name: origin}}`` of the plugins the settings choose.

    The cameras, devices and outputs; with ``pose``, the backend and the model format too.
    """
    folder = settings.source_file.parent
    named: dict[str, dict[str, str]] = {
        "camera": {c.source: origin_of(CAMERAS, c.source, folder) for c in settings.cameras},
        "device": {
            d.type: origin_of(DEVICES, d.type, folder) for d in settings.devices.values()
        },
        "output": {o.name: origin_of(OUTPUTS, o.name, folder) for o in chosen_outputs(settings)},
    }
    if pose:
        backend = settings.pose.backend
        named["backend"] = {backend: origin_of(BACKENDS, backend, folder)}
        # Every camera's model (its own MODEL_PATH, else [Pose]'s; None: the bundled one).
        formats: dict[str, str] = {}
        for model in resolve_cameras(settings).models:
            formats.update(_model_format(model if model is not None else BUNDLED_MODEL, folder))
        named["model format"] = formats
    return {kind: names for kind, names in named.items() if names}


def _model_format(model_path: Path, settings_folder: Path) -> dict[str, str]:
    """Return ``{registered name: origin}`` of the format that reads ``model_path`` (or none)."""
    try:
        found = format_of(Path(model_path))
    except (OSError, ModelError):
        return {}
    if found is None:
        return {}
    for name, cls in MODEL_FORMATS.load_all(settings_folder)[0].items():
        if type(found) is cls:
            return {name: origin_of(MODEL_FORMATS, name, settings_folder)}
    return {found.name: "unknown"}
