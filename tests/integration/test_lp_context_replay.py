"""A Lightning Pose context model end to end: a replay (``utils/VideoAnalyzer.py``).

The real pipeline (video camera process, shared memory, the inference worker keeping each
camera's past frames' features, the pose files) runs the context model of
``tests/fixtures/lp_context_mirror_mouse`` (its checkpoint composed as in
``tests/unit/pose/test_pose_lightning_context.py``) on the shared 100-frame clip, every frame
analysed (``--fast``). The poses must be the causal context's (frame t with t-2, t-1 and
itself as t+1, t+2), computed here in-process, ``session.json`` must say so, and
``pose_timing.csv`` must carry the time of each graph (``backbone_ms``, ``heads_ms``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator
from tests.support.files import read_video
from tests.support.in_process import run_main_here
from tests.support.paths import shared_data


@pytest.mark.slow
def test_a_replay_runs_the_context_model_causally(tmp_path: Path, monkeypatch) -> None:
    # Here, not at the top: that module imports torch, seconds for every collecting worker.
    from tests.unit.pose.test_pose_lightning_context import CLIP, FIXTURE, compose_checkpoint

    if not FIXTURE.is_dir():
        pytest.skip(f"{FIXTURE} is absent")
    clip = shared_data(CLIP)
    checkpoint = compose_checkpoint(tmp_path / "model")
    cache = tmp_path / "converted"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n")
    from deeplabstream.offline.replay.command import main

    # utils/VideoAnalyzer.py's command, its main in this process (which already imported torch
    # for the checkpoint): the poses and the files are the point here, not a new interpreter.
    code, said, complained = run_main_here(
        main,
        [str(clip), "--fast", "--no-experiment", "--model", str(checkpoint), "--settings",
         str(settings), "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    record = json.loads((session / "session.json").read_text())
    context = json.dumps(record)
    assert '"live_mode": "causal"' in context and '"delay_frames": 0' in context
    model = record["pose"]["model"]
    assert model["source_file"] == str(checkpoint)  # the checkpoint named, converted in cache
    assert Path(model["file"]).is_relative_to(cache)
    (timing,) = session.glob("*.pose_timing.csv")
    timings = pd.read_csv(timing)
    assert {"backbone_ms", "heads_ms", "deadline_part"} <= set(timings.columns)
    assert (timings["backbone_ms"] > 0).all() and (timings["heads_ms"] > 0).all()
    # Each figure is written to 0.001 ms: two rounded parts can sum to 0.0015 ms over the total.
    parts = timings["backbone_ms"] + timings["heads_ms"]
    assert (parts <= timings["inference_ms"] + 2e-3).all()
    (poses,) = session.glob("*.pose.csv")
    table = pd.read_csv(poses, header=[0, 1, 2], index_col=0).dropna(how="all")
    assert list(table.index) == list(range(100))  # --fast: every frame analysed

    description = load_model(checkpoint)
    frames = read_video(clip)
    estimator = ContextEstimator(
        description, open_backend(description, "onnxruntime", "cpu", 2), frames[0].shape
    )
    expected = np.stack([estimator.estimate([f], keys=["clip"])[0] for f in frames])
    keypoints = list(dict.fromkeys(table.columns.get_level_values(1)))
    assert keypoints == list(description.keypoints)
    ours = table.to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    worst = float(np.abs(ours[..., :2] - expected[..., :2]).max())
    print(f"replay vs the causal context computed in-process: max |dxy| {worst:.4g} px")
    assert worst <= 0.01  # the CSV keeps 3 decimals
    assert np.abs(ours[..., 2] - expected[..., 2]).max() <= 1e-3
