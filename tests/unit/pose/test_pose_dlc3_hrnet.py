"""DeepLabCut 3.0 HRNet exports (``hrnet_w32``, bottom-up): parity with DeepLabCut itself.

The reference model and DeepLabCut's own predictions were made with DeepLabCut 3.0.2
(tests/fixtures/dlc3_hrnet_w32/README.md says how). The predictions are in the fixture folder;
the export (118 MB) is not in the repository: the tests find it at ``$DEEPLABSTREAM_DLC3_HRNET``
or at ``DEFAULT_EXPORT`` and skip with that reason when it is absent. Converting HRNet to ONNX
takes minutes on a small CPU (the dynamo exporter on its 300 convolutions and 100 fusions):
the tests that convert are slow. Converted graphs go to a temporary cache folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.dlc3 import build_module, check_export, head_spec, read_export
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlc import DlcPoseNetwork, build_backbone
from deeplabstream.pose.networks.hrnet import HRNet
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.dlc3_exports import converted_models_cache, export_or_skip
from tests.support.files import read_video, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_hrnet_w32"
ENV = "DEEPLABSTREAM_DLC3_HRNET"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc3/ref/shuffle5/DLC_openfield_NetType.HRNET_W32_iteration-0_shuffle-5"
    "_snapshot-best-1.pt"
)
CLIP = "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4"
IMAGES = ("0000", "0020", "0044", "0047", "0064", "0067", "0080", "0100", "0103", "0112")
KEYPOINTS = ("snout", "leftear", "rightear", "tailbase")
XY_TOLERANCE = 1e-2  # pixels (issue 36: fp32 <= 0.01 px)
LIKELIHOOD_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def export_path() -> Path:
    return export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut hrnet_w32", FIXTURE)


@pytest.fixture(scope="module")
def description(cache: Path, export_path: Path) -> ModelDescription:
    return load_model(export_path, frame_size=(480, 640))


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return read_video(shared_data(CLIP))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [
        np.asarray(cv2.imread(str(shared_data(f"dlc3-openfield-cspnext_s/images/img{n}.png"))))
        for n in IMAGES
    ]


def _table(csv: Path, header: list[int], drop: list[int]) -> pd.DataFrame:
    table = pd.read_csv(csv, header=header, index_col=0)
    table.columns = table.columns.droplevel(drop)
    return table


def _clip_reference() -> np.ndarray:
    (csv,) = (FIXTURE / "reference" / "analyze_videos_bs1").glob("*.csv")
    table = _table(csv, [0, 1, 2], [0])
    assert list(table.index) == list(range(100))
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(KEYPOINTS), 3)


def _images_reference() -> np.ndarray:
    (csv,) = (FIXTURE / "reference" / "analyze_images").glob("*.csv")
    table = _table(csv, [0, 1, 2, 3], [0, 1])
    table.index = [Path(str(i)).name for i in table.index]
    table = table.loc[[f"img{n}.png" for n in IMAGES]]
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(KEYPOINTS), 3)


def _estimate(description: ModelDescription, frames: list[np.ndarray], backend: str) -> np.ndarray:
    opened = open_backend(description, backend, "cpu", threads=1)
    try:
        return NetworkEstimator(description, opened, frames[0].shape, 4).estimate(frames)
    finally:
        opened.close()


def _differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours - theirs).max(axis=(0, 1))
    return {"dx": float(diff[0]), "dy": float(diff[1]), "dlikelihood": float(diff[2])}


def _assert_equal(diff: dict[str, float]) -> None:
    assert diff["dx"] <= XY_TOLERANCE and diff["dy"] <= XY_TOLERANCE
    assert diff["dlikelihood"] <= LIKELIHOOD_TOLERANCE


# --- without the export: the network's layout and the checks -----------------------------------


def _config(width: int = 18) -> dict:
    """DeepLabCut's hrnet_w32 config; ``width`` 18 makes it hrnet_w18 (quicker to build)."""
    config = dict(yaml.safe_load((FIXTURE / "pytorch_config.yaml").read_text()))
    config["model"]["backbone"]["model_name"] = f"hrnet_w{width}"
    config["model"]["backbone_output_channels"] = width
    for branch in ("heatmap_config", "locref_config"):
        config["model"]["heads"]["bodypart"][branch]["channels"][0] = width
    return config


