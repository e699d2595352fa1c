"""DeepLabCut 3.0 multi-animal bottom-up models (part-affinity fields): parity with DeepLabCut.

The reference model (``resnet_50`` with DeepLabCut's ``DLCRNetHead``, two flies, 13 keypoints)
and DeepLabCut's own predictions were made with DeepLabCut 3.0.2
(``tests/fixtures/dlc3_multianimal_flies/README.md`` says how). Two kinds of tests:

- without the export (they run everywhere): DeepLabCut's own network maps and predictor output
  on two 128x128 crops (``decoder/maps.npz``) against this project's per-pixel steps, PAF costs
  and assembly, which must give DeepLabCut's animals exactly; the export's config read and its
  unsupported variants refused;
- with the export (129 MB, not in the repository: ``$DEEPLABSTREAM_DLC3_MULTIANIMAL`` or
  ``DEFAULT_EXPORT``, else skipped): DeepLabCut's ``analyze_videos`` on 50 frames and
  ``analyze_images`` on 10 labelled frames, through the estimator, a replay, a live session,
  ``utils/ImageAnalyzer.py`` and ``deeplabstream-inspect``.

Animals are compared row for row: the estimator keeps DeepLabCut's order of assemblies (no
tracker in between); the app's pose files go through the tracker, which keeps identities by
whole animals, so there each frame's animals must be DeepLabCut's, whole, in some order.
"""

