"""The one plugin registry: lazy built-ins, entry points, the lab's folder, one error wording.

Entry points are found the way an installed package declares them: a ``*.dist-info`` folder
with ``entry_points.txt`` on ``sys.path``, read by ``importlib.metadata`` itself (nothing is
mocked). The tiny distribution installed with pip and used in a real run is in
tests/integration/test_plugin_distribution.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deeplabstream.core.plugins import (
    PluginError,
    PluginLoadError,
    PluginPathError,
    Registry,
    UnknownPluginError,
    import_file,
    subclass_check,
)
from deeplabstream.experiments.registry import EXPERIMENTS, load_experiment
from deeplabstream.experiments.triggers.kinds import TRIGGERS, trigger_kind
from deeplabstream.hardware.cameras import CAMERAS, Camera, camera_class
from deeplabstream.hardware.stimulation import DEVICES
from deeplabstream.outputs.interface import OUTPUTS
from deeplabstream.pose.model_format import MODEL_FORMATS
from deeplabstream.pose.runtime.backends import BACKENDS


class Base:
    """The interface of the test kind."""


def write_module(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def write_distribution(folder: Path, name: str, groups: dict[str, dict[str, str]]) -> None:
    """Declare an installed distribution ``name`` 0.1 with ``groups`` of entry points."""
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, points in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{point} = {target}" for point, target in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path, as site-packages is, for modules and distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_built_ins_are_imported_on_first_use_only(site: Path) -> None:
    write_module(
        site,
        "lazy_kind_a",
        "from tests.unit.core.test_plugins import Base\nclass A(Base):\n    pass\n",
    )
    registry: Registry[type[Base]] = Registry(
        "widget", "dls_test.widgets", {"a": "lazy_kind_a:A"}, advice="Pick one."
    )
    assert registry.names() == ("a",) and "a" in registry and len(registry) == 1
    assert "lazy_kind_a" not in sys.modules  # listed and checked by name, not imported
    assert registry.get("a").__name__ == "A"
    assert "lazy_kind_a" in sys.modules


def test_a_missing_optional_library_matters_only_to_its_plugin(site: Path) -> None:
    write_module(site, "needs_absent", "import absent_vendor_sdk_xyz\nclass B:\n    pass\n")
    write_module(site, "fine_kind", "class C:\n    pass\n")
    registry: Registry[type] = Registry(
        "widget", "dls_test.widgets", {"b": "needs_absent:B", "c": "fine_kind:C"}, advice="."
    )
    assert registry.get("c").__name__ == "C"
    with pytest.raises(PluginLoadError) as info:
        registry.get("b")
    assert "widget 'b' (built in, needs_absent:B) cannot be loaded" in str(info.value)
    assert "ModuleNotFoundError: No module named 'absent_vendor_sdk_xyz'" in str(info.value)
    loaded, failures = registry.load_all()
    assert list(loaded) == ["c"]
    assert [(f.name, f.origin) for f in failures] == [("b", "built in")]


@pytest.mark.parametrize(
    ("registry", "kind", "known"),
    [
        (CAMERAS, "camera", "basler, opencv, realsense, synthetic, video"),
        (DEVICES, "stimulation device", "gpio, log, nidaq, serial, visual"),
        (BACKENDS, "inference backend", "onnxruntime, openvino, pytorch"),
        (MODEL_FORMATS, "model format", "deeplabcut-3, deeplabstream, lightning-pose-checkpoint"),
        (TRIGGERS, "trigger kind", "after, all, and, any, approach"),
        (EXPERIMENTS, "experiment", "examples:AlternatingReward"),
        (OUTPUTS, "output", "annotated_video, ibl, lsl, nwb, pose, slp"),
    ],
)
def test_every_kind_says_unknown_names_in_one_wording(
    registry: Registry, kind: str, known: str
) -> None:
    with pytest.raises(UnknownPluginError) as info:
        registry.get("nonesuch")
    text = str(info.value)
    assert text.startswith(f"unknown {kind} 'nonesuch'; known: {known}")
    assert registry.group in text or "docs/" in text  # and what to do
    assert isinstance(info.value, KeyError)  # what each kind raised before


def test_the_kinds_callers_keep_their_exception_types() -> None:
    with pytest.raises(ValueError, match="unknown trigger kind 'regoin'; known: after"):
        trigger_kind("regoin")
    with pytest.raises(LookupError, match=r"unknown experiment 'nope'; known: ExampleExperiment"):
        load_experiment("nope")
    assert trigger_kind("Speed-Above").name == "speed_above"
    assert BACKENDS.get("PyTorch").name == "pytorch"


def test_entry_points_add_plugins_and_say_which_distribution(site: Path) -> None:
    write_module(site, "lab_widgets", "class Fast:\n    pass\n")
    write_distribution(site, "lab-widgets", {"dls_test.widgets": {"fast": "lab_widgets:Fast"}})
    registry: Registry[type] = Registry(
        "widget", "dls_test.widgets", {"plain": "fine_kind_2:P"}, advice="."
    )
    assert registry.names() == ("plain", "fast")
    assert registry.origin("fast") == "distribution lab-widgets 0.1"
    assert registry.get("fast").__name__ == "Fast"


def test_a_broken_entry_point_is_reported_by_name_and_never_hides_the_others(site: Path) -> None:
    write_module(site, "lab_broken", "raise RuntimeError('the vendor SDK is not licensed')\n")
    write_module(site, "lab_good", "class Good:\n    pass\n")
    write_distribution(
        site,
        "lab-mixed",
        {
            "dls_test.gadgets": {
                "broken": "lab_broken:Thing",
                "good": "lab_good:Good",
                "builtin": "lab_good:Good",
            }
        },
    )
    write_module(site, "gadget_builtin", "class Builtin:\n    pass\n")
    registry: Registry[type] = Registry(
        "gadget", "dls_test.gadgets", {"builtin": "gadget_builtin:Builtin"}, advice="Fix it."
    )
    loaded, failures = registry.load_all()
    assert set(loaded) == {"builtin", "good"} and loaded["builtin"].__name__ == "Builtin"
    by_name = {failure.name: str(failure) for failure in failures}
    assert by_name["broken"] == (
        "gadget 'broken' (distribution lab-mixed 0.1) cannot be loaded: "
        "RuntimeError: the vendor SDK is not licensed"
    )
    assert "the name is taken by the built-in gadget" in by_name["builtin"]
    with pytest.raises(PluginLoadError, match=r"distribution lab-mixed 0\.1.*not licensed"):
        registry.get("broken")
    with pytest.raises(UnknownPluginError) as info:
        registry.get("other")
    assert "not usable: gadget 'builtin' (distribution lab-mixed 0.1)" in str(info.value)


def test_a_plugin_of_the_wrong_interface_is_refused_with_what_was_expected(site: Path) -> None:
    write_module(site, "lab_wrong", "class NotACamera:\n    pass\n")
    write_distribution(site, "lab-wrong", {"dls_test.cams": {"wrong": "lab_wrong:NotACamera"}})
    registry: Registry[type[Camera]] = Registry(
        "camera", "dls_test.cams", {}, advice=".", check=subclass_check(Camera)
    )
    with pytest.raises(
        PluginLoadError,
        match=r"is not a usable camera: expected a subclass of "
        r"deeplabstream.hardware.cameras.base.Camera",
    ):
        registry.get("wrong")


LAB_CAMERA = """
from deeplabstream.hardware.cameras.synthetic import SyntheticCamera

