"""The pose worker's rows and commands when it dies, is held, or its main process is killed.

The worker writes the rows of each turn of its loop at the turn's end, after its decisions and
commands, and publishes the events ``events.csv`` lacks yet (those waiting for their device's
acknowledgement) in shared memory the main process reads (core/unwritten_rows.py). Whatever ends
it, the files then hold every frame it analysed in a turn it finished and every event it made:

- SIGKILL right after its first pulse (the example experiment, as a lab runs it): the trigger
  and the pulse are in ``events.csv``, the finish row at the experiment's latest frame time,
  the experiment named;
- SIGKILL of a 3-model ensemble's worker: every ensemble file keeps every analysed frame;
- the main process killed (its children end with it) after the files went ahead of the last
  ``session.json``: the next start's repair counts the frames from the files, and the counts
  add up (recorded + lost = captured, captured >= what the files show);
- an update holding the interpreter (its test is in test_held_processes.py, with the helpers
  here).

The protocol is tested first on its own, with a real child process killed by SIGKILL.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.core.whole_rows import flush_open_files
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES, ArenaParams, simulate_keypoints
from deeplabstream.hardware.stimulation.log_device import LogStimulator
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from deeplabstream.outputs.frames_table import count_table_rows
from deeplabstream.outputs.pose.files import read_ensemble_exact
from deeplabstream.outputs.pose.recovery import finish_events
from deeplabstream.outputs.video import count_decodable_frames
from deeplabstream.pose.loading import BUNDLED_MODEL
from tests.support.ensembles import perturbed_member
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

# Spawning and loading on a busy machine; never a bound on speed (a session's start took over
# 180 s beside six other test processes on two cores).
WAIT_LIMIT_S = 300.0
FPS = 30
# The simulated arena at its full size, as a lab tries the example experiment: the mouse's nose
# enters the right region once in the first seconds (a trigger, a trial and a pulse).
ARENA = (
    f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {FPS}\n[Device stimulus_box]\nTYPE = log\n"
)


# -- the protocol, in a real child process ------------------------------------------------------


def _decide_until_a_pulse_then_wait(folder: Path, unwritten: UnwrittenRows) -> None:
    """The worker's experiment in miniature: updates until the first pulse, then it is killed.

    Each update as the loop makes it (the update, its command to the device, the turn's end
    writing the rows); after the pulse's turn the child says so and waits to be killed: the
    pulse's rows wait for their acknowledgement, so only the shared memory has them.
    """
    runtime = ExperimentRuntime(load_experiment("ExampleExperiment"))
    writer = EventCsvWriter(folder / "events.csv")
    runtime.events.attach(writer)
    device = LogStimulator()
    device.open()
    run = ExperimentRun(
        runtime, {"stimulus_box": device}, folder / "events.csv", None, writer, unwritten
    )
    runtime.start()
    path = ArenaParams(motion="waypoints", waypoints=((0, 320.0, 80.0), (60, 480.0, 240.0)))
    for frame, points in enumerate(simulate_keypoints(path, 61)):
        keypoints = np.ones((len(KEYPOINT_NAMES), 3))
        keypoints[:, :2] = points
        observation = Observation(frame / FPS, "arena", frame, keypoints, KEYPOINT_NAMES)
        run.on_poses([observation], host_now_ns())
        flush_open_files()  # the turn's end
        if run.actions:
            break
    # Written whole under another name and renamed: the parent, polling for the name, must
    # never read it empty (CI did, once, between the create and the write).
    (folder / "pulsed.part").write_text(str(frame), encoding="ascii")
    os.replace(folder / "pulsed.part", folder / "pulsed")
    time.sleep(3600)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_the_events_a_killed_worker_had_not_written_are_appended_once_by_its_parent(tmp_path):
    context = multiprocessing.get_context("spawn")
    unwritten = UnwrittenRows(context)
    child = context.Process(target=_decide_until_a_pulse_then_wait, args=(tmp_path, unwritten))
    child.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not (tmp_path / "pulsed").exists() and time.monotonic() < deadline:
            assert child.is_alive(), "the child ended before its pulse"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(30)
    pulse_frame = int((tmp_path / "pulsed").read_text())
    events = tmp_path / "events.csv"
    assert not any(row["kind"] == "action" for row in _rows(events))  # killed before written

    summary = finish_events(events, "the worker was killed", unwritten.reached_s, unwritten)
    finish_events(events, "the worker was killed", unwritten.reached_s, unwritten)  # once only
    rows = _rows(events)
    assert [row["kind"] for row in rows].count("start") == 1
    at_pulse = [row for row in rows if row["frame_index"] == str(pulse_frame)]
    kinds = [row["kind"] for row in at_pulse]
    assert kinds[:2] == ["trigger", "trial_start"] and "action" in kinds, kinds
    (pulse,) = [row for row in at_pulse if row["kind"] == "action"]
    assert pulse["detail"].startswith("pulse channel=2") and pulse["written"]  # it was sent
    assert [row["kind"] for row in rows].count("finish") == 1
    assert rows[-1]["kind"] == "finish" and rows[-1]["detail"] == "the worker was killed"
    assert float(rows[-1]["time_s"]) == pytest.approx(pulse_frame / FPS, abs=1e-6)
    assert summary is not None and summary["name"] == "ExampleExperiment"


def test_rows_beyond_the_shared_block_are_left_out_whole_and_said(tmp_path, caplog):
    unwritten = UnwrittenRows(multiprocessing.get_context("spawn"), half_bytes=64)
    path = tmp_path / "events.csv"
    path.write_text("header\n", encoding="utf-8")
    rows = "".join(f"row {n:02d} of twenty bytes\n"[:20] + "\n" for n in range(5))
    unwritten.publish(len("header\n"), rows)
    assert unwritten.append_missing(path) == 3  # three whole rows fit in 64 bytes
    assert path.read_text(encoding="utf-8").count("\n") == 4
    assert "last 2 row(s) are lost" in caplog.text


# -- whole sessions -----------------------------------------------------------------------------


def whole_rows(path: Path) -> list[dict[str, str]]:
    """The whole rows of a table a running session writes (a cut last row left out)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def session_while_running(
    out: Path, what: Callable[[Path], bool], seen: Callable[[Path], str] = lambda _: ""
) -> Path:
    """The running session's folder once ``what(folder)`` holds (``seen``: for the failure)."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        for folder in (p for p in out.glob("*") if p.is_dir()):
            if what(folder):
                return folder
        time.sleep(0.02)
    folders = [p for p in out.glob("*") if p.is_dir()]
    pytest.fail(
        f"the session did not reach the expected state in {WAIT_LIMIT_S:.0f} s: "
        f"{[f'{f.name}: {sorted(c.name for c in f.iterdir())} {seen(f)}' for f in folders]}"
    )


def assert_every_analysed_row_kept(folder: Path, info: dict, camera: str = "arena") -> pd.DataFrame:
    """Every frame the worker analysed has its row in each pose file; session.json counts it.

    Returns ``pose_exact.csv`` (the frames analysed, with the time each update read).
    """
    timing = pd.read_csv(folder / f"{camera}.pose_timing.csv")
    exact = pd.read_csv(folder / f"{camera}.pose_exact.csv")
    pose = pd.read_csv(folder / f"{camera}.pose.csv", header=[0, 1, 2], index_col=0)
    analysed = pose.index[pose.notna().any(axis=1)].tolist()
    assert analysed == timing["frame_index"].tolist() == exact["frame_index"].tolist()
    figures = info["pose"]["cameras"][camera]
    assert figures["frames_analysed"] == len(analysed) > 0
    assert figures["pose_rows"] == len(pose)
    counted = (
        figures["frames_analysed"] + figures["frames_skipped"] + figures["frames_lost"]
        + figures["frames_not_analysed_worker_gone"]
    )  # fmt: skip
    assert counted == info["cameras"][camera]["frames_captured"]
    return exact


def assert_events_finished(folder: Path, info: dict, name: str, time_s: float) -> pd.DataFrame:
    """``events.csv`` starts with its start row and ends in one finish row at ``time_s``.

    ``time_s`` is the last pose row's; the finish may be one frame later. The worker decides on
    a frame before it writes the frame's pose rows (commands go out first), so a kill between
    the two leaves the experiment one frame past the pose files, and the finish row is where the
    experiment was (checked: a kill landed there once in a whole run).
    """
    events = pd.read_csv(folder / "events.csv", keep_default_na=False, dtype=str)
    assert events["kind"].iloc[0] == "start" and events["name"].iloc[0] == name
    assert events["kind"].tolist().count("finish") == 1 and events["kind"].iloc[-1] == "finish"
    finished_s = float(events["time_s"].iloc[-1])
    assert finished_s == pytest.approx(time_s, abs=1e-6) or finished_s == pytest.approx(
        time_s + 1 / FPS, abs=1e-6
    ), (finished_s, time_s)
    assert all(float(t) <= finished_s + 1e-6 for t in events["time_s"] if t)  # none after it
    assert info["experiment"]["name"] == name
    return events


def _start(tmp_path: Path, settings: str, *args: str) -> subprocess.Popen[str]:
    path = write_settings(tmp_path, settings)
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(path), "--output-dir", str(tmp_path / "out"), *args],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _pose_pid(folder: Path) -> int | None:
    try:
        return json.loads((folder / "session.json").read_text())["processes"].get("pose")
    except (OSError, ValueError, KeyError):
        return None


def _commanded(folder: Path) -> bool:
    """True once a frame's turn that wrote a command has ended (its timing row is in)."""
    rows = whole_rows(folder / "arena.pose_timing.csv")
    return any(row["command_written"] for row in rows) and _pose_pid(folder) is not None


