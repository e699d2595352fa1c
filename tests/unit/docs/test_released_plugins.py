"""A lab's plugins written for an earlier release, exactly as that release's docs showed them, run.

Each of the seven kinds of docs/plugins.md as releases 0.5.0 and 0.6.0 showed them
(tests/fixtures/released_plugins: the pages byte for byte), written into a lab folder as a reader
of that release copied it, loaded by name from that folder and run by the plugin harness
(deeplabstream.testing) as its process runs it. What changed since is adapted and said: once in
the console and ``session.json`` (the plugin notices) and as a DeprecationWarning, naming what to
write instead and the release that removes the old form. Release 0.4.0's forms that 0.6.0 refused
without a word run too: an output importing ``deeplabstream.outputs.plugin`` (release 0.4.0's
docs/outputs.md) and a device writing the private ``_perform``.
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
PAGES = {"0.5.0": RELEASED / "0.5.0" / "plugins.md", "0.6.0": RELEASED / "0.6.0" / "plugins.md"}
NAMES = ("nose", "tail_base")
DEVICE_COMMAND = r"perform takes release 0\.5\.0's DeviceCommand, deprecated in release 0\.6\.0"


@pytest.fixture(
    # 0.6.0's page is today's docs/plugins.md, which test_plugins_doc runs in the default tier:
    # kept apart in the slow tier, where it guards 0.6.0's plugins once the page changes.
    params=["0.5.0", pytest.param("0.6.0", marks=pytest.mark.slow)]
)
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The release's page as a lab folder (its settings merged as that release's reader did)."""
    release: str = request.param
    write_lab(tmp_path, PAGES[release], strict=False)  # 0.5.0's page gave [Pose] twice
    with using_settings_folder(tmp_path):
        yield release, tmp_path


def nose_at(frame: int, x: float) -> Observation:
    points = np.array([[x, 240.0, 0.9], [320.0, 240.0, 0.9]])
    return Observation(frame / 30, "arena", frame, points, NAMES)


VISITS = [nose_at(i, 50.0 if i % 10 < 5 else 300.0) for i in range(40)]  # left 4 times


def said(pattern: str) -> bool:
    """Whether a plugin notice (console and session.json) matches ``pattern``."""
    return any(re.search(pattern, text) for text in plugin_notices())


def test_the_camera_streams(lab: tuple[str, Path]) -> None:
    _, folder = lab
    run = run_camera("lab_arena", {"FRAMERATE": "15"}, frames=3, settings_folder=folder)
    assert run.nominal_fps == 15 and [stamp.frame_index for stamp in run.stamps] == [0, 1, 2]
    assert run.frames[0].std() > 5  # the simulated open field, drawn


def test_the_device_takes_each_command(lab: tuple[str, Path], tmp_path: Path) -> None:
    release, folder = lab
    box = tmp_path / "box.txt"
    run = run_device("lab_led", {"PATH": str(box), "CHANNELS": "2"}, settings_folder=folder)
    assert run.errors == [] and run.channel_count == 2
    assert all(record.ok for record in run.records)
    lines = box.read_text(encoding="utf-8").splitlines()
    if release == "0.5.0":  # its perform is given its own DeviceCommand, and is told so
        assert lines == ["ON 1", "OFF 1", "PULSE 1 0.01 s", "PATTERN 1 0.01 s 0.01 s x2", "RESET"]
        assert said(DEVICE_COMMAND + r".*until release 0\.8\.0")
    else:
        assert lines == ["on channel=1", "off channel=1", "pulse channel=1 duration_s=0.01",
                         "pattern channel=1 on_s=0.01 off_s=0.01 count=2", "reset"]  # fmt: skip
        assert not said("deprecated")


def test_the_trigger_reads_the_nose(lab: tuple[str, Path]) -> None:
    trigger = make_trigger("nose_left", {"x": "100", "hold_s": "0"})
    assert run_trigger(trigger, VISITS[:10]) == [True] * 5 + [False] * 5
    assert not said("deprecated")


