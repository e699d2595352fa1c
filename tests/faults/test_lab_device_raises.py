"""Issue 71 (fails 3): a lab device whose ``open()`` raises is named, with its exception.

Before: the pose worker ended with a raw traceback, and the only error, in the console and
``session.json``, was "the pose worker ended before its model was ready (exit code 1)"; the
device was never named. A ``check_present`` that raised did the same before the start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.live.processes.analysis.experiment_slot import (
    ExperimentStartError,
    open_experiment_run,
)
from deeplabstream.live.session.preflight import absent_device_problems
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import resolve_cameras
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

BAD_DEVICE = '''
from deeplabstream.hardware.stimulation.base import StimulationDevice


class BadOpen(StimulationDevice):
    """A lab device whose open() raises what no device error is."""

    def {raising}(self):
        raise RuntimeError("relay box firmware 0.3 is not supported")

    def open(self):
        pass

    def close(self):
        pass

    @property
    def channel_count(self):
        return 4

    def perform(self, action):
        pass
'''

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
    "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = badopen\n"
)
SAID = "its {call}() raised RuntimeError: relay box firmware 0.3 is not supported"


def _lab(tmp_path: Path, raising: str) -> Path:
    lab = tmp_path / "lab"
    (lab / "devices").mkdir(parents=True)
    code = BAD_DEVICE.format(raising=raising)
    if raising == "open":  # the raising open() replaces the quiet one
        code = code.replace("    def open(self):\n        pass\n\n", "", 1)
    (lab / "devices" / "badopen.py").write_text(code, encoding="utf-8")
    return write_settings(lab, SETTINGS)


def _heading(settings: Path) -> str:
    return f"[Device stimulus_box] (TYPE = badopen, {settings.parent / 'devices' / 'badopen.py'})"


def test_a_lab_device_whose_open_raises_is_named_with_its_exception(tmp_path: Path) -> None:
    settings_file = _lab(tmp_path, "open")
    settings = load_settings(settings_file)
    with pytest.raises(ExperimentStartError) as raised:
        open_experiment_run(
            "ExampleExperiment", settings.devices, tmp_path, settings_folder=settings_file.parent
        )
    assert str(raised.value) == f"{_heading(settings_file)}: {SAID.format(call='open')}"


def test_a_lab_device_whose_check_present_raises_is_refused_naming_it(tmp_path: Path) -> None:
    settings_file = _lab(tmp_path, "check_present")
    plan = resolve_cameras(load_settings(settings_file), experiment="ExampleExperiment")
    problems = absent_device_problems(plan)
    assert problems == [f"{_heading(settings_file)}: {SAID.format(call='check_present')}"]


@pytest.mark.slow  # a whole session
def test_a_session_whose_lab_device_open_raises_names_it_in_the_console_and_record(
    tmp_path: Path,
) -> None:
    settings = _lab(tmp_path, "open")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--experiment-enabled",
         "--frames", "30"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    said = f"{_heading(settings)}: {SAID.format(call='open')}"
    assert f"Error: {said}" in output, output[-3000:]
    assert "Traceback" not in output and "before its model was ready" not in output, output
    assert result.returncode == 1, output[-3000:]
    (record,) = (tmp_path / "out").glob("*/session.json")
    assert json.loads(record.read_text())["errors"] == [said]
