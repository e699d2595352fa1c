"""Lightning Pose heatmap trackers with EfficientNet and DINO ViT backbones (PyTorch).

Lightning Pose 2.4.3 attaches the same head to every backbone: ``PixelShuffle(2)``, then
``log2(stride) - downsample_factor - 1`` transposed convolutions (3x3, stride 2, padding 1,
output padding 1; the first from ``channels / 4`` to the keypoints, the others keypoints to
keypoints), then a spatial softmax over each map. Only the backbone's output channels and
stride differ: torchvision's EfficientNet-B0/B1/B2 (1280/1280/1408 channels, stride 32;
:mod:`pose.networks.efficientnet`) and the DINO ViTs (384/768 channels, stride 16, the input
square; :mod:`pose.networks.vit`). So a ViT with ``downsample_factor`` 2 has one transposed
convolution, an EfficientNet two. A context model (``heatmap_mhcrnn``) takes the same
backbones per frame (:func:`context_tracker`).
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
