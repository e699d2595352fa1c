"""DeepLabCut 3.0's FasterRCNN detector, rebuilt without torchvision: parity with torchvision.

Three levels:

- torchvision's steps (pose.decoding.region_proposals) and ONNX Runtime's ``RoiAlign`` against
  small hand-made cases and a loop written after torchvision's kernel;
- the whole detector on seeded random weights against torchvision's own FasterRCNN (built as
  DeepLabCut builds it; ``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_resnet50_fpn_v2``)
  on three shared-data images: tests/fixtures/dlc3_fasterrcnn_random (reference*.json, made by
  make_reference.py in DeepLabCut's environment; the weights are re-drawn here from NumPy's
  seeded generator);
- a real DeepLabCut top-down export (``top_down_hrnet_w32`` + ``fasterrcnn_mobilenet_v3_large_fpn``,
  tests/fixtures/dlc3_topdown_hrnet_w32_fasterrcnn) against DeepLabCut's own boxes and keypoints;
  the export (195 MB) is not in the repository: ``$DEEPLABSTREAM_DLC3_TOPDOWN_HRNET`` or
  ``TOPDOWN_EXPORT``, skipped with that reason when absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest

from deeplabstream.pose.decoding import region_proposals as rp
from deeplabstream.pose.formats import dlc3_fasterrcnn
from deeplabstream.pose.formats.conversion import CACHE_ENV, run_module
from deeplabstream.pose.formats.dlc3 import check_export
from deeplabstream.pose.formats.dlc3_topdown import topdown_problems
from deeplabstream.pose.formats.dlc3_topdown_animals import open_dlc_topdown_estimator
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.networks.fasterrcnn import MOBILENET, RESNET50_V2, DlcFasterRcnn
from deeplabstream.pose.runtime.backends import open_backend
from tests.support.dlc3_exports import converted_models_cache
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

RANDOM = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_fasterrcnn_random"
TOPDOWN = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_topdown_hrnet_w32_fasterrcnn"
TOPDOWN_ENV = "DEEPLABSTREAM_DLC3_TOPDOWN_HRNET"
TOPDOWN_EXPORT = Path(
    "/work/fw/dlc3/ref/shuffle7/DLC_openfield_NetType.HRNET_W32_iteration-0_shuffle-7"
    "_snapshot-detectorbest-1_snapshot-best-1.pt"
)
CLIP = "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4"
CLIP_FRAMES = 20
KEYPOINTS = ("snout", "leftear", "rightear", "tailbase")
XY_TOLERANCE = 1e-2  # pixels (issue 36: fp32 <= 0.01 px)
SCORE_TOLERANCE = 1e-5
LIKELIHOOD_TOLERANCE = 1e-4
SETTINGS = rp.FasterRcnnSettings()
RANDOM_SCORE_TOLERANCE = 1e-6  # the best box's score against torchvision's, random weights


# --- torchvision's steps -----------------------------------------------------------------------


def test_frames_are_resized_as_torchvision_does() -> None:
    plan = rp.resize_plan(480, 640, SETTINGS)
    assert plan.resized == (800, 1066)  # floor(640 * 800 / 480)
    assert plan.padded == (800, 1088)
    assert rp.resize_plan(1080, 1920, SETTINGS).resized == (749, 1333)  # the long side caps
    assert rp.feature_grids(plan.padded) == [(25, 34), (25, 34), (13, 17)]


def test_frames_are_resized_as_torch_bilinear_does() -> None:
    import torch
    from torch.nn import functional

    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 48, 64)).astype(np.float32)
    plan = rp.ResizePlan((80, 106), (96, 128))
    out = np.empty((3, 96, 128), np.float32)
    rp.prepare_image(image, plan, out)
    torch_in = (image - rp.TORCHVISION_MEAN[:, None, None]) / rp.TORCHVISION_STD[:, None, None]
    expected = functional.interpolate(
        torch.from_numpy(torch_in)[None], size=(80, 106), mode="bilinear", align_corners=False
    )[0].numpy()
    # OpenCV's rounding, not torch's: within 2e-5 of the values' range.
    assert np.abs(out[:, :80, :106] - expected).max() < 2e-5 * np.abs(expected).max()
    assert not out[:, 80:].any() and not out[:, :, 106:].any()  # zero padding


def test_anchors_follow_torchvisions_order_and_strides() -> None:
    base = rp.base_anchors(SETTINGS)
    # ratio 0.5 first (w = 32 / sqrt(0.5), h = 32 * sqrt(0.5)), then sizes 64 ... 512.
    assert base[0].tolist() == [-23.0, -11.0, 23.0, 11.0]
    assert base[5].tolist() == [-16.0, -16.0, 16.0, 16.0]  # ratio 1, size 32
    padded = (800, 1088)
    anchors = rp.anchors(padded, SETTINGS)
    sizes = rp.level_sizes(padded, SETTINGS)
    assert sizes == [25 * 34 * 15, 25 * 34 * 15, 13 * 17 * 15] and len(anchors) == sum(sizes)
    # The second cell of a row is one stride to the right; the pooled level's row stride is
    # 800 // 13 = 61, not 64.
    assert (anchors[15] - anchors[0]).tolist() == [32.0, 0.0, 32.0, 0.0]
    pool = anchors[sizes[0] + sizes[1] :]
    assert (pool[17 * 15] - pool[0]).tolist() == [0.0, 61.0, 0.0, 61.0]


def test_nms_keeps_the_best_and_drops_its_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.5, 0.9, 0.3, 0.8], np.float32)
    # 1 beats 0 (IoU 0.68) and 3; 2 is apart.
    assert rp.nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert rp.nms(boxes, scores, 0.7).tolist() == [1, 3, 2]  # 0 overlaps 3 by 0.9


@pytest.mark.parametrize("repeat", [1, 400])  # the per-group loop above 4000 coordinates
def test_batched_nms_keeps_groups_apart(repeat: int) -> None:
    boxes = np.tile(np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32), (repeat, 1))
    boxes += np.repeat(np.arange(repeat, dtype=np.float32) * 100, 2)[:, None]
    scores = np.tile(np.array([0.9, 0.8], np.float32), repeat) - np.repeat(
        np.arange(repeat, dtype=np.float32) * 1e-4, 2
    )
    groups = np.tile(np.array([0, 1]), repeat)
    kept = rp.batched_nms(boxes, scores, groups, 0.5)
    assert len(kept) == 2 * repeat  # overlapping boxes of two groups both stay
    assert np.all(np.diff(scores[kept]) <= 0)


def _roi_align_loop(features: np.ndarray, boxes: np.ndarray, scale: float) -> np.ndarray:
    """Torchvision's ``roi_align`` (aligned=False, 7 x 7, 2 samples per side), written out."""
    channels, height, width = features.shape
    out = np.zeros((len(boxes), channels, 7, 7), np.float64)
    for r, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64) * scale):
        bin_w, bin_h = max(x2 - x1, 1.0) / 7, max(y2 - y1, 1.0) / 7
        for ph in range(7):
            for pw in range(7):
                total = np.zeros(channels)
                for iy in range(2):
                    for ix in range(2):
                        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / 2
                        x = x1 + pw * bin_w + (ix + 0.5) * bin_w / 2
                        if y < -1 or y > height or x < -1 or x > width:
                            continue
                        y, x = max(y, 0.0), max(x, 0.0)
                        y0, x0 = int(y), int(x)
                        if y0 >= height - 1:
                            y0 = y1i = height - 1
                            y = float(y0)
                        else:
                            y1i = y0 + 1
                        if x0 >= width - 1:
                            x0 = x1i = width - 1
                            x = float(x0)
                        else:
                            x1i = x0 + 1
                        ly, lx = y - y0, x - x0
                        total += (
                            (1 - ly) * (1 - lx) * features[:, y0, x0]
                            + (1 - ly) * lx * features[:, y0, x1i]
                            + ly * (1 - lx) * features[:, y1i, x0]
                            + ly * lx * features[:, y1i, x1i]
                        )
                out[r, :, ph, pw] = total / 4
    return out


