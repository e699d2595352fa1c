"""HRNet (timm's ``hrnet_w*``, as DeepLabCut 3.0's ``HRNet`` backbone uses it), in PyTorch.

Design: docs/pose-internals.md, "pose.networks.hrnet".
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.networks.resnet import BasicBlock, Bottleneck

# timm's names -> width C (every hrnet_wN of timm: stem 64, blocks (4,), (4, 4), ... as below)
WIDTHS = {f"hrnet_w{c}": c for c in (18, 30, 32, 40, 44, 48, 64)}
STEM_WIDTH = 64
LAYER1_BLOCKS = 4
LAYER1_PLANES = 64
STAGE_MODULES = (1, 4, 3)  # stages 2, 3, 4
BLOCKS_PER_BRANCH = 4
STRIDE = 4  # of the highest-resolution branch
INPUT_MULTIPLE = 32  # of the lowest one: inputs must be multiples of it (DeepLabCut pads)


def hrnet_width(model_name: str) -> int | None:
    """Return the width ``C`` of a timm HRNet name (``hrnet_w32`` -> 32), or None."""
    match = re.fullmatch(r"hrnet_w(\d+)", model_name)
    return WIDTHS.get(model_name) if match else None


def _basic(inplanes: int, planes: int) -> BasicBlock:
    return BasicBlock(inplanes, planes, 1, 1, 1, "batch")


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch fused into every output."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*(_basic(c, c) for _ in range(BLOCKS_PER_BRANCH))) for c in channels
        )
        rows = []
        for i in range(n):
            row: list[nn.Module] = []
            for j in range(n):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = [
                        _conv_bn(channels[j], channels[j], 3, 2, relu=True)
                        for _ in range(i - j - 1)
                    ]
                    steps.append(_conv_bn(channels[j], channels[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(rows)
        self.fuse_act = nn.ReLU()
        self.outputs = n

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        """Branches, then the fusion (sums in timm's order, j = 0, 1, ...)."""
        x = [branch(t) for branch, t in zip(self.branches, x, strict=True)]
        fused = []
        for row in list(self.fuse_layers)[: self.outputs]:
            y = row[0](x[0])
            for j in range(1, len(x)):
                y = y + row[j](x[j])
            fused.append(self.fuse_act(y))
        return fused


class HRNet(nn.Module):
    """timm's ``HighResolutionNetFeatures`` (``feature_location=""``), as DeepLabCut uses it."""

    def __init__(self, width: int, interpolate_branches: bool = False) -> None:
        super().__init__()
        c = width
        self.conv1 = nn.Conv2d(3, STEM_WIDTH, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.conv2 = nn.Conv2d(STEM_WIDTH, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        blocks = [Bottleneck(64, LAYER1_PLANES, 1, 1, 1, "batch")]
        blocks += [
            Bottleneck(LAYER1_PLANES * 4, LAYER1_PLANES, 1, 1, 1, "batch")
            for _ in range(LAYER1_BLOCKS - 1)
        ]
        self.layer1 = nn.Sequential(*blocks)
        previous = (LAYER1_PLANES * 4,)
        for number, modules in enumerate(STAGE_MODULES, start=2):
            channels = tuple(c * 2**b for b in range(number))
            setattr(self, f"transition{number - 1}", self._transition(previous, channels))
            setattr(
                self,
                f"stage{number}",
                nn.Sequential(*(HighResolutionModule(channels) for _ in range(modules))),
            )
            previous = channels
        self.interpolate_branches = interpolate_branches
        if not interpolate_branches:
            self.stage4[-1].outputs = 1  # only the stride-4 branch is used
        self.stride = STRIDE
        self.out_channels = c * 15 if interpolate_branches else c

    @staticmethod
    def _transition(previous: tuple[int, ...], channels: tuple[int, ...]) -> nn.ModuleList:
        """Make timm's transition: identity or a 3x3 conv per branch, strided convs for new ones."""
        layers: list[nn.Module] = []
        for i, c in enumerate(channels):
            if i < len(previous):
                if previous[i] == c:
                    layers.append(nn.Identity())
                else:
                    layers.append(_conv_bn(previous[i], c, 3, 1, relu=True))
                continue
            steps = []
            for j in range(i + 1 - len(previous)):
                out = c if j == i - len(previous) else previous[-1]
                steps.append(_conv_bn(previous[-1], out, 3, 2, relu=True))
            layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    @staticmethod
    def _run_transition(transition: nn.ModuleList, y: list[torch.Tensor]) -> list[torch.Tensor]:
        # As timm: a branch with a layer takes the last branch's output (a new branch, or one
        # whose channels change), an identity keeps its own.
        return [
            y[i] if isinstance(layer, nn.Identity) else layer(y[-1])
            for i, layer in enumerate(transition)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stride-4 features (or all four branches at that size)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        for number in (2, 3, 4):
            y = self._run_transition(getattr(self, f"transition{number - 1}"), y)
            for module in getattr(self, f"stage{number}"):
                y = module(y)
        if not self.interpolate_branches:
            return y[0]
        size = y[0].shape[2:]
        resized = [functional.interpolate(t, size=size, mode="bilinear") for t in y[1:]]
        return torch.cat([y[0], *resized], dim=1)


class DlcHRNet(nn.Module):
    """DeepLabCut's ``HRNet`` backbone: the timm network under ``model``, the input padded."""

    def __init__(self, width: int, interpolate_branches: bool = False, pad: bool = True) -> None:
        super().__init__()
        self.model = HRNet(width, interpolate_branches)
        self.stride = self.model.stride
        self.out_channels = self.model.out_channels
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to multiples of 32 (reflect), then the features."""
        if self.pad:
            h, w = x.shape[2], x.shape[3]
            pad_h = (INPUT_MULTIPLE - h % INPUT_MULTIPLE) % INPUT_MULTIPLE
            pad_w = (INPUT_MULTIPLE - w % INPUT_MULTIPLE) % INPUT_MULTIPLE
            x = functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.model(x)
