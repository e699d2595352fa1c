"""``[Pose] PRECISION``: which graph runs (fp32, tf32, fp16, int8), what int8 costs.

Design: docs/gpu.md, "Precision on a GPU".
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal, get_args

from deeplabstream.core.digest import files_digest
from deeplabstream.pose.formats.conversion import CACHE_ENV, user_cache_folder
from deeplabstream.pose.model import ModelDescription, ModelError

PrecisionName = Literal["fp32", "tf32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)

#: Backends that run each precision (fp32 runs everywhere).
PRECISION_BACKENDS: dict[str, tuple[str, ...]] = {
    "fp16": ("onnxruntime", "pytorch", "openvino"),
    "int8": ("onnxruntime",),
    "tf32": ("onnxruntime", "pytorch"),
}
#: The devices TensorFloat-32 exists on (NVIDIA GPUs).
TF32_DEVICES = ("cuda", "tensorrt")

QUANTIZE_COMMAND = "python -m deeplabstream.pose.quantize"
#: Raised whenever the quantize command's graphs change: older int8 graphs are made again.
QUANTIZER_VERSION = 3
INT8_SUFFIX = ".int8.onnx"


def backend_problem(precision: str, backend: str) -> str | None:
    """Return why ``backend`` cannot run ``precision`` (None when it can)."""
    if precision not in PRECISIONS:
        return f"precision {precision!r}: use {', '.join(PRECISIONS)}"
    runs_on = PRECISION_BACKENDS.get(precision)
    if runs_on is None or backend in runs_on:
        return None
    return (
        f"PRECISION = {precision} runs on the {' or '.join(runs_on)} backend, not {backend}: "
        f"set [Pose] BACKEND = {runs_on[0]}, or PRECISION = fp32"
    )


def device_problem(precision: str, device: str) -> str | None:
    """Return why ``precision`` means nothing on ``device`` (None when it applies)."""
    if precision == "tf32" and device not in TF32_DEVICES:
        return (
            f"PRECISION = tf32 is TensorFloat-32 math on an NVIDIA GPU (DEVICE = "
            f"{' or '.join(TF32_DEVICES)}), not on {device}: set PRECISION = fp32"
        )
    return None


def int8_name(graph: Path) -> str:
    """Return the file name of the int8 graph quantized from the fp32 ``graph``."""
    return (graph.stem if graph.suffix else graph.name) + INT8_SUFFIX


def int8_folders(graph: Path) -> list[Path]:
    """Where an int8 graph of ``graph`` is looked for, in order (the forced cache alone)."""
    forced = os.environ.get(CACHE_ENV)
    if forced:
        return [Path(forced)]
    folders = [graph.parent, user_cache_folder()]
    return folders[:1] if folders[0].resolve() == folders[1].resolve() else folders


def record_path(int8_graph: Path) -> Path:
    """Return the JSON record's path beside an int8 graph."""
    return int8_graph.with_name(int8_graph.name + ".json")


def find_int8(graph: Path) -> Path | None:
    """Return the int8 graph of the fp32 ``graph`` (with its record), or None."""
    name = int8_name(graph)
    for folder in int8_folders(graph):
        candidate = folder / name
        if candidate.is_file() and record_path(candidate).is_file():
            return candidate
    return None


def read_record(int8_graph: Path) -> dict[str, Any]:
    """Read an int8 graph's record ({} when it cannot be read)."""
    try:
        record = json.loads(record_path(int8_graph).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def int8_model(fp32: ModelDescription, model_path: Path) -> ModelDescription:
    """Return the int8 description of the model loaded at fp32 (``model_path``: for the message).

    Raises ModelError when the model was not quantized, or from another fp32 graph.
    """
    make = f"make it with `{QUANTIZE_COMMAND} {model_path} YOUR_VIDEO`, or set PRECISION = fp32"
    if fp32.input_type != "float" or fp32.precision != "fp32":
        raise ModelError(f"{model_path}: PRECISION = int8 needs a float32 graph to quantize")
    found = find_int8(fp32.model_file)
    if found is None:
        where = " or ".join(str(f) for f in int8_folders(fp32.model_file))
        raise ModelError(
            f"{model_path}: PRECISION = int8 but no quantized model of it was found (looked for "
            f"{int8_name(fp32.model_file)} in {where}): {make}"
        )
    record = read_record(found)
    if record.get("quantizer_version") != QUANTIZER_VERSION:
        raise ModelError(
            f"{model_path}: the quantized model {found} was made by another version of the "
            f"quantize command: {make}"
        )
    if record.get("fp32_graph_sha256") != files_digest([fp32.model_file]):
        raise ModelError(
            f"{model_path}: the quantized model {found} was made from another version of the "
            f"model (its fp32 graph changed since): {make}"
        )
    return dataclasses.replace(fp32, model_file=found, precision="int8")


def int8_cost(description: ModelDescription) -> dict[str, Any] | None:
    """Return the quantize command's measured accuracy cost of an int8 model (None otherwise)."""
    if description.precision != "int8":
        return None
    record = read_record(description.model_file)
    keys = ("deviation_px", "per_keypoint_px", "calibration", "evaluation", "quantization")
    return {key: record[key] for key in keys if key in record}


def cost_lines(cost: dict[str, Any]) -> list[str]:
    """Return the accuracy cost as lines for a person (the inspect command, logs)."""
    deviation = cost.get("deviation_px", {})
    evaluation = cost.get("evaluation", {})
    calibration = cost.get("calibration", {})
    lines = [
        f"deviation from fp32: median {deviation.get('median', float('nan')):.3f} px, "
        f"p99 {deviation.get('p99', float('nan')):.3f} px, max "
        f"{deviation.get('max', float('nan')):.3f} px on {evaluation.get('frames', '?')} frames "
        "not used for calibration",
        f"calibrated on {calibration.get('frames', '?')} frames of {calibration.get('video', '?')}",
    ]
    for name, figures in cost.get("per_keypoint_px", {}).items():
        lines.append(
            f"  {name}: median {figures.get('median', float('nan')):.3f} px, "
            f"p99 {figures.get('p99', float('nan')):.3f} px"
        )
    return lines
