"""DeepLabCut 3.0 multi-animal DEKR models (``dekr_w18/32/48``): parity with DeepLabCut.

The reference model (``dekr_w18``: HRNet-w18 + DEKR head, two flies, 13 keypoints) and
DeepLabCut's own predictions were made with DeepLabCut 3.0.2
(``tests/fixtures/dlc3_dekr_flies/README.md`` says how). Two kinds of tests:

- without the export (they run everywhere): torchvision's ``deform_conv2d`` on a small random
  case against this project's rebuild with standard operators; DeepLabCut's own network maps
  and ``DEKRPredictor`` output on three 192x192 crops (``decoder/maps.npz``) against this
  project's per-cell steps and decoding, which must give DeepLabCut's poses; the export's
  config read and its unsupported variants refused;
- with the export (not in the repository: ``$DEEPLABSTREAM_DLC3_DEKR`` or ``DEFAULT_EXPORT``,
  else skipped): DeepLabCut's ``analyze_videos`` on 50 frames and ``analyze_images`` on 10
  labelled frames, through the estimator, a replay, a live session, ``utils/ImageAnalyzer.py``
  and ``deeplabstream-inspect``.

Animals are compared row for row: the estimator keeps DeepLabCut's order of rows (no tracker
in between); the app's pose files go through the tracker, which keeps identities by whole
animals, so there each frame's animals must be DeepLabCut's, whole, in some order.
"""

from __future__ import annotations

import dataclasses
import hashlib
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

from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.pose.decoding import dlc_dekr
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.dlc3 import check_export, read_export
from deeplabstream.pose.formats.dlc3_dekr import dekr_head_spec, dekr_settings
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlc_dekr import DlcDekrKeypointModel, deformable_conv3x3
from tests.support.dlc3_exports import (
    assert_whole_animals,
    assert_within,
    estimate_animals,
    export_or_skip,
    labelled_images_or_skip,
    whole_animal_differences,
    worst_differences,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_dekr_flies"
ENV = "DEEPLABSTREAM_DLC3_DEKR"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc-dekr/ref/DLC_flies_NetType.DEKR_W18_iteration-0_shuffle-2_snapshot-1.pt"
)
IMAGES_FOLDER = Path("/work/fw/dlc-dekr/ref/images")
SHARED_CLIP = "sleap-flies/inference/flies_clip_first100.mp4"
CLIP_FRAMES = 50
CLIP_SHA256 = "e25f173cff2d83c8e80d61a81b4125ed38a49544b73292e38d47456f1e1d2f08"
KEYPOINTS = (
    "head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4",
    "midlegR4", "hindlegL4", "hindlegR4", "eyeL", "eyeR",
)  # fmt: skip
XY_TOLERANCE = 1e-2  # pixels (issue 36: fp32 <= 0.01 px)
LIKELIHOOD_TOLERANCE = 1e-4


# --- DeepLabCut's own maps and predictor output: no export needed ------------------------------


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
def maps() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "decoder" / "maps.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def settings() -> dlc_dekr.DekrSettings:
    return dekr_settings(_Export(_config()), 4.0)


def _theirs(poses: np.ndarray) -> np.ndarray:
    """DeepLabCut's poses (A, K, 3) as this project's animals: its -1 rows NaN."""
    animals = poses[..., :3].astype(np.float64)
    animals[np.all(poses[..., :3] == -1, axis=-1)] = np.nan
    return animals


def test_the_config_gives_deeplabcuts_head_and_predictor(
    settings: dlc_dekr.DekrSettings,
) -> None:
    assert settings.individuals == 2 and settings.stride == 4.0
    # DeepLabCut's dekr_w18.yaml: no sigmoid, no heatmap matching, scores clipped
    assert not settings.use_heatmap and settings.clip_scores
    assert settings.keypoint_score_type == "combined" and settings.apply_pose_nms
    assert settings.nms_threshold == 0.05 and settings.max_absorb_distance == 75
    head = dekr_head_spec(_Export(_config()), 270)  # hrnet_w18, four branches: 15 x 18
    assert (head.heatmap_channels, head.keypoints, head.offsets_per_keypoint) == (18, 13, 15)
    assert (head.heatmap_blocks, head.offset_blocks) == (1, 2)


@pytest.mark.parametrize("dilation", [1, 2])
def test_the_deformable_convolution_is_torchvisions(
    maps: dict[str, np.ndarray], dilation: int
) -> None:
    """Standard operators (grid_sample + 1x1 conv) against torchvision's deform_conv2d."""
    x, offset, weight, expected = (
        torch.from_numpy(maps[f"deform_{name}_d{dilation}"])
        for name in ("x", "offset", "weight", "out")
    )
    ours = deformable_conv3x3(x, offset, weight, dilation)
    # offsets up to ~10 px: many points sample outside the map (zeros) or across its border;
    # outputs up to ~20 summed over 135 products: float32 rounding of another order (2.3e-5)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-4, rtol=1e-5)


