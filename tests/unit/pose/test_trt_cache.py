"""TensorRT's engine cache: its key, where it lives, and when it is rebuilt, without a GPU.

The folders and records are real files; only what ``nvidia-smi`` and TensorRT would say about
this machine is given by the tests (there is neither here).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.trt_cache import (
    RECORD_NAME,
    BuildProgress,
    GpuInfo,
    cache_root,
    gpu_info,
    make_key,
    parse_gpu_line,
    prepare_cache,
    version_from_number,
)

GPU = GpuInfo("NVIDIA GeForce RTX 4090", "8.9")


@pytest.fixture
def model(tmp_path: Path):
    """The bundled model copied into a folder of its own (its bytes are part of the key)."""
    bundled = load_model(None)
    folder = tmp_path / "model"
    folder.mkdir()
    graph = folder / "model.onnx"
    shutil.copyfile(bundled.model_file, graph)
    return dataclasses.replace(bundled, model_file=graph)


def _key(description, gpu=GPU, tensorrt="10.3.0", ort="1.31.1"):
    return make_key(description, gpu, tensorrt, ort)


def test_every_part_of_the_key_changes_it(model) -> None:
    base = _key(model)
    assert base.known
    assert base.input_shape == "1-8x3x256x320:nchw:float"
    variants = [
        _key(model, gpu=GpuInfo("NVIDIA RTX A4000", "8.6")),
        _key(model, gpu=GpuInfo(GPU.name, "8.6")),
        _key(model, tensorrt="10.4.0"),
        _key(model, ort="1.32.0"),
        _key(dataclasses.replace(model, precision="fp16")),
        _key(dataclasses.replace(model, input_height=480, input_width=640)),
        _key(dataclasses.replace(model, batch_size=3)),
    ]
    digests = {base.digest(), *(v.digest() for v in variants)}
    assert len(digests) == len(variants) + 1
    # The model's own bytes: one byte changed is another key.
    data = bytearray(Path(model.model_file).read_bytes())
    data[-1] ^= 1
    Path(model.model_file).write_bytes(bytes(data))
    assert _key(model).model_sha256 != base.model_sha256


def test_a_key_not_fully_known_turns_the_caches_off(model, tmp_path: Path) -> None:
    for key in (_key(model, gpu=None), _key(model, tensorrt=None)):
        assert not key.known
        prepared = prepare_cache(tmp_path / "cache", model.model_file, key)
        assert prepared.state == "off" and prepared.folder is None


def test_cold_then_warm_only_after_a_finished_build(model, tmp_path: Path) -> None:
    root, key = tmp_path / "cache", _key(model)
    first = prepare_cache(root, model.model_file, key)
    assert first.state == "cold" and first.folder is not None
    assert first.folder.name == f"model.onnx-{key.digest()}"
    # An interrupted build (no "complete"): not trusted.
    (first.folder / "TensorrtExecutionProvider_TRTKernel.engine").write_bytes(b"half")
    second = prepare_cache(root, model.model_file, key)
    assert second.state == "rebuilt" and "did not finish" in second.reason
    assert not (second.folder / "TensorrtExecutionProvider_TRTKernel.engine").exists()
    (second.folder / "TensorrtExecutionProvider_TRTKernel.engine").write_bytes(b"engine")
    second.mark_complete(12.5)
    third = prepare_cache(root, model.model_file, key)
    assert third.state == "warm"
    assert (third.folder / "TensorrtExecutionProvider_TRTKernel.engine").read_bytes() == b"engine"
    record = json.loads((third.folder / RECORD_NAME).read_text())
    assert record["complete"] is True and record["build_s"] == 12.5


def test_a_foreign_or_unrecorded_folder_is_rebuilt(model, tmp_path: Path) -> None:
    root, key = tmp_path / "cache", _key(model)
    folder = prepare_cache(root, model.model_file, key).folder
    assert folder is not None
    # Copied from another machine under this very name: its record names another GPU.
    foreign = dict(key.as_dict(), gpu="Tesla T4", compute_capability="7.5")
    (folder / RECORD_NAME).write_text(json.dumps({"key": foreign, "complete": True}))
    (folder / "engine").write_bytes(b"for a T4")
    again = prepare_cache(root, model.model_file, key)
    assert again.state == "rebuilt"
    assert "compute_capability" in again.reason and "gpu" in again.reason
    assert not (folder / "engine").exists()
    # Engine files with no record at all.
    (folder / RECORD_NAME).unlink()
    (folder / "engine").write_bytes(b"who made this?")
    assert prepare_cache(root, model.model_file, key).state == "rebuilt"


def test_a_stale_folder_of_the_same_model_is_removed(model, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = prepare_cache(root, model.model_file, _key(model, tensorrt="10.0.1"))
    old.mark_complete(1.0)
    unrelated = root / "other.onnx-0123456789abcdef"
    unrelated.mkdir()
    new = prepare_cache(root, model.model_file, _key(model))
    assert new.state == "cold"
    assert old.folder is not None and not old.folder.exists()
    assert unrelated.exists()  # another model's cache is left alone


def test_the_cache_goes_beside_the_model_or_to_the_user_cache(
    model, tmp_path: Path, monkeypatch
) -> None:
    assert cache_root(model.model_file) == Path(model.model_file).parent / ".tensorrt"
    monkeypatch.setenv("DEEPLABSTREAM_CACHE", str(tmp_path / "user"))
    # A model folder where the cache folder cannot be made (a file is in its place: the tests
    # run as root, for whom a read-only folder is still writable).
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / ".tensorrt").write_text("not a folder")
    assert cache_root(blocked / "model.onnx") == tmp_path / "user" / "tensorrt"


def test_the_gpu_and_tensorrt_version_are_read_as_their_tools_print_them() -> None:
    assert parse_gpu_line("NVIDIA GeForce RTX 4090, 8.9\n") == GPU
    assert parse_gpu_line("NVIDIA H100 80GB HBM3, 9.0") == GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
    assert parse_gpu_line("") is None
    assert parse_gpu_line("No devices were found") is None
    assert version_from_number(100300) == "10.3.0"
    assert version_from_number(101201) == "10.12.1"
    assert version_from_number(8601) == "8.6.1"


def test_gpu_info_from_a_stand_in_for_nvidia_smi() -> None:
    """A stand-in for nvidia-smi (none here): the command asked and its answer read back."""
    asked: list[list[str]] = []

    def fake_nvidia_smi(command, **_):
        asked.append(command)
        return subprocess.CompletedProcess(command, 0, "NVIDIA GeForce RTX 4090, 8.9\n", "")

    assert gpu_info(0, run=fake_nvidia_smi) == GPU
    assert asked[0][0] == "nvidia-smi" and "--query-gpu=name,compute_cap" in asked[0]

    def missing(command, **_):
        raise FileNotFoundError("nvidia-smi")

    assert gpu_info(0, run=missing) is None
    # And the real call on this machine: no NVIDIA driver, no answer.
    if shutil.which("nvidia-smi") is None:
        assert gpu_info(0) is None


def test_a_build_is_shown_with_its_elapsed_time() -> None:
    lines: list[str] = []
    ticked = threading.Event()

    def status(line: str) -> None:
        lines.append(line)
        if "still building" in line:
            ticked.set()

    with BuildProgress("model.onnx", "cold", every_s=0.01, callback=status) as progress:
        assert ticked.wait(30)  # the build "runs" until a progress line came
    assert lines[0] == "TensorRT: building the engine of model.onnx (cold cache)"
    assert any(line.startswith("TensorRT: still building the engine") for line in lines)
    assert lines[-1].startswith("TensorRT: engine of model.onnx ready after ")
    assert progress.elapsed_s > 0
    with pytest.raises(RuntimeError), BuildProgress("m", "warm", callback=lines.append):
        raise RuntimeError("the build failed")
    assert "loading the cached engine" in lines[-2] and "failed after" in lines[-1]
