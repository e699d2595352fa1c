"""ResNet trunks, written here so that models trained elsewhere run without their frameworks.

Design: docs/pose-internals.md, "pose.networks.resnet".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

NormKind = Literal["batch", "group"]

GROUP_NORM_GROUPS = 32
NORM_EPS = 1e-5


@dataclass(frozen=True)
class ResNetSpec:
    """The shape of a ResNet: block kind and blocks per stage."""

    bottleneck: bool
    blocks: tuple[int, int, int, int]

    @property
    def expansion(self) -> int:
        """Output channels of a block per ``planes``."""
        return 4 if self.bottleneck else 1

    @property
    def out_channels(self) -> int:
        """Channels of the last feature map."""
        return 512 * self.expansion


RESNETS: dict[int, ResNetSpec] = {
    18: ResNetSpec(False, (2, 2, 2, 2)),
    34: ResNetSpec(False, (3, 4, 6, 3)),
    50: ResNetSpec(True, (3, 4, 6, 3)),
    101: ResNetSpec(True, (3, 4, 23, 3)),
    152: ResNetSpec(True, (3, 8, 36, 3)),
}


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """BatchNorm or timm's GroupNorm (32 groups), both with eps 1e-5."""
    if kind == "group":
        return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=NORM_EPS)
    return nn.BatchNorm2d(channels, eps=NORM_EPS)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        first_dilation: int,
        dilation: int,
        norm: NormKind,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, first_dilation)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = make_norm(norm, planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inplanes, planes, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv-norm-relu, conv-norm, plus the shortcut, relu."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand, and a shortcut (ResNet-50 and up)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        first_dilation: int,
        dilation: int,
        norm: NormKind,
    ) -> None:
        super().__init__()
        del dilation  # only the 3x3 convolution is dilated, with the block's first dilation
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, stride, first_dilation)
        self.bn2 = make_norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = make_norm(norm, planes * 4)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inplanes, planes * 4, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Three conv-norm steps (relu between), plus the shortcut, relu."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _conv3x3(inplanes: int, planes: int, stride: int, dilation: int) -> nn.Conv2d:
    """Make a 3x3 convolution that keeps the size at stride 1 (padding = dilation)."""
    return nn.Conv2d(
        inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def _downsample(inplanes: int, outplanes: int, stride: int, norm: NormKind) -> nn.Module | None:
    """Make the projection shortcut (1x1 conv + norm) where the shape changes, else None."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), make_norm(norm, outplanes)
    )


class ResNet(nn.Module):
    """A ResNet trunk: stem, four stages; ``forward`` returns the last stage's features."""

    def __init__(self, depth: int, norm: NormKind = "batch", output_stride: int = 32) -> None:
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"no ResNet of depth {depth}; expected one of {sorted(RESNETS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.spec = RESNETS[depth]
        self.output_stride = output_stride
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        block = Bottleneck if self.spec.bottleneck else BasicBlock
        inplanes, net_stride, dilation = 64, 4, 1
        for index, (planes, count) in enumerate(
            zip((64, 128, 256, 512), self.spec.blocks, strict=True)
        ):
            stride = 1 if index == 0 else 2
            previous_dilation = dilation
            if net_stride >= output_stride:
                dilation, stride = dilation * stride, 1  # trade the stride for dilation (timm)
            else:
                net_stride *= stride
            layers = []
            for number in range(count):
                # The first block keeps the previous stage's dilation where it strides (timm).
                first = previous_dilation if number == 0 else dilation
                layers.append(
                    block(inplanes, planes, stride if number == 0 else 1, first, dilation, norm)
                )
                inplanes = planes * block.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
        self.out_channels = inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature map (N, out_channels, H / stride, W / stride)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def as_sequential(self) -> nn.Sequential:
        """Wrap the modules as torchvision's ``Sequential(*children()[:-2])`` (Lightning Pose)."""
        return nn.Sequential(
            self.conv1,
            self.bn1,
            self.relu,
            self.maxpool,
            self.layer1,
            self.layer2,
            self.layer3,
            self.layer4,
        )
