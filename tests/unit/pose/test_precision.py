"""Issue 27: ``[Pose] PRECISION = int8``, the quantize command, and its measured accuracy cost.

The quantize command runs for real (ONNX Runtime's static quantization) on the bundled model and
a short video of the simulated arena made here; the int8 graph and its record go to a cache
folder of the test (``DEEPLABSTREAM_CACHE``). The DeepLabCut clip of /work/shared is quantized
in the slow test (skipped when the folder is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import BUNDLED_MODEL, check_precision, load_model
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.pose.runtime.precision import backend_problem, int8_cost, record_path

ARENA_SIZE = (240, 320)  # height, width of the video's frames


def _arena_video(path: Path, frames: int) -> list[np.ndarray]:
    """Write frames of the simulated arena (lossless) and return them."""
    from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena

    arena = SimulatedArena(ArenaParams(width=ARENA_SIZE[1], height=ARENA_SIZE[0], seed=5))
    written = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = ARENA_SIZE[1], ARENA_SIZE[0], "bgr0"
        for index in range(frames):
            pixels = np.empty(arena.frame_shape, np.uint8)
            arena.render_next(pixels)
            written.append(pixels)
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="bgr0")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return written


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Quantize the bundled model on an arena video (module-wide: it takes seconds)."""
    from deeplabstream.pose.quantize import main

    folder = tmp_path_factory.mktemp("precision")
    video = folder / "arena.mkv"
    frames = _arena_video(video, 30)
    cache = folder / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(cache))
        code = main([str(BUNDLED_MODEL), str(video), "--frames", "12", "--eval-frames", "10"])
    assert code == 0
    graph = cache / "model.int8.onnx"
    return {
        "cache": cache,
        "graph": graph,
        "record": json.loads(record_path(graph).read_text()),
        "frames": frames,
        "video": video,
    }


@pytest.fixture
def cache(quantized: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(quantized["cache"]))
    return quantized["cache"]


