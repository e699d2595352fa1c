"""Execution providers, their options and the device checks, without a GPU (issue 35).

What runs here is real: ONNX Runtime's CPU build (its provider list, its ``preload_dlls``), the
bundled model's session, settings files and the check before the start. The GPU paths
themselves are in tests/gpu/ and skip without a GPU.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import onnxruntime
import pytest

from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelError
from deeplabstream.pose.runtime import providers
from deeplabstream.pose.runtime.backends import (
    OnnxRuntimeBackend,
    device_check,
    open_backend,
    providers_of,
    set_idle_threads_spin,
)
from deeplabstream.pose.runtime.precision import device_problem as precision_device_problem
from deeplabstream.pose.runtime.providers import (
    GPU_INSTALL,
    cuda_library_problems,
    device_problem,
    failed_libraries,
    loads,
    provider_plan,
    tensorrt_library_problems,
)
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

AVAILABLE = onnxruntime.get_available_providers()
NO_CUDA = "CUDAExecutionProvider" not in AVAILABLE


@pytest.fixture(scope="module")
def bundled():
    return load_model(None)


def test_cuda_options_for_a_graph_of_fixed_size(bundled) -> None:
    plan = provider_plan(bundled, "cuda")
    assert plan.names() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    options = plan.providers[0][1]
    assert options == {
        "device_id": "0",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": "1",
        "use_tf32": "0",  # fp32 is fp32: ONNX Runtime's default is TF32
    }
    # No CUDA graph unless [Pose] CUDA_GRAPH = on asks for it, and session.json says so.
    assert any("CUDA_GRAPH = off" in note for note in plan.notes)
    assert any("use_tf32 = 0" in note for note in plan.notes)
    graph = provider_plan(bundled, "cuda", cuda_graph=True)
    assert graph.providers[0][1]["enable_cuda_graph"] == "1"
    retry = graph.without("enable_cuda_graph")
    assert "enable_cuda_graph" not in retry.providers[0][1]
    assert "enable_cuda_graph" in graph.providers[0][1]  # the plan itself is unchanged


def test_tf32_is_used_only_where_the_precision_asks_for_it(bundled) -> None:
    tf32 = dataclasses.replace(bundled, precision="tf32")
    assert provider_plan(tf32, "cuda").providers[0][1]["use_tf32"] == "1"
    assert any("PRECISION = tf32" in n for n in provider_plan(tf32, "cuda").notes)
    for precision in ("fp32", "fp16", "int8"):
        described = dataclasses.replace(bundled, precision=precision)
        assert provider_plan(described, "cuda").providers[0][1]["use_tf32"] == "0"
        # The CUDA provider beside TensorRT takes the nodes TensorRT leaves, in fp32 too.
        assert provider_plan(described, "tensorrt").providers[1][1]["use_tf32"] == "0"
    fp32_trt = provider_plan(bundled, "tensorrt")
    assert any("NVIDIA_TF32_OVERRIDE = 0" in note for note in fp32_trt.notes)
    assert not any("TF32_OVERRIDE" in n for n in provider_plan(tf32, "tensorrt").notes)


def test_the_tf32_precision_runs_the_fp32_graph_and_only_on_a_gpu(bundled, tmp_path) -> None:
    tf32 = load_model(None, precision="tf32")
    assert tf32.precision == "tf32" and tf32.model_file == bundled.model_file
    assert "DEVICE = cuda or tensorrt" in (precision_device_problem("tf32", "cpu") or "")
    assert precision_device_problem("tf32", "cuda") is None
    assert precision_device_problem("fp16", "cpu") is None
    text = "[Camera arena]\nSOURCE = synthetic\n[Pose]\nPRECISION = tf32\n"
    [problem] = check_before_start(load_settings(write_settings(tmp_path, text)), True, False)
    assert "[Pose] PRECISION = tf32" in problem and "set PRECISION = fp32" in problem


def test_cuda_options_for_a_graph_of_any_size(bundled) -> None:
    any_size = dataclasses.replace(bundled, any_input_size=True)
    plan = provider_plan(any_size, "cuda", cuda_graph=True)
    options = plan.providers[0][1]
    # Every new crop or frame size would pay an exhaustive search, and a CUDA graph per size.
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"
    assert "enable_cuda_graph" not in options
    assert any("enable_cuda_graph off: the graph runs at any input size" in n for n in plan.notes)


def test_missing_tensorrt_libraries_are_named_with_the_install_command_mocked_provider_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ONNX Runtime listed TensorRT while libnvinfer was absent, and nothing noticed.

    No GPU build of ONNX Runtime is installed here: its provider list is mocked to hold
    TensorRT (and the driver and CUDA libraries to load); the TensorRT libraries are really
    looked for, under names no machine has (a test process may hold the CUDA double's).
    """
    absent = ("libnvinfer_absent_here.so.10", "libnvonnxparser_absent_here.so.10")
    monkeypatch.setitem(providers.TENSORRT_LIBRARIES, platform.system(), absent)
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    monkeypatch.setattr(providers, "cuda_driver_problem", lambda: None)
    monkeypatch.setattr(providers, "cuda_library_problems", lambda provider: [])
    problem = device_problem("tensorrt") or ""
    assert tensorrt_library_problems() == list(absent)
    assert absent[0] in problem and "TensorRT's libraries cannot be loaded" in problem
    assert 'pip install "tensorrt-cu' in problem and ">=10,<11" in problem
    assert "set DEVICE = cuda" in problem
    assert device_problem("cuda") is None  # CUDA alone needs no TensorRT