class StripedCamera(SyntheticCamera):
    '''The lab's camera: the synthetic arena under another name.'''
"""


def test_the_labs_folder_and_nothing_else(tmp_path: Path) -> None:
    lab = tmp_path / "cameras"
    lab.mkdir()
    write_module(lab, "striped", LAB_CAMERA)
    by_module = camera_class("striped", tmp_path)
    assert by_module.__name__ == "StripedCamera"
    assert camera_class("striped:StripedCamera", tmp_path) is by_module
    assert CAMERAS.get_file(lab / "striped.py") is by_module  # a file the command line names
    with pytest.raises(PluginPathError, match=r"write striped$"):  # settings never name files
        camera_class(str(lab / "striped.py"), None)
    with pytest.raises(UnknownPluginError, match=r"in .*cameras: striped\. Set SOURCE"):
        camera_class("spotted", tmp_path)
    with pytest.raises(PluginLoadError, match="has no camera class 'Nope'; it has: StripedCamera"):
        camera_class("striped:Nope", tmp_path)
    # A module name outside the package never imports anything: settings are data.
    for name in ("os:system", "tests.unit.core.test_plugins:Base", "striped"):
        with pytest.raises(UnknownPluginError):
            camera_class(name, None)


def test_a_changed_lab_module_is_imported_again(tmp_path: Path) -> None:
    path = write_module(tmp_path, "versioned", "VERSION = 1\n")
    assert import_file(path).VERSION == 1
    assert import_file(path) is import_file(path)  # unchanged: the same module
    path.write_text("VERSION = 2\n")  # a later modification time, set: coarse clocks
    stamp = path.stat().st_mtime_ns + 10_000_000
    os.utime(path, ns=(stamp, stamp))
    assert import_file(path).VERSION == 2
    path.write_text("raise ValueError('half-written')\n")
    os.utime(path, ns=(stamp + 10_000_000, stamp + 10_000_000))
    with pytest.raises(PluginLoadError, match=r"versioned.py.*ValueError: half-written"):
        import_file(path)


def test_probing_every_model_format_needs_no_torch() -> None:
    """Every built-in format loads and recognises paths without PyTorch (an optional extra)."""
    code = (
        "import sys\n"
        "from deeplabstream.pose.loading import BUNDLED_MODEL, model_keypoints\n"
        "from deeplabstream.pose.model_format import format_of, model_formats\n"
        "formats, failures = model_formats()\n"
        "assert len(formats) == 6 and not failures, failures\n"
        "assert type(format_of(BUNDLED_MODEL)).__name__ == 'OwnModel'\n"
        "assert model_keypoints(None)[0] == 'nose'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


RECORDED_DEVICE = """
from pathlib import Path

