"""``session.nwb`` of real sessions and replays (``[Output] NWB = on``), read back by the tools
labs use: pynwb, nwbinspector and movement."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.support.files import make_ffv1_video, write_settings
from tests.support.flies import replay_flies
from tests.support.in_process import run_main_here
from tests.support.lazy_modules import installed, lazy
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

# Imported by the first test that reads them, not while every worker collects (lazy_modules).
pytestmark = installed("pynwb", "nwbinspector", "movement")
pynwb = lazy("pynwb")
nwbinspector = lazy("nwbinspector")
load_poses = lazy("movement.io.load_poses")

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

; A ring that holds all 150 frames: the recorder may lag a busy 2-core machine without
; losing one (a lost frame is counted and fails the session).
[Streaming]
BUFFER_SECONDS = 6

[Session]
ANIMAL = mouse12
EXPERIMENTER = Doe, Jane; Roe, Richard A.
NOTES = nwb test session
SPECIES = Mus musculus
AGE = P90D
SEX = F
STRAIN = C57BL/6J
INSTITUTION = University of Bonn
LAB = Schwarz lab
EXPERIMENT_DESCRIPTION = closed-loop stimulation when the mouse enters a region

[Experiment]
NAME = ExampleExperiment

[Device stimulus_box]
TYPE = log
"""


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
        assert list(nwbfile.experimenter) == ["Doe, Jane", "Roe, Richard A."]
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


def test_nwbinspector_finds_nothing_above_a_suggestion_with_the_session_keys_set(
    session: Path,
) -> None:
    """Done when: a live session with the [Session] keys set has no finding above a suggestion."""
    from nwbinspector import Importance

    findings = list(nwbinspector.inspect_nwbfile(nwbfile_path=session / "session.nwb"))
    serious = [
        m for m in findings if m.importance.value > Importance.BEST_PRACTICE_SUGGESTION.value
    ]
    assert serious == [], [f"{m.check_function_name}: {m.message}" for m in serious]
    events = _events(session)  # the session held an instant trial: the case that was flagged
    assert (events["kind"] == "trial_start").any()


def test_the_subject_and_the_lab_are_the_session_keys(session: Path) -> None:
    with pynwb.NWBHDF5IO(str(session / "session.nwb"), mode="r") as io:
        nwbfile = io.read()
        subject = nwbfile.subject
        assert (subject.species, subject.age, subject.sex, subject.strain) == (
            "Mus musculus",
            "P90D",
            "F",
            "C57BL/6J",
        )
        assert nwbfile.institution == "University of Bonn"
        assert nwbfile.lab == "Schwarz lab"
        assert nwbfile.experiment_description.startswith(
            "closed-loop stimulation when the mouse enters a region (experiment ExampleExperiment"
        )
        # the skeleton of the one animal is the subject's (ndx-pose's link)
        assert nwbfile.processing["behavior"]["arena"].skeleton.subject is subject


def test_the_video_is_an_external_file_with_every_frame_timed(session: Path) -> None:
    """Live: the host clock, from the session's start (``clock.host_time_at_start``)."""
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
    from deeplabstream.outputs.nwb import write_session_nwb

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


