"""A lab's plugins written for an earlier release, exactly as that release's docs showed them, run.

Each of the seven kinds of docs/plugins.md as release 0.6.0 showed them
(tests/fixtures/released_plugins: the page byte for byte; release 0.7.0's code blocks are the
same), written into a lab folder as a reader of that release copied it, loaded by name from
that folder and run by the plugin harness (deeplabstream.testing) as its process runs it.
Release 0.8.0 removed the forms deprecated until it (``deeplabstream.outputs.plugin``, a
device's ``DeviceCommand`` and private ``_perform``), and with them the pages of releases 0.4.0
and 0.5.0.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.plugins import plugin_notices, using_settings_folder
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers import make_trigger
from deeplabstream.pose.loading import check_model
from deeplabstream.settings import load_settings
from deeplabstream.testing import (
    check_model_format,
    run_backend,
    run_camera,
    run_device,
    run_experiment,
    run_output,
    run_trigger,
)
from tests.support.paths import PROJECT_ROOT
from tests.support.plugin_page import write_lab

RELEASED = PROJECT_ROOT / "tests" / "fixtures" / "released_plugins"
PAGES = {"0.6.0": RELEASED / "0.6.0" / "plugins.md"}
NAMES = ("nose", "tail_base")


@pytest.fixture(
    # Kept in the slow tier: today's docs/plugins.md (test_plugins_doc, the default tier) differs
    # from 0.6.0's page only in the host clock's import path.
    params=[pytest.param("0.6.0", marks=pytest.mark.slow)]
)
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The release's page as a lab folder (its settings merged as that release's reader did)."""
    release: str = request.param
    write_lab(tmp_path, PAGES[release], strict=False)
    with using_settings_folder(tmp_path):
        yield release, tmp_path


def nose_at(frame: int, x: float) -> Observation:
    points = np.array([[x, 240.0, 0.9], [320.0, 240.0, 0.9]])
    return Observation(frame / 30, "arena", frame, points, NAMES)


VISITS = [nose_at(i, 50.0 if i % 10 < 5 else 300.0) for i in range(40)]  # left 4 times


def said(pattern: str) -> bool:
    """Whether a plugin notice (console and session.json) matches ``pattern``."""
    return any(re.search(pattern, text) for text in plugin_notices())


def test_the_camera_streams(lab: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder = lab
    # Imported afresh, so that the path the page imports says it moved (once a process).
    monkeypatch.delitem(sys.modules, "deeplabstream.core.clock", raising=False)
    run = run_camera("lab_arena", {"FRAMERATE": "15"}, frames=3, settings_folder=folder)
    assert run.nominal_fps == 15 and [stamp.frame_index for stamp in run.stamps] == [0, 1, 2]
    assert run.frames[0].std() > 5  # the simulated open field, drawn
    # Releases 0.6.0 and 0.7.0 showed the host clock as core.clock: core.timing since 0.8.0.
    assert said(r"deeplabstream\.core\.clock is deeplabstream\.core\.timing .*0\.9\.0")


def test_the_device_takes_each_command(lab: tuple[str, Path], tmp_path: Path) -> None:
    _, folder = lab
    box = tmp_path / "box.txt"
    run = run_device("lab_led", {"PATH": str(box), "CHANNELS": "2"}, settings_folder=folder)
    assert run.errors == [] and run.channel_count == 2
    assert all(record.ok for record in run.records)
    lines = box.read_text(encoding="utf-8").splitlines()
    assert lines == ["on channel=1", "off channel=1", "pulse channel=1 duration_s=0.01",
                     "pattern channel=1 on_s=0.01 off_s=0.01 count=2", "reset"]  # fmt: skip
    assert not said("deprecated")


def test_the_trigger_reads_the_nose(lab: tuple[str, Path]) -> None:
    trigger = make_trigger("nose_left", {"x": "100", "hold_s": "0"})
    assert run_trigger(trigger, VISITS[:10]) == [True] * 5 + [False] * 5
    assert not said("deprecated")


def test_the_experiment_pulses_three_times_then_ends(lab: tuple[str, Path]) -> None:
    _, folder = lab
    run = run_experiment("lab_protocol", VISITS, settings_folder=folder)
    pulses = [action for action in run.all_actions if action.command == "pulse"]
    assert len(pulses) == 3 and run.runtime.state == "finished"
    assert run.runtime.machine.finish_reason == "three pulses"
    assert run.runtime.experiment.pulses == 3  # the lab's own attribute
    assert run.runtime.session_end_requested is None


def test_the_config_fires_the_rule_on_the_lab_trigger(lab: tuple[str, Path]) -> None:
    _, folder = lab
    runtime = ExperimentRuntime(load_experiment("left_flash", folder))
    runtime.start(0.0)
    sent = [runtime.update(nose_at(i, x)) for i, x in enumerate([150, 50, 50, 150, 60])]
    assert [(i, a.device, a.duration_s) for i, got in enumerate(sent) for a in got] == [
        (1, "led", 0.1), (4, "led", 0.1),
    ]  # fmt: skip


def test_the_output_writes_a_row_per_analysed_frame(lab: tuple[str, Path], tmp_path: Path) -> None:
    _, folder = lab
    run = run_output("nose_csv", {"KEYPOINT": "nose"}, session_dir=tmp_path / "session",
                     passed_over=[3], settings_folder=folder)  # fmt: skip
    assert run.error is None and run.figures == {"nose_rows": 9}
    rows = (tmp_path / "session" / "arena.nose.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "frame_index,x,y,likelihood" and rows[4].startswith("4,")


def with_the_lab_formats_named(folder: Path) -> None:
    """Load the lab's settings as a start does (they name the lab's format in MODEL_FORMATS)."""
    load_settings(folder / "settings.ini")  # names the formats for this process


def test_the_model_format_reads_its_model(lab: tuple[str, Path]) -> None:
    """Settings that name no ``MODEL_FORMATS`` are refused before anything starts, naming it."""
    _, folder = lab
    model = folder / "models" / "arena.labmodel.json"
    settings = folder / "settings.ini"
    named = settings.read_text(encoding="utf-8")
    settings.write_text(named.replace("MODEL_FORMATS = lab_json\n", ""), encoding="utf-8")
    load_settings(settings)
    with pytest.raises(Exception, match=r"\[Pose\] MODEL_FORMATS = lab_json"):
        check_model(model)
    settings.write_text(named, encoding="utf-8")
    with_the_lab_formats_named(folder)
    check_model(model)
    checked = check_model_format(model, settings_folder=folder)
    assert checked.model_format.name == "lab-json" and checked.description.keypoints[0] == "nose"
    assert checked.poses.shape == (1, 1, 6, 3)


def test_the_backend_runs_the_model(lab: tuple[str, Path]) -> None:
    _, folder = lab
    with_the_lab_formats_named(folder)
    model = check_model_format(folder / "models" / "arena.labmodel.json", settings_folder=folder)
    run = run_backend("lab_onnx", model.description, settings_folder=folder)
    assert run.provider == "LabOnnx cpu" and run.largest_difference() < 1e-4


def test_release_0_8_0_removed_the_forms_deprecated_until_it() -> None:
    """The old paths are gone (CHANGELOG.md, 0.8.0, "Removed"), not silently kept."""
    import importlib.util

    from deeplabstream.hardware.stimulation import base

    for gone in ("deeplabstream.outputs.plugin", "deeplabstream.experiments.runtime",
                 "deeplabstream.hardware.stimulation.legacy"):  # fmt: skip
        assert importlib.util.find_spec(gone) is None, gone
    assert not hasattr(base, "DeviceCommand")