def test_the_head_is_deeplabcuts_on_random_weights() -> None:
    """DeepLabCut's own DEKRHead (torchvision's deformable convolutions), seeded random weights.

    The reference model is barely trained (its offsets are about 0.005 cells): this checks the
    head where every layer matters, outputs of order 1.
    """
    from deeplabstream.pose.networks.dlc_dekr import DekrHead

    with np.load(FIXTURE / "decoder" / "random_head.npz") as data:
        arrays = {name: data[name] for name in data.files}
    state = {k.removeprefix("state."): torch.from_numpy(v) for k, v in arrays.items() if "." in k}
    head = DekrHead(dekr_head_spec(_Export(_config()), 270))
    head.load_state_dict(state, strict=True)
    with torch.inference_mode():
        heatmaps, offsets = head.eval()(torch.from_numpy(arrays["x"]))
    assert np.abs(arrays["offset"]).max() > 1.0  # not a vacuous comparison
    np.testing.assert_allclose(heatmaps.numpy(), arrays["heatmap"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(offsets.numpy(), arrays["offset"], atol=1e-5, rtol=0)


class _TinyBackbone(torch.nn.Module):
    """A stand-in for HRNet: stride 4, 8 channels."""

    stride = 4
    out_channels = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.slow
def test_the_head_converts_to_onnx_with_its_deformable_convolutions(tmp_path: Path) -> None:
    """The grid-sampling deformable convolutions in an ONNX graph, at two frame sizes."""
    from deeplabstream.pose.formats.conversion import ConversionSpec, convert, synthetic_input
    from deeplabstream.pose.formats.dlc3_dekr import (
        TOLERANCES,
        DekrHeadSpec,
        compare_dekr_outputs,
    )
    from deeplabstream.pose.networks.dlc_dekr import DlcDekrNetwork

    torch.manual_seed(0)
    spec = DekrHeadSpec(8, 6, 1, 1, 3, 2, 4, 2, 2, 3)
    network = DlcDekrNetwork(_TinyBackbone(), spec)
    with torch.no_grad():
        for name, value in network.state_dict().items():
            if name.endswith("running_var"):
                value.uniform_(0.5, 2.0)
            elif value.is_floating_point() and "regular_matrix" not in name:
                value.normal_(0, 0.3)
    module = DlcDekrKeypointModel(network, stride=4.0, apply_sigmoid=True).eval()
    source = tmp_path / "tiny.pt"
    source.write_bytes(b"tiny")
    conversion_spec = ConversionSpec(
        sources=(source,),
        input_name="images",
        output_names=dlc_dekr.OUTPUT_NAMES,
        example_shape=(1, 3, 64, 48),
        dynamic_size=True,
        compare=compare_dekr_outputs,
        tolerances=TOLERANCES,
    )
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    conversion = convert(module, conversion_spec, synthetic_input(64, 48, mean, std))
    assert conversion.differences["offsets"] < 1e-4, conversion.differences
    import onnxruntime

    session = onnxruntime.InferenceSession(str(conversion.onnx_file))
    other = synthetic_input(96, 80, mean, std)
    graph = session.run(None, {"images": other})
    with torch.inference_mode():
        eager = [o.numpy() for o in module(torch.from_numpy(other))]
    differences = compare_dekr_outputs(eager, graph)
    assert all(differences[name] < 1e-4 for name in dlc_dekr.OUTPUT_NAMES), differences


def _per_cell_steps(maps: dict[str, np.ndarray], apply_sigmoid: bool) -> list[np.ndarray]:
    """The graph's per-cell steps on DeepLabCut's own network outputs."""

    class Maps(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(maps["heatmap"]), torch.from_numpy(maps["offset"])

    steps = DlcDekrKeypointModel(Maps(), stride=4.0, apply_sigmoid=apply_sigmoid)
    with torch.inference_mode():
        return [o.numpy() for o in steps(torch.zeros(1))]


@pytest.mark.parametrize("use_heatmap", [False, True])
def test_the_decoding_gives_deeplabcuts_poses(
    maps: dict[str, np.ndarray], settings: dlc_dekr.DekrSettings, use_heatmap: bool
) -> None:
    """DeepLabCut's DEKRPredictor on its own maps (the model's settings, then use_heatmap on)."""
    heatmaps, peaks, offsets = _per_cell_steps(maps, apply_sigmoid=False)
    np.testing.assert_array_equal(heatmaps, maps["heatmap"])
    chosen = dataclasses.replace(settings, use_heatmap=use_heatmap)
    expected = maps["poses_use_heatmap" if use_heatmap else "poses"]
    for i in range(len(heatmaps)):
        ours, _ = dlc_dekr.decode_frame(heatmaps[i], peaks[i], offsets[i], chosen)
        theirs = _theirs(expected[i])
        assert np.isfinite(theirs).any(), "DeepLabCut found no animal: an empty test"
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))


def test_max_animals_keeps_the_best_centres(
    maps: dict[str, np.ndarray], settings: dlc_dekr.DekrSettings
) -> None:
    outputs = _per_cell_steps(maps, apply_sigmoid=False)
    base = ModelDescription(
        name="m",
        framework="deeplabcut",
        model_file=FIXTURE / "none.onnx",
        keypoints=KEYPOINTS,
        input_height=192,
        input_width=192,
        output_kind="coordinates",
        decoder="dlc-dekr",
        output_names=dlc_dekr.OUTPUT_NAMES,
        max_animals=3,
        decoding=settings,
    )
    three = dlc_dekr.decode_dlc_dekr(outputs, base)
    assert three.shape == (3, 3, 13, 3) and np.isnan(three[:, 2]).all()
    one = dlc_dekr.decode_dlc_dekr(outputs, dataclasses.replace(base, max_animals=1))
    for i, frame in enumerate(outputs[1]):
        best = float(frame[-1].max())  # the highest centre peak's animal
        _, ranks = dlc_dekr.decode_frame(outputs[0][i], frame, outputs[2][i], settings)
        row = int(np.argmax(ranks))
        assert ranks[row] == best
        np.testing.assert_array_equal(one[i, 0], three[i, row])


def test_pose_nms_drops_a_duplicate_and_orders_rows_as_deeplabcut() -> None:
    """Two candidates on the same animal: the later one dropped, kept rows reversed."""
    settings = dlc_dekr.DekrSettings(individuals=3, stride=1.0, use_heatmap=False)
    heatmaps = np.zeros((3, 20, 20), np.float32)  # 2 keypoints + centre
    heatmaps[:2] = 1.0
    for (row, col), score in (((2, 2), 0.9), ((2, 8), 0.8), ((15, 15), 0.7)):
        heatmaps[2, row, col] = score
    offsets = np.zeros((4, 20, 20), np.float32)
    offsets[:, 2, 8] = (6.0, 0.0, 6.0, 0.0)  # the second centre's keypoints on the first's
    animals, ranks = dlc_dekr.decode_frame(heatmaps, heatmaps, offsets, settings)
    # rows: kept ones by kept + (index + 1) / 4 descending: centre 3, centre 1, then dropped 2
    assert list(ranks[:2]) == [np.float32(0.7), np.float32(0.9)] and ranks[2] == -np.inf
    np.testing.assert_allclose(animals[0, :, :2], [[15.5, 15.5], [15.5, 15.5]])
    assert np.isnan(animals[2]).all()


def _export_file(tmp_path: Path, config: dict) -> Path:
    """An export holding ``config`` and no weights: enough for the check before a start."""
    path = tmp_path / "export.pt"
    torch.save({"config": config, "pose": {}}, path)
    return path


def test_the_check_before_a_start_accepts_the_dekr_export(tmp_path: Path) -> None:
    check_export(_export_file(tmp_path, _config()))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["model"]["backbone"].update(type="ResNet"),
            r"multi-animal DEKR export of dekr_w18 with backbone ResNet",
        ),
        (lambda c: c["metadata"].update(unique_bodyparts=["arena_corner"]), r"unique bodyparts"),
        (
            lambda c: c["model"]["heads"].update(identity={"type": "HeatmapHead"}),
            r"heads \{'bodypart': 'DEKRHead', 'identity': 'HeatmapHead'\}",
        ),
        (
            lambda c: c["data"]["inference"].update(resize={"height": 256, "width": 256}),
            r"its inference pre-processing uses resize",
        ),
    ],
)
def test_unsupported_dekr_variants_are_named(tmp_path: Path, change: object, expected: str) -> None:
    config = _config()
    change(config)  # type: ignore[operator]
    with pytest.raises(ModelError, match=expected):
        check_export(_export_file(tmp_path, config))


