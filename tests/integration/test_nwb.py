"""``session.nwb``: a real session with ``[Output] NWB = on``, read back by pynwb and movement."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

pynwb = pytest.importorskip("pynwb")
nwbinspector = pytest.importorskip("nwbinspector")
load_poses = pytest.importorskip("movement.io.load_poses")

SETTINGS = """
[Camera arena]
SOURCE = synthetic
WIDTH = 640
HEIGHT = 480
FRAMERATE = 30
SEED = 1
KEYPOINTS = nose, left_ear, right_ear, neck, body_center, tail_base
MOTION = random

[Output]
NWB = on

[Session]
ANIMAL = mouse12
EXPERIMENTER = Doe, Jane
NOTES = nwb test session

[Experiment]
NAME = ExampleExperiment

[Device stimulus_box]
TYPE = log
"""

# What nwbinspector asks for that a session cannot know: the settings have no species or age.
UNKNOWABLE = {"check_subject_species_exists", "check_subject_age"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short real session: pose, experiment, recording, NWB = on (about 15 s)."""
    folder = tmp_path_factory.mktemp("nwb")
    settings = write_settings(folder, SETTINGS)
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--experiment-enabled",
        "--recording-enabled",
        "--frames",
        "150",
        "--output-dir",
        str(folder / "out"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return only_session(folder / "out")


def _pose_csv(session: Path) -> pd.DataFrame:
    """Return the analysed rows of the camera's pose CSV (either layout: NaN rows dropped)."""
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    return pose.dropna(how="all").sort_index(axis=1)


def _events(session: Path) -> pd.DataFrame:
    return pd.read_csv(session / "events.csv")


def test_the_session_writes_session_nwb_and_notes_no_error(session: Path) -> None:
    info = json.loads((session / "session.json").read_text())
    assert (session / "session.nwb").is_file()
    assert info["status"] == "finished"
    assert not [error for error in info["errors"] if "nwb" in error.lower()]
    assert info["settings"]["Output"]["NWB"] == "on"
    assert "wrote session.nwb in" in (session / "session.log").read_text()


def test_pynwb_validates_and_reads_it_back(session: Path) -> None:
    path = session / "session.nwb"
    assert pynwb.validate(path=str(path)) == []
    info = json.loads((session / "session.json").read_text())
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        assert nwbfile.session_start_time.isoformat() == info["started"]
        assert nwbfile.subject.subject_id == "mouse12"
        assert list(nwbfile.experimenter) == ["Doe, Jane"]
        assert nwbfile.notes == "nwb test session"
        assert '"NWB": "on"' in nwbfile.data_collection  # the settings, as text
        assert "arena" in nwbfile.devices
        estimate = nwbfile.processing["behavior"]["arena"]
        assert estimate.source_software == "DeepLabStream"
        assert estimate.device is nwbfile.devices["arena"]
        keypoints = info["pose"]["model"]["keypoints"]
        assert list(estimate.skeleton.nodes[:]) == keypoints
        assert len(estimate.skeleton.edges[:]) > 0  # the bundled model's skeleton
        assert estimate.source_video is nwbfile.acquisition["arena_video"]


def test_nwbinspector_finds_nothing_serious_but_the_unknowable_subject(session: Path) -> None:
    serious = [
        message
        for message in nwbinspector.inspect_nwbfile(nwbfile_path=session / "session.nwb")
        if message.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR")
    ]
    allowed = set(UNKNOWABLE)
    events = _events(session)
    starts = events[events["kind"] == "trial_start"].set_index("trial")["host_timestamp"]
    ends = events[events["kind"] == "trial_end"].set_index("trial")["host_timestamp"]
    if (starts == ends.reindex(starts.index)).any():  # instant trials last 0 s, truly
        allowed.add("check_time_intervals_stop_after_start")
    left = [f"{m.check_function_name}: {m.message}" for m in serious]
    assert {m.check_function_name for m in serious} <= allowed, left


def test_the_video_is_an_external_file_with_every_frame_timed(session: Path) -> None:
    frames = pd.read_csv(session / "arena.frames.csv")
    info = json.loads((session / "session.json").read_text())
    start = info["clock"]["host_time_at_start"]
    with pynwb.NWBHDF5IO(str(session / "session.nwb"), mode="r") as io:
        video = io.read().acquisition["arena_video"]
        external = Path(video.external_file[0])
        assert not external.is_absolute()
        assert (session / external).resolve() == (session / "arena.mp4").resolve()
        assert list(video.starting_frame[:]) == [0]
        times = np.asarray(video.get_timestamps())
    assert np.allclose(times, frames["host_timestamp"] - start, atol=1e-6)


def test_movement_loads_the_keypoints_of_the_csv(session: Path) -> None:
    pose = _pose_csv(session)
    scorer = pose.columns.get_level_values(0)[0]
    keypoints = list(dict.fromkeys(pose.columns.get_level_values(1)))
    dataset = load_poses.from_nwb_file(session / "session.nwb", pose_estimation_key="arena")
    assert sorted(dataset.keypoints.values.tolist()) == sorted(keypoints)
    analysed = ~np.isnan(dataset.position.sel(space="x", keypoints=keypoints[0]).values[:, 0])
    assert analysed.sum() == len(pose)
    for keypoint in keypoints:
        position = dataset.position.sel(keypoints=keypoint).values[analysed, :, 0]
        expected = pose[scorer, keypoint][["x", "y"]].to_numpy()
        assert np.allclose(position, expected, equal_nan=True)
        confidence = dataset.confidence.sel(keypoints=keypoint).values[analysed, 0]
        assert np.allclose(confidence, pose[scorer, keypoint]["likelihood"].to_numpy())
    assert dataset.attrs["fps"] == pytest.approx(30, rel=0.05)


@pytest.mark.parametrize("layout", ["one row per frame", "analysed rows only"])
def test_frames_not_analysed_are_nan_rows_or_absent_as_in_the_csv(
    session: Path, tmp_path: Path, layout: str
) -> None:
    from recording.nwb import write_session_nwb

    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("*.nwb", "*.mp4"))
    pose = pd.read_csv(copy / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    skipped = pose.index[1::3]  # as if the model had passed over every third frame
    pose.loc[skipped] = np.nan
    timing = pd.read_csv(copy / "arena.pose_timing.csv")
    timing[~timing["frame_index"].isin(skipped)].to_csv(copy / "arena.pose_timing.csv")
    if layout == "analysed rows only":  # the CSV of sessions written before empty rows
        pose = pose.dropna(how="all")
        (copy / "arena.pose_times.csv").unlink(missing_ok=True)
    else:  # frames the camera dropped: no file times them
        (copy / "arena.pose_times.csv").unlink(missing_ok=True)
        (copy / "arena.frames.csv").unlink()
        (copy / "arena.frames.csv").write_text("frame_index,camera_timestamp,host_timestamp\n")
    pose.to_csv(copy / "arena.pose.csv")
    path = write_session_nwb(copy)
    dataset = load_poses.from_nwb_file(path, pose_estimation_key="arena")
    assert dataset.sizes["time"] == len(pose)
    nose = dataset.position.sel(keypoints="nose").values[:, :, 0]
    scorer = pose.columns.get_level_values(0)[0]
    expected = pose.sort_index(axis=1)[scorer, "nose"][["x", "y"]].to_numpy()
    assert np.allclose(nose, expected, equal_nan=True)
    if layout == "one row per frame":  # evenly spaced rows: movement's time = row / fps holds
        assert dataset.attrs["fps"] == pytest.approx(30, rel=0.05)
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:  # the analysed frames' own times
        series = io.read().processing["behavior"]["arena"].pose_estimation_series["nose"]
        times = pd.Series(np.asarray(series.get_timestamps()), index=pose.index)
    start = json.loads((copy / "session.json").read_text())["clock"]["host_time_at_start"]
    analysed = (
        timing.set_index("frame_index")["host_timestamp"].drop(skipped, errors="ignore") - start
    )
    assert np.allclose(times[analysed.index], analysed, atol=1e-6)


def test_the_trials_and_events_match_events_csv(session: Path) -> None:
    events = _events(session)
    info = json.loads((session / "session.json").read_text())
    start = info["clock"]["host_time_at_start"]
    starts = events[events["kind"] == "trial_start"].reset_index(drop=True)
    ends = events[events["kind"] == "trial_end"].reset_index(drop=True)
    with pynwb.NWBHDF5IO(str(session / "session.nwb"), mode="r") as io:
        nwbfile = io.read()
        trials = nwbfile.trials.to_dataframe() if nwbfile.trials is not None else pd.DataFrame()
        table = nwbfile.events["experiment_events"].to_dataframe()
    assert len(starts) >= 1, "the test session should hold a trial"  # seed 1: frame 71
    assert trials["trial"].tolist() == starts["trial"].astype(int).tolist()
    assert trials["cause"].tolist() == starts["name"].tolist()
    assert np.allclose(trials["start_time"], starts["host_timestamp"] - start)
    assert np.allclose(trials["stop_time"], ends["host_timestamp"] - start)
    assert len(table) == len(events)
    assert sorted(table["kind"]) == sorted(events["kind"])
    actions = table[table["kind"] == "action"]
    written = events.loc[events["kind"] == "action", "written"]
    assert np.allclose(sorted(actions["written"]), sorted(written - start))


def test_a_replay_writes_it_with_the_replayed_video(session: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    shutil.copyfile(session / "arena.mp4", video)
    settings = write_settings(tmp_path, SETTINGS)
    result = run_cli(
        "--settings",
        str(settings),
        "--output-dir",
        str(tmp_path / "out"),
        str(video),
        script="utils/VideoAnalyzer.py",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "clip" / "session.nwb"
    assert pynwb.validate(path=str(path)) == []
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        series = io.read().acquisition["clip_video"]
        assert (path.parent / series.external_file[0]).resolve() == video.resolve()
    dataset = load_poses.from_nwb_file(path, pose_estimation_key="clip")
    frames = pd.read_csv(session / "arena.frames.csv")
    assert dataset.sizes["time"] == len(frames)  # a replay analyses every frame of the video


def test_the_command_line_writes_it_after_the_fact(session: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.nwb"
    result = _nwb_cli(str(session), "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    with pynwb.NWBHDF5IO(str(target), mode="r") as io:
        video = io.read().acquisition["arena_video"]
        # relative to the file's own folder, so it still finds the video
        assert (tmp_path / video.external_file[0]).resolve() == (session / "arena.mp4").resolve()


def test_the_command_line_names_a_missing_session_json(tmp_path: Path) -> None:
    result = _nwb_cli(str(tmp_path))
    assert result.returncode == 1
    assert str(tmp_path) in result.stderr and "session.json" in result.stderr
    assert _nwb_cli().returncode == 2  # no folder given


def _nwb_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recording.nwb", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_failure_at_stop_is_reported_in_session_json_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from session.live import LiveSession

    stream = object.__new__(LiveSession)  # only what _write_nwb touches
    stream.session_dir = tmp_path  # no session.json: the NWB file cannot be built
    stream.errors = []
    written: list[str] = []
    monkeypatch.setattr(stream, "write_session_json", lambda status, stats: written.append(status))
    stream._write_nwb({})
    assert len(stream.errors) == 1 and "session.nwb could not be written" in stream.errors[0]
    assert "session.json" in stream.errors[0]
    assert written == ["finished"]  # session.json rewritten with the error
    assert not list(tmp_path.iterdir())  # no partial file left
