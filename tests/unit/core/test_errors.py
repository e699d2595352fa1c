"""One exception base: every error of the project is a DeepLabStreamError of the right kind."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from deeplabstream.core import errors
from deeplabstream.core.errors import (
    CalibrationError,
    CameraError,
    DeepLabStreamError,
    DeviceError,
    ExperimentError,
    LabelsError,
    ModelError,
    OutputError,
    SettingsError,
    raised_as,
)

SOURCE = Path(errors.__file__).resolve().parents[1]


# A line that could open a top-level class named ...Error; the files without one hold none, and
# only the others are parsed (parsing every file cost each collecting process seconds).
_ERROR_CLASS_LINE = re.compile(r"^class\s+\w*Error\b", re.MULTILINE)


def _project_error_classes() -> list[tuple[str, str]]:
    """Return (module, class) of every public class named ``...Error`` defined under src/."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = ".".join(("deeplabstream", *path.relative_to(SOURCE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        text = path.read_text(encoding="utf-8")
        if not _ERROR_CLASS_LINE.search(text):
            continue
        for node in ast.parse(text).body:
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            if node.name.endswith("Error"):
                found.append((module, node.name))
    return found


ERROR_CLASSES = _project_error_classes()


def test_the_scan_finds_the_projects_errors() -> None:
    names = {name for _, name in ERROR_CLASSES}
    assert {"StimulationError", "ConfigEditError", "NwbError", "ReplayError"} <= names


@pytest.mark.parametrize(("module", "name"), ERROR_CLASSES, ids=[n for _, n in ERROR_CLASSES])
def test_every_project_error_is_a_deeplabstream_error(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, DeepLabStreamError), f"{module}.{name} has no DeepLabStreamError base"


@pytest.mark.parametrize(
    ("module", "name", "kind"),
    [
        ("deeplabstream.experiments.config.parse", "ExperimentConfigError", SettingsError),
        ("deeplabstream.experiments.config.edit", "ConfigEditError", SettingsError),
        ("deeplabstream.live.selftest.latency_run", "LatencyTestError", SettingsError),
        ("deeplabstream.behaviour.classifier", "ClassifierError", ModelError),
        ("deeplabstream.behaviour.features", "FeatureSpecError", ModelError),
        ("deeplabstream.hardware.cameras.base", "CameraError", CameraError),
        ("deeplabstream.hardware.stimulation.base", "DeviceLostError", DeviceError),
        ("deeplabstream.hardware.stimulation.simulated_board", "SimulatedBoardError", DeviceError),
        ("deeplabstream.core.device_lock", "DeviceBusyError", DeviceError),
        ("deeplabstream.outputs.nwb", "NwbError", OutputError),
        ("deeplabstream.outputs.slp", "SlpError", OutputError),
        ("deeplabstream.outputs.lsl", "LslError", OutputError),
        ("deeplabstream.live.session.video_recordings", "RecordingError", OutputError),
        ("deeplabstream.core.pinhole", "CalibrationError", CalibrationError),
        ("deeplabstream.experiments.observation", "MissingKeypointError", ExperimentError),
        (
            "deeplabstream.live.processes.analysis.experiment_slot",
            "ExperimentStartError",
            ExperimentError,
        ),
    ],
)
def test_each_error_is_of_its_kind(module: str, name: str, kind: type[Exception]) -> None:
    assert issubclass(getattr(importlib.import_module(module), name), kind)


def test_the_two_labels_errors_are_one() -> None:
    behaviour = importlib.import_module("deeplabstream.behaviour.labels")
    pose = importlib.import_module("deeplabstream.offline.labels")
    assert behaviour.LabelsError is pose.LabelsError is LabelsError


@pytest.mark.parametrize(
    ("kind", "builtin"),
    [
        (SettingsError, ValueError),
        (ModelError, ValueError),
        (CalibrationError, ValueError),
        (LabelsError, ValueError),
        (CameraError, RuntimeError),
        (DeviceError, RuntimeError),
    ],
)
def test_a_kind_stays_the_builtin_it_was(kind: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(kind, builtin)  # code catching the built-in keeps working


def test_settings_errors_list_their_problems_and_an_edit_says_its_own_sentence() -> None:
    assert str(SettingsError(["a: one", "b: two"])) == "Invalid settings:\n  - a: one\n  - b: two"
    assert str(SettingsError("a: one")) == "Invalid setting:\n  - a: one"
    edit_error = importlib.import_module("deeplabstream.experiments.config.edit").ConfigEditError
    assert str(edit_error("no [Trigger x] section in the config")) == (
        "no [Trigger x] section in the config"
    )


def test_raised_as_gives_a_kind_with_the_same_message_and_the_cause() -> None:
    with pytest.raises(ModelError) as raised, raised_as(ModelError, OSError, ValueError):
        raise FileNotFoundError(2, "No such file or directory", "model.json")
    assert str(raised.value) == "[Errno 2] No such file or directory: 'model.json'"
    assert isinstance(raised.value.__cause__, FileNotFoundError)


def test_raised_as_lets_project_errors_and_other_errors_through() -> None:
    with pytest.raises(SettingsError), raised_as(ModelError, ValueError):
        raise SettingsError("[Pose] MODEL_PATH: empty")  # a ValueError, and a kind of its own
    with pytest.raises(KeyError), raised_as(ModelError, ValueError):
        raise KeyError("not named")
