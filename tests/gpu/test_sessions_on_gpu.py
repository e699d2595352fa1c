"""A live session and a replay with the model on the GPU; TensorRT's engine cache reused.

Marked ``gpu``: skipped, with the reason, where no GPU and onnxruntime-gpu are found. Every
session on the GPU is held to the CPU's keypoints on the same frames, point by point: a live
session to a CPU replay of its lossless recording, a replay to a CPU replay of the same clip
(fp32 at most 0.01 px, fp16 at most 0.1 px at the median). The live comparison also runs on
the CPU against itself (slow tier), so that it is known to pass where nothing is wrong.

The same sessions run on every machine through the CUDA device double (``double`` variants,
slow tier): the command and every process it spawns see onnxruntime-gpu with ONNX Runtime's
copy-at-bind and graph-capture semantics (``tests/support/cuda_double``), so the worker's whole
loading sequence, its warm-up included, a live session, replays of the model formats and the
dynamic crop's second graphs are held to the CPU's keypoints where no GPU is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.offline.verify.frames import read_exact_poses
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend, providers_of
from tests.gpu.gpu_here import cuda_reason, device_reason, skip_unless
from tests.support.arena import arena_frames
from tests.support.dlc3_exports import run_converted_models_cache
from tests.support.files import first_frames_clip, write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli


@pytest.fixture(scope="module", autouse=True)
def converted_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Converted graphs in the run's cache, for every command here (a DeepLabCut export is
    converted once a run, not once for each replay), never beside the shared data."""
    yield from run_converted_models_cache(tmp_path_factory)


def _pose_run(session: Path) -> dict:
    """The session's pose estimation record (the last run of it)."""
    record = json.loads((session / "session.json").read_text())
    run = record.get("pose") or record["pose_runs"][-1]
    assert run["model"]["providers"] is not None
    return run


def _model_providers(session: Path) -> dict:
    return _pose_run(session)["model"]["providers"]


@pytest.mark.gpu
def test_the_tensorrt_engine_is_built_once_and_reused_on_the_second_start(
    tmp_path: Path,
) -> None:
    skip_unless(device_reason("tensorrt"))
    folder = tmp_path / "arena"
    shutil.copytree(BUNDLED_MODEL, folder)  # its cache goes beside this copy
    description = load_model(folder)
    frames = arena_frames(12, seed=69)
    cpu = _keypoints_of(OnnxRuntimeBackend(description, "cpu", 1), description, frames)
    starts = []
    for _ in range(2):
        started = time.perf_counter()
        backend = OnnxRuntimeBackend(description, "tensorrt", 1)
        backend.warm_up()
        starts.append(time.perf_counter() - started)
        record = providers_of(backend)
        engine = _keypoints_of(backend, description, frames)  # closes it
        _assert_within(
            _deviation_px(dict(enumerate(engine)), dict(enumerate(cpu))),
            False,
            f"TensorRT fp32 engine, start {len(starts)}",
        )
        assert record is not None
        cache = record["tensorrt_cache"]
        print(f"start {len(starts)}: {starts[-1]:.1f} s, cache {cache['state']}: {cache['reason']}")
        assert record["applied"][0]["name"] == "TensorrtExecutionProvider"
    # The start times are printed (a figure for the note), not asserted: the states are the check.
    cache_folder = Path(cache["folder"])
    assert cache["state"] == "warm", cache
    assert cache_folder.parent == folder / ".tensorrt"
    assert any(p.suffix == ".engine" for p in cache_folder.iterdir())


def _keypoints_of(backend: OnnxRuntimeBackend, description, frames: list) -> list[np.ndarray]:
    """Each frame's keypoints through ``backend`` (then closed): [(A, K, 3)]."""
    from deeplabstream.pose.runtime.estimator import NetworkEstimator

    try:
        backend.warm_up()
        estimator = NetworkEstimator(description, backend, frames[0].shape, 1)
        return [estimator.estimate_animals([frame])[0] for frame in frames]
    finally:
        backend.close()


