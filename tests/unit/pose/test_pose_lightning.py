"""Lightning Pose models: the loader, its errors, and parity with Lightning Pose's own numbers.

The parity tests use ../shared/data/lp-mirror-mouse-resnet18 (a real Lightning Pose 2.4.3
model, its ONNX exports, a clip and Lightning Pose's predictions on it; see its README) in
place, and skip when it is absent. The loader's error tests build small exports in tmp_path.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deeplabstream.pose.decoding.lightning import decode_lightning_pose
from deeplabstream.pose.formats.lightning import load_lightning_pose
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.preprocess import Preprocessor
from tests.support.files import read_video
from tests.support.paths import shared_data

LP = "lp-mirror-mouse-resnet18"
FP32 = "model/exports_onnx/epoch=39-step=200-best_fp32.onnx"
FP16 = "model/exports_onnx/epoch=39-step=200-best_fp16.onnx"
CLIP_CSV = "video_preds/test_vid_first100.csv"
IMAGES_CSV = "image_preds/CollectedData_predictions.csv"
FRAME_SIZE = (406, 396)  # height, width of the clip and the labeled images
INPUT_SIZE = (256, 128)


# --- helpers ----------------------------------------------------------------------------------


def _predictions(run: str, csv: str, keypoints: tuple[str, ...]) -> pd.DataFrame:
    """Lightning Pose's predictions as (rows, K, 3) x, y, likelihood, in config order."""
    table = pd.read_csv(shared_data(f"{LP}/reference/{run}/{csv}"), header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)  # scorer
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    values = table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    return values, list(table.index)


def _max_differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs).max(axis=(0, 1))
    return {"dx": float(diff[0]), "dy": float(diff[1]), "dlikelihood": float(diff[2])}


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    """The clip's 100 frames, BGR, decoded with PyAV."""
    return read_video(shared_data(f"{LP}/clip/test_vid_first100.mp4"))


@pytest.fixture(scope="module")
def intermediates() -> dict[str, np.ndarray]:
    with np.load(shared_data(f"{LP}/reference/intermediates.npz")) as data:
        return dict(data)


def _estimate(path: Path, frames: list[np.ndarray], max_batch: int = 8) -> np.ndarray:
    description = load_lightning_pose(path)
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    try:
        return NetworkEstimator(description, backend, frames[0].shape, max_batch).estimate(frames)
    finally:
        backend.close()


# --- the real model ---------------------------------------------------------------------------


def test_clip_decodes_to_lightning_pose_frames(clip_frames: list[np.ndarray]) -> None:
    expected = pd.read_csv(shared_data(f"{LP}/clip/decoded_frames_md5.csv"))
    assert len(clip_frames) == len(expected) == 100
    for frame, md5 in zip(clip_frames, expected["md5_rgb_uint8_hwc"], strict=True):
        rgb = np.ascontiguousarray(frame[..., ::-1])
        assert hashlib.md5(rgb.tobytes()).hexdigest() == md5


