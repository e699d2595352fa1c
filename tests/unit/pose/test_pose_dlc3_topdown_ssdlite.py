"""DeepLabCut 3's multi-animal top-down model with its default detector, SSDLite.

DeepLabCut 3.0.2 keeps an SSDLite's boxes as torchvision's ``ssdlite320_mobilenet_v3_large``
post-processes them (score above 0.001, the best 300, non-maximum suppression at 0.55; its
``box_score_thresh`` never reaches the SSD), then its first ``max_individuals``. Here:

- the rule on stand-in boxes (runs everywhere);
- the rule on DeepLabCut's own SSDLite outputs: every default box and score that torchvision's
  post-processing started from in DeepLabCut's ``analyze_videos``, and the boxes DeepLabCut
  kept (``tests/fixtures/dlc3_topdown_ssdlite_flies``, committed; runs everywhere);
- the whole model (the export, 14 MB, not in the repository: ``$DEEPLABSTREAM_DLC3_SSDLITE``
  or ``DEFAULT_EXPORT``, else skipped): boxes and keypoints against ``analyze_videos``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.pose.decoding.box_detections import (
    SSD_LIMITS,
    DetectionLimits,
    ssd_animal_detections,
)
from deeplabstream.pose.formats.dlc3 import DlcExport, check_topdown_supported
from deeplabstream.pose.formats.dlc3_topdown import topdown_problems
from deeplabstream.pose.formats.dlc3_topdown_animals import SsdLiteAnimalsRunner
from deeplabstream.pose.formats.dlc3_topdown_boxes import detection_limits
from deeplabstream.pose.model import ModelDescription, ModelError
from tests.support.dlc3_exports import (
    assert_within,
    converted_models_cache,
    export_or_skip,
    worst_differences,
)
from tests.support.paths import PROJECT_ROOT

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_topdown_ssdlite_flies"
ENV = "DEEPLABSTREAM_DLC3_SSDLITE"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc-tiny/ref_td/"
    "DLC_flies_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-detector1_snapshot-1.pt"
)
LIMITS = DetectionLimits(2, 0.55, 300, candidates=300)


def test_the_rule_keeps_the_best_boxes_apart_up_to_max_individuals() -> None:
    boxes = np.array(
        [
            [0, 0, 100, 100],  # the best
            [5, 5, 105, 105],  # overlaps the best (IoU 0.82 > 0.55): suppressed
            [200, 200, 300, 300],
            [150, 0, 200, 50],
            [0, 200, 50, 250],  # below the score threshold
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.0005], np.float32)
    kept, kept_scores = ssd_animal_detections(boxes, scores, (480, 640), LIMITS)
    scale = np.float32([640 / 320, 480 / 320, 640 / 320, 480 / 320])
    np.testing.assert_array_equal(kept, boxes[[0, 2]] * scale)
    np.testing.assert_array_equal(kept_scores, scores[[0, 2]])
    three, _ = ssd_animal_detections(boxes, scores, (480, 640), DetectionLimits(3, 0.55, 300, 300))
    np.testing.assert_array_equal(three, boxes[[0, 2, 3]] * scale)
    none, _ = ssd_animal_detections(boxes[4:], scores[4:], (480, 640), LIMITS)
    assert none.shape == (0, 4)


def test_only_the_best_candidates_enter_the_suppression() -> None:
    # torchvision's topk_candidates: a box outside the best N is gone even if nothing overlaps it.
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    kept, _ = ssd_animal_detections(boxes, scores, (320, 320), DetectionLimits(3, 0.55, 300, 2))
    np.testing.assert_array_equal(kept, boxes[[1, 2]])


def test_the_runner_gives_each_frame_its_boxes_best_first_padded() -> None:
    every = np.zeros((2, 3, 4), np.float32)
    every[:, 0] = [0, 0, 100, 100]
    every[:, 1] = [200, 200, 300, 300]
    every[:, 2] = [100, 0, 150, 40]
    scores = np.array([[0.4, 0.9, 0.0], [0.0, 0.0, 0.0]], np.float32)

    def graph(frames: np.ndarray) -> list[np.ndarray]:
        assert frames.shape == (2, 3, 320, 640)
        return [every, scores]

    boxes, kept = SsdLiteAnimalsRunner(graph, LIMITS)(np.zeros((2, 3, 320, 640), np.float32))
    np.testing.assert_array_equal(boxes[0], every[0, [1, 0]] * np.float32([2, 1, 2, 1]))
    np.testing.assert_array_equal(kept[0], np.float32([0.9, 0.4]))
    assert np.isnan(boxes[1]).all() and (kept[1] == -1).all()  # no box: NO_DETECTION


def test_an_ssdlite_export_keeps_torchvisions_ssdlite_rule() -> None:
    config = {"detector": {"model": {"type": "SSDLite", "box_score_thresh": 0.01}}}
    assert detection_limits(config, 2) == DetectionLimits(2, 0.55, 300, candidates=300)
    assert SSD_LIMITS.candidates == 300


# --- DeepLabCut's own SSDLite outputs (committed) ----------------------------------------------


def _captured() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "reference" / "ssd_outputs.npz") as data:
        return {name: data[name] for name in data.files}


def test_the_boxes_kept_are_deeplabcuts_on_its_own_ssdlite_outputs() -> None:
    """Every default box and score of DeepLabCut's detector, frame by frame: its kept boxes."""
    data = _captured()
    frames = len(data["boxes"])
    assert frames >= 10 and data["boxes"].shape[1:] == (3234, 4)
    for frame in range(frames):
        kept, scores = ssd_animal_detections(
            data["boxes"][frame], data["scores"][frame], (512, 512), LIMITS
        )
        # DeepLabCut's rows: x, y, w, h in frame pixels (BboxToCoco), best first.
        theirs = data["bboxes"][frame]
        ours = np.column_stack([kept[:, :2], kept[:, 2:] - kept[:, :2]])
        assert len(ours) == int(np.isfinite(theirs[:, 0]).sum()), frame
        np.testing.assert_allclose(ours, theirs[: len(ours)], atol=1e-4)
        np.testing.assert_allclose(scores, data["bbox_scores"][frame][: len(ours)], atol=1e-6)
        # Torchvision's own kept boxes, in its 320 x 320 pixels, before DeepLabCut's trim.
        torchvision_kept = data["kept_boxes"][frame][: len(ours)]
        np.testing.assert_allclose(kept / np.float32(512 / 320), torchvision_kept, atol=1e-4)


