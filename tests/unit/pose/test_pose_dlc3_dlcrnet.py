"""DeepLabCut 3.0 DLCRNet (``dlcrnet_stride16_ms5``) with an identity head: parity with DeepLabCut.

The reference model (DLCRNet's multi-scale ResNet-50, DeepLabCut's ``DLCRNetHead`` and an
identity head: a project with ``identity: true``, two flies, 13 keypoints) and DeepLabCut's own
predictions were made with DeepLabCut 3.0.2 (``tests/fixtures/dlc3_dlcrnet_flies/README.md``).

- Without the export (everywhere): DeepLabCut's own assemblies, identity logits and
  postprocessed predictions on the 10 labelled frames (``decoder/identity.npz``): this
  project's identity step on them must give its animals, in its order, and its scores;
  the interpolation of the identity maps against PyTorch's; the rebuilt backbone's shapes;
  the config read; what is still refused.
- With the export (not in the repository: ``$DEEPLABSTREAM_DLC3_DLCRNET`` or
  ``DEFAULT_EXPORT``, else skipped): ``analyze_videos`` on 50 frames and ``analyze_images`` on 10
  labelled frames through the estimator, a replay, ``utils/ImageAnalyzer.py`` and
  ``deeplabstream-inspect``. With an identity head there is no tracker: row i is individual i,
  so the app's pose files are compared row for row.
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
from torch.nn import functional

from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.pose.decoding import dlc_assembly, dlc_identity
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.dlc3 import check_export, read_export
from deeplabstream.pose.formats.dlc3_multianimal import (
    assembly_settings,
    identity_settings,
    paf_head_spec,
)
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlcrnet import DlcrnetBackbone
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from tests.support.dlc3_exports import (
    assert_within,
    converted_models_cache,
    export_or_skip,
    labelled_images_or_skip,
    worst_differences,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli
from tests.unit.pose.test_pose_dlc3_multianimal import KEYPOINTS, _write_clip, clip_frames

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_dlcrnet_flies"
ENV = "DEEPLABSTREAM_DLC3_DLCRNET"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc-dlcrnet/ref/"
    "DLC_flies_NetType.DLCRNET_STRIDE16_MS5_iteration-0_shuffle-1_snapshot-1.pt"
)
IMAGES_FOLDER = Path("/work/fw/dlc-dlcrnet/ref/images")
INDIVIDUALS = ("fly1", "fly2")
CLIP_FRAMES = 50
XY_TOLERANCE = 1e-2  # pixels (issue 36: fp32 <= 0.01 px)
LIKELIHOOD_TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-4  # identity scores: sigmoids of interpolated logits


class _Export:
    """What the format reads of an export: its path, config, net type and bodyparts."""

    def __init__(self, config: dict, path: Path = FIXTURE / "pytorch_config.yaml") -> None:
        self.path = path
        self.config = config
        self.net_type = str(config.get("net_type"))
        self.bodyparts = tuple(config["metadata"]["bodyparts"])


def _config() -> dict:
    return dict(yaml.safe_load((FIXTURE / "pytorch_config.yaml").read_text()))


@pytest.fixture(scope="module")
def identity_fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "decoder" / "identity.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def settings() -> dlc_assembly.DlcAssemblySettings:
    export = _Export(_config())
    identity = identity_settings(export, 16.0)
    return dlc_assembly.DlcAssemblySettings(
        **{**assembly_settings(export, 4.0).__dict__, "identity": identity}
    )


def _theirs(poses: np.ndarray) -> np.ndarray:
    """DeepLabCut's poses (A, K, >=3) as this project's animals (NaN where it has none)."""
    animals = poses[..., :3].astype(np.float64)
    animals[np.all(poses[..., :3] == -1, axis=-1)] = np.nan
    animals[np.isnan(animals[..., 0])] = np.nan
    return animals


# --- no export needed --------------------------------------------------------------------------


@pytest.mark.parametrize(("size_in", "size_out"), [(65, 520), (9, 72), (31, 16), (63, 32)])
def test_identity_map_cells_are_pytorchs_antialiased_resize(size_in: int, size_out: int) -> None:
    """DeepLabCut's IdentityPredictor resizes with torchvision (bilinear, antialias=True)."""
    rng = np.random.default_rng(size_in)
    logits = rng.normal(size=(2, size_in, size_in + 3)).astype(np.float32)
    width_out = round(size_out * (size_in + 3) / size_in)
    theirs = functional.interpolate(
        torch.from_numpy(logits)[None],
        size=(size_out, width_out),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0].numpy()
    along_y = dlc_identity.antialiased_weights(size_in, size_out, np.arange(size_out))
    along_x = dlc_identity.antialiased_weights(size_in + 3, width_out, np.arange(width_out))
    ours = np.einsum("yh,ihw,xw->iyx", along_y, logits.astype(np.float64), along_x)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # PyTorch sums in float32


