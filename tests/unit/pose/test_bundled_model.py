"""The input formats of issue 12 (letterbox, raw pixels, uint8, NHWC), the separable network,
old model folders, and the bundled model's description."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deeplabstream.offline.training.data import network_input, resize_to_input
from deeplabstream.pose.formats.own_model import load_own_model, read_model_json
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.networks.own import (
    INPUT_FORMATS,
    InputFormat,
    NetworkConfig,
    PoseNet,
    export_onnx,
)
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.preprocess import Preprocessor
from deeplabstream.pose.runtime.transforms import letterbox_size, make_transform
from tests.support.paths import PACKAGE_ROOT

RNG = np.random.default_rng(12)
BUNDLED = PACKAGE_ROOT / "pose" / "bundled" / "arena"
KEYPOINTS = ("a", "b", "c")


def _description(**changes: object) -> ModelDescription:
    values: dict[str, object] = dict(
        name="test",
        framework="deeplabstream",
        model_file=Path("model.onnx"),
        keypoints=KEYPOINTS,
        input_height=256,
        input_width=320,
        resize="area",
    )
    values.update(changes)
    return ModelDescription(**values)  # type: ignore[arg-type]


def _format_changes(name: str) -> dict[str, object]:
    """ModelDescription fields of one of the training command's input formats."""
    fmt = INPUT_FORMATS[name]
    return {
        "input_type": "uint8" if fmt.dtype == "uint8" else "float",
        "input_layout": fmt.layout,
        "normalization": fmt.normalization,
    }


# --- letterbox geometry -----------------------------------------------------------------------


def test_letterbox_sizes() -> None:
    assert letterbox_size((480, 640), (256, 320)) == (240, 320)  # exactly half
    assert letterbox_size((300, 500), (256, 320)) == (192, 320)  # width limits
    assert letterbox_size((600, 200), (256, 320)) == (256, 85)  # height limits
    transform = make_transform((480, 640), (256, 320), letterbox=True)
    assert (transform.scale_x, transform.scale_y) == (0.5, 0.5)


@pytest.mark.parametrize(
    "frame_shape, tolerance",
    [
        ((480, 640, 3), 1e-9),  # an exact 2x: every frame pixel falls in one input pixel
        ((480, 640), 1e-9),
        ((300, 500, 3), 0.1),  # x 0.64: area averaging and uint8 rounding move a 2x2 blob a bit
    ],
)
@pytest.mark.parametrize("flip", [False, True])
def test_letterboxed_keypoints_map_back_exactly(
    frame_shape: tuple[int, ...], tolerance: float, flip: bool
) -> None:
    """A bright 2x2 block lands in the letterboxed input where the transform says, and back."""
    description = _description(letterbox=True, **_format_changes("float-raw"))
    frame = np.zeros(frame_shape, np.uint8)
    frame[101:103, 201:203] = 255  # centre (201.5, 101.5)
    pre = Preprocessor(description, frame_shape, 1)
    batch, transforms = pre.prepare([frame], [flip])
    image = batch[0, 0].astype(np.float64)  # one channel, pixels 0..255
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    centroid = np.array([(xs * image).sum(), (ys * image).sum()]) / image.sum()
    point = np.array([201.5, 101.5])
    np.testing.assert_allclose(transforms[0].to_input(point), centroid, atol=tolerance)
    back = transforms[0].to_frame(transforms[0].to_input(point))
    np.testing.assert_allclose(back, point, atol=1e-9)
    height, width = letterbox_size(frame_shape[:2], (256, 320))
    assert not batch[0, :, height:].any() and not batch[0, :, :, width:].any()  # black padding


def test_exact_half_is_a_2x2_average() -> None:
    """640x480 into 320x256: the content is the 2x2 mean (INTER_AREA), rows 240.. are black."""
    description = _description(letterbox=True, **_format_changes("uint8-nchw"))
    frame = RNG.integers(0, 256, (480, 640, 3), np.uint8)
    batch = Preprocessor(description, frame.shape, 1).prepare([frame])[0]
    blocks = frame.reshape(240, 2, 320, 2, 3).astype(np.float64).mean(axis=(1, 3))
    expected = np.floor(blocks + 0.5)  # OpenCV rounds halves up for uint8 area averages
    np.testing.assert_array_equal(batch[0, :, :240].transpose(1, 2, 0), expected[..., ::-1])
    assert not batch[0, :, 240:].any()


# --- raw-pixel, uint8 and NHWC input ----------------------------------------------------------