# --- the whole model (the export, when present) ------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def description(cache: Path) -> ModelDescription:
    from deeplabstream.pose.loading import load_model

    export = export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut SSDLite top-down", FIXTURE)
    return load_model(export, frame_size=(512, 512))


def _run(estimator: object, frames: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Each frame alone (as DeepLabCut, batch 1): animals, boxes (x, y, w, h), box scores."""
    animals, boxes, scores = [], [], []
    for frame in frames:
        animals.append(estimator.estimate_animals([frame])[0])  # type: ignore[attr-defined]
        boxes.append(estimator.last_boxes[0])  # type: ignore[attr-defined]
        scores.append(estimator.last_box_scores[0])  # type: ignore[attr-defined]
    return np.stack(animals), np.stack(boxes), np.stack(scores)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_the_whole_model_gives_deeplabcuts_boxes_and_keypoints(
    description: ModelDescription, backend: str
) -> None:
    from deeplabstream.pose.formats.dlc3_topdown_animals import open_dlc_topdown_estimator
    from deeplabstream.pose.runtime.backends import open_backend
    from tests.integration.test_dlc3_animals_whole import clip_frames

    assert description.max_animals == 2
    every = 1 if backend == "onnxruntime" else 10
    opener = open_backend if backend == "onnxruntime" else None
    estimator = open_dlc_topdown_estimator(description, opener, threads=1)
    animals, boxes, scores = _run(estimator, clip_frames()[::every])
    with np.load(FIXTURE / "reference" / "clip_predictions.npz") as data:
        theirs = {name: data[name][::every] for name in ("animals", "bboxes", "bbox_scores")}
    worst = worst_differences(animals, theirs["animals"])
    box_px = float(np.nanmax(np.abs(boxes - theirs["bboxes"])))
    box_score = float(np.nanmax(np.abs(scores - theirs["bbox_scores"])))
    print(f"SSDLite top-down, {backend}, clip vs analyze_videos: {worst}, boxes {box_px:.2e} px, "
          f"box scores {box_score:.2e}")  # fmt: skip
    assert np.array_equal(np.isnan(boxes[..., 0]), np.isnan(theirs["bboxes"][..., 0]))
    assert box_px <= 1e-2 and box_score <= 1e-5
    assert_within(worst, 1e-2, 1e-4)


@pytest.mark.slow
def test_a_replay_writes_deeplabcuts_animals_whole(tmp_path: Path, cache: Path) -> None:
    from tests.integration.test_dlc3_animals_whole import (
        read_exact,
        replay_clip,
        whole_animal_differences,
    )

    export = export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut SSDLite top-down", FIXTURE)
    session = replay_clip(tmp_path, cache, model=export)
    (exact,) = session.glob("*.pose_exact.csv")
    frames, points = read_exact(exact)
    with np.load(FIXTURE / "reference" / "clip_predictions.npz") as data:
        theirs = data["animals"]
    assert list(frames) == list(range(len(theirs)))
    worst = whole_animal_differences(points, theirs)
    print(f"SSDLite top-down replay, pose_exact.csv vs analyze_videos: {worst}")
    assert worst["frames_missing_disagree"] == 0 and worst["frames_regrouped"] == 0
    assert worst["dx"] <= 1e-2 and worst["dy"] <= 1e-2 and worst["dlikelihood"] <= 1e-4


# --- the check before a start says what runs ---------------------------------------------------


def _multi_animal_ssdlite_export(**metadata: object) -> DlcExport:
    """A multi-animal top-down export's settings with DeepLabCut's default detector, SSDLite."""
    import yaml

    config_path = PROJECT_ROOT / "tests/fixtures/dlc3_topdown_multianimal_flies/pytorch_config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["detector"]["model"] = {"type": "SSDLite", "box_score_thresh": 0.01}
    config["metadata"].update(metadata)
    return DlcExport(Path("export.pt"), config, {}, ("detector",))


def test_a_multi_animal_ssdlite_export_is_not_refused_and_the_refusals_say_so() -> None:
    assert topdown_problems(_multi_animal_ssdlite_export()) == []  # it runs (tests above)
    # What is still refused names what it is, and never the SSDLite detector as "not yet".
    with pytest.raises(ModelError, match="unique bodyparts") as refused:
        check_topdown_supported(_multi_animal_ssdlite_export(unique_bodyparts=["corner"]))
    not_yet = str(refused.value).split("not yet:")[1]
    assert "unique bodyparts" in not_yet and "SSDLite" not in not_yet
    assert "multi-animal top-down models with the same detectors" in str(refused.value)
