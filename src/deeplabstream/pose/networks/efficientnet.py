"""EfficientNet-B0/B1/B2 trunks with torchvision's layer names, for Lightning Pose checkpoints.

Design: docs/pose-internals.md, "pose.networks.efficientnet".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BN_EPS = 1e-5
CHANNEL_DIVISOR = 8
OUTPUT_STRIDE = 32


@dataclass(frozen=True)
class StageSpec:
    """One stage of the base network (B0): expansion ratio, kernel, stride, channels, blocks."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    blocks: int


# EfficientNet-B0's stages; the other sizes scale these.
BASE_STAGES = (
    StageSpec(1, 3, 1, 32, 16, 1),
    StageSpec(6, 3, 2, 16, 24, 2),
    StageSpec(6, 5, 2, 24, 40, 2),
    StageSpec(6, 3, 2, 40, 80, 3),
    StageSpec(6, 5, 1, 80, 112, 3),
    StageSpec(6, 5, 2, 112, 192, 4),
    StageSpec(6, 3, 1, 192, 320, 1),
)
# name -> (width multiplier, depth multiplier)
SCALES: dict[str, tuple[float, float]] = {
    "efficientnet_b0": (1.0, 1.0),
    "efficientnet_b1": (1.0, 1.1),
    "efficientnet_b2": (1.1, 1.2),
}


def scaled_channels(channels: float, width_mult: float = 1.0) -> int:
    """Channels times the width multiplier, rounded to a multiple of 8 (at most 10% down)."""
    scaled = channels * width_mult
    rounded = max(CHANNEL_DIVISOR, int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * 8)
    if rounded < 0.9 * scaled:
        rounded += CHANNEL_DIVISOR
    return rounded


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    activation: bool = True,
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding), BatchNorm, optional SiLU; torchvision's indices."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=(kernel - 1) // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
    ]
    if activation:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: sigmoid(fc2(silu(fc1(mean over the map)))) times the input."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the input's channels."""
        scale = x.mean(dim=(2, 3), keepdim=True)
        scale = self.fc2(nn.functional.silu(self.fc1(scale)))
        return torch.sigmoid(scale) * x


class MBConv(nn.Module):
    """An inverted-residual block, with torchvision's ``block.<i>`` names."""

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and in_channels == out_channels
        expanded = scaled_channels(in_channels, expand_ratio)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn(in_channels, expanded, 1))
        layers.append(conv_bn(expanded, expanded, kernel, stride=stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, in_channels // 4)))
        layers.append(conv_bn(expanded, out_channels, 1, activation=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the block (and add its input where the shapes allow)."""
        result = self.block(x)
        return result + x if self.use_residual else result


class EfficientNet(nn.Module):
    """The trunk of an EfficientNet (B0, B1, B2): ``features`` as torchvision names it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in SCALES:
            raise ValueError(f"unknown EfficientNet {name!r}; known: {', '.join(SCALES)}")
        width_mult, depth_mult = SCALES[name]
        stages = BASE_STAGES
        stem_channels = scaled_channels(stages[0].in_channels, width_mult)
        layers: list[nn.Module] = [conv_bn(3, stem_channels, 3, stride=2)]
        for spec in stages:
            in_channels = scaled_channels(spec.in_channels, width_mult)
            out_channels = scaled_channels(spec.out_channels, width_mult)
            blocks: list[nn.Module] = []
            for index in range(math.ceil(spec.blocks * depth_mult)):
                # Only a stage's first block strides and changes the channel count.
                blocks.append(
                    MBConv(
                        in_channels if index == 0 else out_channels,
                        out_channels,
                        spec.expand_ratio,
                        spec.kernel,
                        spec.stride if index == 0 else 1,
                    )
                )
            layers.append(nn.Sequential(*blocks))
        last_in = scaled_channels(stages[-1].out_channels, width_mult)
        self.out_channels = 4 * last_in
        layers.append(conv_bn(last_in, self.out_channels, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, out_channels, H/32, W/32) features of (N, 3, H, W) images."""
        return self.features(images)

    def as_sequential(self) -> nn.Sequential:
        """Return the trunk as Lightning Pose keeps it: ``Sequential(features)`` (``0.<i>...``)."""
        return nn.Sequential(self.features)
