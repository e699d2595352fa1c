"""Lightning Pose checkpoints with EfficientNet and DINO ViT backbones.

Two parts:

- everywhere: the rebuilt trunks have torchvision's / Hugging Face's sizes and names, and a
  checkpoint written here (random weights, Lightning Pose's layout) loads, converts to ONNX and
  runs with the same numbers on both backends; what is not rebuilt is refused by name;
- where the models Lightning Pose 2.4.3 made are present (``/work/fw/lp-backbones``, or
  ``$DEEPLABSTREAM_LP_BACKBONES``; too large for the repository): coordinates and likelihoods equal
  ``litpose predict``'s on the shared clip and on labelled images (Lightning Pose's predictions
  are in ``tests/fixtures/lp_backbones_mirror_mouse``, whose README says how all was made).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deeplabstream.offline.replay.images import ImageSet, predict
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.lightning_ckpt import build_module, read_checkpoint
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.efficientnet import EfficientNet
from deeplabstream.pose.networks.lightning_backbones import BackboneHeatmapTracker
from deeplabstream.pose.networks.vit import DinoBackbone
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.files import read_video
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lp_backbones_mirror_mouse"
IMAGES = PROJECT_ROOT / "tests" / "fixtures" / "lp_context_mirror_mouse" / "labeled-data"
ENV = "DEEPLABSTREAM_LP_BACKBONES"
DEFAULT_MODELS = Path("/work/fw/lp-backbones")
SHARED_CONFIG = "lp-mirror-mouse-resnet18/model/config.yaml"
CLIP = "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4"
XY_TOLERANCE = 0.01  # px, fp32 (issue 36)
LIKELIHOOD_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


# --- the trunks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parameters", "tensors", "channels"),
    [  # torchvision's `features` of each model: parameters and state-dict entries
        ("efficientnet_b0", 4_007_548, 358, 1280),
        ("efficientnet_b1", 6_513_184, 506, 1280),
        ("efficientnet_b2", 7_700_994, 506, 1408),
    ],
)
def test_efficientnets_have_torchvisions_size_and_names(
    name: str, parameters: int, tensors: int, channels: int
) -> None:
    trunk = EfficientNet(name)
    sequential = trunk.as_sequential().eval()
    assert sum(p.numel() for p in sequential.parameters()) == parameters
    names = list(sequential.state_dict())
    assert len(names) == tensors and trunk.out_channels == channels
    # stem, the first stage's block (no expansion), the head: torchvision's indices
    assert {"0.0.0.weight", "0.1.0.block.1.fc1.weight", "0.8.1.running_var"} <= set(names)
    with torch.inference_mode():
        assert sequential(torch.zeros(1, 3, 256, 128)).shape == (1, channels, 8, 4)


@pytest.mark.parametrize(("name", "parameters"), [("vits_dino", 21_665_664)])
def test_dino_vit_has_hugging_faces_size_and_names(name: str, parameters: int) -> None:
    vit = DinoBackbone(name, (128, 128)).eval()
    assert sum(p.numel() for p in vit.parameters()) == parameters
    names = set(vit.state_dict())
    assert "vision_encoder.layers.11.attention.q_proj.weight" in names
    assert "vision_encoder.embeddings.position_embeddings" in names
    assert "vision_encoder.grid_positions" not in names  # derived, not saved
    with torch.inference_mode():
        assert vit(torch.zeros(1, 3, 128, 128)).shape == (1, 384, 8, 8)


def test_vit_positions_are_resized_after_loading() -> None:
    """The 14 x 14 pretrained grid is resized to the input's (8 x 8) when weights load."""
    vit = DinoBackbone("vits_dino", (128, 128))
    weights = vit.state_dict()
    weights["vision_encoder.embeddings.position_embeddings"] = torch.randn(1, 197, 384)
    vit.load_state_dict(weights)
    grid = vit.vision_encoder.grid_positions
    assert grid.shape == (1, 65, 384)
    assert torch.equal(grid[:, 0], weights["vision_encoder.embeddings.position_embeddings"][:, 0])
    square = DinoBackbone("vits_dino", (224, 224))
    square.load_state_dict(weights)
    assert torch.equal(
        square.vision_encoder.grid_positions,
        weights["vision_encoder.embeddings.position_embeddings"],
    )