@pytest.mark.parametrize("name", ["uint8-nhwc", "uint8-nchw", "float-raw"])
def test_in_graph_normalisation_gets_raw_pixels_in_its_layout(name: str) -> None:
    description = _description(input_height=64, input_width=96, **_format_changes(name))
    frame = RNG.integers(0, 256, (120, 200, 3), np.uint8)
    pre = Preprocessor(description, frame.shape, 2)
    batch = pre.prepare([frame, frame], [False, True])[0]
    fmt = INPUT_FORMATS[name]
    assert batch.dtype == (np.uint8 if fmt.dtype == "uint8" else np.float32)
    assert batch.shape == description.input_shape(2)
    assert batch.shape == ((2, 64, 96, 3) if fmt.layout == "nhwc" else (2, 3, 64, 96))
    small = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA)
    rgb = small[:, :, ::-1]
    expected = rgb if fmt.layout == "nhwc" else rgb.transpose(2, 0, 1)
    np.testing.assert_array_equal(batch[0], expected)
    # A flipped frame gives the input of the mirrored frame.
    mirrored = pre.prepare([np.ascontiguousarray(frame[:, ::-1])])[0][0]
    np.testing.assert_array_equal(batch[1], mirrored)


def test_raw_pixels_are_the_normalised_input_before_normalising() -> None:
    frame = RNG.integers(0, 256, (120, 200, 3), np.uint8)
    raw = Preprocessor(_description(**_format_changes("float-raw")), frame.shape, 1)
    normalised = Preprocessor(_description(), frame.shape, 1)
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    np.testing.assert_allclose(
        (raw.prepare([frame])[0][0] / 255 - mean) / std,
        normalised.prepare([frame])[0][0],
        atol=1e-5,
    )


def test_mono_frames_fill_every_channel_of_a_uint8_input() -> None:
    description = _description(input_height=32, input_width=48, **_format_changes("uint8-nhwc"))
    mono = RNG.integers(0, 256, (64, 96), np.uint8)
    batch = Preprocessor(description, mono.shape, 1).prepare([mono])[0]
    small = cv2.resize(mono, (48, 32), interpolation=cv2.INTER_AREA)
    for c in range(3):
        np.testing.assert_array_equal(batch[0, :, :, c], small)


def test_letterboxed_normalised_input_pads_with_normalised_black() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    batch = Preprocessor(_description(letterbox=True), frame.shape, 1).prepare([frame])[0]
    black = -np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)
    np.testing.assert_allclose(batch[0, :, 250, 10], black, atol=1e-6)  # padding
    np.testing.assert_allclose(batch[0, :, 100, 10], black, atol=1e-6)  # the black frame


def test_inconsistent_input_formats_are_refused() -> None:
    with pytest.raises(ModelError, match="uint8 input needs the normalisation in the graph"):
        _description(input_type="uint8")
    with pytest.raises(ModelError, match="bilinear-float"):
        _description(input_type="uint8", normalization="in-graph", resize="bilinear-float")
    with pytest.raises(ValueError, match="uint8 input needs normalization in the graph"):
        InputFormat(dtype="uint8")


@pytest.mark.parametrize("name", list(INPUT_FORMATS))
@pytest.mark.parametrize("letterbox", [False, True])
def test_training_input_equals_the_live_input(name: str, letterbox: bool) -> None:
    """What training feeds (resize_to_input + network_input) is what the estimator feeds."""
    frame = RNG.integers(0, 256, (480, 640, 3), np.uint8)
    description = _description(letterbox=letterbox, **_format_changes(name))
    live = Preprocessor(description, frame.shape, 1).prepare([frame])[0]
    trained = network_input(
        resize_to_input(frame, (320, 256), letterbox)[None], INPUT_FORMATS[name]
    )
    assert live.dtype == trained.dtype and live.shape == trained.shape
    np.testing.assert_allclose(live, trained, atol=1e-5)


# --- the separable network in every input format ----------------------------------------------


@pytest.mark.parametrize("name", list(INPUT_FORMATS))
def test_separable_network_exports_in_every_input_format(name: str, tmp_path: Path) -> None:
    import onnxruntime
    import torch

    torch.manual_seed(0)
    config = NetworkConfig(3, architecture="separable-fpn", input=INPUT_FORMATS[name])
    network = PoseNet(config).eval()
    path = tmp_path / "net.onnx"
    export_onnx(network, str(path), 64, 96)
    images = RNG.integers(0, 256, (2, 64, 96, 3), np.uint8)
    batch = network_input(images, config.input)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == ("tensor(uint8)" if "uint8" in name else "tensor(float)")
    from_onnx = session.run(None, {"images": batch})
    with torch.inference_mode():
        from_torch = network(torch.from_numpy(batch))
    for a, b in zip(from_onnx, from_torch, strict=True):
        assert a.shape == (2, 3 if a is from_onnx[0] else 6, 16, 24)
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)


