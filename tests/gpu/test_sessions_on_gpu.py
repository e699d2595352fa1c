"""A live session and a replay with the model on the GPU; TensorRT's engine cache reused.

Marked ``gpu``: skipped, with the reason, where no GPU and onnxruntime-gpu are found. None of
these has run yet (no GPU was available where they were written; docs/gpu.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deeplabstream.pose.loading import BUNDLED_MODEL, load_model
from deeplabstream.pose.runtime.backends import OnnxRuntimeBackend, providers_of
from tests.gpu.gpu_here import cuda_reason, device_reason, skip_unless
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

pytestmark = pytest.mark.gpu


def _pose_run(session: Path) -> dict:
    """The session's pose estimation record (the last run of it)."""
    record = json.loads((session / "session.json").read_text())
    run = record.get("pose") or record["pose_runs"][-1]
    assert run["model"]["providers"] is not None
    return run


def _model_providers(session: Path) -> dict:
    return _pose_run(session)["model"]["providers"]


def test_the_tensorrt_engine_is_built_once_and_reused_on_the_second_start(
    tmp_path: Path,
) -> None:
    skip_unless(device_reason("tensorrt"))
    folder = tmp_path / "arena"
    shutil.copytree(BUNDLED_MODEL, folder)  # its cache goes beside this copy
    description = load_model(folder)
    starts = []
    for _ in range(2):
        started = time.perf_counter()
        backend = OnnxRuntimeBackend(description, "tensorrt", 1)
        backend.warm_up()
        starts.append(time.perf_counter() - started)
        record = providers_of(backend)
        backend.close()
        assert record is not None
        cache = record["tensorrt_cache"]
        print(f"start {len(starts)}: {starts[-1]:.1f} s, cache {cache['state']}: {cache['reason']}")
        assert record["applied"][0]["name"] == "TensorrtExecutionProvider"
    # The start times are printed (a figure for the note), not asserted: the states are the check.
    cache_folder = Path(cache["folder"])
    assert cache["state"] == "warm", cache
    assert cache_folder.parent == folder / ".tensorrt"
    assert any(p.suffix == ".engine" for p in cache_folder.iterdir())


def test_a_live_session_runs_its_model_on_the_gpu(tmp_path: Path) -> None:
    skip_unless(cuda_reason())
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 100\n[Pose]\nDEVICE = cuda\n"
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--frames", "300",
        "--output-dir", str(tmp_path / "out"), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    providers = _model_providers(only_session(tmp_path / "out"))
    assert providers["applied"][0]["name"] == "CUDAExecutionProvider"
    assert providers["asked"][0]["options"]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    print(json.dumps(providers, indent=1))


def test_a_replay_runs_its_model_on_the_gpu(tmp_path: Path) -> None:
    skip_unless(cuda_reason())
    clip = shared_data("dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4")
    model = shared_data(
        "dlc3-openfield-cspnext_s/model/"
        "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
    )
    settings = tmp_path / "settings.ini"
    settings.write_text("[Camera arena]\nSOURCE = synthetic\n[Pose]\nDEVICE = cuda\n")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(clip), "--fast",
         "--no-experiment", "--model", str(model), "--settings", str(settings),
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "DEEPLABSTREAM_CACHE": str(tmp_path / "converted")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    providers = _model_providers(session)
    assert providers["applied"][0]["name"] == "CUDAExecutionProvider"
    figures = next(iter(_pose_run(session)["cameras"].values()))
    assert figures["frames_analysed"] == 100  # every frame of the clip