@pytest.mark.parametrize(("stride", "cells"), [(16, 8), (32, 4)])
def test_the_dlcrnet_backbone_fuses_three_scales(stride: int, cells: int) -> None:
    backbone = DlcrnetBackbone(50, "batch", stride).eval()
    with torch.inference_mode():
        features = backbone(torch.zeros(1, 3, 128, 128))
    assert features.shape == (1, 2304, cells, cells) and backbone.out_channels == 2304
    names = set(backbone.state_dict())
    assert {"model.layer2.3.conv3.weight", "conv_block1.0.bias", "conv_block5.1.running_var"} <= (
        names
    )


def test_the_config_gives_the_identity_head_and_the_assembly(
    settings: dlc_assembly.DlcAssemblySettings,
) -> None:
    config = _config()
    assert config["net_type"] == "dlcrnet_stride16_ms5"
    assert config["model"]["backbone"]["type"] == "DLCRNet"
    head = paf_head_spec(_Export(config))
    assert head.stride == 4 and head.heatmap.channels == (128 + 13 + 156, 13)
    assert settings.individuals == 2 and len(settings.graph) == 78
    assert settings.identity == dlc_identity.DlcIdentitySettings(INDIVIDUALS, 8.0)


def test_identities_on_deeplabcuts_assemblies_are_deeplabcuts(
    identity_fixture: dict[str, np.ndarray], settings: dlc_assembly.DlcAssemblySettings
) -> None:
    """DeepLabCut's own poses and identity logits (10 labelled frames): its order and scores.

    Its assemblies are given as this project's assembly gives them (NaN where DeepLabCut has
    none); DeepLabCut's postprocessor reordered the rows in 7 of the 10 frames, and put its
    unused row first in one.
    """
    assert settings.identity is not None
    assert float(identity_fixture["identity_stride"]) == settings.identity.stride
    reordered = 0
    for i in range(len(identity_fixture["poses"])):
        animals = _theirs(identity_fixture["poses"][i])
        identified = dlc_identity.identify(
            animals, identity_fixture["identity"][i], settings.identity
        )
        theirs = _theirs(identity_fixture["bodyparts"][i])
        np.testing.assert_array_equal(identified.animals, theirs)
        found = ~np.isnan(theirs[..., 0]).all(axis=1)
        np.testing.assert_allclose(
            identified.scores[found],
            identity_fixture["identity_scores"][i][found],
            atol=SCORE_TOLERANCE,
        )
        reordered += not np.array_equal(animals, theirs, equal_nan=True)
    assert reordered >= 5  # the assignment is exercised


@pytest.mark.parametrize(("first_cell", "individual"), [((-3.0, 3.0), 1), ((3.0, -3.0), 0)])
def test_unused_rows_read_the_first_cell_as_deeplabcut_does(
    first_cell: tuple[float, float], individual: int
) -> None:
    """DeepLabCut's -1 rows are valid coordinates to its identity step: cell (0, 0).

    Their cost is -1 times that cell's scores, so a lone animal whose own cells say b
    (0.10 for a, 0.75 for b) still goes to a when cell (0, 0) says a strongly: the -1 row then
    costs -0.95 at a and -0.05 at b, and (animal a, -1 row b) totals 0.05 against -0.20.
    """
    settings = dlc_identity.DlcIdentitySettings(("a", "b"), 1.0)
    logits = np.zeros((2, 4, 4))
    logits[:, 0, 0] = first_cell  # what the unused row reads
    logits[:, 2, 3] = (-2.0, 2.0)  # where the one animal is
    animals = np.full((2, 2, 3), np.nan)
    animals[0] = [[3.0, 2.0, 0.9], [3.2, 1.9, 0.8]]
    identified = dlc_identity.identify(animals, logits, settings)
    np.testing.assert_array_equal(identified.animals[individual], animals[0])
    assert np.isnan(identified.animals[1 - individual]).all()
    own = 1 / (1 + np.exp(2.0 if individual == 0 else -2.0))
    assert identified.confidence[individual] == pytest.approx(own)
    assert np.isnan(identified.confidence[1 - individual])


