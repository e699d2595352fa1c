"""What a DeepLabCut 3.0 top-down export says about its boxes: how many animals, which rule.

Read by :mod:`pose.formats.dlc3_topdown` at load (a multi-animal export's description) and by
:mod:`pose.formats.dlc3_topdown_animals` (which runs it); kept apart so that neither imports
the other both ways.
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
    """Return the boxes kept per frame: torchvision's rule, as the export's detector sets it.

    DeepLabCut's ``FasterRCNN`` gives torchvision only ``box_score_thresh`` (its
    ``model_kwargs`` may add ``box_nms_thresh`` and ``box_detections_per_img``). Its
    ``SSDLite`` gives torchvision's ``ssdlite320_mobilenet_v3_large`` nothing that changes its
    post-processing (:data:`pose.decoding.box_detections.SSD_LIMITS`).
    """
    model = (config.get("detector") or {}).get("model") or {}
    if model.get("type") == "SSDLite":
        return dataclasses.replace(SSD_LIMITS, max_individuals=max_individuals)
    kwargs = model.get("model_kwargs") or {}
    return DetectionLimits(
        max_individuals=max_individuals,
        nms_threshold=float(kwargs.get("box_nms_thresh", BOX_NMS_THRESHOLD)),
        per_image=int(kwargs.get("box_detections_per_img", DETECTIONS_PER_IMAGE)),
    )
