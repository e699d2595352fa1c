"""sleap-nn bottom-up ONNX exports: the loader, its errors, and parity with sleap-nn's own numbers.

The tests use ../shared/data/sleap-flies (a real sleap-nn 0.3.5 bottom-up model of 2 flies, its
ONNX export, a lossless 100-frame clip, sleap-nn's ONNX-path predictions on it and golden
tensors of frames 0-3; see its README) in place, and skip when it is absent. The error tests
build modified exports in tmp_path around a link to the real graph.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from deeplabstream.pose.decoding.sleap import (
    OUTPUTS,
    bfs_edges,
    decode_bottomup,
    group_bottomup,
    select_instances,
)
from deeplabstream.pose.formats.sleap import load_sleap
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.preprocess import Preprocessor
from tests.support.files import camera_frames
from tests.support.paths import PROJECT_ROOT, shared_data

FLIES = "sleap-flies"
EXPORT = f"{FLIES}/onnx/flies_bottomup_tiny_onnx"
CLIP = f"{FLIES}/inference/flies_clip_first100.mp4"
PREDICTIONS = f"{FLIES}/inference/flies_clip_first100.onnx_predictions.npz"
GOLDEN = f"{FLIES}/reference/raw_frames0-3.npz"
NODES = [
    *("head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4"),
    *("midlegL4", "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR"),
]

# sleap-nn's predictions are float32; ours are float64 from the same float32 outputs.
POINT_TOLERANCE = 0.02  # px
SCORE_TOLERANCE = 1e-3


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> ModelDescription:
    return load_model(shared_data(EXPORT))


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(shared_data(GOLDEN)) as data:
        return dict(data)


@pytest.fixture(scope="module")
def predictions() -> dict[str, np.ndarray]:
    with np.load(shared_data(PREDICTIONS)) as data:
        return dict(data)


def _clip_frames(count: int | None = None) -> list[np.ndarray]:
    """The clip's frames as the app's video camera delivers them (PyAV, BGR uint8)."""
    return camera_frames(shared_data(CLIP), count)


def _group(outputs: Any, edges: Any, input_scale: float = 1.0) -> list[Any]:
    """group_bottomup on the five outputs, a list in OUTPUTS order or a dict by name."""
    if isinstance(outputs, dict):
        outputs = [outputs[name] for name in OUTPUTS]
    peaks, peak_vals, peak_mask, line_scores, candidate_mask = outputs
    return group_bottomup(
        peaks, peak_vals, peak_mask, line_scores, candidate_mask, edges, input_scale=input_scale
    )


def _run_graph(description: ModelDescription, batch: np.ndarray) -> list[np.ndarray]:
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    try:
        return backend.run(batch)
    finally:
        backend.close()


def _cost(points: np.ndarray, order: tuple[int, ...], reference: np.ndarray) -> float:
    """How far ``points`` in ``order`` are from ``reference`` (a NaN mismatch costs most)."""
    d = np.abs(points[list(order)] - reference)
    return float(np.nansum(d)) + 1e6 * float(np.isnan(d).sum())


def _compare(
    ours: list[tuple[np.ndarray, np.ndarray, np.ndarray]], theirs: dict[str, np.ndarray]
) -> dict[str, float]:
    """Largest differences over frames, instances matched by the best permutation per frame.

    Asserts the same instance count and NaN pattern (after matching) on the way.
    """
    worst = {"dxy": 0.0, "dpoint_score": 0.0, "dinstance_score": 0.0}
    for f, (points, point_scores, instance_scores) in enumerate(ours):
        n = int(theirs["n_instances"][f])
        assert len(points) == n, f"frame {f}: {len(points)} instances, sleap-nn {n}"
        ref_points = theirs["points"][f, :n].astype(np.float64)
        ref_scores = theirs["point_scores"][f, :n].astype(np.float64)
        ref_instance = theirs["instance_scores"][f, :n].astype(np.float64)

        order = list(
            min(itertools.permutations(range(n)), key=lambda o: _cost(points, tuple(o), ref_points))
        )
        p, s, i = points[order], point_scores[order], instance_scores[order]
        assert np.array_equal(np.isnan(p), np.isnan(ref_points)), f"frame {f}: NaN pattern"
        assert np.array_equal(np.isnan(s), np.isnan(ref_scores)), f"frame {f}: NaN pattern"
        if np.isfinite(p).any():
            worst["dxy"] = max(worst["dxy"], float(np.nanmax(np.abs(p - ref_points))))
            worst["dpoint_score"] = max(
                worst["dpoint_score"], float(np.nanmax(np.abs(s - ref_scores)))
            )
        if n:
            worst["dinstance_score"] = max(
                worst["dinstance_score"], float(np.abs(i - ref_instance).max())
            )
    return worst


class _Recording:
    """A backend that keeps the outputs of every run (to group them here as well)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.outputs: list[list[np.ndarray]] = []

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self.backend.run(batch)
        # Copies: the backend's outputs are buffers it reuses on its next run (IO binding).
        self.outputs.append([np.array(output) for output in outputs])
        return outputs

    def close(self) -> None:
        self.backend.close()

    provider = "CPUExecutionProvider"

    def warm_up(self, batch_size: int | None = None) -> None:
        self.backend.warm_up(batch_size)


