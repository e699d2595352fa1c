"""A detector's several animal boxes per frame, as torchvision and DeepLabCut keep them.

Design: docs/pose-internals.md, "pose.decoding.box_detections".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.pose.decoding import region_proposals as rp

#: torchvision's ``FasterRCNN`` defaults (DeepLabCut passes neither unless ``model_kwargs`` do).
BOX_NMS_THRESHOLD = 0.5
DETECTIONS_PER_IMAGE = 100
#: The class of the animal boxes (0 is the background), the group of ``batched_nms``.
ANIMAL_CLASS = 1
#: torchvision's ``ssdlite320_mobilenet_v3_large`` defaults, which DeepLabCut 3.0.2's ``SSDLite``
#: keeps: its ``box_score_thresh`` reaches torchvision's ``GeneralizedRCNNTransform`` as an unused
#: keyword, not the SSD's ``score_thresh``.
SSD_SCORE_THRESHOLD = 0.001
SSD_NMS_THRESHOLD = 0.55
SSD_DETECTIONS_PER_IMAGE = 300
SSD_TOP_CANDIDATES = 300
#: SSDLite's input size (torchvision resizes every frame to it).
SSD_SIZE = 320


@dataclass(frozen=True)
class DetectionLimits:
    """How many boxes a frame keeps, and torchvision's overlap rule between them."""

    max_individuals: int
    nms_threshold: float = BOX_NMS_THRESHOLD
    per_image: int = DETECTIONS_PER_IMAGE
    #: SSD only: the best boxes kept before the suppression (``topk_candidates``).
    candidates: int | None = None


#: What a multi-animal SSDLite keeps (``max_individuals`` set per model).
SSD_LIMITS = DetectionLimits(
    max_individuals=1,
    nms_threshold=SSD_NMS_THRESHOLD,
    per_image=SSD_DETECTIONS_PER_IMAGE,
    candidates=SSD_TOP_CANDIDATES,
)


def animal_detections(
    class_logits: np.ndarray,
    box_deltas: np.ndarray,
    proposals: np.ndarray,
    image_size: tuple[int, int],
    settings: rp.FasterRcnnSettings,
    limits: DetectionLimits,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the kept boxes (M, 4) x1, y1, x2, y2 in resized pixels and scores (M,), best first."""
    empty = (np.empty((0, 4), np.float32), np.empty(0, np.float32))
    if len(proposals) == 0:
        return empty
    animal = rp.clip(rp.decode(box_deltas[:, 4:8], proposals, rp.BOX_WEIGHTS), image_size)
    scores = rp.softmax(class_logits)[:, ANIMAL_CLASS]
    # torchvision removes the low scores first, then the small boxes (the order is kept).
    above = np.flatnonzero(scores > np.float32(settings.box_score_threshold))
    animal, scores = animal[above], scores[above]
    large = np.flatnonzero(rp.not_small(animal, settings.box_min_size))
    animal, scores = animal[large], scores[large]
    if len(animal) == 0:
        return empty
    groups = np.full(len(animal), ANIMAL_CLASS, np.int64)
    keep = rp.batched_nms(animal, scores, groups, limits.nms_threshold)
    keep = keep[: min(limits.per_image, limits.max_individuals)]
    return animal[keep], scores[keep]


def ssd_animal_detections(
    boxes: np.ndarray, scores: np.ndarray, frame_size: tuple[int, int], limits: DetectionLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Return an SSDLite's kept boxes (M, 4) x1, y1, x2, y2 in frame pixels and scores, best first.

    ``boxes`` (B, 4) and ``scores`` (B,) are every default box in the detector's 320 x 320 pixels.
    """
    boxes = np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32)
    above = np.flatnonzero(scores > np.float32(SSD_SCORE_THRESHOLD))
    order = above[np.argsort(-scores[above], kind="stable")]
    if limits.candidates is not None:
        order = order[: limits.candidates]
    if order.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32)
    kept_boxes, kept_scores = boxes[order], scores[order]
    groups = np.full(len(kept_boxes), ANIMAL_CLASS, np.int64)
    keep = rp.batched_nms(kept_boxes, kept_scores, groups, limits.nms_threshold)
    keep = keep[: min(limits.per_image, limits.max_individuals)]
    height, width = frame_size
    ratio_w = np.float32(width) / np.float32(SSD_SIZE)
    ratio_h = np.float32(height) / np.float32(SSD_SIZE)
    scale = np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32)
    return kept_boxes[keep] * scale, kept_scores[keep]
