"""One headless session with a lab plugin of each of the seven kinds, from docs/plugins.md.

The page's files are written into a lab folder beside a settings file (tests/support/
plugin_page.py): the camera ``lab_arena`` (the simulated open field), the model format
``lab_json`` (a JSON description of the bundled arena model's graph), the backend ``lab_onnx``,
the experiment ``lab_protocol`` with the trigger kind ``nose_left``, the device ``lab_led`` and the
output ``nose_csv``. Nothing is installed: every process (the capture process, the inference
worker; spawned under the emulated Windows and macOS rules) finds them in the lab's folders. The
device gets exactly the commands events.csv says were sent, the output writes a row per analysed
frame, the lab trigger fires, and session.json names each plugin and where it came from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.paths import PROJECT_ROOT
from tests.support.platforms import EMULATED_PLATFORMS, emulated_env
from tests.support.plugin_page import PAGE, write_lab
from tests.support.processes import only_session

FRAMES = 180  # 12 s at 15 fps: the seed-2 mouse's nose goes left of X = 100 at least once
SEED_2 = "[Camera arena]\nSEED = 2\n"


def run_session(
    tmp_path: Path, platform: str | None, page: Path = PAGE, extra: str = ""
) -> tuple[Path, Path]:
    """Run the page's lab in one headless session; return the lab and the session folders."""
    lab = tmp_path / "lab"
    lab.mkdir()
    settings = write_lab(lab, page, settings_extra=SEED_2 + extra, strict=page == PAGE)
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "dls.lock")}
    if platform is not None:
        env |= emulated_env(platform, tmp_path / "locks")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--pose-enabled", "--experiment-enabled", "--frames", str(FRAMES),
         "--output-dir", str(tmp_path / "out"), "--deadline", "off"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lab, only_session(tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize(
    "platform", [None, *EMULATED_PLATFORMS], ids=["native", *EMULATED_PLATFORMS]
)
def test_one_session_runs_a_lab_plugin_of_every_kind(tmp_path: Path, platform: str | None) -> None:
    lab, session = run_session(tmp_path, platform)
    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    assert info["status"] == "finished" and info["errors"] == [], info["errors"]

    # Camera, format and backend: the lab's model ran on the lab's frames.
    assert info["cameras"]["arena"]["source"] == "lab_arena"
    assert info["cameras"]["arena"]["frames_captured"] == FRAMES
    model = info["pose"]["model"]
    assert (model["framework"], model["provider"]) == ("lab-json", "LabOnnx cpu")
    figures = info["pose"]["cameras"]["arena"]
    analysed = figures["frames_analysed"]
    pose = pd.read_csv(session / "arena.pose_times.csv").query("analysed == 1")

    # The output: a row per analysed frame, counted in session.json, the model's nose in it.
    rows = pd.read_csv(session / "arena.nose.csv")
    assert len(rows) == analysed == figures["nose_rows"] > FRAMES // 3
    assert rows["frame_index"].tolist() == pose["frame_index"].tolist()
    assert rows["likelihood"].median() > 0.5  # the bundled model tracks the lab camera's mouse

    # The trigger fired, the experiment pulsed on each entry, the device got what was sent.
    events = pd.read_csv(session / "events.csv")
    entries = events[(events["kind"] == "trigger") & (events["name"] == "left")]
    assert (entries["detail"] == "true").sum() >= 1
    sent = events[(events["kind"] == "action") & events["written"].notna()]
    pulses = sent[sent["detail"].str.startswith("pulse")]
    assert len(pulses) == (entries["detail"] == "true").sum()
    assert sent["acknowledged"].notna().all()
    lines = (lab / "led_box.txt").read_text(encoding="utf-8").splitlines()
    assert lines == sent["detail"].tolist()  # one vocabulary from the rule to the box
    assert lines[0].startswith("pulse channel=0 duration_s=0.1 ")

    # session.json names every plugin and where it came from.
    def from_lab(folder: str, stem: str) -> str:
        return f"lab folder: {(lab / folder / f'{stem}.py').resolve()}"

    assert info["plugins"] == {
        "camera": {"lab_arena": from_lab("cameras", "lab_arena")},
        "device": {"lab_led": from_lab("devices", "lab_led")},
        "output": {"pose": "built in", "nose_csv": from_lab("outputs", "nose_csv")},
        "backend": {"lab_onnx": from_lab("backends", "lab_onnx")},
        "model format": {"lab_json": from_lab("formats", "lab_json")},
    }
    assert info["experiment"]["plugins"] == {
        "experiment": {"LabProtocol": from_lab("experiments", "lab_protocol")},
        "trigger": {"nose_left": from_lab("triggers", "nose_left")},
    }
