"""Code runs only from the plugins a lab named: never from data, import paths or folders (issue 53).

Each fault puts code where nothing named it and checks that it never runs (a marker file it
would write never appears), or that the start is refused before anything starts with a message
naming the file, section and key:

- a settings value that is a module's import path (``[Experiment] NAME =
  deeplabstream.offline.verify.__main__:X``, a trigger ``KIND``, any plugin-naming key);
- a lab model format nobody named, a FIFO or a device in a lab folder, a module that loops or
  sleeps at import (Ctrl-C and SIGTERM end it, naming its file);
- ``pickle.py``, ``signal.py``, ``multiprocessing.py`` beside the settings file, in the folder a
  session runs in (the launcher's too);
- a lab file named like a built-in, a lab file other users may write to;

and what a session records of the lab's files it ran (path and SHA-256), which
``import_recorded_file`` checks before it imports one again. One headless session, shared by this
module's tests, runs the lab folder that holds most of these at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplabstream.app.inspect import main as inspect_main
from deeplabstream.core.errors import SettingsError
from deeplabstream.core.import_path import SAFE_PATH_VARIABLE, keep_current_folder_off_path
from deeplabstream.core.plugins import (
    PluginClashError,
    PluginError,
    PluginLoadError,
    PluginPathError,
    Registry,
    import_file,
    import_recorded_file,
    plugin_files_entry,
    using_settings_folder,
    writers_problem,
)
from deeplabstream.experiments.config.parse import ExperimentConfigError, load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER, experiment_origin, load_experiment
from deeplabstream.experiments.triggers.kinds import kind_origin, trigger_kind
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.model_format import MODEL_FORMATS, format_of, use_lab_formats
from deeplabstream.settings import load_settings
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT
from tests.unit.core.test_lab_folders import PLUGINS, REGISTRIES, write_plugin

POSIX = pytest.mark.skipif(os.name == "nt", reason="FIFOs, devices and signals are POSIX's")


def marker_module(name: str, then: str = "") -> str:
    """A module that writes ``<its name>.imported`` beside itself when imported (then ``then``)."""
    return (
        "from pathlib import Path\n"
        f"Path(__file__).with_name('{name}.imported').write_text('imported')\n"
        + textwrap.dedent(then)
    )


# -- 2. a module's import path in the settings is never imported ------------------------------


@pytest.fixture
def marker_package(tmp_path: Path) -> Iterator[Path]:
    """A package on the module path whose module writes a marker when imported."""
    root = tmp_path / "importable"
    (root / "dls_marker_pkg").mkdir(parents=True)
    (root / "dls_marker_pkg" / "__init__.py").write_text("")
    (root / "dls_marker_pkg" / "mod.py").write_text(marker_module("mod"))
    sys.path.insert(0, str(root))
    try:
        yield root / "dls_marker_pkg"
    finally:
        sys.path.remove(str(root))
        for name in ("dls_marker_pkg", "dls_marker_pkg.mod"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("kind", list(REGISTRIES))
@pytest.mark.parametrize(
    "name", ["dls_marker_pkg.mod:Thing", "dls_marker_pkg.mod", "deeplabstream.launch:headless"]
)
def test_an_import_path_is_refused_by_every_kind_and_never_imported(
    tmp_path: Path, marker_package: Path, kind: str, name: str
) -> None:
    registry: Registry = REGISTRIES[kind]
    for ask in (registry.get, registry.require, registry.refuse_code):
        with pytest.raises(PluginPathError, match=r"is a module's import path, and settings"):
            ask(name, tmp_path)
    assert not (marker_package / "mod.imported").exists()


def test_the_issues_experiment_name_is_refused_at_settings_with_its_place(tmp_path: Path) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text(
        "[Camera a]\nSOURCE = synthetic\n"
        "[Experiment]\nNAME = deeplabstream.offline.verify.__main__:X\n"
    )
    with pytest.raises(SettingsError) as refused:
        load_settings(settings)
    text = str(refused.value)
    assert f"{settings}: [Experiment] NAME" in text and "is a module's import path" in text


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("[Camera b]\nSOURCE = deeplabstream.hardware.cameras.synthetic:SyntheticCamera\n",
         "[Camera b] SOURCE"),
        ("[Device d]\nTYPE = deeplabstream.hardware.stimulation.log_device:LogStimulator\n",
         "[Device d] TYPE"),
        ("[Pose]\nBACKEND = deeplabstream.pose.runtime.backends:OnnxRuntimeBackend\n",
         "[Pose] BACKEND"),
        ("[Pose]\nMODEL_FORMATS = deeplabstream.pose.formats.sleap:SleapExport\n",
         "[Pose] MODEL_FORMATS"),
    ],
)  # fmt: skip
def test_every_plugin_key_refuses_an_import_path(tmp_path: Path, section: str, where: str) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera a]\nSOURCE = synthetic\n" + section)
    with pytest.raises(SettingsError) as refused:
        load_settings(settings)
    assert f"{settings}: {where}" in str(refused.value) and "import path" in str(refused.value)


def test_a_configs_trigger_kind_that_is_an_import_path_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mine.ini"
    config.write_text(
        "[Trigger near]\nKIND = deeplabstream.experiments.triggers.regions:KINDS\n"
        "SHAPE = circle 10 10 5\nKEYPOINT = nose\n"
        "[Stimulation on]\nDEVICE = box\nCOMMAND = on\nCHANNEL = 0\n"
        "[Rule r]\nWHEN = near\nDO = on\n"
    )
    with pytest.raises(ExperimentConfigError) as refused:
        load_experiment_config(config)
    text = str(refused.value)
    assert str(config) in text and "[Trigger near] KIND" in text and "import path" in text


def test_the_headless_command_refuses_the_issues_name_before_anything_starts(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text(
        "[Camera a]\nSOURCE = synthetic\n[Experiment]\nNAME = deeplabstream.offline.verify."
        "__main__:X\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--experiment-enabled", "--frames", "3", "--output-dir",
         str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[Experiment] NAME" in result.stderr and "import path" in result.stderr
    assert "deeplabstream-verify" not in result.stdout + result.stderr  # not its usage
    assert not (tmp_path / "out").exists()  # nothing started


# -- 3. only the named lab formats are imported; special files never opened --------------------


@POSIX
@pytest.mark.parametrize("special", ["fifo", "device", "folder"])
def test_a_special_file_is_never_opened_as_code(tmp_path: Path, special: str) -> None:
    folder = tmp_path / "formats"
    folder.mkdir()
    path = folder / "zz_special.py"
    if special == "fifo":
        os.mkfifo(path)  # opened for reading, it would wait for a writer for ever
    elif special == "device":
        path.symlink_to(os.devnull)
    else:
        path.mkdir()
    words = {"fifo": "a FIFO", "device": "a character device", "folder": "a folder"}[special]
    with pytest.raises(PluginLoadError, match=rf"zz_special.* is {words}.*, not a Python file"):
        MODEL_FORMATS.get("zz_special", tmp_path)
    with pytest.raises(PluginLoadError, match=words):
        import_file(path)


def test_only_the_lab_formats_named_are_imported(tmp_path: Path) -> None:
    for name in ("mine", "other"):
        write_plugin(tmp_path, "formats", name, marker_module(name, PLUGINS["formats"]))
    model = tmp_path / "mouse.labmodel"
    model.write_text("")
    with using_settings_folder(tmp_path):
        with pytest.raises(ModelError) as refused:  # none named: none imported
            load_model(model)
        text = str(refused.value)
        assert "formats/ folder has mine, other, not tried" in text
        assert "set [Pose] MODEL_FORMATS = mine" in text
        assert not list((tmp_path / "formats").glob("*.imported"))
        use_lab_formats(["mine"])
        try:
            assert type(format_of(model)).__name__ == "LabFormat"
            assert format_of(BUNDLED_MODEL) is not None  # the built-ins still read theirs
        finally:
            use_lab_formats([])
    assert (tmp_path / "formats" / "mine.imported").exists()
    assert not (tmp_path / "formats" / "other.imported").exists()


HANGING_FORMATS = {
    "loop": "while True:\n    pass\n",
    "sleep": "import time\ntime.sleep(3600)\n",
}


@POSIX
@pytest.mark.parametrize(("hang", "sig"), [("loop", signal.SIGINT), ("sleep", signal.SIGTERM)])
def test_a_plugin_that_hangs_at_import_is_named_and_a_stop_ends_it(
    tmp_path: Path, hang: str, sig: signal.Signals
) -> None:
    """The start waits on the lab's module; the watch names it, Ctrl-C or SIGTERM ends it."""
    path = write_plugin(tmp_path, "formats", "hang", HANGING_FORMATS[hang])
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera a]\nSOURCE = synthetic\n[Pose]\nMODEL_FORMATS = hang\n")
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--pose-enabled", "--frames", "3", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        heard = []
        for line in process.stderr:  # the watch names the module once it is slow
            heard.append(line)
            if "still importing" in line:
                break
        assert str(path) in heard[-1], "".join(heard)
        process.send_signal(sig)
        _, rest = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + sig, "".join(heard) + rest
    said = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"Stopped: {said} received while importing model format 'hang' ({path})" in rest
    assert "Traceback" not in rest and not (tmp_path / "out").exists()


