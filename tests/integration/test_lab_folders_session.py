"""The lab's plugins from its folders beside the settings file, in a real DeepLabStream.py run.

The modules of the example distribution (``tests/fixtures/lab_plugins``: a camera, a trigger
kind, an output) are copied, not installed, into ``cameras/``, ``triggers/`` and ``outputs/``
beside the settings file, with a device, a backend and a model format of the lab's own in
``devices/``, ``backends/`` and ``formats/``, and an experiment config in ``experiments/``. The
capture process and the inference worker are spawned and import them from those files (nothing
on ``PYTHONPATH``): the device receives the rule's pulses, the output writes its rows, the lab's
format reads the model and the lab's backend runs it. Natively, and under the emulated rules of
Windows and macOS (the platform-semantics tier, ``tests/support/platform_emulation``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.paths import PROJECT_ROOT
from tests.support.platforms import EMULATED_PLATFORMS, emulated_env
from tests.support.processes import only_session

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lab_plugins" / "dls_lab_plugins"
FRAMES = 60
EVERY = 10

DEVICE = '''
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.core.schema import setting
from deeplabstream.hardware.stimulation.log_device import LogStimulator


@dataclass(frozen=True)
class LabLedSettings:
    """The keys of the lab's LED: the file its actions are written to."""

    file: str = setting("led.txt", doc="Where the actions are written.")


class LabLed(LogStimulator):
    """A log device of the lab's own, whose settings class is the lab's too."""

    settings_class = LabLedSettings

    @classmethod
    def from_settings(cls, settings):
        return cls(channels=2, path=Path(settings.file))
'''

BACKEND = '''
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend


class LabRuntime(OnnxRuntimeBackend):
    """ONNX Runtime under the lab's name: the worker must find it to run the model."""

    name = "lab_runtime"
'''

FORMAT = '''
import dataclasses
from pathlib import Path

from deeplabstream.pose.formats.own_model import load_own_model
from deeplabstream.pose.model_format import ModelFormat


class LabPointer(ModelFormat):
    """A ``.labmodel`` file holding the path of a model folder of this project."""

    name = "lab-pointer"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".labmodel"

    def load(self, path, frame_size, precision):
        folder = Path(path.read_text(encoding="utf-8").strip())
        return dataclasses.replace(load_own_model(folder), framework=self.name)
'''

CONFIG = (
    f"[Trigger tick]\nKIND = lab_every_nth\nN = {EVERY}\n\n"
    "[Stimulation flash]\nDEVICE = led\nCOMMAND = pulse\nDURATION = 0.05\n\n"
    "[Rule flash_on_tick]\nWHEN = tick\nDO = flash\n"
)


def lab_folders(root: Path) -> Path:
    """Write the settings file and the lab's seven folders beside it; return the settings."""
    folders = {name: root / name for name in ("cameras", "devices", "triggers", "outputs",
                                              "backends", "formats", "experiments")}  # fmt: skip
    for folder in folders.values():
        folder.mkdir()
    shutil.copy(FIXTURE / "camera.py", folders["cameras"] / "lab_gradient.py")
    shutil.copy(FIXTURE / "triggers.py", folders["triggers"] / "lab_every_nth.py")
    shutil.copy(FIXTURE / "outputs.py", folders["outputs"] / "lab_frames.py")
    (folders["devices"] / "lab_led.py").write_text(DEVICE, encoding="utf-8")
    (folders["backends"] / "lab_runtime.py").write_text(BACKEND, encoding="utf-8")
    (folders["formats"] / "lab_pointer.py").write_text(FORMAT, encoding="utf-8")
    (folders["experiments"] / "flash.ini").write_text(CONFIG, encoding="utf-8")
    bundled = PROJECT_ROOT / "src" / "deeplabstream" / "pose" / "bundled" / "arena"
    (root / "arena.labmodel").write_text(str(bundled), encoding="utf-8")
    settings = root / "settings.ini"
    settings.write_text(
        "[Camera lab]\nSOURCE = lab_gradient\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n\n"
        f"[Device led]\nTYPE = lab_led\nFILE = {root / 'led.txt'}\n\n"
        f"[Pose]\nBACKEND = lab_runtime\nMODEL_FORMATS = lab_pointer\n"
        f"MODEL_PATH = {root / 'arena.labmodel'}\n\n"
        # No deadline: a loaded machine's late frames are not what the lab's plugins are tested on.
        "[Experiment]\nNAME = flash\nDEADLINE_MS = off\n\n[Output lab_frames]\nEVERY = 3\n",
        encoding="utf-8",
    )
    return settings


@pytest.mark.parametrize(
    "platform",
    ["native", *(pytest.param(name, marks=pytest.mark.slow) for name in EMULATED_PLATFORMS)],
)
def test_the_labs_plugins_run_from_their_folders_in_spawned_processes(
    tmp_path: Path, platform: str
) -> None:
    settings = lab_folders(tmp_path)
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "dls.lock")}
    env.pop("PYTHONPATH", None)  # nothing installed, nothing on the path: the folders only
    if platform != "native":  # only the emulation's sitecustomize on the path
        env = {**env, **emulated_env(platform, tmp_path / "dls.lock")}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--pose-enabled", "--experiment-enabled", "--frames", str(FRAMES),
         "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["cameras"]["lab"]["frames_captured"] == FRAMES  # the capture process's camera
    assert info["pose"]["model"]["framework"] == "lab-pointer"  # the lab's format read it
    assert info["settings"]["Pose"]["BACKEND"] == "lab_runtime"
    events = pd.read_csv(session / "events.csv")
    fired = events[(events["kind"] == "trigger") & (events["name"] == "tick")]
    fired = fired[fired["detail"] == "true"]
    assert len(fired) >= 3  # the lab's trigger kind, built in the worker from its config
    # The lab's device, opened in the worker from its settings crossed as values: a line per
    # pulse the rule sent (and the channel switched off at the end), as events.csv says it.
    written = [line.split("\t")[1] for line in (tmp_path / "led.txt").read_text().splitlines()]
    sent = events[(events["kind"] == "action") & events["written"].notna()]
    assert written == sent["detail"].tolist()
    pulses = [line for line in written if line.startswith("pulse channel=0 duration_s=0.05 ")]
    assert len(pulses) == len(fired)
    rows = pd.read_csv(session / "lab.lab_frames.csv")  # the lab's output, live in the worker
    assert len(rows) == info["pose"]["cameras"]["lab"]["frames_analysed"] // 3 > 0
    assert json.loads((session / "lab_frames.json").read_text())["every"] == 3  # and its export
    assert info["errors"] == []