def test_network_config_round_trip_and_old_files() -> None:
    config = NetworkConfig(6, architecture="separable-fpn", input=INPUT_FORMATS["uint8-nhwc"])
    assert NetworkConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    refined = NetworkConfig(6, architecture="separable-fpn", refine_width=16)
    assert NetworkConfig.from_dict(json.loads(json.dumps(refined.to_dict()))) == refined
    # A network section written before issue 12: the first design, normalised float input.
    old = {"num_keypoints": 6, "widths": [16, 32, 64, 96, 128], "decoder_width": 48, "locref": True}
    rebuilt = NetworkConfig.from_dict(old)
    assert rebuilt.architecture == "resnet-fpn" and rebuilt.input == InputFormat()
    assert rebuilt == NetworkConfig(6)
    with pytest.raises(ValueError, match="widths need 4 values"):
        NetworkConfig(6, architecture="separable-fpn", widths=(16, 32, 64, 96, 128))
    with pytest.raises(ValueError, match="refinement head is for the separable-fpn"):
        NetworkConfig(6, refine_width=16)


@pytest.mark.parametrize("refine_width", [0, 16])
def test_separable_outputs_are_on_the_stride_4_grid(refine_width: int) -> None:
    """Both output heads give stride-4 maps; gradients reach every part (nothing is unused)."""
    import torch

    torch.manual_seed(0)
    config = NetworkConfig(2, architecture="separable-fpn", refine_width=refine_width)
    network = PoseNet(config)
    heatmaps, locref = network(torch.rand(2, 3, 64, 96) * 255)
    assert heatmaps.shape == (2, 2, 16, 24) and locref.shape == (2, 4, 16, 24)
    (heatmaps.square().mean() + locref.mean()).backward()
    unused = [n for n, p in network.named_parameters() if p.grad is None]
    assert not unused, unused


def test_prefetched_batches_are_the_same_batches() -> None:
    from deeplabstream.offline.training.loop import prefetched

    def numbers(fail_at: int | None = None):
        rng = np.random.default_rng(0)
        for i in range(20):
            if i == fail_at:
                raise RuntimeError("broken frame")
            yield rng.random()

    assert list(prefetched(numbers())) == list(numbers())
    with pytest.raises(RuntimeError, match="broken frame"):
        list(prefetched(numbers(fail_at=5)))
    early = prefetched(numbers())
    assert next(early) == next(numbers())
    early.close()  # stops the data thread


# --- an old model folder ----------------------------------------------------------------------


def _old_model_folder(folder: Path) -> tuple[Path, PoseNet]:
    """A model folder as the first version of the format wrote it (no input format keys)."""
    import torch

    torch.manual_seed(1)
    network = PoseNet(NetworkConfig(len(KEYPOINTS))).eval()
    folder.mkdir()
    export_onnx(network, str(folder / "model.onnx"), 64, 96)
    data = {
        "format": "deeplabstream-model/1",
        "name": "old",
        "keypoints": list(KEYPOINTS),
        "skeleton": [["a", "b"]],
        "files": {"onnx": "model.onnx", "torchscript": None},
        "input": {
            "name": "images",
            "height": 64,
            "width": 96,
            "color_order": "rgb",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "resize": "area",
        },
        "output": {
            "kind": "heatmaps+locref",
            "names": ["heatmaps", "locref"],
            "stride": 4.0,
            "locref_std": 7.2801,
            "decoder": "argmax",
            "heatmaps_are_probabilities": False,
        },
        "network": {
            "num_keypoints": 3,
            "widths": [16, 32, 64, 96, 128],
            "decoder_width": 48,
            "locref": True,
        },
        "training": {},
    }
    (folder / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return folder, network


def test_an_old_architecture_model_folder_loads_and_runs(tmp_path: Path) -> None:
    import torch

    folder, network = _old_model_folder(tmp_path / "old")
    description = load_own_model(folder)
    assert (description.input_type, description.input_layout) == ("float", "nchw")
    assert description.normalization == "outside" and not description.letterbox
    config = NetworkConfig.from_dict(read_model_json(folder)["network"])
    assert config.architecture == "resnet-fpn"
    rebuilt = PoseNet(config)
    rebuilt.load_state_dict(network.state_dict())  # the same parameter names as always
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    backend.warm_up(1)
    estimator = NetworkEstimator(description, backend, (128, 192, 3))
    frame = RNG.integers(0, 256, (128, 192, 3), np.uint8)
    keypoints = estimator.estimate([frame])
    batch = network_input(resize_to_input(frame, (96, 64))[None], InputFormat())
    np.testing.assert_allclose(estimator.preprocessor.prepare([frame])[0], batch, atol=1e-5)
    with torch.inference_mode():
        heatmaps, locref = rebuilt.eval()(torch.from_numpy(batch))
    outputs = backend.run(batch)
    np.testing.assert_allclose(outputs[0], heatmaps.numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs[1], locref.numpy(), atol=1e-4)
    assert keypoints.shape == (1, 3, 3) and np.isfinite(keypoints).all()
    backend.close()


def test_a_graph_of_another_input_type_is_refused(tmp_path: Path) -> None:
    folder, _ = _old_model_folder(tmp_path / "old")
    data = json.loads((folder / "model.json").read_text())
    data["input"].update(type="uint8", normalization="in-graph")
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"input is float, model.json says uint8"):
        load_own_model(folder)
    data["input"].update(type="float", layout="nhwc")
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"layout nhwc"):
        load_own_model(folder)