def _trials_and_events(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        trials = nwbfile.trials.to_dataframe() if nwbfile.trials is not None else pd.DataFrame()
        return trials, nwbfile.events["experiment_events"].to_dataframe()


def test_instant_trials_are_events_only_and_events_outside_trials_have_no_trial(
    session: Path,
) -> None:
    events = _events(session)
    start = json.loads((session / "session.json").read_text())["clock"]["host_time_at_start"]
    starts = events[events["kind"] == "trial_start"].set_index("trial")["host_timestamp"]
    ends = events[events["kind"] == "trial_end"].set_index("trial")["host_timestamp"]
    assert len(starts) >= 1, "the test session should hold a trial"  # seed 1: frame 71
    lasting = starts[ends.reindex(starts.index) > starts]
    trials, table = _trials_and_events(session / "session.nwb")
    assert trials.get("trial", pd.Series(dtype=int)).tolist() == lasting.index.tolist()
    assert len(table) == len(events)
    assert sorted(table["kind"]) == sorted(events["kind"])
    # a trial number where events.csv has one, blank (NaN) where it has none, never 0
    ours, theirs = np.sort(table["trial"].to_numpy()), np.sort(events["trial"].to_numpy())
    assert np.array_equal(ours, theirs, equal_nan=True)
    assert events["trial"].isna().any() and (events["trial"] > 0).any()
    actions = table[table["kind"] == "action"]
    written = events.loc[events["kind"] == "action", "written"]
    assert np.allclose(sorted(actions["written"]), sorted(written - start))


def test_the_events_table_carries_likelihoods_and_commands_not_sent(
    session: Path, tmp_path: Path
) -> None:
    """events.csv's ``likelihood`` (issue 38) and ``not_sent`` (issue 37) are columns of the NWB
    events table; ``not_sent`` only where a command was not sent (a board that went away)."""
    from deeplabstream.outputs.nwb import write_session_nwb

    events = _events(session)
    assert pd.to_numeric(events["likelihood"], errors="coerce").notna().any()
    _, table = _trials_and_events(session / "session.nwb")
    assert np.allclose(
        np.sort(table["likelihood"].to_numpy(dtype=float)),
        np.sort(pd.to_numeric(events["likelihood"], errors="coerce").to_numpy(dtype=float)),
        equal_nan=True,
    )
    assert "not_sent" not in table  # every command of this session was sent
    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("*.nwb", "*.mp4"))
    action = events.index[events["kind"] == "action"][-1]
    events["not_sent"] = events["not_sent"].astype(object)
    events.loc[action, "not_sent"] = "not sent: device gone (stimulus_box)"  # as a vanished board
    events.to_csv(copy / "events.csv", index=False)
    _, table = _trials_and_events(write_session_nwb(copy))
    assert table["not_sent"].tolist().count("not sent: device gone (stimulus_box)") == 1
    assert table["not_sent"].tolist().count("") == len(events) - 1


def test_a_trial_that_lasts_is_in_the_trials_table(session: Path, tmp_path: Path) -> None:
    from deeplabstream.outputs.nwb import write_session_nwb

    copy = tmp_path / session.name
    shutil.copytree(session, copy, ignore=shutil.ignore_patterns("*.nwb", "*.mp4"))
    events = _events(copy)
    first = events.loc[events["kind"] == "trial_start", "trial"].iloc[0]
    end = (events["kind"] == "trial_end") & (events["trial"] == first)
    events.loc[end, "host_timestamp"] += 0.5  # as if the trial had ended half a second later
    events.to_csv(copy / "events.csv", index=False)
    start = json.loads((copy / "session.json").read_text())["clock"]["host_time_at_start"]

    trials, _ = _trials_and_events(write_session_nwb(copy))

    row = trials[trials["trial"] == first].iloc[0]
    begun = events.loc[(events["kind"] == "trial_start") & (events["trial"] == first)]
    assert row["start_time"] == pytest.approx(begun["host_timestamp"].iloc[0] - start)
    assert row["stop_time"] == pytest.approx(events.loc[end, "host_timestamp"].iloc[0] - start)
    assert row["cause"] == begun["name"].iloc[0]


