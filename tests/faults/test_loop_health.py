"""A degraded loop never reports itself healthy (issue 25, cases 1-4 and 12).

Each test runs ``DeepLabStream.py`` as a lab would and degrades the loop on purpose: an
experiment whose update sleeps, the pose worker stopped (SIGSTOP) or killed (SIGKILL), a full
disk, a killed recorder. Each checks the named error or warning, the exit code, and that every
frame is counted (whole counts), and that the summary the CLI prints is the one rendered from
``session.json``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deeplabstream.core.deadline import STAGES
from deeplabstream.live.selftest.benchmark_mode import tail_frames
from deeplabstream.live.session.report.health import STAGE_WORDS
from deeplabstream.live.session.report.summary import summary_lines
from tests.faults.test_disk_faults import (
    fill,
    small_disk,  # noqa: F401 (a fixture)
)
from tests.faults.test_disk_faults import run as run_on_disk
from tests.faults.test_session_faults import SETTINGS, start, wait_for_session
from tests.support.files import with_key, write_settings
from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
DEVICE = "[Device stimulus_box]\nTYPE = log\n"
SLOW_EXPERIMENT = '''
import time
from deeplabstream.experiments.base import Experiment


class SlowUpdate(Experiment):
    """Sleeps 0.5 s in every update: a loop degraded on purpose."""

    def on_update(self, obs, t):
        time.sleep(0.5)
        return []
'''
SOMETIMES_SLOW_EXPERIMENT = '''
import time
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class SometimesSlow(Experiment):
    """A pulse on every update; every 3 s of frame time one update first sleeps 0.6 s."""

    def __init__(self):
        super().__init__()
        self.declare_output("stimulus_box", 0)
        self.slowed = 0

    def on_update(self, obs, t):
        if t // 3 > self.slowed:  # a tail on purpose, whatever the rate of analysis
            self.slowed += 1
            time.sleep(0.6)
        return [Action.pulse("stimulus_box", 0, 0.005, reason="tail test")]
'''


# These tests judge the default deadline (tests.support.files turns it off for other tests).
DEFAULT_DEADLINE = "[Experiment]\nDEADLINE_MS = auto\n"


def cli(tmp_path: Path, settings: str, *args: str) -> subprocess.CompletedProcess[str]:
    if "DEADLINE_MS" not in settings:  # these tests judge the default deadline: say so
        settings = with_key(settings, "Experiment", "DEADLINE_MS = auto")
    path = write_settings(tmp_path, settings, name="health.ini")
    return subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings", str(path),
         "--output-dir", str(tmp_path / "out"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def session_of(out: Path) -> tuple[Path, dict]:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder, json.loads((folder / "session.json").read_text())


def assert_summary_is_session_json(stdout: str, folder: Path, info: dict) -> None:
    """The CLI's final lines are exactly those rendered from session.json."""
    lines = summary_lines(info, folder)
    printed = stdout.splitlines()
    start_at = printed.index(lines[0])
    assert printed[start_at : start_at + len(lines)] == lines


def every_frame_counted(figures: dict) -> int:
    return (
        figures["frames_analysed"]
        + figures["frames_skipped"]
        + figures["frames_lost"]
        + figures["frames_not_analysed_worker_gone"]
    )


