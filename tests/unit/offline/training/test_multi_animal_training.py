"""Multi-animal (bottom-up) models: targets, the paf-bottomup decoder, training, export, loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.offline.training.datasets import ARENA_SKELETON
from deeplabstream.offline.training.loop import TrainConfig, scheduled_step
from deeplabstream.offline.training.multi_animal import match_animals, pair_targets, skeleton_edges
from deeplabstream.pose.decoding.bottomup import (
    PafDecoding,
    decode_paf_bottomup,
    decode_pafs,
    find_peaks,
)
from deeplabstream.pose.formats.own_model import load_own_model, read_model_json
from deeplabstream.pose.model import ModelError
from tests.support.paths import PACKAGE_ROOT

PAIR_MODEL = PACKAGE_ROOT / "pose" / "bundled" / "arena-pair"
SINGLE_MODEL = PACKAGE_ROOT / "pose" / "bundled" / "arena"
EDGES = skeleton_edges(KEYPOINT_NAMES, ARENA_SKELETON)
INPUT = (320, 256)

# Two mice in input pixels, far apart, at sub-pixel positions (not on heatmap pixel centres).
TWO_MICE = np.array(
    [
        [[100.3, 60.2], [92.6, 70.1], [108.2, 70.4], [100.1, 80.7], [100.4, 100.2], [99.7, 125.6]],
        [
            [200.2, 150.9],
            [210.4, 142.3],
            [210.1, 158.6],
            [220.8, 150.2],
            [240.3, 150.5],
            [265.2, 152.1],
        ],
    ]
)


def _logits(heatmaps: np.ndarray) -> np.ndarray:
    """Heatmap targets as the logits a perfectly trained network would output."""
    p = np.clip(heatmaps, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


def test_heatmaps_peak_at_every_animal() -> None:
    heatmaps, fields = pair_targets(TWO_MICE, INPUT, EDGES, sigma=1.25, paf_width=1.0)
    assert heatmaps.shape == (6, 64, 80)
    assert fields.shape == (12, 64, 80)
    for animal in TWO_MICE:
        for k, (x, y) in enumerate(animal):
            # The heatmap pixel nearest the keypoint (pixel j centred on 4j + 1.5).
            col, row = round((x - 1.5) / 4), round((y - 1.5) / 4)
            assert heatmaps[k, row, col] > 0.85
            window = heatmaps[k, row - 1 : row + 2, col - 1 : col + 2]
            assert heatmaps[k, row, col] == window.max()
    # Far from both mice there is nothing.
    assert heatmaps[:, 0:5, 70:80].max() < 1e-6


def test_pafs_point_from_source_to_destination_on_the_limb() -> None:
    _, fields = pair_targets(TWO_MICE, INPUT, EDGES, sigma=1.25, paf_width=1.0)
    for animal in TWO_MICE:
        for e, (src, dst) in enumerate(EDGES):
            start, end = animal[src], animal[dst]
            unit = (end - start) / np.linalg.norm(end - start)
            middle = (start + end) / 2
            col, row = round((middle[0] - 1.5) / 4), round((middle[1] - 1.5) / 4)
            vector = fields[2 * e : 2 * e + 2, row, col]
            np.testing.assert_allclose(vector, unit, atol=1e-6)
    # Far from the limbs the fields are zero; each vector is a unit vector or zero.
    assert np.abs(fields[:, 0:5, 70:80]).max() == 0
    norms = np.linalg.norm(fields.reshape(6, 2, -1), axis=1)
    assert norms.max() <= 1 + 1e-6


def test_overlapping_limbs_average_and_hidden_keypoints_are_skipped() -> None:
    # The same limb in opposite directions (neck and body centre swapped): the fields cancel.
    first = TWO_MICE[0]
    second = first.copy()
    second[[3, 4]] = first[[4, 3]]
    _, fields = pair_targets(np.stack([first, second]), INPUT, EDGES, 1.25, 1.0)
    e = EDGES.index((3, 4))
    middle = (first[3] + first[4]) / 2
    col, row = round((middle[0] - 1.5) / 4), round((middle[1] - 1.5) / 4)
    np.testing.assert_allclose(fields[2 * e : 2 * e + 2, row, col], 0.0, atol=1e-6)
    # A hidden (NaN) keypoint: no peak and no limbs touching it.
    hidden = TWO_MICE.copy()
    hidden[1, 5] = np.nan
    heatmaps, fields = pair_targets(hidden, INPUT, EDGES, 1.25, 1.0)
    x, y = TWO_MICE[1, 5]
    assert heatmaps[5, round((y - 1.5) / 4), round((x - 1.5) / 4)] < 1e-3
    tail = EDGES.index((4, 5))
    assert np.abs(fields[2 * tail : 2 * tail + 2, 30:, 55:]).max() == 0


# --------------------------------------------------------------------------------------------------
# The decoder
# --------------------------------------------------------------------------------------------------


def test_decoder_recovers_two_animals_exactly() -> None:
    heatmaps, fields = pair_targets(TWO_MICE, INPUT, EDGES, sigma=1.25, paf_width=1.0)
    decoded = decode_pafs(_logits(heatmaps)[None], fields[None], 4.0, PafDecoding(EDGES), 2)
    assert decoded.shape == (1, 2, 6, 3)
    matches = match_animals(decoded[0], TWO_MICE)
    assert sorted(t for _, t, _ in matches) == [0, 1]
    for p, t, _ in matches:
        # The log-probability parabola locates a Gaussian's peak exactly.
        np.testing.assert_allclose(decoded[0, p, :, :2], TWO_MICE[t], atol=0.1)
        assert (decoded[0, p, :, 2] > 0.8).all()


def test_decoder_groups_animals_that_touch() -> None:
    # Nose to nose, 12 input pixels apart: the grouping must follow the fields, not distance.
    first = TWO_MICE[0] + np.array([0.0, 80.0])
    second = 2 * first[0] - first + np.array([0.0, -12.0])  # point-mirrored through the nose
    mice = np.stack([first, second])
    heatmaps, fields = pair_targets(mice, INPUT, EDGES, sigma=1.25, paf_width=1.0)
    decoded = decode_pafs(_logits(heatmaps)[None], fields[None], 4.0, PafDecoding(EDGES), 2)
    for p, t, _ in match_animals(decoded[0], mice):
        np.testing.assert_allclose(decoded[0, p, :, :2], mice[t], atol=0.1)


def test_grouping_tree_from_the_neck_survives_one_shared_nose_peak() -> None:
    from deeplabstream.offline.training.multi_animal import skeleton_centre

    assert skeleton_centre(EDGES) == 3  # the neck
    tree = PafDecoding(EDGES, root=3).grouping_edges()
    # A spanning tree: 5 of the 6 edges, every keypoint reached, pointing away from the neck.
    assert len(tree) == 5
    assert tree[0] == (EDGES.index((1, 3)), True)  # left_ear -> neck, used as neck -> left_ear
    assert PafDecoding.from_dict(PafDecoding(EDGES, root=3).to_dict()).root == 3
    # Nose to nose, the noses 3 input pixels apart: one nose peak for both mice.
    first = TWO_MICE[0] + np.array([0.0, 80.0])
    second = 2 * first[0] - first + np.array([0.0, -3.0])
    mice = np.stack([first, second])
    heatmaps, fields = pair_targets(mice, INPUT, EDGES, sigma=1.25, paf_width=1.0)
    decoded = decode_pafs(_logits(heatmaps)[None], fields[None], 4.0, PafDecoding(EDGES, root=3), 2)
    matches = match_animals(decoded[0], mice)
    assert len(matches) == 2
    for p, t, _ in matches:
        body = [1, 2, 3, 4, 5]  # the nose goes to one of them only
        np.testing.assert_allclose(decoded[0, p, body, :2], mice[t, body], atol=0.5)


def test_decoder_without_animals_and_batches() -> None:
    empty = np.full((3, 6, 64, 80), -8.0, np.float32)
    decoded = decode_pafs(empty, np.zeros((3, 12, 64, 80), np.float32), 4.0, PafDecoding(EDGES), 2)
    assert decoded.shape == (3, 2, 6, 3) and np.isnan(decoded).all()
    peaks, probability, valid = find_peaks(empty, 4.0, 0.2, 8)
    assert peaks.shape == (3, 6, 1, 2) and not valid.any() and (probability == 0).all()


def test_decoder_needs_its_settings() -> None:
    description = load_own_model(SINGLE_MODEL)
    with pytest.raises(ModelError, match="no paf-bottomup settings"):
        decode_paf_bottomup([np.zeros((1, 6, 64, 80)), np.zeros((1, 12, 64, 80))], description)
    with pytest.raises(ModelError, match=r"output\.paf\.edges"):
        PafDecoding.from_dict({"edges": "nose"})
    with pytest.raises(ModelError, match="peak_threshold"):
        PafDecoding(EDGES, peak_threshold=1.5)


# --------------------------------------------------------------------------------------------------
# Training, export, loading
# --------------------------------------------------------------------------------------------------


def test_time_budget_drives_the_schedule() -> None:
    config = TrainConfig(steps=100)
    assert scheduled_step(10, 1e6, config) == 10  # no budget: steps only
    budget = TrainConfig(steps=100, time_budget=60.0)
    assert scheduled_step(10, 30.0, budget) == 50
    assert scheduled_step(70, 30.0, budget) == 70
    assert scheduled_step(10, 600.0, budget) == 99


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deeplabstream.offline.training.train import run

    out = tmp_path_factory.mktemp("pair") / "model"
    run(
        [
            "--synthetic",
            "--animals",
            "2",
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--arenas",
            "2",
            "--val-frames",
            "4",
            "--test-frames",
            "4",
            "--threads",
            "1",
            "--no-torchscript",
            "--architecture",
            "separable-fpn",
            "--widths",
            "8,16,16,16",
            "--decoder-width",
            "8",
            "--input-format",
            "float-raw",
            "--letterbox",
        ]
    )
    return out


def test_training_exports_a_loadable_multi_animal_folder(pair_folder: Path) -> None:
    from deeplabstream.pose.loading import load_model
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.estimator import NetworkEstimator

    description = load_model(pair_folder)
    assert description.max_animals == 2
    assert description.decoder == "paf-bottomup"
    assert description.multi_animal
    assert description.output_names == ("heatmaps", "pafs")
    assert isinstance(description.decoding, PafDecoding)
    assert description.decoding.edges == EDGES
    data = read_model_json(pair_folder)
    assert data["max_animals"] == 2
    assert data["output"]["paf"]["edges"] == [list(e) for e in EDGES]
    assert data["network"]["pafs"] == 12
    report = json.loads((pair_folder / "training_report.json").read_text())
    assert report["decoder"] == "paf-bottomup" and "found_fraction" in report["accuracy"]
    # The live path: (n, A, K, 3) per frame.
    backend = open_backend(description, "onnxruntime", "cpu", 1)
    estimator = NetworkEstimator(description, backend, (480, 640, 3))
    frames = [np.full((480, 640, 3), 128, np.uint8)] * 2
    assert estimator.estimate_animals(frames).shape == (2, 2, 6, 3)
    backend.close()


def test_single_animal_folders_load_as_before() -> None:
    description = load_own_model(SINGLE_MODEL)
    assert description.max_animals == 1
    assert description.decoder == "argmax"
    assert description.decoding is None
    assert not description.multi_animal
    assert "max_animals" not in read_model_json(SINGLE_MODEL)


def test_broken_multi_animal_json_names_the_key(pair_folder: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(pair_folder, folder)
    data = read_model_json(folder)
    del data["max_animals"]
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="'max_animals' is missing"):
        load_own_model(folder)
    data["max_animals"] = 2
    data["output"]["paf"]["edges"] = [[0, 9], [3, 4]]
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"outside 0\.\.5"):
        load_own_model(folder)


# --------------------------------------------------------------------------------------------------
# The trained model (pose/bundled/arena-pair)
# --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not (PAIR_MODEL / "model.json").is_file(), reason="no trained arena-pair model")
def test_trained_pair_model_finds_both_mice_in_an_unseen_arena() -> None:
    from deeplabstream.offline.training.multi_animal import evaluate_pair

    summary = evaluate_pair(
        PAIR_MODEL,
        seeds=[4242, 4243],
        frames_per_seed=40,
        scenarios=("free", "touch"),
        threads=1,
        timing_frames=20,
    )
    assert summary["found_fraction"] >= 0.9
    assert summary["all"]["median"] <= 3.0
