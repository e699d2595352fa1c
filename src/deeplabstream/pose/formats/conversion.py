"""Rebuilt networks to ONNX, once, cached beside the model and checked against the original.

Design: docs/pose-internals.md, "pose.formats.conversion".
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deeplabstream.core.digest import files_digest
from deeplabstream.core.user_folders import user_cache_folder as core_user_cache_folder
from deeplabstream.pose.model import ModelError

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
Precision = Literal["fp32", "fp16"]
Differences = dict[str, float]
# (reference outputs, converted outputs) -> the largest difference per compared quantity.
Comparison = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], Differences]

# When set, converted graphs are read from and written to this folder only (tests, packaging).
CACHE_ENV = "DEEPLABSTREAM_CACHE"
# Loggers of the exporter's passes, quiet during an export (progress, not news to the user).
_EXPORT_LOGGERS = ("torch.onnx", "onnx_ir", "onnxscript", "torch.export", "torch._dynamo")


@dataclass(frozen=True)
class ConversionSpec:
    """How to export one rebuilt network; ``sources``' bytes are the cache key.

    ``compare`` gives the module-to-graph differences on the check input; ``tolerances`` and
    ``fp16_tolerances`` (gross errors only) the largest allowed.
    """

    sources: tuple[Path, ...]
    input_name: str
    output_names: tuple[str, ...]
    example_shape: tuple[int, int, int, int]
    dynamic_size: bool
    compare: Comparison
    tolerances: Differences
    fp16_tolerances: Differences = field(default_factory=dict)


@dataclass(frozen=True)
class Conversion:
    """A converted graph and its differences to the module (the cache's record when ``reused``)."""

    onnx_file: Path
    reused: bool
    differences: Differences
    seconds: float


def user_cache_folder() -> Path:
    """Where converted graphs of read-only model folders go (``$DEEPLABSTREAM_CACHE`` wins)."""
    forced = os.environ.get(CACHE_ENV)
    if forced:
        return Path(forced)
    return core_user_cache_folder() / "converted"


def cached_name(source: Path, digest: str, precision: Precision) -> str:
    """Return the file name of a converted graph."""
    return f"{source.name}.{digest[:16]}.{precision}.v{CONVERTER_VERSION}.onnx"


def find_cached(source: Path, digest: str, precision: Precision) -> Path | None:
    """Find a converted graph of these files, beside the model or in the user cache, if present."""
    name = cached_name(source, digest, precision)
    folders = [user_cache_folder()] if os.environ.get(CACHE_ENV) else []
    for folder in folders or [source.parent, user_cache_folder()]:
        if (folder / name).is_file() and (folder / f"{name}.json").is_file():
            return folder / name
    return None


def convert(
    module: Any,
    spec: ConversionSpec,
    check_input: np.ndarray,
    precision: Precision = "fp32",
) -> Conversion:
    """Return the ONNX graph of ``module``: from the cache, or exported, checked and cached.

    ``module``: the rebuilt fp32 module in eval mode, returning ``spec.output_names`` in order;
    ``check_input`` (N, C, H, W) float32. Raises ModelError when the export fails or the graph does
    not reproduce the module.
    """
    source = spec.sources[0]
    digest = files_digest(spec.sources)
    cached = find_cached(source, digest, precision)
    record = (read_record(Path(f"{cached}.json")) if cached is not None else None) or {}
    if cached is not None and record.get("sources_sha256") == digest:
        log.info("using the converted model %s", cached)
        return Conversion(cached, True, dict(record.get("differences", {})), 0.0)
    started = time.perf_counter()
    folder = _writable_folder(source)
    final = folder / cached_name(source, digest, precision)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".converting-") as scratch:
        graph = Path(scratch) / final.name
        export_onnx(module, spec, graph, precision)
        differences = check_conversion(module, graph, spec, check_input, precision)
        record = {
            "source": str(source),
            "sources_sha256": digest,
            "precision": precision,
            "converter_version": CONVERTER_VERSION,
            "torch": _version("torch"),
            "onnx": _version("onnx"),
            "differences": differences,
            "check_input_shape": list(check_input.shape),
        }
        Path(f"{graph}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        # The graph last: a graph without its record is never taken from the cache.
        os.replace(f"{graph}.json", f"{final}.json")
        os.replace(graph, final)
    seconds = time.perf_counter() - started
    log.info("converted %s to %s in %.1f s; check: %s", source, final, seconds, differences)
    return Conversion(final, False, differences, seconds)


def read_record(path: Path) -> dict[str, Any] | None:
    """Read a cache's JSON record; None when unreadable (what it describes is made again)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _writable_folder(source: Path) -> Path:
    """Return where to write a new graph: the forced cache, the model's folder or the user cache."""
    # Read-only by permission bits, even for a user who could write anyway (root): a model
    # folder shipped read-only stays untouched.
    forced = os.environ.get(CACHE_ENV)
    if forced:
        Path(forced).mkdir(parents=True, exist_ok=True)
        return Path(forced)
    if can_write_in(source.parent):
        return source.parent
    folder = user_cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    log.info("%s is read-only: the converted model is cached in %s instead", source.parent, folder)
    return folder


def can_write_in(folder: Path) -> bool:
    """Whether the folder's permission bits allow writing and a file can be made there."""
    try:
        if not folder.stat().st_mode & 0o222:
            return False
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def export_onnx(module: Any, spec: ConversionSpec, path: Path, precision: Precision) -> None:
    """Export ``module`` (a half-precision copy for fp16) to one self-contained ONNX file."""
    import torch
    from torch.export import Dim

    dtype = torch.float16 if precision == "fp16" else torch.float32
    exported = copy.deepcopy(module).to(dtype).eval() if precision == "fp16" else module
    example = torch.zeros(spec.example_shape, dtype=dtype)
    axes: dict[int, Any] = {0: Dim("batch", min=1, max=256)}
    if spec.dynamic_size:
        axes |= {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    # The exporter and its passes log progress and warnings about optional packages
    # (torchvision's operators): none of it concerns the user.
    levels = {name: logging.getLogger(name).level for name in _EXPORT_LOGGERS}
    for name in _EXPORT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                exported,
                (example,),
                str(path),
                input_names=[spec.input_name],
                output_names=list(spec.output_names),
                dynamo=True,
                dynamic_shapes=(axes,),
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many types; the user needs the reason
        raise ModelError(f"{spec.sources[0]}: the conversion to ONNX failed: {error}") from error
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def load_weights(module: Any, state_dict: dict[str, Any], path: Path, what: str) -> None:
    """Load a state dict strictly; a mismatch names the keys (missing, unexpected, shapes)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} (network: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            shown = ", ".join(keys[:6]) + (f", ... ({len(keys) - 6} more)" if len(keys) > 6 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise ModelError(f"{path}: the weights do not fit {what}: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)


def run_module(module: Any, batch: np.ndarray) -> list[np.ndarray]:
    """Return the module's outputs on a float32 batch, as float32 arrays."""
    import torch

    with torch.inference_mode():
        outputs = module(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
    if not isinstance(outputs, (tuple, list)):
        outputs = (outputs,)
    return [o.float().numpy() for o in outputs]


def run_graph(path: Path, input_name: str, batch: np.ndarray, threads: int = 1) -> list[np.ndarray]:
    """Return the graph's outputs on a batch (cast to the graph's input type), by ONNX Runtime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = session.get_inputs()[0].type
    dtype = np.float16 if wanted == "tensor(float16)" else np.float32
    return session.run(None, {input_name: batch.astype(dtype)})


def check_conversion(
    module: Any,
    graph: Path,
    spec: ConversionSpec,
    check_input: np.ndarray,
    precision: Precision,
) -> Differences:
    """Compare the graph with the fp32 module on ``check_input``; raise when they disagree."""
    differences = spec.compare(
        run_module(module, check_input), run_graph(graph, spec.input_name, check_input)
    )
    limits = spec.tolerances if precision == "fp32" else spec.fp16_tolerances
    failed = {k: v for k, v in differences.items() if k in limits and not v <= limits[k]}
    if failed:
        allowed = {k: limits[k] for k in failed}
        raise ModelError(
            f"{spec.sources[0]}: the converted ONNX graph ({precision}) does not reproduce the "
            f"network: largest differences {failed}, allowed {allowed}. Please report this; "
            f"meanwhile use [Pose] BACKEND = pytorch"
        )
    return differences


def max_abs_differences(
    names: Sequence[str], reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    """Return the largest absolute difference of each named output (inf on a shape mismatch)."""
    result = {}
    for name, a, b in zip(names, reference, converted, strict=False):
        same = a.shape == b.shape
        result[name] = float(np.abs(a - b.astype(a.dtype)).max()) if same else float("inf")
    return result


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def synthetic_input(
    height: int, width: int, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Make a normalised (1, 3, H, W) image-like input with structure at several scales."""
    import cv2

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 150 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0) + 20 * np.sin((x + 2 * y) / 7.0)
    rng = np.random.default_rng(7)
    for _ in range(4):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (
            int(rng.integers(4, max(5, width // 8))),
            int(rng.integers(3, max(4, height // 10))),
        )
        cv2.ellipse(image, centre, axes, float(rng.integers(0, 180)), 0, 360, 30.0, -1)
    pixels = np.clip(image, 0, 255).astype(np.uint8).astype(np.float32) / 255
    channels = [(pixels - m) / s for m, s in zip(mean, std, strict=True)]
    return np.stack(channels)[None].astype(np.float32)