from __future__ import annotations

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
from deeplabstream.pose.decoding import dlc_assembly
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.formats.dlc3 import check_export, read_export
from deeplabstream.pose.formats.dlc3_multianimal import assembly_settings, paf_head_spec
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlc_paf import DlcPafKeypointModel
from tests.support.dlc3_exports import (
    assert_whole_animals,
    assert_within,
    estimate_animals,
    export_or_skip,
    labelled_images_or_skip,
    run_converted_models_cache,
    whole_animal_differences,
    worst_differences,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "dlc3_multianimal_flies"
ENV = "DEEPLABSTREAM_DLC3_MULTIANIMAL"
DEFAULT_EXPORT = Path(
    "/work/fw/dlc-multianimal/ref/DLC_flies_NetType.RESNET_50_iteration-0_shuffle-1_snapshot-1.pt"
)
IMAGES_FOLDER = Path("/work/fw/dlc-multianimal/ref/images")
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
def settings() -> dlc_assembly.DlcAssemblySettings:
    return assembly_settings(_Export(_config()), 4.0)


def _theirs(poses: np.ndarray) -> np.ndarray:
    """DeepLabCut's poses (A, K, >=3) as this project's animals.

    DeepLabCut fills unused rows with -1 (x, y and score) and gives an animal's missing
    keypoints NaN coordinates and score 0; this project writes NaN for all three in both cases.
    """
    animals = poses[..., :3].astype(np.float64)
    animals[np.all(poses[..., :3] == -1, axis=-1)] = np.nan
    animals[np.isnan(animals[..., 0])] = np.nan
    return animals


def test_the_config_gives_deeplabcuts_graph_and_settings(
    settings: dlc_assembly.DlcAssemblySettings,
) -> None:
    # 13 keypoints: DeepLabCut's full graph (78 < 105 edges: not pruned), every edge kept
    assert len(settings.graph) == 78 and settings.graph[:2] == ((0, 1), (0, 2))
    assert settings.edges_to_keep == tuple(range(78)) and settings.individuals == 2
    assert settings.min_affinity == 0.05 and settings.pcutoff == 0.1
    head = paf_head_spec(_Export(_config()))
    assert head.num_stages == 5 and head.stride == 4  # a stride-16 ResNet: stride 4 maps
    assert head.heatmap.channels == (128 + 13 + 156, 13)
    assert head.locref.channels == (26, 26) and head.paf.channels == (297, 156)


def test_the_graphs_steps_give_deeplabcuts_peaks(maps: dict[str, np.ndarray]) -> None:
    """Sigmoid, Gaussian smoothing and max-pool suppression on DeepLabCut's own heatmaps."""

    class Maps(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(torch.from_numpy(maps[n]) for n in ("heatmap", "locref", "paf"))

    steps = DlcPafKeypointModel(
        Maps(), stride=4.0, nms_radius=5, sigma=1.0, locref_std=7.2801, apply_sigmoid=True
    )
    with torch.inference_mode():
        peaks, locref, pafs = (o.numpy() for o in steps(torch.zeros(1)))
    theirs = maps["maxima"]
    assert np.array_equal(peaks >= 0.01, theirs >= 0.01)
    np.testing.assert_allclose(peaks, theirs, atol=1e-6)
    np.testing.assert_array_equal(locref, maps["locref"] * np.float32(7.2801))
    np.testing.assert_array_equal(pafs, maps["paf"])


def test_edge_costs_are_deeplabcuts_to_the_bit(
    maps: dict[str, np.ndarray], settings: dlc_assembly.DlcAssemblySettings
) -> None:
    locref = maps["locref"] * np.float32(7.2801)
    compared = 0
    for i in range(len(maps["maxima"])):
        found = dlc_assembly.find_peaks(maps["maxima"][i], locref[i], settings)
        costs = dlc_assembly.edge_costs(maps["paf"][i], found, settings)
        keys = sorted(int(k.split("_")[2]) for k in maps if k.startswith(f"m1_{i}_"))
        assert sorted(costs) == keys
        for edge in keys:
            np.testing.assert_array_equal(costs[edge], maps[f"m1_{i}_{edge}"])
            compared += costs[edge].size
    assert compared > 1000


def test_the_assembly_gives_deeplabcuts_animals_exactly(
    maps: dict[str, np.ndarray], settings: dlc_assembly.DlcAssemblySettings
) -> None:
    locref = maps["locref"] * np.float32(7.2801)
    for i in range(len(maps["maxima"])):
        ours = dlc_assembly.decode_frame(maps["maxima"][i], locref[i], maps["paf"][i], settings)
        theirs = _theirs(maps["poses"][i])
        assert np.isfinite(theirs).any(), "DeepLabCut assembled no animal: an empty test"
        np.testing.assert_array_equal(ours, theirs)


def test_max_animals_keeps_deeplabcuts_first_animals(
    maps: dict[str, np.ndarray], settings: dlc_assembly.DlcAssemblySettings
) -> None:
    locref = maps["locref"] * np.float32(7.2801)
    outputs = [maps["maxima"], locref, maps["paf"]]
    base = ModelDescription(
        name="m",
        framework="deeplabcut",
        model_file=FIXTURE / "none.onnx",
        keypoints=KEYPOINTS,
        input_height=128,
        input_width=128,
        output_kind="coordinates",
        decoder="dlc-assembly",
        output_names=dlc_assembly.OUTPUT_NAMES,
        max_animals=3,
        decoding=settings,
    )
    three = dlc_assembly.decode_dlc_assembly(outputs, base)
    assert three.shape == (2, 3, 13, 3) and np.isnan(three[:, 2]).all()
    one = dlc_assembly.decode_dlc_assembly(outputs, _replace(base, max_animals=1))
    np.testing.assert_array_equal(one[:, 0], three[:, 0])


def _replace(description: ModelDescription, **changes: object) -> ModelDescription:
    import dataclasses

    return dataclasses.replace(description, **changes)  # type: ignore[arg-type]


def _export_file(tmp_path: Path, config: dict) -> Path:
    """An export holding ``config`` and no weights: enough for the check before a start."""
    path = tmp_path / "export.pt"
    torch.save({"config": config, "pose": {}}, path)
    return path


def test_the_check_before_a_start_accepts_the_paf_export(tmp_path: Path) -> None:
    check_export(_export_file(tmp_path, _config()))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["model"]["backbone"].update(type="SomeOtherNet"),
            r"backbone SomeOtherNet \(ResNet, CSPNeXt, HRNet, DLCRNet are\)",
        ),
        (
            lambda c: c["metadata"].update(unique_bodyparts=["arena_corner"]),
            r"unique bodyparts",
        ),
        (
            lambda c: c["model"]["heads"].update(identity={"type": "HeatmapHead"}),
            r"an identity head HeatmapHead with predictor None",
        ),
        (
            lambda c: c["data"]["inference"].update(resize={"height": 256, "width": 256}),
            r"its inference pre-processing uses resize",
        ),
    ],
)
def test_unsupported_multi_animal_variants_are_named(
    tmp_path: Path, change: object, expected: str
) -> None:
    config = _config()
    change(config)  # type: ignore[operator]
    with pytest.raises(ModelError, match=expected):
        check_export(_export_file(tmp_path, config))