def test_tensorrt_options_follow_precision_and_cache(bundled, tmp_path: Path) -> None:
    plan = provider_plan(bundled, "tensorrt", trt_cache_folder=str(tmp_path))
    assert plan.names() == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = plan.providers[0][1]
    assert trt["trt_fp16_enable"] == "0" and trt["trt_int8_enable"] == "0"
    assert trt["trt_engine_cache_enable"] == "1" and trt["trt_timing_cache_enable"] == "1"
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path)
    assert int(trt["trt_max_workspace_size"]) == 2 << 30
    # One engine for 1 to 8 cameras in a batch, at the model's input size.
    assert trt["trt_profile_min_shapes"] == "images:1x3x256x320"
    assert trt["trt_profile_opt_shapes"] == "images:1x3x256x320"
    assert trt["trt_profile_max_shapes"] == "images:8x3x256x320"
    fixed = provider_plan(dataclasses.replace(bundled, batch_size=1), "tensorrt")
    assert "trt_profile_max_shapes" not in fixed.providers[0][1]
    assert "enable_cuda_graph" not in plan.providers[1][1]  # no CUDA graph under TensorRT
    fp16 = provider_plan(dataclasses.replace(bundled, precision="fp16"), "tensorrt")
    assert fp16.providers[0][1]["trt_fp16_enable"] == "1"
    assert "trt_engine_cache_enable" not in fp16.providers[0][1]  # no folder: caches off
    assert any("caches off" in note for note in fp16.notes)
    int8 = provider_plan(dataclasses.replace(bundled, precision="int8"), "tensorrt")
    assert int8.providers[0][1]["trt_int8_enable"] == "1"


@pytest.mark.skipif(not NO_CUDA, reason="this ONNX Runtime has the CUDA provider")
def test_a_missing_gpu_provider_is_named_with_what_is_available_and_the_install_command(
    bundled,
) -> None:
    for device, provider in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "Tensorrt")):
        problem = device_problem(device)
        assert problem is not None
        assert provider in problem and "CPUExecutionProvider" in problem
        assert GPU_INSTALL in problem
        with pytest.raises(ModelError, match=rf"no {provider}.*available.*scripts/setup.py --gpu"):
            open_backend(bundled, "onnxruntime", device)


@pytest.mark.skipif(
    "DmlExecutionProvider" in AVAILABLE or "CoreMLExecutionProvider" in AVAILABLE,
    reason="this ONNX Runtime has DirectML or CoreML",
)
def test_directml_and_coreml_say_where_they_exist(bundled) -> None:
    directml = device_problem("directml") or ""
    coreml = device_problem("coreml") or ""
    assert "DmlExecutionProvider" in directml and "onnxruntime-directml" in directml
    assert "CoreMLExecutionProvider" in coreml
    if platform.system() != "Windows":
        assert "Windows only" in directml
    if platform.system() != "Darwin":
        assert "macOS only" in coreml
    with pytest.raises(ModelError, match="DmlExecutionProvider"):
        open_backend(bundled, "onnxruntime", "directml")


