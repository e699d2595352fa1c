"""What the whole-frame (bottom-up) DeepLabCut 3.0 exports share: their graph and description.

Design: docs/pose-internals.md, "pose.formats.dlc3_bottomup".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.pose.formats.conversion import (
    Comparison,
    Conversion,
    ConversionSpec,
    Differences,
    Precision,
    convert,
    max_abs_differences,
    synthetic_input,
)
from deeplabstream.pose.model import ColorOrder, ModelDescription

FRAMEWORK = "deeplabcut"
INPUT_NAME = "images"
Normalisation = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std), 0..1 pixel units


@dataclass(frozen=True)
class WholeFrameGraph:
    """An export's network as one ONNX graph of the whole frame: its conversion, its description."""

    export: Any
    frame_size: tuple[int, int]
    normalisation: Normalisation
    precision: Precision

    def convert(
        self,
        module: Any,
        output_names: tuple[str, ...],
        compare: Comparison,
        tolerances: Differences,
        fp16_tolerances: Differences,
    ) -> Conversion:
        """Convert the rebuilt ``module`` (or reuse its cached graph), any batch and size."""
        height, width = self.frame_size
        mean, std = self.normalisation
        spec = ConversionSpec(
            sources=(self.export.path,),
            input_name=INPUT_NAME,
            output_names=output_names,
            example_shape=(1, 3, height, width),
            dynamic_size=True,
            compare=compare,
            tolerances=tolerances,
            fp16_tolerances=fp16_tolerances,
        )
        return convert(module, spec, synthetic_input(height, width, mean, std), self.precision)

    def describe(self, conversion: Conversion, stride: float, **decoding: Any) -> ModelDescription:
        """Describe the converted graph; ``decoding``: the format's own fields."""
        export = self.export
        height, width = self.frame_size
        mean, std = self.normalisation
        return ModelDescription(
            name=export.path.stem,
            framework=FRAMEWORK,
            model_file=conversion.onnx_file,
            keypoints=export.bodyparts,
            input_height=height,
            input_width=width,
            color_order=colour_order(export.config),
            mean=mean,
            std=std,
            resize="bilinear-float",
            output_kind="coordinates",
            stride=stride,
            input_name=INPUT_NAME,
            batch_size=None,
            precision=self.precision,
            source_file=export.path,
            any_input_size=True,
            **decoding,
        )


def colour_order(config: dict[str, Any]) -> ColorOrder:
    """Return the channel order of the export's ``data.colormode`` (DeepLabCut's default: RGB)."""
    colour = str(config.get("data", {}).get("colormode", "RGB")).lower()
    return "bgr" if colour == "bgr" else "rgb"


def skeleton_of(export: Any) -> tuple[tuple[str, str], ...]:
    """Return the skeleton the export's metadata names (pairs of its bodyparts), else none."""
    keypoints = export.bodyparts
    names = list(keypoints)
    skeleton = (export.config.get("metadata") or {}).get("skeleton") or []
    pairs = [(names.index(a), names.index(b)) for a, b in skeleton if a in names and b in names]
    return tuple((keypoints[s], keypoints[t]) for s, t in pairs)


def map_differences(
    names: Sequence[str],
    reference: Sequence[np.ndarray],
    converted: Sequence[np.ndarray],
    peaks_at: int,
    is_peak: Callable[[np.ndarray], np.ndarray],
) -> Differences:
    """Largest differences of the maps ``names``; ``peaks`` where both call the cell a peak."""
    differences = max_abs_differences(names, reference, converted)
    ours, theirs = reference[peaks_at], converted[peaks_at]
    if ours.shape == theirs.shape:
        ours_peaks, theirs_peaks = is_peak(ours), is_peak(theirs)
        both = ours_peaks & theirs_peaks
        differences["peaks"] = float(np.abs(ours - theirs)[both].max()) if both.any() else 0.0
        differences["peak_cells_differing"] = float((ours_peaks != theirs_peaks).mean())
    return differences