# --- the bundled model ------------------------------------------------------------------------


def test_bundled_model_description_and_network() -> None:
    description = load_own_model(BUNDLED)
    data = read_model_json(BUNDLED)
    config = NetworkConfig.from_dict(data["network"])
    assert config.architecture == "separable-fpn"
    assert description.letterbox and description.normalization == "in-graph"
    assert (description.input_width, description.input_height) == (320, 256)
    assert description.input_type == ("uint8" if config.input.dtype == "uint8" else "float")
    assert description.input_layout == config.input.layout
    command = data["training"]["command"]
    assert command.startswith("python -m deeplabstream.offline.training.train --synthetic")
    assert "--architecture separable-fpn" in data["training"]["command"]
    # Backends warm up with zeros of the description's input (pose.runtime.backends._dummy_batch).
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    backend.warm_up(1)
    backend.close()


# --- the training command with the bundled model's options ------------------------------------


@pytest.fixture(scope="module")
def tiny_separable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A separable, letterboxed, uint8-NHWC model trained for a few steps on small frames."""
    from tests.unit.offline.training.test_training import run_training

    out = tmp_path_factory.mktemp("separable") / "tiny"
    run_training(
        *("--synthetic", "--out", str(out), "--arena-size", "320x240", "--steps", "20"),
        *("--batch-size", "8", "--crop", "96", "--arenas", "4", "--val-frames", "16"),
        *("--test-frames", "16", "--threads", "1", "--seed", "3", "--no-torchscript"),
        *("--architecture", "separable-fpn", "--input-format", "uint8-nhwc", "--letterbox"),
    )
    return out


def test_training_writes_the_input_format(tiny_separable: Path) -> None:
    description = load_own_model(tiny_separable)
    assert (description.input_width, description.input_height) == (160, 128)  # 160x120 inside
    assert description.letterbox and description.input_type == "uint8"
    assert description.input_layout == "nhwc" and description.normalization == "in-graph"
    network = NetworkConfig.from_dict(read_model_json(tiny_separable)["network"])
    assert network.architecture == "separable-fpn" and network.input == INPUT_FORMATS["uint8-nhwc"]
    report = json.loads((tiny_separable / "training_report.json").read_text())
    assert report["export_max_difference"]["onnx"] < 1e-4


def test_estimator_and_training_scorer_agree(tiny_separable: Path) -> None:
    """The live path (NetworkEstimator) gives the keypoints the training's scorer computes."""
    from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
    from deeplabstream.offline.training.metrics import OnnxPredictor
    from deeplabstream.offline.training.train import evaluate_synthetic

    description = load_own_model(tiny_separable)
    arena = SimulatedArena(ArenaParams(width=320, height=240, seed=5))
    frames = []
    for _ in range(4):
        frame = np.empty(arena.frame_shape, np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    config = NetworkConfig.from_dict(read_model_json(tiny_separable)["network"])
    predictor = OnnxPredictor(
        description.model_file, (160, 128), True, 1, input_format=config.input, letterbox=True
    )
    backend = open_backend(description, "onnxruntime", "cpu", threads=1)
    live = NetworkEstimator(description, backend, arena.frame_shape, max_batch=4).estimate(frames)
    backend.close()
    np.testing.assert_allclose(live, predictor.predict(frames), atol=1e-4)
    summary = evaluate_synthetic(tiny_separable, [0], 4, (320, 240), threads=1, timing_frames=5)
    assert summary["frames"] == 4 and set(summary["timing_ms"]) >= {"preprocess", "inference"}
