"""Lightning Pose checkpoints: rebuilt network, conversion, parity with Lightning Pose, errors.

The parity tests use ../shared/data/lp-mirror-mouse-resnet18 (a real Lightning Pose 2.4.3 model
folder with its checkpoint, a clip and Lightning Pose's own predictions; see its README) in
place, and skip when it is absent. Converted graphs go to a temporary cache folder
(``DEEPLABSTREAM_CACHE``), never into the shared folder.
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

from deeplabstream.pose.decoding.lightning import decode_lightning_pose
from deeplabstream.pose.formats.conversion import CACHE_ENV, run_graph
from deeplabstream.pose.formats.lightning_ckpt import build_module, read_checkpoint
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

LP = "lp-mirror-mouse-resnet18"
CHECKPOINTS = f"{LP}/model/tb_logs/mirror_mouse_resnet18_cpu/version_0/checkpoints"
CKPT = f"{CHECKPOINTS}/epoch=39-step=200-best.ckpt"
CLIP = "clip/test_vid_first100.mp4"
EAGER = "reference/litpose_predict_eager"
FRAME_SIZE = (406, 396)  # height, width of the clip and the labeled images
INPUT_SIZE = (256, 128)
XY_TOLERANCE = 0.02  # pixels, as the README advises for an independent implementation
LIKELIHOOD_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache folder for converted graphs, for the whole module."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def description(cache: Path) -> ModelDescription:
    checkpoint = shared_data(CKPT)
    before = sorted(p.name for p in checkpoint.parent.iterdir())
    loaded = load_model(checkpoint)
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == before  # nothing written
    return loaded


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return read_video(shared_data(f"{LP}/{CLIP}"))


@pytest.fixture(scope="module")
def intermediates() -> dict[str, np.ndarray]:
    with np.load(shared_data(f"{LP}/reference/intermediates.npz")) as data:
        return dict(data)


def _predictions(csv: str, keypoints: tuple[str, ...]) -> tuple[np.ndarray, list]:
    table = pd.read_csv(shared_data(f"{LP}/{EAGER}/{csv}"), header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    columns = [(k, c) for k in keypoints for c in ("x", "y", "likelihood")]
    values = table[columns].to_numpy(np.float64).reshape(len(table), len(keypoints), 3)
    return values, list(table.index)


def _max_differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs).max(axis=(0, 1))
    return {"dx": float(diff[0]), "dy": float(diff[1]), "dlikelihood": float(diff[2])}


def _heatmaps(description: ModelDescription, batch: np.ndarray, backend: str) -> np.ndarray:
    if backend == "onnxruntime":
        return run_graph(description.model_file, "images", batch, threads=1)[0]
    with torch.inference_mode():
        return build_module(read_checkpoint(description.source_file))(
            torch.from_numpy(batch)
        ).numpy()


# --- the real model -----------------------------------------------------------------------------


def test_checkpoint_is_described_like_the_export(
    description: ModelDescription, cache: Path
) -> None:
    export = load_model(shared_data(f"{LP}/model"))  # the folder: Lightning Pose's own export
    assert export.model_file.parent.name == "exports_onnx"
    assert description.model_file.parent == cache
    assert description.source_file == shared_data(CKPT)
    same = ("keypoints", "input_height", "input_width", "decoder", "downsample_factor", "stride")
    for name in (*same, "framework", "mean", "std", "resize", "input_name", "output_names"):
        assert getattr(description, name) == getattr(export, name), name
    assert description.precision == "fp32"


@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_heatmaps_equal_lightning_poses(
    description: ModelDescription, intermediates: dict[str, np.ndarray], backend: str
) -> None:
    for kind in ("video", "labeled"):
        heatmaps = _heatmaps(description, intermediates[f"{kind}_input"], backend)
        np.testing.assert_allclose(heatmaps, intermediates[f"{kind}_heatmaps_eager"], atol=1e-5)


@pytest.mark.parametrize(
    ("backend", "step"),
    [
        ("onnxruntime", 1),
        ("pytorch", 4),  # eager PyTorch is slow on a small CPU: every 4th frame here ...
        pytest.param("pytorch", 1, marks=pytest.mark.slow),  # ... and all of them when slow
    ],
)
def test_clip_matches_lightning_pose(
    description: ModelDescription,
    clip_frames: list[np.ndarray],
    backend: str,
    step: int,
    record_property,
) -> None:
    frames = clip_frames[::step]
    opened = open_backend(description, backend, "cpu", threads=1)
    try:
        ours = NetworkEstimator(description, opened, frames[0].shape, 8).estimate(frames)
    finally:
        opened.close()
    theirs, index = _predictions("video_preds/test_vid_first100.csv", description.keypoints)
    assert index == list(range(100))
    diff = _max_differences(ours, theirs[::step])
    record_property(f"lp_clip_{backend}_every_{step}", diff)
    print(f"clip (every frame of {step}), checkpoint on {backend} vs litpose predict: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE


@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_labeled_frames_match_lightning_pose(
    description: ModelDescription,
    intermediates: dict[str, np.ndarray],
    backend: str,
    record_property,
) -> None:
    """The labeled images are not in the shared folder: their network input is."""
    heatmaps = _heatmaps(description, intermediates["labeled_input"], backend)
    keypoints = decode_lightning_pose(heatmaps, description.downsample_factor)
    keypoints[..., 0] *= FRAME_SIZE[1] / INPUT_SIZE[1]
    keypoints[..., 1] *= FRAME_SIZE[0] / INPUT_SIZE[0]
    theirs, index = _predictions("image_preds/CollectedData_predictions.csv", description.keypoints)
    theirs = theirs[[index.index(name) for name in intermediates["labeled_image_names"]]]
    diff = _max_differences(keypoints, theirs)
    record_property(f"lp_labeled_{backend}", diff)
    print(f"labeled frames, checkpoint on {backend} vs litpose predict (eager): {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE


@pytest.mark.slow
def test_fp16_conversion_is_measured(
    cache: Path, clip_frames: list[np.ndarray], record_property
) -> None:
    fp16 = load_model(shared_data(CKPT), precision="fp16")
    assert fp16.precision == "fp16" and ".fp16." in fp16.model_file.name
    opened = open_backend(fp16, "onnxruntime", "cpu", threads=1)
    ours = NetworkEstimator(fp16, opened, clip_frames[0].shape, 8).estimate(clip_frames)
    opened.close()
    theirs, _ = _predictions("video_preds/test_vid_first100.csv", fp16.keypoints)
    diff = _max_differences(ours, theirs)
    record_property("lp_clip_fp16", diff)
    print(f"clip, fp16 graph vs litpose predict (eager, fp32): {diff}")
    assert np.median(np.abs(ours - theirs)[..., :2]) < 0.5  # the same network, to fp16
    assert diff["dx"] < 20 and diff["dy"] < 20


def test_inspect_checks_the_conversion_on_a_clip_frame(cache: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplabstream.pose.inspect",
            str(shared_data(CKPT)),
            "--frame",
            str(shared_data(f"{LP}/{CLIP}")),
            "--frame-index",
            "7",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Lightning Pose 2.4.3 checkpoint" in out and "backbone resnet18" in out
    assert "17: paw1LH_top" in out and "128x256" in out and "stride:      4" in out
    assert "parameters:  11,198,731" in out  # resnet18 trunk (11,176,512) + the head
    assert "test_vid_first100.mp4 frame 7 (396x406)" in out
    assert "reproduces the network" in out


@pytest.mark.slow  # a whole live session (18 s here): the default suite keeps under 15 minutes
def test_runs_live_from_the_checkpoint(tmp_path: Path, cache: Path) -> None:
    clip = shared_data(f"{LP}/{CLIP}")
    settings = write_settings(
        tmp_path, f"[Camera mirror]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(shared_data(CKPT)),
        "--frames",
        "100",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=300,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    ours = pd.read_csv(session / "mirror.pose.csv", header=[0, 1, 2], index_col=0).dropna(how="all")
    assert len(ours) >= 2 and ours.index.is_monotonic_increasing
    keypoints = tuple(ours.columns.get_level_values(1)[::3])
    theirs, _ = _predictions("video_preds/test_vid_first100.csv", keypoints)
    diff = _max_differences(ours.to_numpy().reshape(len(ours), -1, 3), theirs[ours.index])
    print(f"live from the checkpoint, {len(ours)} frames analysed: {diff}")
    assert diff["dx"] < XY_TOLERANCE and diff["dy"] < XY_TOLERANCE
    assert diff["dlikelihood"] < LIKELIHOOD_TOLERANCE


# --- errors, on model folders in tmp_path that point at the real checkpoint --------------------


def _model_folder(tmp_path: Path, change: dict | None = None, checkpoints: int = 1) -> Path:
    """A model folder with the real config (changed) and symbolic links to the checkpoint."""
    folder = tmp_path / "model"
    config = yaml.safe_load(shared_data(f"{LP}/model/config.yaml").read_text())
    for dotted, value in (change or {}).items():
        section = config
        *parents, last = dotted.split(".")
        for key in parents:
            section = section[key]
        section[last] = value
    target = folder / "tb_logs" / "run" / "version_0" / "checkpoints"
    target.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    for number in range(checkpoints):
        (target / f"epoch={number}.ckpt").symlink_to(shared_data(CKPT))
    return folder


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # a context model is rebuilt (test_pose_lightning_context.py): these weights are not
            {"model.model_type": "heatmap_mhcrnn"},
            r"do not fit a resnet18 context \(heatmap_mhcrnn\) tracker .*missing: "
            r"head\.head_sf\.upsampling_layers\.1\.weight",
        ),
        ({"model.model_type": "heatmap_multiview_transformer"}, r"cannot run yet; supported"),
        ({"model.backbone": "vit_b_sam"}, r"backbone vit_b_sam, which this program cannot run"),
        (
            {"data.keypoint_names": [f"k{i}" for i in range(5)]},
            r"do not fit a resnet18 heatmap tracker with 5 keypoints.*wrong shape: "
            r"head\.upsampling_layers\.1\.weight \(128, 17, 3, 3\) \(network: \(128, 5, 3, 3\)\)",
        ),
        (
            {"data.downsample_factor": 3},
            r"2 unexpected: head\.upsampling_layers\.2\.weight, head\.upsampling_layers\.2\.bias",
        ),
    ],
)
def test_unsupported_or_inconsistent_models_are_named(
    tmp_path: Path, change: dict, expected: str
) -> None:
    with pytest.raises(ModelError, match=expected):
        load_model(_model_folder(tmp_path, change))


def test_folder_and_file_errors(tmp_path: Path) -> None:
    several = _model_folder(tmp_path, checkpoints=2)
    with pytest.raises(ModelError, match=r"several checkpoints .*name the \.ckpt file"):
        load_model(several)
    lonely = tmp_path / "elsewhere" / "model.ckpt"
    lonely.parent.mkdir()
    lonely.symlink_to(shared_data(CKPT))
    with pytest.raises(ModelError, match=r"no config\.yaml in the folders above it"):
        load_model(lonely)
    broken = several / "tb_logs" / "run" / "version_0" / "checkpoints" / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(ModelError, match=r"broken\.ckpt: not a readable Lightning checkpoint"):
        load_model(broken)
    foreign = broken.with_name("foreign.ckpt")
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ModelError, match=r"expected a Lightning checkpoint with a 'state_dict'"):
        load_model(foreign)
    with pytest.raises(ModelError, match="precision fp16 applies to models converted here"):
        load_model(shared_data(f"{LP}/model"), precision="fp16")


# --- where converted graphs go ------------------------------------------------------------------


def test_read_only_model_folder_caches_in_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _model_folder(tmp_path)
    checkpoints = folder / "tb_logs" / "run" / "version_0" / "checkpoints"
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    checkpoints.chmod(0o555)
    try:
        with caplog.at_level("INFO", logger="deeplabstream.pose.formats.conversion"):
            description = load_model(folder)
    finally:
        checkpoints.chmod(0o755)
    assert description.model_file.parent == tmp_path / "user-cache" / "deeplabstream" / "converted"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=0.ckpt"]
    assert "is read-only: the converted model is cached in" in caplog.text
    record = Path(f"{description.model_file}.json").read_text()
    assert '"heatmaps"' in record and "sources_sha256" in record
    assert load_model(folder).model_file == description.model_file  # found again


def test_a_writable_model_folder_keeps_the_graph_beside_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deeplabstream.pose.formats.conversion import _writable_folder

    monkeypatch.delenv(CACHE_ENV, raising=False)
    source = tmp_path / "model.ckpt"
    source.write_bytes(b"")
    assert _writable_folder(source) == tmp_path
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "forced"))
    assert _writable_folder(source) == tmp_path / "forced"
