"""sleap-nn top-down exports end to end: a replay (``utils/VideoAnalyzer.py``) and a live session.

Both run the real pipeline (video camera process, shared memory, the inference worker with the
model's two stages, the tracker or the model's classes, the pose files) with the project's own
top-down models (``tests/fixtures/sleap_topdown_flies``) on the shared 100-frame fly clip
(``../shared/data/sleap-flies``, read in place). The poses must be sleap-nn's own predictions of
the same frames, and ``pose_timing.csv`` must carry each stage's time.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.files import write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import shared_data
from tests.support.processes import only_session, run_cli
from tests.unit.pose.test_sleap_topdown import (
    FIXTURE,
    GRID_CELL_PX,
    MAX_NEAR_TIES,
    classes,
    reference,
    theirs,
)

CLIP = "sleap-flies/inference/flies_clip_first100.mp4"
STAGE_COLUMNS = ["centroid_ms", "crop_ms", "instance_ms", "peaks_ms"]


def _replay(tmp_path: Path, clip: Path, model: Path) -> Path:
    """Run VideoAnalyzer on ``clip`` with ``model``; return the session folder."""
    settings = tmp_path / "settings.ini"
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n"
    )
    from deeplabstream.offline.replay.command import main

    # utils/VideoAnalyzer.py's command, its main in this process: the poses are the point here,
    # not a new interpreter importing the package again.
    code, said, complained = run_main_here(
        main,
        [str(clip), "--fast", "--no-experiment", "--model", str(model), "--settings",
         str(settings), "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    return session


def _matched(ours: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``ours`` (A, K, 3) in the order of animals nearest ``expected`` (A, K, 3) (the tracker's)."""

    def cost(order: tuple[int, ...]) -> float:
        candidate = ours[list(order)]
        missing = np.isnan(candidate[..., 0]) != np.isnan(expected[..., 0])
        return float(
            np.nansum(np.abs(candidate[..., :2] - expected[..., :2])) + 1e6 * missing.sum()
        )

    best = min(itertools.permutations(range(len(ours))), key=cost)
    return ours[list(best)]


def _assert_poses_equal(kind: str, table_points: np.ndarray, frames: list[int]) -> float:
    """Compare the analysed frames' rows with sleap-nn's; return the worst |dxy|.

    Points within 0.01 px (the CSV keeps 3 decimals: 0.0005 px of rounding), but for the rare
    near-ties of the unit test's ``assert_same``: one grid cell away at the same score, where
    another CPU's float32 rounding picks the other of two equal cells.
    """
    expected = theirs(kind, reference(kind))
    distances: list[np.ndarray] = []
    for row, frame in zip(table_points, frames, strict=True):
        mine = row if classes(kind) else _matched(row, expected[frame])  # classes: no reorder
        want = expected[frame]
        assert np.array_equal(np.isnan(mine[..., 0]), np.isnan(want[..., 0])), frame
        seen = ~np.isnan(want[..., 0])
        if seen.any():
            distances.append(np.abs(mine[..., :2][seen] - want[..., :2][seen]).max(axis=-1))
            assert np.abs(mine[..., 2][seen] - want[..., 2][seen]).max() <= 1e-3
    distance = np.concatenate(distances)
    near_ties = distance > 0.01
    assert near_ties.sum() <= MAX_NEAR_TIES * len(distance), distance[near_ties]
    assert (distance[near_ties] <= GRID_CELL_PX + 0.01).all(), distance[near_ties]
    return float(distance[~near_ties].max())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["topdown", "idtopdown"])
def test_a_top_down_export_replayed_gives_sleap_nns_predictions(tmp_path: Path, kind: str) -> None:
    session = _replay(tmp_path, shared_data(CLIP), FIXTURE / f"export_{kind}")
    info = json.loads((session / "session.json").read_text())
    camera = next(iter(info["cameras"]))
    figures = info["pose_runs"][0]["cameras"][camera]
    assert figures["frames_analysed"] == 100
    assert figures["identities"]["max_animals"] == 2
    table = read_pose_table(session / figures["pose_file"])
    assert table.individuals == ("animal1", "animal2")
    assert list(table.frames) == list(range(100))
    _assert_poses_equal(kind, table.points, list(range(100)))
    if classes(kind):
        model = figures["identities"]["model"]
        assert model["classes"] == {"animal1": classes(kind)[0], "animal2": classes(kind)[1]}
        # Each animal's identity confidence: the class probability sleap-nn matched it with.
        found = pd.read_csv(session / model["confidence_file"])
        assert list(found["frame_index"]) == list(range(100))
        probabilities = reference(kind)["class_probs"]  # (N, C, C): slot c's probabilities
        expected = probabilities[:, [0, 1], [0, 1]]
        written = found[["animal1", "animal2"]].to_numpy()
        assert np.allclose(written, expected, atol=5e-5, equal_nan=True)  # 4 decimals

    timing = pd.read_csv(session / f"{camera}.pose_timing.csv")
    # each stage's time, then the part of the model blamed for a miss (none: no deadline)
    assert list(timing.columns[-5:]) == [*STAGE_COLUMNS, "deadline_part"]
    assert timing["deadline_part"].isna().all()
    assert len(timing) == 100 and (timing[STAGE_COLUMNS] >= 0).all().all()
    assert (timing["instance_ms"] > 0).all()  # two flies in every frame
    # The stages are parts of the model's time, never more than it.
    parts = timing[STAGE_COLUMNS].sum(axis=1)
    assert (parts <= timing["inference_ms"] + timing["decode_ms"] + 0.01).all()


