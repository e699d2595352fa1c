"""Issue 28's "done when", on a real display: a lab's own DeepLabCut model, set up in the window.

The driver (``tests/support/new_user_dlc.py``) runs the app on Xvfb with Qt's own xcb plugin and
does with widgets, dialogs and mouse events what the new user could not: from the default
settings, the DeepLabCut 3.0 model and its open-field clip, the example experiment's keypoints
mapped onto the model's, a region drawn on the live view with a 100 ms pulse on entry on the log
device, stream, analysis, recording and experiment started. This test checks the files it left:
the pulses in ``events.csv``, the config the window wrote (comments kept, the shipped one
untouched), the settings saved, and no traceback for anything the user did.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deeplabstream.app.display.screen import missing_xcb_libraries
from deeplabstream.experiments.config.parse import load_experiment_config
from deeplabstream.experiments.registry import CONFIG_FOLDER, config_file_of
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.xvfb import xvfb_run

DRIVER = PROJECT_ROOT / "tests" / "support" / "new_user_dlc.py"
HANG_S = 1200  # the driver gives up on any one step after 300 s; this only ends a hang


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_a_new_user_wires_their_deeplabcut_model_to_a_region_pulse_from_the_window(
    tmp_path: Path,
) -> None:
    data = shared_data("dlc3-openfield-cspnext_s")
    assert missing_xcb_libraries() == [], "scripts/setup.sh installs every xcb library"
    shipped = (CONFIG_FOLDER / "ExampleExperiment.ini").read_bytes()
    settings = tmp_path / "settings.ini"
    shutil.copy(PROJECT_ROOT / "settings.ini", settings)  # the default settings
    result_file = tmp_path / "result.json"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "xcb",  # the real X11 plugin, on Xvfb's display
        "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "instance.lock"),
    }
    run = subprocess.run(
        [*xvfb_run("1600x1000"), sys.executable, str(DRIVER),
         str(settings), str(tmp_path / "out"), str(result_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    result = json.loads(result_file.read_text())

    # The Rig tab named the keypoint and the model's keypoints, and offered snout for nose.
    assert "'nose'" in result["rig_problem"]
    assert "snout, leftear, rightear, tailbase" in result["rig_problem"]
    assert result["offered"] == "snout" and result["keypoint_choice"] == "snout"
    assert (result["device"], result["edge"]) == ("stimulus_box", "on entry")

    # The shipped example is untouched; the window wrote a copy into the lab's experiments/
    # folder beside the settings, which the settings' NAME, as the user wrote it, now reads.
    assert (CONFIG_FOLDER / "ExampleExperiment.ini").read_bytes() == shipped
    config = Path(result["config"])
    assert config.parent.resolve() == (tmp_path / "experiments").resolve()
    text = config.read_text()
    assert text.startswith("# DeepLabStream's example experiment")  # comments kept
    loaded = load_experiment_config(config)
    region, camera = result["region"], result["camera"]
    assert loaded.triggers["nose_in_left"].params["keypoint"] == "snout"
    assert loaded.triggers[region].params["keypoint"] == "snout"
    assert loaded.triggers[region].params["camera"] == camera
    pulse = loaded.stimulations[f"{region}_action"]
    assert (pulse.device, pulse.command, pulse.duration) == ("stimulus_box", "pulse", 0.1)
    rule = next(r for r in loaded.rules if r.when == (region,))
    assert rule.edge == "rising" and rule.do == (f"{region}_action",)

    # The settings the window saved name the model, the clip and the copy.
    saved = configparser.ConfigParser(interpolation=None)
    saved.read(settings)
    model = next((data / "model").glob("*.pt")).resolve()
    assert Path(saved["Pose"]["MODEL_PATH"]).resolve() == model
    assert saved["Experiment"]["NAME"] == "ExampleExperiment"  # as the user wrote it (issue 53)
    assert config_file_of("ExampleExperiment", tmp_path) == config.resolve()  # it reads the copy
    assert saved[f"Camera {camera}"]["SOURCE"] == "video"
    assert "Camera arena" not in saved

    # The region's pulses are in events.csv, each in the update the snout entered.
    session = Path(result["session"])
    events = pd.read_csv(session / "events.csv")
    pulses = events[
        (events["kind"] == "action")
        & (events["detail"] == f"pulse channel=0 duration_s=0.1 reason={region}_action")
    ]
    entries = events[(events["kind"] == "trigger") & (events["name"] == region)]
    assert len(pulses) >= 2, events.to_string()
    entered = set(entries[entries["detail"].str.startswith("true")]["time_s"])
    assert set(pulses["time_s"]) <= entered
    assert (pulses["keypoint"] == "snout").all() and (pulses["camera"] == camera).all()
    assert "Traceback" not in (session / "session.log").read_text()
