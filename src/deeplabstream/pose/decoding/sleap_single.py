"""sleap-nn's single-instance ONNX exports: one animal, every keypoint's highest point.

Design: docs/pose-internals.md, "pose.decoding.sleap_single".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplabstream.pose.decoding.sleap_topdown import global_peaks
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError

#: The outputs of a single-instance export, by name (the graph as sleap-nn wrote it).
SINGLE_OUTPUTS = ("peaks", "peak_vals")


@dataclass(frozen=True)
class SleapSingleDecoding:
    """How a single-instance export finds its keypoints, as its metadata says."""

    input_scale: float = 1.0
    output_stride: float = 1.0
    peak_threshold: float = 0.2
    max_stride: int | None = None
    export_graph: Path | None = None

    @property
    def grid_px(self) -> float:
        """The spacing of the points the graph can give, in frame pixels (no refinement)."""
        return self.output_stride / self.input_scale


def single_decoding_of(description: ModelDescription) -> SleapSingleDecoding:
    """Return the description's single-instance settings; raise a ModelError for another model."""
    decoding = description.decoding
    if not isinstance(decoding, SleapSingleDecoding):
        raise ModelError(f"{description.model_file}: not a sleap-nn single-instance model")
    return decoding


def decode_single_instance(outputs: list[np.ndarray], description: ModelDescription) -> np.ndarray:
    """Return each frame's keypoints: (N, K, 3) float64 x, y (input pixels) and the map's value.

    A keypoint below the threshold is NaN in all three.
    """
    settings = single_decoding_of(description)
    maps = np.asarray(outputs[0])
    n_keypoints = len(description.keypoints)
    if maps.ndim != 4 or maps.shape[1] != n_keypoints:
        raise ModelError(
            f"{description.model_file}: the graph gives confidence maps {maps.shape}; a "
            f"single-instance model of {n_keypoints} keypoints gives (N, {n_keypoints}, h, w)"
        )
    peaks, values = global_peaks(maps, settings.peak_threshold, settings.grid_px)
    return single_instance_points(peaks, values)


def single_instance_points(peaks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sleap-nn's ``peaks`` and ``peak_vals`` as (N, K, 3) float64; NaN where no peak was found."""
    points = np.concatenate(
        [np.asarray(peaks, np.float64), np.asarray(values, np.float64)[..., None]], axis=-1
    )
    points[np.isnan(points[..., 0]) | np.isnan(points[..., 1])] = np.nan
    return points


#: ``decoder = "sleap-single"``: sleap-nn's single-instance models.
SLEAP_SINGLE = Decoder.of_points(decode_single_instance)
