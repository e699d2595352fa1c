"""A lab's plugins from an installed distribution, used by name in a real DeepLabStream.py run.

``tests/fixtures/lab_plugins`` is a tiny distribution (its own ``pyproject.toml``) that declares
a camera (``deeplabstream.cameras``: ``lab_gradient``), a trigger kind
(``deeplabstream.triggers``: ``lab_every_nth``) and an output (``deeplabstream.outputs``:
``lab_frames``) as entry points. pip builds and installs it (offline, into a folder put on
``PYTHONPATH``), and a settings file and an experiment config name them: the camera streams its
frames, the trigger fires, and its events are in events.csv; the output writes its file per
camera in the worker and its summary after the session. Without the distribution the same
settings are refused before the start, in the wording every plugin kind uses.
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

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lab_plugins"
FRAMES = 90
EVERY = 10

SETTINGS = (
    "[Camera lab]\nSOURCE = lab_gradient\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n\n"
    "[Device led]\nTYPE = log\n\n[Experiment]\nNAME = {config}\n"
)
CONFIG = (
    f"[Trigger tick]\nKIND = lab_every_nth\nN = {EVERY}\n\n"
    "[Stimulation flash]\nDEVICE = led\nCOMMAND = pulse\nDURATION = 0.05\n\n"
    "[Rule flash_on_tick]\nWHEN = tick\nDO = flash\n"
)


def install(tmp_path: Path) -> Path:
    """Build and install the fixture distribution into a folder of its own; return it."""
    source = tmp_path / "lab_plugins"
    shutil.copytree(FIXTURE, source)  # setuptools writes its build files beside the sources
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (site / "dls_lab_plugins-0.1.dist-info" / "entry_points.txt").is_file()
    return site


def run(tmp_path: Path, site: Path | None, extra: str = "") -> subprocess.CompletedProcess:
    config = tmp_path / "every_nth.ini"
    config.write_text(CONFIG)
    settings = write_settings(tmp_path, SETTINGS.format(config=config) + extra)
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "dls.lock")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--pose-enabled", "--experiment-enabled", "--frames", str(FRAMES),
         "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.slow
def test_an_installed_camera_and_trigger_run_by_name(tmp_path: Path) -> None:
    result = run(tmp_path, install(tmp_path))
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["cameras"]["lab"]["frames_captured"] == FRAMES
    # session.json names the installed plugins and their distribution.
    assert info["plugins"]["camera"] == {"lab_gradient": "distribution dls-lab-plugins 0.1"}
    trigger_origin = info["experiment"]["plugins"]["trigger"]["lab_every_nth"]
    assert trigger_origin == "distribution dls-lab-plugins 0.1"
    events = pd.read_csv(session / "events.csv")
    ticks = events[(events["kind"] == "trigger") & (events["name"] == "tick")]
    fired = ticks[ticks["detail"] == "true"]
    # True on observations 10, 20, ...: at least 10 frames apart (a frame may go unanalysed).
    assert len(fired) >= 3 and fired["frame_index"].iloc[0] >= EVERY - 1
    assert (fired["frame_index"].diff().dropna() >= EVERY).all()
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    assert pulses["frame_index"].tolist() == fired["frame_index"].tolist()
    assert all("reason=flash_on_tick" in detail for detail in pulses["detail"])


def test_without_the_distribution_the_names_are_refused_before_the_start(tmp_path: Path) -> None:
    result = run(tmp_path, None)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "[Camera lab] SOURCE = 'lab_gradient': unknown camera 'lab_gradient'; known: " in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


OUTPUT_EVERY = 3
OUTPUT_SECTION = f"\n[Output lab_frames]\nEVERY = {OUTPUT_EVERY}\n"


@pytest.mark.slow
def test_an_installed_output_writes_its_files_live_and_after_the_session(tmp_path: Path) -> None:
    result = run(tmp_path, install(tmp_path), OUTPUT_SECTION)
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["lab"]
    # Live, in the worker: every 3rd analysed frame, its rows counted in session.json.
    rows = pd.read_csv(session / "lab.lab_frames.csv")
    assert len(rows) == figures["frames_analysed"] // OUTPUT_EVERY > 0
    assert figures["lab_frames_rows"] == len(rows)
    analysed = pd.read_csv(session / "lab.pose_times.csv").query("analysed == 1")["frame_index"]
    assert rows["frame_index"].tolist() == analysed.tolist()[OUTPUT_EVERY - 1 :: OUTPUT_EVERY]
    # After the session, from the finished folder; its settings in session.json.
    summary = json.loads((session / "lab_frames.json").read_text())
    assert summary == {"rows": {"lab.lab_frames.csv": len(rows)}, "every": OUTPUT_EVERY}
    assert info["settings"]["outputs"] == {"lab_frames": {"EVERY": OUTPUT_EVERY}}
    assert info["errors"] == []


def test_without_the_distribution_the_output_is_refused_before_the_start(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n" + OUTPUT_SECTION)
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "dls.lock")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--settings", str(settings),
         "--headless", "--pose-enabled", "--frames", "10", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    known = "known: annotated_video, ibl, lsl, nwb, pose, slp"
    assert f"[Output lab_frames]: unknown output 'lab_frames'; {known}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