@pytest.mark.slow  # a whole replay or window session (the default suite keeps under 15 min)
def test_a_replay_writes_it_with_the_replayed_video(session: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    shutil.copyfile(session / "arena.mp4", video)
    path = _replay(video, tmp_path, "--fast")
    assert pynwb.validate(path=str(path)) == []
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        series = io.read().acquisition["clip_video"]
        assert (path.parent / series.external_file[0]).resolve() == video.resolve()
    dataset = load_poses.from_nwb_file(path, pose_estimation_key="clip")
    frames = pd.read_csv(session / "arena.frames.csv")
    assert dataset.sizes["time"] == len(frames)  # a replay analyses every frame of the video


def _replay(video: Path, tmp_path: Path, *options: str) -> Path:
    """Replay ``video`` with utils/VideoAnalyzer.py; return its session.nwb.

    The command's ``main`` in the test's process (its parser, settings and replay, the same
    files): the NWB file is the point here, not a new interpreter importing the package again.
    """
    from deeplabstream.offline.replay.command import main

    output = tmp_path / "out"
    settings = str(write_settings(tmp_path, SETTINGS))
    argv = ["--settings", settings, "--output-dir", str(output), *options, str(video)]
    code, said, complained = run_main_here(main, argv)
    assert code == 0, said[-3000:] + complained[-3000:]
    (path,) = output.glob(f"{video.stem}*/session.nwb")
    return path


def _frame_times(series: object) -> np.ndarray:
    """An external-file ImageSeries' frame times (pynwb counts a rate's samples in its data)."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:])
    return series.starting_time + np.arange(series.num_samples) / series.rate


REPLAY_FPS = 250
REPLAY_FRAMES = 100


# --realtime without the experiment: a 250 fps replay on a loaded machine may miss the loop's
# deadline, which with an experiment is an error (issue 25) and not what is tested here.
@pytest.mark.slow  # a whole replay or window session (the default suite keeps under 15 min)
@pytest.mark.parametrize("options", [("--fast",), ("--realtime", "--no-experiment")])
def test_a_replays_nwb_spans_the_video_on_the_videos_own_clock(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    """Done when: a replay's NWB spans the video's duration within one frame.

    Fast or at the video's rate, the replay took its own time; the file gives the frames' times
    in the video (a 250 fps clip of 0.4 s spans 0.4 s), for the poses, the video and the events.
    """
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, REPLAY_FRAMES, fps=REPLAY_FPS)
    duration = REPLAY_FRAMES / REPLAY_FPS

    path = _replay(video, tmp_path, *options)

    expected = np.arange(REPLAY_FRAMES) / REPLAY_FPS  # each frame's presentation time
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        assert "replayed video's own time" in nwbfile.session_description
        video_times = _frame_times(nwbfile.acquisition["clip_video"])
        nose = nwbfile.processing["behavior"]["clip"].pose_estimation_series["nose"]
        pose_times = np.asarray(nose.get_timestamps())
        events = nwbfile.events["experiment_events"].to_dataframe() if nwbfile.events else None
    for times in (video_times, pose_times):
        assert len(times) == REPLAY_FRAMES
        span = times[-1] - times[0] + 1 / REPLAY_FPS  # the last frame lasts one interval
        assert abs(span - duration) <= 1 / REPLAY_FPS
        assert np.allclose(times, expected, atol=1e-6)
    if "--no-experiment" not in options:
        table = pd.read_csv(path.parent / "events.csv")
        assert np.allclose(sorted(events["timestamp"]), sorted(table["time_s"]))  # the video's
        assert events["timestamp"].between(0, duration).all()
    dataset = load_poses.from_nwb_file(path, pose_estimation_key="clip")
    assert dataset.attrs["fps"] == pytest.approx(REPLAY_FPS)  # movement: time = row / fps
    assert dataset.sizes["time"] == REPLAY_FRAMES


@pytest.mark.slow  # a whole replay or window session (the default suite keeps under 15 min)
def test_a_replays_video_path_survives_moving_the_session_folder(tmp_path: Path) -> None:
    """The replayed video is outside the session folder: named by its absolute path."""
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 10)
    path = _replay(video, tmp_path, "--fast", "--no-experiment")
    moved = tmp_path / "elsewhere" / "deeper"
    moved.parent.mkdir()
    shutil.move(str(path.parent), str(moved))
    with pynwb.NWBHDF5IO(str(moved / "session.nwb"), mode="r") as io:
        series = io.read().acquisition["clip_video"]
        named = Path(series.external_file[0])
        assert named.is_absolute() and named == video.resolve()
        assert "absolute path" in series.description
    inspected = nwbinspector.inspect_nwbfile(nwbfile_path=moved / "session.nwb")
    assert not [m for m in inspected if m.check_function_name.endswith("external_file_valid")]


def test_a_live_sessions_video_path_survives_moving_the_session_folder(
    session: Path, tmp_path: Path
) -> None:
    """The recording is inside the session folder: named relative to the NWB file beside it."""
    moved = tmp_path / "archive" / session.name
    shutil.copytree(session, moved)
    with pynwb.NWBHDF5IO(str(moved / "session.nwb"), mode="r") as io:
        named = io.read().acquisition["arena_video"].external_file[0]
    assert named == "arena.mp4"
    assert (moved / named).is_file()


@pytest.mark.slow
def test_two_animals_of_a_sleap_replay_merge_in_movement_as_two_individuals(
    tmp_path: Path,
) -> None:
    """Done when: one PoseEstimation per animal, named after its track, merges in movement.

    movement 0.15's ``from_nwb_file`` names the individual of every PoseEstimation after the
    file's ``identifier``, so two animals of one file collide (``MergeError``) unless each gets
    its track's name, which the PoseEstimation's name ends with (docs/outputs.md).
    """
    import xarray as xr

    from deeplabstream.outputs.pose.table import read_pose_table

    session, _ = replay_flies(tmp_path, 12)
    path = session / "session.nwb"
    table = read_pose_table(session / "flies.pose.csv")
    assert table.individuals == ("animal1", "animal2")
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        module = io.read().processing["behavior"]
        names = [n for n in module.data_interfaces if n.startswith("flies_")]
        assert names == ["flies_animal1", "flies_animal2"]
        assert "animal animal2 (its track" in module["flies_animal2"].description
    animals = [
        load_poses.from_nwb_file(path, pose_estimation_key=f"flies_{track}").assign_coords(
            individuals=[track]
        )
        for track in table.individuals
    ]
    merged = xr.merge(animals, join="outer", compat="no_conflicts")
    assert list(merged.individuals.values) == ["animal1", "animal2"]
    assert merged.sizes["time"] == 12 and merged.sizes["keypoints"] == len(table.keypoints)
    for number, track in enumerate(table.individuals):
        for k, keypoint in enumerate(table.keypoints):
            position = merged.position.sel(individuals=track, keypoints=keypoint).values
            np.testing.assert_allclose(position, table.points[:, number, k, :2], atol=1e-9)
    # what movement does by itself (an upstream limitation, docs/outputs.md): one name for all
    plain = [load_poses.from_nwb_file(path, pose_estimation_key=n) for n in names]
    assert plain[0].individuals.values.tolist() == plain[1].individuals.values.tolist()


def test_the_command_line_writes_it_after_the_fact(session: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.nwb"
    code, said, complained = _nwb_here(str(session), "--output", str(target))
    assert code == 0, complained
    assert "wrote" in said
    with pynwb.NWBHDF5IO(str(target), mode="r") as io:
        video = io.read().acquisition["arena_video"]
        # relative to the file's own folder, so it still finds the video
        assert (tmp_path / video.external_file[0]).resolve() == (session / "arena.mp4").resolve()


def test_the_command_line_names_a_missing_session_json(tmp_path: Path) -> None:
    code, _, complained = _nwb_here(str(tmp_path))
    assert code == 1
    assert str(tmp_path) in complained and "session.json" in complained
    assert _nwb_cli().returncode == 2  # no folder given: the command itself, its exit code


def _nwb_here(*args: str) -> tuple[int, str, str]:
    """``python -m deeplabstream.outputs.nwb``'s ``main`` in this process: the file or the
    refusal is the point, not a new interpreter (``_nwb_cli`` starts the command itself)."""
    from deeplabstream.outputs.nwb import main

    return run_main_here(main, list(args))


def _nwb_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deeplabstream.outputs.nwb", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_failure_at_stop_is_reported_in_session_json_not_raised(tmp_path: Path) -> None:
    from deeplabstream.live.session.exports import write_nwb
    from deeplabstream.live.session.live import LiveSession

    stream = object.__new__(LiveSession)  # only what a failed export touches
    stream.session_dir = tmp_path  # no session.json: the NWB file cannot be built
    stream.errors = []
    written: list[str] = []
    stream.report = SimpleNamespace(write=lambda session, status, stats: written.append(status))
    write_nwb(tmp_path, lambda text: stream._export_failed(text, {}))
    assert len(stream.errors) == 1 and "session.nwb could not be written" in stream.errors[0]
    assert "session.json" in stream.errors[0]
    assert written == ["finished"]  # session.json rewritten with the error
    assert not list(tmp_path.iterdir())  # no partial file left