# --- a checkpoint in Lightning Pose's layout, written here ---------------------------------------


def _model_folder(
    tmp_path: Path, backbone: str, size: tuple[int, int], weights: dict | None = None, **change
) -> Path:
    """A model folder: the shared model's config with this backbone, a random-weight checkpoint."""
    config = yaml.safe_load(shared_data(SHARED_CONFIG).read_text())
    config["model"]["backbone"] = backbone
    config["data"]["image_resize_dims"] = {"height": size[0], "width": size[1]}
    for dotted, value in change.items():
        section, key = dotted.split("__")
        config[section][key] = value
    folder = tmp_path / backbone
    checkpoints = folder / "tb_logs" / "run" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if weights is None:
        torch.manual_seed(0)
        network = BackboneHeatmapTracker(backbone, 17, 2, size)
        for module in network.modules():  # BatchNorm statistics other than 0 / 1
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        weights = network.state_dict()
    torch.save(
        {"state_dict": weights, "pytorch-lightning_version": "2.5.6"}, checkpoints / "best.ckpt"
    )
    return folder


@pytest.mark.slow  # two conversions to ONNX: tens of seconds on a small CPU
@pytest.mark.parametrize(
    ("backbone", "size"), [("efficientnet_b0", (256, 128)), ("vits_dino", (128, 128))]
)
def test_a_checkpoint_converts_and_runs_alike_on_both_backends(
    tmp_path: Path, cache: Path, backbone: str, size: tuple[int, int]
) -> None:
    description = load_model(_model_folder(tmp_path, backbone, size))
    assert (description.input_height, description.input_width) == size
    assert description.stride == 4 and len(description.keypoints) == 17
    frames = [np.random.default_rng(i).integers(0, 255, (406, 396, 3), np.uint8) for i in range(3)]
    results = {}
    for backend in ("onnxruntime", "pytorch"):
        opened = open_backend(description, backend, "cpu", threads=1)
        try:
            results[backend] = NetworkEstimator(description, opened, frames[0].shape, 4).estimate(
                frames
            )
        finally:
            opened.close()
    delta = np.abs(results["onnxruntime"] - results["pytorch"])
    assert delta[..., :2].max() < XY_TOLERANCE and delta[..., 2].max() < LIKELIHOOD_TOLERANCE


@pytest.mark.parametrize(
    ("backbone", "size", "change", "expected"),
    [
        (  # context models run with these backbones (test_pose_lightning_context_backbones.py)
            "vitb_sam",
            (128, 128),
            {"model__model_type": "heatmap_mhcrnn"},
            r"`heatmap_mhcrnn` model with backbone vitb_sam, which this program cannot run",
        ),
        (
            "vits_dino",
            (256, 128),
            {"model__model_type": "heatmap_mhcrnn"},
            r"image_resize_dims 256 x 128; Lightning Pose reshapes a ViT's tokens to a square",
        ),
        (
            "vits_dino",
            (256, 128),
            {},
            r"image_resize_dims 256 x 128; Lightning Pose reshapes a ViT's tokens to a square",
        ),
        (
            "vits_dino",
            (128, 128),
            {"data__downsample_factor": 3},
            r"downsample_factor 3; a ViT's heatmap head has no upsampling layer left",
        ),
        (  # with why: Lightning Pose itself could not build it offline
            "vitb_sam",
            (128, 128),
            {},
            r"backbone vitb_sam, which this program cannot run.*could not build them without "
            r"downloading their weights \(\"OSError: We couldn't connect to",
        ),
        ("vits_dinov2", (128, 128), {}, r"backbone vits_dinov2, which this program cannot run"),
    ],
)
def test_what_is_not_rebuilt_is_refused_by_name(
    tmp_path: Path, backbone: str, size: tuple[int, int], change: dict, expected: str
) -> None:
    folder = _model_folder(tmp_path, backbone, size, weights={}, **change)
    with pytest.raises(ModelError, match=expected):
        load_model(folder)