# -- 5. a lab file named like a built-in; a lab config of a shipped name; who may write --------

#: A registered name of each kind and a lab module of that name (its content is the kind's).
CLASHES = {
    "cameras": "synthetic",
    "devices": "log",
    "triggers": "region",
    "outputs": "pose",
    "backends": "onnxruntime",
    "experiments": "examples:AlternatingReward",
}


@pytest.mark.parametrize("kind", list(CLASHES))
def test_a_lab_file_named_like_a_built_in_is_refused_with_what_to_rename(
    tmp_path: Path, kind: str
) -> None:
    name = CLASHES[kind]
    stem = name.partition(":")[0]
    path = write_plugin(tmp_path, kind, stem, marker_module(stem, PLUGINS[kind]))
    registry = REGISTRIES[kind]
    for ask in (registry.get, registry.require, registry.origin):
        with pytest.raises(PluginClashError) as refused:
            ask(name, tmp_path)
        text = str(refused.value)
        assert f"{path} is named like the built in" in text
        assert f"Rename the file (e.g. to lab_{stem}.py) and write lab_{stem}" in text
    assert not list((tmp_path / kind).glob("*.imported"))


def test_a_clash_stops_the_settings_naming_file_section_and_key(tmp_path: Path) -> None:
    write_plugin(tmp_path, "cameras", "synthetic", PLUGINS["cameras"])
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera a]\nSOURCE = synthetic\n")
    with pytest.raises(SettingsError, match=rf"{settings}: \[Camera a\] SOURCE.*Rename the file"):
        load_settings(settings)
    settings.write_text("[Camera a]\nSOURCE = synthetic\n[Pose]\nMODEL_FORMATS = deeplabstream\n")
    (tmp_path / "cameras" / "synthetic.py").unlink()
    write_plugin(tmp_path, "formats", "deeplabstream", PLUGINS["formats"])
    with pytest.raises(SettingsError, match=r"\[Pose\] MODEL_FORMATS.*tried on every model"):
        load_settings(settings)


