"""DeepLabCut 3.0 top-down models with several individuals: parity with DeepLabCut.

The reference model (``top_down_resnet_50`` with a ``fasterrcnn_mobilenet_v3_large_fpn``
detector, two flies, 13 keypoints) and DeepLabCut's own predictions were made with DeepLabCut
3.0.2 (``tests/fixtures/dlc3_topdown_multianimal_flies/README.md`` says how). Two kinds of tests:

- without the export (they run everywhere): torchvision's and DeepLabCut's rules for keeping
  several boxes, on made-up box-head outputs; the estimator's rows, padding and crops with
  stand-in networks; the refusals;
- with the export (not in the repository: ``$DEEPLABSTREAM_DLC3_TOPDOWN_MULTIANIMAL`` or
  ``DEFAULT_EXPORT``, else skipped): DeepLabCut's ``analyze_videos`` on the 50-frame clip and
  ``analyze_images`` on 10 labelled frames (boxes, box scores, keypoints, likelihoods), through
  the estimator (ONNX Runtime and PyTorch), ``utils/ImageAnalyzer.py``, a replay, a live
  session and ``deeplabstream-inspect``.

Individuals are matched row for row: the estimator keeps DeepLabCut's order (its detector's
boxes, highest score first; no tracker in between). The app's pose files go through the
tracker, which keeps identities by whole animals (it may swap rows), so there each frame's
animals must be DeepLabCut's, whole, in some order.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.pose.decoding import region_proposals as rp
from deeplabstream.pose.decoding.box_detections import DetectionLimits, animal_detections
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.dlc3 import check_export
from deeplabstream.pose.formats.dlc3_fasterrcnn import FasterRcnnRunner
from deeplabstream.pose.formats.dlc3_topdown import CropSettings, DlcTopDownDecoding
from deeplabstream.pose.formats.dlc3_topdown_animals import (
    DlcTopDownAnimalsEstimator,
    FasterRcnnAnimalsRunner,
    SsdLiteAnimalsRunner,
    open_dlc_topdown_estimator,
)
from deeplabstream.pose.formats.dlc3_topdown_boxes import detection_limits
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from tests.support.dlc3_exports import (
    assert_whole_animals,
    export_or_skip,
    whole_animal_differences,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_topdown_multianimal_flies"
ENV = "DEEPLABSTREAM_DLC3_TOPDOWN_MULTIANIMAL"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc-ma-topdown/ref/"
    "DLC_flies_NetType.RESNET_50_iteration-0_shuffle-2_snapshot-detector1_snapshot-2.pt"
)
IMAGES_FOLDER = Path("/work/fw/dlc-ma-topdown/ref/images")
SHARED_CLIP = "sleap-flies/inference/flies_clip_first100.mp4"
CLIP_FRAMES = 50
CLIP_SHA256 = "e25f173cff2d83c8e80d61a81b4125ed38a49544b73292e38d47456f1e1d2f08"
KEYPOINTS = (
    "head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4",
    "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR",
)  # fmt: skip
XY_TOLERANCE = 1e-2  # pixels (issue 36: fp32 <= 0.01 px)
BOX_SCORE_TOLERANCE = 1e-5
LIKELIHOOD_TOLERANCE = 1e-4


# --- torchvision's and DeepLabCut's rules, on made-up outputs: no export needed -------------------


def _head_outputs(scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Box-head outputs whose animal softmax scores are ``scores`` and whose deltas are 0."""
    p = np.asarray(scores, np.float64)
    logits = np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)
    return logits, np.zeros((len(p), 8), np.float32)


PROPOSALS = np.array(
    [
        [10, 10, 50, 50],  # overlaps the next one (IoU 0.82): suppressed by it
        [12, 12, 52, 52],
        [100, 100, 140, 140],
        [200, 200, 240, 240],  # under DeepLabCut's default box_score_thresh (0.01)
        [300, 300, 340, 340],
    ],
    np.float32,
)
SCORES = [0.9, 0.95, 0.6, 0.005, 0.3]


