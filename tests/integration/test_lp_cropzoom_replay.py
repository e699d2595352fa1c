"""A Lightning Pose crop-zoom pair end to end: a replay (``utils/VideoAnalyzer.py``).

The real pipeline (video camera process, shared memory, the inference worker running the
detector, cutting the box and running the pose model, the pose files) runs the pair of
``tests/fixtures/lp_cropzoom_mirror_mouse`` (laid out as in
``tests/unit/pose/test_pose_lightning_cropzoom.py``) on the shared 100-frame clip, every frame
analysed (``--fast``). The poses must be the same-frame boxes' (computed here in-process),
``session.json`` must say the live mode, and ``pose_timing.csv`` must carry each stage's time
(``detector_ms``, ``crop_ms``, ``pose_ms``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.cropzoom import stage_descriptions
from tests.support.files import read_video
from tests.support.paths import PROJECT_ROOT, shared_data


@pytest.mark.slow
def test_a_replay_runs_the_pair_with_same_frame_boxes(tmp_path: Path, monkeypatch) -> None:
    # Here, not at the top: that module imports torch, seconds for every collecting worker.
    from tests.unit.pose.test_pose_lightning_cropzoom import CLIP, FIXTURE, compose_pair

    if not FIXTURE.is_dir():
        pytest.skip(f"{FIXTURE} is absent")
    clip = shared_data(CLIP)
    pair = compose_pair(tmp_path / "cropzoom")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))
    monkeypatch.setenv("DEEPLABSTREAM_LOCK_FILE", str(tmp_path / "lock"))
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(clip), "--fast",
         "--no-experiment", "--model", str(pair), "--settings", str(settings),
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    record = json.dumps(json.loads((session / "session.json").read_text()))
    assert '"live_mode": "same_frame_box"' in record and '"crop_from": "same_frame"' in record
    (timing,) = session.glob("*.pose_timing.csv")
    timings = pd.read_csv(timing)
    assert {"detector_ms", "crop_ms", "pose_ms"} <= set(timings.columns)
    assert (timings["detector_ms"] > 0).all() and (timings["pose_ms"] > 0).all()
    (poses,) = session.glob("*.pose.csv")
    table = pd.read_csv(poses, header=[0, 1, 2], index_col=0).dropna(how="all")
    assert list(table.index) == list(range(100))  # --fast: every frame analysed

    description = load_model(pair)
    frames = read_video(clip)
    estimator = open_estimator(
        description,
        open_backend(stage_descriptions(description)[0], "onnxruntime", "cpu", 2),
        frames[0].shape,
    )
    expected = np.concatenate([estimator.estimate([f]) for f in frames])
    keypoints = list(dict.fromkeys(table.columns.get_level_values(1)))
    assert keypoints == list(description.keypoints)
    ours = table.to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    worst = float(np.abs(ours[..., :2] - expected[..., :2]).max())
    print(f"replay vs the same-frame boxes computed in-process: max |dxy| {worst:.4g} px")
    assert worst <= 0.01  # the CSV keeps 3 decimals
    assert np.abs(ours[..., 2] - expected[..., 2]).max() <= 1e-3
