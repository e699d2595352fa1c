"""sleap-nn's host-side decoding of its top-down ONNX exports (with or without identity classes).

Design: docs/pose-internals.md, "pose.decoding.sleap_topdown".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.decoding.graph_outputs import named_outputs
from deeplabstream.pose.decoding.two_stage import left_the_crop
from deeplabstream.pose.model import Decoder, ModelDescription, ModelError, decoding_of

#: The outputs of a top-down export that the decoding reads, by name.
TOPDOWN_OUTPUTS = ("centroids", "centroid_vals", "peaks", "peak_vals", "instance_valid")
#: An identity (multi-class) top-down export adds its class logits.
TOPDOWN_CLASS_OUTPUTS = (*TOPDOWN_OUTPUTS, "class_logits")


@dataclass(frozen=True)
class SleapTopDownDecoding:
    """The settings of a sleap-nn top-down export (read from its metadata).

    ``crop_size`` is (height, width) in frame pixels; ``max_instances`` the centroid slots baked
    into the graph; ``instance_graph`` None: the whole graph runs as one.
    """

    crop_size: tuple[int, int]
    max_instances: int
    centroid_input_scale: float = 1.0
    instance_input_scale: float = 1.0
    anchor_part: str | None = None
    class_names: tuple[str, ...] = ()
    instance_stride: float = 1.0
    peak_threshold: float = 0.2
    instance_graph: Path | None = field(default=None, compare=False)
    crops_name: str = ""
    instance_outputs: tuple[str, ...] = ()
    export_graph: Path | None = field(default=None, compare=False)

    @property
    def two_stages(self) -> bool:
        """True when the stages run apart (the centroid graph, host crops, the instance graph)."""
        return self.instance_graph is not None


def topdown_decoding_of(description: ModelDescription) -> SleapTopDownDecoding:
    """Return the top-down settings a description carries."""
    return decoding_of(description, SleapTopDownDecoding, "sleap-nn top-down settings")


def topdown_outputs_by_name(
    outputs: Sequence[np.ndarray], description: ModelDescription
) -> dict[str, np.ndarray]:
    """Return the graph's outputs by name (``description.output_names``), checked present."""
    classes = bool(topdown_decoding_of(description).class_names)
    expected = TOPDOWN_CLASS_OUTPUTS if classes else TOPDOWN_OUTPUTS
    return named_outputs(outputs, description, expected, "a sleap-nn top-down export")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32 as torch computes it."""
    logits = np.asarray(logits, np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def match_classes(probabilities: np.ndarray) -> list[tuple[int, int]]:
    """Return the (slot row, class) pairs of (n, C) soft-maxed class vectors, as sleap-nn."""
    if probabilities.size == 0:
        return []
    rows, classes = linear_sum_assignment(-np.asarray(probabilities, np.float64))
    return [(int(r), int(c)) for r, c in zip(rows, classes, strict=True)]


def decode_topdown(
    outputs: list[np.ndarray], description: ModelDescription
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return each frame's animals, and an identity model's identity confidences.

    (N, A, K, 3) float64 in frame pixels, NaN where missing (identity model: row c is class c); (N,
    C) matched class probabilities, or None for a plain model.
    """
    settings = topdown_decoding_of(description)
    return _decode_named(topdown_outputs_by_name(outputs, description), description, settings)


