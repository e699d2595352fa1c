"""The lab's folders beside the settings file: one for each of the seven plugin kinds.

A plugin is one module in its kind's folder (``devices/lab_x.py``), named by its stem; it is
found in the main process and in a process started with the 'spawn' method (as the inference
worker is on every platform) without an install; a name in a settings file or an experiment
config never names a Python file (the file is not imported: its marker file stays absent).
"""

from __future__ import annotations

import multiprocessing
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.plugins import (
    PluginLoadError,
    PluginPathError,
    Registry,
    UnknownPluginError,
    settings_folder_in_use,
    use_settings_folder,
    using_settings_folder,
)
from deeplabstream.experiments.config.parse import ExperimentConfigError, load_experiment_config
from deeplabstream.experiments.registry import EXPERIMENTS, load_experiment
from deeplabstream.experiments.triggers.kinds import TRIGGERS, TriggerKind, trigger_kind
from deeplabstream.hardware.cameras import CAMERAS
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.outputs.interface import OUTPUTS, ChosenOutput
from deeplabstream.pose.model_format import (
    MODEL_FORMATS,
    format_of,
    model_formats,
    use_lab_formats,
)
from deeplabstream.pose.runtime.backends import BACKENDS
from deeplabstream.settings.loader import load_settings

# One small plugin of each kind, as a lab writes it (each reuses a built-in's behaviour: what
# is tested here is where it is found, not what it does).
PLUGINS: dict[str, str] = {
    "cameras": """
        from deeplabstream.hardware.cameras.synthetic import SyntheticCamera

        class LabCamera(SyntheticCamera):
            '''The synthetic arena under the lab's name.'''
    """,
    "devices": """
        from dataclasses import dataclass

        from deeplabstream.core.schema import setting
        from deeplabstream.hardware.stimulation.log_device import LogStimulator

        @dataclass(frozen=True)
        class LabDeviceSettings:
            '''The lab device's own keys.'''

            channels: int = setting(4, doc="Channels.", minimum=1)
            label: str = setting("rig", doc="What the log calls it.")

        class LabDevice(LogStimulator):
            '''A log device with a key of its own.'''

            settings_class = LabDeviceSettings

            @classmethod
            def from_settings(cls, settings):
                return cls(channels=settings.channels)
    """,
    "triggers": """
        import dataclasses

        from deeplabstream.experiments.triggers.kinds import trigger_kind

        KINDS = (dataclasses.replace(trigger_kind("every"), name="lab_trigger"),)
    """,
    "outputs": """
        from dataclasses import dataclass

        from deeplabstream.core.schema import setting
        from deeplabstream.outputs.interface import Output

        @dataclass(frozen=True)
        class LabRowsSettings:
            '''The lab output's own keys.'''

            every: int = setting(1, doc="Every how many frames.", minimum=1)

        class LabRows(Output):
            '''An output that writes nothing.'''

            settings_class = LabRowsSettings
    """,
    "backends": """
        class LabBackend:
            '''A backend that opens nothing (found by name only here).'''

            name = "lab_backend"
            devices = ("cpu",)

            @staticmethod
            def open(description, device, threads):
                raise NotImplementedError
    """,
    "formats": """
        from pathlib import Path

        from deeplabstream.pose.model_format import ModelFormat

        class LabFormat(ModelFormat):
            '''Recognises the lab's ``.labmodel`` files.'''

            name = "lab-format"

            def recognises(self, path: Path) -> bool:
                return path.suffix == ".labmodel"
    """,
    "experiments": """
        from deeplabstream.experiments.base import Experiment

        class LabExperiment(Experiment):
            '''Does nothing.'''

            def on_update(self, obs, t):
                return []
    """,
}

REGISTRIES: dict[str, Registry[Any]] = {
    "cameras": CAMERAS,
    "devices": DEVICES,
    "triggers": TRIGGERS,
    "outputs": OUTPUTS,
    "backends": BACKENDS,
    "formats": MODEL_FORMATS,
    "experiments": EXPERIMENTS,
}

# A module that must never be imported from a name in settings: importing it writes a marker.
EVIL = """
from pathlib import Path
Path(__file__).with_suffix(".imported").write_text("imported")
"""


