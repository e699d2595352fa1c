"""The Faster R-CNN variants rebuilt here, named as DeepLabCut 3.0 names them; no torch.

Kept apart from :mod:`pose.networks.fasterrcnn` so that loading converted graphs needs no torch.
"""

from __future__ import annotations

#: RoIAlign's output size (``MultiScaleRoIAlign(..., 7, 2)``).
POOLED_SIZE = 7
MOBILENET = "fasterrcnn_mobilenet_v3_large_fpn"
RESNET50_V2 = "fasterrcnn_resnet50_fpn_v2"
#: The variants rebuilt here (``detector.model.variant``).
VARIANTS = (MOBILENET, RESNET50_V2)
#: The FPN maps RoIAlign reads (``featmap_names`` present in the backbone's output).
ROI_MAPS = {MOBILENET: 1, RESNET50_V2: 4}
