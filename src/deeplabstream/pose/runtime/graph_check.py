"""Checking a captured GPU graph against the plain run of the same network.

Design: docs/pose-internals.md, "pose.runtime.graph_check".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

#: The largest deviation of a CUDA graph's outputs from the plain session's, relative to the
#: largest output value, that still counts as equal (the two sessions may choose other cuDNN
#: algorithms; TF32 and fp16 round differently). A graph replaying stale addresses is far off:
#: all zeros, or the outputs of another input (a deviation of the order of 1).
GRAPH_AGREEMENT = 1e-2


def other_input(batch: np.ndarray) -> np.ndarray:
    """Return an input of ``batch``'s shape, type and range that differs from it everywhere."""
    rng = np.random.default_rng(0)
    if batch.dtype == np.uint8:
        return rng.integers(0, 256, batch.shape, dtype=np.uint8)
    if batch.dtype.kind == "b":
        return ~batch
    low = float(np.min(batch)) if batch.size else 0.0
    high = float(np.max(batch)) if batch.size else 1.0
    if high - low < 1e-6:
        high = low + 1.0
    return rng.uniform(low, high, batch.shape).astype(batch.dtype)


#: How far apart the plain run's outputs of the two check inputs must be, so that a graph
#: replaying the first input is told apart from one reading the second.
DISTINCT_OUTPUTS = 10 * GRAPH_AGREEMENT


def check_inputs(batch: np.ndarray) -> Iterator[np.ndarray]:
    """Candidate second inputs, from like the batch to far from it (see :func:`other_input`)."""
    yield other_input(batch)
    if batch.dtype.kind == "f":
        rng = np.random.default_rng(1)
        yield rng.uniform(0.0, 255.0, batch.shape).astype(batch.dtype)  # pixels
        yield (3.0 * rng.standard_normal(batch.shape)).astype(batch.dtype)  # normalised


def distinguishing_input(
    batch: np.ndarray,
    expected: Sequence[Any],
    plain: Callable[[np.ndarray], Sequence[Any]],
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Return an input whose plain outputs differ from ``expected``, and those (or None)."""
    for candidate in check_inputs(batch):
        outputs = [np.array(value, copy=True) for value in plain(candidate)]
        deviations = [
            relative_deviation(ours, theirs) for ours, theirs in zip(outputs, expected, strict=True)
        ]
        if max(deviations, default=0.0) > DISTINCT_OUTPUTS:
            return candidate, outputs
    return None


def relative_deviation(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Return the largest difference of two outputs relative to the largest value of ``theirs``.

    Other shapes or NaN against a number: ``inf``; integer and boolean outputs must be equal.
    """
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        return float("inf")
    if ours.dtype.kind in "biu" or theirs.dtype.kind in "biu":
        return 0.0 if np.array_equal(ours, theirs) else float("inf")
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    finite = np.isfinite(b)
    if not finite.any():
        return 0.0
    scale = max(float(np.max(np.abs(b[finite]))), 1e-12)
    return float(np.max(np.abs(a[finite] - b[finite]), initial=0.0)) / scale