@pytest.fixture(autouse=True)
def no_settings_folder() -> Any:
    """Each test starts and ends without a process-wide settings folder."""
    before = settings_folder_in_use()
    use_settings_folder(None)
    yield
    use_settings_folder(before)


def write_plugin(settings_folder: Path, kind: str, stem: str, body: str) -> Path:
    folder = settings_folder / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", list(PLUGINS))
def test_each_kind_is_found_by_its_modules_name_in_its_lab_folder(tmp_path: Path, kind: str):
    registry = REGISTRIES[kind]
    assert registry.lab.name == kind
    write_plugin(tmp_path, kind, f"lab_{kind}", PLUGINS[kind])
    found = registry.get(f"lab_{kind}", tmp_path)
    assert found.__module__ == f"lab.{kind}.lab_{kind}" or isinstance(found, TriggerKind)
    assert f"lab_{kind}" not in registry  # no settings folder: the lab's modules are not known
    with using_settings_folder(tmp_path):  # the process's settings folder (loaded settings)
        assert f"lab_{kind}" in registry
        assert registry.get(f"lab_{kind}") == found  # the same module: imported once
        loaded, failures = registry.load_all(lab_names=[f"lab_{kind}"])  # named: imported
        assert loaded[f"lab_{kind}"] == found and not failures
        assert f"lab_{kind}" not in registry.load_all()[0]  # not named: not imported
        assert list(loaded)[-1] == f"lab_{kind}"  # after the built-ins and installed ones
    if isinstance(found, TriggerKind):  # a lab kind is named as it is found
        assert found.name == "lab_triggers"


def test_a_module_with_several_plugins_is_named_module_colon_name(tmp_path: Path):
    write_plugin(tmp_path, "triggers", "pair", """
        import dataclasses

        from deeplabstream.experiments.triggers.kinds import trigger_kind

        KINDS = (
            dataclasses.replace(trigger_kind("every"), name="often"),
            dataclasses.replace(trigger_kind("after"), name="late"),
        )
    """)  # fmt: skip
    with pytest.raises(
        PluginLoadError, match=r"defines 2 trigger kinds \(often, late\); name one as pair:name"
    ):
        TRIGGERS.get("pair", tmp_path)
    assert TRIGGERS.get("pair:late", tmp_path).name == "pair:late"
    with using_settings_folder(tmp_path):
        assert trigger_kind("pair:often").factory is trigger_kind("every").factory
        assert {"pair:often", "pair:late"} <= set(TRIGGERS.load_all(lab_names=["pair"])[0])


def test_a_lab_format_is_probed_after_the_built_in_ones(tmp_path: Path):
    write_plugin(tmp_path, "formats", "lab_format", PLUGINS["formats"])
    model = tmp_path / "mouse.labmodel"
    model.write_text("")
    assert format_of(model) is None  # no settings folder: the lab's formats are not probed
    with using_settings_folder(tmp_path):
        assert format_of(model) is None  # not named in [Pose] MODEL_FORMATS: not imported
        use_lab_formats(["lab_format"])
        try:
            formats, failures = model_formats()
            assert [type(f).__name__ for f in formats][-1] == "LabFormat" and not failures
            assert type(format_of(model)).__name__ == "LabFormat"
        finally:
            use_lab_formats([])


@pytest.mark.parametrize("kind", list(PLUGINS))
def test_an_unknown_name_lists_the_lab_folders_modules(tmp_path: Path, kind: str):
    registry = REGISTRIES[kind]
    write_plugin(tmp_path, kind, "first", PLUGINS[kind])
    write_plugin(tmp_path, kind, "second", PLUGINS[kind])
    with pytest.raises(UnknownPluginError) as info:
        registry.get("nonesuch", tmp_path)
    text = str(info.value)
    assert text.startswith(f"unknown {registry.kind} 'nonesuch'; known: ")
    assert f"; in {tmp_path / kind}: first, second. " in text
    assert f"{kind}/ folder beside the settings file" in text  # what to do


