"""DeepLabCut 3.0's ``FasterRCNN`` detector (torchvision's Faster R-CNN), its dense parts rebuilt.

Design: docs/pose-internals.md, "pose.networks.fasterrcnn".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.networks.fasterrcnn_variants import (
    MOBILENET,
    POOLED_SIZE,
    RESNET50_V2,
    ROI_MAPS,
    VARIANTS,
)
from deeplabstream.pose.networks.resnet import ResNet
from deeplabstream.pose.networks.ssdlite import ConvNormAct, InvertedResidual, _large_blocks

#: torchvision's detection builders give the backbone plain ``nn.BatchNorm2d`` (eps 1e-5).
BN_EPS = 1e-5
FPN_CHANNELS = 256
#: ``AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)``.
ANCHOR_SIZES = (32, 64, 128, 256, 512)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHORS_PER_CELL = len(ANCHOR_SIZES) * len(ASPECT_RATIOS)
#: The backbone's outputs that feed the FPN (``features`` indices), and their channels.
RETURNED = (13, 16)
RETURNED_CHANNELS = (160, 960)
#: ResNet-50's stage outputs feeding the v2 FPN (``layer1`` ... ``layer4``).
RESNET_CHANNELS = (256, 512, 1024, 2048)


def mobilenet_v3_large_features() -> nn.Sequential:
    """Torchvision's ``mobilenet_v3_large().features`` (17 modules), BatchNorm eps 1e-5."""
    blocks = _large_blocks(reduce=1)
    last = blocks[-1].c_out
    features = nn.Sequential(
        ConvNormAct(3, 16, 3, nn.Hardswish, stride=2),
        *(InvertedResidual(b) for b in blocks),
        ConvNormAct(last, 6 * last, 1, nn.Hardswish),
    )
    for module in features.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = BN_EPS
    return features


def _conv_maybe_norm(c_in: int, c_out: int, kernel: int, norm: bool) -> nn.Sequential:
    """``Conv2dNormActivation`` without activation: a biased conv, or a bias-free conv + BN."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=not norm)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out, eps=BN_EPS)) if norm else nn.Sequential(conv)


class FeaturePyramid(nn.Module):
    """Torchvision's ``FeaturePyramidNetwork`` (BatchNorm after each conv or none), max pool."""

    def __init__(
        self, in_channels: tuple[int, ...], channels: int = FPN_CHANNELS, norm: bool = False
    ) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(
            _conv_maybe_norm(c, channels, 1, norm) for c in in_channels
        )
        self.layer_blocks = nn.ModuleList(
            _conv_maybe_norm(channels, channels, 3, norm) for _ in in_channels
        )

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return the pyramid's maps, finest first, then the pooled level."""
        inner = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](inner)]
        for index in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[index](maps[index])
            top_down = functional.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            inner = lateral + top_down
            results.insert(0, self.layer_blocks[index](inner))
        results.append(functional.max_pool2d(results[-1], kernel_size=1, stride=2))
        return results


class Backbone(nn.Module):
    """``BackboneWithFPN``: ``body`` (the MobileNetV3 features) and ``fpn``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = mobilenet_v3_large_features()
        self.fpn = FeaturePyramid(RETURNED_CHANNELS)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return the FPN's maps (``0``, ``1``, ``pool``)."""
        returned = []
        x = images
        for index, module in enumerate(self.body):
            x = module(x)
            if index in RETURNED:
                returned.append(x)
        return self.fpn(returned)


class ResNetBackbone(nn.Module):
    """``BackboneWithFPN`` of ``fasterrcnn_resnet50_fpn_v2``: ResNet-50 ``body``, normed ``fpn``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ResNet(50, "batch")
        self.fpn = FeaturePyramid(RESNET_CHANNELS, norm=True)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return the FPN's maps (``0`` ... ``3``, strides 4 to 32, then ``pool``)."""
        body = self.body
        x = body.maxpool(body.relu(body.bn1(body.conv1(images))))
        returned = []
        for stage in (body.layer1, body.layer2, body.layer3, body.layer4):
            x = stage(x)
            returned.append(x)
        return self.fpn(returned)


