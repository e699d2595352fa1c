"""Scoring a network: decoding its outputs, pixel errors in frame pixels, an ONNX predictor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplabstream.offline.training.data import (
    LOCREF_STD,
    Sample,
    Size,
    content_size,
    input_to_frame,
    network_input,
    resize_to_input,
)
from deeplabstream.pose.decoding.peaks import decode_argmax
from deeplabstream.pose.networks.own import (
    STRIDE,
    InputFormat,
    PoseNet,
)


def decode_outputs(
    outputs: Sequence[np.ndarray], use_locref: bool, locref_std: float = LOCREF_STD
) -> np.ndarray:
    """Network outputs to (N, K, 3) keypoints in input pixels (x, y, likelihood)."""
    return decode_argmax(
        outputs[0],
        STRIDE,
        locref=outputs[1] if use_locref and len(outputs) > 1 else None,
        locref_std=locref_std,
        heatmaps_are_probabilities=False,
    )


def torch_outputs(model: PoseNet, images: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    """Run the network in eval mode on BGR uint8 images (N, H, W, 3) at input size."""
    model.eval()
    parts: list[list[np.ndarray]] = []
    fmt = model.config.input
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            result = model(torch.from_numpy(network_input(images[start : start + batch], fmt)))
            parts.append([r.numpy() for r in result])
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def pixel_errors(predicted_input: np.ndarray, samples: Sequence[Sample]) -> np.ndarray:
    """Distances (N, K) in original-frame pixels between predictions and truth (NaN: unlabeled)."""
    errors = np.empty((len(samples), predicted_input.shape[1]))
    for i, sample in enumerate(samples):
        predicted = sample.to_frame(predicted_input[i, :, :2])
        errors[i] = np.linalg.norm(predicted - sample.truth, axis=1)
    return errors


def error_summary(errors: np.ndarray, keypoints: Sequence[str]) -> dict[str, Any]:
    """Per-keypoint and overall median, mean and 95th percentile of pixel errors (N, K)."""

    def stats(values: np.ndarray) -> dict[str, float]:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return {"median": math.nan, "mean": math.nan, "p95": math.nan, "count": 0}
        return {
            "median": round(float(np.median(values)), 3),
            "mean": round(float(np.mean(values)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
            "count": int(values.size),
        }

    return {
        "per_keypoint": {name: stats(errors[:, k]) for k, name in enumerate(keypoints)},
        "all": stats(errors.ravel()),
    }


def format_errors(summary: dict[str, Any]) -> str:
    """Format an :func:`error_summary` as a small table."""
    lines = [f"{'keypoint':<14}{'median':>8}{'mean':>8}{'p95':>8}{'n':>6}"]
    rows = [*summary["per_keypoint"].items(), ("ALL", summary["all"])]
    for name, s in rows:
        lines.append(
            f"{name:<14}{s['median']:>8.2f}{s['mean']:>8.2f}{s['p95']:>8.2f}{s['count']:>6}"
        )
    return "\n".join(lines)


class OnnxPredictor:
    """Keypoints of whole frames from an exported model with ONNX Runtime (for scoring only).

    ``input_size`` is (width, height); without ``use_locref`` peaks are refined by a parabola.
    """

    def __init__(
        self,
        onnx_file: str | Path,
        input_size: Size,
        use_locref: bool,
        threads: int = 2,
        input_format: InputFormat | None = None,
        letterbox: bool = False,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_size = input_size
        self.use_locref = use_locref
        self.input_format = input_format or InputFormat()
        self.letterbox = letterbox

    def outputs(self, images: np.ndarray) -> list[np.ndarray]:
        """Raw outputs for BGR uint8 images (N, H, W, 3) already at input size."""
        return self.session.run(None, {"images": network_input(images, self.input_format)})

    def predict(self, frames: Sequence[np.ndarray], batch: int = 8) -> np.ndarray:
        """(N, K, 3) keypoints (x, y in frame pixels, likelihood) of whole BGR or grey frames."""
        results = []
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            images = np.stack([resize_to_input(f, self.input_size, self.letterbox) for f in chunk])
            decoded = decode_outputs(self.outputs(images), self.use_locref)
            for frame, keypoints in zip(chunk, decoded, strict=True):
                frame_size = (frame.shape[1], frame.shape[0])
                scaled = content_size(frame_size, self.input_size, self.letterbox)
                keypoints[:, :2] = input_to_frame(keypoints[:, :2], frame_size, scaled)
            results.append(decoded)
        return np.concatenate(results)


def rounded(value: Any) -> Any:
    """Return the floats rounded to 4 decimals inside nested dicts and lists (a readable report)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value