def test_onnx_runtimes_roi_align_samples_as_torchvisions_kernel() -> None:
    rng = np.random.default_rng(1)
    features = rng.standard_normal((1, 3, 10, 12)).astype(np.float32)
    boxes = np.array(
        [
            [0, 0, 320, 256],  # the whole map at scale 1/32
            [40.5, 17.25, 200.0, 90.0],
            [300, 250, 420, 400],  # over the bottom-right edge
            [-50, -20, 10, 5],  # over the top-left edge
            [100, 100, 100.5, 100.2],  # smaller than one cell: one cell wide
        ],
        np.float32,
    )
    ours = dlc3_fasterrcnn.RoiAligner()(features, boxes, 1 / 32)
    expected = _roi_align_loop(features[0], boxes, 1 / 32)
    assert ours.shape == (5, 3, 7, 7)
    assert np.abs(ours - expected).max() < 1e-5


def test_other_fasterrcnn_variants_are_refused_by_name() -> None:
    export = SimpleNamespace(
        config={
            "method": "td",
            "detector": {"model": {"type": "FasterRCNN", "variant": "fasterrcnn_resnet50_fpn"}},
            "model": {
                "backbone": {"type": "HRNet"},
                "heads": {"bodypart": {"type": "HeatmapHead"}},
            },
        },
        other_entries=("detector",),
    )
    problems = topdown_problems(export)
    assert any(
        "variant fasterrcnn_resnet50_fpn:" in p
        and "mobilenet_v3_large_fpn" in p
        and "fasterrcnn_resnet50_fpn_v2" in p
        for p in problems
    )
    export.config["detector"]["model"]["variant"] = RESNET50_V2
    assert topdown_problems(export) == []