def test_a_lab_config_of_a_shipped_name_is_recorded_as_the_labs(tmp_path: Path) -> None:
    shipped = CONFIG_FOLDER / "freezing_opto.ini"
    assert experiment_origin(load_experiment("freezing_opto", tmp_path)) == "built in"
    mine = tmp_path / "experiments" / "freezing_opto.ini"
    mine.parent.mkdir()
    mine.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    experiment = load_experiment("freezing_opto", tmp_path)
    assert experiment_origin(experiment) == f"lab folder: {mine.resolve()}"


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user may read (pytest's own are private), removed after the test."""
    folder = Path(tempfile.mkdtemp(prefix="dls-writable-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def writable_device(folder: Path) -> Path:
    path = write_plugin(folder, "devices", "open_box", marker_module("open_box"))
    (folder / "devices").chmod(0o755)
    path.chmod(0o666)  # every user may change the code
    return path


@POSIX
def test_a_lab_file_others_may_write_is_refused_in_a_root_process(shared_folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the tests do not run as root here")
    path = writable_device(shared_folder)
    with pytest.raises(PluginLoadError, match=r"refused: .*open_box\.py may be written by every"):
        import_file(path)
    assert not (path.parent / "open_box.imported").exists()


@POSIX
def test_a_lab_file_others_may_write_is_said_in_a_users_process(shared_folder: Path) -> None:
    """What a process of a user without rights says (the tests cannot become one here)."""
    path = writable_device(shared_folder)
    text, refused = writers_problem(path, as_root=False) or ("", True)
    assert not refused and f"{path}: {path} may be written by every user" in text
    assert f"chmod o-w {path}" in text
    path.chmod(0o644)
    shared_folder.chmod(0o777)  # the folder now: anyone may swap the file
    text, refused = writers_problem(path, as_root=False) or ("", True)
    assert not refused and f"{shared_folder} may be written by every user" in text
    shared_folder.chmod(0o1777)  # sticky, as /tmp: others may not replace what is here
    assert writers_problem(path, as_root=False) is None
    if os.geteuid() == 0:  # root running another user's file: said
        os.chown(path, 65534, -1)
        text, refused = writers_problem(path, as_root=True) or ("", True)
        assert not refused and "belongs to user id 65534 and is run by root" in text


# -- 4, 5, 8, 9 in a session: the lab folder a headless session runs in -----------------------

OLD_DEVICE = '''
"""A lab's device, logging under its module's name."""

import logging

from deeplabstream.hardware.stimulation.base import Action, StimulationDevice

log = logging.getLogger(__name__)


class OldBox(StimulationDevice):
    def open(self):
        log.info("old box open")

    def close(self):
        pass

    @property
    def channel_count(self):
        return 4

    def perform(self, action: Action) -> None:
        log.info("old box %s", action.describe())
'''

#: Modules of Python's own names beside the settings file, where the session runs.
SHADOWS = ("pickle", "signal", "multiprocessing")


def rig_folder(root: Path) -> Path:
    """A lab's rig folder: its settings, launcher, devices, experiment and what must not run."""
    root.mkdir()
    for name in SHADOWS:
        (root / f"{name}.py").write_text(marker_module(name, f"raise SystemExit('{name}')\n"))
    (root / "formats").mkdir()
    if os.name != "nt":
        os.mkfifo(root / "formats" / "zz_fifo.py")
    (root / "formats" / "slow.py").write_text(
        marker_module("slow", "import time\ntime.sleep(3600)\n")
    )
    (root / "devices").mkdir()
    (root / "devices" / "old_box.py").write_text(OLD_DEVICE)
    (root / "experiments").mkdir()  # a lab copy of the shipped example, of the same name
    shutil.copy(CONFIG_FOLDER / "ExampleExperiment.ini", root / "experiments")
    shutil.copy(PROJECT_ROOT / "DeepLabStream.py", root)  # as in a checkout: the launcher here
    (root / "settings.ini").write_text(
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 640\nHEIGHT = 480\nFRAMERATE = 30\n"
        "[Device stimulus_box]\nTYPE = old_box\n"
        "[Experiment]\nNAME = ExampleExperiment\nDEADLINE_MS = off\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    )
    return root


@pytest.fixture(scope="module")
def rig_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One headless session run in the rig folder, by the launcher beside its settings."""
    root = rig_folder(tmp_path_factory.mktemp("rig") / "rig")
    result = subprocess.run(
        [sys.executable, "DeepLabStream.py", "--settings", "settings.ini", "--headless",
         "--pose-enabled", "--experiment-enabled", "--frames", "30", "--output-dir", "out"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return root, result


def _record(root: Path) -> dict:
    (folder,) = (root / "out").iterdir()
    return json.loads((folder / "session.json").read_text(encoding="utf-8"))


def test_files_beside_the_settings_never_run_in_any_process(rig_session) -> None:
    root, result = rig_session
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert [path.name for path in root.glob("*.imported")] == []
    record = _record(root)
    assert record["status"] == "finished" and record["pose"]["cameras"]["arena"]["pose_rows"] > 0


def test_the_lab_formats_nobody_named_are_never_opened(rig_session) -> None:
    root, result = rig_session
    assert result.returncode == 0
    assert not (root / "formats" / "slow.imported").exists()  # and the FIFO held nothing


def test_the_lab_modules_log_under_readable_names(rig_session) -> None:
    root, _ = rig_session
    (folder,) = (root / "out").iterdir()
    assert "lab.devices.old_box: old box open" in (folder / "session.log").read_text()


def test_the_session_records_its_lab_files_with_their_sha256(rig_session) -> None:
    root, _ = rig_session
    record = _record(root)
    device = root / "devices" / "old_box.py"
    assert record["plugin_files"] == [
        {"kind": "device", "name": "old_box", "file": str(device.resolve()),
         "sha256": hashlib.sha256(device.read_bytes()).hexdigest()},
    ]  # fmt: skip
    config = (root / "experiments" / "ExampleExperiment.ini").resolve()
    experiment = record["experiment"]
    assert experiment["plugins"]["experiment"] == {"ExampleExperiment": f"lab folder: {config}"}
    assert experiment["plugin_files"] == [
        {"kind": "experiment", "name": "ExampleExperiment", "file": str(config),
         "sha256": hashlib.sha256(config.read_bytes()).hexdigest()},
    ]  # fmt: skip


# -- 4. the current folder off the module path, here and in children ---------------------------


def test_the_current_folder_is_taken_off_the_path_and_children_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), ".", *sys.path])
    # setenv first so that monkeypatch restores the variable's absence afterwards: a bare
    # delenv of an absent variable records nothing, and PYTHONSAFEPATH=1 then leaked into every
    # later test of this worker (their `python -m benchmarks...` children found no module).
    monkeypatch.setenv(SAFE_PATH_VARIABLE, "")
    monkeypatch.delenv(SAFE_PATH_VARIABLE)
    removed = keep_current_folder_off_path(launcher=str(tmp_path / "DeepLabStream.py"))
    assert removed == ["", str(tmp_path), "."]
    assert os.environ[SAFE_PATH_VARIABLE] == "1"


# -- 9. a recorded file is imported again only while unchanged --------------------------------


def test_a_recorded_file_is_imported_only_while_its_sha256_matches(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "devices", "lab_box", PLUGINS["devices"])
    sibling = write_plugin(tmp_path, "devices", "sibling", marker_module("sibling"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    device = REGISTRIES["devices"].get_recorded("lab_box", path, digest)
    assert device.__name__ == "LabDevice"
    # lab.devices.lab_box, with a short hash when this process imported another lab_box.py
    assert import_recorded_file(path, digest).__name__.startswith("lab.devices.lab_box")
    path.write_text(marker_module("lab_box", PLUGINS["devices"]))
    with pytest.raises(PluginError) as changed:
        import_recorded_file(path, digest, "device 'lab_box'")
    text = str(changed.value)
    assert "has changed since it was recorded" in text and digest in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() in text
    path.unlink()
    with pytest.raises(PluginError, match=r"the recorded file .*lab_box\.py is gone"):
        REGISTRIES["devices"].get_recorded("lab_box", path, digest)
    assert not list((tmp_path / "devices").glob("*.imported"))  # neither it nor its sibling ran
    assert sibling.exists()


def test_a_lab_trigger_kind_is_recorded_by_its_own_file(tmp_path: Path) -> None:
    """A lab's kind that reuses a built-in trigger class is still the lab file's."""
    path = write_plugin(tmp_path, "triggers", "lab_trigger", PLUGINS["triggers"])
    with using_settings_folder(tmp_path):
        origin = kind_origin("lab_trigger", trigger_kind("lab_trigger").factory)
        assert kind_origin("region", trigger_kind("region").factory) == "built in"
    assert origin == f"lab folder: {path.resolve()}"
    assert plugin_files_entry({"trigger": {"lab_trigger": origin}}) == [
        {"kind": "trigger", "name": "lab_trigger", "file": str(path.resolve()),
         "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
    ]  # fmt: skip


# -- 6. a path default is beside the settings file ---------------------------------------------

PATH_DEVICE = """
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.core.schema import setting
from deeplabstream.hardware.stimulation.log_device import LogStimulator


@dataclass(frozen=True)
class BoxSettings:
    path: Path = setting(Path("led_box.txt"), doc="Its lines' file, beside the settings file.")


class Box(LogStimulator):
    settings_class = BoxSettings

    @classmethod
    def from_settings(cls, settings):
        return cls()
"""


def test_a_path_default_is_beside_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = tmp_path / "rig"
    write_plugin(rig, "devices", "path_box", PATH_DEVICE)
    (rig / "settings.ini").write_text(
        "[Camera a]\nSOURCE = synthetic\n[Device d]\nTYPE = path_box\n"
    )
    monkeypatch.chdir(tmp_path)  # the working folder is elsewhere
    settings = load_settings(rig / "settings.ini")
    assert settings.devices["d"].options.path == rig.resolve() / "led_box.txt"
    assert settings.output.directory == rig.resolve() / "sessions"  # [Output] left out


# -- 7. deeplabstream-inspect reads a lab's format of its settings ------------------------------


def test_inspect_knows_the_lab_formats_of_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path, "formats", "lab_json", LAB_JSON)
    shutil.copy(BUNDLED_MODEL / "model.onnx", tmp_path / "arena.onnx")
    model = tmp_path / "arena.labmodel.json"
    model.write_text(json.dumps({**ARENA, "onnx": "arena.onnx"}))
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[Pose]\nMODEL_FORMATS = lab_json\nMODEL_PATH = {model.name}\n")

    def inspect(*args: str) -> subprocess.CompletedProcess[str]:
        # ``deeplabstream-inspect``'s main in this process, from the lab's folder as before: the
        # same parser, settings and lab formats read, without a new Python each.
        monkeypatch.chdir(tmp_path)
        code, out, err = run_main_here(inspect_main, list(args))
        return subprocess.CompletedProcess(["deeplabstream-inspect", *args], code, out, err)

    alone = inspect(str(model))
    assert alone.returncode == 2 and "not a model this program knows" in alone.stderr
    known = inspect("--settings", str(settings))  # PATH: the settings' MODEL_PATH
    assert known.returncode == 0, known.stderr
    assert "framework:   lab-json" in known.stdout and "nose" in known.stdout


LAB_JSON = """
import json
from pathlib import Path

from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat


class LabJson(ModelFormat):
    name = "lab-json"

    def recognises(self, path: Path) -> bool:
        return path.name.endswith(".labmodel.json")

    def load(self, path: Path, frame_size, precision) -> ModelDescription:
        spec = json.loads(path.read_text(encoding="utf-8"))
        graph = path.parent / spec.pop("onnx")
        fields = {key: tuple(v) if isinstance(v, list) else v for key, v in spec.items()}
        return ModelDescription(name=path.stem, framework=self.name, model_file=graph, **fields)
"""

ARENA = {
    "keypoints": ["nose", "left_ear", "right_ear", "neck", "body_center", "tail_base"],
    "input_height": 256, "input_width": 320, "resize": "area", "normalization": "in-graph",
    "letterbox": True, "output_kind": "heatmaps+locref", "output_names": ["heatmaps", "locref"],
    "stride": 4.0, "heatmaps_are_probabilities": False,
}  # fmt: skip


# -- 8. readable logger names --------------------------------------------------------------------


def test_a_lab_modules_logger_is_named_for_its_folder_and_file(tmp_path: Path, caplog) -> None:
    path = write_plugin(
        tmp_path, "devices", "tcp_stim", "import logging\nlogging.getLogger(__name__).info('hi')\n"
    )
    with caplog.at_level(logging.INFO):
        module = import_file(path)
    assert module.__name__.startswith("lab.devices.tcp_stim")
    assert any(record.name == module.__name__ for record in caplog.records)
