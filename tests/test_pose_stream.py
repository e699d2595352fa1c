"""Pose estimation in the live pipeline: the inference worker, pose files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import only_session, run_cli, shared_data, write_settings

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
    ours = _pose_table(session / "mirror.pose.csv")
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
    table = pd.read_parquet(session / "mirror.pose.pqt")
    assert table["frame_index"].tolist() == ours.index.tolist()
    assert np.allclose(table["nose_top_x"], ours[ours.columns[0][0], "nose_top", "x"])
    assert "frames analysed" in result.stdout


def test_a_missing_model_stops_before_streaming_with_its_path(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n")
    result = run_cli(
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
    assert result.returncode == 1
    assert "no-such-model" in result.stderr and "model not found" in result.stderr
