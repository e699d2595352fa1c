"""The training loss: heatmaps and location refinement, weighted per keypoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True)
class LossSettings:
    """Target shapes and weights of the loss.

    ``sigma`` and ``locref_radius`` in heatmap pixels; ``locref_beta`` (``locref_std`` units) is
    where the offsets' Huber loss turns linear.
    """

    sigma: float = 1.25
    locref_radius: float = 2.0
    locref_weight: float = 5.0
    locref_beta: float = 0.05


def pose_loss(
    outputs: Sequence[torch.Tensor],
    heatmaps: torch.Tensor,
    offsets: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid cross-entropy on the heatmaps plus a masked Huber loss on the offsets."""
    n, k = heatmaps.shape[:2]
    heat = functional.binary_cross_entropy_with_logits(outputs[0], heatmaps, reduction="sum")
    heat = heat / (n * k)
    total = heat
    parts = {"heatmap": float(heat.detach())}
    if len(outputs) > 1:
        weights = mask.repeat_interleave(2, dim=1)
        huber = functional.smooth_l1_loss(
            outputs[1], offsets, reduction="none", beta=settings.locref_beta
        )
        locref = (huber * weights).sum() / (n * k)
        total = total + settings.locref_weight * locref
        parts["locref"] = float(locref.detach())
    return total, parts
