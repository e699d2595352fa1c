"""Pose core without real models: decoders, transforms, pre-processing, backends, estimator."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from deeplabstream.pose.decoding.lightning import decode_lightning_pose
from deeplabstream.pose.decoding.peaks import decode_argmax
from deeplabstream.pose.model import DECODERS, Decoder, ModelDescription, ModelError, decoder_of
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.preprocess import Preprocessor
from deeplabstream.pose.runtime.transforms import FrameTransform, make_transform

RNG = np.random.default_rng(7)


def _description(**changes) -> ModelDescription:
    values = dict(
        name="test",
        framework="deeplabstream",
        model_file=Path("model.onnx"),
        keypoints=("a", "b", "c"),
        input_height=32,
        input_width=48,
    )
    values.update(changes)
    return ModelDescription(**values)


def _blobs(centres: np.ndarray, h: int, w: int, sigma: float) -> np.ndarray:
    """(N, K, h, w) Gaussian blobs centred on (N, K, 2) x, y in heatmap pixels."""
    rows, cols = np.mgrid[0:h, 0:w]
    dx = cols[None, None] - centres[..., 0, None, None]
    dy = rows[None, None] - centres[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma**2)).astype(np.float32)


# --- decoders ---------------------------------------------------------------------------------

MULTI_ANIMAL_DECODERS = {
    "sleap-bottomup", "sleap-classes", "sleap-topdown", "paf-bottomup", "dlc-assembly", "dlc-dekr"
}  # fmt: skip


def test_every_decoder_is_chosen_by_its_name_in_one_registry() -> None:
    assert set(DECODERS.builtin_names()) == {
        "argmax", "lightning-pose", "sleap-single", *MULTI_ANIMAL_DECODERS
    }  # fmt: skip
    for name in DECODERS.builtin_names():
        decoder = DECODERS.get(name)
        assert isinstance(decoder, Decoder) and decoder is decoder_of(_description(decoder=name))
        assert decoder.multi_animal == (name in MULTI_ANIMAL_DECODERS), name
        assert decoder.convention == ("corners" if name == "lightning-pose" else "centres"), name
    one_animal = _description(decoder="sleap-bottomup")  # max_animals 1: still animals
    assert one_animal.multi_animal and one_animal.animals == 1
    assert not _description().multi_animal


def test_an_unknown_decoder_is_refused_naming_the_known_ones() -> None:
    refused = r"model\.onnx: unknown decoder 'softargmax'; known: argmax, lightning-pose"
    with pytest.raises(ModelError, match=refused):
        _description(decoder="softargmax")  # it never falls through to another decoder


def test_the_argmax_decoder_reads_the_output_kind() -> None:
    heatmaps = _blobs(np.array([[[3.0, 2.0], [5.0, 4.0], [1.0, 6.0]]]), 8, 12, 1.0)
    argmax = DECODERS.get("argmax")
    points, identities = argmax.decode([heatmaps], _description(stride=4.0))
    assert identities is None
    np.testing.assert_array_equal(points, decode_argmax(heatmaps, 4.0))
    with pytest.raises(ModelError, match=r"heatmaps\+locref needs two outputs"):
        argmax.decode([heatmaps], _description(output_kind="heatmaps+locref"))
    coordinates = np.arange(9, dtype=np.float32).reshape(1, 9)
    points, _ = argmax.decode([coordinates], _description(output_kind="coordinates"))
    assert points.shape == (1, 3, 3) and points.dtype == np.float64


def test_argmax_finds_sub_pixel_peaks() -> None:
    h, w, stride = 24, 32, 8.0
    centres = np.stack(
        [RNG.uniform(2, w - 3, (4, 5)), RNG.uniform(2, h - 3, (4, 5))], axis=-1
    )  # heatmap pixels, not on the grid
    heatmaps = _blobs(centres, h, w, sigma=1.5)
    keypoints = decode_argmax(heatmaps, stride)
    expected = centres * stride + (stride - 1) / 2  # heatmap pixel centre -> input pixels
    assert np.abs(keypoints[..., :2] - expected).max() < 0.1 * stride
    np.testing.assert_allclose(keypoints[..., 2], heatmaps.max(axis=(2, 3)), rtol=1e-6)


def test_argmax_with_locref_is_exact() -> None:
    n, k, h, w, stride, std = 2, 3, 10, 12, 4.0, 7.2801
    heatmaps = np.zeros((n, k, h, w), np.float32)
    locref = np.zeros((n, 2 * k, h, w), np.float32)
    rows, cols = RNG.integers(0, h, (n, k)), RNG.integers(0, w, (n, k))
    offsets = RNG.uniform(-2, 2, (n, k, 2)).astype(np.float32)
    for i in range(n):
        for j in range(k):
            heatmaps[i, j, rows[i, j], cols[i, j]] = 0.9
            locref[i, 2 * j : 2 * j + 2, rows[i, j], cols[i, j]] = offsets[i, j]
    keypoints = decode_argmax(heatmaps, stride, locref=locref, locref_std=std)
    x = cols * stride + (stride - 1) / 2 + offsets[..., 0].astype(np.float64) * std
    y = rows * stride + (stride - 1) / 2 + offsets[..., 1].astype(np.float64) * std
    np.testing.assert_allclose(keypoints[..., 0], x, atol=1e-5)
    np.testing.assert_allclose(keypoints[..., 1], y, atol=1e-5)
    np.testing.assert_allclose(keypoints[..., 2], 0.9, atol=1e-6)


def _torch_lightning_decode(heatmaps: np.ndarray, factor: int) -> np.ndarray:
    """Lightning Pose's rules written with torch (float64), to check the numpy version."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    maps = torch.from_numpy(heatmaps.astype(np.float64))
    n, k = maps.shape[:2]
    g = torch.tensor([1.0, 4, 6, 4, 1], dtype=torch.float64)
    kernel = (g[:, None] * g[None, :] / 256).expand(k, 1, 5, 5)
    for _ in range(factor):
        maps = F.interpolate(maps, scale_factor=2, mode="bicubic", align_corners=False)
        maps = F.conv2d(maps, kernel, padding=2, groups=k)
    h, w = maps.shape[2:]
    p = torch.softmax(maps.reshape(n, k, -1) * 1000, dim=-1).reshape(n, k, h, w)
    x = (p.sum(2) * torch.arange(w)).sum(-1)
    y = (p.sum(3) * torch.arange(h)).sum(-1)
    padded = F.pad(p, (2, 2, 2, 2))
    conf = torch.stack(
        [
            torch.stack(
                [padded[i, j, int(y[i, j]) :][:5, int(x[i, j]) :][:, :5].sum() for j in range(k)]
            )
            for i in range(n)
        ]
    )
    shift = 2.0**factor / 2 - 0.5
    return np.stack([x.numpy() - shift, y.numpy() - shift, conf.numpy()], axis=-1)


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_lightning_decoder_follows_its_rules(factor: int) -> None:
    h, w = 16, 12
    centres = np.stack([RNG.uniform(1, w - 2, (2, 3)), RNG.uniform(1, h - 2, (2, 3))], axis=-1)
    blobs = _blobs(centres, h, w, sigma=1.0)
    heatmaps = blobs / blobs.sum(axis=(2, 3), keepdims=True)  # soft-maxed maps, like LP's
    heatmaps[0, 0] = 1.0 / (h * w)  # a flat map: low likelihood, position mid-map
    heatmaps[1, 1] = 0.0
    heatmaps[1, 1, 0, 0] = 1.0  # a peak in the corner: window cut by the border
    ours = decode_lightning_pose(heatmaps, factor)
    theirs = _torch_lightning_decode(heatmaps, factor)
    np.testing.assert_allclose(ours[..., :2], theirs[..., :2], atol=2e-4)
    np.testing.assert_allclose(ours[..., 2], theirs[..., 2], atol=1e-5)
    # A peak at heatmap pixel (j, i) lands on 2**factor * (j, i): centre (2**f - 1) / 2 minus
    # Lightning Pose's shift of 2**f / 2 - 0.5. Its softmax of map * 1000 is nearly a hard
    # argmax of the upsampled map, whose pixels are model pixels: within half a pixel.
    good = np.ones((2, 3), bool)
    good[0, 0] = good[1, 1] = False
    assert np.abs(ours[good][:, :2] - 2.0**factor * centres[good]).max() < 0.5


