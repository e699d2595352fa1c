"""Quantize a pose model to int8, calibrated on your own video, and measure what it costs.

Exit status: 0 written, 2 the model or video cannot be used. docs/pose-models.md (precision).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.digest import files_digest
from deeplabstream.core.optional import exit_with
from deeplabstream.pose.formats.conversion import can_write_in
from deeplabstream.pose.formats.lightning_context import context_of
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.precision import (
    QUANTIZER_VERSION,
    cost_lines,
    int8_folders,
    int8_name,
    record_path,
)
from deeplabstream.pose.runtime.preprocess import Preprocessor

log = logging.getLogger(__name__)

#: Calibration frames by default: enough for stable activation ranges, quick to collect.
DEFAULT_CALIBRATION_FRAMES = 32
#: Frames the int8 model is compared with fp32 on (never calibration frames).
DEFAULT_EVALUATION_FRAMES = 64
#: Operators left in float: they decide (the first maximum of a heatmap, a gather at it), and
#: a quantized copy turns near-ties into jumps of whole heatmap cells. The output heads and
#: what follows them stay float too (:func:`output_heads_and_after`).
FLOAT_OPERATORS = ("ArgMax", "ArgMin", "TopK", "Gather", "GatherElements", "GatherND")


@dataclass(frozen=True)
class VideoFrames:
    """Frames of a video, split into calibration and evaluation frames (disjoint)."""

    video: Path
    total: int
    calibration_indices: tuple[int, ...]
    evaluation_indices: tuple[int, ...]
    calibration: tuple[np.ndarray, ...]
    evaluation: tuple[np.ndarray, ...]


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        frames = read_frames(args.video, args.frames, args.eval_frames)

        size = frames.calibration[0].shape[:2]
        fp32 = load_model(args.model, frame_size=(size[0], size[1]), precision="fp32")
        record = quantize_model(fp32, frames, args.output, args.threads, args.model)
    except ModelError as error:
        print(f"cannot quantize: {error}", file=sys.stderr)
        return 2
    output = Path(record["int8_graph"])
    print(f"int8 model:  {output}")
    print(f"record:      {record_path(output)}")
    speed = record["speed_ms_p50"]
    print(
        f"speed here:  fp32 {speed['fp32']:.1f} ms, int8 {speed['int8']:.1f} ms per frame "
        f"(median, {args.threads} threads, this machine as it is now)"
    )
    for line in cost_lines(record):
        print(line)
    if output.parent not in int8_folders(fp32.model_file):
        print(
            f"note: {output.parent} is not where PRECISION = int8 looks "
            f"({', '.join(str(f) for f in int8_folders(fp32.model_file))})"
        )
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deeplabstream-quantize", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("model", type=Path, help="model file or folder (as MODEL_PATH)")
    parser.add_argument("video", type=Path, help="a video of your rig, for calibration")
    parser.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_CALIBRATION_FRAMES,
        help=f"calibration frames, spread over the video (default {DEFAULT_CALIBRATION_FRAMES})",
    )
    parser.add_argument(
        "--eval-frames",
        type=int,
        default=DEFAULT_EVALUATION_FRAMES,
        help="other frames the int8 model is compared with fp32 on "
        f"(default {DEFAULT_EVALUATION_FRAMES})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="the int8 graph to write (default: beside the fp32 graph, where PRECISION = int8 "
        "finds it)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the comparison")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.eval_frames < 1:
        parser.error("--frames and --eval-frames must be at least 1")
    return args


# --- frames ---------------------------------------------------------------------------------


def read_frames(video: Path, calibration: int, evaluation: int) -> VideoFrames:
    """Read ``calibration`` frames spread over ``video`` and up to ``evaluation`` others.

    Raises ModelError when the video cannot be read or has too few frames for both sets.
    """
    import av

    if not video.is_file():
        raise ModelError(f"{video}: no such video")
    total = _frame_count(video)
    if total < 2 or total <= calibration:
        raise ModelError(
            f"{video}: {total} frames; calibration takes {calibration} (--frames) and at least "
            "one other frame is needed to measure the accuracy: use a longer video or fewer "
            "--frames"
        )
    calibration_indices = _spread(range(total), calibration)
    chosen = set(calibration_indices)
    rest = [i for i in range(total) if i not in chosen]
    evaluation_indices = _spread(rest, evaluation)
    wanted = set(calibration_indices) | set(evaluation_indices)
    decoded: dict[int, np.ndarray] = {}
    try:
        with av.open(str(video)) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if index in wanted:
                    decoded[index] = frame.to_ndarray(format="bgr24")
                if len(decoded) == len(wanted):
                    break
    except (av.error.FFmpegError, IndexError) as error:
        raise ModelError(f"{video}: not a readable video: {error}") from error
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise ModelError(f"{video}: frames {missing[:5]} could not be decoded")
    return VideoFrames(
        video=video,
        total=total,
        calibration_indices=calibration_indices,
        evaluation_indices=evaluation_indices,
        calibration=tuple(decoded[i] for i in calibration_indices),
        evaluation=tuple(decoded[i] for i in evaluation_indices),
    )


def _frame_count(video: Path) -> int:
    """Frames in ``video``: the container's count, else its packets counted (no decoding)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, IndexError) as error:
        raise ModelError(f"{video}: not a readable video: {error}") from error