def test_resnet50_v2_anchors_have_one_size_per_level() -> None:
    settings = rp.RESNET50_V2_SETTINGS
    padded = (800, 1088)
    sizes = rp.level_sizes(padded, settings)
    grids = [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    assert sizes == [rows * cols * 3 for rows, cols in grids]
    anchors = rp.anchors(padded, settings)
    assert len(anchors) == sum(sizes)
    # Level 0: size 32 at stride 4 (ratio 0.5 first); level 4 (pooled): size 512.
    assert anchors[0].tolist() == [-23.0, -11.0, 23.0, 11.0]
    assert (anchors[3] - anchors[0]).tolist() == [4.0, 0.0, 4.0, 0.0]
    assert anchors[sum(sizes[:4]) + 1].tolist() == [-256.0, -256.0, 256.0, 256.0]


def test_boxes_go_to_the_fpn_level_of_their_size() -> None:
    # sqrt(area) 224 -> level 4 (map 2 of levels 2..5); 112 -> 3; 56 and smaller -> 2; 448+ -> 5.
    side = np.array([224.0, 112.0, 56.0, 10.0, 448.0, 2000.0, 0.0], np.float32)
    boxes = np.stack([np.zeros_like(side), np.zeros_like(side), side, side], axis=1)
    assert rp.roi_levels(boxes, 2, 5).tolist() == [2, 1, 0, 0, 3, 3, 0]


def test_detector_weights_of_a_frozen_batchnorm_backbone_load() -> None:
    weights = {k: v for k, v in DlcFasterRcnn().state_dict().items() if "num_batches" not in k}
    export = SimpleNamespace(path=Path("export.pt"), config={})
    assert dlc3_fasterrcnn.build_detector(export, weights) is not None


# --- the whole detector on seeded random weights, against torchvision ----------------------------


def _random_weights(variant: str = MOBILENET) -> dict:
    spec = importlib.util.spec_from_file_location("random_weights", RANDOM / "random_weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.random_state_dict(DlcFasterRcnn(variant).state_dict(), variant=variant))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "reference_file"),
    [(MOBILENET, "reference.json"), (RESNET50_V2, "reference_resnet50_fpn_v2.json")],
)
def test_the_rebuilt_detector_equals_torchvisions_on_random_weights(
    variant: str, reference_file: str
) -> None:
    reference = json.loads((RANDOM / reference_file).read_text())["images"]
    config = {"detector": {"model": {"variant": variant, "box_score_thresh": 0.0}}}
    export = SimpleNamespace(path=Path("random.pt"), config=config)
    detector = dlc3_fasterrcnn.build_detector(export, _random_weights(variant))
    proposals = dlc3_fasterrcnn.proposal_module(detector)
    head = dlc3_fasterrcnn.box_head_module(detector)
    settings = dlc3_fasterrcnn.settings_of(config)
    runner = dlc3_fasterrcnn.FasterRcnnRunner(
        lambda batch: run_module(proposals, batch),
        lambda batch: run_module(head, batch),
        settings,
        threads=1,
    )
    for name, expected in reference.items():
        bgr = np.asarray(cv2.imread(str(shared_data(f"dlc3-openfield-cspnext_s/images/{name}"))))
        rgb = bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
        boxes, scores = runner(rgb)
        assert len(runner.last_proposals) == expected["proposals"]
        box_error = np.abs(boxes[0] - np.asarray(expected["boxes"][0])).max()
        print(f"{name}: box {box_error:.2e} px, score {abs(scores[0] - expected['scores'][0]):.2e}")
        assert box_error <= XY_TOLERANCE
        assert abs(scores[0] - expected["scores"][0]) <= RANDOM_SCORE_TOLERANCE


def _onnx_runner(graph: Path) -> dlc3_fasterrcnn.Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread per test worker (a second one spins idle)
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: list(session.run(None, {name: np.ascontiguousarray(batch)}))


@pytest.mark.slow
@pytest.mark.timeout(900)  # two graph conversions: about 60 s idle, over 300 s on a busy machine
def test_the_converted_resnet50_v2_graphs_equal_torchvisions_on_random_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path a real export takes: both networks converted to ONNX, run by ONNX Runtime.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    reference = json.loads((RANDOM / "reference_resnet50_fpn_v2.json").read_text())["images"]
    config = {"detector": {"model": {"variant": RESNET50_V2, "box_score_thresh": 0.0}}}
    export_file = tmp_path / "random.pt"
    export_file.write_bytes(b"seeded random weights")
    export = SimpleNamespace(path=export_file, config=config)
    detector = dlc3_fasterrcnn.build_detector(export, _random_weights(RESNET50_V2))
    proposal_graph, head_graph = dlc3_fasterrcnn.convert_detector(export, detector, (480, 640), ())
    runner = dlc3_fasterrcnn.FasterRcnnRunner(
        _onnx_runner(proposal_graph),
        _onnx_runner(head_graph),
        dlc3_fasterrcnn.settings_of(config),
        threads=1,
    )
    name, expected = next(iter(reference.items()))
    bgr = np.asarray(cv2.imread(str(shared_data(f"dlc3-openfield-cspnext_s/images/{name}"))))
    boxes, scores = runner(bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
    assert len(runner.last_proposals) == expected["proposals"]
    box_error = np.abs(boxes[0] - np.asarray(expected["boxes"][0])).max()
    score_error = abs(scores[0] - expected["scores"][0])
    print(f"{name} (ONNX): box {box_error:.2e} px, score {score_error:.2e}")
    assert box_error <= XY_TOLERANCE
    assert score_error <= RANDOM_SCORE_TOLERANCE


# --- a real DeepLabCut export -------------------------------------------------------------------


@pytest.fixture(scope="module")
def topdown_export() -> Path:
    path = Path(os.environ.get(TOPDOWN_ENV, TOPDOWN_EXPORT))
    if not path.is_file():
        pytest.skip(
            f"the DeepLabCut top_down_hrnet_w32 + fasterrcnn export is not here ({path}; set "
            f"{TOPDOWN_ENV}): see {TOPDOWN / 'README.md'} for how it was made"
        )
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def description(cache: Path, topdown_export: Path) -> ModelDescription:
    return load_model(topdown_export, frame_size=(480, 640))


def test_the_fasterrcnn_export_passes_the_check_before_a_start(topdown_export: Path) -> None:
    check_export(topdown_export)


def _table(csv: Path, header: list[int], drop: list[int]) -> pd.DataFrame:
    table = pd.read_csv(csv, header=header, index_col=0)
    table.columns = table.columns.droplevel(drop)
    return table


def _compare(estimator: object, frames: list[np.ndarray], boxes: list, theirs: np.ndarray) -> dict:
    worst = dict.fromkeys(("box_px", "box_score", "xy_px", "likelihood"), 0.0)
    for row, frame in enumerate(frames):
        points = estimator.estimate([frame])[0]  # type: ignore[attr-defined]
        box, score = boxes[row]
        found = {
            "box_px": np.abs(estimator.last_boxes[0] - np.asarray(box)).max(),  # type: ignore[attr-defined]
            "box_score": abs(estimator.last_box_scores[0] - score),  # type: ignore[attr-defined]
            "xy_px": np.abs(points[:, :2] - theirs[row, :, :2]).max(),
            "likelihood": np.abs(points[:, 2] - theirs[row, :, 2]).max(),
        }
        worst = {k: max(worst[k], float(v)) for k, v in found.items()}
    return worst


def _assert_equal(worst: dict) -> None:
    assert worst["box_px"] <= XY_TOLERANCE and worst["xy_px"] <= XY_TOLERANCE
    assert worst["box_score"] <= SCORE_TOLERANCE
    assert worst["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_the_clip_matches_deeplabcuts_boxes_and_keypoints(
    description: ModelDescription, backend: str
) -> None:
    frames = read_video(shared_data(CLIP))[:CLIP_FRAMES]
    boxes_file = TOPDOWN / "reference" / "analyze_videos_bs1" / "boxes.json"
    boxes = [
        (f["bbox_xywh"], f["bbox_score"]) for f in json.loads(boxes_file.read_text())["frames"]
    ]
    (csv,) = (TOPDOWN / "reference" / "analyze_videos_bs1").glob("*.csv")
    table = _table(csv, [0, 1, 2], [0])
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    theirs = table[columns].to_numpy(np.float64).reshape(len(table), len(KEYPOINTS), 3)
    if backend == "onnxruntime":
        estimator = open_dlc_topdown_estimator(description, open_backend, threads=1)
    else:
        estimator = open_dlc_topdown_estimator(description, threads=1)
    worst = _compare(estimator, frames, boxes, theirs)
    print(f"FasterRCNN top-down ({backend}) vs analyze_videos, {len(frames)} frames: {worst}")
    _assert_equal(worst)


@pytest.mark.slow
def test_labelled_images_match_deeplabcuts_boxes_and_keypoints(
    description: ModelDescription,
) -> None:
    raw = json.loads(
        (TOPDOWN / "reference" / "analyze_images" / "raw_predictions.json").read_text()
    )
    names = sorted(raw)
    images = [
        np.asarray(cv2.imread(str(shared_data(f"dlc3-openfield-cspnext_s/images/{n}"))))
        for n in names
    ]
    boxes = [(raw[n]["bboxes"][0], raw[n]["bbox_scores"][0]) for n in names]
    (csv,) = (TOPDOWN / "reference" / "analyze_images").glob("*.csv")
    table = _table(csv, [0, 1, 2, 3], [0, 1])
    table.index = [Path(str(i)).name for i in table.index]
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    theirs = table.loc[names, columns].to_numpy(np.float64).reshape(len(names), len(KEYPOINTS), 3)
    estimator = open_dlc_topdown_estimator(description, open_backend, threads=1)
    worst = _compare(estimator, images, boxes, theirs)
    print(f"FasterRCNN top-down vs analyze_images, {len(names)} images: {worst}")
    _assert_equal(worst)


@pytest.mark.slow
def test_image_analyzer_gives_deeplabcuts_keypoints(
    tmp_path: Path, cache: Path, topdown_export: Path, description: ModelDescription
) -> None:
    raw_file = TOPDOWN / "reference" / "analyze_images" / "raw_predictions.json"
    names = sorted(json.loads(raw_file.read_text()))
    folder = tmp_path / "images"
    folder.mkdir()
    for name in names:
        source = shared_data(f"dlc3-openfield-cspnext_s/images/{name}")
        (folder / name).write_bytes(source.read_bytes())
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "utils" / "ImageAnalyzer.py"),
            "--model",
            str(topdown_export),
            "--output-dir",
            str(tmp_path / "out"),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    ours = pd.read_csv(tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2], index_col=0)
    ours.columns = ours.columns.droplevel(0)
    ours.index = [Path(str(i)).name for i in ours.index]
    (csv,) = (TOPDOWN / "reference" / "analyze_images").glob("*.csv")
    table = _table(csv, [0, 1, 2, 3], [0, 1])
    table.index = [Path(str(i)).name for i in table.index]
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    diff = np.abs(ours.loc[names, columns].to_numpy() - table.loc[names, columns].to_numpy())
    print(f"ImageAnalyzer (FasterRCNN top-down) vs analyze_images: max {diff.max(axis=0)}")
    xy = diff.reshape(len(names), len(KEYPOINTS), 3)
    assert xy[..., :2].max() <= XY_TOLERANCE and xy[..., 2].max() <= 1e-3


