"""Several animals from heatmaps and part-affinity fields: this project's bottom-up decoder.

Design: docs/pose-internals.md, "pose.decoding.bottomup".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.peaks import heatmap_to_input_coordinate
from deeplabstream.pose.decoding.sleap import bfs_edges, group_bottomup, select_instances
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError

#: The outputs of a paf-bottomup model, in order.
OUTPUT_NAMES = ("heatmaps", "pafs")

# The 8 neighbours of a pixel, row-major: the 4 before it, then the 4 after it.
_NEIGHBOUR_ROWS = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
_NEIGHBOUR_COLS = np.array([-1, 0, 1, -1, 1, -1, 0, 1])


@dataclass(frozen=True)
class PafDecoding:
    """The decoding and grouping settings of a paf-bottomup model (``model.json`` ``output.paf``).

    ``edges`` are in the order of the PAF channel pairs; ``peak_threshold`` is a probability (the
    sigmoid of the logit); ``root`` None groups every edge in its own direction (sleap-nn's way).
    """

    edges: tuple[tuple[int, int], ...]
    peak_threshold: float = 0.2
    max_peaks: int = 8
    line_points: int = 10
    min_line_score: float = 0.25
    max_edge_length: float = 48.0
    distance_penalty: float = 1.0
    min_instance_peaks: int = 2
    root: int | None = None

    def __post_init__(self) -> None:
        """Check the values (they come from ``model.json``)."""
        if not 0.0 < self.peak_threshold < 1.0:
            raise ModelError(f"peak_threshold must be in (0, 1), not {self.peak_threshold}")
        if self.max_peaks < 1 or self.line_points < 2:
            raise ModelError(
                f"max_peaks must be >= 1 and line_points >= 2, got {self.max_peaks} and "
                f"{self.line_points}"
            )
        if self.max_edge_length <= 0:
            raise ModelError(f"max_edge_length must be positive, not {self.max_edge_length}")
        if not self.edges:
            raise ModelError("a paf-bottomup model needs at least one skeleton edge")
        if self.root is not None and all(self.root not in edge for edge in self.edges):
            raise ModelError(f"root {self.root} is on no skeleton edge {list(self.edges)}")

    def grouping_edges(self) -> tuple[tuple[int, bool], ...]:
        """Return the edges the grouping uses: (field index, reversed), in breadth-first order.

        With a ``root``, a spanning tree grown from it, each edge pointing away from the root, edges
        closing a cycle left out (docs/pose-internals.md says why); without, :func:`bfs_edges`
        order.
        """
        if self.root is None:
            return tuple((e, False) for e in bfs_edges(self.edges))
        tree: list[tuple[int, bool]] = []
        reached, frontier = {self.root}, [self.root]
        while frontier:
            node = frontier.pop(0)
            for e, (src, dst) in enumerate(self.edges):
                if node not in (src, dst):
                    continue
                other = dst if node == src else src
                if other in reached:
                    continue
                reached.add(other)
                frontier.append(other)
                tree.append((e, node == dst))
        return tuple(tree)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form (``model.json`` ``output.paf``)."""
        return {
            "edges": [list(edge) for edge in self.edges],
            "peak_threshold": self.peak_threshold,
            "max_peaks": self.max_peaks,
            "line_points": self.line_points,
            "min_line_score": self.min_line_score,
            "max_edge_length": self.max_edge_length,
            "distance_penalty": self.distance_penalty,
            "min_instance_peaks": self.min_instance_peaks,
            "root": self.root,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PafDecoding:
        """Invert :meth:`to_dict` (defaults for missing settings).

        Raises ModelError naming a setting that is not a number.
        """
        try:
            edges = tuple((int(s), int(d)) for s, d in data["edges"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(
                f"output.paf.edges should be a list of [source, destination] keypoint indices, "
                f"got {data.get('edges')!r}"
            ) from None
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name == "edges" or item.name not in data:
                continue
            if item.name == "root" and data["root"] is None:
                continue
            kind = int if item.type in ("int", int, "int | None") else float
            value = data[item.name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModelError(f"output.paf.{item.name} should be a number, got {value!r}")
            values[item.name] = kind(value)
        return cls(edges=edges, **values)


# --------------------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------------------


def find_peaks(
    heatmaps: np.ndarray, stride: float, threshold: float, max_peaks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the strongest local maxima of each heatmap (N, K, h, w logits), refined below a pixel.

    Returns peaks (N, K, P, 2) x, y in input pixels (NaN where invalid), their probabilities and
    validity (N, K, P), strongest first; P is the most valid peaks of any map (1 to ``max_peaks``).
    """
    logits = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = logits.shape
    # Only the pixels above the threshold are candidates (a few per animal and keypoint), so
    # the neighbourhood test runs on them and not on the whole maps. ``where`` holds their
    # (batch, keypoint, row, column), one column each.
    where = np.stack(np.nonzero(logits > np.float32(math.log(threshold / (1 - threshold)))))
    values = logits[tuple(where)]
    # Padded by one pixel of -inf (np.pad costs several times more than this on small maps).
    padded = np.full((n, k, h + 2, w + 2), -np.inf, np.float32)
    padded[:, :, 1:-1, 1:-1] = logits
    # The 8 neighbours of every candidate in one gather, the 4 before it (row-major) first. On
    # a plateau of equal values only its first pixel is a peak: it must beat those strictly.
    neighbours = padded[
        where[0],
        where[1],
        where[2] + 1 + _NEIGHBOUR_ROWS[:, None],
        where[3] + 1 + _NEIGHBOUR_COLS[:, None],
    ]
    is_peak = (values > neighbours[:4]).all(axis=0) & (values >= neighbours[4:]).all(axis=0)
    where, values = where[:, is_peak], values[is_peak]
    # The strongest first within each map; the rank within its map picks the slot.
    group = where[0] * k + where[1]
    order = np.lexsort((-values, group))
    where, values, group = where[:, order], values[order], group[order]
    rank = np.arange(len(group)) - np.searchsorted(group, group, side="left")
    keep = rank < max_peaks
    where, values, rank = where[:, keep], values[keep], rank[keep]
    batch, keypoint, rows, cols = where
    p = int(rank.max()) + 1 if len(rank) else 1
    shift_x = _log_parabola_offset(padded, batch, keypoint, rows + 1, cols + 1, "x")
    shift_y = _log_parabola_offset(padded, batch, keypoint, rows + 1, cols + 1, "y")
    peaks = np.full((n, k, p, 2), np.nan)
    peaks[batch, keypoint, rank, 0] = heatmap_to_input_coordinate(cols + shift_x, stride)
    peaks[batch, keypoint, rank, 1] = heatmap_to_input_coordinate(rows + shift_y, stride)
    probability = np.zeros((n, k, p))
    probability[batch, keypoint, rank] = 1.0 / (1.0 + np.exp(-values.astype(np.float64)))
    valid = np.zeros((n, k, p), bool)
    valid[batch, keypoint, rank] = True
    return peaks, probability, valid


def _log_parabola_offset(
    padded: np.ndarray,
    batch: np.ndarray,
    keypoint: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    axis: str,
) -> np.ndarray:
    """Sub-pixel offsets along x or y from the parabola through 3 log-probabilities."""
    # ``padded`` is padded by one pixel of -inf, so a peak at the border gets no offset.
    if axis == "x":
        samples = [padded[batch, keypoint, rows, cols + d] for d in (-1, 0, 1)]
    else:
        samples = [padded[batch, keypoint, rows + d, cols] for d in (-1, 0, 1)]
    # log sigmoid(logit) = -log(1 + exp(-logit)), finite for any finite logit.
    before, middle, after = (-np.logaddexp(0.0, -a.astype(np.float64)) for a in samples)
    curvature = before - 2.0 * middle + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(
            np.isfinite(curvature) & (curvature < 0), 0.5 * (before - after) / curvature, 0.0
        )
    return np.clip(offset, -0.5, 0.5)


# --------------------------------------------------------------------------------------------------
# Line scores
# --------------------------------------------------------------------------------------------------


def line_scores(
    pafs: np.ndarray,
    peaks: np.ndarray,
    valid: np.ndarray,
    stride: float,
    settings: PafDecoding,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every candidate (source peak, destination peak) pair of every edge.

    Returns scores (N, E, P * P) at flat index ``src * P + dst`` and which pairs join two valid
    peaks: :func:`pose.decoding.sleap.group_bottomup`'s inputs.
    """
    n, _, p = valid.shape
    field_maps = np.asarray(pafs, dtype=np.float32)
    e = len(settings.edges)
    if field_maps.shape[1] != 2 * e:
        raise ModelError(f"pafs have {field_maps.shape[1]} channels; {e} edges need {2 * e}")
    h, w = field_maps.shape[2:]
    src = np.array([s for s, _ in settings.edges])
    dst = np.array([d for _, d in settings.edges])
    start = np.nan_to_num(peaks[:, src])[:, :, :, None, :]  # (N, E, P, 1, 2)
    end = np.nan_to_num(peaks[:, dst])[:, :, None, :, :]  # (N, E, 1, P, 2)
    segment = end - start  # (N, E, P, P, 2)
    length = np.sqrt((segment**2).sum(axis=-1))
    unit = segment / np.maximum(length, 1e-6)[..., None]
    t = np.linspace(0.0, 1.0, settings.line_points)
    points = start[..., None, :] + t[:, None] * segment[..., None, :]  # (N, E, P, P, L, 2)
    # Input pixels to heatmap pixels (fractional), then bilinear sampling of both channels.
    grid = (points - (stride - 1) / 2) / stride
    gx = np.clip(grid[..., 0], 0.0, w - 1.0)
    gy = np.clip(grid[..., 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(gx).astype(np.intp), w - 2) if w > 1 else np.zeros_like(gx, np.intp)
    y0 = np.minimum(np.floor(gy).astype(np.intp), h - 2) if h > 1 else np.zeros_like(gy, np.intp)
    fx, fy = gx - x0, gy - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    batch = np.arange(n)[:, None, None, None, None]
    channel = (2 * np.arange(e))[None, :, None, None, None]
    dots = np.zeros(gx.shape)
    for c in (0, 1):
        plane = channel + c
        value = (
            field_maps[batch, plane, y0, x0] * (1 - fx) * (1 - fy)
            + field_maps[batch, plane, y0, x1] * fx * (1 - fy)
            + field_maps[batch, plane, y1, x0] * (1 - fx) * fy
            + field_maps[batch, plane, y1, x1] * fx * fy
        )
        dots += value * unit[..., c][..., None]
    scores = dots.mean(axis=-1)
    with np.errstate(divide="ignore"):
        penalty = np.minimum(settings.max_edge_length / length - 1.0, 0.0)
    scores = scores + settings.distance_penalty * penalty
    candidates = valid[:, src][:, :, :, None] & valid[:, dst][:, :, None, :]
    return scores.reshape(n, e, p * p), candidates.reshape(n, e, p * p)


# --------------------------------------------------------------------------------------------------
# The decoder
# --------------------------------------------------------------------------------------------------


def decode_pafs(
    heatmaps: np.ndarray,
    pafs: np.ndarray,
    stride: float,
    settings: PafDecoding,
    max_animals: int,
) -> np.ndarray:
    """Animals of each frame from heatmaps (N, K, h, w logits) and fields (N, 2E, h, w).

    Returns (N, A, K, 3) float64: x, y in input pixels and the peak's probability, NaN where
    missing; the best A by instance score when more were found, else in grouping order.
    """
    n, k = heatmaps.shape[:2]
    peaks, probability, valid = find_peaks(
        heatmaps, stride, settings.peak_threshold, settings.max_peaks
    )
    scores, candidates = line_scores(pafs, peaks, valid, stride, settings)
    # The grouping's edges, each pointing away from the root: a reversed edge's pairs are the
    # transposed (destination, source) pairs of its field's scores.
    tree = settings.grouping_edges()
    p = peaks.shape[2]
    index = np.array([e for e, _ in tree])
    flip = np.array([flipped for _, flipped in tree])[None, :, None, None]
    square = (n, len(tree), p, p)
    tree_scores = scores[:, index].reshape(square)
    tree_candidates = candidates[:, index].reshape(square)
    tree_scores = np.where(flip, tree_scores.transpose(0, 1, 3, 2), tree_scores)
    tree_candidates = np.where(flip, tree_candidates.transpose(0, 1, 3, 2), tree_candidates)
    edges = [settings.edges[e][::-1] if flipped else settings.edges[e] for e, flipped in tree]
    frames = group_bottomup(
        peaks,
        probability,
        valid,
        tree_scores.reshape(n, len(tree), p * p),
        tree_candidates.reshape(n, len(tree), p * p),
        edges,
        min_line_scores=settings.min_line_score,
        min_instance_peaks=settings.min_instance_peaks,
        edge_order=range(len(tree)),
    )
    result = np.full((n, max_animals, k, 3), np.nan)
    for i, (points, point_scores, instance_scores) in enumerate(frames):
        keep = select_instances(instance_scores, max_animals)
        result[i, : len(keep), :, :2] = points[keep]
        result[i, : len(keep), :, 2] = point_scores[keep]
    return result


def decode_paf_bottomup(outputs: Sequence[np.ndarray], description: ModelDescription) -> np.ndarray:
    """Decode a paf-bottomup model's ``heatmaps`` and ``pafs``: (N, A, K, 3) input pixels.

    Raises ModelError without a :class:`PafDecoding` or outputs named ``heatmaps`` and ``pafs``.
    """
    settings = description.decoding
    if not isinstance(settings, PafDecoding):
        raise ModelError(
            f"{description.model_file}: no paf-bottomup settings in the description; load the "
            "model with deeplabstream.pose.loading.load_model"
        )
    named = dict(zip(description.output_names, outputs, strict=False))
    missing = [name for name in OUTPUT_NAMES if name not in named]
    if missing:
        raise ModelError(
            f"{description.model_file}: a paf-bottomup model outputs {', '.join(OUTPUT_NAMES)}; "
            f"missing {', '.join(missing)} (has {', '.join(description.output_names)})"
        )
    return decode_pafs(
        named["heatmaps"], named["pafs"], description.stride, settings, description.max_animals
    )


#: ``decoder = "paf-bottomup"``: this project's own multi-animal models.
PAF_BOTTOMUP = Decoder.of_points(decode_paf_bottomup, multi_animal=True)
