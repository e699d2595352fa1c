"""The seven plugin kinds in one place: each kind's registry, by the word ``session.json`` uses.

Every kind is one :class:`~deeplabstream.core.plugins.Registry` (lookup by name, listing, the
lab's folder, entry points, the unknown-name message), made where the kind's interface is; this
index names them all, for whoever handles every kind alike (``session.json``'s ``plugins``, the
generated reference, the window's lists). It sits in the lowest layer that may import every
kind (``experiments`` is the highest of them); ``core`` cannot.

- ``camera``: ``hardware.cameras.CAMERAS``, named by ``SOURCE``, the lab's ``cameras/``;
- ``device``: ``hardware.stimulation.DEVICES``, ``TYPE``, ``devices/``;
- ``backend``: ``pose.runtime.backends.BACKENDS``, ``[Pose] BACKEND``, ``backends/``;
- ``model format``: ``pose.model_format.MODEL_FORMATS``, found from the model's files,
  ``formats/``;
- ``output``: ``outputs.interface.OUTPUTS``, ``[Output NAME]``, ``outputs/``;
- ``experiment``: ``experiments.registry.EXPERIMENTS``, ``[Experiment] NAME`` or
  ``--experiment``, ``experiments/`` (modules and ``.ini`` configs);
- ``trigger``: ``experiments.triggers.kinds.TRIGGERS``, a config's ``KIND``, ``triggers/``.
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