Path(__file__).with_suffix(".ran").write_text("imported")
from deeplabstream.hardware.stimulation.log_device import LogStimulator


class Marked(LogStimulator):
    '''The lab's device, as recorded.'''
"""


def test_only_recorded_code_runs_and_only_unchanged(tmp_path: Path) -> None:
    """verify's rule: the file session.json recorded (path, SHA-256), never one found by name."""
    from deeplabstream.core.digest import file_sha256
    from deeplabstream.core.plugins import only_recorded_code, recorded_code

    lab = tmp_path / "lab"
    recorded = write_module(lab / "devices", "marked", RECORDED_DEVICE)
    stranger = write_module(lab / "devices", "stranger", RECORDED_DEVICE)
    elsewhere = tmp_path / "session" / "devices"  # a folder that only names the same stem
    planted = write_module(elsewhere, "marked", RECORDED_DEVICE)
    digest = file_sha256(recorded)
    with only_recorded_code({recorded: digest}):
        assert recorded_code() == {recorded.resolve(): digest}
        assert DEVICES.get("marked", tmp_path / "session").__name__ == "Marked"
        with pytest.raises(UnknownPluginError):  # in the lab's folder, but not recorded
            DEVICES.get("stranger", lab)
        with pytest.raises(PluginError, match="not among the files the session recorded"):
            import_file(planted)
        recorded.write_text(RECORDED_DEVICE + "\n# edited\n", encoding="utf-8")
        stamp = recorded.stat().st_mtime_ns + 10_000_000
        os.utime(recorded, ns=(stamp, stamp))
        with pytest.raises(PluginError, match="changed since it was recorded"):
            DEVICES.get("marked", lab)
    assert recorded_code() is None
    assert recorded.with_suffix(".ran").is_file()  # it ran while unchanged
    assert not stranger.with_suffix(".ran").exists()
    assert not planted.with_suffix(".ran").exists()
