"""Torchvision's Faster R-CNN steps around its networks, in NumPy (float32 as torchvision).

Design: docs/pose-internals.md, "pose.decoding.region_proposals".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: torchvision's ``GeneralizedRCNNTransform`` normalisation (applied after DeepLabCut's own).
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZE_DIVISIBLE = 32
BOX_CLIP = math.log(1000.0 / 16)
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


@dataclass(frozen=True)
class FasterRcnnSettings:
    """The settings torchvision's builder gives a variant (defaults: mobilenet_v3_large_fpn)."""

    min_size: int = 800
    max_size: int = 1333
    pre_nms_top_n: int = 1000
    post_nms_top_n: int = 1000
    rpn_nms_threshold: float = 0.7
    rpn_score_threshold: float = 0.05
    rpn_min_size: float = 1e-3
    box_score_threshold: float = 0.01
    box_min_size: float = 1e-2
    sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    feature_strides: tuple[int, ...] = (32, 32)
    per_level_sizes: bool = False

    def level_anchor_sizes(self, level: int) -> tuple[int, ...]:
        """Return the anchor sizes of one RPN level."""
        return (self.sizes[level],) if self.per_level_sizes else self.sizes


#: ``fasterrcnn_resnet50_fpn_v2``: ``_default_anchorgen`` (one size per level, 5 levels),
#: FPN maps at strides 4 ... 32, the ``FasterRCNN`` default ``rpn_score_thresh`` 0.0.
RESNET50_V2_SETTINGS = FasterRcnnSettings(
    rpn_score_threshold=0.0, feature_strides=(4, 8, 16, 32), per_level_sizes=True
)


@dataclass(frozen=True)
class ResizePlan:
    """Where a frame goes: its resized size (height, width) and the padded size."""

    resized: tuple[int, int]
    padded: tuple[int, int]