def _kill_the_worker_when(
    process: subprocess.Popen[str], out: Path, what: Callable[[Path], bool]
) -> tuple[Path, dict]:
    """SIGKILL the session's pose worker once ``what(folder)``; Ctrl-C a second later.

    Returns the session's folder and its final session.json.
    """
    try:
        folder = session_while_running(out, what)
        os.kill(_pose_pid(folder), signal.SIGKILL)
        time.sleep(1)  # the frames after it: counted as not analysed
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=WAIT_LIMIT_S)
    finally:
        process.kill()
    assert process.returncode == 1, stdout[-3000:] + stderr[-3000:]
    return folder, json.loads((folder / "session.json").read_text())


@pytest.mark.slow  # a whole session
def test_a_worker_killed_after_its_first_pulse_keeps_the_pulse_and_every_analysed_row(tmp_path):
    process = _start(tmp_path, ARENA, "--experiment-enabled", "--frames", "900")
    folder, info = _kill_the_worker_when(process, tmp_path / "out", _commanded)  # the pulse's
    assert any("killed by signal 9 (SIGKILL)" in e for e in info["errors"]), info["errors"]
    exact = assert_every_analysed_row_kept(folder, info)
    events = assert_events_finished(folder, info, "ExampleExperiment", exact["time_s"].iloc[-1])
    timing = pd.read_csv(folder / "arena.pose_timing.csv")
    pulse_frame = int(timing.loc[timing["command_written"].notna(), "frame_index"].iloc[0])
    at_pulse = events[events["frame_index"] == str(pulse_frame)]
    assert at_pulse["kind"].tolist()[:2] == ["trigger", "trial_start"], at_pulse
    (pulse,) = at_pulse[at_pulse["kind"] == "action"].itertuples()
    assert pulse.detail.startswith("pulse") and pulse.written  # sent, and said so
    assert info["experiment"]["rebuilt_from_files"]


