"""Dynamic cropping (pose.runtime.cropping, the inference worker): crop rules, settings, real model.

The crop rules are tested on their own; the real-model tests use the DeepLabCut 3.0 export in
../shared/data/dlc3-openfield-cspnext_s (a network that runs at any input size) in place, and
skip when it is absent. Converted graphs go to the test run's temporary cache folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.logs import LogTarget
from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
from deeplabstream.live.processes.analysis.models import load_models
from deeplabstream.outputs.pose.files import TIMING_COLUMNS, PoseTimingWriter
from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.cropping import (
    ContextFeeder,
    ContextRecorder,
    Crop,
    CropSettings,
    DynamicCrop,
    full_crop,
    input_multiple,
    place_span,
    split_context_graphs,
)
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import EffectiveCamera, crop_settings
from deeplabstream.settings.sections import CameraCommonSettings, PoseSettings
from deeplabstream.transport.ring import RingSpec
from tests.support.dlc3_exports import run_converted_models_cache
from tests.support.files import read_video, write_settings
from tests.support.paths import shared_data
from tests.support.processes import run_cli

DLC = "dlc3-openfield-cspnext_s"
EXPORT = "model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
CLIP = "clip/m3v1mp4_first100.mp4"
KEYPOINTS = ("snout", "leftear", "rightear", "tailbase")
# Where tracking holds, a crop with the default margin, fed the frame's channel gates, moves
# keypoints this little from the full frame's (the context beyond the margin is cut; measured
# on the real clip).
CROP_XY_TOLERANCE = 0.5  # pixels


def pose(points: list[tuple[float, float]], likelihood: float = 0.9) -> np.ndarray:
    """Keypoints (K, 3) at ``points`` with one likelihood."""
    return np.array([(x, y, likelihood) for x, y in points], np.float64)


# --- the crop rules -----------------------------------------------------------------------------


def test_the_crop_holds_the_keypoints_plus_the_margin_on_the_grid() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, margin=32, size_step=64), 3, multiple=32)
    assert crop.current == full_crop((480, 640))  # nothing known yet: the whole frame
    region = crop.update(pose([(300, 200), (380, 260), (340, 230)]))
    assert not region.full
    assert region.x % 32 == 0 and region.y % 32 == 0  # the full frame's grid
    assert region.width % 64 == 0 and region.height % 64 == 0  # few shapes
    # x 268..412 and y 168..292 (the margin included) lie inside
    assert region.x <= 268 and region.x + region.width > 412
    assert region.y <= 168 and region.y + region.height > 292
    assert region.box == (256, 160, 192, 192)


def test_a_larger_margin_gives_a_larger_crop() -> None:
    points = pose([(300, 200), (340, 230)])
    small = DynamicCrop((480, 640), CropSettings(True, margin=8, size_step=32), 2, 32)
    large = DynamicCrop((480, 640), CropSettings(True, margin=100, size_step=32), 2, 32)
    a, b = small.update(points), large.update(points)
    assert a.width < b.width and a.height < b.height
    assert b.x <= 200 and b.x + b.width > 440 and b.y <= 100 and b.y + b.height > 330


def test_crops_are_clamped_to_the_frame_and_keep_their_size() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, margin=40, size_step=64), 2, 32)
    corner = crop.update(pose([(630, 470), (600, 450)]))
    assert corner.x + corner.width == 640 and corner.y + corner.height == 480
    assert corner.x % 32 == 0 and corner.y % 32 == 0
    middle = crop.update(pose([(330, 270), (300, 250)]))
    assert (corner.width, corner.height) == (middle.width, middle.height)  # no new shape
    origin = crop.update(pose([(3, 2), (20, 30)]))
    assert (origin.x, origin.y) == (0, 0)


def test_a_frame_not_on_the_grid_gets_a_shorter_crop_at_its_edge() -> None:
    crop = DynamicCrop((406, 396), CropSettings(True, margin=10, size_step=128), 1, 32)
    region = crop.update(pose([(390, 400)]))
    assert region.x % 32 == 0 and region.y % 32 == 0
    # It reaches the frame's end, a little longer than the step: the keypoint keeps its margin.
    assert (region.x + region.width, region.y + region.height) == (396, 406)
    assert (region.width, region.height) == (396 - 256, 406 - 256)


def test_sizes_are_rounded_up_to_a_step_on_the_networks_multiple() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, margin=0, size_step=40), 1, 32)
    assert crop.step == 64  # 40 rounded up to the multiple 32
    for x, y in [(100, 100), (333, 222), (500, 50), (17, 460)]:
        region = crop.update(pose([(x, y), (x + 5, y + 70)]))
        assert region.width % 64 == 0 and region.height % 64 == 0
    assert place_span(10.0, 20.0, 640, 32, 64) == (0, 64)
    assert place_span(100.0, 250.0, 640, 32, 64) == (96, 192)
    assert place_span(600.0, 639.0, 640, 32, 64) == (576, 64)
    assert place_span(-50.0, 700.0, 640, 32, 64) == (0, 640)


def test_a_crop_as_large_as_the_frame_is_the_full_frame() -> None:
    crop = DynamicCrop((256, 256), CropSettings(True, margin=200, size_step=64), 2, 32)
    assert crop.update(pose([(10, 10), (240, 240)])).full


def test_tracking_lost_resets_to_the_full_frame() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, 32, likelihood=0.6), 3, 32)
    tracked = pose([(300, 200), (320, 210), (340, 230)])
    assert not crop.update(tracked).full
    one_low = tracked.copy()
    one_low[1, 2] = 0.2  # every keypoint is needed by default
    assert crop.update(one_low).full
    assert not crop.update(tracked).full
    missing = tracked.copy()
    missing[0, :2] = np.nan  # a keypoint that is not there is not confident
    assert crop.update(missing).full
    assert crop.update(pose([(1, 1)] * 3, likelihood=0.59)).full
    assert not crop.update(tracked).full
    assert crop.reset().full and crop.current.full


def test_min_keypoints_crops_around_the_confident_ones_only() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, 16, 0.5, min_keypoints=2), 3, 32)
    points = pose([(100, 100), (120, 110), (600, 400)])
    points[2, 2] = 0.1  # the far keypoint is not confident: it does not widen the crop
    region = crop.update(points)
    assert not region.full and region.x + region.width < 400
    points[1, 2] = 0.1  # one confident keypoint is fewer than two
    assert crop.update(points).full


def test_a_flipped_camera_places_its_crop_on_the_mirrored_grid() -> None:
    width = 650  # not a multiple of 32: the two grids differ
    settings = CropSettings(True, margin=24, size_step=64)
    plain = DynamicCrop((480, width), settings, 2, 32)
    flipped = DynamicCrop((480, width), settings, 2, 32, flip=True)
    points = pose([(200, 100), (260, 150)])
    mirrored = points.copy()
    mirrored[:, 0] = (width - 1) - points[:, 0]  # what the network sees of a flipped camera
    a = flipped.update(points)
    b = plain.update(mirrored)
    # The flipped camera's crop is the mirror image of the crop of the mirrored frame.
    assert (a.y, a.width, a.height) == (b.y, b.width, b.height)
    assert a.x == width - (b.x + b.width)
    assert (width - (a.x + a.width)) % 32 == 0  # on the grid counted from the right edge
    assert a.x <= 200 - 24 and a.x + a.width > 260 + 24


def test_a_crop_is_a_view_and_maps_back_to_frame_pixels() -> None:
    frame = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    region = Crop(64, 32, 128, 96, False)
    view = region.view(frame)
    assert view.shape == (96, 128, 3) and np.shares_memory(view, frame)
    assert view[0, 0, 0] == frame[32, 64, 0]
    points = pose([(0.0, 0.0), (10.5, 20.25)])
    assert region.to_frame(points) is points
    np.testing.assert_array_equal(points[:, :2], [[64, 32], [74.5, 52.25]])
    assert full_crop((480, 640)).view(frame) is frame


def test_a_refresh_analyses_one_whole_frame_after_so_many_crops() -> None:
    crop = DynamicCrop((480, 640), CropSettings(True, 32, refresh=3), 2, 32)
    tracked = pose([(300, 200), (320, 210)])
    regions = [crop.update(tracked) for _ in range(9)]
    assert [r.full for r in regions] == [False, False, False, True] * 2 + [False]
    never = DynamicCrop((480, 640), CropSettings(True, 32, refresh=0), 2, 32)
    assert not any(never.update(tracked).full for _ in range(50))


def test_bad_crop_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        CropSettings(True, margin=-1)
    with pytest.raises(ValueError, match="step"):
        CropSettings(True, size_step=0)
    with pytest.raises(ValueError, match="min_keypoints"):
        CropSettings(True, min_keypoints=0)
    with pytest.raises(ValueError, match="refresh"):
        CropSettings(True, refresh=-1)


# --- the whole frame's channel gates --------------------------------------------------------------


def _gated_graph(path: Path) -> Path:
    """A tiny network with CSPNeXt's channel attention: features * gate(mean of features)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["features"], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["features"], ["means"], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["means", "w2", "b2"], ["logits"]),
        helper.make_node("HardSigmoid", ["logits"], ["gate"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["features", "gate"], ["keypoints"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gated",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def test_the_graph_splits_into_a_gate_recorder_and_a_gate_fed_crop_graph(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    graphs = split_context_graphs(_gated_graph(tmp_path / "net.fp32.onnx"))
    assert graphs is not None
    assert graphs.gates == ("gate",) and graphs.channels == (4,)
    assert graphs.full.parent == graphs.crop.parent == tmp_path  # beside the graph
    crop_graph = onnx.load(str(graphs.crop)).graph
    assert {n.op_type for n in crop_graph.node} == {"Conv", "Mul"}  # the pooling branch is gone
    assert {i.name for i in crop_graph.initializer} == {"w1"}
    image = np.random.default_rng(1).normal(size=(1, 3, 24, 32)).astype(np.float32)
    full = ort.InferenceSession(str(graphs.full), providers=["CPUExecutionProvider"])
    features, gate = full.run(["keypoints", "gate"], {"images": image})
    assert gate.shape == (1, 4, 1, 1)
    crop = ort.InferenceSession(str(graphs.crop), providers=["CPUExecutionProvider"])
    part = image[:, :, 8:, 16:]  # fed the whole image's gate, a crop's features are the frame's
    (cropped,) = crop.run(["keypoints"], {"images": part, "gate": gate})
    np.testing.assert_allclose(cropped[:, :, 1:-1, 1:-1], features[:, :, 9:-1, 17:-1], atol=1e-5)
    again = split_context_graphs(tmp_path / "net.fp32.onnx")  # written once, then reused
    assert again == graphs


def test_a_graph_without_gates_is_not_split(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["images"], ["keypoints"])
    graph = helper.make_graph(
        [node],
        "plain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, ir_version=8), str(path))
    assert split_context_graphs(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.onnx"]


def test_the_timing_file_records_the_analysed_region(tmp_path: Path) -> None:
    path = tmp_path / "cam.pose_timing.csv"
    writer = PoseTimingWriter(path)
    stages = {"preprocess": 0.001, "inference": 0.01, "decode": 0.0001}
    writer.write(0, 1_000, 2_000, stages, 3_000, 1, None, (0, 0, 640, 480))
    writer.write(1, 4_000, 5_000, stages, 6_000, 1, None, (64, 32, 256, 192))
    writer.write(2, 7_000, 8_000, stages, 9_000, 1)  # unknown region: empty cells
    writer.close()
    table = pd.read_csv(path)
    assert list(table.columns) == list(TIMING_COLUMNS)
    assert table.loc[1, ["crop_x", "crop_y", "crop_width", "crop_height"]].tolist() == [
        64,
        32,
        256,
        192,
    ]
    assert table.loc[2, ["crop_x", "crop_width"]].isna().all()


# --- settings -------------------------------------------------------------------------------------


def test_camera_keys_override_the_pose_keys() -> None:
    pose_keys = PoseSettings(dynamic_crop="on", dynamic_crop_margin=50, likelihood_threshold=0.7)
    assert crop_settings(pose_keys) == CropSettings(True, 50, 0.7, None, 64)
    camera = CameraCommonSettings(
        dynamic_crop="off", dynamic_crop_margin=20, likelihood_threshold=0.3
    )
    assert crop_settings(pose_keys, camera) == CropSettings(False, 20, 0.3, None, 64)
    camera = CameraCommonSettings(dynamic_crop_likelihood=0.9, dynamic_crop_min_keypoints=2)
    assert crop_settings(pose_keys, camera) == CropSettings(True, 50, 0.9, 2, 64)
    assert not crop_settings(PoseSettings()).enabled  # off by default


def test_the_settings_file_reads_the_crop_keys(tmp_path: Path) -> None:
    path = write_settings(
        tmp_path,
        "[Camera left]\nSOURCE = synthetic\nDYNAMIC_CROP = off\n"
        "[Camera right]\nSOURCE = synthetic\nDYNAMIC_CROP_MARGIN = 96\n"
        "[Pose]\nDYNAMIC_CROP = on\nDYNAMIC_CROP_MARGIN = 48\nDYNAMIC_CROP_SIZE_STEP = 32\n"
        "DYNAMIC_CROP_MIN_KEYPOINTS = 3\n",
    )
    settings = load_settings(path)
    left = crop_settings(settings.pose, settings.camera("left").common)
    right = crop_settings(settings.pose, settings.camera("right").common)
    assert not left.enabled
    assert right == CropSettings(True, 96, 0.5, 3, 32)
    bad = write_settings(
        tmp_path, "[Camera a]\nSOURCE = synthetic\n[Pose]\nDYNAMIC_CROP = maybe\n", "bad.ini"
    )
    with pytest.raises(ValueError, match="DYNAMIC_CROP"):
        load_settings(bad)


def test_a_fixed_size_model_with_dynamic_crop_says_which_camera_and_what_to_do(
    tmp_path: Path,
) -> None:
    """The bundled model runs at its fixed input size: cropping is refused, not ignored."""
    camera = WorkerCamera(
        camera_id=0,
        ring=RingSpec("unused", FrameGeometry(480, 640, 3), 8),
        channel=None,  # type: ignore[arg-type]  # load_models reads no frames
        effective=EffectiveCamera("arena", dynamic_crop=CropSettings(enabled=True)),
    )
    job = PoseJob(
        cameras=(camera,),
        settings=PoseSettings(threads=1),
        session_dir=tmp_path,
        control=None,  # type: ignore[arg-type]
        poses=None,  # type: ignore[arg-type]
        log_target=LogTarget(),
    )
    with pytest.raises(ModelError) as error:
        load_models(job)
    message = str(error.value)
    assert "camera arena" in message and "DYNAMIC_CROP = off" in message
    assert "any size" in message


# --- the real model that runs at any size ---------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test run's cache folder for converted graphs (the export converted once a run)."""
    yield from run_converted_models_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def description(cache: Path) -> ModelDescription:
    return load_model(shared_data(f"{DLC}/{EXPORT}"))


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return read_video(shared_data(f"{DLC}/{CLIP}"))


def _estimate(
    description: ModelDescription, backend: object, frame: np.ndarray, region: Crop, flip: bool
) -> np.ndarray:
    """Keypoints of one frame analysed in ``region``, in frame pixels."""
    view = region.view(frame)
    sized = description.at_input_size(*region.size)
    estimator = NetworkEstimator(sized, backend, view.shape, 1)  # type: ignore[arg-type]
    return region.to_frame(estimator.estimate([view], [flip])[0])


def test_the_export_crops_on_its_backbones_grid(description: ModelDescription) -> None:
    assert input_multiple(description) == 32  # CSPNeXt P5: stem and four stages halve


@pytest.mark.parametrize("flip", [False, True])
def test_a_crop_fed_the_whole_frames_gates_gives_its_keypoints(
    description: ModelDescription, clip_frames: list[np.ndarray], flip: bool
) -> None:
    """Cropped around the full frame's pose, flipped or not: the same keypoints."""
    graphs = split_context_graphs(Path(description.model_file))
    assert graphs is not None and len(graphs.gates) == 4  # one per CSPNeXt stage
    full = dataclasses.replace(
        description,
        model_file=graphs.full,
        output_names=(*description.output_names, *graphs.gates),
    )
    part = dataclasses.replace(description, model_file=graphs.crop)
    recorder = ContextRecorder(open_backend(full, "onnxruntime", "cpu", 2), graphs, 1)
    feeder = ContextFeeder(open_backend(part, "onnxruntime", "cpu", 2), graphs, np.float32)
    try:
        for index in (0, 50, 99):
            frame = clip_frames[index]
            if flip:  # a camera that sees the arena mirrored: FLIP shows the network the original
                frame = np.ascontiguousarray(frame[:, ::-1])
            whole = _estimate(description, recorder, frame, full_crop(frame.shape[:2]), flip)
            feeder.context = recorder.context
            crop = DynamicCrop(frame.shape[:2], CropSettings(True, likelihood=0.0), 4, 32, flip)
            region = crop.update(whole)
            assert not region.full and region.width * region.height < frame[..., 0].size / 2
            cropped = _estimate(description, feeder, frame, region, flip)
            difference = np.abs(cropped - whole)
            assert difference[:, :2].max() < CROP_XY_TOLERANCE, (index, region, difference)
    finally:
        recorder.close()
        feeder.close()


def test_a_flipped_crop_sees_the_flipped_full_frame_s_pixels(
    description: ModelDescription, clip_frames: list[np.ndarray]
) -> None:
    """With the same context both ways, a mirrored crop gives the mirrored frame's numbers."""
    frame = clip_frames[10]
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    backend = open_backend(description, "onnxruntime", "cpu", 2)
    try:
        whole = _estimate(description, backend, mirrored, full_crop(frame.shape[:2]), False)
        plain = DynamicCrop(frame.shape[:2], CropSettings(True, 96, 0.0), 4, 32)
        flipped = DynamicCrop(frame.shape[:2], CropSettings(True, 96, 0.0), 4, 32, flip=True)
        region = plain.update(whole)
        unmirrored = whole.copy()
        unmirrored[:, 0] = (frame.shape[1] - 1) - whole[:, 0]
        flipped_region = flipped.update(unmirrored)
        a = _estimate(description, backend, mirrored, region, False)
        b = _estimate(description, backend, frame, flipped_region, True)
        b[:, 0] = (frame.shape[1] - 1) - b[:, 0]
        np.testing.assert_allclose(a, b, atol=1e-3)  # the same pixels, the same numbers
    finally:
        backend.close()


def _clip_reference() -> np.ndarray:
    """DeepLabCut's analyze_videos predictions on the clip (the full frame): (100, K, 3)."""
    (csv,) = shared_data(f"{DLC}/reference/analyze_videos_bs4").glob("*.csv")
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table.columns = table.columns.droplevel(0)
    columns = [(k, c) for k in KEYPOINTS for c in ("x", "y", "likelihood")]
    return table[columns].to_numpy(np.float64).reshape(len(table), len(KEYPOINTS), 3)


@pytest.mark.slow  # two whole replays (24 s here): the default suite keeps under 15 minutes
def test_replay_with_dynamic_crop_matches_the_full_frame(tmp_path: Path, cache: Path) -> None:
    """VideoAnalyzer --fast through the real worker: cropped frames, recorded and counted.

    The full frame's keypoints are DeepLabCut's own on the clip (the project's full-frame
    keypoints equal them within 1e-4 px: tests/unit/pose/test_pose_dlc3.py).
    """
    clip = shared_data(f"{DLC}/{CLIP}")
    model = shared_data(f"{DLC}/{EXPORT}")
    settings = write_settings(
        tmp_path,
        "[Camera unused]\nSOURCE = synthetic\n"
        f"[Pose]\nMODEL_PATH = {model}\nTHREADS = 2\nDYNAMIC_CROP = on\n"
        # This model's likelihoods are low (trained from scratch): at 0.5 with every keypoint,
        # tracking counts as lost on 60 of the clip's 100 frames.
        "DYNAMIC_CROP_LIKELIHOOD = 0.3\n",
    )
    result = run_cli(
        str(clip),
        "--fast",
        "--no-experiment",
        "--settings",
        str(settings),
        "--output-dir",
        str(tmp_path / "out"),
        script="utils/VideoAnalyzer.py",
        timeout=600,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    session = tmp_path / "out" / "m3v1mp4_first100"
    table = pd.read_csv(session / "m3v1mp4_first100.pose.csv", header=[0, 1, 2], index_col=0)
    assert table.index.tolist() == list(range(100))  # every frame, in order
    timing = pd.read_csv(session / "m3v1mp4_first100.pose_timing.csv")
    assert timing["frame_index"].tolist() == list(range(100))
    boxes = timing[["crop_x", "crop_y", "crop_width", "crop_height"]].to_numpy()
    full = (boxes == [0, 0, 640, 480]).all(axis=1)
    assert full[0]  # nothing known before the first frame
    assert (~full).sum() > 50, boxes  # the mouse is tracked: most frames are cropped
    assert (boxes[~full, 0] % 32 == 0).all() and (boxes[~full, 1] % 32 == 0).all()
    assert (boxes[~full, 2] % 64 == 0).all() and (boxes[~full, 3] % 64 == 0).all()
    figures = json.loads((session / "session.json").read_text())["pose"]["cameras"]
    camera = figures["m3v1mp4_first100"]
    assert camera["frames_cropped"] == (~full).sum()
    assert camera["frames_full_frame"] == full.sum()
    assert camera["dynamic_crop"]["input_multiple"] == 32
    assert camera["dynamic_crop"]["whole_frame_gates"]  # CSPNeXt: crops get the frame's gates
    sizes = {tuple(size) for size in camera["dynamic_crop"]["sizes"]}
    assert sizes == {(int(w), int(h)) for w, h in boxes[~full, 2:]}
    ours = table.to_numpy().reshape(100, 4, 3)
    theirs = _clip_reference()
    # Where tracking holds (the frame was cropped), the keypoints are the full frame's, up to
    # what the crop's border and the gates of an earlier whole frame change (measured; a
    # keypoint on a flat heatmap moves most): none jumps to another heatmap cell (16 px).
    moved = np.abs(ours[~full] - theirs[~full])[..., :2].max(axis=2)
    print(
        f"dynamic crop: {(~full).sum()} of 100 frames cropped; |dxy| median "
        f"{np.median(moved):.4f}, p95 {np.percentile(moved, 95):.4f}, max {moved.max():.4f} px"
    )
    assert np.percentile(moved, 95) < CROP_XY_TOLERANCE
    assert moved.max() < 8
    np.testing.assert_allclose(ours[full], theirs[full], atol=1e-3)  # whole frames: equal
