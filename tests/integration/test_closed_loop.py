"""The whole closed loop: camera -> pose -> experiment -> device; events and latency on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.firmware import Simulator, pin_of
from tests.support.files import write_settings
from tests.support.in_process import headless_here
from tests.support.processes import only_session, run_cli

LEFT, RIGHT = (160.0, 240.0, 60.0), (480.0, 240.0, 60.0)  # ExampleExperiment.ini's circles


def _entries(nose: np.ndarray, frames: np.ndarray, circle: tuple[float, float, float]) -> list:
    """Frames (of those given) where the nose goes from outside the circle to inside."""
    x, y, r = circle
    inside = np.hypot(nose[:, 0] - x, nose[:, 1] - y) <= r
    return [int(frames[i]) for i in range(1, len(frames)) if inside[i] and not inside[i - 1]]


def _truth_nose(session: Path, frames: pd.Index) -> np.ndarray:
    truth = pd.read_csv(session / "arena.truth.csv", header=[0, 1, 2], index_col=0)
    return truth.loc[frames, ("simulation", "nose")][["x", "y"]].to_numpy()


@pytest.mark.slow  # tens of seconds: CI's second step
def test_done_when_example_experiment_events_match_the_ground_truth(tmp_path: Path) -> None:
    result = run_cli(
        "--headless", "--experiment-enabled", "--frames", "900", "--output-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path)
    events = pd.read_csv(session / "events.csv")
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0).dropna(how="all")
    nose = _truth_nose(session, pose.index)  # truth on the frames the experiment saw
    for trigger, circle in (("nose_in_left", LEFT), ("nose_in_right", RIGHT)):
        expected = _entries(nose, pose.index.to_numpy(), circle)
        fired = events[
            (events["kind"] == "trigger")
            & (events["name"] == trigger)
            & (events["detail"] == "true")
        ]["frame_index"].tolist()
        assert len(fired) == len(expected), (trigger, fired, expected)
        # Poses are within a pixel of the truth: an entry may show a frame early or late.
        assert all(abs(a - b) <= 2 for a, b in zip(fired, expected, strict=True))
    actions = events[events["kind"] == "action"]
    pulses = actions[actions["detail"].str.startswith("pulse")]
    assert len(pulses) == sum(len(_entries(nose, pose.index.to_numpy(), c)) for c in (LEFT, RIGHT))
    # Every pulse carries its times: frame arrival <= pose ready <= decided <= written.
    assert (pulses["host_timestamp"] <= pulses["pose_ready"]).all()
    assert (pulses["pose_ready"] <= pulses["decided"]).all()
    assert (pulses["decided"] <= pulses["written"]).all()
    info = json.loads((session / "session.json").read_text())
    experiment = info["experiment"]
    assert experiment["name"] == "ExampleExperiment"
    assert experiment["events_file"] == "events.csv"
    if len(pulses):
        latency = experiment["latency_ms"]["frame_to_command_written"]
        assert 0 < latency["p50"] <= latency["max"]
    assert "experiment ExampleExperiment" in result.stdout


def test_closed_loop_drives_the_real_firmware_under_simavr(tmp_path: Path, built) -> None:
    simulator = Simulator(tmp_path)
    try:
        settings = write_settings(
            tmp_path,
            "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = waypoints\n"
            "WAYPOINTS = 0: 320 240; 10: 320 240; 40: 150 240; 100: 150 240\n"
            "[Experiment]\nNAME = ExampleExperiment\n"
            f"[Device stimulus_box]\nTYPE = serial\nPORT = {simulator.port}\n",
        )
        result = run_cli(
            "--settings",
            str(settings),
            "--headless",
            "--experiment-enabled",
            "--frames",  # the nose enters near frame 28; its 1 s pulse has ended by frame 70
            "100",
            "--output-dir",
            str(tmp_path / "out"),
        )
        assert result.returncode == 0, result.stderr
    finally:
        simulator.stop()
    session = only_session(tmp_path / "out")
    events = pd.read_csv(session / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    assert len(pulses) == 1  # the nose enters the left circle once on this path
    assert pulses["detail"].iloc[0].startswith("pulse channel=1")
    assert pulses["acknowledged"].iloc[0] >= pulses["written"].iloc[0]  # the board's ACK
    # The board raised channel 1's pin for the commanded second, in its own time.
    changes = simulator.changes(pin_of(1))
    assert [c.level for c in changes[:2]] == [1, 0]
    assert changes[1].time_ns - changes[0].time_ns == pytest.approx(1e9, abs=1e6)
    latency = json.loads((session / "session.json").read_text())["experiment"]["latency_ms"]
    assert (
        latency["frame_to_device_acknowledged"]["p50"] >= latency["frame_to_command_written"]["p50"]
    )


def test_an_undeclared_device_stops_before_streaming(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Experiment]\nNAME = ExampleExperiment\n"
    )
    result = headless_here(
        "--settings",
        str(settings),
        "--headless",
        "--experiment-enabled",
        "--frames",
        "30",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2  # refused before anything starts (live/session/preflight.py)
    assert "stimulus_box" in result.stderr and "[Device stimulus_box]" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_serial_port_names_the_port(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\n"
        "[Device stimulus_box]\nTYPE = serial\nPORT = /dev/ttyNOPE9\n",
    )
    result = headless_here(
        "--settings",
        str(settings),
        "--headless",
        "--experiment-enabled",
        "--frames",
        "30",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2  # refused before the start (issue 37): nothing made
    assert "/dev/ttyNOPE9" in result.stderr and "[Device stimulus_box]" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow  # tens of seconds: CI's second step
def test_the_board_vanishing_mid_session_stops_the_experiment_not_the_stream(
    tmp_path: Path,
    built,
) -> None:
    import subprocess
    import sys
    import time

    from tests.support.paths import PROJECT_ROOT

    simulator = Simulator(tmp_path)
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 320 240; 30: 320 240; 80: 150 240; 110: 320 240; 200: 320 240; "
        "250: 150 240; 300: 150 240\n"
        "[Experiment]\nNAME = ExampleExperiment\n"
        f"[Device stimulus_box]\nTYPE = serial\nPORT = {simulator.port}\n",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "DeepLabStream.py"),
            "--settings",
            str(settings),
            "--headless",
            "--experiment-enabled",
            "--frames",
            "300",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        pose_file = None
        while time.monotonic() < deadline:  # wait until the first entry has been acted on
            sessions = list((tmp_path / "out").glob("*/arena.pose.csv"))
            if sessions and sessions[0].read_text().count("\n") > 150:
                pose_file = sessions[0]
                break
            time.sleep(0.1)
        assert pose_file is not None, process.communicate()
        simulator.process.kill()  # the board is unplugged
        stdout, stderr = process.communicate(timeout=120)
    finally:
        simulator.stop()
    assert process.returncode == 1
    assert "experiment stopped: device 'stimulus_box'" in stdout + stderr
    session = pose_file.parent
    events = pd.read_csv(session / "events.csv")  # intact, readable
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    # The first entry's pulse was written and acknowledged; the second was decided, but the
    # board was gone: its event stays, with no write or acknowledgement time.
    assert len(pulses) == 2
    assert pulses["acknowledged"].notna().tolist() == [True, False]
    assert pulses["written"].notna().tolist() == [True, False]
    # ... and says it was never sent (issue 37): no row reads as a command that left.
    not_sent = pulses["not_sent"].fillna("")
    assert not_sent.iloc[0] == "" and not_sent.iloc[1].startswith("not sent: device gone (")
    pose = pd.read_csv(pose_file, header=[0, 1, 2], index_col=0)
    assert pose.index.max() > 280  # pose estimation went on to the end
    info = json.loads((session / "session.json").read_text())
    assert info["cameras"]["arena"]["frames_captured"] == 300
    assert info["experiment"]["error"].startswith("experiment stopped")
    assert info["experiment"]["actions_not_sent"] == (events["not_sent"].fillna("") != "").sum()
    assert info["experiment"]["actions_not_sent"] >= 1


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_the_on_screen_stimulus_in_the_loop_offscreen(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 320 240; 30: 320 240; 90: 150 240; 120: 150 240\n"
        "[Experiment]\nNAME = ExampleExperiment\n"
        "[Device stimulus_box]\nTYPE = visual\nCOLORS = black, white, #00ff00\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--experiment-enabled",
        "--frames",
        "210",  # the pulse at about frame 80: 4 s left to paint and acknowledge on a busy machine
        "--output-dir",
        str(tmp_path / "out"),
        env={"QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    events = pd.read_csv(only_session(tmp_path / "out") / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    assert pulses["detail"].tolist() == ["pulse channel=1 duration_s=1 reason=left_entry"]
    assert (pulses["acknowledged"] >= pulses["written"]).all()  # painted, then acknowledged


def test_image_features_get_the_frames_live(tmp_path: Path) -> None:
    experiment = tmp_path / "motion.ini"
    experiment.write_text(
        "[Experiment]\nDESCRIPTION = motion energy in the whole arena\n"
        "[Trigger moving]\nKIND = motion_energy_above\nROI = 0 0 640 480\nTHRESHOLD = 0.01\n"
        "[Stimulation flash]\nDEVICE = stimulus_box\nCOMMAND = pulse\nCHANNEL = 0\n"
        "DURATION = 0.05\n[Rule go]\nWHEN = moving\nEDGE = rising\nDO = flash\n"
    )
    result = run_cli(
        "--headless",
        "--experiment-enabled",
        "--experiment",
        str(experiment),
        "--frames",
        "60",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    events = pd.read_csv(only_session(tmp_path / "out") / "events.csv")
    fired = events[(events["kind"] == "trigger") & (events["name"] == "moving")]
    assert fired["frame_index"].min() <= 3  # noise alone moves pixels from the second frame on