# --- transforms -------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["centres", "corners"])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("crop", [None, (10, 6, 100, 60)])
def test_transform_round_trip(convention: str, flip: bool, crop: tuple | None) -> None:
    transform = make_transform((120, 160), (48, 64), crop=crop, flip=flip, convention=convention)
    points = np.column_stack([RNG.uniform(-5, 165, 50), RNG.uniform(-5, 125, 50), RNG.random(50)])
    there = transform.to_input(points)
    back = transform.to_frame(there)
    np.testing.assert_allclose(back, points, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(there[:, 2], points[:, 2])  # likelihood untouched


def test_transform_conventions() -> None:
    centres = make_transform((100, 200), (50, 100), flip=True)
    # Pixel centres: the centre of the first frame column is the centre of the last input one.
    np.testing.assert_allclose(centres.to_input(np.array([[0.0, 0.0]])), [[99.25, -0.25]])
    np.testing.assert_allclose(centres.to_frame(np.array([[99.0, 24.5]])), [[0.5, 49.5]])
    flip_only = FrameTransform(1.0, 1.0, flip_width=200.0)
    np.testing.assert_allclose(flip_only.to_input(np.array([[0.0, 3.0]])), [[199.0, 3.0]])
    # Lightning Pose: x_frame = x * W_frame / W_input; its flip is x -> W - x.
    corners = make_transform((406, 396), (256, 128), convention="corners")
    np.testing.assert_allclose(corners.to_frame(np.array([[64.0, 128.0]])), [[198.0, 203.0]])
    flipped = make_transform((406, 396), (256, 128), flip=True, convention="corners")
    np.testing.assert_allclose(flipped.to_frame(np.array([[64.0, 128.0]])), [[198.0, 203.0]])
    np.testing.assert_allclose(flipped.to_frame(np.array([[0.0, 0.0]])), [[396.0, 0.0]])


# --- pre-processing ---------------------------------------------------------------------------


def _torch_input(frame_rgb: np.ndarray, height: int, width: int, mean, std) -> np.ndarray:
    """Lightning Pose's video pre-processing, written with torch."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    x = torch.from_numpy(frame_rgb).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return x[0].numpy()


def test_bilinear_float_matches_torch_and_handles_mono_gray_flip_fp16() -> None:
    description = _description()
    frames = [RNG.integers(0, 256, (90, 70, 3), np.uint8) for _ in range(3)]
    pre = Preprocessor(description, (90, 70, 3), max_batch=4)
    batch, transforms = pre.prepare(frames, [False, True, False])
    assert batch.shape == (3, 3, 32, 48) and batch.dtype == np.float32
    for i, frame in enumerate(frames):
        rgb = frame[:, ::-1] if i == 1 else frame
        expected = _torch_input(
            np.ascontiguousarray(rgb[..., ::-1]), 32, 48, description.mean, description.std
        )
        # OpenCV and torch compute the sampling positions in float32 in different ways: up to
        # 4e-6 of the 0..1 range apart (a 1000th of a grey level), 2e-5 after the division by std.
        np.testing.assert_allclose(batch[i], expected, atol=3e-5)
    assert transforms[1].flip_width == 70 and transforms[0].flip_width is None

    mono = [f[..., 1].copy() for f in frames]
    replicated = Preprocessor(description, (90, 70), 4).prepare(mono)[0]
    as_bgr = Preprocessor(description, (90, 70, 3), 4).prepare(
        [np.repeat(m[..., None], 3, axis=2) for m in mono]
    )[0]
    np.testing.assert_array_equal(replicated, as_bgr)

    gray = _description(color_order="gray", mean=(0.5,), std=(0.25,))
    gray_batch = Preprocessor(gray, (90, 70, 3), 4).prepare(frames)[0]
    luma = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    small = cv2.resize(luma, (48, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(gray_batch[0, 0], (small - 0.5) / 0.25, atol=1e-6)

    half_pre = Preprocessor(_description(precision="fp16"), (90, 70, 3), 4)
    half = half_pre.prepare(frames, [False, True, False])[0]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, batch, atol=1e-2)


@pytest.mark.parametrize(
    ("method", "flag"), [("bicubic-uint8", cv2.INTER_CUBIC), ("area", cv2.INTER_AREA)]
)
def test_uint8_resizes(method: str, flag: int) -> None:
    description = _description(resize=method)
    frame = RNG.integers(0, 256, (90, 70, 3), np.uint8)
    batch = Preprocessor(description, frame.shape, 1).prepare([frame])[0]
    small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (48, 32), interpolation=flag)
    expected = (small.astype(np.float32) / 255 - description.mean) / description.std
    np.testing.assert_allclose(batch[0], expected.transpose(2, 0, 1), atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("crop", [None, (8, 4, 64, 40)])
def test_preprocessing_and_transform_agree(flip: bool, crop: tuple | None) -> None:
    """A blob in the frame lands in the input where the transform says, flipped or cropped."""
    description = _description(input_height=40, input_width=64)
    rows, cols = np.mgrid[0:80, 0:120]
    x, y = 51.3, 27.6
    frame = (250 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 4.0**2))).astype(np.uint8)
    pre = Preprocessor(description, frame.shape, 1, crop=crop)
    batch, (transform,) = pre.prepare([frame], [flip])
    image = batch[0, 0].astype(np.float64)
    image -= image.min()
    in_rows, in_cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    centroid = [(image * in_cols).sum() / image.sum(), (image * in_rows).sum() / image.sum()]
    expected = transform.to_input(np.array([[x, y]]))[0]
    np.testing.assert_allclose(centroid, expected, atol=0.1)


def test_preprocessor_rejects_wrong_frames() -> None:
    pre = Preprocessor(_description(), (90, 70, 3), 2)
    with pytest.raises(ValueError, match="expected"):
        pre.prepare([np.zeros((90, 71, 3), np.uint8)])
    with pytest.raises(ValueError, match="1 to 2 frames"):
        pre.prepare([np.zeros((90, 70, 3), np.uint8)] * 3)
    with pytest.raises(ValueError, match="does not fit"):
        Preprocessor(_description(), (90, 70, 3), 2, crop=(0, 0, 80, 10))


# --- backends and estimator -------------------------------------------------------------------


def _tiny_heatmap_net():
    """A small fully convolutional net: sigmoid heatmaps (stride 4) and locref offsets."""
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.heatmaps = torch.nn.Conv2d(8, 3, 4, stride=4)
            self.locref = torch.nn.Conv2d(8, 6, 4, stride=4)

        def forward(self, x):
            f = torch.relu(self.features(x))
            return torch.sigmoid(self.heatmaps(f)), self.locref(f)

    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny net as ONNX and TorchScript files."""
    import torch

    folder = tmp_path_factory.mktemp("tiny")
    net = _tiny_heatmap_net()
    example = torch.zeros(2, 3, 32, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and the legacy exporter are deprecated
        torch.onnx.export(
            net,
            (example,),
            str(folder / "tiny.onnx"),
            dynamo=False,
            input_names=["images"],
            output_names=["heatmaps", "locref"],
            dynamic_axes={"images": {0: "batch"}},
        )
        torch.jit.save(torch.jit.trace(net, example), str(folder / "tiny.pt"))
    return folder / "tiny.onnx", folder / "tiny.pt"


def test_onnxruntime_and_pytorch_agree(tiny_models: tuple[Path, Path]) -> None:
    onnx_file, torchscript_file = tiny_models
    frames = [RNG.integers(0, 256, (60, 80, 3), np.uint8) for _ in range(5)]
    flips = [False, True, False, False, True]
    results = {}
    for backend, path in (("onnxruntime", onnx_file), ("pytorch", torchscript_file)):
        description = _description(
            model_file=path, output_kind="heatmaps+locref", output_names=("heatmaps", "locref")
        )
        runner = open_backend(description, backend, "cpu", threads=1)
        runner.warm_up(2)
        estimator = NetworkEstimator(description, runner, frames[0].shape, max_batch=2)
        results[backend] = estimator.estimate(frames, flips)
        assert set(estimator.last_timings) == {"preprocess", "inference", "decode"}
        runner.close()
    np.testing.assert_allclose(results["onnxruntime"], results["pytorch"], atol=1e-4)
    assert results["pytorch"].shape == (5, 3, 3)


class _FakeBackend:
    """Returns fixed outputs; records the batch sizes it was given."""

    provider = "fake"

    def __init__(self, make_output) -> None:
        self.make_output = make_output
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.batches.append(len(batch))
        return [self.make_output(len(batch))]

    def warm_up(self, batch_size: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def test_estimator_maps_coordinates_and_pads_fixed_batches() -> None:
    description = _description(output_kind="coordinates", batch_size=4)
    points = np.array([[10.0, 5.0, 0.9], [0.0, 0.0, 0.5], [47.0, 31.0, 0.1]])
    backend = _FakeBackend(lambda n: np.repeat(points[None], n, axis=0).astype(np.float32))
    estimator = NetworkEstimator(description, backend, (64, 96, 3), max_batch=16)
    frames = [np.zeros((64, 96, 3), np.uint8)] * 6
    keypoints = estimator.estimate(frames, [False] * 5 + [True])
    assert backend.batches == [4, 4]  # fixed batch size: 4 + 4 (two slots padding)
    # Frames are twice the input size: centres convention x -> (x + 0.5) * 2 - 0.5.
    expected = points.copy()
    expected[:, :2] = (points[:, :2] + 0.5) * 2 - 0.5
    np.testing.assert_allclose(keypoints[0], expected, atol=1e-5)
    expected[:, 0] = 95 - expected[:, 0]  # flipped frame: x -> (W - 1) - x
    np.testing.assert_allclose(keypoints[5], expected, atol=1e-5)


def test_backend_errors(tiny_models: tuple[Path, Path], tmp_path: Path) -> None:
    import onnxruntime
    import torch

    onnx_file, torchscript_file = tiny_models
    description = _description(model_file=onnx_file)
    with pytest.raises(ModelError, match="not found"):
        open_backend(_description(model_file=tmp_path / "missing.onnx"))
    for device, provider in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "Tensorrt")):
        if any(p.startswith(provider) for p in onnxruntime.get_available_providers()):
            continue
        with pytest.raises(ModelError, match=rf"no {provider}.*onnxruntime-gpu"):
            open_backend(description, "onnxruntime", device)
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            open_backend(_description(model_file=torchscript_file), "pytorch", "cuda")
    with pytest.raises(ModelError, match=r"an ONNX graph.*BACKEND = onnxruntime"):
        open_backend(description, "pytorch")
    with pytest.raises(ModelError, match="tensorrt"):
        open_backend(_description(model_file=torchscript_file), "pytorch", "tensorrt")
    with pytest.raises(ModelError, match=r"needs an \.onnx"):
        open_backend(_description(model_file=torchscript_file), "onnxruntime")
    with pytest.raises(ModelError, match="no input named"):
        open_backend(_description(model_file=onnx_file, input_name="image"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        open_backend(_description(model_file=garbage), "pytorch")


class _RunsCodeWhenUnpickled:
    """What a malicious ``torch.save(module)`` file does: code runs as it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "unpickled"))


def test_a_pickled_module_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "ran.txt"
    pickled = tmp_path / "whole_module.pt"
    torch.save({"module": _RunsCodeWhenUnpickled(marker)}, pickled)
    with pytest.raises(ModelError, match="never loaded"):
        open_backend(_description(model_file=pickled), "pytorch")
    assert not marker.exists(), "the file's code ran"


def test_crop_equals_the_cropped_frame() -> None:
    frame = RNG.integers(0, 256, (90, 70, 3), np.uint8)
    cropped = Preprocessor(_description(), frame.shape, 1, crop=(5, 7, 50, 40))
    whole = Preprocessor(_description(), (40, 50, 3), 1)
    part = np.ascontiguousarray(frame[7:47, 5:55])
    np.testing.assert_array_equal(
        cropped.prepare([frame], [True])[0], whole.prepare([part], [True])[0]
    )
