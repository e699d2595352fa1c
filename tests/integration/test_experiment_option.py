"""Issue 43: ``--experiment NAME`` runs that experiment (it used to run none and say nothing).

Real ``DeepLabStream.py`` processes on the synthetic camera: ``--experiment NAME`` alone runs the
lab's experiment (its events reach ``events.csv`` and ``session.json``), ``--experiment-enabled``
keeps working, and an unknown name is refused before anything starts, listing the known ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.files import write_settings
from tests.support.in_process import headless_here
from tests.support.paths import PROJECT_ROOT

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    "[Device stimulus_box]\nTYPE = log\n"
)
# The lab's experiment, in the experiments/ folder beside the settings file.
PING = '''
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class Ping(Experiment):
    """Switches channel 1 on at its start and notes every 10th update."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def on_start(self, t):
        return [Action.on("stimulus_box", 1)]

    def on_update(self, obs, t):
        self.updates += 1
        if self.updates % 10 == 0:
            self.log("ping", f"update {self.updates}")
        return []
'''


def _arguments(tmp_path: Path, *options: str, frames: str = "60") -> list[str]:
    """The lab's folder written (settings, ``experiments/ping.py``); the command's arguments."""
    settings = write_settings(tmp_path, SETTINGS)
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "experiments" / "ping.py").write_text(PING, encoding="utf-8")
    return [
        "--headless", "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        *options, *(("--frames", frames) if frames else ()),
    ]  # fmt: skip


def _run(tmp_path: Path, *options: str, frames: str = "60") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"),
         *_arguments(tmp_path, *options, frames=frames)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _refused_here(
    tmp_path: Path, *options: str, frames: str = "60"
) -> subprocess.CompletedProcess[str]:
    """:func:`_run` for a run refused before the start: the command's main in this process."""
    return headless_here(*_arguments(tmp_path, *options, frames=frames))


def _session(tmp_path: Path) -> tuple[Path, dict]:
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    return folder, json.loads((folder / "session.json").read_text(encoding="utf-8"))


def _assert_ping_ran(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = _session(tmp_path)
    events = pd.read_csv(folder / "events.csv", keep_default_na=False)
    assert events["kind"].iloc[0] == "start" and events["name"].iloc[0] == "Ping"
    assert "note" in set(events["kind"])  # the experiment's own rows
    actions = events[events["kind"] == "action"]
    assert actions["detail"].iloc[0].startswith("on channel=1")
    assert (actions["written"] != "").all()  # every action row was sent
    assert info["experiment"]["name"] == "Ping"


def test_experiment_name_alone_runs_it(tmp_path: Path) -> None:
    _assert_ping_ran(tmp_path, _run(tmp_path, "--experiment", "ping"))


@pytest.mark.slow  # a whole session; the default step runs the same session with the name alone
def test_experiment_enabled_with_a_name_still_runs_it(tmp_path: Path) -> None:
    _assert_ping_ran(tmp_path, _run(tmp_path, "--experiment-enabled", "--experiment", "ping"))


def test_an_unknown_experiment_name_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    result = _refused_here(tmp_path, "--experiment", "pong")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--experiment ('pong')" in result.stderr and "unknown experiment 'pong'" in result.stderr
    assert "ping" in result.stderr and "examples:AlternatingReward" in result.stderr
    assert "Traceback" not in result.stderr
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_experiment_with_the_latency_test_is_a_usage_error(tmp_path: Path) -> None:
    result = _refused_here(tmp_path, "--experiment", "ping", "--latency-test", frames="")
    assert result.returncode == 2
    assert "--latency-test runs its own experiment; leave --experiment out" in result.stderr
