"""DeepLabCut 3.0's network, rebuilt with DeepLabCut's state-dict names (PyTorch).

Design: docs/pose-internals.md, "pose.networks.dlc".
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.networks.cspnext import CSPNeXt, CSPNeXtConfig
from deeplabstream.pose.networks.dlc_layouts import DeconvSpec, HeadSpec
from deeplabstream.pose.networks.hrnet import DlcHRNet, hrnet_width
from deeplabstream.pose.networks.resnet import ResNet


class DeconvModule(nn.Module):
    """Transposed convolutions (ReLU between them, none after) and an optional final conv."""

    def __init__(self, spec: DeconvSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        steps = zip(spec.channels[:-1], spec.channels[1:], spec.kernels, spec.strides, strict=True)
        for number, (c_in, c_out, kernel, stride) in enumerate(steps):
            if number:
                layers.append(nn.ReLU())
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride))
        self.deconv_layers = nn.Sequential(*layers)
        self.final_conv: nn.Module = nn.Identity()
        if spec.final_conv is not None:
            self.final_conv = nn.Conv2d(spec.channels[-1], spec.final_conv[0], spec.final_conv[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deconvolutions, then the final conv."""
        return self.final_conv(self.deconv_layers(x))


class HeatmapHead(nn.Module):
    """Heatmaps and, with location refinement, their offsets."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.heatmap_head = DeconvModule(spec.heatmap)
        self.locref_head = DeconvModule(spec.locref) if spec.locref is not None else None


class TimmResNet(nn.Module):
    """DeepLabCut's ``ResNet`` backbone: a timm model under ``model``, its features out."""

    def __init__(self, depth: int, group_norm: bool, output_stride: int) -> None:
        super().__init__()
        self.model = ResNet(depth, "group" if group_norm else "batch", output_stride)
        self.stride = output_stride
        self.out_channels = self.model.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's features."""
        return self.model(x)


class DlcPoseNetwork(nn.Module):
    """DeepLabCut's ``PoseModel`` for one heatmap head: ``backbone`` and ``heads.bodypart``."""

    def __init__(self, backbone: nn.Module, head: HeadSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({"bodypart": HeatmapHead(head)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(heatmaps N x K x h x w, locref N x 2K x h x w or None)."""
        features = self.backbone(x)
        head = self.heads["bodypart"]
        locref = head.locref_head(features) if head.locref_head is not None else None
        return head.heatmap_head(features), locref


class DlcKeypointModel(nn.Module):
    """The network followed by DeepLabCut's decoding: frames in, keypoints out.

    ``forward`` returns ``(keypoints, heatmaps[, locref])``, keypoints (N, K, 3) float32 in input
    pixels; the decoding runs in float32 whatever the network's precision.
    """

    def __init__(self, network: DlcPoseNetwork, head: HeadSpec, stride: float) -> None:
        super().__init__()
        self.network = network
        self.stride = float(stride)
        self.apply_sigmoid = head.apply_sigmoid
        self.clip_scores = head.clip_scores
        self.locref_std = head.locref_std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Keypoints and the raw maps."""
        heatmaps, locref = self.network(images)
        heatmaps, locref = heatmaps.float(), None if locref is None else locref.float()
        scores = torch.sigmoid(heatmaps) if self.apply_sigmoid else heatmaps
        n, k, h, w = scores.shape
        flat = scores.reshape(n, k, h * w)
        index = flat.argmax(dim=2, keepdim=True)  # the first maximum, as torch.argmax gives
        value = flat.gather(2, index)[..., 0]
        row = torch.div(index[..., 0], w, rounding_mode="floor")
        col = index[..., 0] - row * w
        x = col.float() * self.stride + 0.5 * self.stride
        y = row.float() * self.stride + 0.5 * self.stride
        if locref is not None:
            offsets = locref.reshape(n, k, 2, h * w)
            at_peak = offsets.gather(3, index[:, :, None, :].expand(n, k, 2, 1))[..., 0]
            at_peak = at_peak * self.locref_std
            x, y = x + at_peak[..., 0], y + at_peak[..., 1]
        if self.clip_scores:
            value = value.clamp(0.0, 1.0)
        keypoints = torch.stack((x, y, value), dim=-1)
        return (keypoints, heatmaps) if locref is None else (keypoints, heatmaps, locref)


def build_backbone(section: dict[str, Any], path: Path) -> nn.Module:
    """Build the backbone of a config's ``model.backbone`` (with ``stride``, ``out_channels``)."""
    if section["type"] == "CSPNeXt":
        fields = {f.name for f in dataclasses.fields(CSPNeXtConfig)}
        out_indices = section.get("out_indices", -1)
        if out_indices not in (-1, None):
            raise ModelError(f"{path}: CSPNeXt out_indices {out_indices!r}; only -1 is supported")
        try:
            return CSPNeXt(CSPNeXtConfig(**{k: v for k, v in section.items() if k in fields}))
        except (TypeError, ValueError) as error:
            raise ModelError(f"{path}: model.backbone: {error}") from None
    name = str(section.get("model_name", ""))
    if section["type"] == "HRNet":
        width = hrnet_width(name)
        if width is None:
            raise ModelError(
                f"{path}: HRNet backbone {name!r} is not supported; expected one of timm's "
                "hrnet_w18, hrnet_w32, hrnet_w48 (hrnet_w30/40/44/64)"
            )
        if section.get("increased_channel_count"):
            raise ModelError(f"{path}: HRNet increased_channel_count is not supported")
        return DlcHRNet(width, bool(section.get("interpolate_branches")))
    match = re.fullmatch(r"resnet(\d+)(_gn)?", name)
    if not match or int(match.group(1)) not in (18, 34, 50, 101, 152):
        raise ModelError(
            f"{path}: ResNet backbone {name!r} is not supported; expected timm's resnet50_gn, "
            f"resnet101 or another plain resnetNN[_gn]"
        )
    stride = int(section.get("output_stride") or 32)
    if stride not in (8, 16, 32):
        raise ModelError(f"{path}: ResNet output_stride {stride}; expected 8, 16 or 32")
    return TimmResNet(int(match.group(1)), bool(match.group(2)), stride)
