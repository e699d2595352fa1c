"""session.json's ``plugins``: each plugin the settings name, and where its code comes from."""

from __future__ import annotations

from pathlib import Path

from deeplabstream.core.plugins import code_origin, import_file, using_settings_folder
from deeplabstream.experiments.examples import AlternatingReward
from deeplabstream.live.session.plugins_used import plugins_named
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model
from deeplabstream.pose.model_format import format_entry
from deeplabstream.settings import load_settings

LAB_DEVICE = '''
from deeplabstream.hardware.stimulation.base import Action, StimulationDevice


class Buzzer(StimulationDevice):
    channel_count = 1

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def perform(self, action: Action) -> None:
        pass
'''


def test_built_ins_and_a_lab_module_are_named_with_their_origin(tmp_path: Path) -> None:
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "buzzer.py").write_text(LAB_DEVICE, encoding="utf-8")
    settings_file = tmp_path / "settings.ini"
    settings_file.write_text(
        "[Camera top]\nSOURCE = synthetic\n"
        "[Device tone]\nTYPE = buzzer\n[Device dry]\nTYPE = log\n",
        encoding="utf-8",
    )
    with using_settings_folder(None):
        settings = load_settings(settings_file)
        # The worker says which format loaded the model: the bundled model's, here.
        named = plugins_named(settings, model_formats=format_entry(load_model(BUNDLED_MODEL)))
        without_pose = plugins_named(settings, pose=False)
    lab_file = (tmp_path / "devices" / "buzzer.py").resolve()
    assert named == {
        "camera": {"synthetic": "built in"},
        "device": {"buzzer": f"lab folder: {lab_file}", "log": "built in"},
        "output": {"pose": "built in"},
        "backend": {"onnxruntime": "built in"},
        "model format": {"deeplabstream": "built in"},  # the bundled model's
    }
    assert set(without_pose) == {"camera", "device", "output"}


def test_code_origin_tells_the_package_a_lab_file_and_an_installed_module(tmp_path: Path) -> None:
    assert code_origin(AlternatingReward) == "built in"
    path = tmp_path / "devices" / "buzzer.py"
    path.parent.mkdir()
    path.write_text(LAB_DEVICE, encoding="utf-8")
    module = import_file(path)
    assert code_origin(module.Buzzer) == f"lab folder: {path.resolve()}"
    assert code_origin(Path).startswith("module pathlib")  # the standard library: no package
