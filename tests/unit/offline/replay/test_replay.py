"""Offline replay (utils/VideoAnalyzer.py): videos through the live pipeline, as a user runs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.offline.replay.command import build_parser, options_from
from deeplabstream.offline.replay.command import main as replay_main
from deeplabstream.offline.replay.session import replay_settings
from deeplabstream.offline.replay.videos import camera_name_for, find_videos
from deeplabstream.settings import load_settings
from tests.support.files import read_video, write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import shared_data
from tests.support.processes import only_session, run_cli

ANALYZER = "utils/VideoAnalyzer.py"
M3V1_FRAMES = 2330


def arena_video(path: Path, frames: int, fps: int = 30, seed: int = 3) -> Path:
    """A lossless video of the simulated arena (320x240, the mouse walking), ``fps`` per second."""
    arena = SimulatedArena(ArenaParams(width=320, height=240, framerate=fps, seed=seed))
    image = np.empty((240, 320, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "bgr0"
        for index in range(frames):
            arena.render_next(image)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="bgr0")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def analyse(*args: str, timeout: float = 300) -> tuple[int, str]:
    """Run VideoAnalyzer; its exit code and everything it printed.

    A ``--realtime`` replay is judged against the loop's deadline like a live camera; these
    tests are not about timing, so unless one sets ``--deadline`` (or its settings do) it is
    off, and a loaded machine cannot fail them.
    """
    if "--realtime" in args and "--deadline" not in args and "--settings" not in args:
        args = (*args, "--deadline", "off")
    result = run_cli(*args, timeout=timeout, script=ANALYZER)
    return result.returncode, result.stdout + result.stderr


def read_pose(session: Path, camera: str) -> pd.DataFrame:
    """The analysed frames of a pose CSV (frames not analysed are empty rows)."""
    table = pd.read_csv(session / f"{camera}.pose.csv", header=[0, 1, 2], index_col=0)
    return table.dropna(how="all")


@pytest.mark.slow
def test_fast_analyses_every_frame_of_the_real_open_field_video(tmp_path: Path) -> None:
    video = shared_data("dlc-openfield/videos/m3v1mp4.mp4")
    code, output = analyse(str(video), "--fast", "--no-experiment", "--output-dir", str(tmp_path))
    assert code == 0, output
    session = tmp_path / "m3v1mp4"  # named after the video
    pose = read_pose(session, "m3v1mp4")
    assert pose.index.tolist() == list(range(M3V1_FRAMES))  # row i is frame i, none skipped
    assert np.isfinite(pose.to_numpy()).all()
    table = pd.read_parquet(session / "m3v1mp4.pose.pqt")
    assert table["frame_index"].tolist() == list(range(M3V1_FRAMES))
    timing = pd.read_csv(session / "m3v1mp4.pose_timing.csv")
    assert timing["frame_index"].tolist() == list(range(M3V1_FRAMES))
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished" and info["errors"] == []
    assert info["cameras"]["m3v1mp4"]["frames_captured"] == M3V1_FRAMES
    assert info["pose"]["cameras"]["m3v1mp4"]["frames_skipped"] == 0
    assert info["replay"]["mode"] == "fast"
    assert info["replay"]["frames_in_video"] == M3V1_FRAMES
    assert not (session / "events.csv").exists()  # --no-experiment


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_realtime_analyses_a_subset_in_order_with_the_fast_keypoints(tmp_path: Path) -> None:
    video = arena_video(tmp_path / "walk.mkv", 60)
    code, output = analyse(
        str(video), "--realtime", "--annotated-video", "--output-dir", str(tmp_path / "live")
    )
    assert code == 0, output
    code, output = analyse(str(video), "--fast", "--output-dir", str(tmp_path / "fast"))
    assert code == 0, output
    realtime = read_pose(tmp_path / "live" / "walk", "walk")
    fast = read_pose(tmp_path / "fast" / "walk", "walk")
    assert fast.index.tolist() == list(range(60))
    frames = realtime.index.to_numpy()
    assert len(frames) > 0 and (np.diff(frames) > 0).all() and frames.max() < 60
    np.testing.assert_array_equal(realtime.to_numpy(), fast.loc[frames].to_numpy())
    # Realtime pacing: frame i went out no earlier than i / 30 s after frame 0.
    timing = pd.read_csv(tmp_path / "live" / "walk" / "walk.pose_timing.csv")
    since_first = timing["host_timestamp"] - timing["host_timestamp"].iloc[0]
    due = (timing["frame_index"] - timing["frame_index"].iloc[0]) / 30
    assert (since_first >= due - 0.002).all()
    info = json.loads((tmp_path / "live" / "walk" / "session.json").read_text())
    assert info["replay"]["mode"] == "realtime"
    figures = info["pose"]["cameras"]["walk"]
    assert figures["frames_analysed"] + figures["frames_skipped"] == 60, figures
    # The annotated video: every frame of the source, keypoints drawn on the analysed ones.
    annotated = read_video(tmp_path / "live" / "walk" / "walk.annotated.mp4")
    source = read_video(video)
    assert len(annotated) == len(source) == 60
    shown = frames[-1]
    assert np.abs(annotated[shown].astype(int) - source[shown].astype(int)).max() > 100


@pytest.mark.slow  # tens of seconds: CI's second step
def test_an_experiment_replayed_on_the_arena_video_gives_the_live_events(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 7\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 320 240; 20: 320 240; 60: 150 240; 80: 150 240; 120: 480 240; "
        "140: 480 240; 170: 320 240\n"
        # A ring of 7 s holds all 180 frames: the FFV1 recorder may lag a busy 2-core machine
        # without losing one (a lost frame would be counted and fail the session).
        "[Streaming]\nBUFFER_SECONDS = 7\n"
        "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
        "[Experiment]\nNAME = ExampleExperiment\n[Device stimulus_box]\nTYPE = log\n",
    )
    live = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--experiment-enabled",
        "--recording-enabled",
        "--frames",
        "180",
        "--output-dir",
        str(tmp_path / "live"),
    )
    assert live.returncode == 0, live.stderr
    live_session = only_session(tmp_path / "live")
    assert (
        json.loads((live_session / "session.json").read_text())["cameras"]["arena"][
            "frames_recorded"
        ]
        == 180
    )
    code, output = analyse(
        str(live_session / "arena.mkv"),
        "--settings",
        str(settings),
        "--output-dir",
        str(tmp_path / "replay"),
    )
    assert code == 0, output
    columns = ["kind", "name", "detail", "trial", "frame_index"]
    live_events = pd.read_csv(live_session / "events.csv")
    replayed = pd.read_csv(tmp_path / "replay" / "arena" / "events.csv")
    assert (live_events["kind"] == "action").sum() == 4  # two entries, two switch-offs
    # Live analyses the newest frame: a frame it skipped shows the event at the next one it
    # analysed. The replay analyses every frame, so map its frames onto those live analysed.
    analysed_live = read_pose(live_session, "arena").index.to_numpy()
    position = np.searchsorted(analysed_live, replayed["frame_index"].to_numpy())
    expected = replayed.assign(frame_index=analysed_live[position])
    pd.testing.assert_frame_equal(live_events[columns], expected[columns])
    # Frame times: the camera's i / 30 s live, the video's millisecond timestamps replayed.
    np.testing.assert_allclose(live_events["time_s"], expected["time_s"], atol=0.002)


@dataclass(frozen=True)
class Batch:
    """A batch of three videos (one corrupt) replayed locally: its folder, exit code and output."""

    videos: Path
    out: Path
    code: int
    output: str


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """The batch replayed once, on this machine, for the tests that read its outcome.

    The batch test reads what it said and wrote; the ray test compares the ray cluster's files
    with these, the same command on the same videos: one local replay for both, not two.
    """
    folder = tmp_path_factory.mktemp("batch")
    videos = folder / "videos"
    videos.mkdir()
    arena_video(videos / "first.mkv", 20, seed=1)
    (videos / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    arena_video(videos / "second.mkv", 20, seed=2)
    code, output = analyse(str(videos), "--no-experiment", "--output-dir", str(folder / "out"))
    return Batch(videos, folder / "out", code, output)


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_a_batch_goes_on_past_a_corrupt_file_and_says_so(local_batch: Batch) -> None:
    videos, out, output = local_batch.videos, local_batch.out, local_batch.output
    assert local_batch.code == 1, output
    assert sorted(p.name for p in out.iterdir()) == ["first", "second"]
    assert f"{videos / 'broken.mp4'}: cannot be read as a video file" in output
    assert "Replayed 2 of 3 video(s)" in output
    for name in ("first", "second"):
        assert read_pose(out / name, name).index.tolist() == list(range(20))


@pytest.mark.slow
def test_the_same_batch_on_a_local_ray_cluster_gives_the_same_files(
    local_batch: Batch, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
    videos = local_batch.videos
    assert local_batch.code == 1, local_batch.output
    assert f"{videos / 'broken.mp4'}: cannot be read as a video file" in local_batch.output
    code, output = analyse(
        str(videos), "--no-experiment", "--output-dir", str(tmp_path / "ray"), "--ray"
    )
    assert code == 1, output
    assert f"{videos / 'broken.mp4'}: cannot be read as a video file" in output
    outputs = {"local": local_batch.out, "ray": tmp_path / "ray"}
    for name in ("first", "second"):
        local, ray = outputs["local"] / name, outputs["ray"] / name
        assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in ray.iterdir())
        assert (local / f"{name}.pose.csv").read_text() == (ray / f"{name}.pose.csv").read_text()
        when = ["host_timestamp"]  # when each run read the frame: the one column that differs
        pd.testing.assert_frame_equal(
            pd.read_parquet(local / f"{name}.pose.pqt").drop(columns=when),
            pd.read_parquet(ray / f"{name}.pose.pqt").drop(columns=when),
        )
    assert sorted(p.name for p in outputs["ray"].iterdir()) == ["first", "second"]


def test_bad_input_is_named_before_anything_starts(tmp_path: Path) -> None:
    # The command itself once (its exit code through the launcher), then its main in this
    # process for the other refusals (the same parser and checks, no new Python each).
    code, output = analyse(str(tmp_path / "nope.mp4"))
    assert code == 2 and f"{tmp_path / 'nope.mp4'}: no such file or folder" in output
    code, out, err = run_main_here(replay_main, [str(tmp_path)])
    assert code == 2 and "the folder holds no video file" in out + err
    video = arena_video(tmp_path / "clip.mkv", 5)
    code, out, err = run_main_here(
        replay_main, [str(video), "--settings", str(tmp_path / "missing.ini")]
    )
    assert code == 2 and "settings file not found" in out + err
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # no session folder was made


def test_videos_are_found_and_named_as_the_settings_allow(tmp_path: Path) -> None:
    (tmp_path / "b.mp4").touch()
    (tmp_path / "a.MKV").touch()
    (tmp_path / "notes.txt").touch()
    videos, problems = find_videos([tmp_path, tmp_path / "b.mp4", tmp_path / "gone.avi"])
    assert [v.name for v in videos] == ["a.MKV", "b.mp4"] and len(problems) == 1
    assert camera_name_for(Path("mouse 3 (day 2).mp4")) == "mouse_3_day_2"
    assert camera_name_for(Path("...mp4")) == "video"


def test_the_deadline_option_overrides_the_settings_of_every_replayed_video(tmp_path: Path) -> None:
    text = "[Camera arena]\nSOURCE = synthetic\n[Experiment]\nDEADLINE_MS = 40\n"
    settings = load_settings(write_settings(tmp_path, text))
    video = tmp_path / "clip.mkv"
    for option, expected in (("off", "off"), ("12.5", 12.5), ("auto", "auto")):
        options = options_from(build_parser().parse_args([str(video), "--deadline", option]))
        assert replay_settings(settings, video, options).experiment.deadline_ms == expected
    options = options_from(build_parser().parse_args([str(video)]))
    assert replay_settings(settings, video, options).experiment.deadline_ms == 40.0