class RpnHead(nn.Module):
    """Torchvision's ``RPNHead`` (``depth`` 3x3 conv + ReLU, then two 1x1 convs)."""

    def __init__(
        self, channels: int = FPN_CHANNELS, anchors: int = ANCHORS_PER_CELL, depth: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *(
                nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
                for _ in range(depth)
            )
        )
        self.cls_logits = nn.Conv2d(channels, anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, anchors * 4, 1)

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Objectness (N, anchors) and deltas (N, anchors, 4), torchvision's order."""
        logits, deltas = [], []
        for features in maps:
            hidden = self.conv(features)
            logits.append(_flatten_cells(self.cls_logits(hidden), 1)[..., 0])
            deltas.append(_flatten_cells(self.bbox_pred(hidden), 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


def _flatten_cells(out: torch.Tensor, columns: int) -> torch.Tensor:
    """(N, A * columns, H, W) -> (N, H * W * A, columns) (``permute_and_flatten``)."""
    n, _, h, w = out.shape
    return out.view(n, -1, columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, columns)


class Rpn(nn.Module):
    """``RegionProposalNetwork``: only its ``head`` has weights."""

    def __init__(self, head: RpnHead) -> None:
        super().__init__()
        self.head = head


class TwoMlpHead(nn.Module):
    """Torchvision's ``TwoMLPHead``."""

    def __init__(self, in_features: int, hidden: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(R, C, 7, 7) -> (R, hidden)."""
        return functional.relu(self.fc7(functional.relu(self.fc6(pooled.flatten(1)))))


class ConvFcHead(nn.Sequential):
    """Torchvision's ``FastRCNNConvFCHead`` of the v2 builder (indices are its names)."""

    def __init__(self, convs: int = 4, hidden: int = 1024) -> None:
        blocks: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, 3, padding=1, bias=False),
                nn.BatchNorm2d(FPN_CHANNELS, eps=BN_EPS),
                nn.ReLU(),
            )
            for _ in range(convs)
        ]
        flat = FPN_CHANNELS * POOLED_SIZE * POOLED_SIZE
        super().__init__(*blocks, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU())


class BoxPredictor(nn.Module):
    """Torchvision's ``FastRCNNPredictor``."""

    def __init__(self, hidden: int = 1024, classes: int = 2) -> None:
        super().__init__()
        self.cls_score = nn.Linear(hidden, classes)
        self.bbox_pred = nn.Linear(hidden, classes * 4)


class RoiHeads(nn.Module):
    """``RoIHeads``: ``box_head`` and ``box_predictor`` (the pooler has no weights)."""

    def __init__(self, box_head: nn.Module) -> None:
        super().__init__()
        self.box_head = box_head
        self.box_predictor = BoxPredictor()


class FasterRcnn(nn.Module):
    """Torchvision's ``FasterRCNN`` of one of :data:`VARIANTS` (names kept)."""

    def __init__(self, variant: str = MOBILENET) -> None:
        super().__init__()
        if variant == MOBILENET:
            self.backbone: nn.Module = Backbone()
            self.rpn = Rpn(RpnHead())
            box_head: nn.Module = TwoMlpHead(FPN_CHANNELS * POOLED_SIZE * POOLED_SIZE)
        elif variant == RESNET50_V2:
            self.backbone = ResNetBackbone()
            self.rpn = Rpn(RpnHead(anchors=len(ASPECT_RATIOS), depth=2))
            box_head = ConvFcHead()
        else:
            raise ValueError(f"no FasterRCNN variant {variant!r}; rebuilt: {', '.join(VARIANTS)}")
        self.roi_heads = RoiHeads(box_head)


class DlcFasterRcnn(nn.Module):
    """DeepLabCut's ``FasterRCNN``: the torchvision network under ``model``."""

    def __init__(self, variant: str = MOBILENET) -> None:
        super().__init__()
        self.variant = variant
        self.model = FasterRcnn(variant)


class ProposalNetwork(nn.Module):
    """Normalised, resized, padded images -> RoIAlign's map and the RPN's outputs."""

    def __init__(self, detector: DlcFasterRcnn) -> None:
        super().__init__()
        self.backbone = detector.model.backbone
        self.head = detector.model.rpn.head
        self.roi_maps = ROI_MAPS[detector.variant]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the maps RoIAlign reads (N, 256, h, w) finest first, objectness, deltas."""
        maps = self.backbone(images)
        objectness, deltas = self.head(maps)
        return (*maps[: self.roi_maps], objectness, deltas)


class BoxHead(nn.Module):
    """RoI-aligned boxes (R, 256, 7, 7) -> class logits (R, 2) and box deltas (R, 8)."""

    def __init__(self, detector: DlcFasterRcnn) -> None:
        super().__init__()
        self.box_head = detector.model.roi_heads.box_head
        self.box_predictor = detector.model.roi_heads.box_predictor

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``class_logits`` and ``box_deltas``."""
        hidden = self.box_head(pooled)
        predictor = self.box_predictor
        return predictor.cls_score(hidden), predictor.bbox_pred(hidden)


def fill_frozen_batchnorm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add ``num_batches_tracked`` where a backbone had FrozenBatchNorm2d (unused at inference)."""
    filled = dict(state_dict)
    for key in state_dict:
        if key.endswith(".running_var"):
            counter = key[: -len("running_var")] + "num_batches_tracked"
            filled.setdefault(counter, torch.zeros((), dtype=torch.long))
    return filled
