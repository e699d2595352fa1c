"""TensorRT's engine and timing caches: where they live, what they are keyed by, when rebuilt.

Design: docs/gpu.md, "The TensorRT engine cache".
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from deeplabstream.core.digest import files_digest
from deeplabstream.pose.formats.conversion import read_record, user_cache_folder
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.providers import TRT_MAX_BATCH

log = logging.getLogger(__name__)

CACHE_FOLDER_NAME = ".tensorrt"
RECORD_NAME = "key.json"
#: Raised when what a folder holds, or how it is keyed, changes: every older folder is rebuilt.
CACHE_FORMAT = 1
UNKNOWN = "unknown"

CacheState = Literal["warm", "cold", "rebuilt", "off"]


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for."""

    name: str
    compute_capability: str


@dataclass(frozen=True)
class CacheKey:
    """Everything an engine depends on. Two equal keys may share an engine; nothing else may."""

    gpu: str
    compute_capability: str
    tensorrt: str
    onnxruntime: str
    precision: str
    input_shape: str
    model_sha256: str
    cache_format: int = CACHE_FORMAT

    @property
    def known(self) -> bool:
        """False when a part could not be read: such a key must not reuse anything."""
        return UNKNOWN not in (self.gpu, self.compute_capability, self.tensorrt, self.onnxruntime)

    def digest(self) -> str:
        """Return a short hash of the whole key (the folder's name ends with it)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        """Return the key as JSON-ready data."""
        return asdict(self)


def input_shape_text(description: ModelDescription) -> str:
    """Return the input's shape, type and layout as the key holds it (a batch range: dynamic)."""
    shape = description.input_shape(1)
    # A dynamic batch is built for TensorRT's profile of 1 to TRT_MAX_BATCH images.
    batch = str(description.batch_size) if description.batch_size else f"1-{TRT_MAX_BATCH}"
    dims = "x".join([batch, *(str(d) for d in shape[1:])])
    return f"{dims}:{description.input_layout}:{description.input_type}"


def model_files(description: ModelDescription) -> list[Path]:
    """Return the graph and its external-data file (``.onnx.data``) when it has one."""
    graph = Path(description.model_file)
    data = graph.with_name(graph.name + ".data")
    return [graph, data] if data.is_file() else [graph]


def make_key(
    description: ModelDescription,
    gpu: GpuInfo | None,
    tensorrt: str | None,
    onnxruntime: str,
) -> CacheKey:
    """Return the cache key of ``description`` on ``gpu`` with these library versions."""
    return CacheKey(
        gpu=gpu.name if gpu else UNKNOWN,
        compute_capability=gpu.compute_capability if gpu else UNKNOWN,
        tensorrt=tensorrt or UNKNOWN,
        onnxruntime=onnxruntime or UNKNOWN,
        precision=description.precision,
        input_shape=input_shape_text(description),
        model_sha256=files_digest(model_files(description)),
    )


def cache_root(model_file: Path) -> Path:
    """Where the model's cache folders go: beside it, or the user cache when read-only."""
    beside = Path(model_file).parent / CACHE_FOLDER_NAME
    if _writable(beside):
        return beside
    return user_cache_folder() / "tensorrt"


