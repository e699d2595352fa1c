"""sleap-nn bottom-up identity (class map) exports: the loader, the decoding, parity with sleap-nn.

The model is the project's own artifact in ``tests/fixtures/sleap_id_flies`` (a tiny sleap-nn
0.3.5 ``multi_class_bottomup`` model of 2 flies, classes ``track_0`` and ``track_1``, trained
and exported on a CPU machine; its README says how), with sleap-nn's own outputs on the
100-frame clip of ``../shared/data/sleap-flies`` and the graph's raw outputs on its frames 0-3.
The tests that need the clip's frames read it in place and skip when it is absent; the others
run on the fixture alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.pose.decoding.sleap_classes import (
    CLASS_OUTPUTS,
    SleapClassDecoding,
    decode_classes,
    group_classes,
    match_node_peaks,
)
from deeplabstream.pose.loading import load_model, model_animals
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.files import camera_frames
from tests.support.paths import PROJECT_ROOT, shared_data

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sleap_id_flies"
EXPORT = FIXTURE / "export"
REFERENCE = FIXTURE / "reference" / "export_path.npz"
ONNX_SLP = FIXTURE / "reference" / "clip.onnx_predictions.slp"
CKPT_SLP = FIXTURE / "reference" / "clip.ckpt_predictions.slp"
CLIP = "sleap-flies/inference/flies_clip_first100.mp4"
# The classes in the model's order (sleap-nn took them from the labels' tracks).
CLASSES = tuple(json.loads((EXPORT / "export_metadata.json").read_text())["class_names"])
NODES = (
    *("head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4"),
    *("midlegL4", "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR"),
)
# sleap-nn's points are float32 and ours float64 from the same float32 peaks.
POINT_TOLERANCE = 1e-3  # px
#: Points sleap-nn's export path found on the clip (191 class instances).
VISIBLE_POINTS = 1746
# float32 rounding of the graph's scores between CPUs (largest seen 3.6e-7, AMD EPYC)
ROUNDING = 2e-6


@pytest.fixture(scope="module")
def model() -> ModelDescription:
    return load_model(EXPORT)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return dict(data)


def _raw(reference: dict[str, np.ndarray], frames: slice) -> list[np.ndarray]:
    """The graph's outputs sleap-nn recorded, in CLASS_OUTPUTS order."""
    return [reference[f"raw_{name}"][frames] for name in CLASS_OUTPUTS]


def _clip_frames() -> list[np.ndarray]:
    """The clip's 100 frames as the app's video camera delivers them (PyAV, BGR uint8)."""
    return camera_frames(shared_data(CLIP))


