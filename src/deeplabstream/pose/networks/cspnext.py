"""The CSPNeXt backbone (RTMDet's), written here with DeepLabCut 3.0's state-dict names.

Design: docs/pose-internals.md, "pose.networks.cspnext".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Activation = Literal["SiLU", "ReLU"]
Norm = Literal["SyncBN", "BN"]

SPP_KERNELS = (5, 9, 13)
BLOCK_KERNEL = 5


@dataclass(frozen=True)
class StageSpec:
    """One stage of an architecture, before the width and depth factors."""

    in_channels: int
    out_channels: int
    blocks: int
    add_identity: bool
    spp: bool


ARCHITECTURES: dict[str, tuple[StageSpec, ...]] = {
    "P5": (
        StageSpec(64, 128, 3, True, False),
        StageSpec(128, 256, 6, True, False),
        StageSpec(256, 512, 6, True, False),
        StageSpec(512, 1024, 3, False, True),
    ),
    "P6": (
        StageSpec(64, 128, 3, True, False),
        StageSpec(128, 256, 6, True, False),
        StageSpec(256, 512, 6, True, False),
        StageSpec(512, 768, 3, True, False),
        StageSpec(768, 1024, 3, False, True),
    ),
}


@dataclass(frozen=True)
class CSPNeXtConfig:
    """The settings of DeepLabCut's ``model.backbone`` for ``type: CSPNeXt``."""

    arch: str = "P5"
    deepen_factor: float = 0.33
    widen_factor: float = 0.5
    expand_ratio: float = 0.5
    channel_attention: bool = True
    norm_layer: Norm = "SyncBN"
    activation_fn: Activation = "SiLU"

    def __post_init__(self) -> None:
        """Reject what this implementation does not build."""
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r}, expected one of {sorted(ARCHITECTURES)}")
        if self.norm_layer not in ("SyncBN", "BN"):
            raise ValueError(f"norm_layer {self.norm_layer!r}, expected SyncBN or BN")
        if self.activation_fn not in ("SiLU", "ReLU"):
            raise ValueError(f"activation_fn {self.activation_fn!r}, expected SiLU or ReLU")

    @property
    def out_channels(self) -> int:
        """Channels of the last feature map."""
        return int(ARCHITECTURES[self.arch][-1].out_channels * self.widen_factor)


class ConvUnit(nn.Module):
    """Convolution (no bias), BatchNorm, activation: DeepLabCut's ``CSPConvModule``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        activation: Activation,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=False,
        )
        # SyncBatchNorm and BatchNorm2d are the same at inference and have the same names.
        self.norm = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.activate = nn.SiLU() if activation == "SiLU" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv, norm, activation."""
        return self.activate(self.norm(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """A depthwise unit (one filter per channel) then a pointwise 1x1 unit."""

    def __init__(self, in_channels: int, out_channels: int, activation: Activation) -> None:
        super().__init__()
        self.depthwise_conv = ConvUnit(
            in_channels, in_channels, BLOCK_KERNEL, activation, groups=in_channels
        )
        self.pointwise_conv = ConvUnit(in_channels, out_channels, 1, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise, then pointwise."""
        return self.pointwise_conv(self.depthwise_conv(x))


class Block(nn.Module):
    """3x3 unit, depthwise-separable 5x5, and the identity where ``add_identity``."""

    def __init__(self, channels: int, add_identity: bool, activation: Activation) -> None:
        super().__init__()
        self.conv1 = ConvUnit(channels, channels, 3, activation)
        self.conv2 = DepthwiseSeparable(channels, channels, activation)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two units, plus the input where the stage adds identities."""
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Scale each channel by hardsigmoid(1x1 conv of the channel means)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of the input by its weight."""
        weights = self.act(self.fc(x.mean(dim=(2, 3), keepdim=True)))
        return x * weights


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: a main branch through the blocks beside a short branch."""

    def __init__(
        self,
        channels: int,
        blocks: int,
        add_identity: bool,
        config: CSPNeXtConfig,
    ) -> None:
        super().__init__()
        mid = int(channels * config.expand_ratio)
        act = config.activation_fn
        self.main_conv = ConvUnit(channels, mid, 1, act)
        self.short_conv = ConvUnit(channels, mid, 1, act)
        self.final_conv = ConvUnit(2 * mid, channels, 1, act)
        self.blocks = nn.Sequential(*(Block(mid, add_identity, act) for _ in range(blocks)))
        self.attention = ChannelAttention(2 * mid) if config.channel_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both branches, concatenated main first, attention, the final 1x1 unit."""
        joined = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        if self.attention is not None:
            joined = self.attention(joined)
        return self.final_conv(joined)


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: max-pools of 5, 9 and 13 beside the input, then a 1x1 unit."""

    def __init__(self, channels: int, activation: Activation) -> None:
        super().__init__()
        mid = channels // 2
        self.conv1 = ConvUnit(channels, mid, 1, activation)
        self.poolings = nn.ModuleList(
            nn.MaxPool2d(k, stride=1, padding=k // 2) for k in SPP_KERNELS
        )
        self.conv2 = ConvUnit(mid * (len(SPP_KERNELS) + 1), channels, 1, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reduce, pool at three sizes, concatenate with the reduced input, project."""
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.poolings)], dim=1))


class CSPNeXt(nn.Module):
    """The CSPNeXt trunk; ``forward`` returns the last stage's features (stride 32)."""

    stride = 32

    def __init__(self, config: CSPNeXtConfig) -> None:
        super().__init__()
        stages = ARCHITECTURES[config.arch]
        act = config.activation_fn
        widen = config.widen_factor
        stem_half = int(stages[0].in_channels * widen // 2)
        self.stem = nn.Sequential(
            ConvUnit(3, stem_half, 3, act, stride=2),
            ConvUnit(stem_half, stem_half, 3, act),
            ConvUnit(stem_half, int(stages[0].in_channels * widen), 3, act),
        )
        self.stage_names = [f"stage{i + 1}" for i in range(len(stages))]
        for name, spec in zip(self.stage_names, stages, strict=True):
            out = int(spec.out_channels * widen)
            parts: list[nn.Module] = [ConvUnit(int(spec.in_channels * widen), out, 3, act, 2)]
            if spec.spp:
                parts.append(SPPBottleneck(out, act))
            blocks = max(round(spec.blocks * config.deepen_factor), 1)
            parts.append(CSPLayer(out, blocks, spec.add_identity, config))
            self.add_module(name, nn.Sequential(*parts))
        self.out_channels = config.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature map."""
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x
