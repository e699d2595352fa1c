"""``deeplabstream-calibrate`` end to end on written videos: files, figures, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.pinhole import PinholeCamera, read_calibration, read_calibration_metadata
from deeplabstream.spatial.calibration.calibrate import main
from tests.unit.spatial.calibration.rig import write_session


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, views: dict[str, list[np.ndarray]]) -> Path:
    """A recorded session of the rig: 'right' started two frames after the others."""
    folder = tmp_path_factory.mktemp("calibration") / "session"
    write_session(folder, views, {"right": 2})
    return folder


@pytest.fixture(scope="module")
def calibrated(session: Path) -> list[str]:
    """Calibrate the session once (its files are written into it); the command's lines."""
    lines: list[str] = []
    assert main([str(session)], progress=lines.append) == 0
    return lines


@pytest.mark.slow
def test_session_is_calibrated_into_toml_and_report(
    session: Path, calibrated: list[str], cameras: list[PinholeCamera]
) -> None:
    lines = calibrated
    solved = read_calibration(session / "calibration.toml")
    assert list(solved) == ["left", "right", "top"]  # the session's tables, sorted by name
    for true in cameras:
        assert np.linalg.norm(solved[true.name].center - true.center) < 2.0, true.name
    metadata = read_calibration_metadata(session / "calibration.toml")
    assert metadata["error"] < 0.5
    assert metadata["top_detections"] > 40
    assert "host timestamps" in metadata["pairing"]  # camera clocks each start at 0
    report = json.loads((session / "calibration_report.json").read_text())
    assert report["cameras"]["left"]["error_mean_px"] < 0.5
    assert report["cameras"]["left"]["error_p95_px"] >= report["cameras"]["left"]["error_mean_px"]
    assert any(line.startswith("all cameras: mean") for line in lines)


def test_videos_are_paired_by_frame_number(session: Path, tmp_path: Path) -> None:
    videos = [str(session / f"{name}.mkv") for name in ("top", "left")]  # 'right' started late
    output = tmp_path / "rig.toml"
    assert main([*videos, "--output", str(output), "--floor-frame", "3", "--step", "2"]) == 0
    assert list(read_calibration(output)) == ["top", "left"]
    report = json.loads((tmp_path / "calibration_report.json").read_text())
    assert report["floor_sets"] == [3]  # kept although --step 2 leaves odd frame sets out
    assert report["cameras"]["top"]["detections"] == 39  # frames 0, 2, ..., 74 and 3
    assert "frame number" in report["pairing"]


@pytest.mark.slow
def test_calibration_round_trips_through_the_file(
    session: Path, calibrated: list[str], tmp_path: Path
) -> None:
    from deeplabstream.core.pinhole import write_calibration

    first = read_calibration(session / "calibration.toml")
    copy = tmp_path / "copy.toml"
    write_calibration(
        copy, list(first.values()), read_calibration_metadata(session / "calibration.toml")
    )
    again = read_calibration(copy)
    for name, camera in first.items():
        np.testing.assert_array_equal(again[name].matrix, camera.matrix)
        np.testing.assert_array_equal(again[name].rotation, camera.rotation)
        np.testing.assert_array_equal(again[name].translation, camera.translation)
        np.testing.assert_array_equal(again[name].distortions, camera.distortions)


def test_a_camera_without_the_board_fails_with_its_name(
    session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blind = tmp_path / "blind"
    shutil.copytree(session, blind)
    shutil.copy(blind / "top.frames.csv", blind / "floor.frames.csv")
    blank = blind / "floor.mkv"
    _write_blank_video(blank, frames=75)
    assert main([str(blind)], progress=lambda line: None) == 2
    error = capsys.readouterr().err
    assert "camera 'floor': the board was not found in any of its 75 frames" in error


def test_missing_inputs_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]) == 2
    assert "a.mp4: no such video file or session folder" in capsys.readouterr().err


def _write_blank_video(path: Path, frames: int) -> None:
    """A grey lossless video with no board in it."""
    from deeplabstream.core.frames import FrameGeometry
    from deeplabstream.outputs.video import VideoWriter

    writer = VideoWriter(path, FrameGeometry(480, 640, 1), "ffv1", 30.0)
    try:
        for index in range(frames):
            writer.encode(writer.frame_from(np.full((480, 640), 90, np.uint8)), index / 30)
    finally:
        writer.close()