@pytest.mark.parametrize(
    ("max_individuals", "threshold", "expected"),
    [
        (2, 0.01, [1, 2]),  # the best two after NMS, highest score first
        (4, 0.01, [1, 2, 4]),  # fewer boxes than individuals: no more rows
        (5, 0.0, [1, 2, 4, 3]),  # a lower threshold lets the weak box in, last
        (1, 0.01, [1]),  # one individual: the best box (the single-animal rule)
    ],
)
def test_boxes_are_kept_as_torchvision_and_deeplabcut_keep_them(
    max_individuals: int, threshold: float, expected: list[int]
) -> None:
    logits, deltas = _head_outputs(SCORES)
    settings = rp.FasterRcnnSettings(box_score_threshold=threshold)
    boxes, scores = animal_detections(
        logits, deltas, PROPOSALS, (480, 640), settings, DetectionLimits(max_individuals)
    )
    np.testing.assert_allclose(boxes, PROPOSALS[expected], atol=1e-4)
    np.testing.assert_allclose(scores, np.asarray(SCORES)[expected], rtol=1e-5)
    if max_individuals == 1:  # the same box as the single-animal model's best_detection
        best = rp.best_detection(logits, deltas, PROPOSALS, (480, 640), settings)
        assert best is not None
        np.testing.assert_array_equal(boxes[0], best[0])


def test_a_looser_nms_keeps_overlapping_animals() -> None:
    logits, deltas = _head_outputs(SCORES)
    settings = rp.FasterRcnnSettings()
    boxes, _ = animal_detections(
        logits, deltas, PROPOSALS, (480, 640), settings, DetectionLimits(3, nms_threshold=0.9)
    )
    np.testing.assert_allclose(boxes, PROPOSALS[[1, 0, 2]], atol=1e-4)


def _config() -> dict:
    return dict(yaml.safe_load((FIXTURE / "pytorch_config.yaml").read_text()))


def test_the_export_config_gives_two_individuals_and_torchvisions_limits() -> None:
    config = _config()
    limits = detection_limits(config, 2)
    assert limits == DetectionLimits(2, 0.5, 100)


def test_an_ssdlite_detector_keeps_torchvisions_ssdlite_limits() -> None:
    # DeepLabCut 3's default detector: torchvision's ssdlite320 post-processing (its
    # box_score_thresh never reaches the SSD), DeepLabCut's max_individuals on top.
    config = _config()
    config["detector"]["model"] = {"type": "SSDLite", "box_score_thresh": 0.5}
    limits = detection_limits(config, 3)
    assert limits == DetectionLimits(3, 0.55, 300, candidates=300)


def _export_file(tmp_path: Path, config: dict) -> Path:
    """An export holding ``config`` and no weights: enough for the check before a start."""
    path = tmp_path / "export.pt"
    torch.save({"config": config, "pose": {}, "detector": {}}, path)
    return path


def test_the_check_before_a_start_accepts_it_with_either_detector(tmp_path: Path) -> None:
    config = _config()
    check_export(_export_file(tmp_path, config))
    config["detector"]["model"] = {"type": "SSDLite"}
    check_export(_export_file(tmp_path, config))
    config["detector"]["model"] = {"type": "RetinaNet"}
    with pytest.raises(ModelError, match=r"a detector of type RetinaNet"):
        check_export(_export_file(tmp_path, config))


def _stand_in_description(animals: int, decoding: DlcTopDownDecoding) -> ModelDescription:
    """A top-down description of stand-in graphs (detector.onnx, pose.onnx) with ``decoding``."""
    return ModelDescription(
        name="stand-in",
        framework="deeplabcut",
        model_file=Path("detector.onnx"),
        keypoints=("a", "b"),
        input_height=100,
        input_width=200,
        output_kind="coordinates",
        normalization="in-graph",
        mean=(0.0, 0.0, 0.0),
        std=(1 / 255, 1 / 255, 1 / 255),
        any_input_size=True,
        max_animals=animals,
        decoding=decoding,
    )


