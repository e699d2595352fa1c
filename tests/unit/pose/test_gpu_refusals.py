"""DEVICE = cuda or tensorrt refused before the start, with the reason (issue 69, item 3).

Through the CUDA device double: ONNX Runtime answers as onnxruntime-gpu, and the driver the
project asks for (``libcuda.so.1``, loaded by name in a child process) is the double's fake
driver, or none at all, as on a PC with CUDA's libraries but no NVIDIA driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.pose.runtime import providers
from deeplabstream.settings import load_settings
from tests.support.cuda_double import fake_libraries
from tests.support.files import write_settings
from tests.support.processes import run_cli


@pytest.fixture(autouse=True)
def _ask_the_driver_again() -> Iterator[None]:
    providers._driver_answer.cache_clear()
    yield
    providers._driver_answer.cache_clear()


@pytest.fixture
def without_a_driver(
    cuda_double: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The double's GPU build and cuDNN, and a library path that holds no driver."""
    folder = fake_libraries.build(tmp_path / "no-driver", only=("libcudnn.so.9",))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(folder))
    if providers.loads("libcuda.so.1"):
        pytest.skip("this machine has NVIDIA's driver: a missing one cannot be shown here")
    return folder


def test_no_driver_is_named_with_its_library_and_what_to_do(without_a_driver: Path) -> None:
    for device in ("cuda", "tensorrt"):
        problem = providers.device_problem(device) or ""
        assert "NVIDIA's driver is not installed here: libcuda.so.1 cannot be loaded" in problem
        assert "nvidia-smi" in problem and "DEVICE = cpu" in problem


def test_a_driver_that_sees_no_gpu_is_refused(
    cuda_double: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    problem = providers.device_problem("cuda") or ""
    assert "sees no GPU (device count 0)" in problem and "CUDA_VISIBLE_DEVICES" in problem
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert providers.device_problem("cuda") is None


def test_a_driver_that_does_not_start_is_refused_with_cuda_s_error_name(
    cuda_double: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPLABSTREAM_FAKE_CUDA_INIT", "100")
    problem = providers.device_problem("cuda") or ""
    assert "did not start: cuInit returned 100 (CUDA_ERROR_NO_DEVICE)" in problem


def test_the_check_before_the_start_names_the_missing_driver(
    without_a_driver: Path, tmp_path: Path
) -> None:
    settings = load_settings(
        write_settings(tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Pose]\nDEVICE = cuda\n")
    )
    problems = check_before_start(settings, True, False)
    assert any("libcuda.so.1" in p for p in problems), problems


def test_a_session_without_a_driver_is_refused_before_any_camera_opens(
    cuda_double_libraries: Path, tmp_path: Path
) -> None:
    """The command, as a lab runs it: exit 2, the driver named, no session folder made."""
    no_driver = fake_libraries.build(tmp_path / "no-driver", only=("libcudnn.so.9",))
    env = fake_libraries.environment(cuda_double_libraries) | {"LD_LIBRARY_PATH": str(no_driver)}
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\n[Pose]\nDEVICE = cuda\n"
    )
    output = tmp_path / "out"
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--frames", "30",
        "--output-dir", str(output), timeout=120, env=env,
    )  # fmt: skip
    said = result.stdout + result.stderr
    if providers.loads("libcuda.so.1"):
        pytest.skip("this machine has NVIDIA's driver")
    assert result.returncode == 2, said[-3000:]
    assert "libcuda.so.1" in said and "NVIDIA's driver is not installed" in said
    assert not output.exists() or not any(p.is_dir() for p in output.iterdir())


def test_tensorrt_advice_installs_the_major_version_the_provider_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """onnxruntime-gpu 1.31.1's wheel says cuda_version '13.0'; it links libnvinfer.so.10."""
    package_info = importlib.import_module("onnxruntime.capi.build_and_package_info")
    monkeypatch.setattr(package_info, "cuda_version", "13.0", raising=False)
    assert providers.ort_cuda_major() == "13"
    advice = providers.tensorrt_install_advice("1.31.1")
    assert 'pip install "tensorrt-cu13>=10,<11"' in advice and "cu12" not in advice
    assert "TensorRT 11, which it cannot load" in advice
    monkeypatch.setattr(package_info, "cuda_version", "12.8", raising=False)
    assert providers.ort_cuda_major() == "12"
    monkeypatch.setattr(package_info, "cuda_version", "", raising=False)
    unknown = providers.tensorrt_install_advice("1.31.1")
    assert "tensorrt-cu12>=10,<11" in unknown and "tensorrt-cu13>=10,<11" in unknown
    assert all(name.endswith(".so.10") for name in providers.TENSORRT_LIBRARIES["Linux"])