#: The GPU's keypoints against the CPU's on the same frames (docs/gpu.md): fp32 and tf32 ...
FP32_MAX_PX = 0.01
#: ... and an fp16 model, at the median.
FP16_MEDIAN_PX = 0.1
#: The variants of the live and replay comparisons: the CPU runs the comparison itself (so that
#: a machine without a GPU proves the test can pass), CUDA with and without a CUDA graph.
DEVICES = [
    pytest.param("cpu", "off", marks=pytest.mark.slow, id="cpu"),
    pytest.param("cuda", "off", marks=pytest.mark.gpu, id="cuda"),
    pytest.param("cuda", "on", marks=pytest.mark.gpu, id="cuda-graph"),
    pytest.param("double", "off", marks=pytest.mark.slow, id="double-cuda"),
    pytest.param("double", "on", marks=pytest.mark.slow, id="double-cuda-graph"),
]


def _skip_unless_device(device: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Skip unless ``device`` runs here; the environment of its commands (the double's)."""
    if device == "double":
        return request.getfixturevalue("cuda_double_env")("on")
    if device != "cpu":
        skip_unless(cuda_reason())
    return {}


def _pose_settings(device: str, cuda_graph: str) -> str:
    device = "cuda" if device == "double" else device
    return f"[Pose]\nDEVICE = {device}\nCUDA_GRAPH = {cuda_graph}\n"


def _assert_the_graph_ran(providers: dict) -> None:
    """A live session or replay with CUDA_GRAPH = on: every frame through a checked graph."""
    graph = providers.get("cuda_graph")
    assert graph is not None, providers
    print(json.dumps(graph, indent=1))
    assert graph["refused"] == {} and sum(graph["replays"].values()) > 0, graph


def _replay(
    video: Path,
    folder: Path,
    settings: str,
    model: Path | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """Replay ``video`` frame by frame (--fast) with ``settings``; the session folder."""
    folder.mkdir(parents=True)
    settings_file = folder / "settings.ini"
    settings_file.write_text("[Camera arena]\nSOURCE = synthetic\n" + settings)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(video), "--fast",
         "--no-experiment", "--settings", str(settings_file), "--output-dir", str(folder / "out"),
         *(["--model", str(model)] if model is not None else [])],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, **(env or {})},  # DEEPLABSTREAM_CACHE: the run's (converted_cache)
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_session(folder / "out")


def _exact_poses(session: Path, camera: str) -> dict[int, np.ndarray]:
    """The session's keypoints to the bit, by frame index: {frame: (A, K, 3)}."""
    keypoints = len(_pose_run(session)["model"]["keypoints"])
    frames, points = read_exact_poses(session / f"{camera}.pose_exact.csv", keypoints)
    return {int(f): p for f, p in zip(frames, points, strict=True)}


def _deviation_px(ours: dict[int, np.ndarray], theirs: dict[int, np.ndarray]) -> np.ndarray:
    """Distance (px) of every point found in both, frames of ``ours`` (all found in ``theirs``)."""
    missing = sorted(set(ours) - set(theirs))
    assert not missing, f"frames analysed here but not in the reference: {missing[:10]}"
    d = np.concatenate([np.hypot(*(ours[f][..., :2] - theirs[f][..., :2]).T).ravel() for f in ours])
    found = d[np.isfinite(d)]
    assert found.size > 0, "no keypoint found in both"
    return found


def _assert_within(deviation: np.ndarray, half: bool, what: str) -> None:
    print(f"{what}: median {np.median(deviation):.5f} px, max {deviation.max():.5f} px "
          f"({deviation.size} points)")  # fmt: skip
    if half:
        assert np.median(deviation) <= FP16_MEDIAN_PX, what
    else:
        assert deviation.max() <= FP32_MAX_PX, what


@pytest.mark.parametrize(("device", "cuda_graph"), DEVICES)
def test_a_live_session_on_the_device_equals_a_cpu_replay_of_its_recording(
    tmp_path: Path, device: str, cuda_graph: str, request: pytest.FixtureRequest
) -> None:
    """The keypoints a live session wrote are those the CPU finds in the same (lossless) frames."""
    env = _skip_unless_device(device, request)
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 100\n[Recording]\nCODEC = ffv1\n"
        + _pose_settings(device, cuda_graph),
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--recording-enabled",
        "--frames", "120", "--output-dir", str(tmp_path / "out"), timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    live = only_session(tmp_path / "out")
    providers = _model_providers(live)
    if device != "cpu":
        assert providers["applied"][0]["name"] == "CUDAExecutionProvider"
        assert providers["asked"][0]["options"]["use_tf32"] == "0"
        if cuda_graph == "on":  # every frame through the graph, checked
            _assert_the_graph_ran(providers)
        else:
            assert providers["input_path"] == "bound-per-run"
    replayed = _replay(next(live.glob("arena.mkv")), tmp_path / "cpu", _pose_settings("cpu", "off"))
    video_frames = pd.read_csv(live / "arena.frames.csv")["frame_index"].to_numpy()
    by_camera_index = {
        int(video_frames[position]): points
        for position, points in _exact_poses(replayed, "arena").items()
    }
    live_points = _exact_poses(live, "arena")
    assert len(live_points) >= 20, f"only {len(live_points)} frames analysed live"
    deviation = _deviation_px(live_points, by_camera_index)
    _assert_within(deviation, False, f"live on {device} (CUDA_GRAPH = {cuda_graph}) vs CPU replay")


REPLAY_CASES = [
    pytest.param(
        "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4",
        "dlc3-openfield-cspnext_s/model/"
        "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt",
        "fp32",
        id="dlc3-fp32",
    ),
    pytest.param(
        "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4",
        "dlc3-openfield-cspnext_s/model/"
        "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt",
        "fp16",
        id="dlc3-fp16",
    ),
    pytest.param(
        "lp-mirror-mouse-resnet18/clip/test_vid_first100.mp4",
        "lp-mirror-mouse-resnet18/model/exports_onnx/epoch=39-step=200-best_fp16.onnx",
        "fp32",  # the export's own fp16 graph, named by its file
        id="lightning-pose-fp16-export",
    ),
    pytest.param(
        "sleap-flies/inference/flies_clip_first100.mp4",
        "sleap-flies/onnx/flies_bottomup_tiny_onnx",
        "fp32",
        id="sleap-bottom-up",
    ),
]


#: Where each replay runs: a real GPU, and the CUDA double (slow tier) with the graph where
#: the model has a fixed input size (the others ask for none: the "on" would repeat "off").
REPLAY_TARGETS = [
    pytest.param("gpu", "off", marks=pytest.mark.gpu, id="gpu"),
    pytest.param("gpu", "on", marks=pytest.mark.gpu, id="gpu-graph"),
    pytest.param("double", "off", marks=pytest.mark.slow, id="double"),
    pytest.param("double", "on", marks=pytest.mark.slow, id="double-graph"),
]

#: A replay's settings beyond the device: a case's own (the dynamic crop's second graphs).
EXTRA_SETTINGS = {"dlc3-crop": "DYNAMIC_CROP = on\n"}

#: The replay cases whose model has a fixed input size (a CUDA graph is asked for them).
FIXED_SIZE_CASES = ("lightning-pose",)

_CPU_REPLAYS: dict[tuple[str, str, str], Path] = {}

#: Frames of a clip a replay through the CUDA double analyses: the double runs the CPU's session,
#: so both replays cost CPU time; the pictures matter here, not their number (a GPU takes all).
DOUBLE_FRAMES = 30
_SHORT_CLIPS: dict[str, Path] = {}


def _short_clip(video: Path, folder: Path) -> Path:
    """The first :data:`DOUBLE_FRAMES` frames of ``video``, losslessly, made once per process."""
    if str(video) not in _SHORT_CLIPS:
        folder.mkdir(parents=True, exist_ok=True)  # named as the video: its camera's name
        clip = first_frames_clip(video, folder / f"{video.stem}.mkv", DOUBLE_FRAMES)
        _SHORT_CLIPS[str(video)] = clip
    return _SHORT_CLIPS[str(video)]


def _cpu_replay(video: Path, model: Path, extra: str, folder: Path) -> Path:
    """The CPU's replay of a clip with a model, made once per test process."""
    key = (str(video), str(model), extra)
    if key not in _CPU_REPLAYS:
        _CPU_REPLAYS[key] = _replay(video, folder, _pose_settings("cpu", "off") + extra, model)
    return _CPU_REPLAYS[key]


@pytest.mark.timeout(900)  # two replays (100 frames, 30 through the double): minutes when loaded
@pytest.mark.parametrize(("target", "cuda_graph"), REPLAY_TARGETS)
@pytest.mark.parametrize(
    ("clip", "model", "precision"),
    [
        *REPLAY_CASES,
        pytest.param(
            "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4",
            "dlc3-openfield-cspnext_s/model/"
            "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt",
            "fp32",
            id="dlc3-crop",
        ),
    ],
)
def test_a_replay_on_the_gpu_equals_a_cpu_replay_of_the_same_frames(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    clip: str,
    model: str,
    precision: str,
    target: str,
    cuda_graph: str,
) -> None:
    case = request.node.callspec.id
    extra = next((v for k, v in EXTRA_SETTINGS.items() if case.startswith(k)), "")
    env = {}
    if target == "double":
        if precision == "fp16":  # the half graph's path through the double: test_models_on_gpu
            pytest.skip("a converted half graph through the double: tests/gpu/test_models_on_gpu")
        if cuda_graph == "on" and not case.startswith(FIXED_SIZE_CASES):
            pytest.skip("this model takes any input size: no CUDA graph is asked (gpu-graph shows)")
        env = request.getfixturevalue("cuda_double_env")("on")
    else:
        skip_unless(cuda_reason())
    video, model_path = shared_data(clip), shared_data(model)
    frames = 100  # every frame of the clip
    if target == "double":
        video, frames = _short_clip(video, tmp_path_factory.mktemp("clip")), DOUBLE_FRAMES
    precision_line = f"PRECISION = {precision}\n"
    gpu = _replay(video, tmp_path / "gpu", _pose_settings("cuda", cuda_graph) + precision_line
                  + extra, model_path, env)  # fmt: skip
    providers = _model_providers(gpu)
    if cuda_graph == "on" and "cuda_graph" not in providers:
        notes = [n for n in providers["notes"] if "enable_cuda_graph off" in n]
        assert notes, providers
        pytest.skip(f"no CUDA graph for this model ({notes[0]}): the 'off' variant covers it")
    cpu = _cpu_replay(video, model_path, extra, tmp_path_factory.mktemp("cpu-replay") / "cpu")
    assert providers["applied"][0]["name"] == "CUDAExecutionProvider"
    if cuda_graph == "on":
        _assert_the_graph_ran(providers)
    figures = next(iter(_pose_run(gpu)["cameras"].values()))
    assert figures["frames_analysed"] == frames
    half = precision == "fp16" or "fp16" in model
    camera = video.stem  # a replay's camera is named after its video
    ours, theirs = _exact_poses(gpu, camera), _exact_poses(cpu, camera)
    if next(iter(ours.values())).shape[0] > 1:  # several animals: matched by their order here
        ours = {f: p[np.argsort(np.nan_to_num(p[:, 0, 0]))] for f, p in ours.items()}
        theirs = {f: p[np.argsort(np.nan_to_num(p[:, 0, 0]))] for f, p in theirs.items()}
    _assert_within(
        _deviation_px(ours, theirs),
        half,
        f"{model_path.name} {precision} {target} cuda graph {cuda_graph} {extra.strip()}",
    )