def _stand_in(animals: int = 2, crop_from: str = "same_frame") -> DlcTopDownAnimalsEstimator:
    """An estimator on stand-in networks: boxes given, each crop's keypoint at its centre."""
    description = _stand_in_description(
        animals,
        DlcTopDownDecoding(
            CropSettings(32, 32),
            Path("pose.onnx"),
            "top_down_resnet_50",
            "FasterRCNN",
            score_threshold=-1.0,
            box_head_graph=Path("head.onnx"),
            detection_limits=DetectionLimits(animals),
        ),
    )
    boxes = np.full((1, animals, 4), np.nan, np.float32)
    scores = np.full((1, animals), -1.0, np.float32)
    boxes[0, 0], scores[0, 0] = (120, 20, 160, 60), 0.8  # the best box first
    boxes[0, 1], scores[0, 1] = (10, 40, 30, 60), 0.4

    def run_pose(crops: np.ndarray) -> list[np.ndarray]:
        points = np.zeros((len(crops), 2, 3), np.float32)
        points[:, :, :2] = 16.0  # the crop's centre
        points[:, :, 2] = np.arange(1, len(crops) + 1)[:, None] / 10  # a score per crop
        return [points]

    return DlcTopDownAnimalsEstimator(
        description,
        lambda frames: [np.repeat(boxes, len(frames), 0), np.repeat(scores, len(frames), 0)],
        run_pose,
        crop_from=crop_from,  # type: ignore[arg-type]
    )