# --- the real export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A cache given by the environment is reused: the conversion takes minutes on 2 cores.
    given = os.environ.get(CACHE_ENV)
    folder = Path(given) if given else tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def export_path() -> Path:
    return export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut multi-animal dekr_w18", FIXTURE)


@pytest.fixture(scope="module")
def description(cache: Path, export_path: Path) -> ModelDescription:
    return load_model(export_path, frame_size=(512, 512))


def clip_frames() -> list[np.ndarray]:
    """The reference clip's frames: the shared clip's first 50, halved with INTER_AREA (BGR)."""
    capture = cv2.VideoCapture(str(shared_data(SHARED_CLIP)))
    frames: list[np.ndarray] = []
    while len(frames) < CLIP_FRAMES:
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA))
    capture.release()
    digest = hashlib.sha256(np.stack(frames).tobytes()).hexdigest()
    if digest != CLIP_SHA256:
        pytest.skip(f"this OpenCV decodes or halves the clip differently ({digest})")
    return frames


def _reference(name: str) -> np.ndarray:
    with np.load(FIXTURE / "reference" / name) as data:
        return _theirs(data["poses"])


def _assert_equal(worst: dict[str, float]) -> None:
    assert_within(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)


@pytest.mark.slow
def test_export_is_described(description: ModelDescription, export_path: Path) -> None:
    assert description.keypoints == KEYPOINTS and description.decoder == "dlc-dekr"
    assert description.max_animals == 2 and description.stride == 4.0
    assert description.output_names == ("heatmaps", "peaks", "offsets")
    assert read_export(export_path).net_type == "dekr_w18"


