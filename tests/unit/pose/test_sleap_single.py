"""sleap-nn single-instance exports: one animal, each keypoint's highest point from the graph.

The model is the project's own artifact in ``tests/fixtures/sleap_single_openfield`` (a tiny
sleap-nn 0.3.5 single-instance model of DeepLabCut's open-field mouse, trained and exported on
a CPU machine; its README says how), with sleap-nn's own outputs on the 100-frame open-field
clip and on its 10 labelled images (``../shared/data/dlc3-openfield-cspnext_s``). The tests that
need frames read them in place and skip when they are absent; the others run on the fixture
alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from deeplabstream.pose.decoding.sleap_single import (
    SleapSingleDecoding,
    decode_single_instance,
    single_instance_points,
)
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.cropping import input_multiple
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.files import camera_frames
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.unit.pose.test_sleap_topdown import assert_same

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sleap_single_openfield"
EXPORT = FIXTURE / "export"
CLIP = "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4"
IMAGES = "dlc3-openfield-cspnext_s/images"
#: sleap-io orders the DeepLabCut labels' keypoints by name.
NODES = ("leftear", "rightear", "snout", "tailbase")


def reference(what: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "reference" / f"{what}.export_path.npz") as data:
        return dict(data)


def theirs(what: str) -> np.ndarray:
    """sleap-nn's one instance per frame as the project's (N, K, 3): x, y, score; NaN missing."""
    ref = reference(what)
    points = np.concatenate([ref["points"][:, 0], ref["point_scores"][:, 0, :, None]], axis=-1)
    points[np.isnan(points[..., 0])] = np.nan
    return points


def clip_frames() -> list[np.ndarray]:
    """The clip's frames as the app's video camera delivers them (PyAV, BGR uint8)."""
    return camera_frames(shared_data(CLIP))


def estimate(description: ModelDescription, frames: list[np.ndarray]) -> np.ndarray:
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    try:
        return NetworkEstimator(description, backend, frames[0].shape, max_batch=4).estimate(frames)
    finally:
        backend.close()


# --- the loader -------------------------------------------------------------------------------


def test_a_single_instance_export_loads_as_one_animal() -> None:
    model = load_model(EXPORT)
    assert model.framework == "sleap-nn" and model.decoder == "sleap-single"
    assert model.keypoints == NODES and not model.multi_animal and model.animals == 1
    # An RGB model (trained with ensure_rgb) at the size it was traced at, run at any size.
    assert model.color_order == "rgb" and model.input_type == "uint8" and model.any_input_size
    assert (model.input_height, model.input_width) == (480, 640)
    settings = model.decoding
    assert isinstance(settings, SleapSingleDecoding)
    assert settings.input_scale == 0.5 and settings.output_stride == 2
    assert settings.peak_threshold == 0.2 and settings.max_stride == 16
    # The graph run is sleap-nn's up to the confidence maps (its peaks are found on the host).
    assert len(model.output_names) == 1 and model.model_file.name.endswith(".maps.onnx")
    assert settings.export_graph is not None and settings.export_graph.name == "model.onnx"
    assert model.stride == settings.grid_px == 4.0
    assert load_model(EXPORT / "model.onnx") == model
    # MAX_ANIMALS is for multi-animal models: one animal stays one.
    assert load_model(EXPORT, max_animals=3).animals == 1


def test_inspect_describes_a_single_instance_export() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(EXPORT)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "640x480 RGB" in text
    assert "sleap-nn 0.3.5 ONNX export" in text
    assert "single-instance model" in text and "input scale 0.5" in text
    assert "leftear, rightear, snout, tailbase" in text
    assert "4-pixel grid" in text and "one animal per frame" in text


def test_dynamic_crops_keep_the_backbones_grid() -> None:
    # max_stride 16 at input scale 0.5: a crop must be a multiple of 32 frame pixels, or the
    # graph (which pads nothing) cannot run it.
    assert input_multiple(load_model(EXPORT)) == 32


def test_a_crop_of_the_frame_gives_the_frames_keypoints_where_the_model_sees_the_same() -> None:
    frames = clip_frames()[:1]
    model = load_model(EXPORT)
    whole = estimate(model, frames)[0]
    # A 320 x 224 region around the animal, fed at its own size (as DYNAMIC_CROP does).
    x0, y0 = (int(v) // 32 * 32 for v in np.nanmean(whole[:, :2], axis=0) - (160, 112))
    x0, y0 = max(0, min(x0, 640 - 320)), max(0, min(y0, 480 - 224))
    crop = np.ascontiguousarray(frames[0][y0 : y0 + 224, x0 : x0 + 320])
    cropped = estimate(model.at_input_size(224, 320), [crop])[0]
    cropped[:, 0] += x0
    cropped[:, 1] += y0
    seen = ~np.isnan(whole[:, 0]) & ~np.isnan(cropped[:, 0])
    assert seen.sum() >= 3
    # The same grid: points agree to a few grid cells (the network sees less context).
    assert np.abs(cropped[seen, :2] - whole[seen, :2]).max() <= 16


# --- the peaks found on the host ---------------------------------------------------------------


@pytest.mark.parametrize("what", ["clip", "images"])
def test_sleap_nns_stored_graph_outputs_are_its_layers_instance(what: str) -> None:
    ref = reference(what)
    ours = single_instance_points(ref["raw_peaks"], ref["raw_peak_vals"])
    assert_same(ours, theirs(what))
    # Below the threshold: NaN in all three, as sleap-nn drops the point.
    below = ref["raw_peak_vals"] < 0.2
    assert np.isnan(ours[below]).all() and not np.isnan(ours[~below]).any()


def test_the_host_finds_the_peaks_the_whole_graph_finds_to_the_bit() -> None:
    # sleap-nn's whole graph (ONNX Runtime) and the program's maps + host peaks, same frames.
    frames = clip_frames()[::10]
    model = load_model(EXPORT)
    session = ort.InferenceSession(str(EXPORT / "model.onnx"), providers=["CPUExecutionProvider"])
    rgb = np.stack([f[..., ::-1].transpose(2, 0, 1) for f in frames])
    peaks, values = session.run(["peaks", "peak_vals"], {"image": np.ascontiguousarray(rgb)})
    expected = single_instance_points(peaks, values)
    ours = estimate(model, frames)
    assert np.array_equal(ours, expected, equal_nan=True)


def test_maps_without_a_map_per_keypoint_are_refused_naming_the_shapes() -> None:
    model = load_model(EXPORT)
    with pytest.raises(ModelError, match=r"confidence maps \(1, 3, 8, 8\).*\(N, 4, h, w\)"):
        decode_single_instance([np.zeros((1, 3, 8, 8), np.float32)], model)


# --- parity on frames ---------------------------------------------------------------------------


def test_the_clip_gives_sleap_nns_keypoints() -> None:
    ours = estimate(load_model(EXPORT), clip_frames())
    worst = assert_same(ours, theirs("clip"))
    print(f"clip: 100 frames, worst |dxy| {worst} px")


def test_labelled_images_give_sleap_nns_keypoints() -> None:
    ref = reference("images")
    names = [str(n) for n in ref["image_names"]]
    frames = [np.asarray(cv2.imread(str(shared_data(IMAGES) / name))) for name in names]
    # The pixels sleap-io gave sleap-nn (RGB): the same images.
    digests = [
        hashlib.sha256(np.ascontiguousarray(f[..., ::-1]).tobytes()).hexdigest() for f in frames
    ]
    assert digests == [str(d) for d in ref["frame_sha256"]]
    ours = estimate(load_model(EXPORT), frames)
    assert_same(ours, theirs("images"))


# --- bad exports --------------------------------------------------------------------------------


def _broken_copy(tmp_path: Path, change: dict[str, object]) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(EXPORT, folder)
    metadata = json.loads((folder / "export_metadata.json").read_text())
    metadata.update(change)
    (folder / "export_metadata.json").write_text(json.dumps(metadata))
    return folder


def test_metadata_without_keypoint_names_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, {"node_names": None})
    with pytest.raises(ModelError, match=r"export_metadata\.json: incomplete single-instance"):
        load_model(folder)


def test_keypoints_that_do_not_match_the_graph_are_refused(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, {"node_names": ["nose", "tail"]})
    model = load_model(folder)  # the graph's output shape is read at run time
    with pytest.raises(ModelError, match=r"single-instance model of 2 keypoints"):
        estimate(model, [np.zeros((480, 640, 3), np.uint8)])


def test_channels_that_do_not_match_the_graph_are_refused(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, {"input_channels": 1})
    with pytest.raises(ModelError, match=r"takes 3 channels but .* says input_channels 1"):
        load_model(folder)