def test_the_experiment_pulses_three_times_then_ends(lab: tuple[str, Path]) -> None:
    release, folder = lab
    run = run_experiment("lab_protocol", VISITS, settings_folder=folder)
    pulses = [action for action in run.all_actions if action.command == "pulse"]
    assert len(pulses) == 3 and run.runtime.state == "finished"
    assert run.runtime.machine.finish_reason == "three pulses"
    assert run.runtime.experiment.pulses == 3  # the lab's own attribute
    # 0.5.0's page ends with end_session, which since 0.6.0 ends the session too (CHANGELOG.md)
    ends_session = "three pulses" if release == "0.5.0" else None
    assert run.runtime.session_end_requested == ends_session


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
    """Load the lab's settings as a start does, with 0.6.0's one new line where it is missing.

    Release 0.5.0's settings name no ``MODEL_FORMATS``: since 0.6.0 a lab's format is imported
    only when named (CHANGELOG.md, 0.6.0, "Changed": the one line to add).
    """
    settings = folder / "settings.ini"
    text = settings.read_text(encoding="utf-8")
    if "MODEL_FORMATS" not in text:
        settings.write_text(text.replace("[Pose]\n", "[Pose]\nMODEL_FORMATS = lab_json\n"), "utf-8")
    load_settings(settings)  # names the lab's formats for this process, as a start does


def test_the_model_format_reads_its_model(lab: tuple[str, Path]) -> None:
    """A 0.5.0 settings file is refused before anything starts, with the key to add."""
    release, folder = lab
    model = folder / "models" / "arena.labmodel.json"
    if release == "0.5.0":
        load_settings(folder / "settings.ini")
        with pytest.raises(Exception, match=r"\[Pose\] MODEL_FORMATS = lab_json"):
            check_model(model)
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


def test_an_output_of_release_0_4_imports_its_interface_from_the_old_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Release 0.4.0's docs/outputs.md example (``from deeplabstream.outputs.plugin import``)."""
    page = (RELEASED / "0.4.0" / "outputs.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"^```python\n(# my_lab/outputs\.py\n.*?)^```", page, re.M | re.S)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "nose.py").write_text(code, encoding="utf-8")
    monkeypatch.delitem(sys.modules, "deeplabstream.outputs.plugin", raising=False)  # said again
    old_path = r"deeplabstream\.outputs\.plugin, .* deprecated: import the same names from "
    with pytest.warns(DeprecationWarning, match=old_path + r"deeplabstream\.outputs\.interface"):
        run = run_output("nose", {"EVERY": "2"}, session_dir=tmp_path / "session",
                         settings_folder=tmp_path)  # fmt: skip
    assert run.error is None
    rows = (tmp_path / "session" / "arena.nose.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows] == ["1", "3", "5", "7", "9"]  # every 2nd frame
    assert said(old_path + r".*until release 0\.8\.0")


#: A device as release 0.4.0's StimulationDevice declared it: the private, abstract ``_perform``.
PRIVATE_PERFORM_DEVICE = """
from deeplabstream.core.clock import host_now_ns
from deeplabstream.hardware.stimulation.base import ActionRecord, DeviceCommand, StimulationDevice


class OldBox(StimulationDevice):
    def __init__(self):
        super().__init__()
        self.lines = []

    @property
    def channel_count(self):
        return 2

    def open(self):
        pass

    def close(self):
        pass

    def _perform(self, action: DeviceCommand) -> ActionRecord:
        record = ActionRecord(action.describe(), host_now_ns())
        self.lines.append(action.describe())
        record.acknowledge(host_now_ns())  # the device's own answer
        return record
"""


def test_a_device_of_release_0_4_with_the_private_perform_runs(tmp_path: Path) -> None:
    """0.6.0 refused it at the start as "defines no stimulation device class"."""
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "old_box.py").write_text(PRIVATE_PERFORM_DEVICE, encoding="utf-8")
    private = r"OldBox writes the private _perform\(command\) -> ActionRecord of release 0\.4\.0"
    with pytest.warns(DeprecationWarning, match=private + r".*write perform\(self, action"):
        run = run_device("old_box", settings_folder=tmp_path, check_present=False)
    assert run.errors == [] and all(record.ok for record in run.records)
    assert [record.command for record in run.records] == [
        "ON 1", "OFF 1", "PULSE 1 0.01 s", "PATTERN 1 0.01 s 0.01 s x2", "RESET",
    ]  # fmt: skip
    assert said(private + r".*until release 0\.8\.0")
