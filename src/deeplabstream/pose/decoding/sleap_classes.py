"""sleap-nn's host-side decoding of its bottom-up identity (multi-class) ONNX exports.

Design: docs/pose-internals.md, "pose.decoding.sleap_classes".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.decoding.graph_outputs import named_outputs
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError, decoding_of

#: The graph's outputs that the grouping reads, by name.
CLASS_OUTPUTS = ("peaks", "peak_vals", "peak_mask", "class_probs")


@dataclass(frozen=True)
class SleapClassDecoding:
    """The decoding settings of a sleap-nn bottom-up identity export."""

    class_names: tuple[str, ...]
    peak_threshold: float = 0.2
    point_scale: float = 1.0


@dataclass(frozen=True)
class ClassInstances:
    """One frame's instances, one per class (row c = class c), NaN where missing."""

    points: np.ndarray
    point_scores: np.ndarray
    class_scores: np.ndarray

    @property
    def present(self) -> np.ndarray:
        """(C,) bool: the classes with at least one point in this frame."""
        return np.isfinite(self.point_scores).any(axis=1)

    @property
    def identity_confidence(self) -> np.ndarray:
        """(C,) mean class value of each instance's points (NaN for an absent class)."""
        scores = self.class_scores
        counts = np.isfinite(scores).sum(axis=1)
        sums = np.where(np.isfinite(scores), scores, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def match_node_peaks(class_probs: np.ndarray) -> list[tuple[int, int]]:
    """Return the (row of ``class_probs``, class) pairs sleap-nn keeps for one node's peaks."""
    if class_probs.size == 0:
        return []
    rows, classes = linear_sum_assignment(-class_probs)
    best = class_probs[rows].max(axis=1)
    return [
        (int(r), int(c))
        for r, c, top in zip(rows, classes, best, strict=True)
        if class_probs[r, c] == top
    ]


def group_classes(
    peaks: np.ndarray,
    peak_vals: np.ndarray,
    peak_mask: np.ndarray,
    class_probs: np.ndarray,
    *,
    peak_threshold: float = 0.2,
    point_scale: float = 1.0,
) -> list[ClassInstances]:
    """Group a batch of exported peaks into :class:`ClassInstances` per frame, as sleap-nn."""
    peaks, peak_vals = np.asarray(peaks), np.asarray(peak_vals)
    class_probs = np.asarray(class_probs)
    if class_probs.ndim != 4 or class_probs.shape[:3] != peak_vals.shape:
        raise ModelError(
            f"class_probs of shape {class_probs.shape}: expected (B, K, P, C) with (B, K, P) = "
            f"{peak_vals.shape}, the shape of peak_vals"
        )
    kept = np.asarray(peak_mask, bool) & (peak_vals > peak_threshold)
    return [
        _group_frame(peaks[b], peak_vals[b], kept[b], class_probs[b], point_scale)
        for b in range(len(peaks))
    ]


def _group_frame(
    peaks: np.ndarray,
    peak_vals: np.ndarray,
    kept: np.ndarray,
    class_probs: np.ndarray,
    point_scale: float,
) -> ClassInstances:
    """One frame's instances by class (see :func:`group_classes`)."""
    n_nodes, _, n_classes = class_probs.shape
    points = np.full((n_classes, n_nodes, 2), np.nan)
    point_scores = np.full((n_classes, n_nodes), np.nan)
    class_scores = np.full((n_classes, n_nodes), np.nan)
    for node in range(n_nodes):
        slots = np.flatnonzero(kept[node])
        probs = class_probs[node, slots]
        for row, cls in match_node_peaks(probs):
            slot = slots[row]
            points[cls, node] = peaks[node, slot] * point_scale
            point_scores[cls, node] = peak_vals[node, slot]
            class_scores[cls, node] = probs[row, cls]
    return ClassInstances(points, point_scores, class_scores)


def class_outputs_by_name(
    outputs: Sequence[np.ndarray], description: ModelDescription
) -> dict[str, np.ndarray]:
    """Return the graph's outputs by name (``description.output_names``), checked present."""
    return named_outputs(
        outputs, description, CLASS_OUTPUTS, "a sleap-nn bottom-up identity export"
    )


def decode_classes(
    outputs: list[np.ndarray], description: ModelDescription
) -> tuple[np.ndarray, np.ndarray]:
    """Return each frame's instances by class and their identity confidence.

    (N, C, K, 3) in the graph's input pixels, row c = class c, and (N, C) confidences; NaN for
    missing points and absent classes.
    """
    settings = decoding_of(description, SleapClassDecoding, "sleap-nn identity-model settings")
    named = class_outputs_by_name(outputs, description)
    frames = group_classes(
        named["peaks"],
        named["peak_vals"],
        named["peak_mask"],
        named["class_probs"],
        peak_threshold=settings.peak_threshold,
        point_scale=settings.point_scale,
    )
    n_classes, n_nodes = len(settings.class_names), len(description.keypoints)
    points = np.full((len(frames), n_classes, n_nodes, 3), np.nan)
    confidence = np.full((len(frames), n_classes), np.nan)
    for i, frame in enumerate(frames):
        if frame.points.shape[:2] != (n_classes, n_nodes):
            raise ModelError(
                f"{description.model_file}: the graph gives {frame.points.shape[0]} classes and "
                f"{frame.points.shape[1]} nodes; the export names {n_classes} classes and "
                f"{n_nodes} nodes"
            )
        points[i, :, :, :2] = frame.points
        points[i, :, :, 2] = frame.point_scores
        confidence[i] = frame.identity_confidence
    return points, confidence


#: ``decoder = "sleap-classes"``: sleap-nn's bottom-up identity models (class maps).
SLEAP_CLASSES = Decoder(decode_classes, multi_animal=True)
