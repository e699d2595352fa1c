"""Lightning Pose crop-zoom boxes: from a detector's keypoints to the pose model's crop.

Lightning Pose 2.4.3's ``create_bbox``, ``smooth_bbox``, ``crop`` and ``remap`` rules. Design:
docs/pose-models.md, "Lightning Pose crop-zoom pairs".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: What Lightning Pose's ``create_bbox`` uses when neither a ratio nor a size is given.
DEFAULT_CROP_RATIO = 2.0
#: Lightning Pose's ``smooth_bbox`` default window (frames).
DEFAULT_SMOOTH_WINDOW = 5


@dataclass(frozen=True)
class BoxRule:
    """How a crop-zoom pair makes its box from the detector's keypoints.

    Exactly one of ``crop_ratio`` (> 1) and ``crop_size`` (> 0) is set.

    ``anchors``: the detector keypoints the box is built on (all when empty).
    """

    anchors: tuple[int, ...] = ()
    crop_ratio: float | None = DEFAULT_CROP_RATIO
    crop_size: int | None = None

    def __post_init__(self) -> None:
        """Refuse what Lightning Pose's ``create_bbox`` refuses."""
        if (self.crop_ratio is None) == (self.crop_size is None):
            raise ValueError("a box rule needs exactly one of crop_ratio and crop_size")
        if self.crop_ratio is not None and not self.crop_ratio > 1:
            raise ValueError(f"crop_ratio must be greater than 1, got {self.crop_ratio}")
        if self.crop_size is not None and self.crop_size <= 0:
            raise ValueError(f"crop_size must be a positive integer, got {self.crop_size}")

    def text(self, names: Sequence[str]) -> str:
        """Return the rule in words, with the anchors' names."""
        anchors = ", ".join(names[i] for i in self.anchors) if self.anchors else "all keypoints"
        if self.crop_size is not None:
            size = f"fixed side {self.crop_size + self.crop_size % 2} px"
        else:
            size = f"side ceil({self.crop_ratio} x the anchors' span), made even"
        return f"square box centred on the mean of {anchors}; {size}"


def _even(sides: np.ndarray) -> np.ndarray:
    """Add 1 to odd sides (Lightning Pose keeps video players happy with even sizes)."""
    return sides + sides % 2


def lightning_boxes(points: np.ndarray, rule: BoxRule) -> np.ndarray:
    """Return each frame's box (N, 4) int64 x, y, h, w from (N, K, 2+) detector keypoints.

    A NaN keypoint makes the box meaningless: callers check :func:`boxes_valid`.
    """
    xy = np.asarray(points, np.float64)[..., :2]
    if rule.anchors:
        xy = xy[:, list(rule.anchors)]
    centre = xy.mean(axis=1)  # (N, 2)
    if rule.crop_size is not None:
        side = np.full(len(xy), rule.crop_size + rule.crop_size % 2, np.int64)
    else:
        assert rule.crop_ratio is not None
        span = np.max(xy.max(axis=1) - xy.min(axis=1), axis=1)
        with np.errstate(invalid="ignore"):
            side = _even(np.ceil(span * rule.crop_ratio).astype(np.int64))
    with np.errstate(invalid="ignore"):
        corner = (centre - (side // 2)[:, None]).astype(np.int64)  # truncation, as int64()
    return np.column_stack([corner, side, side]).astype(np.int64)


def boxes_valid(points: np.ndarray, rule: BoxRule) -> np.ndarray:
    """Return (N,) True where every anchor keypoint has finite x and y (the box is defined)."""
    xy = np.asarray(points, np.float64)[..., :2]
    if rule.anchors:
        xy = xy[:, list(rule.anchors)]
    return np.asarray(np.isfinite(xy).all(axis=(1, 2)))


def smooth_boxes(boxes: np.ndarray, window: int = DEFAULT_SMOOTH_WINDOW) -> np.ndarray:
    """Lightning Pose's ``smooth_bbox``: a centred rolling median of x, y, h, w (offline only)."""
    import pandas as pd

    if window < 1:
        raise ValueError(f"the smoothing window must be at least 1 frame, got {window}")
    table = pd.DataFrame(np.asarray(boxes, np.float64), columns=["x", "y", "h", "w"])
    smoothed = table.rolling(window=window, center=True, min_periods=1).median()
    return np.asarray(smoothed.round(0).to_numpy(), np.int64)


def video_crop_size(boxes: np.ndarray) -> tuple[int, int]:
    """Return (height, width) of Lightning Pose's cropped video: the median sides, made even."""
    h = round(float(np.nanmedian(boxes[:, 2])) / 2) * 2
    w = round(float(np.nanmedian(boxes[:, 3])) / 2) * 2
    return int(h), int(w)


def cut_box(image: np.ndarray, box: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
    """Return the box (x, y, h, w) of ``image``, zero where it leaves the image.

    A view when inside the image; else a copy into ``out`` (a new zeroed canvas when None or of
    another shape).
    """
    x, y, h, w = (int(v) for v in box)
    image_h, image_w = image.shape[:2]
    if x >= 0 and y >= 0 and x + w <= image_w and y + h <= image_h:
        return image[y : y + h, x : x + w]
    return _padded(image, (x, y, h, w), (image_w, image_h), out)


def _padded(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    limits: tuple[int, int],
    out: np.ndarray | None,
) -> np.ndarray:
    """Copy the part of ``box`` inside ``limits`` (width, height) onto a zero canvas."""
    x, y, h, w = box
    shape = (h, w, *image.shape[2:])
    canvas = out if out is not None and out.shape == shape else np.empty(shape, image.dtype)
    canvas[:] = 0
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + w, limits[0]), min(y + h, limits[1])
    if x2 > x1 and y2 > y1:
        canvas[y1 - y : y2 - y, x1 - x : x2 - x] = image[y1:y2, x1:x2]
    return canvas


def lightning_video_crop(
    frame: np.ndarray, box: Sequence[int], size: tuple[int, int]
) -> np.ndarray:
    """Return Lightning Pose's ``crop`` of one video frame: the box resized to ``size`` (h, w)."""
    import cv2

    x, y, h, w = (int(v) for v in box)
    image_h, image_w = frame.shape[:2]
    cut = _padded(frame, (x, y, h, w), (image_w - 1, image_h - 1), None)
    return cv2.resize(cut, (size[1], size[0]))


def remap_from_crop(points: np.ndarray, box: Sequence[int], crop_shape: tuple[int, int]) -> None:
    """Map (K, 2+) keypoints of a crop of ``crop_shape`` (h, w) to the frame, in place."""
    x, y, h, w = (int(v) for v in box)
    if crop_shape != (h, w):
        points[:, 0] *= w / crop_shape[1]
        points[:, 1] *= h / crop_shape[0]
    points[:, 0] += x
    points[:, 1] += y