def resize_plan(height: int, width: int, settings: FasterRcnnSettings) -> ResizePlan:
    """Torchvision's ``_resize_image_and_masks`` sizes, and ``batch_images``' padding."""
    scale = min(settings.min_size / min(height, width), settings.max_size / max(height, width))
    # interpolate(scale_factor=..., recompute_scale_factor=True) floors input * scale (double).
    out_h, out_w = math.floor(height * scale), math.floor(width * scale)
    pad_h = int(math.ceil(out_h / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    pad_w = int(math.ceil(out_w / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    return ResizePlan((out_h, out_w), (pad_h, pad_w))


def prepare_image(normalised: np.ndarray, plan: ResizePlan, out: np.ndarray) -> None:
    """Fill ``out`` (3, padded h, padded w) from a (3, H, W) DeepLabCut-normalised image.

    OpenCV's ``INTER_LINEAR`` on float32 samples torchvision's points with its weights, rounded
    otherwise: within 2e-5 of the values' range (a NumPy copy of torch's formula was no closer, and
    six times slower).
    """
    image = (normalised - TORCHVISION_MEAN[:, None, None]) / TORCHVISION_STD[:, None, None]
    out_h, out_w = plan.resized
    out[:] = 0.0
    for channel in range(3):
        cv2.resize(
            image[channel],
            (out_w, out_h),
            dst=out[channel, :out_h, :out_w],
            interpolation=cv2.INTER_LINEAR,
        )


def feature_grids(
    padded: tuple[int, int], strides: tuple[int, ...] = (32, 32)
) -> list[tuple[int, int]]:
    """Return the RPN levels' grids: the FPN maps (``strides``), then the max-pooled one."""
    grids = [(padded[0] // stride, padded[1] // stride) for stride in strides]
    rows, cols = grids[-1]
    return [*grids, ((rows - 1) // 2 + 1, (cols - 1) // 2 + 1)]


def base_anchors(settings: FasterRcnnSettings, level: int = 0) -> np.ndarray:
    """``AnchorGenerator.generate_anchors``: (A, 4) centred, rounded, ratio-major."""
    scales = np.array(settings.level_anchor_sizes(level), np.float32)
    ratios = np.array(settings.ratios, np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1.0) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2.0)).astype(np.float32)


def anchors(padded: tuple[int, int], settings: FasterRcnnSettings) -> np.ndarray:
    """All levels' anchors (total, 4) x1 y1 x2 y2, torchvision's order."""
    levels = []
    for level, (rows, cols) in enumerate(feature_grids(padded, settings.feature_strides)):
        base = base_anchors(settings, level)
        stride_h, stride_w = padded[0] // rows, padded[1] // cols
        shift_x = np.arange(cols, dtype=np.float32) * np.float32(stride_w)
        shift_y = np.arange(rows, dtype=np.float32) * np.float32(stride_h)
        grid_y, grid_x = np.meshgrid(shift_y, shift_x, indexing="ij")
        gx, gy = grid_x.reshape(-1), grid_y.reshape(-1)
        shifts = np.stack([gx, gy, gx, gy], axis=1)
        levels.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return np.concatenate(levels).astype(np.float32)


def level_sizes(padded: tuple[int, int], settings: FasterRcnnSettings) -> list[int]:
    """Return the number of anchors of each level."""
    grids = feature_grids(padded, settings.feature_strides)
    return [
        rows * cols * len(settings.level_anchor_sizes(level)) * len(settings.ratios)
        for level, (rows, cols) in enumerate(grids)
    ]


def decode(deltas: np.ndarray, boxes: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """``BoxCoder.decode_single`` for one class: (R, 4) deltas on (R, 4) boxes, float32."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + np.float32(0.5) * widths
    ctr_y = boxes[:, 1] + np.float32(0.5) * heights
    wx, wy, ww, wh = (np.float32(w) for w in weights)
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = np.minimum(deltas[:, 2] / ww, np.float32(BOX_CLIP))
    dh = np.minimum(deltas[:, 3] / wh, np.float32(BOX_CLIP))
    pred_x = dx * widths + ctr_x
    pred_y = dy * heights + ctr_y
    half_w = np.float32(0.5) * (np.exp(dw) * widths)
    half_h = np.float32(0.5) * (np.exp(dh) * heights)
    return np.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h], axis=1)


def clip(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``clip_boxes_to_image``: x in [0, width], y in [0, height]."""
    height, width = size
    out = boxes.copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out


def not_small(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """``remove_small_boxes``' mask: width and height at least ``min_size``."""
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Torchvision's CPU ``nms``: the kept indices, highest score first (float32 IoU)."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    # Every pair's IoU at once (as the kernel computes each: float32, the same operations).
    w = np.maximum(np.float32(0), np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1))
    h = np.maximum(np.float32(0), np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1))
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        over = (inter / (areas[:, None] + areas[None, :] - inter)) > np.float32(threshold)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[np.array(keep, dtype=np.int64)]


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float
) -> np.ndarray:
    """Torchvision's ``batched_nms``: kept indices by decreasing score (its float32 sums too)."""
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    if boxes.size > 4000:
        mask = np.zeros(len(boxes), bool)
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            mask[members[nms(boxes[members], scores[members], threshold)]] = True
        keep = np.flatnonzero(mask)
        return keep[np.argsort(-scores[keep], kind="stable")]
    offsets = groups.astype(np.float32) * (boxes.max() + np.float32(1.0))
    return nms(boxes + offsets[:, None], scores, threshold)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function."""
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def proposals(
    objectness: np.ndarray,
    deltas: np.ndarray,
    all_anchors: np.ndarray,
    sizes: list[int],
    image_size: tuple[int, int],
    settings: FasterRcnnSettings,
) -> np.ndarray:
    """``RegionProposalNetwork`` at inference for one image: (P, 4) boxes, best first."""
    chosen, levels = [], []
    start = 0
    for level, count in enumerate(sizes):
        logits = objectness[start : start + count]
        top = min(settings.pre_nms_top_n, count)
        # torch.topk's set: the largest values (ties broken by index, as its sort).
        best = np.argsort(-logits, kind="stable")[:top]
        chosen.append(best + start)
        levels.append(np.full(top, level))
        start += count
    index = np.concatenate(chosen)
    level_of = np.concatenate(levels)
    boxes = decode(deltas[index], all_anchors[index], RPN_WEIGHTS)
    scores = sigmoid(objectness[index])
    boxes = clip(boxes, image_size)
    keep = not_small(boxes, settings.rpn_min_size)
    keep &= scores >= np.float32(settings.rpn_score_threshold)
    boxes, scores, level_of = boxes[keep], scores[keep], level_of[keep]
    kept = batched_nms(boxes, scores, level_of, settings.rpn_nms_threshold)
    return boxes[kept[: settings.post_nms_top_n]]


def roi_levels(boxes: np.ndarray, k_min: int, k_max: int) -> np.ndarray:
    """``MultiScaleRoIAlign``'s ``LevelMapper``: each box's map (0 = the finest), float32."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(divide="ignore"):  # an empty box: log2(0) = -inf, the finest map
        level = np.floor(
            np.float32(4) + np.log2(np.sqrt(area) / np.float32(224)) + np.float32(1e-6)
        )
    return (np.clip(level, k_min, k_max).astype(np.int64) - k_min).astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise float32 softmax."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def best_detection(
    class_logits: np.ndarray,
    box_deltas: np.ndarray,
    boxes: np.ndarray,
    image_size: tuple[int, int],
    settings: FasterRcnnSettings,
) -> tuple[np.ndarray, float] | None:
    """Return the best animal box (x1, y1, x2, y2 in resized pixels) and its score."""
    if len(boxes) == 0:
        return None
    animal = clip(decode(box_deltas[:, 4:8], boxes, BOX_WEIGHTS), image_size)
    scores = softmax(class_logits)[:, 1]
    valid = (scores > np.float32(settings.box_score_threshold)) & not_small(
        animal, settings.box_min_size
    )
    if not valid.any():
        return None
    candidates = np.flatnonzero(valid)
    best = candidates[np.argmax(scores[candidates])]
    return animal[best], float(scores[best])


def to_frame(box: np.ndarray, plan: ResizePlan, frame_size: tuple[int, int]) -> np.ndarray:
    """``transform.postprocess``: x times frame width / resized width, y likewise (float32)."""
    ratio_h = np.float32(frame_size[0]) / np.float32(plan.resized[0])
    ratio_w = np.float32(frame_size[1]) / np.float32(plan.resized[1])
    return (box * np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32)).astype(np.float32)
