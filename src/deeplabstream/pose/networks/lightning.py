"""Lightning Pose's ``HeatmapTracker`` network, rebuilt with its state-dict names (PyTorch).

The module :mod:`pose.formats.lightning_ckpt` builds from a checkpoint: a torchvision-named ResNet
trunk (:mod:`pose.networks.resnet`) as ``backbone``, then ``head.upsampling_layers`` (a
``PixelShuffle(2)`` and transposed convolutions) and a spatial softmax over each map.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.networks.resnet import ResNet

BACKBONE_STRIDE = 32


class HeatmapTracker(nn.Module):
    """Lightning Pose's ``HeatmapTracker`` at inference: images in, soft-maxed heatmaps out."""

    def __init__(self, depth: int, keypoints: int, downsample_factor: int) -> None:
        super().__init__()
        trunk = ResNet(depth, "batch", BACKBONE_STRIDE)
        self.backbone = trunk.as_sequential()
        layers: list[nn.Module] = [nn.PixelShuffle(2)]
        channels = trunk.out_channels // 4
        # PixelShuffle doubles the size; each transposed convolution doubles it again until
        # the maps are 2**downsample_factor times smaller than the input.
        for _ in range(upsampling_convolutions(downsample_factor)):
            layers.append(
                nn.ConvTranspose2d(channels, keypoints, 3, stride=2, padding=1, output_padding=1)
            )
            channels = keypoints
        self.head = nn.Module()
        self.head.upsampling_layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) heatmaps, each summing to 1."""
        maps = self.head.upsampling_layers(self.backbone(images))
        n, k, h, w = maps.shape
        return torch.softmax(maps.float().reshape(n, k, h * w), dim=2).reshape(n, k, h, w)


def upsampling_convolutions(downsample_factor: int) -> int:
    """Transposed convolutions after the PixelShuffle for a stride-32 backbone."""
    count = int(np.log2(BACKBONE_STRIDE)) - 1 - downsample_factor
    if count < 1:
        raise ModelError(f"downsample_factor {downsample_factor} is not supported (1 to 3 are)")
    return count
