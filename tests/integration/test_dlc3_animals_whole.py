"""A multi-animal DeepLabCut model made by DeepLabCut, committed: its animals reach the files whole.

The export (``tests/fixtures/dlc3_paf_tiny_flies``: DeepLabCut 3.0.2's ``cspnext_s`` with
part-affinity fields, shrunk to 2.8 MB, two flies, five keypoints; its README says how it was
made) and DeepLabCut's own assemblies of the 50-frame flies clip (``analyze_videos(...,
auto_track=False)``) and of 10 labelled frames (``analyze_images``) are in the repository, so
these tests run wherever ``../shared`` has the sleap-flies clip.

* the estimator: DeepLabCut's animals row for row (no tracker);
* ``deeplabstream-images``: the same, per animal;
* replay and live (the app's pose files, through the identity tracker on the shipped settings):
  every analysed frame holds DeepLabCut's animals **whole**, in some order (a permutation of
  whole animals per frame, nothing moved, dropped or added), checked on ``pose_exact.csv``
  (full precision); ``session.json`` and the pose table's metadata say the repair was off;
* with ``[Pose] MERGED_INSTANCE_REPAIR = on``, the repair is named in both and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deeplabstream.offline.verify.frames import read_exact_poses
from deeplabstream.outputs.pose.files import read_identities_metadata
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from tests.support.dlc3_exports import (
    assert_whole_animals,
    assert_within,
    converted_models_cache,
    estimate_animals,
    frame_differences,
    whole_animal_differences,
    worst_differences,
)
from tests.support.files import write_settings
from tests.support.in_process import run_main_here
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_paf_tiny_flies"
EXPORT = FIXTURE / "DLC_flies_NetType.CSPNEXT_S_iteration-0_shuffle-1_snapshot-3.pt"
KEYPOINTS = ("head", "thorax", "abdomen", "wingL", "wingR")
SHARED_CLIP = "sleap-flies/inference/flies_clip_first100.mp4"
TRAINING_VIDEO = "sleap-flies/training_data/flies_20190128_113421.120s.mp4"
CLIP_FRAMES = 50
CLIP_SHA256 = "e25f173cff2d83c8e80d61a81b4125ed38a49544b73292e38d47456f1e1d2f08"
LABELLED_SHA256 = "72f969ca5c0594384d81d09b576f46ad112e4390548983ebbce87e913c0d7f05"
# The per-kind bounds of a DeepLabCut model at fp32 (docs/pose-models.md): 0.01 px, 1e-4.
XY_TOLERANCE = 1e-2
LIKELIHOOD_TOLERANCE = 1e-4


def _reference(name: str) -> np.ndarray:
    with np.load(FIXTURE / "reference" / name) as data:
        return np.asarray(data["animals"])


def _halved(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA)


def clip_frames() -> list[np.ndarray]:
    """The clip DeepLabCut analysed: the shared clip's first 50 frames halved (BGR)."""
    capture = cv2.VideoCapture(str(shared_data(SHARED_CLIP)))
    frames: list[np.ndarray] = []
    while len(frames) < CLIP_FRAMES:
        ok, frame = capture.read()
        assert ok
        frames.append(_halved(frame))
    capture.release()
    digest = hashlib.sha256(np.stack(frames).tobytes()).hexdigest()
    if digest != CLIP_SHA256:
        pytest.skip(f"this OpenCV decodes or halves the clip differently ({digest})")
    return frames


def labelled_frames(names: list[str]) -> list[np.ndarray]:
    """The labelled frames DeepLabCut's analyze_images read (``imgNNNN.png``: frame NNNN)."""
    wanted = {int(name[3:7]): index for index, name in enumerate(names)}
    frames: list[np.ndarray | None] = [None] * len(names)
    capture = cv2.VideoCapture(str(shared_data(TRAINING_VIDEO)))
    for index in range(max(wanted) + 1):
        ok, frame = capture.read()
        assert ok
        if index in wanted:
            frames[wanted[index]] = _halved(frame)
    capture.release()
    stack = np.stack(frames)  # type: ignore[arg-type]
    digest = hashlib.sha256(stack.tobytes()).hexdigest()
    if digest != LABELLED_SHA256:
        pytest.skip(f"this OpenCV decodes or halves the labelled frames differently ({digest})")
    return list(stack)