def _export_file(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "export.pt"
    torch.save({"config": config, "pose": {}}, path)
    return path


def test_the_check_before_a_start_accepts_dlcrnet_with_identity(tmp_path: Path) -> None:
    check_export(_export_file(tmp_path, _config()))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["model"]["heads"].update(unique_bodypart={"type": "HeatmapHead"}),
            r"a unique_bodypart head \(bodyparts that belong to no individual: not rebuilt yet\)",
        ),
        (
            lambda c: c["model"]["heads"]["identity"]["predictor"].update(type="Other"),
            r"an identity head HeatmapHead with predictor Other",
        ),
        (
            lambda c: c["model"]["backbone"].update(model_name="resnet18"),
            None,  # the check reads the config only; building it names the backbone
        ),
    ],
)
def test_what_still_does_not_run_is_named(
    tmp_path: Path, change: object, expected: str | None
) -> None:
    config = _config()
    change(config)  # type: ignore[operator]
    if expected is None:
        from deeplabstream.pose.formats.dlc3_multianimal import _build_backbone

        with pytest.raises(ModelError, match=r"DLCRNet on 'resnet18'"):
            _build_backbone(config["model"]["backbone"], tmp_path)
        return
    with pytest.raises(ModelError, match=expected):
        check_export(_export_file(tmp_path, config))


# --- the real export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def export_path() -> Path:
    return export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut dlcrnet_stride16_ms5 identity", FIXTURE)


@pytest.fixture(scope="module")
def description(cache: Path, export_path: Path) -> ModelDescription:
    return load_model(export_path, frame_size=(512, 512))


def _reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(FIXTURE / "reference" / name) as data:
        return data["animals"], data["identity_scores"]


def _estimate(
    description: ModelDescription, frames: list[np.ndarray], backend: str
) -> tuple[np.ndarray, np.ndarray]:
    opened = open_backend(description, backend, "cpu", threads=1)
    try:  # BGR frames, as the cameras give them
        estimator = NetworkEstimator(description, opened, frames[0].shape, 1)
        animals = estimator.estimate_animals(frames)
        assert estimator.last_identity_confidence is not None
        return animals, estimator.last_identity_confidence
    finally:
        opened.close()


def _assert_equal(worst: dict[str, float]) -> None:
    assert_within(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)