def test_loader_describes_the_export() -> None:
    folder = shared_data(f"{LP}/model")
    description = load_lightning_pose(folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert description.model_file.name.endswith("_fp32.onnx")  # the folder picks fp32
    assert description.keypoints == tuple(config["data"]["keypoint_names"])
    assert (description.input_height, description.input_width) == INPUT_SIZE
    assert description.precision == "fp32" and description.batch_size is None
    assert (description.decoder, description.downsample_factor) == ("lightning-pose", 2)
    assert (description.input_name, description.output_names) == ("images", ("heatmaps",))
    assert description.stride == 4.0 and description.framework == "lightning-pose"
    assert load_lightning_pose(shared_data(f"{LP}/{FP16}")).precision == "fp16"


def test_preprocessing_matches_lightning_pose(
    clip_frames: list[np.ndarray], intermediates: dict[str, np.ndarray]
) -> None:
    description = load_lightning_pose(shared_data(f"{LP}/model"))
    batch, _ = Preprocessor(description, clip_frames[0].shape, 4).prepare(clip_frames[:4])
    # float32 rounding only: OpenCV's bilinear resize vs torch's interpolate.
    np.testing.assert_allclose(batch, intermediates["video_input"], rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind", ["video", "labeled"])
def test_decoder_matches_lightning_pose(kind: str, intermediates: dict[str, np.ndarray]) -> None:
    keypoints = decode_lightning_pose(intermediates[f"{kind}_heatmaps_eager"], 2)
    model_px = intermediates[f"{kind}_keypoints_model_px"].reshape(4, 17, 2)
    # Lightning Pose computes in float32 (mostly its softmax): 0.0024 px from exact arithmetic.
    np.testing.assert_allclose(keypoints[..., :2], model_px, rtol=0, atol=0.005)
    np.testing.assert_allclose(keypoints[..., 2], intermediates[f"{kind}_confidence"], atol=1e-4)
    frame_px = intermediates[f"{kind}_keypoints_frame_px"].reshape(4, 17, 2)
    scale = np.array([FRAME_SIZE[1] / INPUT_SIZE[1], FRAME_SIZE[0] / INPUT_SIZE[0]])
    np.testing.assert_allclose(keypoints[..., :2] * scale, frame_px, rtol=0, atol=0.02)


def test_fp32_export_matches_lightning_pose_on_the_clip(
    clip_frames: list[np.ndarray], record_property
) -> None:
    description = load_lightning_pose(shared_data(f"{LP}/model"))
    ours = _estimate(shared_data(f"{LP}/model"), clip_frames)
    for run in ("litpose_predict_onnx_fp32", "litpose_predict_eager"):
        theirs, index = _predictions(run, CLIP_CSV, description.keypoints)
        assert index == list(range(100))
        diff = _max_differences(ours, theirs)
        record_property(f"clip_fp32_vs_{run}", diff)
        print(f"clip, our fp32 vs {run}: {diff}")
        assert diff["dx"] < 0.02 and diff["dy"] < 0.02 and diff["dlikelihood"] < 1e-4


def test_fp32_export_matches_lightning_pose_on_labeled_images(
    intermediates: dict[str, np.ndarray], record_property
) -> None:
    """The labeled images are not in the shared folder: their network input is."""
    description = load_lightning_pose(shared_data(f"{LP}/model"))
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    (heatmaps,) = backend.run(intermediates["labeled_input"])
    backend.close()
    np.testing.assert_allclose(heatmaps, intermediates["labeled_heatmaps_eager"], atol=1e-5)
    keypoints = decode_lightning_pose(heatmaps, description.downsample_factor)
    keypoints[..., 0] *= FRAME_SIZE[1] / INPUT_SIZE[1]
    keypoints[..., 1] *= FRAME_SIZE[0] / INPUT_SIZE[0]
    names = list(intermediates["labeled_image_names"])
    for run in ("litpose_predict_onnx_fp32", "litpose_predict_eager"):
        theirs, index = _predictions(run, IMAGES_CSV, description.keypoints)
        theirs = theirs[[index.index(name) for name in names]]
        diff = _max_differences(keypoints, theirs)
        record_property(f"labeled_fp32_vs_{run}", diff)
        print(f"labeled images, our fp32 vs {run}: {diff}")
        assert diff["dx"] < 0.02 and diff["dy"] < 0.02 and diff["dlikelihood"] < 1e-4


def test_fp16_export_runs(clip_frames: list[np.ndarray], record_property) -> None:
    """fp16 differs from fp32 by pixels (Lightning Pose's own fp16 too): measured, not pinned."""
    description = load_lightning_pose(shared_data(f"{LP}/model"))
    ours = _estimate(shared_data(f"{LP}/{FP16}"), clip_frames)
    assert np.isfinite(ours).all()
    for run in ("litpose_predict_onnx_fp32", "litpose_predict_onnx_fp16"):
        theirs, _ = _predictions(run, CLIP_CSV, description.keypoints)
        diff = _max_differences(ours, theirs)
        record_property(f"clip_fp16_vs_{run}", diff)
        print(f"clip, our fp16 vs {run}: {diff}")
        assert diff["dx"] < 20 and diff["dy"] < 20  # the same model, give or take fp16


def test_inference_time_per_frame(clip_frames: list[np.ndarray], record_property) -> None:
    """Median seconds per frame of each stage, one frame at a time, on this machine."""
    description = load_lightning_pose(shared_data(f"{LP}/model"))
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    backend.warm_up()
    estimator = NetworkEstimator(description, backend, clip_frames[0].shape, 1)
    timings, totals = [], []
    for frame in clip_frames[:20]:
        start = time.perf_counter()
        estimator.estimate([frame])
        totals.append(time.perf_counter() - start)
        timings.append(estimator.last_timings)
    backend.close()
    medians = {k: float(np.median([t[k] for t in timings])) for k in timings[0]}
    medians["total"] = float(np.median(totals))
    record_property("lp_seconds_per_frame", medians)
    print(f"Lightning Pose resnet18 256x128, ONNX Runtime CPU, 2 threads: {medians}")
    assert medians["inference"] > 0


# --- the loader's errors, on small exports in tmp_path ------------------------------------------


def _tiny_export(
    folder: Path,
    *,
    keypoints: int = 3,
    graph_keypoints: int | None = None,
    input_shape: tuple = ("batch", 3, 32, 16),
    name: str = "tiny_fp32.onnx",
    precision: str = "fp32",
) -> Path:
    """A Lightning Pose-like model folder: config.yaml and a stride-4 conv graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = graph_keypoints or keypoints
    exports = folder / "exports_onnx"
    exports.mkdir(parents=True, exist_ok=True)
    config = {
        "data": {
            "image_resize_dims": {"height": 32, "width": 16},
            "keypoint_names": [f"kp{i}" for i in range(keypoints)],
            "downsample_factor": 2,
        },
        "model": {"model_type": "heatmap", "model_name": "tiny"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dtype = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    np_type = np.float16 if precision == "fp16" else np.float32
    weight = numpy_helper.from_array(
        np.random.default_rng(0).normal(0, 0.1, (k, 3, 4, 4)).astype(np_type), "weight"
    )
    out_shape = (input_shape[0], k, 8, 4) if len(input_shape) == 4 else ("batch", k, 8, 4)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "weight"], ["logits"], strides=[4, 4]),
            helper.make_node("Sigmoid", ["logits"], ["heatmaps"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", dtype, list(input_shape))],
        [helper.make_tensor_value_info("heatmaps", dtype, list(out_shape))],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = exports / name
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        location=f"{name}.data",
        size_threshold=0,
    )
    return path


def test_tiny_export_loads_and_runs(tmp_path: Path) -> None:
    path = _tiny_export(tmp_path / "model")
    description = load_lightning_pose(tmp_path / "model")
    assert description.model_file == path and description.keypoints == ("kp0", "kp1", "kp2")
    frames = [np.full((64, 40, 3), 100, np.uint8)] * 3
    keypoints = _estimate(tmp_path / "model", frames, max_batch=2)
    assert keypoints.shape == (3, 3, 3) and np.isfinite(keypoints).all()


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such Lightning Pose model"):
        load_lightning_pose(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty: no config\.yaml"):
        load_lightning_pose(tmp_path / "empty")
    model = tmp_path / "model"
    _tiny_export(model)
    shutil.rmtree(model / "exports_onnx")
    with pytest.raises(ModelError, match=r"model: no exports_onnx/.*litpose export"):
        load_lightning_pose(model)
    (model / "exports_onnx").mkdir()
    with pytest.raises(ModelError, match=r"exports_onnx: no \.onnx file"):
        load_lightning_pose(model)


def test_choice_of_graph(tmp_path: Path) -> None:
    model = tmp_path / "model"
    _tiny_export(model, name="m_fp16.onnx", precision="fp16")
    assert load_lightning_pose(model).precision == "fp16"  # the only one
    _tiny_export(model, name="m_fp32.onnx")
    assert load_lightning_pose(model).model_file.name == "m_fp32.onnx"  # fp32 preferred
    fp16 = load_lightning_pose(model / "exports_onnx" / "m_fp16.onnx")  # named: that one
    assert fp16.precision == "fp16"
    (model / "exports_onnx" / "m_fp32.onnx").rename(model / "exports_onnx" / "other.onnx")
    with pytest.raises(ModelError, match=r"several \.onnx files \(m_fp16\.onnx, other\.onnx\)"):
        load_lightning_pose(model)


def test_graph_errors(tmp_path: Path) -> None:
    path = _tiny_export(tmp_path / "a")
    Path(f"{path}.data").unlink()
    with pytest.raises(ModelError, match=r"tiny_fp32\.onnx: its weights file .*\.data is missing"):
        load_lightning_pose(tmp_path / "a")
    _tiny_export(tmp_path / "b", keypoints=3, graph_keypoints=4)
    with pytest.raises(ModelError, match=r"outputs 4 heatmaps but .*config\.yaml names 3"):
        load_lightning_pose(tmp_path / "b")
    _tiny_export(tmp_path / "c", input_shape=("batch", 5, 3, 32, 16))
    with pytest.raises(ModelError, match="rank 5"):
        load_lightning_pose(tmp_path / "c")
    _tiny_export(tmp_path / "d", input_shape=("batch", 3, 64, 16))
    with pytest.raises(ModelError, match=r"input is 16x64 but .* says image_resize_dims 16x32"):
        load_lightning_pose(tmp_path / "d")
    not_onnx = tmp_path / "a" / "exports_onnx" / "notes.txt"
    not_onnx.write_text("hello")
    with pytest.raises(ModelError, match=r"not an \.onnx file"):
        load_lightning_pose(not_onnx)
    broken = tmp_path / "a" / "exports_onnx" / "tiny_fp32.onnx"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="not a readable ONNX file"):
        load_lightning_pose(broken)