@pytest.mark.parametrize("kind", list(PLUGINS))
def test_a_lab_module_that_fails_to_import_names_its_file_and_the_error(tmp_path: Path, kind: str):
    registry = REGISTRIES[kind]
    path = write_plugin(tmp_path, kind, "broken", "import math\nmath.sqrt(-1)\n")
    write_plugin(tmp_path, kind, "fine", PLUGINS[kind])
    with pytest.raises(PluginLoadError) as info:
        registry.get("broken", tmp_path)
    assert str(path) in str(info.value)
    assert "ValueError: math domain error" in str(info.value)
    loaded, failures = registry.load_all(tmp_path, ["broken", "fine"])  # the others still load
    assert "fine" in loaded
    assert [(f.name, f.origin) for f in failures] == [("broken", str(path))]
    assert "ValueError: math domain error" in failures[0].error


@pytest.mark.parametrize("kind", list(PLUGINS))
@pytest.mark.parametrize("written", ["{folder}/evil.py", "evil.py:Evil", "{folder}/evil.py:Evil"])
def test_a_python_path_is_refused_without_importing_it(tmp_path: Path, kind: str, written: str):
    registry = REGISTRIES[kind]
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    name = written.format(folder=tmp_path)
    with pytest.raises(PluginPathError) as info:
        registry.get(name, tmp_path)
    text = str(info.value)
    assert "names a Python file, and settings are data" in text
    assert f"Put the file in the lab's folder {tmp_path / kind / 'evil.py'}" in text
    assert text.endswith("write evil:Evil" if ":Evil" in name else "write evil")
    assert isinstance(info.value, KeyError)  # callers that report unknown names report it
    assert not evil.with_suffix(".imported").exists()


SETTINGS = "[Camera a]\nSOURCE = synthetic\n"


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("[Camera b]\nSOURCE = evil.py:Evil\n", "[Camera b] SOURCE"),
        ("[Device box]\nTYPE = {folder}/evil.py\n", "[Device box] TYPE"),
        ("[Pose]\nBACKEND = evil.py\n", "[Pose] BACKEND"),
        ("[Experiment]\nNAME = {folder}/evil.py\n", "[Experiment] NAME"),
        ("[Output evil.py]\n", "[Output evil.py]"),
    ],
)
def test_a_settings_file_naming_a_python_file_is_refused_naming_file_section_and_key(
    tmp_path: Path, section: str, where: str
):
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    file = tmp_path / "settings.ini"
    file.write_text(SETTINGS + section.format(folder=tmp_path))
    with pytest.raises(SettingsError) as info:
        load_settings(file)
    text = str(info.value)
    assert str(file) in text and where in text
    assert "names a Python file" in text and "Put the file in the lab's folder" in text
    assert not evil.with_suffix(".imported").exists()


def test_an_experiment_config_naming_a_python_trigger_is_refused_without_importing_it(
    tmp_path: Path,
):
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    config = tmp_path / "protocol.ini"
    config.write_text(f"[Experiment]\nNAME = protocol\n[Trigger near]\nKIND = {evil}\n")
    with pytest.raises(ExperimentConfigError) as info:
        load_experiment_config(config)
    text = str(info.value)
    assert f"{config}: [Trigger near] KIND" in text
    assert f"Put the file in the lab's folder {Path('triggers') / 'evil.py'}" in text
    assert not evil.with_suffix(".imported").exists()


def test_the_command_line_may_still_name_an_experiment_file(tmp_path: Path):
    path = write_plugin(tmp_path, "elsewhere", "mine", PLUGINS["experiments"])
    assert type(load_experiment(str(path))).__name__ == "LabExperiment"
    assert type(load_experiment(f"{path}:LabExperiment")).__name__ == "LabExperiment"


def test_loading_settings_makes_their_folder_the_processs(tmp_path: Path):
    write_plugin(tmp_path, "devices", "lab_box", PLUGINS["devices"])
    write_plugin(tmp_path, "outputs", "lab_rows", PLUGINS["outputs"])
    file = tmp_path / "settings.ini"
    file.write_text(SETTINGS + "[Device box]\nTYPE = lab_box\nLABEL = left\n[Output lab_rows]\n")
    settings = load_settings(file)
    assert settings_folder_in_use() == tmp_path.resolve()
    assert settings.devices["box"].options.label == "left"
    assert type(settings.devices["box"].create()).__name__ == "LabDevice"
    assert any(chosen.name == "lab_rows" for chosen in settings.outputs)


# -- another process, started with 'spawn' -------------------------------------------------------