def test_device_check_covers_every_backend() -> None:
    assert device_check("onnxruntime", "cpu") is None
    assert device_check("openvino", "cpu") is None
    assert "not 'cuda'" in (device_check("openvino", "cuda") or "")
    assert "not 'tensorrt'" in (device_check("pytorch", "tensorrt") or "")
    assert "unknown inference backend" in (device_check("no_such_backend", "cpu") or "")


def test_failed_libraries_are_read_from_preload_dlls_lines() -> None:
    # The lines onnxruntime.preload_dlls prints (its source: "Failed to load {path}: {error}").
    printed = (
        "Failed to load /venv/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9: "
        "libcudnn.so.9: cannot open shared object file\n"
        "Failed to load libcublasLt.so.12: libcublasLt.so.12: cannot open shared object file\n"
        "Failed to load libcublasLt.so.12: again\n"
        "Please follow https://onnxruntime.ai/docs/install/#cuda-and-cudnn to install CUDA.\n"
    )
    assert failed_libraries(printed) == ["libcudnn.so.9", "libcublasLt.so.12"]
    assert failed_libraries("") == []


def test_a_library_that_does_not_load_is_named() -> None:
    assert loads("libc.so.6") if platform.system() == "Linux" else True
    assert not loads("libdeeplabstream_no_such_library.so.1")


def test_preload_dlls_of_a_cpu_build_reports_nothing_missing() -> None:
    # The real call: a CPU build of ONNX Runtime has no CUDA to preload and prints nothing.
    assert hasattr(onnxruntime, "preload_dlls")
    assert cuda_library_problems("CPUExecutionProvider") == []
    if NO_CUDA:
        assert cuda_library_problems("CUDAExecutionProvider") == []


def test_session_json_records_providers_asked_and_applied(bundled) -> None:
    backend = open_backend(bundled, "onnxruntime", "cpu", 1)
    record = providers_of(backend)
    assert record is not None
    assert record["device"] == "cpu"
    assert record["asked"] == [{"name": "CPUExecutionProvider", "options": {}}]
    assert [p["name"] for p in record["applied"]] == ["CPUExecutionProvider"]
    assert record["input_path"] == "bound-per-run"
    assert record["io_binding"].startswith("input bound at every run")
    assert "tensorrt_cache" not in record
    backend.close()


@pytest.mark.skipif(not NO_CUDA, reason="this ONNX Runtime has the CUDA provider")
def test_the_check_before_the_start_names_a_missing_provider(tmp_path: Path) -> None:
    text = "[Camera arena]\nSOURCE = synthetic\n[Pose]\nDEVICE = cuda\n"
    settings = load_settings(write_settings(tmp_path, text))
    [problem] = check_before_start(settings, True, False)
    assert "[Pose] DEVICE = cuda with BACKEND = onnxruntime" in problem
    assert "CUDAExecutionProvider" in problem and GPU_INSTALL in problem
    cpu = load_settings(write_settings(tmp_path, text.replace("cuda", "cpu")))
    assert check_before_start(cpu, True, False) == []


def test_idle_pool_threads_sleep_unless_the_process_lets_them_spin(bundled) -> None:
    # What session.json records is what ONNX Runtime's session was given.
    def spinning(backend: OnnxRuntimeBackend) -> str:
        options = backend._session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    asleep = OnnxRuntimeBackend(bundled, "cpu", 2)
    assert asleep.providers["idle_threads"] == "sleep" and spinning(asleep) == "0"
    set_idle_threads_spin(True)
    try:
        awake = OnnxRuntimeBackend(bundled, "cpu", 2)
        told = OnnxRuntimeBackend(bundled, "cpu", 2, allow_spinning=False)
    finally:
        set_idle_threads_spin(False)
    assert awake.providers["idle_threads"] == "spin" and spinning(awake) == "1"
    assert told.providers["idle_threads"] == "sleep" and spinning(told) == "0"
    for backend in (asleep, awake, told):
        backend.close()


def test_a_backend_without_io_binding_runs_session_run(bundled) -> None:
    backend = OnnxRuntimeBackend(bundled, "cpu", 1, io_binding=False)
    record = backend.providers
    assert record["io_binding"] == "off (session.run)"
    backend.close()
