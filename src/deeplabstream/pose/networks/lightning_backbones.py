"""Lightning Pose heatmap trackers with EfficientNet and DINO ViT backbones (PyTorch).

Design: docs/pose-internals.md, "pose.networks.lightning_backbones".
"""

from __future__ import annotations

import torch
from torch import nn

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.networks.efficientnet import OUTPUT_STRIDE as EFFICIENTNET_STRIDE
from deeplabstream.pose.networks.efficientnet import SCALES, EfficientNet
from deeplabstream.pose.networks.lightning import (
    HeatmapTrackerMHCRNN,
    spatial_softmax,
    upsampling_layers,
)
from deeplabstream.pose.networks.vit import DINO_VITS, DinoBackbone
from deeplabstream.pose.networks.vit import OUTPUT_STRIDE as VIT_STRIDE

EFFICIENTNETS = tuple(SCALES)
VITS = tuple(DINO_VITS)


def build_backbone(name: str, input_size: tuple[int, int]) -> tuple[nn.Module, int, int]:
    """Build a backbone: (module with Lightning Pose's names, output channels, stride)."""
    if name in SCALES:
        trunk = EfficientNet(name)
        return trunk.as_sequential(), trunk.out_channels, EFFICIENTNET_STRIDE
    if name in DINO_VITS:
        try:
            vit = DinoBackbone(name, input_size)
        except ValueError as error:  # not square, or not a multiple of the patch
            raise ModelError(f"a {name} backbone: {error}") from error
        return vit, vit.out_channels, VIT_STRIDE
    raise ModelError(f"backbone {name!r} is not rebuilt here ({', '.join(EFFICIENTNETS + VITS)})")


class BackboneHeatmapTracker(nn.Module):
    """Lightning Pose's ``HeatmapTracker`` with a non-ResNet backbone, at inference."""

    def __init__(
        self, backbone: str, keypoints: int, downsample_factor: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.backbone, channels, stride = build_backbone(backbone, input_size)
        self.head = nn.Module()
        self.head.upsampling_layers = upsampling_layers(
            channels, keypoints, stride, downsample_factor
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (N, K, h, w) heatmaps, each summing to 1."""
        return spatial_softmax(self.head.upsampling_layers(self.backbone(images)))


def context_tracker(
    backbone: str, keypoints: int, downsample_factor: int, input_size: tuple[int, int]
) -> HeatmapTrackerMHCRNN:
    """Lightning Pose's context tracker (``heatmap_mhcrnn``) on an EfficientNet or DINO ViT."""
    module, channels, stride = build_backbone(backbone, input_size)
    return HeatmapTrackerMHCRNN(module, channels, stride, keypoints, downsample_factor)
