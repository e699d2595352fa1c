"""Faults found by trying public data as a lab would (issue 37, 12).

- A DeepLabCut 3.0 model folder given as the model runs the one export inside it, named in
  ``session.json`` (issue 47; it was refused before); a folder of two exports is refused before
  the start (exit 2, no session folder), naming both, by ``DeepLabStream.py`` and by
  ``utils/VideoAnalyzer.py`` (which checked only that the path existed).
- ``utils/VideoAnalyzer.py`` with a settings file without a camera section works: the videos
  are the cameras (and a UTF-8 byte-order mark in it is accepted).
- ``read_pose_table`` on a labels file (x, y without likelihood) says what the file is; a
  frame-indexed x, y table reads with likelihood NaN.
- Pose CSV and parquet keep a tiny likelihood (Lightning Pose writes 4e-20) instead of 0.0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.offline.replay.command import main as replay_main
from deeplabstream.outputs.pose.files import PoseCsvWriter, write_pose_parquet
from deeplabstream.outputs.pose.table import PoseTableError, read_pose_table
from tests.support.dlc3_exports import run_converted_models_cache
from tests.support.files import make_ffv1_video, write_settings
from tests.support.in_process import headless_here, run_main_here
from tests.support.paths import PROJECT_ROOT, shared_data

DLC3_MODEL = "dlc3-openfield-cspnext_s/model"
CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def _ten_frames(settings: Path, model: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``DeepLabStream.py`` on 10 frames of the settings' camera with ``--model``."""
    return run(
        str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings", str(settings),
        "--output-dir", str(out), "--pose-enabled", "--frames", "10", "--model", str(model),
    )  # fmt: skip


@pytest.fixture
def run_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test run's converted graphs: the export is converted once a run, not per test."""
    yield from run_converted_models_cache(tmp_path_factory)


def test_a_deeplabcut_model_folder_runs_its_one_export_and_names_it(tmp_path, run_cache):
    folder = shared_data(DLC3_MODEL)
    (export,) = folder.glob("*.pt")
    settings = write_settings(tmp_path, CAMERA)
    live = _ten_frames(settings, folder, tmp_path / "out")
    assert live.returncode == 0, live.stdout[-2000:] + live.stderr[-2000:]
    (record,) = (tmp_path / "out").glob("*/session.json")
    model = json.loads(record.read_text())["pose"]["model"]
    assert model["model_path"] == str(folder) and model["model_found"] == str(export)


def test_a_folder_of_two_exports_is_refused_before_the_start_naming_both(tmp_path):
    (export,) = shared_data(DLC3_MODEL).glob("*.pt")
    folder = tmp_path / "exports"
    folder.mkdir()
    for name in ("first.pt", "second.pt"):
        (folder / name).symlink_to(export)
    settings = write_settings(tmp_path, CAMERA)
    # Both commands' main in this process: refused before the start, nothing to run apart.
    live = headless_here(
        "--headless", "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        "--pose-enabled", "--frames", "10", "--model", str(folder),
    )  # fmt: skip
    assert live.returncode == 2, live.stdout[-2000:] + live.stderr[-2000:]
    assert "nothing was started" in live.stderr
    assert str(folder / "first.pt") in live.stderr and str(folder / "second.pt") in live.stderr
    assert not (tmp_path / "out").exists()
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 5)
    code, out, err = run_main_here(
        replay_main,
        ["--settings", str(settings), "--no-experiment", "--model", str(folder),
         "--output-dir", str(tmp_path / "replays"), str(video)],
    )  # fmt: skip
    assert code == 2, out[-2000:] + err[-2000:]
    assert str(folder / "first.pt") in err and "Traceback" not in err
    assert not (tmp_path / "replays").exists()


def test_video_analyzer_takes_a_settings_file_without_cameras_and_with_a_bom(tmp_path):
    settings = tmp_path / "no-camera.ini"
    # Windows Notepad's UTF-8 starts with a byte-order mark; no [Camera] section at all.
    settings.write_bytes(b"\xef\xbb\xbf[Pose]\nTHREADS = 1\n")
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 12)
    replay = run(
        str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), "--settings", str(settings),
        "--no-experiment", "--fast", "--output-dir", str(tmp_path / "out"), str(video),
    )  # fmt: skip
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    info = json.loads((tmp_path / "out" / "clip" / "session.json").read_text())
    figures = info["pose"]["cameras"]["clip"]
    assert figures["frames_analysed"] == 12 and info["errors"] == []


def test_read_pose_table_says_a_labels_file_is_one():
    labels = shared_data("dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv")
    with pytest.raises(PoseTableError) as refused:
        read_pose_table(labels)
    text = str(refused.value)
    assert str(labels) in text and "x, y without likelihood" in text
    assert "labels file" in text and "read_dlc_labels" in text


def test_a_frame_indexed_table_without_likelihood_reads_with_nan(tmp_path):
    columns = pd.MultiIndex.from_product(
        [["me"], ["snout", "tail"], ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    path = tmp_path / "xy.csv"
    pd.DataFrame(np.arange(12.0).reshape(3, 4), index=[5, 6, 7], columns=columns).to_csv(path)
    table = read_pose_table(path)
    assert table.frames.tolist() == [5, 6, 7] and table.keypoints == ("snout", "tail")
    np.testing.assert_array_equal(table.points[1, 0, 1, :2], [6.0, 7.0])
    assert np.isnan(table.points[..., 2]).all()


def test_tiny_likelihoods_survive_the_csv_and_the_parquet(tmp_path):
    csv_path = tmp_path / "arena.pose.csv"
    writer = PoseCsvWriter(csv_path, "model", ("snout", "tail"))
    tiny = [4e-20, 0.123456789, 1.2e-7, 0.99999994]
    for frame, (first, second) in enumerate([tiny[:2], tiny[2:]]):
        writer.write(frame, np.array([[10.5, 20.25, first], [30.0, 40.0, second]], np.float32))
    writer.close()
    table = read_pose_table(csv_path)
    np.testing.assert_allclose(table.points[:, 0, :, 2].ravel(), np.float32(tiny), rtol=1e-7)
    assert (table.points[..., 2] > 0).all()  # none rounded to 0.0 (log-likelihood -inf)
    parquet = tmp_path / "arena.pose.pqt"
    write_pose_parquet(csv_path, parquet)
    flat = pd.read_parquet(parquet)
    np.testing.assert_allclose(flat["snout_likelihood"], np.float32([tiny[0], tiny[2]]), rtol=1e-7)