def _copy_export(tmp_path: Path, metadata: dict | None = None, config: Any = None) -> Path:
    """An export folder in tmp_path: the real graph linked, metadata and config changed."""
    source = shared_data(EXPORT)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(source / "model.onnx")
    real_metadata = json.loads((source / "export_metadata.json").read_text())
    real_config = yaml.safe_load((source / "training_config.yaml").read_text())
    (folder / "export_metadata.json").write_text(json.dumps({**real_metadata, **(metadata or {})}))
    heads = real_config["model_config"]["head_configs"]
    heads.update(config or {})
    (folder / "training_config.yaml").write_text(yaml.safe_dump(real_config))
    return folder


# --- the loader -------------------------------------------------------------------------------


def test_load_model_reads_the_folder_and_its_graph_alike(model: ModelDescription) -> None:
    assert model.framework == "sleap-nn" and model.decoder == "sleap-bottomup"
    assert list(model.keypoints) == NODES
    assert ("thorax", "head") in model.skeleton and len(model.skeleton) == 12
    assert (model.input_height, model.input_width) == (1024, 1024) and model.any_input_size
    assert model.input_type == "uint8" and model.normalization == "in-graph"
    assert model.color_order == "gray" and model.input_layout == "nchw"
    assert model.mean == (0.0,) and model.std == (1.0,)
    assert model.input_name == "image" and model.output_names == OUTPUTS
    assert model.max_animals == 2  # max_instances is null in the export: the default
    assert model.decoding.input_scale == 0.5 and model.decoding.min_line_scores == 0.25
    # thorax is the root: its edges first, then head's.
    assert model.decoding.edge_order == (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1)
    assert load_model(shared_data(EXPORT) / "model.onnx") == model
    assert load_model(shared_data(EXPORT), max_animals=5).max_animals == 5


def test_inspect_prints_the_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(shared_data(EXPORT))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "sleap-nn 0.3.5 ONNX export" in out and "bottom-up" in out
    assert "13: head, thorax, abdomen" in out and "thorax->head" in out
    assert "1024x1024 GRAY" in out and "max animals 2" in out


UNSUPPORTED: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"model_type": "centroid"}, {}, "centroid stage exported alone"),
    ({"model_type": "centered_instance"}, {}, "centered-instance stage exported alone"),
    ({"model_type": "multi_class_topdown"}, {}, "top-down identity model's instance stage"),
    ({"model_type": None}, {"bottomup": None, "multi_class_topdown": {"x": 1}}, "identity"),
]


@pytest.mark.parametrize(("metadata", "heads", "expected"), UNSUPPORTED)
def test_unsupported_model_types_are_named(
    tmp_path: Path, metadata: dict, heads: dict, expected: str
) -> None:
    folder = _copy_export(tmp_path, metadata, heads)
    with pytest.raises(ModelError, match="only single-instance models, bottom-up models") as error:
        load_model(folder)
    assert expected in str(error.value)


def test_a_graph_that_does_not_give_one_point_per_keypoint_is_not_taken_as_single_instance(
    tmp_path: Path,
) -> None:
    # The bottom-up graph has outputs named peaks and peak_vals too, but several peaks per node.
    folder = _copy_export(tmp_path, {"model_type": "single_instance"}, {})
    with pytest.raises(ModelError, match=r"a single-instance export gives peaks \(N, K, 2\)"):
        load_model(folder)


@pytest.mark.parametrize("stage", ["centered_instance", "multi_class_topdown", "centroid"])
def test_one_top_down_stage_exported_alone_is_refused_with_what_to_do_instead(
    tmp_path: Path, stage: str
) -> None:
    folder = _copy_export(tmp_path, {"model_type": stage}, {})
    with pytest.raises(ModelError) as error:
        load_model(folder)
    message = str(error.value)
    assert "exported alone" in message
    assert "sleap-nn export <centroid model folder> <centered_instance" in message