def test_quantize_writes_the_int8_graph_and_its_cost_on_frames_not_calibrated_on(
    quantized: dict,
) -> None:
    record = quantized["record"]
    calibration = set(record["calibration"]["indices"])
    evaluation = set(record["evaluation"]["indices"])
    assert len(calibration) == 12 and len(evaluation) == 10
    assert not calibration & evaluation
    assert record["calibration"]["video"] == str(quantized["video"])
    assert record["quantization"]["tool"] == "onnxruntime.quantization.quantize_static"
    keypoints = load_model(None).keypoints
    assert set(record["per_keypoint_px"]) == set(keypoints)
    deviation = record["deviation_px"]
    assert deviation["n"] == 10 * len(keypoints)
    assert 0 <= deviation["median"] <= deviation["p99"] <= deviation["max"]
    import onnx

    operators = {node.op_type for node in onnx.load(str(quantized["graph"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators


def test_the_int8_model_runs_and_its_cost_is_what_the_record_says(
    quantized: dict, cache: Path
) -> None:
    """PRECISION = int8 finds the graph; its keypoints move from fp32's by the recorded figures."""
    fp32 = load_model(None, precision="fp32")
    int8 = load_model(None, precision="int8")
    assert int8.precision == "int8" and int8.model_file == quantized["graph"]
    assert fp32.model_file == BUNDLED_MODEL / "model.onnx"  # fp32 never takes the int8 graph
    record = quantized["record"]
    frames = [quantized["frames"][i] for i in record["evaluation"]["indices"]]
    points = {}
    for description in (fp32, int8):
        backend = open_backend(description, "onnxruntime", "cpu", 1)
        points[description.precision] = NetworkEstimator(
            description, backend, frames[0].shape
        ).estimate(frames)
        backend.close()
    distance = np.hypot(*(points["int8"][..., :2] - points["fp32"][..., :2]).transpose(2, 0, 1))
    assert np.median(distance) == pytest.approx(record["deviation_px"]["median"], abs=1e-3)
    assert distance.max() == pytest.approx(record["deviation_px"]["max"], abs=1e-3)
    assert int8_cost(int8)["deviation_px"] == record["deviation_px"]
    assert int8_cost(fp32) is None


def test_inspect_shows_the_int8_cost(quantized: dict, cache: Path, capsys) -> None:
    from deeplabstream.pose.inspect import main

    assert main([str(BUNDLED_MODEL), "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    median = quantized["record"]["deviation_px"]["median"]
    assert "precision:   int8" in out
    assert f"median {median:.3f} px" in out
    assert "frames not used for calibration" in out


def test_session_json_model_entry_has_the_int8_cost(quantized: dict, cache: Path) -> None:
    from deeplabstream.live.processes.analysis.models import model_summary

    entry = model_summary(load_model(None, precision="int8"), "CPUExecutionProvider")
    assert entry["precision"] == "int8"
    assert entry["int8_cost"]["deviation_px"] == quantized["record"]["deviation_px"]
    json.dumps(entry)  # it goes into session.json as it is
    assert entry["source_file"] is None  # the graph is the model's own file, not converted
    assert model_summary(load_model(None), "CPUExecutionProvider")["int8_cost"] is None


def test_int8_without_a_quantized_model_says_what_to_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=r"no quantized model.*deeplabstream\.pose\.quantize"):
        load_model(None, precision="int8")


def test_a_quantized_model_of_another_graph_is_refused(quantized: dict, tmp_path: Path) -> None:
    """The fp32 graph changed since quantizing (a retrained model): the int8 graph is stale."""
    import shutil

    stale = tmp_path / "stale"
    shutil.copytree(quantized["cache"], stale)
    record = json.loads(record_path(stale / "model.int8.onnx").read_text())
    record["fp32_graph_sha256"] = "0" * 64
    record_path(stale / "model.int8.onnx").write_text(json.dumps(record))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(stale))
        with pytest.raises(ModelError, match="another version of the model"):
            load_model(None, precision="int8")
        record["quantizer_version"] = 1  # made by an older quantize command
        record_path(stale / "model.int8.onnx").write_text(json.dumps(record))
        with pytest.raises(ModelError, match="another version of the quantize command"):
            load_model(None, precision="int8")


def test_backends_that_cannot_run_a_precision_are_named() -> None:
    assert backend_problem("int8", "onnxruntime") is None
    assert backend_problem("fp32", "pytorch") is None
    problem = backend_problem("int8", "pytorch")
    assert problem is not None and "BACKEND = onnxruntime" in problem
    assert "openvino" in (backend_problem("int8", "openvino") or "")
    with pytest.raises(ModelError, match="fp16 applies to models converted here"):
        check_precision(None, "fp16", "onnxruntime")


def test_a_video_too_short_for_calibration_and_evaluation_is_refused(tmp_path: Path) -> None:
    from deeplabstream.pose.quantize import main

    video = tmp_path / "short.mkv"
    _arena_video(video, 4)
    assert main([str(BUNDLED_MODEL), str(video), "--frames", "4"]) == 2
    assert main([str(BUNDLED_MODEL), str(tmp_path / "missing.mkv")]) == 2


@pytest.mark.slow  # converts the DeepLabCut export when not cached, then quantizes it
def test_quantize_the_deeplabcut_clip(tmp_path: Path, monkeypatch, capsys) -> None:
    from deeplabstream.pose.quantize import main
    from tests.support.paths import shared_data

    folder = "dlc3-openfield-cspnext_s"
    export = next(shared_data(f"{folder}/model").glob("*.pt"))
    clip = shared_data(f"{folder}/clip/m3v1mp4_first100.mp4")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main([str(export), str(clip), "--frames", "16", "--eval-frames", "24"]) == 0
    out = capsys.readouterr().out
    print(out)
    int8 = load_model(export, frame_size=(480, 640), precision="int8")
    record = json.loads(record_path(int8.model_file).read_text())
    assert set(record["per_keypoint_px"]) == {"snout", "leftear", "rightear", "tailbase"}
    assert record["deviation_px"]["n"] == 24 * 4
    assert "deviation from fp32" in out
    # The heads and the in-graph decoding stay float (0.19 px measured; quantized: 0.95 px).
    assert record["deviation_px"]["median"] <= 0.5
    assert record["quantization"]["float_output_heads_and_after"] > 2


def test_spatial_means_become_global_average_pools_with_the_same_result(tmp_path: Path) -> None:
    """Means over H and W (CSPNeXt's channel attention) become pools; other means stay."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from deeplabstream.pose.quantize import pool_spatial_means

    nodes = [
        helper.make_node("ReduceMean", ["x", "spatial"], ["pooled"], keepdims=1, name="hw"),
        helper.make_node("ReduceMean", ["x", "channels"], ["mean_c"], keepdims=1, name="c"),
    ]
    graph = helper.make_graph(
        nodes,
        "means",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 4, 1, 1]),
            helper.make_tensor_value_info("mean_c", TensorProto.FLOAT, [1, 1, 8, 8]),
        ],
        [
            numpy_helper.from_array(np.array([-2, -1], np.int64), "spatial"),
            numpy_helper.from_array(np.array([1], np.int64), "channels"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    x = np.random.default_rng(1).normal(size=(1, 4, 8, 8)).astype(np.float32)

    def run(m: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})

    before = run(model)
    assert pool_spatial_means(model) == 1
    assert [n.op_type for n in model.graph.node] == ["GlobalAveragePool", "ReduceMean"]
    after = run(model)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6)
    np.testing.assert_array_equal(after[1], before[1])


def test_the_output_heads_and_what_follows_them_stay_float(quantized: dict) -> None:
    """The bundled model's output deconvolutions (heatmaps, locref) are left out of quantization."""
    import onnx

    from deeplabstream.pose.quantize import output_heads_and_after

    model = onnx.load(str(BUNDLED_MODEL / "model.onnx"))
    tail = output_heads_and_after(model)
    producers = {out: node for node in model.graph.node for out in node.output}
    heads = {producers[output.name].name for output in model.graph.output}
    assert heads <= tail
    assert all(producers[o.name].op_type == "ConvTranspose" for o in model.graph.output)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert not tail & {n.name for n in convs}  # the backbone is quantized
    assert quantized["record"]["quantization"]["float_output_heads_and_after"] == len(tail)
    int8 = onnx.load(str(quantized["graph"]))
    names = {n.name for n in int8.graph.node}
    assert heads <= names  # the heads are float Conv nodes of the int8 graph, under their names
    assert all(n.op_type == "ConvTranspose" for n in int8.graph.node if n.name in heads)