def test_a_dekr_export_without_its_predictor_is_refused_with_what_the_file_holds(
    tmp_path: Path,
) -> None:
    # DEKR runs (test_pose_dlc3_dekr.py); an export whose config lacks its predictor does not
    config = _config()
    config["net_type"] = "dekr_w32"
    config["model"]["backbone"] = {"type": "HRNet", "model_name": "hrnet_w32"}
    config["model"]["heads"] = {"bodypart": {"type": "DEKRHead"}}
    with pytest.raises(
        ModelError,
        match=r"DEKR export of dekr_w32 with predictor None.*heads \{'bodypart': 'DEKRHead'",
    ):
        check_export(_export_file(tmp_path, config))


# --- the real export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The run's shared folder: test_animal_rules_replay.py converts the same export (resnet_50,
    # minutes on two cores); these tests check what the graph gives, not that it was converted.
    yield from run_converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def export_path() -> Path:
    return export_or_skip(ENV, DEFAULT_EXPORT, "DeepLabCut multi-animal resnet_50", FIXTURE)


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
        return data["animals"]


def _assert_equal(worst: dict[str, float]) -> None:
    assert_within(worst, XY_TOLERANCE, LIKELIHOOD_TOLERANCE)


@pytest.mark.slow
def test_export_is_described(description: ModelDescription, export_path: Path) -> None:
    assert description.keypoints == KEYPOINTS and description.decoder == "dlc-assembly"
    assert description.max_animals == 2 and description.stride == 4.0
    assert description.output_names == ("peaks", "locref", "pafs")
    assert read_export(export_path).net_type == "resnet_50"


@pytest.mark.slow
def test_clip_matches_deeplabcuts_assemblies(description: ModelDescription) -> None:
    """ONNX Runtime, the estimator, every clip frame: DeepLabCut's animals in its own order."""
    ours = estimate_animals(description, clip_frames(), "onnxruntime")
    theirs = _reference("clip_assemblies.npz")
    assert np.isfinite(theirs[..., 0]).any(axis=(1, 2)).all(), "frames without animals"
    worst = worst_differences(ours, theirs)
    print(f"clip ({CLIP_FRAMES} frames), ONNX Runtime vs DeepLabCut analyze_videos: {worst}")
    _assert_equal(worst)


@pytest.mark.slow
def test_clip_matches_deeplabcut_with_the_pytorch_backend(description: ModelDescription) -> None:
    ours = estimate_animals(description, clip_frames()[::10], "pytorch")
    worst = worst_differences(ours, _reference("clip_assemblies.npz")[::10])
    print(f"clip (every 10th frame), PyTorch vs DeepLabCut analyze_videos: {worst}")
    _assert_equal(worst)


def _labelled_images() -> list[Path]:
    names = [str(n) for n in np.load(FIXTURE / "reference" / "images_assemblies.npz")["names"]]
    return labelled_images_or_skip(IMAGES_FOLDER, names)


@pytest.mark.slow
def test_labelled_images_match_deeplabcut(description: ModelDescription) -> None:
    frames = [np.asarray(cv2.imread(str(p))) for p in _labelled_images()]
    worst = worst_differences(
        estimate_animals(description, frames, "onnxruntime"), _reference("images_assemblies.npz")
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


@pytest.mark.slow
def test_video_analyzer_replays_the_clip_as_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    settings = tmp_path / "settings.ini"
    # The shipped settings: the tracker writes DeepLabCut's animals whole (issue 54).
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 2\n")
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
        table.points, list(range(CLIP_FRAMES)), _reference("clip_assemblies.npz")
    )
    print(f"VideoAnalyzer --fast, {CLIP_FRAMES} frames, tracker's order vs DeepLabCut: {worst}")


@pytest.mark.slow
def test_runs_live_in_the_app_and_matches_deeplabcut(
    tmp_path: Path, cache: Path, export_path: Path, description: ModelDescription
) -> None:
    clip = _write_clip(tmp_path)
    settings = write_settings(
        tmp_path,
        f"[Camera flies]\nSOURCE = video\nPATH = {clip}\nPACING = native\n"
        "[Pose]\nMAX_ANIMALS = 2\n",  # as the replay's
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
    worst = _assert_table_matches(table.points[analysed], frames, _reference("clip_assemblies.npz"))
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
    worst = worst_differences(
        points, _reference("images_assemblies.npz")
    )  # no tracker: DLC's order
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
    assert "resnet_50" in out and "DLCRNetHead" in out and "assembly" in out
    assert "reproduces the network" in out