def test_a_top_down_type_on_a_graph_without_its_metadata_is_refused(tmp_path: Path) -> None:
    folder = _copy_export(tmp_path, {"model_type": "topdown"}, {})
    with pytest.raises(ModelError, match="incomplete top-down metadata"):
        load_model(folder)
    (tmp_path / "b").mkdir()
    folder = _copy_export(
        tmp_path / "b", {"model_type": "topdown", "crop_size": [144, 144], "max_instances": 20}
    )
    with pytest.raises(ModelError, match=r"a top-down export outputs centroids, .*instance_valid"):
        load_model(folder)


def test_metadata_that_contradicts_the_graph_is_refused(tmp_path: Path) -> None:
    # Identity classes on a bottom-up model, and a bottom-up graph called an identity model
    # (identity exports are tested with a real one in test_sleap_identity.py).
    folder = _copy_export(tmp_path, {"n_classes": 2, "class_names": ["a", "b"]})
    with pytest.raises(ModelError, match="names 2 identity classes"):
        load_model(folder)
    (tmp_path / "id").mkdir()
    folder = _copy_export(
        tmp_path / "id", {"model_type": "multi_class_bottomup", "class_names": ["a", "b"]}
    )
    with pytest.raises(ModelError, match=r"identity export outputs peaks, .*class_probs"):
        load_model(folder)


def test_missing_metadata_or_outputs_are_reported(tmp_path: Path) -> None:
    folder = _copy_export(tmp_path, {"node_names": None})
    with pytest.raises(ModelError, match="incomplete metadata"):
        load_sleap(folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"no model\.onnx; only ONNX exports"):
        load_model(folder)


def test_preprocessing_feeds_the_frame_unchanged(
    model: ModelDescription, golden: dict[str, np.ndarray]
) -> None:
    """A BGR frame of equal channels at the input size: the graph gets its gray pixels as is."""
    gray = golden["frames"][0, :, :, 0]
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    preprocessor = Preprocessor(model, bgr.shape, 1)
    batch, _ = preprocessor.prepare([bgr])
    assert batch.dtype == np.uint8 and batch.shape == (1, 1, 1024, 1024)
    assert np.array_equal(batch[0, 0], gray)


# --- the grouping -----------------------------------------------------------------------------


def test_bfs_order_starts_at_the_root() -> None:
    assert bfs_edges([(0, 1), (1, 2), (3, 0)]) == (2, 0, 1)
    assert bfs_edges([(0, 1), (0, 2), (2, 3)]) == (0, 1, 2)


def _synthetic(n_nodes: int, edges: list[tuple[int, int]], scores: dict) -> list[np.ndarray]:
    """Outputs of one frame, one peak per node at (10 * node, 0); ``scores`` per edge index."""
    peaks = np.zeros((1, n_nodes, 2, 2), np.float32)
    peaks[0, :, 0, 0] = 10 * np.arange(n_nodes)
    peak_vals = np.full((1, n_nodes, 2), -1e9, np.float32)
    peak_vals[0, :, 0] = 0.5 + 0.01 * np.arange(n_nodes)
    peak_mask = peak_vals > 0.2
    line_scores = np.full((1, len(edges), 4), -2.0, np.float32)
    for e, score in scores.items():
        line_scores[0, e, 0] = score
    candidate_mask = line_scores > -2.0
    return [peaks, peak_vals, peak_mask, line_scores, candidate_mask]


def test_grouping_rules_for_skeletons_that_are_not_trees() -> None:
    # A triangle: the last edge joins two peaks of the same instance, its score counts.
    edges = [(0, 1), (1, 2), (0, 2)]
    [(points, point_scores, scores)] = _group(
        _synthetic(3, edges, {0: 0.9, 1: 0.8, 2: 0.7}), edges, 0.5
    )
    assert points.shape == (1, 3, 2) and list(points[0, :, 0]) == [0.0, 20.0, 40.0]
    assert np.allclose(point_scores[0], [0.5, 0.51, 0.52])
    assert np.isclose(scores[0], 0.9 + 0.8 + 0.7)
    # Two roots: the second root's edge reaches an assigned peak from an unassigned one and is
    # ignored (its node stays missing); a match below min_line_scores is dropped.
    edges = [(0, 1), (2, 1), (1, 3)]
    [(points, point_scores, scores)] = _group(_synthetic(4, edges, {0: 0.9, 1: 0.8, 2: 0.1}), edges)
    assert len(points) == 1 and np.isclose(scores[0], 0.9)
    assert list(np.isnan(point_scores[0])) == [False, False, True, True]


