"""Exporting the best checkpoint: ONNX (checked against PyTorch) and TorchScript."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplabstream.offline.training.data import (
    LOCREF_STD,
    Size,
    network_input,
)
from deeplabstream.offline.training.metrics import OnnxPredictor, torch_outputs
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.networks.own import (
    STRIDE,
    InputFormat,
    PoseNet,
    example_input,
    export_onnx,
)


def export_model(
    model: PoseNet,
    folder: Path,
    input_size: Size,
    check_images: np.ndarray,
    torchscript: bool,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.pt``) into ``folder`` and check them against PyTorch.

    Returns the largest absolute differences per file. Raises RuntimeError when they exceed
    ``tolerance`` (absolute, plus the same relative).
    """
    width, height = input_size
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    export_onnx(model, str(onnx_path), height, width)
    expected = torch_outputs(model, check_images)
    fmt = model.config.input
    predictor = OnnxPredictor(onnx_path, input_size, use_locref=True, input_format=fmt)
    differences = {"onnx": predictor.outputs(check_images)}
    if torchscript:
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is what PyTorch-only
            # deployments load today; the warning would only clutter the training log.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example_input(model.config, 1, height, width))
            traced.save(str(folder / "model.pt"))
            loaded = torch.jit.load(str(folder / "model.pt"))
        with torch.inference_mode():
            got = [r.numpy() for r in loaded(torch.from_numpy(network_input(check_images, fmt)))]
        differences["torchscript"] = got
    largest = {}
    for name, outputs in differences.items():
        largest[name], worst = _largest_difference(outputs, expected, tolerance)
        if worst > 1.0:
            raise RuntimeError(
                f"{name} export differs from PyTorch by {largest[name]:.2e} "
                f"(tolerance {tolerance} absolute plus {tolerance} relative)"
            )
    return largest


def _largest_difference(
    got: Sequence[np.ndarray], expected: Sequence[np.ndarray], tolerance: float
) -> tuple[float, float]:
    """Largest ``|a - b|``, and largest ``|a - b| / (tolerance * (1 + |b|))`` (> 1 fails)."""
    absolute, worst = 0.0, 0.0
    for a, b in zip(got, expected, strict=True):
        difference = np.abs(a - b)
        absolute = max(absolute, float(difference.max()))
        worst = max(worst, float((difference / (tolerance * (1.0 + np.abs(b)))).max()))
    return absolute, worst


def model_description(
    name: str,
    keypoints: Sequence[str],
    input_size: Size,
    use_locref: bool,
    skeleton: Any = (),
    input_format: InputFormat | None = None,
    letterbox: bool = False,
) -> ModelDescription:
    """Describe a model trained here (its graph takes ``input_format``)."""
    width, height = input_size
    fmt = input_format or InputFormat()
    return ModelDescription(
        name=name,
        framework="deeplabstream",
        model_file=Path("model.onnx"),
        keypoints=tuple(keypoints),
        input_height=height,
        input_width=width,
        color_order="rgb",
        mean=fmt.mean,
        std=fmt.std,
        resize="area",
        output_kind="heatmaps+locref" if use_locref else "heatmaps",
        stride=float(STRIDE),
        decoder="argmax",
        heatmaps_are_probabilities=False,
        locref_std=LOCREF_STD,
        output_names=("heatmaps", "locref") if use_locref else ("heatmaps",),
        skeleton=tuple(tuple(pair) for pair in skeleton),
        input_type="uint8" if fmt.dtype == "uint8" else "float",
        input_layout=fmt.layout,
        normalization=fmt.normalization,
        letterbox=letterbox,
    )