def _spread(indices: Sequence[int], count: int) -> tuple[int, ...]:
    """Return up to ``count`` of ``indices``, evenly spread (all of them when fewer)."""
    if count >= len(indices):
        return tuple(indices)
    positions = np.linspace(0, len(indices) - 1, count).round().astype(int)
    return tuple(indices[p] for p in sorted(set(positions.tolist())))


# --- quantization ------------------------------------------------------------------------------


def quantize_model(
    fp32: ModelDescription,
    frames: VideoFrames,
    output: Path | None,
    threads: int,
    model_path: Path,
) -> dict[str, Any]:
    """Quantize ``fp32``'s graph, measure its cost on the evaluation frames, write both files.

    Returns the record written beside the int8 graph. Raises ModelError when the model is not a
    float32 ONNX graph or ONNX Runtime fails.
    """
    if fp32.input_type != "float" or fp32.precision != "fp32":
        raise ModelError(f"{model_path}: only a float32 graph can be quantized")
    if context_of(fp32) is not None:
        raise ModelError(
            f"{model_path}: a Lightning Pose context model (heatmap_mhcrnn) runs as two graphs "
            "(backbone, heads), which this command does not quantize; run it at fp32 or fp16"
        )
    target = output or _default_output(fp32.model_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantizing-") as scratch:
        graph = Path(scratch) / target.name
        settings = _quantize(fp32, frames.calibration, graph, Path(scratch))
        int8 = _described(fp32, graph)
        deviation, speed = measure_cost(fp32, int8, frames.evaluation, threads)
        record = {
            "model": str(model_path),
            "fp32_graph": str(fp32.model_file),
            "fp32_graph_sha256": files_digest([fp32.model_file]),
            "int8_graph": str(target),
            "quantizer_version": QUANTIZER_VERSION,
            "quantization": settings,
            "calibration": {
                "video": str(frames.video),
                "frames": len(frames.calibration_indices),
                "indices": list(frames.calibration_indices),
                "video_frames": frames.total,
            },
            "evaluation": {
                "frames": len(frames.evaluation_indices),
                "indices": list(frames.evaluation_indices),
                "what": "pixel distance between the int8 and fp32 models' keypoints, frames "
                "not used for calibration",
            },
            **deviation,
            "speed_ms_p50": speed,
            "seconds": round(time.perf_counter() - started, 1),
        }
        os.replace(graph, target)
    # The record last: an int8 graph without its record is never used.
    record_path(target).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _default_output(graph: Path) -> Path:
    """Return where PRECISION = int8 will find the int8 graph: the first writable folder."""
    for folder in int8_folders(graph):
        if _writable(folder):
            return folder / int8_name(graph)
    raise ModelError(
        f"none of {[str(f) for f in int8_folders(graph)]} can be written: give --output"
    )


def _writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (made when missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return can_write_in(folder)


def _quantize(
    fp32: ModelDescription, calibration: Sequence[np.ndarray], output: Path, scratch: Path
) -> dict[str, Any]:
    """Run ONNX Runtime's static quantization; return the settings used (for the record)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = scratch / "prepared.onnx"
    try:  # shape inference and graph clean-up, as ONNX Runtime advises before quantizing
        quant_pre_process(str(fp32.model_file), str(prepared), skip_symbolic_shape=True)
    except Exception as error:  # its failures are of many types; quantize the graph as it is
        log.warning("pre-processing for quantization skipped: %s", error)
        prepared = fp32.model_file
    graph = onnx.load(str(prepared))
    pooled = pool_spatial_means(graph)
    if pooled:
        prepared = scratch / "pooled.onnx"
        onnx.save(graph, str(prepared))
    tail = output_heads_and_after(graph)
    kept_float = [
        n.name
        for n in graph.graph.node
        if n.name and (n.op_type in FLOAT_OPERATORS or n.name in tail)
    ]
    try:
        quantize_static(
            str(prepared),
            str(output),
            _CalibrationFrames(fp32, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=kept_float,
        )
    except Exception as error:
        raise ModelError(
            f"{fp32.model_file}: ONNX Runtime could not quantize it: {error}"
        ) from error
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "onnxruntime": _version("onnxruntime"),
        "format": "QDQ",
        "weights": "int8, per output channel",
        "activations": "uint8, per tensor",
        "calibration_method": "MinMax",
        "kept_float": sorted({n.op_type for n in graph.graph.node if n.name in kept_float}),
        "float_output_heads_and_after": len(tail),
        "spatial_means_as_global_average_pool": pooled,
    }


#: Operators with weights: the last of them on each path to an output is an output head.
WEIGHTED_OPERATORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def output_heads_and_after(model: Any) -> set[str]:
    """Return the names of the output heads and of every node after them (kept in float).

    Quantized, their 8-bit outputs round the values the decoder reads; kept in float they took
    DeepLabCut's cspnext_s from 0.95 to 0.19 px median deviation at the same speed.
    """
    nodes = list(model.graph.node)
    producers = {output: node for node in nodes for output in node.output}
    heads: set[str] = set()
    seen: set[int] = set()
    stack = [output.name for output in model.graph.output]
    while stack:
        node = producers.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in WEIGHTED_OPERATORS:
            heads.add(node.name)
        else:
            stack.extend(name for name in node.input if name)
    tail = set(heads)
    reached = {output for node in nodes if node.name in heads for output in node.output}
    for node in nodes:  # in topological order, as ONNX stores them
        if any(name in reached for name in node.input):
            tail.add(node.name)
            reached.update(node.output)
    return tail


def pool_spatial_means(model: Any) -> int:
    """Replace means over H and W of 4-D tensors by GlobalAveragePool, in place; return how many.

    ONNX Runtime quantizes GlobalAveragePool; a float ReduceMean between int8 layers costs a
    dequantization and a slow reduction (a fifth of CSPNeXt's int8 time).
    """
    from onnx import helper, numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in [*model.graph.value_info, *model.graph.input]
        if v.type.tensor_type.HasField("shape")
    }
    replaced = 0
    for index, node in enumerate(model.graph.node):
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attributes.get("axes")
        if axes is None and len(node.input) > 1:
            axes = constants.get(node.input[1])
        if attributes.get("keepdims", 1) != 1 or axes is None:
            continue
        if sorted(int(a) % 4 for a in np.asarray(axes).ravel()) != [2, 3]:
            continue
        pool = helper.make_node(
            "GlobalAveragePool", [node.input[0]], list(node.output), name=node.name + "_pool"
        )
        model.graph.node.remove(node)
        model.graph.node.insert(index, pool)
        replaced += 1
    return replaced


class _CalibrationFrames:
    """ONNX Runtime's calibration data reader: one pre-processed frame per call."""

    def __init__(self, description: ModelDescription, frames: Sequence[np.ndarray]) -> None:
        self._name = description.input_name
        self._preprocessor = Preprocessor(description, frames[0].shape, 1)
        self._frames: Iterator[np.ndarray] = iter(frames)

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        batch, _ = self._preprocessor.prepare([frame], [False])
        return {self._name: np.array(batch[:1])}

    def rewind(self) -> None:  # pragma: no cover - ONNX Runtime calls it for some methods
        raise NotImplementedError("one pass over the calibration frames")


def _described(fp32: ModelDescription, graph: Path) -> ModelDescription:
    """Return the int8 description of a graph just quantized from ``fp32``."""
    import dataclasses

    return dataclasses.replace(fp32, model_file=graph, precision="int8")


# --- the cost ----------------------------------------------------------------------------------


def measure_cost(
    fp32: ModelDescription,
    int8: ModelDescription,
    frames: Sequence[np.ndarray],
    threads: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Return the keypoint deviation of ``int8`` from ``fp32`` on ``frames``, and their speed.

    Deviations in px (median, p99, max; overall and per keypoint), the likelihood's largest
    difference, and the median milliseconds per frame of each.
    """
    keypoints: dict[str, np.ndarray] = {}
    speed: dict[str, float] = {}
    for description in (fp32, int8):
        keypoints[description.precision], speed[description.precision] = _estimate(
            description, frames, threads
        )
    ours, reference = keypoints["int8"], keypoints["fp32"]
    # (frames, animals, keypoints): pixel distance; NaN where either model found nothing.
    distance = np.hypot(*(ours[..., :2] - reference[..., :2]).transpose(3, 0, 1, 2))
    per_keypoint = {
        name: _figures(distance[:, :, k].ravel()) for k, name in enumerate(fp32.keypoints)
    }
    likelihood = np.abs(ours[..., 2] - reference[..., 2])
    deviation = {
        "deviation_px": _figures(distance.ravel()),
        "per_keypoint_px": per_keypoint,
        "likelihood_max_difference": _round(np.nanmax(likelihood) if likelihood.size else 0.0),
    }
    return deviation, speed


def _estimate(
    description: ModelDescription, frames: Sequence[np.ndarray], threads: int
) -> tuple[np.ndarray, float]:
    """Keypoints (N, A, K, 3) of ``frames`` by ``description`` on ONNX Runtime, and ms p50."""
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    try:
        estimator = open_estimator(description, backend, frames[0].shape)
        estimator.estimate_animals(frames[:1])  # the first run allocates
        points = np.empty((len(frames), estimator.animals, len(description.keypoints), 3))
        seconds = []
        for i, frame in enumerate(frames):
            started = time.perf_counter()
            points[i] = estimator.estimate_animals([frame])[0]
            seconds.append(time.perf_counter() - started)
    finally:
        backend.close()
    return points, _round(float(np.median(seconds)) * 1000)


def _figures(distance: np.ndarray) -> dict[str, float]:
    """Median, p99 and max of pixel distances, NaN ignored (all NaN: NaN)."""
    valid = distance[np.isfinite(distance)]
    if not valid.size:
        return {"median": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    return {
        "median": _round(np.median(valid)),
        "p99": _round(np.percentile(valid, 99)),
        "max": _round(valid.max()),
        "n": int(valid.size),
    }


def _round(value: float) -> float:
    return round(float(value), 4)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