def test_more_instances_than_animals_keeps_the_best() -> None:
    assert list(select_instances(np.array([1.0, 3.0, 2.0]), 2)) == [1, 2]
    assert list(select_instances(np.array([1.0, 3.0]), 2)) == [0, 1]  # sleap-nn's order


def test_golden_frames_give_sleap_nn_outputs_and_instances(
    model: ModelDescription, golden: dict[str, np.ndarray], predictions: dict[str, np.ndarray]
) -> None:
    batch = np.ascontiguousarray(golden["frames"].transpose(0, 3, 1, 2))
    outputs = dict(zip(model.output_names, _run_graph(model, batch), strict=True))
    for name in OUTPUTS:
        reference = golden[f"onnx_{name}"]
        ours = outputs[name]
        if name in ("peaks",):
            # Coordinates of invalid slots are arbitrary: compare the valid ones.
            mask = golden["onnx_peak_mask"]
            assert np.allclose(ours[mask], reference[mask], atol=1e-4), name
        elif ours.dtype == bool:
            assert np.array_equal(ours, reference), name
        else:
            assert np.allclose(ours, reference, atol=1e-4), name
    frames = _group(outputs, model.decoding.edges, 0.5)
    first_four = {k: v[:4] for k, v in predictions.items() if k != "track_names"}
    worst = _compare(frames, first_four)
    print(f"frames 0-3, grouping vs sleap-nn: {worst}")
    assert worst["dxy"] <= POINT_TOLERANCE and worst["dpoint_score"] <= SCORE_TOLERANCE
    assert worst["dinstance_score"] <= SCORE_TOLERANCE


def test_clip_parity_through_the_estimator(
    model: ModelDescription, predictions: dict[str, np.ndarray]
) -> None:
    """The 100-frame clip through the app's camera, estimator and decoder, vs sleap-nn's run."""
    frames = _clip_frames()
    assert len(frames) == 100
    backend = _Recording(open_backend(model, "onnxruntime", "cpu", threads=1))
    try:
        estimator = NetworkEstimator(model, backend, frames[0].shape, max_batch=4)
        animals = estimator.estimate_animals(frames)
    finally:
        backend.close()
    assert animals.shape == (100, 2, 13, 3)
    grouped = []
    for outputs in backend.outputs:
        named = dict(zip(model.output_names, outputs, strict=True))
        grouped += _group(named, model.decoding.edges, 0.5)
    worst = _compare(grouped, predictions)
    print(f"clip (100 frames), grouping vs sleap-nn: {worst}")
    assert worst["dxy"] <= POINT_TOLERANCE and worst["dpoint_score"] <= SCORE_TOLERANCE
    assert worst["dinstance_score"] <= SCORE_TOLERANCE
    # The estimator's rows are the grouped instances (2 per frame, in sleap-nn's order).
    assert all(len(g[0]) == 2 for g in grouped)
    stacked = np.stack([g[0] for g in grouped])
    assert np.array_equal(animals[..., :2], stacked, equal_nan=True)
    # ... and in sleap-nn's order: no permutation needed.
    reference = predictions["points"].astype(np.float64)
    assert np.allclose(animals[..., :2], reference, atol=POINT_TOLERANCE, equal_nan=True)
    as_groups = [
        (a[:, :, :2], a[:, :, 2], np.asarray(g[2])) for a, g in zip(animals, grouped, strict=True)
    ]
    estimator_worst = _compare(as_groups, predictions)
    print(f"clip (100 frames), NetworkEstimator vs sleap-nn: {estimator_worst}")
    assert estimator_worst["dxy"] <= POINT_TOLERANCE
    assert estimator_worst["dpoint_score"] <= SCORE_TOLERANCE


def test_decode_bottomup_pads_and_caps_animals(
    model: ModelDescription, golden: dict[str, np.ndarray]
) -> None:
    outputs = [golden[f"onnx_{n}"] for n in model.output_names]
    frames = _group(outputs, model.decoding.edges, 0.5)
    three = decode_bottomup(outputs, dataclasses.replace(model, max_animals=3))
    assert three.shape == (4, 3, 13, 3)
    assert np.isnan(three[:, 2]).all()
    assert np.array_equal(three[:, :2, :, :2], np.stack([f[0] for f in frames]), equal_nan=True)
    one = decode_bottomup(outputs, dataclasses.replace(model, max_animals=1))
    for f, (points, _, scores) in enumerate(frames):
        assert np.array_equal(one[f, 0, :, :2], points[np.argmax(scores)], equal_nan=True)
    # Missing points are NaN in all three values.
    assert np.array_equal(np.isnan(three[..., 0]), np.isnan(three[..., 2]))
