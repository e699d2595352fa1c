"""Checking a captured GPU graph against the plain run of the same network.

A CUDA graph (ONNX Runtime's ``enable_cuda_graph``, PyTorch's ``torch.cuda.CUDAGraph``) replays
the kernels it captured on the memory addresses it captured: an input written elsewhere is never
read, an output bound elsewhere is never written, and the graph still "runs". So a graph is used
only once it gave, for two different inputs written into its input buffer, the outputs the plain
run gives (:mod:`pose.runtime.iobinding`, :mod:`pose.runtime.torch_device`).
"""

from __future__ import annotations

import numpy as np

#: The largest deviation of a CUDA graph's outputs from the plain session's, relative to the
#: largest output value, that still counts as equal (the two sessions may choose other cuDNN
#: algorithms; TF32 and fp16 round differently). A graph replaying stale addresses is far off:
#: all zeros, or the outputs of another input (a deviation of the order of 1).
GRAPH_AGREEMENT = 1e-2


def other_input(batch: np.ndarray) -> np.ndarray:
    """Return an input of ``batch``'s shape and type that differs from it everywhere it can.

    Random values in the batch's own range (a batch of one value: that value to that value + 1;
    uint8: the whole range), so that a network sees numbers like those it was given.
    """
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


def relative_deviation(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Return the largest difference of two outputs relative to the largest value of ``theirs``.

    Outputs of other shapes, or NaN where the other has a number, are as far apart as can be
    (``inf``); integer and boolean outputs must be equal.
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
