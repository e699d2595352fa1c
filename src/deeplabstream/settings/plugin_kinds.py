"""The seven plugin kinds in one place: each kind's registry, by the word ``session.json`` uses.

Design: docs/architecture.md, "settings.plugin_kinds".
"""

from __future__ import annotations

from typing import Any

from deeplabstream.core.plugins import Registry
from deeplabstream.experiments.registry import EXPERIMENTS
from deeplabstream.experiments.triggers.kinds import TRIGGERS
from deeplabstream.hardware.cameras import CAMERAS
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.outputs.interface import OUTPUTS
from deeplabstream.pose.model_format import MODEL_FORMATS
from deeplabstream.pose.runtime.backends import BACKENDS

PLUGIN_KINDS: dict[str, Registry[Any]] = {
    "camera": CAMERAS,
    "device": DEVICES,
    "backend": BACKENDS,
    "model format": MODEL_FORMATS,
    "output": OUTPUTS,
    "experiment": EXPERIMENTS,
    "trigger": TRIGGERS,
}
"""Every plugin kind's registry, by its word in ``session.json`` -> ``plugins``."""
