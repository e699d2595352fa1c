"""Lightning Pose context models (``heatmap_mhcrnn``) with EfficientNet and DINO ViT backbones.

Two parts:

- everywhere: a context checkpoint written here (random weights, Lightning Pose's layout) with
  each backbone loads, converts to its two graphs (backbone per frame, heads on five frames'
  features) and gives, through them, the rebuilt network's own heatmaps and keypoints;
- where the models Lightning Pose 2.4.3 made are present (``/work/fw/lp-context-backbones``, or
  ``$DEEPLABSTREAM_LP_CONTEXT_BACKBONES``; too large for the repository): coordinates and
  likelihoods equal ``litpose predict``'s on the shared clip (offline, frames t-2 .. t+2) and on
  labelled images (their neighbouring files), and the live causal run and a replay use the
  camera's own past frames. Lightning Pose's predictions are in
  ``tests/fixtures/lp_context_backbones_mirror_mouse``, whose README says how all was made.
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
from deeplabstream.pose.formats.lightning_context import (
    combine_heads,
    context_of,
    context_summary,
)
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.networks.lightning_backbones import context_tracker
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator
from tests.support.files import read_video
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lp_context_backbones_mirror_mouse"
IMAGES = PROJECT_ROOT / "tests" / "fixtures" / "lp_context_mirror_mouse" / "labeled-data"
# The labelled images of IMAGES whose context files (2 below to 2 above) are all there.
LABELLED = ("labeled-data/img01.png", "labeled-data/img45.png", "labeled-data/img90.png")
ENV = "DEEPLABSTREAM_LP_CONTEXT_BACKBONES"
DEFAULT_MODELS = Path("/work/fw/lp-context-backbones")
SHARED_CONFIG = "lp-mirror-mouse-resnet18/model/config.yaml"
CLIP = "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4"
XY_TOLERANCE = 0.01  # px, fp32 (issue 36)
LIKELIHOOD_TOLERANCE = 1e-4
# backbone -> (input size H x W, one frame's features C x h x w)
BACKBONES = {
    "efficientnet_b0": ((256, 128), (1280, 8, 4)),
    "vits_dino": ((128, 128), (384, 8, 8)),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def _estimator(description: ModelDescription, shape: tuple[int, ...]) -> ContextEstimator:
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    return ContextEstimator(description, backend, shape, max_batch=8)


def _causal_windows(frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The live windows of a camera that analyses every frame: t-2, t-1, t, t, t."""
    return [
        [frames[max(t - 2, 0)], frames[max(t - 1, 0)], *[frames[t]] * 3] for t in range(len(frames))
    ]


# --- a checkpoint in Lightning Pose's layout, written here ---------------------------------------


def _random_context_model(tmp_path: Path, backbone: str) -> tuple[Path, torch.nn.Module]:
    """A context model folder with random weights (BatchNorm statistics other than 0 / 1)."""
    size = BACKBONES[backbone][0]
    config = yaml.safe_load(shared_data(SHARED_CONFIG).read_text())
    config["model"]["backbone"] = backbone
    config["model"]["model_type"] = "heatmap_mhcrnn"
    config["data"]["image_resize_dims"] = {"height": size[0], "width": size[1]}
    folder = tmp_path / backbone
    checkpoints = folder / "tb_logs" / "run" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    network = context_tracker(backbone, 17, 2, size).eval()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    state = {"state_dict": network.state_dict(), "pytorch-lightning_version": "2.5.6"}
    torch.save(state, checkpoints / "best.ckpt")
    return folder, network


@pytest.mark.slow  # two conversions to ONNX per backbone: tens of seconds on a small CPU
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_a_context_checkpoint_runs_as_its_network(
    tmp_path: Path, cache: Path, backbone: str
) -> None:
    folder, network = _random_context_model(tmp_path, backbone)
    description = load_model(folder)
    stages = context_of(description)
    assert stages is not None and stages.feature_shape == BACKBONES[backbone][1]
    assert context_summary(description)["context"]["live_mode"] == "causal"
    frames = [np.random.default_rng(i).integers(0, 255, (406, 396, 3), np.uint8) for i in range(5)]
    estimator = _estimator(description, frames[0].shape)
    images = estimator.preprocessor.prepare(frames)[0].copy()  # (5, 3, H, W), as the graphs get
    features = estimator.backend.run(images)[0][:5]
    ours = estimator.heads.run(features.reshape(1, -1, *features.shape[2:]))[:2]
    with torch.no_grad():
        theirs = [m.numpy() for m in network(torch.from_numpy(images)[None])]
    assert max(float(np.abs(o - t).max()) for o, t in zip(ours, theirs, strict=True)) < 1e-5
    d = description.downsample_factor
    delta = np.abs(combine_heads(*ours, d) - combine_heads(*theirs, d))  # model pixels
    assert delta[..., :2].max() <= XY_TOLERANCE and delta[..., 2].max() <= LIKELIHOOD_TOLERANCE


# --- the models Lightning Pose made -------------------------------------------------------------