def _theirs(reference: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sleap-nn's per-class points in frame pixels, point scores and identity confidences.

    sleap-nn 0.3.5's exported-model layer divides the graph's points by ``input_scale`` a second
    time (the graph already did): its points are twice the frame's pixels here. Multiplied back
    by ``input_scale``, they are the graph's peaks (README: "sleap-nn's coordinates").
    """
    points = reference["points"].astype(np.float64) * float(reference["input_scale"])
    vectors = reference["class_vectors"].astype(np.float64)  # (N, C, K, C): every class's value
    classes = np.arange(vectors.shape[-1])
    own = vectors[:, classes, :, classes].transpose(1, 0, 2)  # (N, C, K): its own class's value
    seen = np.isfinite(own)
    with np.errstate(invalid="ignore"):  # an absent class: 0 / 0 = NaN, as sleap-nn's nanmean
        confidence = np.where(seen, own, 0.0).sum(axis=2) / seen.sum(axis=2)
    return points, reference["point_scores"].astype(np.float64), confidence


# --- the loader -------------------------------------------------------------------------------


def test_an_identity_export_loads_with_its_classes(model: ModelDescription) -> None:
    assert model.framework == "sleap-nn" and model.decoder == "sleap-classes"
    assert set(CLASSES) == {"track_0", "track_1"}
    assert model.identity_classes == CLASSES and model.max_animals == 2 and model.multi_animal
    assert model.keypoints == NODES and model.output_names == CLASS_OUTPUTS
    assert model.input_type == "uint8" and model.color_order == "gray" and model.any_input_size
    assert isinstance(model.decoding, SleapClassDecoding)
    assert model.decoding.class_names == CLASSES and model.decoding.peak_threshold == 0.2
    # No part-affinity fields: the skeleton drawn is the training labels'.
    assert ("thorax", "head") in model.skeleton and len(model.skeleton) == 12
    # One animal per class, whatever MAX_ANIMALS says.
    assert load_model(EXPORT, max_animals=5).max_animals == 2
    assert model_animals(EXPORT, 5) == 2
    assert load_model(EXPORT / "model.onnx") == model


def test_inspect_names_the_classes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(EXPORT)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bottom-up identity model" in result.stdout
    assert f"animal1 = {CLASSES[0]}, animal2 = {CLASSES[1]}" in result.stdout


def _edited_export(tmp_path: Path, **metadata: Any) -> Path:
    """A copy of the export in tmp_path (graph linked) with metadata keys replaced."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(EXPORT / "model.onnx")
    shutil.copy(EXPORT / "training_config.yaml", folder / "training_config.yaml")
    real = json.loads((EXPORT / "export_metadata.json").read_text())
    (folder / "export_metadata.json").write_text(json.dumps({**real, **metadata}))
    return folder


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"class_names": None}, "without class_names"),
        ({"n_classes": 3}, "n_classes 3 but 2 class_names"),
        ({"class_names": ["a", "a"]}, "class names repeat"),
        ({"model_type": "bottomup"}, "names 2 identity classes"),
        ({"model_type": "multi_class_topdown"}, "top-down identity"),
    ],
)
def test_broken_or_other_identity_exports_are_refused_with_a_message(
    tmp_path: Path, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(_edited_export(tmp_path, **metadata))


# --- the decoding -----------------------------------------------------------------------------


def test_a_peak_goes_only_to_its_own_best_class() -> None:
    # Two peaks that both resemble class 0 most: the Hungarian algorithm gives one of them
    # class 1, and sleap-nn then drops that match (class 1 is not its best class).
    probs = np.array([[0.9, 0.3], [0.8, 0.6]], np.float32)
    assert match_node_peaks(probs) == [(0, 0)]
    assert match_node_peaks(np.array([[0.9, 0.3], [0.2, 0.6]], np.float32)) == [(0, 0), (1, 1)]
    # More peaks than classes: the best total, the others unmatched.
    probs = np.array([[0.5, 0.1], [0.9, 0.2], [0.1, 0.7]], np.float32)
    assert match_node_peaks(probs) == [(1, 0), (2, 1)]
    assert match_node_peaks(np.zeros((0, 2), np.float32)) == []


def test_group_classes_rows_are_classes_and_the_confidence_their_mean_value() -> None:
    peaks = np.array([[[[10, 20], [30, 40]], [[11, 21], [31, 41]]]], np.float32)  # (1, 2, 2, 2)
    vals = np.array([[[0.9, 0.5], [0.8, 0.1]]], np.float32)  # node 1's second peak: too low
    mask = vals > 0.2
    probs = np.array([[[[0.2, 0.7], [0.9, 0.1]], [[0.6, 0.3], [0.0, 0.0]]]], np.float32)
    [frame] = group_classes(peaks, vals, mask, probs, point_scale=2.0)
    assert np.array_equal(frame.points[0], [[60, 80], [22, 42]])  # class 0: node 0 peak 1
    assert np.array_equal(frame.points[1, 0], [20, 40]) and np.isnan(frame.points[1, 1]).all()
    assert list(frame.present) == [True, True]
    assert np.allclose(frame.identity_confidence, [(0.9 + 0.6) / 2, 0.7])


def _assert_same_as_sleap_nn(
    points: np.ndarray, confidence: np.ndarray, reference: dict[str, np.ndarray]
) -> float:
    """Assert our class rows (N, C, K, 3) and confidences (N, C) are sleap-nn's; max |dxy|."""
    their_points, their_scores, their_confidence = _theirs(reference)
    assert points.shape == (*their_points.shape[:3], 3)
    # Same instances and identities: row c is class c in both, with the same points missing.
    assert np.array_equal(np.isnan(points[..., 0]), np.isnan(their_points[..., 0]))
    seen = ~np.isnan(their_points[..., 0])
    assert seen.sum() == VISIBLE_POINTS  # something to compare: 191 instances, 1746 points
    worst = float(np.abs(points[..., :2][seen] - their_points[seen]).max())
    assert worst <= POINT_TOLERANCE
    assert np.allclose(points[..., 2], their_scores, rtol=0, atol=ROUNDING, equal_nan=True)
    assert np.allclose(confidence, their_confidence, atol=1e-6, equal_nan=True)
    return worst


def test_stored_graph_outputs_group_exactly_as_sleap_nn_did(
    model: ModelDescription, reference: dict[str, np.ndarray]
) -> None:
    """The graph's outputs on the 100 frames, recorded from sleap-nn's run, through our decoder."""
    points, confidence = decode_classes(_raw(reference, slice(None)), model)
    worst = _assert_same_as_sleap_nn(points, confidence, reference)
    print(f"stored outputs (100 frames), class rows vs sleap-nn's: max |dxy| {worst:.2e} px")


# --- parity on the clip (the shared clip's frames) --------------------------------------------


def _estimate(model: ModelDescription, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    backend = open_backend(model, "onnxruntime", "cpu", threads=1)
    try:
        estimator = NetworkEstimator(model, backend, frames[0].shape, max_batch=4)
        animals = estimator.estimate_animals(frames)
        assert estimator.last_identity_confidence is not None
        return animals, estimator.last_identity_confidence
    finally:
        backend.close()


def test_the_graph_gives_sleap_nns_outputs_on_the_clip(
    model: ModelDescription, reference: dict[str, np.ndarray]
) -> None:
    frames = _clip_frames()[:4]
    batch = np.stack([f[:, :, 0] for f in frames])[:, None]  # gray: the channels are equal
    backend = open_backend(model, "onnxruntime", "cpu", threads=1)
    try:
        outputs = dict(zip(model.output_names, backend.run(batch), strict=True))
    finally:
        backend.close()
    mask = reference["raw_peak_mask"][:4]
    assert np.array_equal(outputs["peak_mask"], mask)
    assert np.array_equal(outputs["peaks"][mask], reference["raw_peaks"][:4][mask])
    # Values to float32 rounding: the same graph's sums end in other last bits on another
    # CPU's kernels (2.5e-7 seen on an AMD EPYC); where the peaks are, exactly.
    assert np.allclose(outputs["peak_vals"], reference["raw_peak_vals"][:4], rtol=0, atol=ROUNDING)
    assert np.allclose(
        outputs["class_probs"], reference["raw_class_probs"][:4], rtol=0, atol=ROUNDING
    )


def test_clip_parity_through_the_estimator(
    model: ModelDescription, reference: dict[str, np.ndarray]
) -> None:
    """100 frames through the app's camera, estimator and decoder vs sleap-nn's export path."""
    frames = _clip_frames()
    assert len(frames) == 100
    animals, confidence = _estimate(model, frames)
    assert animals.shape == (100, 2, 13, 3) and confidence.shape == (100, 2)
    worst = _assert_same_as_sleap_nn(animals, confidence, reference)
    print(f"clip (100 frames), class rows vs sleap-nn's export path: max |dxy| {worst:.2e} px")


def test_sleap_nn_predict_files_hold_the_same_instances(reference: dict[str, np.ndarray]) -> None:
    """``sleap-nn predict`` on the export wrote the same instances (without their classes)."""
    sio = pytest.importorskip("sleap_io")
    their_points = _theirs(reference)[0]
    scale = float(reference["input_scale"])
    labels = sio.load_slp(str(ONNX_SLP))
    assert len(labels) == 100
    for frame in labels:
        present = ~np.isnan(their_points[frame.frame_idx, :, :, 0]).all(axis=1)
        rows = their_points[frame.frame_idx][present]  # the .slp lists the classes found, in order
        assert len(frame.instances) == len(rows)
        for instance, row in zip(frame.instances, rows, strict=True):
            assert instance.track is None  # the export path writes no class names
            # ... and divides the graph's points by input_scale twice: x 2 here.
            assert np.allclose(instance.numpy() * scale, row, atol=POINT_TOLERANCE, equal_nan=True)


def test_sleap_nn_checkpoint_names_the_same_animals(reference: dict[str, np.ndarray]) -> None:
    """``sleap-nn predict`` on the checkpoint: its tracks are the classes; identities agree.

    The checkpoint path differs from the export by design (integral refinement, an antialiased
    resize, class maps read at the nearest pixel), so points differ by a pixel or two and a
    few peaks go to another class or none; never is a point of one class the other's there.
    """
    sio = pytest.importorskip("sleap_io")
    ours = _theirs(reference)[0]  # equal to ours (the tests above)
    ckpt = np.full_like(ours, np.nan)
    for frame in sio.load_slp(str(CKPT_SLP)):
        for instance in frame.instances:
            ckpt[frame.frame_idx, CLASSES.index(instance.track.name)] = instance.numpy()
    both = ~np.isnan(ours[..., 0]) & ~np.isnan(ckpt[..., 0])
    distance = np.linalg.norm(ours - ckpt, axis=-1)[both]
    swapped = np.linalg.norm(ours - ckpt[:, ::-1], axis=-1) <= 4.0  # near the other class's
    print(
        f"vs checkpoint path: {both.sum()} points in both, median {np.median(distance):.2f} px, "
        f"{(distance <= 4).mean():.1%} within 4 px, {swapped.sum()} at the other class's"
    )
    assert both.sum() >= 1600 and (distance <= 4).mean() >= 0.85
    assert not swapped.any()


# --- the identities of the live path ----------------------------------------------------------


def test_class_identities_keep_rows_and_write_the_models_confidence(tmp_path: Path) -> None:
    from deeplabstream.live.processes.analysis.identities import ClassIdentities

    path = tmp_path / "arena.identity.csv"
    identities = ClassIdentities(path, ("animal1", "animal2"), CLASSES)
    animals = np.arange(2 * 13 * 3, dtype=np.float64).reshape(2, 13, 3)
    assert identities.update(animals, np.array([0.93, np.nan])) is animals  # rows are classes
    identities.write(0)
    identities.update(animals, np.array([0.5, 0.75]))
    identities.write(1)
    identities.update(animals, None)  # a frame without the model's figures: no confidence
    identities.write(2)
    identities.end_at(3)
    figures = identities.close()
    assert path.read_text().splitlines() == [
        "frame_index,animal1,animal2,unnamed",  # the model names every animal: none unnamed
        "0,0.9300,,",
        "1,0.5000,0.7500,",
        "2,,,",
        "3,,,",
    ]
    assert figures["classes"] == {"animal1": CLASSES[0], "animal2": CLASSES[1]}
    assert figures["frames"] == 3 and figures["frames_seen"] == {"animal1": 2, "animal2": 1}
    assert figures["confidence_file"] == path.name