def resolve_in_child(
    settings_folder: Path, device: Any, output: ChosenOutput, answers: Any
) -> None:
    """What the inference worker does: set the settings folder, then find plugins by name."""
    use_settings_folder(settings_folder)
    made = device.create()
    kind = trigger_kind("lab_trigger")
    answers.send(
        {
            "device": (type(made).__name__, type(made).__module__, type(device.options).__name__),
            "label": device.options.label,
            "output": (type(output.plugin()).__name__, output.settings.every),
            "trigger": (kind.name, kind.factory is trigger_kind("every").factory),
            "backend": BACKENDS.get("lab_backend").__name__,
        }
    )


def test_a_spawned_process_finds_the_labs_plugins_by_name(tmp_path: Path):
    write_plugin(tmp_path, "devices", "lab_box", PLUGINS["devices"])
    write_plugin(tmp_path, "outputs", "lab_rows", PLUGINS["outputs"])
    write_plugin(tmp_path, "triggers", "lab_trigger", PLUGINS["triggers"])
    write_plugin(tmp_path, "backends", "lab_backend", PLUGINS["backends"])
    file = tmp_path / "settings.ini"
    file.write_text(
        SETTINGS + "[Device box]\nTYPE = lab_box\nLABEL = left\n[Output lab_rows]\nEVERY = 3\n"
    )
    settings = load_settings(file)
    device = settings.devices["box"]
    output = next(chosen for chosen in settings.outputs if chosen.name == "lab_rows")
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=resolve_in_child, args=(tmp_path, device, output, send), name="lab-plugins"
    )
    child.start()
    send.close()
    try:
        answers = receive.recv()  # EOFError: the child failed (its traceback is on stderr)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    # The same file, under its readable name there (here too, unless another test's file of
    # that name took it first: then with a suffix).
    assert answers["device"] == ("LabDevice", "lab.devices.lab_box", "LabDeviceSettings")
    assert type(device.create()).__module__.startswith("lab.devices.lab_box")
    assert answers["label"] == "left"  # the lab's settings crossed as values, rebuilt there
    assert answers["output"] == ("LabRows", 3)
    assert answers["trigger"] == ("lab_trigger", True)
    assert answers["backend"] == "LabBackend"


def test_the_window_names_a_lab_experiment_it_browses_to_by_its_module(tmp_path: Path):
    from deeplabstream.app.gui.rig_check import experiment_name_for

    settings = tmp_path / "settings.ini"
    inside = write_plugin(tmp_path, "experiments", "mine", PLUGINS["experiments"])
    outside = write_plugin(tmp_path, "elsewhere", "theirs", PLUGINS["experiments"])
    assert experiment_name_for(inside, settings) == "mine"
    assert experiment_name_for(outside, settings) == str(outside.resolve())  # refused, below
    settings.write_text(
        SETTINGS + f"[Experiment]\nNAME = {experiment_name_for(outside, settings)}\n"
    )
    with pytest.raises(
        SettingsError, match=r"Put the file in the lab's folder \S*experiments/theirs\.py"
    ):
        load_settings(settings)


def test_a_folder_used_for_a_check_is_this_threads_only(tmp_path: Path):
    """The window checks an edited settings file on a thread of its own, beside the session."""
    use_settings_folder(tmp_path / "rig")
    seen: dict[str, Path | None] = {}
    inside, done = threading.Event(), threading.Event()

    def check() -> None:
        with using_settings_folder(tmp_path / "edited"):
            seen["check"] = settings_folder_in_use()
            inside.set()
            done.wait(10)
        seen["after"] = settings_folder_in_use()

    thread = threading.Thread(target=check)
    thread.start()
    inside.wait(10)
    seen["session"] = settings_folder_in_use()
    done.set()
    thread.join(10)
    assert seen == {
        "check": (tmp_path / "edited").resolve(),
        "session": (tmp_path / "rig").resolve(),
        "after": (tmp_path / "rig").resolve(),
    }


@pytest.mark.parametrize("kind", list(PLUGINS))
def test_a_lab_module_without_a_plugin_of_its_kind_says_so(tmp_path: Path, kind: str):
    registry = REGISTRIES[kind]
    path = write_plugin(tmp_path, kind, "helpers", "def helper():\n    return 1\n")
    with pytest.raises(PluginLoadError) as info:
        registry.get("helpers", tmp_path)
    assert str(info.value).startswith(f"{registry.kind} 'helpers' ({path}) defines no ")
