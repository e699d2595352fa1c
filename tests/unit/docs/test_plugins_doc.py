"""docs/plugins.md's examples, run straight from the page: each kind's file in a lab folder.

The page's code blocks are written into a lab folder beside a settings file merged from its
``settings.ini`` blocks (tests/support/plugin_page.py); each test loads that settings file, finds
the plugin by the name the page gives it, and runs it as a session would. A change that breaks
an example, or an example that drifts from the code, fails here.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import importlib.util
import inspect
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers import kinds, make_trigger
from deeplabstream.experiments.triggers.base import keypoints_of
from deeplabstream.hardware.cameras import camera_class
from deeplabstream.hardware.stimulation import device_from_settings
from deeplabstream.hardware.stimulation.base import DeviceNotFoundError
from deeplabstream.outputs.interface import AnalysedFrame, OutputCamera, OutputSession
from deeplabstream.pose.model_format import format_of
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.settings import load_settings
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.channel import FrameRecord
from tests.support.plugin_page import KIND_FOLDERS, PAGE, page_blocks, settings_text, write_lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Path, Settings]]:
    """The page's lab folder and its settings, loaded as a session loads them."""
    settings_file = write_lab(tmp_path)
    with using_settings_folder(tmp_path):  # load_settings makes it this process's; undone after
        yield tmp_path, load_settings(settings_file)


def test_the_page_has_one_example_file_per_kind() -> None:
    python_files = [block.name for block in page_blocks() if block.language == "python"]
    folders = [name.split("/")[0] for name in python_files if not name.startswith("tests/")]
    assert sorted(folders) == sorted(KIND_FOLDERS), python_files


def test_the_pages_files_are_what_a_reader_copies() -> None:
    """Issue 53: the JSON block began with a comment (invalid JSON), and two settings blocks
    each had a [Pose] section (one settings file has one)."""
    (json_block,) = [block for block in page_blocks() if block.language == "json"]
    assert json_block.name == "models/arena.labmodel.json"
    assert json.loads(json_block.text)["onnx"] == "arena.onnx"  # the block as it is
    settings = configparser.ConfigParser(interpolation=None, strict=True)
    settings.read_string(settings_text())  # all the blocks, pasted one after the other
    assert settings["Pose"]["BACKEND"] == "lab_onnx"
    assert settings["Pose"]["MODEL_PATH"] == "models/arena.labmodel.json"