def _expected_confidence(animals: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each individual's mean score for itself over its keypoints (from DeepLabCut's scores)."""
    confidence = np.full(animals.shape[:2], np.nan)
    for frame in range(len(animals)):
        for individual in range(animals.shape[1]):
            present = ~np.isnan(animals[frame, individual, :, 0])
            if present.any():
                values = scores[frame, individual, present, individual]
                confidence[frame, individual] = values.mean()
    return confidence


RANDOM_STRIDE32 = Path("/work/fw/dlc-dlcrnet/work/random_stride32.pt")
RANDOM_STRIDE32_MAPS = Path("/work/fw/dlc-dlcrnet/work/random_stride32_maps.npz")


@pytest.mark.slow
def test_stride32_dlcrnet_equals_deeplabcuts_own_network(cache: Path) -> None:
    """DeepLabCut's own dlcrnet_stride32_ms5 module on seeded random weights (no trained one).

    At stride 32 the feature banks are shrunk (31x31 -> 16x16 at 512x512), where torchvision's
    antialiased resize differs from plain bilinear. Made by the fixture's
    ``scripts/random_stride32.py``; skipped where it is absent.
    """
    if not RANDOM_STRIDE32.is_file() or not RANDOM_STRIDE32_MAPS.is_file():
        pytest.skip(f"DeepLabCut's random stride-32 DLCRNet is not here ({RANDOM_STRIDE32})")
    from deeplabstream.pose.formats.dlc3_multianimal import build_paf_module

    module = build_paf_module(read_export(RANDOM_STRIDE32))
    with np.load(RANDOM_STRIDE32_MAPS) as data:
        theirs = {name: data[name] for name in data.files}
    worst = {}
    for key in ("512x512", "256x320"):
        x = torch.from_numpy(theirs[f"input_{key}"])
        with torch.inference_mode():
            features = module.network.backbone(x).numpy()
            maps = [m.numpy() for m in module.network(x)]
        worst[f"backbone_{key}"] = float(np.abs(features - theirs[f"backbone_{key}"]).max())
        for name, ours in zip(("heatmap", "locref", "paf", "identity"), maps, strict=True):
            worst[f"{name}_{key}"] = float(np.abs(ours - theirs[f"{name}_{key}"]).max())
    print(f"stride-32 DLCRNet vs DeepLabCut's own module: {worst}")
    assert max(worst.values()) <= 1e-4
    converted = load_model(RANDOM_STRIDE32, frame_size=(256, 320))  # checks graph vs module
    assert converted.output_names == ("peaks", "locref", "pafs", "identity")


@pytest.mark.slow
def test_export_is_described(description: ModelDescription, export_path: Path) -> None:
    assert description.keypoints == KEYPOINTS and description.decoder == "dlc-assembly"
    assert description.max_animals == 2 and description.identity_classes == INDIVIDUALS
    assert description.output_names == ("peaks", "locref", "pafs", "identity")
    assert read_export(export_path).net_type == "dlcrnet_stride16_ms5"


@pytest.mark.slow
def test_clip_matches_deeplabcut_in_its_identity_order(description: ModelDescription) -> None:
    """ONNX Runtime, every clip frame: DeepLabCut's animals, row i = individual i."""
    ours, confidence = _estimate(description, clip_frames(), "onnxruntime")
    theirs, scores = _reference("clip_assemblies.npz")
    worst = worst_differences(ours, theirs)
    expected = _expected_confidence(theirs, scores)
    confidence_diff = float(np.nanmax(np.abs(confidence - expected)))
    print(f"clip ({CLIP_FRAMES} frames), ONNX Runtime vs analyze_videos: {worst}, "
          f"identity confidence {confidence_diff:.2e}")  # fmt: skip
    _assert_equal(worst)
    assert np.array_equal(np.isnan(confidence), np.isnan(expected))
    assert confidence_diff <= SCORE_TOLERANCE


@pytest.mark.slow
def test_clip_matches_deeplabcut_with_the_pytorch_backend(description: ModelDescription) -> None:
    ours, _ = _estimate(description, clip_frames()[::10], "pytorch")
    worst = worst_differences(ours, _reference("clip_assemblies.npz")[0][::10])
    print(f"clip (every 10th frame), PyTorch vs analyze_videos: {worst}")
    _assert_equal(worst)


def _labelled_images() -> list[Path]:
    names = [str(n) for n in np.load(FIXTURE / "reference" / "images_assemblies.npz")["names"]]
    return labelled_images_or_skip(IMAGES_FOLDER, names)


@pytest.mark.slow
def test_labelled_images_match_deeplabcut(description: ModelDescription) -> None:
    frames = [np.asarray(cv2.imread(str(p))) for p in _labelled_images()]
    ours, confidence = _estimate(description, frames, "onnxruntime")
    theirs, scores = _reference("images_assemblies.npz")
    worst = worst_differences(ours, theirs)
    print(f"10 labelled frames, ONNX Runtime vs analyze_images: {worst}")
    _assert_equal(worst)
    expected = _expected_confidence(theirs, scores)
    assert np.nanmax(np.abs(confidence - expected)) <= SCORE_TOLERANCE


