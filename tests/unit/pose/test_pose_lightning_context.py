"""Lightning Pose context models (``heatmap_mhcrnn``): rebuilt, converted, equal to Lightning Pose.

The model is a real one made with Lightning Pose 2.4.3 (``tests/fixtures/lp_context_mirror_mouse``,
its README says how): its backbone is the shared resnet18 model's
(``../shared/data/lp-mirror-mouse-resnet18``), so the fixture keeps only the tensors that differ
(the heads, the BatchNorm statistics) and the tests compose the checkpoint again, checking that
its weights are Lightning Pose's bit for bit (a sha256 over the state dict). Tests skip when the
shared folder is absent. Converted graphs go to a temporary cache folder. The tests that need
the converted model are ``slow`` (its conversion takes 20 to 60 s on a small CPU).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deeplabstream.offline.replay.images import ImageSet, predict
from deeplabstream.pose import context_video
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.lightning_ckpt import read_checkpoint
from deeplabstream.pose.formats.lightning_context import (
    context_image_paths,
    context_of,
    heads_description,
)
from deeplabstream.pose.loading import check_backend, load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator
from tests.support.files import read_video
from tests.support.paths import PROJECT_ROOT, shared_data

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "lp_context_mirror_mouse"
SHARED_CKPT = (
    "lp-mirror-mouse-resnet18/model/tb_logs/mirror_mouse_resnet18_cpu/version_0/checkpoints/"
    "epoch=39-step=200-best.ckpt"
)
CLIP = "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4"
EAGER = FIXTURE / "reference" / "litpose_predict_eager"
# The fixture's labelled images whose context files (2 below to 2 above) are all in it.
LABELLED = ("labeled-data/img01.png", "labeled-data/img45.png", "labeled-data/img90.png")
XY_TOLERANCE = 0.01  # px, fp32 (issue 36)
# Lightning Pose's float32 softmax (PyTorch's CPU kernel) moves its video keypoints by up to
# 0.013 px from the exact decoding on this clip; its own decoder on our heatmaps lands within
# 0.0002 px (the fixture's README): the 0.02 px the shared model's README advises.
VIDEO_XY_TOLERANCE = 0.02
LIKELIHOOD_TOLERANCE = 1e-4


def compose_checkpoint(folder: Path) -> Path:
    """The Lightning Pose model folder of the fixture, its checkpoint composed again.

    Tensors named in ``compose.json`` come from the shared resnet18 checkpoint, the others from
    ``context_weights.pt``; the result is checked against the sha256 of Lightning Pose's own
    state dict. Returns the checkpoint file.
    """
    record = json.loads((FIXTURE / "model" / "compose.json").read_text())
    shared = read_checkpoint(shared_data(SHARED_CKPT)).state_dict
    own = torch.load(FIXTURE / "model" / "context_weights.pt", weights_only=True)
    state = {name: shared[name] for name in record["taken_from_shared"]} | own
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].contiguous().numpy().tobytes())
    assert digest.hexdigest() == record["state_dict_sha256"], "not Lightning Pose's weights"
    target = folder / "tb_logs" / "context" / "version_0" / "checkpoints" / record["made_from"]
    target.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "model" / "config.yaml", folder / "config.yaml")
    version = record["pytorch-lightning_version"]
    torch.save({"state_dict": state, "pytorch-lightning_version": version}, target)
    return target


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache folder for converted graphs, for the whole module."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"{FIXTURE} is absent")
    return compose_checkpoint(tmp_path_factory.mktemp("lp_context") / "model")


@pytest.fixture(scope="module")
def description(checkpoint: Path, cache: Path) -> ModelDescription:
    return load_model(checkpoint)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_video(shared_data(CLIP))


def _estimator(description: ModelDescription, shape: tuple[int, ...]) -> ContextEstimator:
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    return ContextEstimator(description, backend, shape, max_batch=8)


def _predictions(csv: Path, keypoints: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    values = table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    return values, [str(i) for i in table.index]


def _differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs)
    return {"xy_px": float(diff[..., :2].max()), "likelihood": float(diff[..., 2].max())}


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_the_checkpoint_is_described_as_a_context_model(description: ModelDescription) -> None:
    stages = context_of(description)
    assert stages is not None and stages.frames == 5 and stages.live == "causal"
    assert stages.feature_shape == (512, 8, 4)  # resnet18 at 256x128
    assert description.framework == "lightning-pose" and len(description.keypoints) == 17
    assert (description.input_height, description.input_width) == (256, 128)
    assert stages.heads_file.is_file() and description.model_file.is_file()
    assert heads_description(description).input_name == "features"


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_a_video_offline_equals_litpose_predict(
    description: ModelDescription, frames: list[np.ndarray], record_property
) -> None:
    ours = _estimator(description, frames[0].shape).predict_video(frames)
    theirs, index = _predictions(
        EAGER / "video_preds" / "test_vid_first100.csv", description.keypoints
    )
    assert [int(i) for i in index] == list(range(len(frames)))
    diff = _differences(ours, theirs)
    record_property("lp_context_video_vs_litpose", diff)
    print(f"context model, 100 clip frames offline vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= VIDEO_XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_both_heads_equal_lightning_poses_network(
    description: ModelDescription, frames: list[np.ndarray], record_property
) -> None:
    """The graphs' heatmaps of two clip frames against Lightning Pose's own (eager, float32)."""
    with np.load(FIXTURE / "reference" / "lp_intermediates.npz") as data:
        reference = dict(data)
    estimator = _estimator(description, frames[0].shape)
    centres = [int(t) for t in reference["centres"]]
    features, _, _, _ = estimator._features(
        [frames[t + d] for t in centres for d in range(-2, 3)], None
    )
    stacked = features.reshape(len(centres), -1, *features.shape[2:])
    single, multi = estimator.heads.run(stacked)[:2]
    maps = max(
        float(np.abs(single - reference["heatmaps_sf"]).max()),
        float(np.abs(multi - reference["heatmaps_mf"]).max()),
    )
    ours = estimator.estimate_windows([[frames[t + d] for d in range(-2, 3)] for t in centres])
    xy = float(np.abs(ours[:, 0, :, :2] - reference["keypoints"]).max())
    record_property("lp_context_heatmaps_vs_lightning_pose", maps)
    print(f"heatmaps vs Lightning Pose's network: {maps:.3g}; keypoints {xy:.4g} px")
    assert maps < 1e-5
    assert xy <= VIDEO_XY_TOLERANCE  # Lightning Pose decodes in float32 (see VIDEO_XY_TOLERANCE)


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_labelled_images_with_their_context_files_equal_litpose_predict(
    description: ModelDescription, record_property
) -> None:
    images = FIXTURE / "labeled-data"
    theirs, index = _predictions(
        EAGER / "image_preds" / "CollectedData.csv" / "predictions.csv", description.keypoints
    )
    rows = [index.index(name) for name in LABELLED]  # whose five context files are here
    theirs, index = theirs[rows], [index[row] for row in rows]
    paths = [images / Path(name).name for name in index]
    image_set = ImageSet(FIXTURE, tuple(paths), tuple(Path(name).as_posix() for name in index))
    ours = predict(image_set, description, lambda d: open_backend(d, "onnxruntime", "cpu", 2))
    diff = _differences(ours[:, 0], theirs)
    record_property("lp_context_images_vs_litpose", diff)
    print(f"context model, {len(paths)} labelled images vs litpose predict (eager): {diff}")
    assert diff["xy_px"] <= XY_TOLERANCE and diff["likelihood"] <= LIKELIHOOD_TOLERANCE


def test_context_files_follow_lightning_poses_numbering(tmp_path: Path) -> None:
    for name in ("img00.png", "img01.png", "img02.png", "img04.png", "img10.png"):
        (tmp_path / name).write_bytes(b"")
    centre = tmp_path / "img02.png"
    assert [p.name for p in context_image_paths(centre)] == [
        "img00.png",
        "img01.png",
        "img02.png",
        "img02.png",  # img03 missing: the image itself
        "img04.png",
    ]
    assert [p.name for p in context_image_paths(tmp_path / "img00.png")] == [
        "img00.png",
        "img00.png",  # floored at 0
        "img00.png",
        "img01.png",
        "img02.png",
    ]
    lonely = tmp_path / "frame.png"
    assert context_image_paths(lonely) == [lonely] * 5


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_live_context_is_causal_per_camera(
    description: ModelDescription, frames: list[np.ndarray]
) -> None:
    """Frame t with t-2, t-1 of its own camera and itself as t+1, t+2; cameras apart."""
    estimator = _estimator(description, frames[0].shape)
    a = [estimator.estimate([frames[t]], keys=["a"])[0] for t in range(4)]
    b = estimator.estimate([frames[10]], keys=["b"])[0]  # another camera: its own past
    both = estimator.estimate([frames[4], frames[11]], keys=["a", "b"])
    f = frames
    expected = estimator.estimate_windows(
        [
            [f[0]] * 5,
            [f[0], f[0], f[1], f[1], f[1]],
            [f[0], f[1], f[2], f[2], f[2]],
            [f[1], f[2], f[3], f[3], f[3]],
            [f[10]] * 5,
            [f[2], f[3], f[4], f[4], f[4]],
            [f[10], f[10], f[11], f[11], f[11]],
        ]
    )[:, 0]
    ours = np.stack([*a, b, *both])
    assert np.abs(ours - expected).max() < 1e-4  # ONNX Runtime: other batch sizes, ~1e-6
    assert set(estimator.last_stage_timings) == {"backbone", "heads"}


def test_the_pytorch_backend_is_refused_with_what_to_set(checkpoint: Path) -> None:
    with pytest.raises(ModelError, match=r"context model .*BACKEND = onnxruntime only"):
        check_backend(checkpoint, "pytorch")


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_the_offline_command_writes_lightning_poses_csv(
    checkpoint: Path, description: ModelDescription, tmp_path: Path
) -> None:
    """``python -m deeplabstream.pose.formats.lightning_context MODEL VIDEO OUT.csv``."""
    out = tmp_path / "clip.csv"
    assert context_video.main([str(checkpoint), str(shared_data(CLIP)), str(out)]) == 0
    ours = pd.read_csv(out, header=[0, 1, 2], index_col=0)
    theirs = pd.read_csv(
        EAGER / "video_preds" / "test_vid_first100.csv", header=[0, 1, 2], index_col=0
    )
    assert list(ours.columns) == list(theirs.columns) and list(ours.index) == list(theirs.index)
    assert np.abs(ours.to_numpy() - theirs.to_numpy()).max() <= VIDEO_XY_TOLERANCE


@pytest.mark.slow  # two more graphs to convert
def test_fp16_is_measured_against_fp32(
    checkpoint: Path, description: ModelDescription, frames: list[np.ndarray], cache: Path
) -> None:
    half = load_model(checkpoint, precision="fp16")
    assert half.precision == "fp16" and context_of(half) is not None
    ours = _estimator(half, frames[0].shape).predict_video(frames[:20])
    full = _estimator(description, frames[0].shape).predict_video(frames[:20])
    moved = np.abs(ours[..., :2] - full[..., :2])
    print(f"fp16 vs fp32, 20 frames: median {np.median(moved):.3g} px, max {moved.max():.3g} px")
    assert np.median(moved) < 0.05 and moved.max() < 2.0  # seen: 0.002 and 0.28 px


@pytest.mark.slow  # the conversion of the checkpoint: tens of seconds
def test_int8_quantization_is_refused_with_a_message(
    checkpoint: Path, description: ModelDescription
) -> None:
    from deeplabstream.pose.quantize import quantize_model

    with pytest.raises(ModelError, match=r"context model .*does not quantize; run it at fp32"):
        quantize_model(description, None, None, 1, checkpoint)  # type: ignore[arg-type]
