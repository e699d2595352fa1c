"""sleap-nn's host-side decoding of its bottom-up ONNX exports, in numpy and scipy.

Design: docs/pose-internals.md, "pose.decoding.sleap".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.decoding.graph_outputs import named_outputs
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError, decoding_of

#: The graph's outputs that the grouping reads, by name.
OUTPUTS = ("peaks", "peak_vals", "peak_mask", "line_scores", "candidate_mask")


@dataclass(frozen=True)
class SleapDecoding:
    """The grouping settings of a sleap-nn bottom-up export.

    ``min_instance_peaks`` below 1 is a fraction of the node count.
    """

    edges: tuple[tuple[int, int], ...]
    input_scale: float = 1.0
    min_line_scores: float = 0.25
    min_instance_peaks: float = 0.0

    @property
    def edge_order(self) -> tuple[int, ...]:
        """Edge indices in breadth-first order from the skeleton's roots (see :func:`bfs_edges`)."""
        return bfs_edges(self.edges)


def bfs_edges(edges: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Return edge indices in breadth-first order from the skeleton's roots, the rest after."""
    sources = [s for s, _ in edges]
    destinations = {d for _, d in edges}
    roots = list(dict.fromkeys(s for s in sources if s not in destinations))
    order: list[int] = []
    seen_nodes = set(roots)
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        for index, (src, dst) in enumerate(edges):
            if src == node and index not in order:
                order.append(index)
                if dst not in seen_nodes:
                    seen_nodes.add(dst)
                    queue.append(dst)
    order += [i for i in range(len(edges)) if i not in order]
    return tuple(order)


FrameInstances = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One frame's instances: points (M, K, 2), point scores (M, K), instance scores (M,)."""


def group_bottomup(
    peaks: np.ndarray,
    peak_vals: np.ndarray,
    peak_mask: np.ndarray,
    line_scores: np.ndarray,
    candidate_mask: np.ndarray,
    edges: Sequence[tuple[int, int]],
    *,
    input_scale: float = 1.0,
    min_line_scores: float = 0.25,
    min_instance_peaks: float = 0.0,
    edge_order: Sequence[int] | None = None,
) -> list[FrameInstances]:
    """Group a batch of exported peaks and line scores into instances, as sleap-nn does.

    The first five arguments are the graph's outputs for B frames (docs/pose-internals.md). Returns
    per frame points (M, K, 2), point scores (M, K) (NaN where missing) and instance scores (M,).
    """
    peaks = np.asarray(peaks)
    batch, n_nodes, n_peaks = peaks.shape[:3]
    edges = [(int(s), int(d)) for s, d in edges]
    if line_scores.shape[1:] != (len(edges), n_peaks * n_peaks):
        raise ModelError(
            f"line_scores of shape {line_scores.shape}: expected (B, {len(edges)}, "
            f"{n_peaks * n_peaks}) for {len(edges)} edges and {n_peaks} peaks per node"
        )
    order = bfs_edges(edges) if edge_order is None else tuple(edge_order)
    frames = []
    for b in range(batch):
        matches = _match_edges(peak_mask[b], line_scores[b], candidate_mask[b], edges)
        ordered = [(edges[e], m) for e in order for m in matches[e] if m[2] >= min_line_scores]
        frames.append(
            _assemble(ordered, peaks[b], peak_vals[b], n_nodes, input_scale, min_instance_peaks)
        )
    return frames


def _match_edges(
    peak_mask: np.ndarray,
    line_scores: np.ndarray,
    candidate_mask: np.ndarray,
    edges: Sequence[tuple[int, int]],
) -> list[list[tuple[int, int, float]]]:
    """Per edge, the Hungarian matches (src peak, dst peak, score) of one frame."""
    n_peaks = peak_mask.shape[1]
    matches: list[list[tuple[int, int, float]]] = []
    for e, (src, dst) in enumerate(edges):
        src_peaks = np.flatnonzero(peak_mask[src])
        dst_peaks = np.flatnonzero(peak_mask[dst])
        if len(src_peaks) == 0 or len(dst_peaks) == 0:
            matches.append([])
            continue
        scores = line_scores[e].reshape(n_peaks, n_peaks)[np.ix_(src_peaks, dst_peaks)]
        valid = candidate_mask[e].reshape(n_peaks, n_peaks)[np.ix_(src_peaks, dst_peaks)]
        scores = np.where(valid & np.isfinite(scores), scores, -np.inf).astype(np.float64)
        cost = np.where(np.isfinite(scores), -scores, 1e9)
        rows, cols = linear_sum_assignment(cost)
        matches.append(
            [
                (int(src_peaks[r]), int(dst_peaks[c]), float(scores[r, c]))
                for r, c in zip(rows, cols, strict=True)
                if np.isfinite(scores[r, c])
            ]
        )
    return matches


def _assemble(
    matches: list[tuple[tuple[int, int], tuple[int, int, float]]],
    peaks: np.ndarray,
    peak_vals: np.ndarray,
    n_nodes: int,
    input_scale: float,
    min_instance_peaks: float,
) -> FrameInstances:
    """Greedy assembly of one frame's ordered matches into instances."""
    assignment: dict[tuple[int, int], int] = {}  # (node, peak) -> instance id
    next_id = 0
    for (src, dst), (src_peak, dst_peak, _) in matches:
        src_id, dst_id = (src, src_peak), (dst, dst_peak)
        src_instance, dst_instance = assignment.get(src_id), assignment.get(dst_id)
        if src_instance is None and dst_instance is None:
            assignment[src_id] = assignment[dst_id] = next_id
            next_id += 1
        elif src_instance is not None and dst_instance is None:
            assignment[dst_id] = src_instance
        elif src_instance is not None and dst_instance is not None:
            # The destination moves to the source's instance; what is left of its own instance
            # merges into the source's too when they share no node type. (With a tree skeleton
            # in breadth-first order this case and the next never happen.)
            assignment[dst_id] = src_instance
            src_nodes = {n for (n, _), i in assignment.items() if i == src_instance}
            dst_nodes = {n for (n, _), i in assignment.items() if i == dst_instance}
            if src_instance != dst_instance and src_nodes.isdisjoint(dst_nodes):
                for key, instance in assignment.items():
                    if instance == dst_instance:
                        assignment[key] = src_instance
        # Only the destination assigned: sleap-nn ignores the match.
    ids = sorted(set(assignment.values()))
    index = {instance: i for i, instance in enumerate(ids)}
    n = len(ids)
    points = np.full((n, n_nodes, 2), np.nan)
    point_scores = np.full((n, n_nodes), np.nan)
    instance_scores = np.zeros(n)
    for (node, peak), instance in assignment.items():
        points[index[instance], node] = peaks[node, peak] / input_scale
        point_scores[index[instance], node] = peak_vals[node, peak]
    for (src, _), (src_peak, _, score) in matches:
        owner = assignment.get((src, src_peak))
        if owner is not None:
            instance_scores[index[owner]] += score
    if min_instance_peaks > 0:
        needed = min_instance_peaks * n_nodes if min_instance_peaks < 1 else min_instance_peaks
        keep = np.isfinite(point_scores).sum(axis=1) >= needed
        points, point_scores, instance_scores = (
            points[keep],
            point_scores[keep],
            instance_scores[keep],
        )
    return points, point_scores, instance_scores


def outputs_by_name(
    outputs: Sequence[np.ndarray], description: ModelDescription
) -> dict[str, np.ndarray]:
    """Return the graph's outputs by name (``description.output_names``), checked present."""
    return named_outputs(outputs, description, OUTPUTS, "a sleap-nn bottom-up export")


def decode_bottomup(outputs: list[np.ndarray], description: ModelDescription) -> np.ndarray:
    """Return the animals of each frame of a batch, (N, A, K, 3) in the graph's input pixels.

    NaN where missing; with more than A instances the A best by instance score.
    """
    settings = decoding_of(description, SleapDecoding, "sleap-nn grouping settings")
    named = outputs_by_name(outputs, description)
    frames = group_bottomup(
        named["peaks"],
        named["peak_vals"],
        named["peak_mask"],
        named["line_scores"],
        named["candidate_mask"],
        settings.edges,
        input_scale=settings.input_scale,
        min_line_scores=settings.min_line_scores,
        min_instance_peaks=settings.min_instance_peaks,
        edge_order=settings.edge_order,
    )
    animals = int(getattr(description, "max_animals", 1))
    result = np.full((len(frames), animals, len(description.keypoints), 3), np.nan)
    for i, (points, point_scores, instance_scores) in enumerate(frames):
        keep = select_instances(instance_scores, animals)
        result[i, : len(keep), :, :2] = points[keep]
        result[i, : len(keep), :, 2] = point_scores[keep]
    return result


def select_instances(instance_scores: np.ndarray, animals: int) -> np.ndarray:
    """Return the indices of the instances kept: all when they fit, else the best by score."""
    n = len(instance_scores)
    if n <= animals:
        return np.arange(n)
    # sleap-nn sorts by score, descending, and truncates (a stable sort keeps ties in order).
    return np.argsort(-np.asarray(instance_scores), kind="stable")[:animals]


#: ``decoder = "sleap-bottomup"``: sleap-nn's bottom-up models.
SLEAP_BOTTOMUP = Decoder.of_points(decode_bottomup, multi_animal=True)