# effb0_ctx_bn is Lightning Pose's efficientnet_b0 context model with its BatchNorm statistics
# recomputed (as trained, it gives the same heatmaps for every frame: see the README).
MODELS = ("effb0_ctx_bn", "vits_dino_ctx")


def _lightning_checkpoint(name: str) -> Path:
    folder = Path(os.environ.get(ENV, DEFAULT_MODELS)) / name
    found = sorted((folder / "tb_logs").rglob("*.ckpt"))
    if not found:
        pytest.skip(
            f"Lightning Pose's {name} model is not here ({folder}; set {ENV}): see "
            f"{FIXTURE / 'README.md'} for how it was made"
        )
    return found[0]


def _predictions(name: str, relative: str, keypoints: tuple[str, ...]) -> tuple[np.ndarray, list]:
    table = pd.read_csv(
        FIXTURE / name / "litpose_predict_eager" / relative, header=[0, 1, 2], index_col=0
    )
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


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_video(shared_data(CLIP))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_video_offline_equals_litpose_predict(
    lightning_model: tuple[str, ModelDescription], frames: list[np.ndarray], record_property
) -> None:
    """``python -m deeplabstream.pose.context_video``'s path: frames t-2 .. t+2."""
    name, description = lightning_model
    ours = _estimator(description, frames[0].shape).predict_video(frames)
    theirs, index = _predictions(name, "video_preds/test_vid_first100.csv", description.keypoints)
    assert index == list(range(len(frames)))
    diff = _differences(ours, theirs)
    record_property(f"lp_{name}_video_vs_litpose", diff)
    print(f"{name}, 100 clip frames offline vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_labelled_images_with_their_context_files_equal_litpose_predict(
    lightning_model: tuple[str, ModelDescription], record_property
) -> None:
    """Through the image analyser's path (``utils/ImageAnalyzer.py``)."""
    name, description = lightning_model
    theirs, index = _predictions(
        name, "image_preds/CollectedData.csv/predictions.csv", description.keypoints
    )
    rows = [index.index(image) for image in LABELLED]
    theirs = theirs[rows]
    paths = tuple(IMAGES / Path(image).name for image in LABELLED)
    ours = predict(
        ImageSet(IMAGES.parent, paths, LABELLED),
        description,
        lambda d: open_backend(d, "onnxruntime", "cpu", 2),
    )
    diff = _differences(ours[:, 0], theirs)
    record_property(f"lp_{name}_images_vs_litpose", diff)
    print(f"{name}, {len(paths)} labelled images vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_live_is_causal_per_camera(
    lightning_model: tuple[str, ModelDescription], frames: list[np.ndarray]
) -> None:
    """Frame t with t-2, t-1 of its own camera and itself as t+1, t+2; cameras apart."""
    estimator = _estimator(lightning_model[1], frames[0].shape)
    a = [estimator.estimate([frames[t]], keys=["a"])[0] for t in range(3)]
    both = estimator.estimate([frames[3], frames[10]], keys=["a", "b"])
    f = frames
    expected = estimator.estimate_windows([*_causal_windows(f[:4]), [f[10]] * 5])[:, 0]
    assert np.abs(np.stack([*a, *both]) - expected).max() < 1e-4
    assert set(estimator.last_stage_timings) == {"backbone", "heads"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_replay_runs_the_live_causal_context(
    lightning_model: tuple[str, ModelDescription],
    frames: list[np.ndarray],
    tmp_path: Path,
    cache: Path,
) -> None:
    """``utils/VideoAnalyzer.py --fast`` (the live pipeline, every frame) from the .ckpt."""
    name, description = lightning_model
    result = run_cli(
        str(shared_data(CLIP)),
        "--fast",
        "--no-experiment",
        "--model",
        str(_lightning_checkpoint(name)),
        "--output-dir",
        str(tmp_path),
        script="utils/VideoAnalyzer.py",
        timeout=800,
        env={CACHE_ENV: str(cache), "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "lock")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = tmp_path / "test_vid_first100" / "test_vid_first100.pose.csv"
    ours = pd.read_csv(table, header=[0, 1, 2], index_col=0)
    assert ours.index.tolist() == list(range(100))
    expected = _estimator(description, frames[0].shape).estimate_windows(_causal_windows(frames))
    delta = np.abs(ours.to_numpy().reshape(100, -1, 3) - expected[:, 0])
    assert delta.max() <= 5e-4 + 1e-6  # the pose CSV keeps 3 decimals


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_inspect_names_the_backbone_and_both_stages(
    lightning_model: tuple[str, ModelDescription], cache: Path
) -> None:
    name, description = lightning_model
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(_lightning_checkpoint(name))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    backbone = "efficientnet_b0" if name.startswith("effb0") else "vits_dino"
    assert f"context tracker (heatmap_mhcrnn), backbone {backbone}" in result.stdout
    channels, h, w = context_of(description).feature_shape  # type: ignore[union-attr]
    assert f"{channels}x{h}x{w} features" in result.stdout