def test_an_experiment_slower_than_the_deadline_is_an_error_naming_its_update(tmp_path):
    experiment = tmp_path / "slow.py"
    experiment.write_text(SLOW_EXPERIMENT, encoding="utf-8")
    result = cli(
        tmp_path, SETTINGS + DEVICE, "--experiment-enabled", "--experiment", str(experiment),
        "--frames", "90",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    folder, info = session_of(tmp_path / "out")
    figures = info["pose"]["cameras"]["arena"]
    health = info["health"]["cameras"]["arena"]
    # Every analysed frame waited for a 0.5 s update: each is late, and the update is to blame.
    assert figures["frames_analysed"] >= 3
    assert health["frames_checked"] == health["misses"] == figures["frames_analysed"]
    assert health["misses_by_stage"]["experiment"] == health["misses"]
    assert health["deadline_ms"] == 100.0  # three frame intervals at 30 fps
    assert every_frame_counted(figures) == info["cameras"]["arena"]["frames_captured"] == 90
    (update,) = info["health"]["experiments"]
    assert update["name"] == "SlowUpdate" and update["update_ms"]["p50"] >= 497  # 0.5 s, to 0.6 %
    assert update["update_ms"]["count"] == figures["frames_analysed"]
    assert info["health"]["verdict"] == "error"
    message = f"{health['misses']} of {health['misses']} analysed frames (100.0 %) missed the "
    message += "100.0 ms deadline"
    (error,) = [e for e in info["errors"] if message in e]
    assert "the experiment's update" in error and "its update took p50" in error
    assert f"error: {error}" in result.stdout
    timing = pd.read_csv(folder / "arena.pose_timing.csv")
    assert (timing["deadline_stage"] == "experiment").all()
    assert_summary_is_session_json(result.stdout, folder, info)


def test_pose_estimation_alone_above_the_tolerance_is_an_error_naming_the_stage(tmp_path):
    # A deadline shorter than any frame's way to its pose (the model alone takes 1-4 ms): every
    # analysed frame is late on purpose, whatever the machine's load, and no experiment runs.
    result = cli(
        tmp_path, SETTINGS + "[Experiment]\nDEADLINE_MS = 0.5\n", "--pose-enabled",
        "--frames", "60",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    folder, info = session_of(tmp_path / "out")
    assert "experiment_runs" not in info or info["experiment_runs"] == []
    figures = info["pose"]["cameras"]["arena"]
    health = info["health"]["cameras"]["arena"]
    assert health["deadline_ms"] == 0.5
    assert health["frames_checked"] == health["misses"] == figures["frames_analysed"] >= 3
    stage = max(health["misses_by_stage"], key=lambda name: health["misses_by_stage"][name])
    assert info["health"]["verdict"] == "error"
    message = (
        f"camera 'arena': {health['misses']} of {health['misses']} analysed frames (100.0 %) "
        f"missed the 0.5 ms deadline (tolerance 1 %), {health['misses_by_stage'][stage]} of "
        f"them in {STAGE_WORDS[stage]}; frame -> end of the loop p50 "
    )
    (error,) = [e for e in info["errors"] if e.startswith(message)]
    assert info["health"]["problems"] == [error]
    assert f"error: {error}" in result.stdout and "warning:" not in result.stdout
    assert every_frame_counted(figures) == info["cameras"]["arena"]["frames_captured"] == 60
    assert_summary_is_session_json(result.stdout, folder, info)


def default_session_settings() -> str:
    """The checkout's own settings.ini, as shipped (no free-space limits: a test's disk)."""
    text = (ROOT / "settings.ini").read_text(encoding="utf-8")
    assert "DEADLINE_MS" not in text  # the default deadline: auto
    text = re.sub(r"(?m)^MIN_FREE_SPACE = .*$", "MIN_FREE_SPACE = 0", text)
    return re.sub(r"(?m)^WARN_FREE_SPACE = .*$", "WARN_FREE_SPACE = 0", text)


@pytest.mark.slow
def test_a_healthy_session_on_the_default_deadline_ends_ok(tmp_path):
    """The default deadline (three frame intervals, 100 ms at 30 fps) fails no healthy loop.

    The shipped settings: the simulated arena paced at 30 fps, 640x480, the bundled model and
    the default experiment, for 3 s. A healthy loop finishes a frame in a few ms; a loaded
    machine delays some frames by tens of ms, and a session fails only on 3 late frames and
    more than 1 % of them (docs/performance.md). Beside two busy loops on this project's
    2-core machine (load average 12-14 with other work) the slowest frames took 40-114 ms,
    2 beyond the deadline at most; a machine loaded far beyond that delays frames by hundreds
    of ms, and the loop is then truly late (this test fails as the session should).
    """
    settings = tmp_path / "default.ini"  # not write_settings: it turns the deadline off
    settings.write_text(default_session_settings(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--experiment-enabled",
         "--frames", "90"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = session_of(tmp_path / "out")
    figures = info["pose"]["cameras"]["arena"]
    health = info["health"]
    assert health["deadline"]["setting"] == "auto" and health["deadline"]["applies"] is True
    camera = health["cameras"]["arena"]
    assert camera["deadline_ms"] == 100.0
    assert camera["frames_checked"] == figures["frames_analysed"] > 0
    assert health["stalls"]["count"] == 0
    (experiment,) = health["experiments"]
    assert experiment["name"] == "ExampleExperiment" and experiment["update_ms"]["count"] > 0
    assert (health["verdict"], health["problems"], info.get("errors", [])) == ("ok", [], [])
    assert "warning:" not in result.stdout and "error:" not in result.stdout
    assert every_frame_counted(figures) == info["cameras"]["arena"]["frames_captured"] == 90
    assert_summary_is_session_json(result.stdout, folder, info)


@pytest.mark.slow
def test_a_stopped_pose_worker_is_a_stall_said_live_and_counted_to_the_frame(tmp_path):
    process = start(tmp_path, "--pose-enabled", "--frames", "360", extra=DEFAULT_DEADLINE)
    session, running = wait_for_session(
        tmp_path,
        lambda d: d["cameras"]["arena"]["frames_captured"] >= 90 and "pose" in d["processes"],
    )
    worker = running["processes"]["pose"]
    os.kill(worker, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:  # stopped for 4 s while frames arrive (session.json is rewritten every 2 s)
        wait_for_session(tmp_path, lambda d: d["cameras"]["arena"]["frames_captured"] >= 200)
        while time.monotonic() - stopped_at < 4.0:
            time.sleep(0.1)
    finally:
        os.kill(worker, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stdout[-3000:] + stderr[-3000:]
    info = json.loads((session / "session.json").read_text())
    stalls = info["health"]["stalls"]
    assert stalls["count"] == 1 and stalls["longest_s"] >= 3.5
    (stall,) = stalls["list"]
    assert stalls["frames_not_analysed"] == stall["frames"] > 60
    # Said live (the status line too: a stalled loop never shows its last latency), then counted.
    live = "analysis stalled: no pose of camera 'arena' for "
    assert live in stdout and "ANALYSIS STALLED for" in stdout
    # The text gives the duration to a tenth, session.json to the millisecond, each rounded
    # once from the same figure (4.1496 s is "4.1" and 4.15 there: rounding 4.15 again differs).
    said = re.compile(
        rf"analysis stalled for (\d+\.\d) s: frames {stall['first_frame']}-"
        rf"{stall['last_frame']} of camera 'arena' not analysed"
    )
    (ended,) = [error for error in info["errors"] if said.fullmatch(error)]
    match = said.fullmatch(ended)
    assert match is not None and abs(float(match[1]) - stall["duration_s"]) <= 0.051, ended
    assert stdout.index(live) < stdout.index(ended)
    # The stall's frames are exactly the empty rows between two analysed frames of the pose file.
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    analysed = pose.notna().all(axis=1)
    first, last = stall["first_frame"], stall["last_frame"]
    assert analysed[first - 1] and analysed[last + 1]
    assert not analysed[first : last + 1].any()
    figures = info["pose"]["cameras"]["arena"]
    assert every_frame_counted(figures) == 360 == len(pose)
    assert_summary_is_session_json(stdout, session, info)


@pytest.mark.slow
def test_a_killed_pose_worker_counts_every_frame_after_it_and_the_summary_does_not_crash(
    tmp_path,
):
    process = start(tmp_path, "--pose-enabled", "--frames", "240", extra=DEFAULT_DEADLINE)
    session, running = wait_for_session(
        tmp_path,
        lambda d: d["cameras"]["arena"]["frames_captured"] >= 90 and "pose" in d["processes"],
    )
    os.kill(running["processes"]["pose"], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert "Traceback" not in stderr
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["arena"]
    gone = figures["frames_not_analysed_worker_gone"]
    assert gone > 0
    assert every_frame_counted(figures) == info["cameras"]["arena"]["frames_captured"] == 240
    # One pose row per frame, those after the death empty; the table says the same.
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert figures["pose_rows"] == len(pose) == 240 and pose.index[-1] == 239
    assert pose.notna().all(axis=1).sum() == figures["frames_analysed"]
    assert len(pd.read_parquet(session / figures["pose_table"])) == 240
    assert any("frames captured after it are counted as not analysed" in e for e in info["errors"])
    assert f"{gone} not analysed (the pose worker was gone)" in stdout
    assert_summary_is_session_json(stdout, session, info)


@pytest.mark.slow
def test_the_summary_of_a_full_disk_recording_is_session_json_s(tmp_path, small_disk):  # noqa: F811
    fill(small_disk, (1 << 20) + 1_500_000)  # the reserve and about 1.5 MB of video
    result = run_on_disk(tmp_path, small_disk, "--recording-enabled", "--frames", "900")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    folder, info = session_of(small_disk / "sessions")
    camera = info["cameras"]["arena"]
    recorded, lost = camera["frames_recorded"], camera["frames_lost_in_recording"]
    assert recorded + lost == camera["frames_captured"] == 900 and 0 < recorded < 900
    assert f"arena: 900 frames captured ({camera['measured_fps']:.2f} fps), " in result.stdout
    assert f", {recorded} recorded + {lost} lost in recording," in result.stdout
    assert_summary_is_session_json(result.stdout, folder, info)


@pytest.mark.slow  # the killed recorder's counts: test_session_faults, in the default suite
def test_the_summary_of_a_killed_recorder_is_session_json_s(tmp_path):
    process = start(tmp_path, "--recording-enabled", "--frames", "150")
    session, running = wait_for_session(
        tmp_path,
        lambda d: (
            d["cameras"]["arena"]["frames_captured"] >= 60 and "recorder:arena" in d["processes"]
        ),
    )
    os.kill(running["processes"]["recorder:arena"], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-2000:]
    info = json.loads((session / "session.json").read_text())
    camera = info["cameras"]["arena"]
    recorded, lost = camera["frames_recorded"], camera["frames_lost_in_recording"]
    assert recorded + lost == 150 and lost > 0
    assert f", {recorded} recorded + {lost} lost in recording," in stdout
    assert_summary_is_session_json(stdout, session, info)


@pytest.mark.slow
def test_every_tail_frame_of_a_closed_loop_names_the_stage_that_took_its_time(tmp_path):
    experiment = tmp_path / "sometimes_slow.py"
    experiment.write_text(SOMETIMES_SLOW_EXPERIMENT, encoding="utf-8")
    # 2 of several hundred updates (8 s of frames) are slowed: the p99 is that of the others.
    settings = SETTINGS.replace("FRAMERATE = 30", "FRAMERATE = 60")
    result = cli(
        tmp_path, settings + DEVICE + "[Experiment]\nDEADLINE_MS = off\n",
        "--experiment-enabled", "--experiment", str(experiment), "--frames", "480",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, info = session_of(tmp_path / "out")
    timing = pd.read_csv(folder / "arena.pose_timing.csv")
    assert timing["command_written"].notna().all()  # a pulse on every update
    tails = tail_frames(timing)
    slowed = set(timing.loc[timing["experiment_ms"] >= 600, "frame_index"])
    assert len(slowed) >= 2
    assert slowed <= set(tails["frame_index"])  # each slowed update is a tail frame
    for _, tail in tails.iterrows():
        stages = [tail[f"{stage}_ms"] for stage in STAGES]
        assert sum(stages) == pytest.approx(tail["end_ms"], abs=0.01)
        assert tail["stage"] == STAGES[stages.index(max(stages))]
        if tail["frame_index"] in slowed:
            assert tail["stage"] == "experiment"
    # With the deadline off nothing is judged, and the session is not failed for it.
    assert info["health"]["cameras"]["arena"]["misses"] == 0
    assert info["health"]["deadline"]["applies"] is False