@pytest.mark.slow  # three models on every frame, a whole session
def test_a_killed_ensemble_worker_keeps_every_analysed_row_of_every_file(tmp_path):
    members = [perturbed_member(tmp_path / f"member{n}", n, 0.02) for n in (1, 2)]
    models = "\n    ".join(str(path) for path in [BUNDLED_MODEL, *members])
    pose = f"[Pose]\nMODEL_PATH = {models}\nENSEMBLE_SMOOTHING = causal\n"
    process = _start(tmp_path, ARENA + pose, "--experiment-enabled", "--frames", "900")
    folder, info = _kill_the_worker_when(
        process,
        tmp_path / "out",
        lambda f: len(whole_rows(f / "arena.pose_timing.csv")) >= 20 and bool(_pose_pid(f)),
    )
    exact = assert_every_analysed_row_kept(folder, info)
    members_exact = read_ensemble_exact(folder / "arena.pose_exact.csv")
    assert members_exact is not None and members_exact.members.shape[1] == 3
    for suffix in (".ensemble.csv", ".eks_causal.csv"):
        table = pd.read_csv(folder / f"arena{suffix}", header=[0, 1, 2], index_col=0)
        assert table.index[table.notna().any(axis=1)].tolist() == exact["frame_index"].tolist()
    assert_events_finished(folder, info, "ExampleExperiment", exact["time_s"].iloc[-1])