@pytest.mark.slow
def test_a_top_down_export_runs_live_on_the_clip_as_a_camera(tmp_path: Path) -> None:
    clip = shared_data(CLIP)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
        "[Pose]\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled",
        "--model", str(FIXTURE / "export_topdown"), "--output-dir", str(tmp_path / "out"),
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["flies"]
    table = read_pose_table(session / "flies.pose.csv")
    analysed = ~np.isnan(table.points[..., 2]).all(axis=(1, 2))
    frames = [int(f) for f in table.frames[analysed]]
    assert figures["frames_analysed"] == len(frames) >= 2  # live: the newest frames
    _assert_poses_equal("topdown", table.points[analysed], frames)
    timing = pd.read_csv(session / "flies.pose_timing.csv")
    assert timing["frame_index"].tolist() == frames
    assert list(timing.columns[-5:]) == [*STAGE_COLUMNS, "deadline_part"]


def test_image_analyzer_predicts_frames_as_sleap_nn(tmp_path: Path) -> None:
    """``utils/ImageAnalyzer.py`` on three clip frames written as PNG: sleap-nn's animals."""
    import av
    import cv2

    images = tmp_path / "frames"
    images.mkdir()
    with av.open(str(shared_data(CLIP))) as clip:
        for index, frame in enumerate(clip.decode(video=0)):
            if index == 3:
                break
            cv2.imwrite(str(images / f"frame{index:03d}.png"), frame.to_ndarray(format="bgr24"))
    from deeplabstream.offline.replay.image_command import main

    # The command's main in this process (test_image_analyzer starts the launcher itself).
    code, said, complained = run_main_here(
        main,
        [str(images), "--model", str(FIXTURE / "export_topdown"), "--output-dir",
         str(tmp_path / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    table = pd.read_csv(
        tmp_path / "out" / "frames_predictions.csv", header=[0, 1, 2, 3], index_col=0
    )
    points = table.to_numpy(np.float64).reshape(3, 2, 13, 3)  # no tracker: sleap-nn's order
    expected = theirs("topdown", reference("topdown"))[:3]
    assert np.array_equal(np.isnan(points[..., 0]), np.isnan(expected[..., 0]))
    seen = ~np.isnan(expected[..., 0])
    assert np.abs(points[..., :2][seen] - expected[..., :2][seen]).max() <= 0.01


@pytest.mark.slow
def test_live_previous_frame_crops_and_misses_blamed_on_the_models_parts(tmp_path: Path) -> None:
    # CROP_FROM = previous_frame live on the clip, with a deadline no frame can keep (0.5 ms):
    # every analysed frame is late on purpose; a miss in the model names its part.
    clip = shared_data(CLIP)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
        "[Pose]\nMAX_ANIMALS = 2\nLIKELIHOOD_THRESHOLD = 0.1\nCROP_FROM = previous_frame\n"
        "[Experiment]\nDEADLINE_MS = 0.5\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled",
        "--model", str(FIXTURE / "export_topdown"), "--output-dir", str(tmp_path / "out"),
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]  # the deadline: missed on purpose
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    figures = info["pose"]["cameras"]["flies"]
    assert info["pose"]["model"]["crop_from"] == "previous_frame"
    two_stage = figures["two_stage"]
    assert two_stage["crop_from"] == "previous_frame"
    assert two_stage["frames_crops_from_same"] >= 1  # the first frame: its own centroids
    crops = two_stage["frames_crops_from_previous"] + two_stage["frames_crops_from_same"]
    assert crops == figures["frames_analysed"] >= 3
    timing = pd.read_csv(session / "flies.pose_timing.csv")
    assert list(timing.columns[-6:]) == [*STAGE_COLUMNS, "refresh_ms", "deadline_part"]
    assert timing["centroid_ms"].iloc[0] > 0 and timing["refresh_ms"].iloc[0] == 0
    health = info["health"]["cameras"]["flies"]
    assert health["misses"] == health["frames_checked"] == figures["frames_analysed"]
    in_model = timing["deadline_stage"] == "inference"
    parts = health["inference_misses_by_part"]
    assert set(parts) == {"preprocess", "centroid", "crop", "instance", "peaks", "other"}
    assert sum(parts.values()) == health["misses_by_stage"]["inference"] == in_model.sum()
    assert timing.loc[in_model, "deadline_part"].isin(list(parts)).all()
    assert timing.loc[~in_model, "deadline_part"].isna().all()
