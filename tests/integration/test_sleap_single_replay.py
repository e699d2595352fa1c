"""sleap-nn single-instance exports end to end: a replay, a live session and labelled images.

Each runs the real pipeline (the video camera process, shared memory, the inference worker, the
pose files) with the project's own single-instance model (``tests/fixtures/sleap_single_openfield``)
on the shared open-field clip and its labelled images (``../shared/data/dlc3-openfield-cspnext_s``,
read in place). The keypoints must be sleap-nn's own predictions of the same frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli
from tests.unit.pose.test_sleap_single import CLIP, EXPORT, IMAGES, NODES, reference, theirs

#: The pose CSV keeps 3 decimals: 0.0005 px of rounding within the 0.01 px goal.
CSV_TOLERANCE = 0.01


def _assert_rows_equal(points: np.ndarray, frames: list[int]) -> float:
    """Compare the analysed frames' rows (N, K, 3) with sleap-nn's; return the worst |dxy|."""
    expected = theirs("clip")[frames]
    assert np.array_equal(np.isnan(points[..., 0]), np.isnan(expected[..., 0]))
    seen = ~np.isnan(expected[..., 0])
    assert seen.any()
    worst = float(np.abs(points[..., :2][seen] - expected[..., :2][seen]).max())
    assert worst <= CSV_TOLERANCE, worst
    assert np.abs(points[..., 2][seen] - expected[..., 2][seen]).max() <= 1e-3
    return worst


def test_a_single_instance_export_replayed_gives_sleap_nns_keypoints(tmp_path: Path) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Pose]\nLIKELIHOOD_THRESHOLD = 0.1\n")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(shared_data(CLIP)),
         "--fast", "--no-experiment", "--model", str(EXPORT), "--settings", str(settings),
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    info = json.loads((session / "session.json").read_text())
    camera = next(iter(info["cameras"]))
    figures = info["pose_runs"][0]["cameras"][camera]
    assert figures["frames_analysed"] == 100
    table = read_pose_table(session / figures["pose_file"])
    assert table.keypoints == NODES and table.individuals is None  # one animal
    assert list(table.frames) == list(range(100))
    _assert_rows_equal(table.points[:, 0], list(range(100)))


@pytest.mark.slow
def test_a_single_instance_export_runs_live_on_the_clip_as_a_camera(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        f"[Camera mouse]\nSOURCE = video\nPATH = {shared_data(CLIP)}\nPACING = native\n"
        "[Pose]\nLIKELIHOOD_THRESHOLD = 0.1\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled",
        "--model", str(EXPORT), "--output-dir", str(tmp_path / "out"),
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    assert info["pose"]["model"]["decoder"] == "sleap-single"
    figures = info["pose"]["cameras"]["mouse"]
    table = read_pose_table(session / "mouse.pose.csv")
    analysed = ~np.isnan(table.points[..., 2]).all(axis=(1, 2))
    frames = [int(f) for f in table.frames[analysed]]
    assert figures["frames_analysed"] == len(frames) >= 2  # live: the newest frames
    _assert_rows_equal(table.points[analysed][:, 0], frames)


def test_image_analyzer_predicts_labelled_images_as_sleap_nn(tmp_path: Path) -> None:
    images = shared_data(IMAGES)
    result = run_cli(
        str(images), "--model", str(EXPORT), "--output-dir", str(tmp_path / "out"),
        script="utils/ImageAnalyzer.py", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2], index_col=0)
    names = [f"images/{n}" for n in reference("images")["image_names"]]
    assert list(table.index) == names
    points = table.to_numpy(np.float64).reshape(len(names), len(NODES), 3)
    expected = theirs("images")
    assert np.array_equal(np.isnan(points[..., 0]), np.isnan(expected[..., 0]))
    seen = ~np.isnan(expected[..., 0])
    assert np.abs(points[..., :2][seen] - expected[..., :2][seen]).max() <= CSV_TOLERANCE


def test_a_dynamic_crop_replay_follows_the_mouse_on_the_backbones_grid(tmp_path: Path) -> None:
    """DYNAMIC_CROP: crops on multiples of max_stride / input_scale, keypoints of the frame."""
    settings = write_settings(
        tmp_path,
        "[Camera unused]\nSOURCE = synthetic\n"
        f"[Pose]\nMODEL_PATH = {EXPORT}\nTHREADS = 2\nDYNAMIC_CROP = on\n"
        "DYNAMIC_CROP_LIKELIHOOD = 0.2\n",
    )
    result = run_cli(
        str(shared_data(CLIP)), "--fast", "--no-experiment", "--settings", str(settings),
        "--output-dir", str(tmp_path / "out"), script="utils/VideoAnalyzer.py", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    session = tmp_path / "out" / "m3v1mp4_first100"
    table = read_pose_table(session / "m3v1mp4_first100.pose.csv")
    assert list(table.frames) == list(range(100))
    timing = pd.read_csv(session / "m3v1mp4_first100.pose_timing.csv")
    boxes = timing[["crop_x", "crop_y", "crop_width", "crop_height"]].to_numpy()
    full = (boxes == [0, 0, 640, 480]).all(axis=1)
    assert full[0] and (~full).sum() > 50, boxes  # the mouse is followed
    assert (boxes[~full] % 32 == 0).all()  # max_stride 16 at input scale 0.5
    camera = json.loads((session / "session.json").read_text())["pose"]["cameras"]
    assert camera["m3v1mp4_first100"]["dynamic_crop"]["input_multiple"] == 32
    ours, expected = table.points[:, 0], theirs("clip")
    np.testing.assert_allclose(ours[full], expected[full], atol=1e-3)  # whole frames: equal
    # Cropped frames: the same 4-pixel grid of the frame (no keypoint scaled or shifted by the
    # crop); a point may land on another cell where the crop's border changes the map.
    both = ~np.isnan(ours[~full, :, 0]) & ~np.isnan(expected[~full, :, 0])
    cropped, whole = ours[~full][both], expected[~full][both]
    assert both.sum() > 200
    assert np.allclose(cropped[:, :2] % 4, 0)
    moved = np.abs(cropped[:, :2] - whole[:, :2]).max(axis=1)
    print(f"dynamic crop: {(~full).sum()} frames cropped; |dxy| median {np.median(moved)}, "
          f"p95 {np.percentile(moved, 95)}, max {moved.max()} px")  # fmt: skip
    assert np.median(moved) == 0 and moved.max() <= 8  # at most two cells