@pytest.mark.slow
def test_video_analyzer_replays_the_clip_in_deeplabcuts_identity_order(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Pose]\nLIKELIHOOD_THRESHOLD = 0.1\n")
    result = run_cli(
        str(_write_clip(tmp_path)), "--fast", "--no-experiment", "--model", str(export_path),
        "--settings", str(settings), "--output-dir", str(tmp_path / "out"),
        script="utils/VideoAnalyzer.py", timeout=900, env={CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (pose_file,) = (tmp_path / "out").glob("*/*.pose.csv")
    table = read_pose_table(pose_file)
    assert table.individuals == ("animal1", "animal2") and table.keypoints == KEYPOINTS
    assert list(table.frames) == list(range(CLIP_FRAMES))
    theirs, scores = _reference("clip_assemblies.npz")
    # no tracker: rows are DeepLabCut's individuals; the CSV keeps 3 (x, y) and 4 decimals
    worst = worst_differences(table.points, theirs)
    print(f"VideoAnalyzer --fast, {CLIP_FRAMES} frames, row for row vs DeepLabCut: {worst}")
    assert worst["missing_disagree"] == 0
    assert max(worst["dx"], worst["dy"]) <= XY_TOLERANCE and worst["dlikelihood"] <= 1e-3
    (identity_file,) = (tmp_path / "out").glob("*/*.identity.csv")
    written = pd.read_csv(identity_file, index_col=0)
    expected = _expected_confidence(theirs, scores)
    np.testing.assert_allclose(written.to_numpy(np.float64), expected, atol=1e-4)


@pytest.mark.slow
def test_runs_live_in_the_app_in_deeplabcuts_identity_order(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    clip = _write_clip(tmp_path)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
        "[Pose]\nLIKELIHOOD_THRESHOLD = 0.1\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--model",
        str(export_path), "--output-dir", str(tmp_path / "out"), timeout=900,
        env={CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")
    table = read_pose_table(session / "flies.pose.csv")
    analysed = ~np.isnan(table.points[..., 2]).all(axis=(1, 2))
    frames = [int(f) for f in table.frames[analysed]]
    assert len(frames) >= 2  # live: the newest frames
    theirs, scores = _reference("clip_assemblies.npz")
    worst = worst_differences(table.points[analysed], theirs[frames])
    print(f"live, {len(frames)} frames analysed, row for row vs DeepLabCut: {worst}")
    assert worst["missing_disagree"] == 0
    assert max(worst["dx"], worst["dy"]) <= XY_TOLERANCE and worst["dlikelihood"] <= 1e-3
    written = pd.read_csv(session / "flies.identity.csv", index_col=0)
    expected = _expected_confidence(theirs, scores)[frames]
    np.testing.assert_allclose(written.loc[frames].to_numpy(np.float64), expected, atol=1e-4)


@pytest.mark.slow
def test_image_analyzer_gives_deeplabcuts_animals(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    paths = _labelled_images()
    for path in paths:
        (folder / path.name).write_bytes(path.read_bytes())
    result = run_cli(
        str(folder), "--model", str(export_path), "--output-dir", str(tmp_path / "out"),
        script="utils/ImageAnalyzer.py", timeout=900, env={CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(
        tmp_path / "out" / "images_predictions.csv", header=[0, 1, 2, 3], index_col=0
    )
    table.index = [Path(str(i)).name for i in table.index]
    points = table.loc[[p.name for p in paths]].to_numpy(np.float64).reshape(len(paths), 2, 13, 3)
    worst = worst_differences(points, _reference("images_assemblies.npz")[0])
    print(f"ImageAnalyzer vs DeepLabCut analyze_images: {worst}")
    assert worst["missing_disagree"] == 0
    assert worst["dx"] <= XY_TOLERANCE and worst["dy"] <= XY_TOLERANCE
    assert worst["dlikelihood"] <= 1e-3


@pytest.mark.slow
def test_inspect_describes_it_and_checks_the_conversion(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), clip_frames()[0])
    result = subprocess.run(
        [sys.executable, "-m", "deeplabstream.pose.inspect", str(export_path), "--frame",
         str(frame)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, CACHE_ENV: str(cache)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "dlcrnet_stride16_ms5" in out and "DLCRNet" in out and "identity" in out
    assert "reproduces the network" in out