def _stop_the_main_process_when_files_are_ahead(
    process: subprocess.Popen[str], out: Path
) -> tuple[Path, dict]:
    """Freeze the session's main process, kill it once the files are ahead of session.json.

    The main process alone writes session.json: frozen, the camera, the recorder and the worker
    go on, so the files get ahead of its last figures (as between two updates); then it is
    killed, and its children end with it. Returns the folder and session.json's stale camera.
    """
    folder = session_while_running(
        out, lambda f: len(whole_rows(f / "arena.pose_timing.csv")) >= 30
    )
    children = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGSTOP)
    stale = json.loads((folder / "session.json").read_text())["cameras"]["arena"]
    session_while_running(
        out,
        lambda f: len(whole_rows(f / "arena.pose_times.csv")) >= stale["frames_captured"] + 45,
        lambda f: f"pose_times rows {len(whole_rows(f / 'arena.pose_times.csv'))}, stale {stale}",
    )
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, alive  # nothing outlives the session
    return folder, stale


@pytest.mark.slow  # a whole session, then a second start that repairs it
@pytest.mark.timeout(1200)  # three waits of WAIT_LIMIT_S at most on a busy machine
def test_a_killed_main_process_leaves_files_the_next_start_counts_in_agreement(tmp_path):
    recording = (
        "[Recording]\nCODEC = h264\nFLUSH_INTERVAL = 0.5\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    )
    process = _start(
        tmp_path, ARENA + recording, "--recording-enabled", "--experiment-enabled", "--frames",
        "1800",
    )  # fmt: skip
    try:
        folder, stale = _stop_the_main_process_when_files_are_ahead(process, tmp_path / "out")
    finally:  # a failed wait leaves no frozen session behind
        if process.poll() is None:
            leftovers = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(True))]
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.communicate(timeout=30)

    again = _start(tmp_path, ARENA, "--frames", "10")
    out, err = again.communicate(timeout=WAIT_LIMIT_S)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    info = json.loads((folder / "session.json").read_text())
    assert info["status"] == "interrupted"
    camera = info["cameras"]["arena"]
    delivered = [r for r in whole_rows(folder / "arena.pose_times.csv") if r["host_timestamp"]]
    assert camera["frames_captured"] >= len(delivered) >= stale["frames_captured"] + 45
    decodable = count_decodable_frames(folder / "arena.mp4")
    assert camera["frames_recorded"] == decodable == count_table_rows(folder / "arena.frames.csv")
    # The recording ran from the stream's first frame: every frame captured was recorded or lost.
    recorded, lost = camera["frames_recorded"], camera["frames_lost_in_recording"]
    assert recorded + lost == camera["frames_captured"]
    figures = info["pose"]["cameras"]["arena"]
    pose = pd.read_csv(folder / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert figures["frames_analysed"] == int(pose.notna().any(axis=1).sum()) > 0
    # One row per frame in each (the worker's last act may close one file before its frame's row).
    assert figures["pose_rows"] == len(pose) and abs(len(pose) - len(delivered)) <= 1
    # The worker's last act: the events it had not written, and the finish row at its time.
    events = pd.read_csv(folder / "events.csv", keep_default_na=False, dtype=str)
    assert events["kind"].iloc[0] == "start" and events["kind"].iloc[-1] == "finish"
    # The finish row: the worker's last act writes it at the experiment's latest frame time. When
    # the machine is too busy for that act within LAST_ACTS_S (core/lifetime.py), the next start's
    # repair writes it instead, at the last event's time, and says so.
    finish = events.iloc[-1]
    if "ended without finalising it" in finish["detail"]:
        assert finish["time_s"] == events["time_s"].iloc[-2], finish
    else:
        assert "the session's main process ended" in finish["detail"], finish
        # At the experiment's latest update: the last pose row's frame, or the one before it
        # when the last act ended the experiment while one more frame was being analysed
        # (seen at load ~3: finish at 1.567 s, the last row at 1.600 s).
        exact = pd.read_csv(folder / "arena.pose_exact.csv")
        assert float(finish["time_s"]) >= exact["time_s"].iloc[-min(2, len(exact))] - 1e-6
    assert info["experiment"]["name"] == "ExampleExperiment"
