"""Pose estimation in the live pipeline: the inference worker, pose files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.files import with_key, write_settings
from tests.support.in_process import headless_here
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

LP = "lp-mirror-mouse-resnet18"


def _pose_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=[0, 1, 2], index_col=0)


def test_lightning_pose_runs_live_and_matches_its_own_predictions(tmp_path: Path) -> None:
    clip = shared_data(f"{LP}/clip/test_vid_first100.mp4")
    model = shared_data(f"{LP}/model")
    reference = _pose_table(
        shared_data(f"{LP}/reference/litpose_predict_onnx_fp32/video_preds/test_vid_first100.csv")
    )
    settings = write_settings(
        tmp_path, f"[Camera mirror]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(model),
        "--recording-enabled",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    ours = _pose_table(session / "mirror.pose.csv").dropna(how="all")  # the analysed frames
    assert len(ours) >= 2  # a 0.4 s clip at 250 fps: the model takes the newest frames
    assert ours.index.is_monotonic_increasing
    theirs = reference.loc[ours.index]
    assert list(ours.columns.get_level_values(1)) == list(theirs.columns.get_level_values(1))
    difference = np.abs(ours.to_numpy() - theirs.to_numpy()).reshape(len(ours), -1, 3)
    assert difference[..., :2].max() < 0.02  # pixels
    assert difference[..., 2].max() < 1e-4  # likelihood

    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["mirror"]
    camera = info["cameras"]["mirror"]
    assert info["pose"]["model"]["framework"] == "lightning-pose"
    assert figures["frames_analysed"] == len(ours)
    # Newest frame only: every captured frame was analysed, skipped or (rarely) lost.
    assert figures["frames_analysed"] + figures["frames_skipped"] + figures["frames_lost"] <= 100
    assert camera["frames_recorded"] == 100  # the recorder still took every frame
    timing = pd.read_csv(session / "mirror.pose_timing.csv")
    assert timing["frame_index"].tolist() == ours.index.tolist()
    assert (timing["latency_ms"] > 0).all()
    assert (timing["pose_ready"] >= timing["picked_up"]).all()
    table = pd.read_parquet(session / "mirror.pose.pqt").dropna(subset=["nose_top_x"])
    assert table["frame_index"].tolist() == ours.index.tolist()
    assert np.allclose(table["nose_top_x"], ours[ours.columns[0][0], "nose_top", "x"])
    assert "frames analysed" in result.stdout


def test_a_missing_model_stops_before_streaming_with_its_path(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    result = headless_here(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(tmp_path / "no-such-model"),
        "--frames",
        "30",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2  # refused before anything starts (live/session/preflight.py)
    assert "no-such-model" in result.stderr and "model not found" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow  # tens of seconds: CI's second step
def test_done_when_default_settings_track_the_simulated_animal(tmp_path: Path) -> None:
    from deeplabstream.pose.loading import BUNDLED_MODEL

    assert (BUNDLED_MODEL / "model.json").is_file(), "the bundled model must ship with the repo"
    result = run_cli(
        "--headless", "--pose-enabled", "--frames", "600", "--output-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path)
    pose = _pose_table(session / "arena.pose.csv").dropna(how="all")  # the analysed frames
    truth = _pose_table(session / "arena.truth.csv")
    assert len(pose) > 100  # most of 600 frames at 30 fps; the rest were skipped, and counted
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_analysed"] == len(pose)
    assert figures["frames_analysed"] + figures["frames_skipped"] + figures["frames_lost"] <= 600
    assert info["doorbell"] == "pipe"  # the default on Linux: the faster one
    scorer = pose.columns.get_level_values(0)[0]
    errors = {}
    truth = truth.loc[pose.index].sort_index(axis=1)
    pose = pose.sort_index(axis=1)
    for keypoint in truth.columns.get_level_values(1).unique():
        ours = pose[scorer, keypoint][["x", "y"]].to_numpy()
        true = truth["simulation", keypoint][["x", "y"]].to_numpy()
        errors[keypoint] = float(np.median(np.linalg.norm(ours - true, axis=1)))
    print("median pixel error per keypoint:", errors)
    assert max(errors.values()) < 5.0, errors  # "within a few pixels"


def test_models_not_supported_yet_say_what_to_do(tmp_path: Path) -> None:
    import pytest

    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.model import ModelError

    dlc = tmp_path / "snapshot-best.pt"
    dlc.write_bytes(b"not really a model")
    with pytest.raises(ModelError, match=r"DeepLabCut 3\.0"):
        load_model(dlc)
    lp = tmp_path / "lp"
    (lp / "tb_logs").mkdir(parents=True)
    (lp / "config.yaml").write_text("data: {}\n")
    with pytest.raises(ModelError, match="litpose export"):
        load_model(lp)
    with pytest.raises(ModelError, match="2 models in this folder"):
        load_model(tmp_path)  # the two above, listed
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ModelError, match="not a model this program knows"):
        load_model(tmp_path / "nothing")


def _median_errors(session: Path, camera: str) -> dict[str, float]:
    pose = _pose_table(session / f"{camera}.pose.csv").dropna(how="all").sort_index(axis=1)
    truth = _pose_table(session / f"{camera}.truth.csv").loc[pose.index].sort_index(axis=1)
    scorer = pose.columns.get_level_values(0)[0]
    return {
        keypoint: float(
            np.median(
                np.linalg.norm(
                    pose[scorer, keypoint][["x", "y"]].to_numpy()
                    - truth["simulation", keypoint][["x", "y"]].to_numpy(),
                    axis=1,
                )
            )
        )
        for keypoint in truth.columns.get_level_values(1).unique()
    }


@pytest.mark.slow  # tens of seconds: CI's second step
def test_one_worker_serves_cameras_of_any_size_and_maps_flipped_frames_back(
    tmp_path: Path,
) -> None:
    settings = write_settings(
        tmp_path,
        # plain and mirrored render as fast as they can, so the worker always finds a frame of
        # each waiting: at a shared frame rate their phases could keep them from ever meeting.
        "[Camera plain]\nSOURCE = synthetic\nSEED = 5\nPACING = free\n"
        "[Camera mirrored]\nSOURCE = synthetic\nSEED = 6\nFLIP = true\nPACING = free\n"
        "[Camera small]\nSOURCE = synthetic\nSEED = 7\nWIDTH = 480\nHEIGHT = 360\n"
        "PIXEL_FORMAT = mono8\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--frames",
        "240",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["processes"]["pose"]  # one inference worker for the three cameras
    timing = pd.read_csv(session / "plain.pose_timing.csv")
    assert timing["batch_size"].max() == 2  # plain and mirrored (same size) share batches
    plain = _median_errors(session, "plain")
    small = _median_errors(session, "small")
    mirrored = _median_errors(session, "mirrored")
    print("median errors", plain, small, mirrored, sep="\n")
    assert max(plain.values()) < 3 and max(small.values()) < 3
    # The mirrored camera's keypoints are mapped back to its own pixels; names stay as the
    # network reports them (IBL's convention), so the ears come back swapped.
    for keypoint in ("nose", "neck", "body_center", "tail_base"):
        assert mirrored[keypoint] < 3, mirrored
    assert mirrored["left_ear"] > 5 and mirrored["right_ear"] > 5


def test_a_whole_session_runs_on_the_portable_doorbell(tmp_path: Path) -> None:
    """Capture, recording, pose records and the experiment, all on multiprocessing connections.

    The portable doorbell is the one Windows takes; here the setting chooses it on Linux, with
    nothing in the environment, so CI runs the whole path and every process must take the choice
    from its job (one left at the platform's pipe would misread the records): every frame
    recorded, every frame analysed, poses that match the simulation.
    """
    text = (PROJECT_ROOT / "settings.ini").read_text(encoding="utf-8")
    settings = write_settings(tmp_path, with_key(text, "Streaming", "DOORBELL = portable"))
    result = run_cli(
        "--headless",
        "--settings",
        str(settings),
        "--recording-enabled",
        "--pose-enabled",
        "--experiment-enabled",
        "--frames",
        "150",
        "--output-dir",
        str(tmp_path),
        env={"DEEPLABSTREAM_DOORBELL": ""},  # unset: the setting decides
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path)
    info = json.loads((session / "session.json").read_text())
    assert info["settings"]["Streaming"]["DOORBELL"] == "portable"
    assert info["doorbell"] == "portable"
    camera = info["cameras"]["arena"]
    assert camera["frames_captured"] == camera["frames_recorded"] == 150
    pose = _pose_table(session / "arena.pose.csv").dropna(how="all")  # the analysed frames
    truth = _pose_table(session / "arena.truth.csv")
    figures = info["pose"]["cameras"]["arena"]
    assert figures["frames_analysed"] == len(pose) > 100
    scorer = pose.columns.get_level_values(0)[0]
    ours = pose[scorer, "nose"][["x", "y"]].to_numpy()
    true = truth.loc[pose.index]["simulation", "nose"][["x", "y"]].to_numpy()
    # Pixels: decoded poses, not bytes read out of step.
    assert float(np.median(np.linalg.norm(ours - true, axis=1))) < 5.0
    assert (session / "events.csv").is_file()