def _random_export(tmp_path: Path, config: dict | None = None) -> Path:
    """An export with DeepLabCut's HRNet config and the rebuilt network's random weights."""
    config = config or _config()
    holder = type("Export", (), {"path": tmp_path / "hrnet.pt", "config": config})()
    network = DlcPoseNetwork(
        build_backbone(config["model"]["backbone"], holder.path), head_spec(holder)
    )
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for name, value in network.state_dict().items():
        if name.endswith("running_var"):
            weights[name] = torch.rand(value.shape, generator=generator) + 0.5
        elif value.dtype.is_floating_point:
            weights[name] = torch.randn(value.shape, generator=generator) * 0.05
        else:
            weights[name] = value
    torch.save({"config": config, "pose": weights}, holder.path)
    return holder.path


def test_the_layout_has_timms_hrnet_w32_parameter_count() -> None:
    """timm 1.0.31's ``create_model("hrnet_w32", features_only=True, feature_location="",
    out_indices=(1, 2, 3, 4))``, as DeepLabCut builds it, has 29,305,536 parameters (counted
    in DeepLabCut's environment); the rebuilt network the same."""
    assert sum(p.numel() for p in HRNet(32).parameters()) == 29_305_536


def test_the_check_before_a_start_accepts_an_hrnet_export(tmp_path: Path) -> None:
    check_export(_random_export(tmp_path))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_name": "hrnet_w99"}, r"HRNet backbone 'hrnet_w99' is not supported"),
        ({"increased_channel_count": True}, r"increased_channel_count is not supported"),
    ],
)
def test_unsupported_hrnet_settings_are_named(tmp_path: Path, change: dict, expected: str) -> None:
    path = _random_export(tmp_path)
    data = torch.load(str(path), weights_only=True)
    data["config"]["model"]["backbone"] |= change
    torch.save(data, path)
    with pytest.raises(ModelError, match=expected):
        build_module(read_export(path))


def test_other_padding_than_hrnets_is_refused(tmp_path: Path) -> None:
    config = _config()
    config["data"]["inference"]["auto_padding"] = {
        "pad_width_divisor": 64,
        "pad_height_divisor": 64,
    }
    path = _random_export(tmp_path, config)
    with pytest.raises(ModelError, match=r"auto_padding .* is not HRNet's"):
        check_export(path)


def test_frames_whose_sides_are_not_multiples_of_32_are_padded_as_deeplabcut_does(
    tmp_path: Path,
) -> None:
    """A 50x70 frame: reflect-padded to 64x96 inside the network; keypoints as on the pad."""
    module = build_module(read_export(_random_export(tmp_path)))
    frame = torch.randn(1, 3, 50, 70)
    padded = torch.nn.functional.pad(frame, (0, 26, 0, 14), mode="reflect")
    with torch.inference_mode():
        ours = module(frame)
        module.network.backbone.pad = False
        theirs = module(padded)
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())


def _shortened_hrnet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build HRNets of one block per branch, one module per stage and one bottleneck in layer1.

    Every kind of layer and every path of the full network stays (the stem, a bottleneck with
    its projection, each transition, 2-, 3- and 4-branch modules whose fusions upsample by 2, 4
    and 8 and downsample in chains of strided convolutions, the padding): only the repeats of
    identical blocks go, which make the export of the full network take minutes (84 s of CPU
    against 24 s). The full network's conversion is checked by the real export's tests below,
    where the export is (``load_model`` checks every conversion against the network).
    """
    from deeplabstream.pose.networks import hrnet

    monkeypatch.setattr(hrnet, "STAGE_MODULES", (1, 1, 1))
    monkeypatch.setattr(hrnet, "BLOCKS_PER_BRANCH", 1)
    monkeypatch.setattr(hrnet, "LAYER1_BLOCKS", 1)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a random HRNet exported and run twice: 25 s of CPU on one core here
def test_the_graph_pads_as_the_network_at_any_frame_size(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One dynamic-size graph: inputs padded or not give the rebuilt network's outputs.

    A shortened HRNet (``_shortened_hrnet``): the padding and the dynamic sizes are in every
    layer kind, not in the number of repeats.
    """
    from deeplabstream.pose.formats.conversion import run_graph

    _shortened_hrnet(monkeypatch)
    path = _random_export(tmp_path)
    description = load_model(path, frame_size=(64, 96))
    module = build_module(read_export(path))
    stages = [getattr(module.network.backbone.model, f"stage{n}") for n in (2, 3, 4)]
    assert [len(stage) for stage in stages] == [1, 1, 1]  # the shortened network was built
    assert [len(stage[0].branches) for stage in stages] == [2, 3, 4]
    for height, width in ((64, 96), (50, 70)):
        batch = np.random.default_rng(height).normal(size=(2, 3, height, width))
        batch = batch.astype(np.float32)
        graph = run_graph(description.model_file, "images", batch, threads=1)
        with torch.inference_mode():
            eager = [o.numpy() for o in module(torch.from_numpy(batch))]
        assert graph[1].shape == eager[1].shape == (2, 4, 33, 49)  # (64 / 4) * 2 + 1, ...
        np.testing.assert_allclose(graph[1], eager[1], atol=1e-4)  # heatmaps
        np.testing.assert_allclose(graph[2], eager[2], atol=1e-3)  # location refinement
        # keypoints where the peak is clear (random weights make near-ties)
        flat = np.sort(eager[1].reshape(2, 4, -1), axis=2)
        clear = flat[..., -1] - flat[..., -2] > 1e-3
        np.testing.assert_allclose(graph[0][clear], eager[0][clear], atol=1e-3)


