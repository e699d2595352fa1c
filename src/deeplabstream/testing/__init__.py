"""Test one plugin alone, as the session would use it: a harness a lab imports in its own tests.

Each function takes the plugin the way a settings file names it (its name, found in the lab's
folder beside ``settings_folder`` or among the installed ones) or its class, with the keys of
its section as the settings file writes them (``{"FRAMERATE": "15"}``, parsed and checked as
they are before a start), runs it the way its process does, checks the rules of its interface
(docs/plugins.md) and returns what it did, for the lab's own asserts. A broken rule raises
:class:`PluginCheckError` (an ``AssertionError``: a test failure) naming the plugin and the rule.

- :func:`run_camera`: open it, grab frames into a frame buffer, close it (twice);
- :func:`run_device`: open it, send commands through ``send`` as the experiment's dispatcher
  does, wait for their acknowledgements, close it (twice);
- :func:`run_output`: open its live half for one camera, give its sink analysed frames (and
  frames passed over), close it, run its export;
- :func:`run_backend`: run a model's network on it beside the built-in ONNX Runtime backend;
- :func:`check_model_format`: load a model through the format that recognises it and
  estimate keypoints of frames with it;
- :func:`run_experiment`: the experiment's own runtime fed observations, one update each, then
  stopped; :func:`run_trigger`: a trigger's state after each observation.

``docs/plugins.md`` ("Testing a plugin alone") shows each; its examples run as tests.
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