def _writable(folder: Path) -> bool:
    """Return True when ``folder`` exists or can be made, and files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def folder_name(model_file: Path, key: CacheKey) -> str:
    """``<model file name>-<key digest>``."""
    return f"{Path(model_file).name}-{key.digest()}"


@dataclass
class PreparedCache:
    """A cache folder ready for ONNX Runtime, and what was found there."""

    folder: Path | None
    state: CacheState
    key: CacheKey
    reason: str

    def record(self) -> dict[str, Any]:
        """Return what ``session.json`` says about the cache."""
        return {
            "folder": str(self.folder) if self.folder else None,
            "state": self.state,
            "reason": self.reason,
            "key": self.key.as_dict(),
        }

    def mark_complete(self, build_s: float) -> None:
        """Record that the engine was built (or reused) and runs: later starts may reuse it."""
        if self.folder is None:
            return
        _write_record(self.folder, self.key, complete=True, build_s=build_s)


def prepare_cache(root: Path, model_file: Path, key: CacheKey) -> PreparedCache:
    """Make the cache folder for ``key`` under ``root`` ready, emptied unless it can be trusted.

    Returns the folder and its state: ``warm``, ``cold``, ``rebuilt`` (emptied) or ``off``.
    """
    if not key.known:
        return PreparedCache(None, "off", key, "the GPU or TensorRT's version cannot be read")
    folder = root / folder_name(model_file, key)
    _remove_stale_siblings(root, model_file, folder)
    record = read_record(folder / RECORD_NAME)
    if record is None and not _has_files(folder):
        state: CacheState = "cold"
        reason = "first build for this model, GPU, TensorRT and precision"
    elif record is not None and record.get("key") == key.as_dict() and record.get("complete"):
        return PreparedCache(folder, "warm", key, "a finished build of this very key")
    else:
        state = "rebuilt"
        reason = _distrust_reason(record, key)
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    _write_record(folder, key, complete=False, build_s=None)
    return PreparedCache(folder, state, key, reason)


def _distrust_reason(record: dict[str, Any] | None, key: CacheKey) -> str:
    if record is None:
        return "engine files without a record (not made here): rebuilt"
    if record.get("key") != key.as_dict():
        theirs = record.get("key") or {}
        differ = sorted(k for k, v in key.as_dict().items() if theirs.get(k) != v)
        return f"made for another {', '.join(differ) or 'key'}: rebuilt"
    return "an earlier build did not finish: rebuilt"


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _write_record(folder: Path, key: CacheKey, *, complete: bool, build_s: float | None) -> None:
    record = {"key": key.as_dict(), "complete": complete, "build_s": build_s}
    partial = folder / (RECORD_NAME + ".partial")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    partial.replace(folder / RECORD_NAME)


def _remove_stale_siblings(root: Path, model_file: Path, keep: Path) -> None:
    """Remove this model's folders of other keys (an older TensorRT, an edited model...)."""
    prefix = Path(model_file).name + "-"
    if not root.is_dir():
        return
    for folder in root.iterdir():
        stale = folder.name.startswith(prefix) and folder != keep and folder.is_dir()
        # Only folders of our naming (prefix + a 16-hex digest) are ever removed.
        if stale and len(folder.name) == len(prefix) + 16:
            log.info("removing the stale TensorRT cache %s", folder)
            shutil.rmtree(folder, ignore_errors=True)


# -- what the key is made of, read from this machine --------------------------------------


def gpu_info(device_id: int = 0, run: Callable[..., Any] = subprocess.run) -> GpuInfo | None:
    """Name and compute capability of GPU ``device_id`` from ``nvidia-smi``; None without it."""
    command = [
        "nvidia-smi",
        f"--id={device_id}",
        "--query-gpu=name,compute_cap",
        "--format=csv,noheader",
    ]
    try:
        done = run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_gpu_line(done.stdout) if done.returncode == 0 else None


def parse_gpu_line(text: str) -> GpuInfo | None:
    """``NVIDIA GeForce RTX 4090, 8.9`` -> GpuInfo; None when it is not that."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    name, _, capability = line.rpartition(",")
    name, capability = name.strip(), capability.strip()
    if not name or not capability.replace(".", "").isdigit():
        return None
    return GpuInfo(name, capability)


_TRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-libs")
_TRT_LIBRARIES = ("libnvinfer.so.10", "nvinfer_10.dll", "libnvinfer.so")


def tensorrt_version() -> str | None:
    """TensorRT's version: NVIDIA's pip package, else the loaded library's own answer."""
    for name in _TRT_DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for library in _TRT_LIBRARIES:
        try:
            number = int(ctypes.CDLL(library).getInferLibVersion())
        except (OSError, AttributeError):
            continue
        return version_from_number(number)
    return None


def version_from_number(number: int) -> str:
    """``getInferLibVersion``'s integer to text: 100300 -> 10.3.0 (TensorRT 10's encoding)."""
    if number >= 10000:  # TensorRT 10: major * 10000 + minor * 100 + patch
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"  # TensorRT 8


class BuildProgress:
    """Log lines with the elapsed time while a TensorRT engine builds (``callback`` gets them)."""

    def __init__(
        self,
        what: str,
        state: CacheState,
        *,
        every_s: float = 10.0,
        callback: Callable[[str], None] | None = None,
    ) -> None:
        self.what = what
        self.state = state
        self.every_s = every_s
        self.callback = callback
        self.elapsed_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def _say(self, text: str) -> None:
        log.info("%s", text)
        if self.callback is not None:
            self.callback(text)

    def __enter__(self) -> BuildProgress:
        """Say that the build starts, and start the thread that says it goes on."""
        self._started = time.monotonic()
        verb = "loading the cached" if self.state == "warm" else "building the"
        self._say(f"TensorRT: {verb} engine of {self.what} ({self.state} cache)")
        self._thread = threading.Thread(target=self._tick, name="trt-build-progress", daemon=True)
        self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            elapsed = time.monotonic() - self._started
            self._say(f"TensorRT: still building the engine of {self.what}: {elapsed:.0f} s")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        """Say how the build ended, and after how long."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.elapsed_s = time.monotonic() - self._started
        outcome = "failed" if error is not None else "ready"
        self._say(f"TensorRT: engine of {self.what} {outcome} after {self.elapsed_s:.1f} s")
