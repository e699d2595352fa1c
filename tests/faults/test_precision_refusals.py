"""Issue 27: ``[Pose] PRECISION`` that cannot apply is refused before the start; int8 runs.

PRECISION = int8 without a quantized model, int8 on a backend that does not run it, and fp16 on
a model that is not converted here each give exit code 2, a message naming the setting and what
to do, and no session folder: the first through a real ``DeepLabStream.py`` process, the others
through the command's check in this process (``test_preflight._refusal``). A model quantized
by the quantize command runs live, and ``session.json`` carries its measured cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import BUNDLED_MODEL
from tests.faults.test_preflight import CAMERA, _assert_refused, _assert_says, _refusal, _run
from tests.support.processes import only_session, run_cli


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Converted and quantized graphs in the test's own folder (the processes inherit it)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def test_int8_without_a_quantized_model_is_refused_before_the_start(tmp_path: Path) -> None:
    result = _run(tmp_path, CAMERA + "[Pose]\nPRECISION = int8\n", "--pose-enabled")
    _assert_refused(
        tmp_path,
        result,
        "[Pose] PRECISION = int8",
        "no quantized model",
        "python -m deeplabstream.pose.quantize",
        "or set PRECISION = fp32",
    )


def test_int8_on_a_backend_that_does_not_run_it_is_refused_before_the_start(
    tmp_path: Path,
) -> None:
    text = CAMERA + "[Pose]\nPRECISION = int8\nBACKEND = openvino\n"
    refusal = _refusal(tmp_path, text, "--pose-enabled")
    _assert_says(refusal, "[Pose] PRECISION = int8", "onnxruntime backend, not openvino")


def test_fp16_of_a_model_not_converted_here_is_refused_before_the_start(tmp_path: Path) -> None:
    refusal = _refusal(tmp_path, CAMERA + "[Pose]\nPRECISION = fp16\n", "--pose-enabled")
    _assert_says(refusal, "[Pose] PRECISION = fp16", "applies to models converted here")


@pytest.mark.slow  # quantizes the bundled model, then a whole session runs on it
def test_an_int8_model_runs_live_and_session_json_has_its_cost(
    tmp_path: Path, empty_cache: Path
) -> None:
    from deeplabstream.pose.quantize import main
    from tests.support.files import make_ffv1_video, write_settings

    clip = tmp_path / "clip.mkv"
    make_ffv1_video(clip, 24, 320, 256)
    assert main([str(BUNDLED_MODEL), str(clip), "--frames", "8", "--eval-frames", "8"]) == 0
    record = json.loads((empty_cache / "model.int8.onnx.json").read_text())
    camera = f"[Camera arena]\nSOURCE = video\nPATH = {clip}\nPACING = lockstep\n"
    settings = write_settings(tmp_path, camera + "[Pose]\nPRECISION = int8\n")
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled",
        "--output-dir", str(tmp_path / "out"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((only_session(tmp_path / "out") / "session.json").read_text())
    model = info["pose"]["model"]
    assert model["precision"] == "int8"
    assert model["file"] == str(empty_cache / "model.int8.onnx")
    assert model["int8_cost"]["deviation_px"] == record["deviation_px"]
    assert info["pose"]["cameras"]["arena"]["frames_analysed"] == 24