def test_each_box_gets_its_own_crop_and_row_in_the_detectors_order() -> None:
    estimator = _stand_in(animals=3)
    frame = np.zeros((100, 200, 3), np.uint8)
    points = estimator.estimate_animals([frame, frame])
    assert points.shape == (2, 3, 2, 3)
    # each keypoint at its box's centre, in frame pixels (crop centre * scale + offset)
    np.testing.assert_allclose(points[:, 0, :, 0], 140.0)  # box 1: 40 x 40 around (140, 40)
    np.testing.assert_allclose(points[:, 0, :, 1], 40.0)
    np.testing.assert_allclose(points[:, 1, :, 0], 20.0)  # box 2: 20 x 20 around (20, 50)
    np.testing.assert_allclose(points[:, 1, :, 1], 50.0)
    # one batched pose run: the crops in order frame by frame, animal by animal
    np.testing.assert_allclose(points[:, :2, 0, 2], [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)
    assert np.isnan(points[:, 2]).all()  # a third row, no third box: NaN
    assert np.isnan(estimator.last_boxes[:, 2]).all()
    np.testing.assert_allclose(estimator.last_boxes[0, 0], (120, 20, 40, 40))
    assert set(estimator.last_stage_timings) == {"detector", "crop", "pose"}
    assert estimator.animals == 3


def test_a_flipped_camera_gets_each_animal_back_in_its_pixels() -> None:
    estimator = _stand_in()
    frame = np.zeros((100, 200, 3), np.uint8)
    points = estimator.estimate_animals([frame], flips=[True])
    np.testing.assert_allclose(points[0, 0, :, 0], 200 - 1 - 140.0)


def test_crops_from_the_previous_frame_are_refused_for_several_animals() -> None:
    with pytest.raises(ModelError, match="CROP_FROM = previous_frame is not implemented"):
        _stand_in(crop_from="previous_frame")


# --- the real export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A cache named in the environment is kept (converting the two graphs takes minutes).
    folder = Path(os.environ.get(CACHE_ENV) or tmp_path_factory.mktemp("converted"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def export_path() -> Path:
    return export_or_skip(
        ENV, DEFAULT_EXPORT, "DeepLabCut multi-animal top_down_resnet_50", FIXTURE
    )


@pytest.fixture(scope="module")
def description(cache: Path, export_path: Path) -> ModelDescription:
    return load_model(export_path, frame_size=(512, 512))


def clip_frames() -> list[np.ndarray]:
    """The reference clip's frames: the shared clip's first 50, halved with INTER_AREA (BGR)."""
    capture = cv2.VideoCapture(str(shared_data(SHARED_CLIP)))
    frames: list[np.ndarray] = []
    while len(frames) < CLIP_FRAMES:
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA))
    capture.release()
    digest = hashlib.sha256(np.stack(frames).tobytes()).hexdigest()
    if digest != CLIP_SHA256:
        pytest.skip(f"this OpenCV decodes or halves the clip differently ({digest})")
    return frames


def _reference(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "reference" / name) as data:
        return {key: data[key] for key in data.files}


def _worst(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Largest differences, row for row; rows DeepLabCut pads must be NaN here too."""
    assert ours.shape == theirs.shape
    same_missing = np.isnan(ours[..., 0]) == np.isnan(theirs[..., 0])
    seen = ~np.isnan(theirs[..., 0]) & ~np.isnan(ours[..., 0])
    delta = np.abs(ours - theirs)
    return {
        "dxy": float(delta[..., :2][seen].max()),
        "dlikelihood": float(delta[..., 2][seen].max()),
        "keypoints_compared": int(seen.sum()),
        "missing_disagree": int((~same_missing).sum()),
    }


def _run(estimator: object, frames: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Each frame alone (as DeepLabCut, batch 1): animals, boxes (x, y, w, h), box scores."""
    animals, boxes, scores = [], [], []
    for frame in frames:
        animals.append(estimator.estimate_animals([frame])[0])  # type: ignore[attr-defined]
        boxes.append(estimator.last_boxes[0])  # type: ignore[attr-defined]
        scores.append(estimator.last_box_scores[0])  # type: ignore[attr-defined]
    return np.stack(animals), np.stack(boxes), np.stack(scores)


def _assert_matches(ours: tuple[np.ndarray, ...], theirs: dict[str, np.ndarray], what: str) -> None:
    animals, boxes, scores = ours
    worst = _worst(animals, theirs["animals"])
    box_px = float(np.nanmax(np.abs(boxes - theirs["boxes"])))
    box_score = float(np.nanmax(np.abs(scores - theirs["box_scores"])))
    two = int(np.isfinite(theirs["box_scores"]).all(axis=1).sum())
    print(f"{what}: {worst}, boxes {box_px:.2e} px, box scores {box_score:.2e}, {two} with 2")
    assert np.array_equal(np.isnan(boxes[..., 0]), np.isnan(theirs["boxes"][..., 0]))
    assert worst["missing_disagree"] == 0
    assert worst["dxy"] <= XY_TOLERANCE and box_px <= XY_TOLERANCE
    assert worst["dlikelihood"] <= LIKELIHOOD_TOLERANCE and box_score <= BOX_SCORE_TOLERANCE


@pytest.mark.slow
def test_export_is_described(description: ModelDescription) -> None:
    assert description.keypoints == KEYPOINTS and description.max_animals == 2
    assert description.multi_animal and description.animals == 2


@pytest.mark.slow
def test_the_reference_has_frames_with_two_boxes() -> None:
    """Without two boxes in some frames the parity below would test one animal only."""
    for name in ("clip_animals.npz", "images_animals.npz"):
        two = np.isfinite(_reference(name)["box_scores"]).all(axis=1)
        assert two.sum() >= 3, name


@pytest.mark.slow
def test_clip_matches_deeplabcut_analyze_videos(description: ModelDescription) -> None:
    estimator = open_dlc_topdown_estimator(description, open_backend, threads=1)
    ours = _run(estimator, clip_frames())
    _assert_matches(ours, _reference("clip_animals.npz"), "clip, ONNX Runtime vs analyze_videos")


@pytest.mark.slow
def test_clip_matches_deeplabcut_with_the_rebuilt_pytorch_modules(
    description: ModelDescription,
) -> None:
    estimator = open_dlc_topdown_estimator(description, threads=1)
    theirs = {k: v[::10] for k, v in _reference("clip_animals.npz").items() if k != "bodyparts"}
    ours = _run(estimator, clip_frames()[::10])
    _assert_matches(ours, theirs, "every 10th clip frame, PyTorch vs analyze_videos")


def _labelled_images() -> list[Path]:
    names = [str(n) for n in _reference("images_animals.npz")["names"]]
    paths = [IMAGES_FOLDER / name for name in names]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"the labelled PNGs are not here ({IMAGES_FOLDER})")
    return paths


@pytest.mark.slow
def test_labelled_images_match_deeplabcut_analyze_images(description: ModelDescription) -> None:
    estimator = open_dlc_topdown_estimator(description, open_backend, threads=1)
    frames = [np.asarray(cv2.imread(str(p))) for p in _labelled_images()]
    theirs = {k: v for k, v in _reference("images_animals.npz").items() if k != "names"}
    _assert_matches(_run(estimator, frames), theirs, "10 PNGs, ONNX Runtime vs analyze_images")


@pytest.mark.slow
def test_image_analyzer_gives_deeplabcuts_animals(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    paths = _labelled_images()
    for path in paths:
        (folder / path.name).write_bytes(path.read_bytes())
    result = run_cli(
        str(folder), "--model", str(export_path), "--output-dir", str(tmp_path / "out"),
        script="utils/ImageAnalyzer.py", timeout=900, env={CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(
        tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2, 3], index_col=0
    )
    table.index = [Path(str(i)).name for i in table.index]
    points = table.loc[[p.name for p in paths]].to_numpy(np.float64).reshape(len(paths), 2, 13, 3)
    worst = _worst(points, _reference("images_animals.npz")["animals"])  # no tracker
    print(f"ImageAnalyzer vs DeepLabCut analyze_images: {worst}")
    assert worst["missing_disagree"] == 0 and worst["dxy"] <= XY_TOLERANCE
    assert worst["dlikelihood"] <= 1e-3  # the CSV's decimals


def _assert_table_matches(points: np.ndarray, frames: list[int], expected: np.ndarray) -> float:
    """Each analysed frame's animals vs DeepLabCut's, whole, in some order; the worst |dxy|.

    The app's pose files hold the framework's animals whole in identity order (issue 54): a
    permutation of DeepLabCut's rows per frame, nothing moved, dropped or added.
    """
    worst = whole_animal_differences(points, expected[frames], XY_TOLERANCE)
    assert_whole_animals(worst, XY_TOLERANCE, 1e-3)  # the CSV keeps 3 and 4 decimals
    return max(worst["dx"], worst["dy"])


def _write_clip(folder: Path) -> Path:
    """The reference clip as a lossless FFV1 video (what DeepLabCut analysed)."""
    path = folder / "flies_clip50_512.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"FFV1"), 25, (512, 512))
    for frame in clip_frames():
        writer.write(frame)
    writer.release()
    return path


# The shipped settings: the tracker writes DeepLabCut's animals whole (issue 54).
POSE_SETTINGS = "[Pose]\nMAX_ANIMALS = 2\n"


@pytest.mark.slow
def test_video_analyzer_replays_the_clip_as_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n" + POSE_SETTINGS)
    result = run_cli(
        str(_write_clip(tmp_path)), "--fast", "--no-experiment", "--model", str(export_path),
        "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        script="utils/VideoAnalyzer.py", timeout=900,
        env={CACHE_ENV: str(cache), "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "replay.lock")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (pose_file,) = (tmp_path / "out").glob("*/*.pose.csv")
    table = read_pose_table(pose_file)
    assert table.individuals == ("animal1", "animal2") and table.keypoints == KEYPOINTS
    assert list(table.frames) == list(range(CLIP_FRAMES))
    expected = _reference("clip_animals.npz")["animals"]
    worst = _assert_table_matches(table.points, list(range(CLIP_FRAMES)), expected)
    print(f"VideoAnalyzer --fast, {CLIP_FRAMES} frames, tracker's order vs DeepLabCut: {worst}")


@pytest.mark.slow
def test_runs_live_in_the_app_and_matches_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    clip = _write_clip(tmp_path)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n" + POSE_SETTINGS,
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--model",
        str(export_path), "--output-dir", str(tmp_path / "out"), timeout=900,
        env={CACHE_ENV: str(cache), "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "app.lock")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    table = read_pose_table(session / "flies.pose.csv")
    analysed = ~np.isnan(table.points[..., 2]).all(axis=(1, 2))
    frames = [int(f) for f in table.frames[analysed]]
    assert len(frames) >= 2  # live: the newest frames
    expected = _reference("clip_animals.npz")["animals"]
    worst = _assert_table_matches(table.points[analysed], frames, expected)
    timing = pd.read_csv(session / "flies.pose_timing.csv")
    assert {"detector_ms", "crop_ms", "pose_ms"} <= set(timing.columns)
    print(f"live, {len(frames)} frames analysed, vs DeepLabCut: {worst}")


@pytest.mark.slow
def test_inspect_describes_it_and_checks_the_conversion(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), clip_frames()[0])
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(export_path), "--frame",
         str(frame)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "2 individual(s)" in out and "up to 2 boxes" in out and "method 'td'" in out
    assert "reproduces the network" in out


@pytest.mark.parametrize("detector", ["SSDLite", "FasterRCNN"])
@pytest.mark.parametrize("animals", [1, 2])
def test_the_one_opener_wires_each_top_down_kind_on_stand_in_backends(
    detector: str, animals: int
) -> None:
    """One animal or several, either detector: the graphs opened and the runners between them.

    The backends are stand-ins (the DeepLabCut exports are not in every checkout): each records
    the graph it was opened for, so the wiring of ``open_dlc_topdown_estimator`` is seen whole.
    """
    faster_rcnn = detector == "FasterRCNN"
    description = _stand_in_description(
        animals,
        DlcTopDownDecoding(
            CropSettings(32, 32),
            Path("pose.onnx"),
            "top_down_resnet_50",
            detector,
            box_head_graph=Path("head.onnx") if faster_rcnn else None,
            detector_settings=rp.FasterRcnnSettings() if faster_rcnn else None,
            detection_limits=DetectionLimits(3) if animals > 1 else None,
        ),
    )
    opened: list[tuple[str, str, str, int]] = []

    class StandInBackend:
        def __init__(self, stage: ModelDescription) -> None:
            self.stage = stage

        def run(self, batch: np.ndarray) -> list[np.ndarray]:
            return [batch]

    def open_stand_in(
        stage: ModelDescription, backend: str, device: str, threads: int
    ) -> StandInBackend:
        opened.append((stage.model_file.name, backend, device, threads))
        return StandInBackend(stage)

    estimator = open_dlc_topdown_estimator(description, open_stand_in, device="cpu", threads=3)
    graphs = ["detector.onnx", "pose.onnx", *(["head.onnx"] if faster_rcnn else [])]
    assert opened == [(graph, "onnxruntime", "cpu", 3) for graph in graphs]
    assert isinstance(estimator, DlcTopDownAnimalsEstimator) == (animals > 1)
    assert _graph_of(estimator.run_pose) == "pose.onnx"
    runner: Any = estimator.run_detector
    if animals > 1:
        kind = FasterRcnnAnimalsRunner if faster_rcnn else SsdLiteAnimalsRunner
        assert type(runner) is kind
        assert runner.limits.max_individuals == animals  # [Pose] MAX_ANIMALS, not the export's 3
    elif faster_rcnn:
        assert type(runner) is FasterRcnnRunner
    if faster_rcnn:
        assert _graph_of(runner.run_proposals) == "detector.onnx"
        assert _graph_of(runner.run_box_head) == "head.onnx"
        assert runner.roi_align.threads == 3
    elif animals > 1:
        assert _graph_of(runner.run_graph) == "detector.onnx"
    else:
        assert _graph_of(runner) == "detector.onnx"  # the detector graph's own run
    # The detector's backend, when given, is not opened again.
    opened.clear()
    given = StandInBackend(description)
    estimator = open_dlc_topdown_estimator(description, open_stand_in, given, threads=3)
    assert [graph for graph, *_ in opened] == graphs[1:]
    runner = estimator.run_detector
    detector_run = runner.run_proposals if faster_rcnn else getattr(runner, "run_graph", runner)
    assert detector_run.__self__ is given


def _graph_of(run: object) -> str:
    """The graph a stand-in backend's bound ``run`` was opened for."""
    return str(run.__self__.stage.model_file.name)  # type: ignore[attr-defined]
