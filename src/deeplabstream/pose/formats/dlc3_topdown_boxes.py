"""What a DeepLabCut 3.0 top-down export says about its boxes: how many animals, which rule.

Kept apart from dlc3_topdown and dlc3_topdown_animals so that neither imports the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deeplabstream.pose.decoding.box_detections import (
    BOX_NMS_THRESHOLD,
    DETECTIONS_PER_IMAGE,
    SSD_LIMITS,
    DetectionLimits,
)


def individuals_of(config: dict[str, Any]) -> int:
    """Return the number of individuals the export's metadata names (at least 1)."""
    return max(1, len((config.get("metadata") or {}).get("individuals") or []))


def detection_limits(config: dict[str, Any], max_individuals: int) -> DetectionLimits:
    """Return the boxes kept per frame: torchvision's rule, as the export's detector sets it."""
    model = (config.get("detector") or {}).get("model") or {}
    if model.get("type") == "SSDLite":
        return dataclasses.replace(SSD_LIMITS, max_individuals=max_individuals)
    kwargs = model.get("model_kwargs") or {}
    return DetectionLimits(
        max_individuals=max_individuals,
        nms_threshold=float(kwargs.get("box_nms_thresh", BOX_NMS_THRESHOLD)),
        per_image=int(kwargs.get("box_detections_per_img", DETECTIONS_PER_IMAGE)),
    )