@pytest.mark.slow
def test_inspect_describes_the_fasterrcnn_model_and_checks_its_graph(
    cache: Path, topdown_export: Path, description: ModelDescription
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplabstream.pose.inspect",
            str(topdown_export),
            "--frame",
            str(shared_data("dlc3-openfield-cspnext_s/images/img0044.png")),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "FasterRCNN detector" in out and "box head" in out and "hrnet_w32" in out
    assert "objectness" in out  # the proposal graph's outputs, checked
    assert "reproduces the network" in out


def _clip_table() -> np.ndarray:
    (csv,) = (TOPDOWN / "reference" / "analyze_videos_bs1").glob("*.csv")
    table = _table(csv, [0, 1, 2], [0])
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(KEYPOINTS), 3)


def _assert_analysed_frames_match(pose_csv: Path) -> None:
    ours = pd.read_csv(pose_csv, header=[0, 1, 2], index_col=0).dropna(how="all")
    assert len(ours) >= 1 and tuple(ours.columns.get_level_values(1)[::3]) == KEYPOINTS
    theirs = _clip_table()[ours.index.to_numpy()]
    diff = np.abs(ours.to_numpy().reshape(len(ours), len(KEYPOINTS), 3) - theirs)
    print(f"{pose_csv.name}: {len(ours)} frames analysed, max {diff.max(axis=(0, 1))}")
    assert diff[..., :2].max() <= XY_TOLERANCE  # the CSV's decimals
    assert diff[..., 2].max() <= 1e-3


@pytest.mark.slow
def test_runs_live_in_the_app_and_matches_deeplabcut(
    tmp_path: Path, cache: Path, topdown_export: Path, description: ModelDescription
) -> None:
    clip = shared_data(CLIP)
    settings = write_settings(
        tmp_path, f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(topdown_export),
        "--frames",
        "100",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=900,
        env={CACHE_ENV: str(cache), "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "app.lock")},
    )
    assert result.returncode == 0, result.stderr
    _assert_analysed_frames_match(only_session(tmp_path / "out") / "openfield.pose.csv")


@pytest.mark.slow
def test_a_realtime_replay_matches_deeplabcut(
    tmp_path: Path, cache: Path, topdown_export: Path, description: ModelDescription
) -> None:
    result = run_cli(
        str(shared_data(CLIP)),
        "--realtime",
        "--no-experiment",
        "--model",
        str(topdown_export),
        "--output-dir",
        str(tmp_path),
        script="utils/VideoAnalyzer.py",
        timeout=900,
        env={CACHE_ENV: str(cache), "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "replay.lock")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_analysed_frames_match(tmp_path / "m3v1mp4_first100" / "m3v1mp4_first100.pose.csv")