def test_weights_of_another_backbone_are_named(tmp_path: Path) -> None:
    weights = BackboneHeatmapTracker("efficientnet_b0", 17, 2, (256, 128)).state_dict()
    folder = _model_folder(tmp_path, "efficientnet_b1", (256, 128), weights=weights)
    with pytest.raises(ModelError, match=r"do not fit a efficientnet_b1 heatmap tracker"):
        build_module(read_checkpoint(folder))


# --- the models Lightning Pose made -------------------------------------------------------------

# The model folders under the models root (and in FIXTURE): effb0_bn is Lightning Pose's
# efficientnet_b0 model with its BatchNorm statistics recomputed (the model as trained gives the
# same heatmaps for every frame: see the README).
MODELS = ("effb0_bn", "vits_dino")


def _lightning_folder(name: str) -> Path:
    return Path(os.environ.get(ENV, DEFAULT_MODELS)) / name


def _lightning_checkpoint(name: str) -> Path:
    """The checkpoint (the folder would run Lightning Pose's own export, which it also holds)."""
    folder = _lightning_folder(name)
    found = sorted((folder / "tb_logs").rglob("*.ckpt"))
    if not found:
        pytest.skip(
            f"Lightning Pose's {name} model is not here ({folder}; set {ENV}): see "
            f"{FIXTURE / 'README.md'} for how it was made"
        )
    return found[0]


def _predictions(
    name: str, relative: str, keypoints: tuple[str, ...], run: str = "litpose_predict_eager"
) -> tuple[np.ndarray, list]:
    path = FIXTURE / name / run / relative
    table = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    values = table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    return values, list(table.index)


def _differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    delta = np.abs(ours - theirs)
    return {"xy_px": float(delta[..., :2].max()), "likelihood": float(delta[..., 2].max())}


@pytest.fixture(scope="module", params=MODELS)
def lightning_model(request: pytest.FixtureRequest, cache: Path) -> tuple[str, ModelDescription]:
    return request.param, load_model(_lightning_checkpoint(request.param))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("backend", "step"),
    [("onnxruntime", 1), ("pytorch", 5)],  # eager PyTorch is slow on a small CPU: every 5th frame
)
def test_clip_equals_litpose_predict(
    lightning_model: tuple[str, ModelDescription], backend: str, step: int, record_property
) -> None:
    name, description = lightning_model
    frames = read_video(shared_data(CLIP))[::step]
    opened = open_backend(description, backend, "cpu", threads=1)
    try:
        ours = NetworkEstimator(description, opened, frames[0].shape, 8).estimate(frames)
    finally:
        opened.close()
    theirs, index = _predictions(name, "video_preds/test_vid_first100.csv", description.keypoints)
    assert index == list(range(100))
    diff = _differences(ours, theirs[::step])
    record_property(f"lp_{name}_clip_{backend}", diff)
    print(f"{name}, {len(frames)} clip frames, {backend} vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_labelled_images_equal_litpose_predict(
    lightning_model: tuple[str, ModelDescription], record_property
) -> None:
    """Through the image analyser's path (``utils/ImageAnalyzer.py``)."""
    name, description = lightning_model
    theirs, index = _predictions(
        name, "image_preds/CollectedData.csv/predictions.csv", description.keypoints
    )
    rows = [row for row, image in enumerate(index) if (IMAGES / Path(image).name).is_file()]
    theirs, index = theirs[rows], [index[row] for row in rows]
    paths = tuple(IMAGES / Path(image).name for image in index)
    image_set = ImageSet(IMAGES.parent, paths, tuple(index))
    ours = predict(image_set, description, lambda d: open_backend(d, "onnxruntime", "cpu", 2))
    diff = _differences(ours[:, 0], theirs)
    record_property(f"lp_{name}_images", diff)
    print(f"{name}, {len(paths)} labelled images vs litpose predict (eager): {diff}")
    assert len(paths) >= 10
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_inspect_names_the_backbone(
    lightning_model: tuple[str, ModelDescription], cache: Path
) -> None:
    description = lightning_model[1]
    assert description.source_file is not None
    backbone = read_checkpoint(description.source_file, mmap=True).backbone
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplabstream.pose.inspect",
            str(description.source_file),
            "--frame",
            str(shared_data(CLIP)),
            "--frame-index",
            "7",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backbone {backbone}" in result.stdout and "reproduces the network" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", MODELS)