def _decode_named(
    named: dict[str, np.ndarray], description: ModelDescription, settings: SleapTopDownDecoding
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`decode_topdown` on the combined graph's outputs by name."""
    peaks = np.asarray(named["peaks"], np.float64)
    values = np.asarray(named["peak_vals"], np.float64)
    valid = np.asarray(named["instance_valid"]).astype(bool)
    n_frames, _, n_nodes = values.shape
    if n_nodes != len(description.keypoints) or peaks.shape[:3] != values.shape:
        raise ModelError(
            f"{description.model_file}: the graph gives peaks {peaks.shape} and peak_vals "
            f"{values.shape}; the export names {len(description.keypoints)} keypoints"
        )
    rows = description.max_animals
    points = np.full((n_frames, rows, n_nodes, 3), np.nan)
    confidence = np.full((n_frames, rows), np.nan) if settings.class_names else None
    for frame in range(n_frames):
        slots = np.flatnonzero(valid[frame])
        if confidence is None:
            placed = list(enumerate(slots[:rows]))
        else:
            probabilities = softmax(np.asarray(named["class_logits"])[frame, slots])
            pairs = match_classes(probabilities)
            placed = [(cls, slots[row]) for row, cls in pairs if cls < rows]
            for row, cls in pairs:
                if cls < rows:
                    confidence[frame, cls] = probabilities[row, cls]
        for row, slot in placed:
            points[frame, row, :, :2] = peaks[frame, slot]
            points[frame, row, :, 2] = values[frame, slot]
    # A keypoint below the threshold is NaN in x and y (sleap-nn's global peak rule): its
    # score goes with it.
    points[np.isnan(points[..., 0])] = np.nan
    return points, confidence


# --- the two stages apart ------------------------------------------------------------------------
#
# What sleap-nn's graph does between its two networks, on the host and for the valid centroids
# only: the crops (``TopDownONNXWrapper._extract_crops``: GridSample, bilinear, zero padding,
# align_corners) and the global peak of each keypoint's map (``_find_global_peaks``).

InstanceRunner = Callable[[np.ndarray], list[np.ndarray]]


def torch_linspace(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace`` in float32: from both ends towards the middle, as torch computes it."""
    step = np.float32((end - start) / (steps - 1)) if steps > 1 else np.float32(0.0)
    index = np.arange(steps, dtype=np.float32)
    half = steps // 2
    low = np.float32(start) + step * index
    high = np.float32(end) - step * (np.float32(steps - 1) - index)
    return np.where(np.arange(steps) < half, low, high).astype(np.float32)


def crop_positions(center: float, crop: int, size: int) -> np.ndarray:
    """Return the frame coordinates the graph samples along one axis around ``center``.

    The samples are ``crop * (size - 1) / size / (crop - 1)`` pixels apart, not 1 (GridSample).
    """
    f32 = np.float32
    grid = torch_linspace(-1.0, 1.0, crop) * (f32(crop) / f32(size))
    normalised = (f32(center) / f32(size - 1)) * f32(2.0) - f32(1.0)
    return ((grid + normalised + f32(1.0)) / f32(2.0)) * f32(size - 1)


def _axis_taps(positions: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Return the two neighbours of each position and their weights (0 outside the frame)."""
    low = np.floor(positions)
    high_weight = (positions - low).astype(np.float32)
    low_weight = (np.float32(1.0) - high_weight).astype(np.float32)
    low_index = low.astype(np.int64)
    return _axis_taps_at_border(low_index, low_index + 1, low_weight, high_weight, size)


def _axis_taps_at_border(
    low_index: np.ndarray,
    high_index: np.ndarray,
    low_weight: np.ndarray,
    high_weight: np.ndarray,
    size: int,
) -> tuple[np.ndarray, ...]:
    """Weigh the taps outside the frame 0 and clip them into it (:func:`_axis_taps`)."""
    low_weight = np.where((low_index >= 0) & (low_index < size), low_weight, np.float32(0.0))
    high_weight = np.where((high_index >= 0) & (high_index < size), high_weight, np.float32(0.0))
    return (
        np.clip(low_index, 0, size - 1),
        np.clip(high_index, 0, size - 1),
        low_weight.astype(np.float32),
        high_weight.astype(np.float32),
    )


def cut_crop(image: np.ndarray, center: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """One (C, h, w) float32 crop as sleap-nn's graph cuts it: frame / 255, bilinear, 0 outside."""
    _, height, width = image.shape
    crop_h, crop_w = crop_size
    y0, y1, wy0, wy1 = _axis_taps(crop_positions(float(center[1]), crop_h, height), height)
    x0, x1, wx0, wx1 = _axis_taps(crop_positions(float(center[0]), crop_w, width), width)
    # Only the window the crop covers is read (indices relative to its corner).
    top_row, left = int(y0[0]), int(x0[0])
    window = image[:, top_row : int(y1[-1]) + 1, left : int(x1[-1]) + 1]
    y0, y1, x0, x1 = y0 - top_row, y1 - top_row, x0 - left, x1 - left
    # Separable: the rows first, then the columns (the same weights as GridSample's four
    # corners, summed in another order: within 1e-7). / 255 on the window only: the graph's
    # values (it divides the whole frame) on h x w' pixels instead of H x W.
    scale = np.float32(1.0 / 255.0)
    rows = window[:, y0] * (wy0 * scale)[:, None] + window[:, y1] * (wy1 * scale)[:, None]
    return (rows[:, :, x0] * wx0 + rows[:, :, x1] * wx1).astype(np.float32)


class CropCutter:
    """sleap-nn's crops of many centroids at once, equal to :func:`cut_crop` bit for bit."""

    def __init__(self, crop_size: tuple[int, int]) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self._grids: dict[tuple[int, int], np.ndarray] = {}
        self._crops = np.empty((0, 1, *self.crop_size), np.float32)

    def _grid(self, crop: int, size: int) -> np.ndarray:
        """``torch_linspace(-1, 1, crop) * (crop / size)`` in float32, computed once per size."""
        grid = self._grids.get((crop, size))
        if grid is None:
            grid = torch_linspace(-1.0, 1.0, crop) * (np.float32(crop) / np.float32(size))
            self._grids[(crop, size)] = grid
        return grid

    def _taps(self, centers: np.ndarray, crop: int, size: int) -> tuple[np.ndarray, ...]:
        """Return :func:`crop_positions` and :func:`_axis_taps` of every centre (n,) at once."""
        # The same float32 operations in the same order, in fewer numpy calls: right after the
        # detector, with cold caches, the crop stage's time is mostly calls, not bytes. Crops inside
        # the frame (the common case) skip the border weights and clipping.
        f32 = np.float32
        normalised = centers / f32(size - 1)
        normalised *= f32(2.0)
        normalised -= f32(1.0)
        positions = self._grid(crop, size)[None, :] + normalised[:, None]
        positions += f32(1.0)
        positions /= f32(2.0)
        positions *= f32(size - 1)
        low = np.floor(positions)
        high_weight = np.subtract(positions, low, out=positions)
        low_weight = f32(1.0) - high_weight
        low_index = low.astype(np.intp)
        high_index = low_index + 1
        if low_index.min() >= 0 and high_index.max() < size:
            return low_index, high_index, low_weight, high_weight
        return _axis_taps_at_border(low_index, high_index, low_weight, high_weight, size)

    def cut(self, images: np.ndarray, frames: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """Return the crops (n, C, h, w) of ``centers`` in ``images[frames]``.

        A view of the cutter's buffer: valid until the next call.
        """
        n = len(frames)
        _, channels, height, width = images.shape
        crop_h, crop_w = self.crop_size
        if self._crops.shape[0] < n or self._crops.shape[1] != channels:
            self._crops = np.empty(
                (max(n, 2 * self._crops.shape[0]), channels, crop_h, crop_w), np.float32
            )
        crops = self._crops[:n]
        if n == 0:
            return crops
        centers = np.asarray(centers, np.float32)
        ys0, ys1, wys0, wys1 = self._taps(centers[:, 1], crop_h, height)
        xs0, xs1, wxs0, wxs1 = self._taps(centers[:, 0], crop_w, width)
        scale = np.float32(1.0 / 255.0)
        row_low, row_high = (wys0 * scale)[:, :, None], (wys1 * scale)[:, :, None]
        tops, lefts = ys0[:, 0], xs0[:, 0]
        # each crop's taps relative to its window, and the windows' corners, in a few calls
        y0s, y1s = ys0 - tops[:, None], ys1 - tops[:, None]
        x0s, x1s = xs0 - lefts[:, None], xs1 - lefts[:, None]
        corners = zip(
            frames.tolist(),
            tops.tolist(),
            (ys1[:, -1] + 1).tolist(),
            lefts.tolist(),
            (xs1[:, -1] + 1).tolist(),
            strict=True,
        )
        for row, (frame, top, bottom, left, right) in enumerate(corners):
            pixels = images[frame, :, top:bottom, left:right].astype(np.float32)  # exact
            # rows first, then columns: the reference's products and sums, in its order
            rows = pixels[:, y0s[row]]
            rows *= row_low[row]
            below = pixels[:, y1s[row]]
            below *= row_high[row]
            rows += below
            left_cols = rows[:, :, x0s[row]]
            left_cols *= wxs0[row]
            right_cols = rows[:, :, x1s[row]]
            right_cols *= wxs1[row]
            np.add(left_cols, right_cols, out=crops[row])
        return crops


def global_peaks(
    confmaps: np.ndarray, threshold: float, stride: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each map's global maximum, as sleap-nn's ``_find_global_peaks`` (first on ties).

    Points (n, K, 2) in crop pixels (NaN below ``threshold``) and values (n, K) (0 there).
    """
    n, k, height, width = confmaps.shape
    flat = confmaps.reshape(n, k, height * width)
    index = flat.argmax(axis=-1)
    values = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0].astype(np.float32)
    points = np.stack([index % width, index // width], axis=-1).astype(np.float32)
    points = points * np.float32(stride)
    below = values < np.float32(threshold)
    points[below] = np.nan
    values = np.where(below, np.float32(0.0), values)
    return points, values


def run_instance_stage(
    images: np.ndarray,
    centroid_outputs: dict[str, np.ndarray],
    settings: SleapTopDownDecoding,
    run_instances: InstanceRunner,
    timings: dict[str, float] | None = None,
    n_nodes: int = 0,
    cutter: CropCutter | None = None,
) -> dict[str, np.ndarray]:
    """Cut the crops and run the instance stage: the combined graph's outputs, valid slots.

    ``timings`` gets ``crop``, ``instance`` and ``peaks`` seconds added; ``cutter`` None: one for
    this call. Invalid slots are left unfilled.
    """
    t0 = time.perf_counter()
    centroids = np.asarray(centroid_outputs["centroids"], np.float32)
    valid = np.asarray(centroid_outputs["instance_valid"]).astype(bool)
    frames, slots = np.nonzero(valid)
    n_frames, n_slots = valid.shape
    crop_h, crop_w = settings.crop_size
    cutter = cutter if cutter is not None else CropCutter(settings.crop_size)
    crops = cutter.cut(images, frames, centroids[frames, slots])
    t1 = time.perf_counter()
    outputs = run_instances(crops) if len(crops) else []
    t2 = time.perf_counter()
    result: dict[str, np.ndarray] = {"instance_valid": valid}
    if outputs:
        peaks, values = global_peaks(
            np.asarray(outputs[0]), settings.peak_threshold, settings.instance_stride
        )
        offset = centroids[frames, slots] - np.array([crop_w / 2.0, crop_h / 2.0], np.float32)
        peaks = peaks + offset[:, None, :]
    else:  # no animal: nothing to run
        peaks = np.empty((0, n_nodes, 2), np.float32)
        values = np.empty((0, n_nodes), np.float32)
    n_nodes = peaks.shape[1]
    result["peaks"] = np.zeros((n_frames, n_slots, n_nodes, 2), np.float32)
    result["peak_vals"] = np.zeros((n_frames, n_slots, n_nodes), np.float32)
    result["peaks"][frames, slots] = peaks
    result["peak_vals"][frames, slots] = values
    if settings.class_names:
        n_classes = len(settings.class_names)
        result["class_logits"] = np.zeros((n_frames, n_slots, n_classes), np.float32)
        if outputs:
            result["class_logits"][frames, slots] = np.asarray(outputs[1]).reshape(-1, n_classes)
    t3 = time.perf_counter()
    if timings is not None:
        timings["crop"] = timings.get("crop", 0.0) + (t1 - t0)
        timings["instance"] = timings.get("instance", 0.0) + (t2 - t1)
        timings["peaks"] = timings.get("peaks", 0.0) + (t3 - t2)
    return result


def decode_two_stages(
    images: np.ndarray,
    outputs: list[np.ndarray],
    description: ModelDescription,
    run_instances: InstanceRunner,
    timings: dict[str, float] | None = None,
    cutter: CropCutter | None = None,
    left: list[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`decode_topdown` of a model whose stages run apart.

    ``left``, when given, gets whether an animal may have left its crop (:func:`crops_left`).
    """
    settings = topdown_decoding_of(description)
    named = dict(zip(description.output_names, outputs, strict=True))
    combined = run_instance_stage(
        images, named, settings, run_instances, timings, len(description.keypoints), cutter
    )
    if left is not None:
        names = description.keypoints
        anchor = names.index(settings.anchor_part) if settings.anchor_part in names else None
        left.append(crops_left(named, combined, settings, anchor))
    names = TOPDOWN_CLASS_OUTPUTS if settings.class_names else TOPDOWN_OUTPUTS
    full = {**named, **combined}
    return _decode_named({name: full[name] for name in names}, description, settings)


def crops_left(
    centroid_outputs: dict[str, np.ndarray],
    combined: dict[str, np.ndarray],
    settings: SleapTopDownDecoding,
    anchor: int | None = None,
) -> bool:
    """Return True when an animal may have left the crop cut around its previous centroid."""
    centroids = np.asarray(centroid_outputs["centroids"], np.float32)
    crop_h, crop_w = settings.crop_size
    reach = np.array([crop_w, crop_h], np.float64) / 4.0
    for frame, slot in zip(*np.nonzero(combined["instance_valid"]), strict=True):
        points = combined["peaks"][frame, slot]
        placing = points if anchor is None else points[anchor : anchor + 1]
        if left_the_crop(placing, centroids[frame, slot], reach):
            return True
    return False


def instance_stage_description(description: ModelDescription) -> ModelDescription | None:
    """Return a two-stage model's instance stage as a model of its own (0..1 crops), or None."""
    settings = getattr(description, "decoding", None)
    if not isinstance(settings, SleapTopDownDecoding) or settings.instance_graph is None:
        return None
    crop_h, crop_w = settings.crop_size
    gray = description.color_order == "gray"
    return dataclasses.replace(
        description,
        name=f"{description.name} (instance stage)",
        model_file=settings.instance_graph,
        input_height=crop_h,
        input_width=crop_w,
        input_name=settings.crops_name,
        output_names=settings.instance_outputs,
        input_type="float",
        normalization="outside",
        resize="bilinear-float",
        mean=(0.0,) if gray else (0.0, 0.0, 0.0),
        std=(1.0,) if gray else (1.0, 1.0, 1.0),
        decoder="argmax",
        decoding=None,
        identity_classes=(),
        max_animals=1,
        batch_size=None,
    )


#: The timed stages of a two-stage top-down model (``NetworkEstimator.last_stage_timings``).
STAGES = ("centroid", "crop", "instance", "peaks")


def model_stages(description: ModelDescription) -> tuple[str, ...]:
    """Return the stages a model's timing files show apart: :data:`STAGES`, or () for one stage."""
    return STAGES if instance_stage_description(description) is not None else ()


#: ``decoder = "sleap-topdown"``: sleap-nn's top-down models in one graph, identity classes or
#: not (cut into two stages, the estimator runs :func:`decode_two_stages` instead).
SLEAP_TOPDOWN = Decoder(decode_topdown, multi_animal=True)