@pytest.mark.slow
def test_clip_matches_deeplabcuts_poses(description: ModelDescription) -> None:
    """ONNX Runtime, the estimator, every clip frame: DeepLabCut's animals in its own order."""
    ours = estimate_animals(description, clip_frames(), "onnxruntime")
    theirs = _reference("clip_poses.npz")
    assert np.isfinite(theirs[..., 0]).any(axis=(1, 2)).all(), "frames without animals"
    worst = worst_differences(ours, theirs)
    print(f"clip ({CLIP_FRAMES} frames), ONNX Runtime vs DeepLabCut analyze_videos: {worst}")
    _assert_equal(worst)


@pytest.mark.slow
def test_clip_matches_deeplabcut_with_the_pytorch_backend(description: ModelDescription) -> None:
    ours = estimate_animals(description, clip_frames()[::10], "pytorch")
    worst = worst_differences(ours, _reference("clip_poses.npz")[::10])
    print(f"clip (every 10th frame), PyTorch vs DeepLabCut analyze_videos: {worst}")
    _assert_equal(worst)


def _labelled_images() -> list[Path]:
    names = [str(n) for n in np.load(FIXTURE / "reference" / "images_poses.npz")["names"]]
    return labelled_images_or_skip(IMAGES_FOLDER, names)


@pytest.mark.slow
def test_labelled_images_match_deeplabcut(description: ModelDescription) -> None:
    frames = [np.asarray(cv2.imread(str(p))) for p in _labelled_images()]
    worst = worst_differences(
        estimate_animals(description, frames, "onnxruntime"), _reference("images_poses.npz")
    )
    print(f"10 labelled frames, ONNX Runtime vs DeepLabCut analyze_images: {worst}")
    _assert_equal(worst)


def _assert_table_matches(points: np.ndarray, frames: list[int], expected: np.ndarray) -> float:
    """Each analysed frame's animals vs DeepLabCut's, whole, in some order; the worst |dxy|.

    The app's pose files hold the framework's animals whole in identity order (issue 54): a
    permutation of DeepLabCut's rows per frame, nothing moved, dropped or added.
    """
    worst = whole_animal_differences(points, expected[frames], XY_TOLERANCE)
    assert_whole_animals(worst, XY_TOLERANCE, 1e-3)  # the CSV keeps 3 and 4 decimals
    return max(worst["dx"], worst["dy"])


def _write_clip(folder: Path) -> Path:
    """The reference clip as a lossless FFV1 video (what DeepLabCut analysed)."""
    path = folder / "flies_clip50_512.avi"
    fourcc = cv2.VideoWriter.fourcc(*"FFV1")
    writer = cv2.VideoWriter(str(path), fourcc, 25, (512, 512))
    for frame in clip_frames():
        writer.write(frame)
    writer.release()
    return path


# The shipped settings: the tracker writes DeepLabCut's animals whole whatever their scores
# (this barely trained model's are about 3e-5) and however far they jump between frames.
POSE_SETTINGS = "[Pose]\nMAX_ANIMALS = 2\n"


@pytest.mark.slow
def test_video_analyzer_replays_the_clip_as_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n" + POSE_SETTINGS)
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
    worst = _assert_table_matches(
        table.points, list(range(CLIP_FRAMES)), _reference("clip_poses.npz")
    )
    print(f"VideoAnalyzer --fast, {CLIP_FRAMES} frames, tracker's order vs DeepLabCut: {worst}")


@pytest.mark.slow
def test_runs_live_in_the_app_and_matches_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    clip = _write_clip(tmp_path)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n" + POSE_SETTINGS,
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
    worst = _assert_table_matches(table.points[analysed], frames, _reference("clip_poses.npz"))
    print(f"live, {len(frames)} frames analysed, vs DeepLabCut: {worst}")


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
    worst = worst_differences(points, _reference("images_poses.npz"))  # no tracker: DLC's order
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
    assert "dekr_w18" in out and "DEKRHead" in out and "DEKRPredictor" in out
    assert "reproduces the network" in out