def test_lightning_poses_own_export_runs_with_its_numbers(name: str, record_property) -> None:
    """``litpose export --runtime onnx --onnx-precision fp32`` through the export's path."""
    folder = _lightning_folder(name)
    if not list((folder / "exports_onnx").glob("*.onnx")):
        pytest.skip(f"Lightning Pose's export of its {name} model is not here ({folder})")
    description = load_model(folder)
    assert description.model_file.parent.name == "exports_onnx" and description.source_file is None
    frames = read_video(shared_data(CLIP))
    opened = open_backend(description, "onnxruntime", "cpu", threads=1)
    try:  # a ViT's export takes one image at a time (see pose.formats.lightning): batches of 1
        ours = NetworkEstimator(description, opened, frames[0].shape, 8).estimate(frames)
    finally:
        opened.close()
    # Lightning Pose's own prediction through its export where it has one (it fails on a ViT's)
    run = "litpose_predict_onnx_fp32"
    if not (FIXTURE / name / run).is_dir():
        run = "litpose_predict_eager"
    theirs, _ = _predictions(name, "video_preds/test_vid_first100.csv", description.keypoints, run)
    diff = _differences(ours, theirs)
    record_property(f"lp_{name}_export_clip", diff)
    print(f"{name}, Lightning Pose's fp32 export, 100 clip frames vs {run}: {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", MODELS)
def test_video_analyzer_replay_equals_litpose_predict(
    name: str, tmp_path: Path, cache: Path
) -> None:
    """``utils/VideoAnalyzer.py --fast``: the live pipeline on every clip frame, from the .ckpt."""
    checkpoint = _lightning_checkpoint(name)
    result = run_cli(
        str(shared_data(CLIP)),
        "--fast",
        "--no-experiment",
        "--model",
        str(checkpoint),
        "--output-dir",
        str(tmp_path),
        script="utils/VideoAnalyzer.py",
        timeout=800,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = tmp_path / "test_vid_first100" / "test_vid_first100.pose.csv"
    ours = pd.read_csv(table, header=[0, 1, 2], index_col=0)
    assert ours.index.tolist() == list(range(100))  # every frame, in order
    keypoints = tuple(ours.columns.get_level_values(1)[::3])
    theirs, _ = _predictions(name, "video_preds/test_vid_first100.csv", keypoints)
    diff = _differences(ours.to_numpy().reshape(100, -1, 3), theirs)
    print(f"{name}, VideoAnalyzer --fast, 100 frames vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_inspect_names_the_backbone_of_lightning_poses_export(cache: Path) -> None:
    folder = _lightning_folder("vits_dino")
    if not list((folder / "exports_onnx").glob("*.onnx")):
        pytest.skip(f"Lightning Pose's export of its vits_dino model is not here ({folder})")
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(folder)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lightning Pose ONNX export" in result.stdout
    assert "ONNX graph, backbone vits_dino, outputs heatmaps" in result.stdout
