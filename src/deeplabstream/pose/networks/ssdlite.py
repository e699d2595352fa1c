"""DeepLabCut 3.0's ``SSDLite`` detector (torchvision's SSDlite320 MobileNetV3-Large), rebuilt.

Design: docs/pose-internals.md, "pose.networks.ssdlite".
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

SIZE = 320
BN_EPS = 0.001
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BOX_CLIP = math.log(1000.0 / 16)


@dataclass(frozen=True)
class Bneck:
    """One inverted-residual block of MobileNetV3 (torchvision's ``InvertedResidualConfig``)."""

    c_in: int
    kernel: int
    expanded: int
    c_out: int
    se: bool
    hardswish: bool
    stride: int


def _large_blocks(reduce: int) -> tuple[Bneck, ...]:
    """MobileNetV3-Large's blocks (``reduce`` 2: the reduced tail)."""
    return (
        Bneck(16, 3, 16, 16, False, False, 1),
        Bneck(16, 3, 64, 24, False, False, 2),
        Bneck(24, 3, 72, 24, False, False, 1),
        Bneck(24, 5, 72, 40, True, False, 2),
        Bneck(40, 5, 120, 40, True, False, 1),
        Bneck(40, 5, 120, 40, True, False, 1),
        Bneck(40, 3, 240, 80, False, True, 2),
        Bneck(80, 3, 200, 80, False, True, 1),
        Bneck(80, 3, 184, 80, False, True, 1),
        Bneck(80, 3, 184, 80, False, True, 1),
        Bneck(80, 3, 480, 112, True, True, 1),
        Bneck(112, 3, 672, 112, True, True, 1),
        Bneck(112, 5, 672, 160 // reduce, True, True, 2),
        Bneck(160 // reduce, 5, 960 // reduce, 160 // reduce, True, True, 1),
        Bneck(160 // reduce, 5, 960 // reduce, 160 // reduce, True, True, 1),
    )


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Torchvision's ``_make_divisible``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvNormAct(nn.Sequential):
    """Torchvision's ``Conv2dNormActivation``: conv (no bias), BatchNorm, optional activation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        activation: type[nn.Module] | None,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Torchvision's ``SqueezeExcitation`` with a hard sigmoid (MobileNetV3's)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels by a gate of their means."""
        scale = x.mean(dim=(2, 3), keepdim=True)
        scale = functional.hardsigmoid(self.fc2(functional.relu(self.fc1(scale))))
        return scale * x


def _block_layers(spec: Bneck) -> list[nn.Module]:
    """Return the layers of one inverted residual (``InvertedResidual.block``)."""
    act: type[nn.Module] = nn.Hardswish if spec.hardswish else nn.ReLU
    layers: list[nn.Module] = []
    if spec.expanded != spec.c_in:
        layers.append(ConvNormAct(spec.c_in, spec.expanded, 1, act))
    layers.append(
        ConvNormAct(spec.expanded, spec.expanded, spec.kernel, act, spec.stride, spec.expanded)
    )
    if spec.se:
        layers.append(SqueezeExcitation(spec.expanded, _make_divisible(spec.expanded // 4, 8)))
    layers.append(ConvNormAct(spec.expanded, spec.c_out, 1, None))
    return layers


class InvertedResidual(nn.Module):
    """MobileNetV3's block, with the residual where the shape is kept."""

    def __init__(self, spec: Bneck, layers: Sequence[nn.Module] | None = None) -> None:
        super().__init__()
        self.block = nn.Sequential(*(layers if layers is not None else _block_layers(spec)))
        self.residual = spec.stride == 1 and spec.c_in == spec.c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the block, plus its input where the shape is kept."""
        out = self.block(x)
        return out + x if self.residual else out


def _extra_block(c_in: int, c_out: int) -> nn.Sequential:
    mid = c_out // 2
    return nn.Sequential(
        ConvNormAct(c_in, mid, 1, nn.ReLU6),
        ConvNormAct(mid, mid, 3, nn.ReLU6, stride=2, groups=mid),
        ConvNormAct(mid, c_out, 1, nn.ReLU6),
    )


class FeatureExtractor(nn.Module):
    """``SSDLiteFeatureExtractorMobileNet``: ``features`` (two parts) and ``extra``."""

    def __init__(self) -> None:
        super().__init__()
        blocks = _large_blocks(reduce=2)
        stem = ConvNormAct(3, 16, 3, nn.Hardswish, stride=2)
        trunk: list[nn.Module] = [stem, *(InvertedResidual(b) for b in blocks[:12])]
        c4 = _block_layers(blocks[12])  # expansion, depthwise, SE, projection
        last = blocks[-1].c_out
        tail: list[nn.Module] = [
            # torchvision keeps it as ``block[1:]``, a slice that keeps the names 1, 2, 3.
            nn.Sequential(OrderedDict((str(i), layer) for i, layer in enumerate(c4) if i)),
            InvertedResidual(blocks[13]),
            InvertedResidual(blocks[14]),
            ConvNormAct(last, 6 * last, 1, nn.Hardswish),
        ]
        self.features = nn.Sequential(nn.Sequential(*trunk, c4[0]), nn.Sequential(*tail))
        self.extra = nn.ModuleList(
            [
                _extra_block(6 * last, 512),
                _extra_block(512, 256),
                _extra_block(256, 256),
                _extra_block(256, 128),
            ]
        )
        self.out_channels = (672, 6 * last, 512, 256, 256, 128)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the six feature maps."""
        maps = []
        for part in self.features:
            x = part(x)
            maps.append(x)
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return maps


class ScoringHead(nn.Module):
    """``SSDScoringHead``: one prediction block per map, results flattened per default box."""

    def __init__(self, channels: Sequence[int], anchors: int, columns: int) -> None:
        super().__init__()
        self.columns = columns
        self.module_list = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(c, c, 3, nn.ReLU6, groups=c), nn.Conv2d(c, columns * anchors, 1)
            )
            for c in channels
        )

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, boxes, columns) over all maps, in torchvision's order (cell, then box)."""
        results = []
        for module, features in zip(self.module_list, maps, strict=True):
            out = module(features)
            n, _, h, w = out.shape
            out = out.view(n, -1, self.columns, h, w).permute(0, 3, 4, 1, 2)
            results.append(out.reshape(n, -1, self.columns))
        return torch.cat(results, dim=1)


class SsdLiteHead(nn.Module):
    """``SSDLiteHead``: classification and regression heads."""

    def __init__(self, channels: Sequence[int], anchors: int, classes: int) -> None:
        super().__init__()
        self.classification_head = ScoringHead(channels, anchors, classes)
        self.regression_head = ScoringHead(channels, anchors, 4)


def default_boxes(grid_sizes: Sequence[int], size: int = SIZE) -> torch.Tensor:
    """Torchvision's ``DefaultBoxGenerator([[2, 3]] * 6, 0.2, 0.95)`` boxes, x1 y1 x2 y2 pixels."""
    count = len(grid_sizes)
    scales = [0.2 + (0.95 - 0.2) * k / (count - 1.0) for k in range(count)] + [1.0]
    boxes = []
    for k, cells in enumerate(grid_sizes):
        s_k = scales[k]
        s_prime = math.sqrt(scales[k] * scales[k + 1])
        pairs = [[s_k, s_k], [s_prime, s_prime]]
        for ratio in (2, 3):
            root = math.sqrt(ratio)
            pairs.extend([[s_k * root, s_k / root], [s_k / root, s_k * root]])
        wh = torch.as_tensor(pairs, dtype=torch.float32).clamp(min=0, max=1)
        shifts = ((torch.arange(0, cells) + 0.5) / cells).to(torch.float32)
        shift_y, shift_x = torch.meshgrid(shifts, shifts, indexing="ij")
        centres = torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)) * len(pairs), dim=-1)
        centres = centres.reshape(-1, 2)
        boxes.append(torch.cat((centres, wh.repeat(cells * cells, 1)), dim=1))
    anchors = torch.cat(boxes, dim=0)
    scale = torch.tensor([size, size])
    return torch.cat(
        [
            (anchors[:, :2] - 0.5 * anchors[:, 2:]) * scale,
            (anchors[:, :2] + 0.5 * anchors[:, 2:]) * scale,
        ],
        -1,
    )


class SsdLite(nn.Module):
    """Torchvision's ``SSD`` as built by ``ssdlite320_mobilenet_v3_large`` (names kept)."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.backbone = FeatureExtractor()
        self.head = SsdLiteHead(self.backbone.out_channels, 6, classes)
        grids = (20, 10, 5, 3, 2, 1)
        self.register_buffer("anchors", default_boxes(grids), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the boxes (N, B, 4) in 320 x 320 pixels, clipped, and class scores (N, B, C)."""
        maps = self.backbone(images)
        regression = self.head.regression_head(maps)
        logits = self.head.classification_head(maps)
        return decode_boxes(regression, self.anchors), torch.softmax(logits, dim=-1)


def decode_boxes(codes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Torchvision's ``BoxCoder.decode_single`` (weights 10, 10, 5, 5) and ``clip_boxes``."""
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    wx, wy, ww, wh = BOX_WEIGHTS
    dx, dy = codes[..., 0] / wx, codes[..., 1] / wy
    dw = torch.clamp(codes[..., 2] / ww, max=BOX_CLIP)
    dh = torch.clamp(codes[..., 3] / wh, max=BOX_CLIP)
    pred_x = dx * widths + ctr_x
    pred_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    boxes = torch.stack((pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h), -1)
    return boxes.clamp(min=0.0, max=float(SIZE))


class DlcSsdLite(nn.Module):
    """DeepLabCut's ``SSDLite``: the torchvision network under ``model``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = SsdLite()


class TopBoxDetector(nn.Module):
    """Frames (ImageNet-normalised, any size) -> the best box in frame pixels and its score."""

    def __init__(self, detector: DlcSsdLite) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``boxes`` (N, 4) x1, y1, x2, y2 in frame pixels and ``scores`` (N,)."""
        height, width = frames.shape[-2], frames.shape[-1]
        x = (frames - 0.5) / 0.5
        x = functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        boxes, scores = self.detector.model(x)
        animal = scores[..., 1]
        best = animal.argmax(dim=1, keepdim=True)  # the first maximum, as NMS keeps it first
        score = animal.gather(1, best)[:, 0]
        box = boxes.gather(1, best[..., None].expand(-1, -1, 4))[:, 0]
        ratio_w = torch.tensor(1.0) * width / SIZE
        ratio_h = torch.tensor(1.0) * height / SIZE
        scale = torch.stack((ratio_w, ratio_h, ratio_w, ratio_h)).to(box.dtype)
        return box * scale, score


class AllBoxesDetector(nn.Module):
    """Frames (ImageNet-normalised, any size) -> every default box and its animal score.

    ``boxes`` (N, 3234, 4) x1, y1, x2, y2 in 320 x 320 pixels and ``scores`` (N, 3234).
    """

    def __init__(self, detector: DlcSsdLite) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``boxes`` (N, B, 4) in 320 x 320 pixels and ``scores`` (N, B)."""
        x = (frames - 0.5) / 0.5
        x = functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        boxes, scores = self.detector.model(x)
        return boxes, scores[..., 1]
