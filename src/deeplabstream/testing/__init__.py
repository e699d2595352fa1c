"""Test one plugin alone, as the session would use it: a harness a lab imports in its own tests.

docs/plugins.md, "Testing a plugin alone". A broken rule raises :class:`PluginCheckError` (an
``AssertionError``) naming the plugin and the rule.
"""

from __future__ import annotations

from deeplabstream.testing.cameras import CameraRun, run_camera
from deeplabstream.testing.devices import DeviceRun, run_device
from deeplabstream.testing.experiments import ExperimentRun, run_experiment, run_trigger
from deeplabstream.testing.models import BackendRun, ModelCheck, check_model_format, run_backend
from deeplabstream.testing.outputs import OutputRun, run_output
from deeplabstream.testing.plugin_settings import PluginCheckError, plugin_settings

__all__ = [
    "BackendRun",
    "CameraRun",
    "DeviceRun",
    "ExperimentRun",
    "ModelCheck",
    "OutputRun",
    "PluginCheckError",
    "check_model_format",
    "plugin_settings",
    "run_backend",
    "run_camera",
    "run_device",
    "run_experiment",
    "run_output",
    "run_trigger",
]
