"""DeepLabCut 3.0's DLCRNet backbone: a ResNet with multi-scale fusion (PyTorch).

Design: docs/pose-internals.md, "pose.networks.dlcrnet".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.networks.resnet import NormKind, ResNet

#: Channels each fused bank adds to the ResNet's features.
BANK_CHANNELS = 128
#: The block of ``layer1`` and ``layer2`` whose output DeepLabCut takes as a bank.
BANK_BLOCK = 2


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    """Convolution (no padding) + BatchNorm + ReLU, with DeepLabCut's state-dict indices."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def resize_bilinear_antialiased(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize ``x`` to ``like``'s height and width as torchvision's tensor ``resize`` does."""
    return functional.interpolate(
        x, size=like.shape[-2:], mode="bilinear", align_corners=False, antialias=True
    )


class DlcrnetBackbone(nn.Module):
    """DeepLabCut's ``DLCRNet`` backbone: ``model`` (the ResNet) and five fusion blocks."""

    def __init__(self, depth: int, norm: NormKind, output_stride: int) -> None:
        super().__init__()
        self.model = ResNet(depth, norm, output_stride)
        if not self.model.spec.bottleneck or min(self.model.spec.blocks[:2]) <= BANK_BLOCK:
            raise ValueError(f"DLCRNet needs a bottleneck ResNet (50 and up), not {depth}")
        self.stride = output_stride
        self.conv_block1 = _conv_block(512, 512, 3, 2)
        self.conv_block2 = _conv_block(512, BANK_CHANNELS, 1, 1)
        self.conv_block3 = _conv_block(256, 256, 3, 2)
        self.conv_block4 = _conv_block(256, 256, 3, 2)
        self.conv_block5 = _conv_block(256, BANK_CHANNELS, 1, 1)
        self.out_channels = self.model.out_channels + 2 * BANK_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``cat(bank 1, bank 2, last features)`` at the output stride."""
        resnet = self.model
        x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        bank1 = _through_block(resnet.layer1, x, BANK_BLOCK)
        bank1_out = _after_block(resnet.layer1, bank1, BANK_BLOCK)
        bank2 = _through_block(resnet.layer2, bank1_out, BANK_BLOCK)
        features = resnet.layer4(resnet.layer3(_after_block(resnet.layer2, bank2, BANK_BLOCK)))
        fused2 = self.conv_block2(self.conv_block1(bank2))
        fused1 = self.conv_block5(self.conv_block4(self.conv_block3(bank1)))
        fused1 = resize_bilinear_antialiased(fused1, features)
        fused2 = resize_bilinear_antialiased(fused2, features)
        return torch.cat((fused1, fused2, features), dim=1)


def _through_block(stage: nn.Module, x: torch.Tensor, last: int) -> torch.Tensor:
    """Run a stage's blocks 0 .. ``last`` (the output DeepLabCut's forward hook takes)."""
    assert isinstance(stage, nn.Sequential)
    for block in list(stage)[: last + 1]:
        x = block(x)
    return x


def _after_block(stage: nn.Module, x: torch.Tensor, last: int) -> torch.Tensor:
    assert isinstance(stage, nn.Sequential)
    for block in list(stage)[last + 1 :]:
        x = block(x)
    return x