def _write_clip(folder: Path) -> Path:
    """The reference clip as a lossless FFV1 video (what DeepLabCut analysed)."""
    path = folder / "flies_clip50_512.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"FFV1"), 25, (512, 512))
    for frame in clip_frames():
        writer.write(frame)
    writer.release()
    return path


def _assert_whole(worst: dict[str, float], xy: float, likelihood: float) -> None:
    assert_whole_animals(worst, xy, likelihood)


def read_exact(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``<camera>.pose_exact.csv``: frame indices and (N, A, K, 3) values at full precision."""
    return read_exact_poses(path, len(KEYPOINTS))


def test_the_committed_export_is_deeplabcuts_file_and_small() -> None:
    expected = (FIXTURE / "export.sha256").read_text().split()[0]
    assert hashlib.sha256(EXPORT.read_bytes()).hexdigest() == expected
    assert EXPORT.stat().st_size < 4_000_000


def test_the_reference_has_two_animals_partial_ones_and_faint_keypoints() -> None:
    # What makes the reference a test of "whole animals": frames with two animals, animals
    # missing keypoints, and keypoints below the shipped LIKELIHOOD_THRESHOLD (0.5).
    clip = _reference("clip_assemblies.npz")
    per_animal = np.isfinite(clip[..., 0]).sum(axis=-1)
    assert ((per_animal > 0).sum(axis=1) == 2).sum() >= 30
    assert ((per_animal > 0) & (per_animal < len(KEYPOINTS))).any()
    assert (clip[..., 2] < 0.5).sum() > 100


# --- through the estimator and the images command (no tracker) ----------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def description(cache: Path) -> ModelDescription:
    return load_model(EXPORT, frame_size=(512, 512))


@pytest.mark.slow
def test_the_estimator_gives_deeplabcuts_assemblies_row_for_row(
    description: ModelDescription,
) -> None:
    assert description.keypoints == KEYPOINTS and description.max_animals == 2
    ours = estimate_animals(description, clip_frames(), "onnxruntime")
    worst = worst_differences(ours, _reference("clip_assemblies.npz"))
    print(f"tiny PAF model, 50 clip frames, ONNX Runtime vs analyze_videos: {worst}")
    assert_within(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)
    names = [str(n) for n in np.load(FIXTURE / "reference" / "images_assemblies.npz")["names"]]
    ours = estimate_animals(description, labelled_frames(names), "onnxruntime")
    worst = worst_differences(ours, _reference("images_assemblies.npz"))
    print(f"tiny PAF model, 10 labelled frames vs analyze_images: {worst}")
    assert_within(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)


@pytest.mark.slow
def test_the_images_command_gives_deeplabcuts_animals(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    picked = list(range(0, CLIP_FRAMES, 5))
    frames = clip_frames()
    for index in picked:
        cv2.imwrite(str(folder / f"frame{index:03d}.png"), frames[index])
    from deeplabstream.offline.replay.image_command import main as images_main

    # utils/ImageAnalyzer.py's command, its main in this process (the module's cache is set in
    # its environment): DeepLabCut's animals are the point, not a new interpreter.
    assert os.environ.get(CACHE_ENV) == str(cache)
    code, said, complained = run_main_here(
        images_main, [str(folder), "--model", str(EXPORT), "--output-dir", str(tmp_path / "out")]
    )
    assert code == 0, said[-3000:] + complained[-3000:]
    table = pd.read_csv(
        tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2, 3], index_col=0
    )
    table.index = [Path(str(i)).name for i in table.index]
    rows = [f"frame{index:03d}.png" for index in picked]
    points = table.loc[rows].to_numpy(np.float64).reshape(len(rows), 2, len(KEYPOINTS), 3)
    theirs = _reference("clip_assemblies.npz")[picked]
    worst = whole_animal_differences(points, theirs)
    print(f"deeplabstream-images, {len(rows)} clip frames vs analyze_videos: {worst}")
    _assert_whole(worst, XY_TOLERANCE, 1e-3)  # the CSV keeps the likelihood to 4 decimals
    # No tracker there: DeepLabCut's own order, row for row.
    for mine, want in zip(points, theirs, strict=True):
        row_for_row = frame_differences(mine, want)
        assert row_for_row is not None and row_for_row["dx"] <= XY_TOLERANCE


# --- replay and live: through the identity tracker, on the shipped settings --------------------


def replay_clip(tmp_path: Path, cache: Path, pose_settings: str = "", model: Path = EXPORT) -> Path:
    """Replay the clip (``--fast``) with ``model``; return its session folder."""
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[Camera arena]\nSOURCE = synthetic\n[Pose]\n{pose_settings}")
    from deeplabstream.offline.replay.command import main as replay_main

    # utils/VideoAnalyzer.py's command, its main in this process (``cache`` is set in its
    # environment by the module's fixture): the pose files are the point, not a new interpreter.
    assert os.environ.get(CACHE_ENV) == str(cache)
    code, said, complained = run_main_here(
        replay_main,
        [
            str(_write_clip(tmp_path)), "--fast", "--no-experiment", "--model", str(model),
            "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    (session,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    return session


def _identities(session: Path) -> dict:
    record = json.loads((session / "session.json").read_text())
    (camera,) = record["pose_runs"][0]["cameras"].values()
    return dict(camera["identities"])


@pytest.mark.slow
def test_a_replay_writes_deeplabcuts_animals_whole(tmp_path: Path, cache: Path) -> None:
    session = replay_clip(tmp_path, cache)  # the shipped settings: LIKELIHOOD_THRESHOLD 0.5
    (exact,) = session.glob("*.pose_exact.csv")
    frames, points = read_exact(exact)
    assert list(frames) == list(range(CLIP_FRAMES))
    worst = whole_animal_differences(points, _reference("clip_assemblies.npz"))
    print(f"replay --fast, pose_exact.csv vs analyze_videos up to the animals' order: {worst}")
    _assert_whole(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)
    identities = _identities(session)
    assert identities["merged_instance_repair"] == "off"
    assert identities["repair_points_moved"] == identities["repair_points_dropped"] == 0
    assert identities["detections_dropped"] == 0
    (table,) = session.glob("*.pose.pqt")
    assert read_identities_metadata(table) == {
        "identities": "motion and looks",
        "merged_instance_repair": "off",
    }


@pytest.mark.slow
def test_a_replay_with_the_repair_on_names_and_counts_it(tmp_path: Path, cache: Path) -> None:
    repair = "MERGED_INSTANCE_REPAIR = on\nLIKELIHOOD_THRESHOLD = 0.1\n"
    session = replay_clip(tmp_path, cache, repair)
    identities = _identities(session)
    assert identities["merged_instance_repair"] == "on"
    (table,) = session.glob("*.pose.pqt")
    assert read_identities_metadata(table) == {
        "identities": "motion and looks",
        "merged_instance_repair": "on",
    }
    (exact,) = session.glob("*.pose_exact.csv")
    _, points = read_exact(exact)
    worst = whole_animal_differences(points, _reference("clip_assemblies.npz"))
    print(f"replay with the repair on: {worst}; counted: {identities}")
    # Whatever it changed is counted: frames it touched, at most the frames that differ.
    differ = worst["frames_missing_disagree"] + worst["frames_regrouped"]
    assert differ <= identities["repair_frames"]
    assert (identities["repair_points_moved"] > 0) == (identities["repair_frames"] > 0)


@pytest.mark.slow
def test_live_writes_deeplabcuts_animals_whole(tmp_path: Path, cache: Path) -> None:
    clip = _write_clip(tmp_path)
    settings = write_settings(
        tmp_path, f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--model", str(EXPORT),
        "--output-dir", str(tmp_path / "out"), timeout=900, env={CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    frames, points = read_exact(session / "flies.pose_exact.csv")
    assert len(frames) >= 2  # live: the newest frames
    worst = whole_animal_differences(points, _reference("clip_assemblies.npz")[frames])
    print(f"live, {len(frames)} frames analysed, vs analyze_videos: {worst}")
    _assert_whole(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)
    assert _identities(session)["merged_instance_repair"] == "off"