def test_the_labs_own_tests_of_its_plugins_pass(
    lab: tuple[Path, Settings], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The page's harness example (deeplabstream.testing), run as the lab runs it."""
    folder, _ = lab
    spec = importlib.util.spec_from_file_location("lab_tests", folder / "tests/test_lab_plugins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = {name: test for name, test in vars(module).items() if name.startswith("test_")}
    assert len(tests) == 4
    spec = importlib.util.spec_from_file_location(
        "lab_protocol_tests", folder / "tests/test_lab_protocol.py"
    )
    assert spec is not None and spec.loader is not None
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)  # the experiment and the trigger alone, as the page shows
    found = {name: test for name, test in vars(protocol).items() if name.startswith("test_")}
    assert len(found) == 2
    tests.update(found)
    for name, test in tests.items():
        takes_folder = "tmp_path" in inspect.signature(test).parameters
        test(tmp_path_factory.mktemp(name)) if takes_folder else test()


def test_the_trigger_helpers_signatures_are_the_pages() -> None:
    """Issue 53: the helpers' signatures were not documented; the page's table is the code's."""
    text = PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)\((.*?)\)` \| ", text, re.M)
    documented = {name: params for name, params in rows if hasattr(kinds, name)}
    assert set(documented) >= {"number", "whole", "choice", "boolean", "keypoint_name"}
    for name, params in documented.items():
        said = [p.split("=", 1) for p in params.split(", ") if p]
        actual = inspect.signature(getattr(kinds, name)).parameters
        assert [p[0] for p in said] == list(actual), name
        for parameter in said:
            default = actual[parameter[0]].default
            if len(parameter) == 2:
                assert ast.literal_eval(parameter[1]) == default, (name, parameter)
            else:
                assert default is inspect.Parameter.empty, (name, parameter)


def test_the_camera_streams_the_arena_at_its_settings(lab: tuple[Path, Settings]) -> None:
    folder, settings = lab
    (section,) = settings.cameras
    assert section.source == "lab_arena" and section.options.framerate == 15
    camera = camera_class(section.source, folder)(section.name, section.options)
    geometry = camera.open()
    frames = np.zeros((2, *geometry.shape), np.uint8)
    stamps = [camera.grab(frame) for frame in frames]
    camera.close()
    assert camera.nominal_fps == 15 and [s.frame_index for s in stamps] == [0, 1]
    assert math.isnan(stamps[0].camera_timestamp) and stamps[0].host_timestamp_ns > 0
    assert frames[0].std() > 5 and not np.array_equal(frames[0], frames[1])  # a moving mouse


def test_the_device_gets_each_command_and_is_acknowledged(lab: tuple[Path, Settings]) -> None:
    folder, settings = lab
    chosen = settings.devices["led"]
    assert chosen.type == "lab_led"
    device = device_from_settings(chosen.type, chosen.options)
    assert device.channel_count == 2
    with device:
        records = [device.on(0), device.pulse(1, 0.5), device.pattern(1, 0.1, 0.2, 3)]
        records.append(device.reset())
    lines = (folder / "led_box.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "on channel=0",
        "pulse channel=1 duration_s=0.5",
        "pattern channel=1 on_s=0.1 off_s=0.2 count=3",
        "reset",
    ]
    assert all(r.ok and r.acked_ns is not None and r.acked_ns >= r.written_ns for r in records)
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        device.on(2)  # CHANNELS = 2: checked before perform


def test_the_device_says_before_the_start_whether_its_box_is_there(
    lab: tuple[Path, Settings],
) -> None:
    folder, settings = lab
    chosen = settings.devices["led"]
    device_from_settings(chosen.type, chosen.options).check_present()  # its folder is there
    gone = dataclasses.replace(chosen.options, path=folder / "gone" / "led_box.txt")
    absent = device_from_settings(chosen.type, gone)
    with pytest.raises(DeviceNotFoundError, match="no such folder"):
        absent.check_present()
    assert not (folder / "gone").exists()  # nothing was opened or made


def test_the_output_writes_a_row_per_analysed_frame(lab: tuple[Path, Settings]) -> None:
    folder, settings = lab
    (chosen,) = [output for output in settings.outputs if output.name == "nose_csv"]
    keypoints = ("nose", "tail_base")
    camera = OutputCamera("arena", "arena", folder, keypoints)
    live = chosen.plugin().open_live(OutputSession(folder, "", (camera,)))
    assert live is not None
    sink = live.camera_sink(camera)
    assert sink is not None
    frame = AnalysedFrame()
    for index in range(3):  # filled in place, as the worker does
        frame.record = FrameRecord(0, index, index, 10 + index, math.nan, 1)
        frame.animals = np.array([[[5.0 + index, 6.0, 0.9], [1.0, 2.0, 0.1]]], np.float32)
        sink.write(frame)
    assert sink.close(None) == {"nose_rows": 3}
    rows = (folder / "arena.nose.csv").read_text(encoding="utf-8").splitlines()
    assert rows == ["frame_index,x,y,likelihood", "10,5.00,6.00,0.900", "11,6.00,6.00,0.900",
                    "12,7.00,6.00,0.900"]  # fmt: skip


def test_the_format_and_the_backend_run_the_arena_model(lab: tuple[Path, Settings]) -> None:
    folder, settings = lab
    (model_path,) = settings.pose.model_path
    assert model_path == folder / "models" / "arena.labmodel.json"
    model_format = format_of(model_path)
    assert model_format is not None and model_format.name == "lab-json"
    description = model_format.load(model_path, None, "fp32")
    assert model_format.describes(description) and model_format.keypoints(model_path)[0] == "nose"
    assert settings.pose.backend == "lab_onnx"
    batch = np.random.default_rng(1).random(description.input_shape(1), np.float32) * 255
    lab_backend = open_backend(description, settings.pose.backend, "cpu", 1)
    built_in = open_backend(description, "onnxruntime", "cpu", 1)
    try:
        lab_backend.warm_up(1)
        ours, theirs = lab_backend.run(batch), built_in.run(batch)
    finally:
        lab_backend.close()
        built_in.close()
    assert lab_backend.provider == "LabOnnx cpu"
    assert [o.shape for o in ours] == [t.shape for t in theirs] and len(ours) == 2
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-4)


def _seen(x: float, likelihood: float, t: float, camera: str = "arena") -> Observation:
    keypoints = np.array([[x, 50.0, likelihood], [200.0, 50.0, 0.9]])
    return Observation(t, camera, round(t * 10), keypoints, ("nose", "tail_base"))


def test_the_trigger_reads_the_nose_with_the_common_parameters(lab: tuple[Path, Settings]) -> None:
    params = {"x": "100", "camera": "top", "min_likelihood": "0.6", "hold_s": "0"}
    trigger = make_trigger("nose_left", params)  # CAMERA, MIN_LIKELIHOOD, HOLD_S: not declared
    assert trigger.kind == "nose_left" and keypoints_of(trigger) == ("nose",)
    assert trigger.cameras_read() == ("top",)
    states = [
        trigger.update(_seen(50, 0.9, 0.0, "top")),  # left, seen
        trigger.update(_seen(50, 0.9, 0.1, "side")),  # another camera: no news, state kept
        trigger.update(_seen(50, 0.4, 0.2, "top")),  # below MIN_LIKELIHOOD: not seen
        trigger.update(_seen(150, 0.9, 0.3, "top")),  # seen, right of X
    ]
    assert states == [True, True, False, False]
    rebuilt = make_trigger(
        trigger.kind, {k: str(v) for k, v in trigger.describe().items() if k != "kind"}
    )
    assert rebuilt.describe() == trigger.describe()
    with pytest.raises(ValueError, match="'nose_left' needs parameter 'x'"):
        make_trigger("nose_left", {})


def test_the_config_fires_the_rule_on_the_lab_trigger(lab: tuple[Path, Settings]) -> None:
    folder, _ = lab
    runtime = ExperimentRuntime(load_experiment("left_flash", folder))
    runtime.start(0.0)
    sent = [runtime.update(_seen(x, 0.9, t / 10)) for t, x in enumerate([150, 50, 50, 150, 60])]
    pulses = [(t, a.device, a.duration_s) for t, actions in enumerate(sent) for a in actions]
    assert pulses == [(1, "led", 0.1), (4, "led", 0.1)]


def test_the_experiment_pulses_on_each_entry_and_ends_itself(lab: tuple[Path, Settings]) -> None:
    folder, settings = lab
    assert settings.experiment.name == "lab_protocol"
    runtime = ExperimentRuntime(load_experiment(settings.experiment.name, folder))
    runtime.start(0.0)
    xs = [150, 50, 150, 50, 150, 50, 150, 50]  # four entries: the third ends the session
    sent = [runtime.update(_seen(x, 0.9, t / 10)) for t, x in enumerate(xs)]
    pulses = [t for t, actions in enumerate(sent) for a in actions if a.command == "pulse"]
    assert pulses == [1, 3, 5] and runtime.machine.finished
    notes = [e for e in runtime.events.events if e.kind == "note"]
    assert [(e.name, e.detail) for e in notes] == [("pulse", "1"), ("pulse", "2"), ("pulse", "3")]