# --- the real model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_is_described(description: ModelDescription, export_path: Path) -> None:
    assert description.keypoints == KEYPOINTS and description.framework == "deeplabcut"
    assert description.stride == 2.0 and description.any_input_size
    assert read_export(export_path).net_type == "hrnet_w32"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_clip_matches_deeplabcut(
    description: ModelDescription, clip_frames: list[np.ndarray], backend: str
) -> None:
    step = 1 if backend == "onnxruntime" else 10  # eager HRNet is slow on a small CPU
    ours = _estimate(description, clip_frames[::step], backend)
    diff = _differences(ours, _clip_reference()[::step])
    print(f"clip (every frame of {step}), {backend} vs DeepLabCut analyze_videos: {diff}")
    _assert_equal(diff)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_labelled_images_match_deeplabcut(
    description: ModelDescription, images: list[np.ndarray], backend: str
) -> None:
    diff = _differences(_estimate(description, images, backend), _images_reference())
    print(f"labelled images, {backend} vs DeepLabCut analyze_images: {diff}")
    _assert_equal(diff)


@pytest.mark.slow
def test_runs_live_in_the_app_and_matches_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    clip = shared_data(CLIP)
    settings = write_settings(
        tmp_path, f"[Camera openfield]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(export_path),
        "--frames",
        "100",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=600,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    ours = pd.read_csv(session / "openfield.pose.csv", header=[0, 1, 2], index_col=0)
    ours = ours.dropna(how="all")  # the frames analysed
    assert len(ours) >= 2 and tuple(ours.columns.get_level_values(1)[::3]) == KEYPOINTS
    theirs = _clip_reference()[ours.index.to_numpy()]
    diff = _differences(ours.to_numpy().reshape(len(ours), 4, 3), theirs)
    print(f"live, {len(ours)} frames analysed, vs DeepLabCut: {diff}")
    assert diff["dx"] <= XY_TOLERANCE and diff["dy"] <= XY_TOLERANCE  # the CSV's decimals
    assert diff["dlikelihood"] <= 1e-3


@pytest.mark.slow
def test_video_analyzer_replays_the_clip_as_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    result = run_cli(
        str(shared_data(CLIP)),
        "--fast",
        "--no-experiment",
        "--model",
        str(export_path),
        "--output-dir",
        str(tmp_path),
        script="utils/VideoAnalyzer.py",
        timeout=600,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ours = pd.read_csv(
        tmp_path / "m3v1mp4_first100" / "m3v1mp4_first100.pose.csv", header=[0, 1, 2], index_col=0
    )
    assert ours.index.tolist() == list(range(100))
    diff = _differences(ours.to_numpy().reshape(100, 4, 3), _clip_reference())
    print(f"VideoAnalyzer --fast, 100 frames, vs DeepLabCut: {diff}")
    assert diff["dx"] <= XY_TOLERANCE and diff["dy"] <= XY_TOLERANCE
    assert diff["dlikelihood"] <= 1e-3


@pytest.mark.slow
def test_image_analyzer_gives_deeplabcuts_keypoints(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for n in IMAGES:
        name = f"img{n}.png"
        (folder / name).write_bytes(
            shared_data(f"dlc3-openfield-cspnext_s/images/{name}").read_bytes()
        )
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "utils" / "ImageAnalyzer.py"),
            "--model",
            str(export_path),
            "--output-dir",
            str(tmp_path / "out"),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    ours = pd.read_csv(tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2], index_col=0)
    ours.columns = ours.columns.droplevel(0)
    ours.index = [Path(str(i)).name for i in ours.index]
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    table = ours.loc[[f"img{n}.png" for n in IMAGES], columns].to_numpy(np.float64)
    diff = _differences(table.reshape(len(IMAGES), 4, 3), _images_reference())
    print(f"ImageAnalyzer vs DeepLabCut analyze_images: {diff}")
    assert diff["dx"] <= XY_TOLERANCE and diff["dy"] <= XY_TOLERANCE
    assert diff["dlikelihood"] <= 1e-3


@pytest.mark.slow
def test_inspect_describes_it_and_checks_the_conversion(
    cache: Path, export_path: Path, description: ModelDescription
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplabstream.pose.inspect",
            str(export_path),
            "--frame",
            str(shared_data("dlc3-openfield-cspnext_s/images/img0044.png")),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "hrnet_w32" in out and "HRNet" in out
    assert "snout, leftear, rightear, tailbase" in out and "640x480" in out
    assert "reproduces the network" in out


# --- top_down_hrnet_w32 with a FasterRCNN detector: the pose stage on DeepLabCut's own boxes ------

TOPDOWN_FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_topdown_hrnet_w32_fasterrcnn"
TOPDOWN_ENV = "DEEPLABSTREAM_DLC3_TOPDOWN_HRNET"
TOPDOWN_EXPORT = Path(
    "/work/fw/dlc3/ref/shuffle7/DLC_openfield_NetType.HRNET_W32_iteration-0_shuffle-7"
    "_snapshot-detectorbest-1_snapshot-best-1.pt"
)


@pytest.fixture(scope="module")
def topdown_export() -> Path:
    path = Path(os.environ.get(TOPDOWN_ENV, TOPDOWN_EXPORT))
    if not path.is_file():
        pytest.skip(
            f"the DeepLabCut top_down_hrnet_w32 + fasterrcnn export is not here ({path}; set "
            f"{TOPDOWN_ENV}): see {TOPDOWN_FIXTURE / 'README.md'} for how it was made"
        )
    return path


def test_a_fasterrcnn_detector_passes_the_check_before_a_start(topdown_export: Path) -> None:
    # Rebuilt since: parity in test_pose_dlc3_fasterrcnn.py.
    check_export(topdown_export)


@pytest.mark.slow
def test_the_top_down_hrnet_pose_stage_gives_deeplabcuts_keypoints_on_its_boxes(
    topdown_export: Path, images: list[np.ndarray]
) -> None:
    """DeepLabCut's own boxes (analyze_images), cropped and run through the rebuilt HRNet."""
    import json

    from deeplabstream.pose.formats.conversion import run_module
    from deeplabstream.pose.formats.dlc3_topdown import (
        build_pose_module,
        crop_settings,
        pixels,
        top_down_crop,
    )

    export = read_export(topdown_export)
    module = build_pose_module(export)
    crop = crop_settings(export.config)
    raw = json.loads(
        (TOPDOWN_FIXTURE / "reference" / "analyze_images" / "raw_predictions.json").read_text()
    )
    ours = np.full((len(IMAGES), len(KEYPOINTS), 3), np.nan)
    for row, (n, image) in enumerate(zip(IMAGES, images, strict=True)):
        box = np.asarray(raw[f"img{n}.png"]["bboxes"][0], np.float32)
        cut, offset, scale = top_down_crop(image, tuple(box), crop)
        points = np.asarray(run_module(module, pixels(cut, bgr=True)[None])[0], np.float32)[0]
        ours[row, :, :2] = points[:, :2] * np.asarray(scale) + np.asarray(offset)
        ours[row, :, 2] = points[:, 2]
    (csv,) = (TOPDOWN_FIXTURE / "reference" / "analyze_images").glob("*.csv")
    table = _table(csv, [0, 1, 2, 3], [0, 1])
    table.index = [Path(str(i)).name for i in table.index]
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    theirs = table.loc[[f"img{n}.png" for n in IMAGES], columns].to_numpy(np.float64)
    diff = _differences(ours, theirs.reshape(len(IMAGES), len(KEYPOINTS), 3))
    print(f"top_down_hrnet_w32 pose stage on DeepLabCut's boxes vs analyze_images: {diff}")
    _assert_equal(diff)
