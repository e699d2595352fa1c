"""Lightning Pose's ``HeatmapTracker`` network, rebuilt with its state-dict names (PyTorch).

A ResNet trunk, ``head.upsampling_layers`` and a spatial softmax over each map.
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


def upsampling_layers(
    channels: int, keypoints: int, stride: int, downsample_factor: int
) -> nn.Sequential:
    """``upsampling_layers`` of Lightning Pose's ``HeatmapHead`` for any backbone stride."""
    count = int(np.log2(stride)) - downsample_factor - 1
    if count < 1:
        raise ModelError(
            f"downsample_factor {downsample_factor} with a stride-{stride} backbone leaves no "
            "upsampling layer (Lightning Pose cannot build that head either)"
        )
    layers: list[nn.Module] = [nn.PixelShuffle(2)]
    in_channels = channels // 4
    for _ in range(count):
        layers.append(_upsampling_convolution(in_channels, keypoints))
        in_channels = keypoints
    return nn.Sequential(*layers)


def upsampling_convolutions(downsample_factor: int) -> int:
    """Transposed convolutions after the PixelShuffle for a stride-32 backbone."""
    count = int(np.log2(BACKBONE_STRIDE)) - 1 - downsample_factor
    if count < 1:
        raise ModelError(f"downsample_factor {downsample_factor} is not supported (1 to 3 are)")
    return count


# --- the temporal-context model (``model_type: heatmap_mhcrnn``) ---------------------------------

CONTEXT_FRAMES = 5  # Lightning Pose's context: frames t-2, t-1, t, t+1, t+2
CENTRE = CONTEXT_FRAMES // 2
# Backbone stride -> the multi-frame head's ``upsampling_factor``: Lightning Pose adds ``W_pre``
# (one more doubling before the recurrence) for stride-32 backbones only.
CONTEXT_STRIDES = {32: 2, 16: 1}


class UpsamplingCRNN(nn.Module):
    """Lightning Pose's ``UpsamplingCRNN`` (its multi-frame head) with its state-dict names.

    A stride-16 backbone (``upsampling_factor`` 1, the ViTs) has no ``W_pre``. The modules are also
    in ``layers``, as Lightning Pose registers them, so the checkpoint names each weight twice.
    """

    def __init__(
        self, in_channels: int, keypoints: int, upsampling_factor: int = 2, filters: int = 16
    ) -> None:
        super().__init__()
        self.upsampling_factor = upsampling_factor
        self.pixel_shuffle = nn.PixelShuffle(2)
        rnn_channels = in_channels // 4
        if upsampling_factor == 2:
            self.W_pre = _upsampling_convolution(in_channels // 4, keypoints)
            rnn_channels = keypoints
        self.W_f = _upsampling_convolution(rnn_channels, keypoints)
        self.H_f = _recurrence(keypoints, filters)
        self.W_b = _upsampling_convolution(rnn_channels, keypoints)
        self.H_b = _recurrence(keypoints, filters)
        modules = [self.W_f, self.H_f, self.W_b, self.H_b]
        self.layers = nn.ModuleList(([self.W_pre] if upsampling_factor == 2 else []) + modules)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """One soft-maxed heatmap per keypoint of the centre frame, from each frame's features."""
        frames = [self.pixel_shuffle(f) for f in features]
        if self.upsampling_factor == 2:
            frames = [self.W_pre(f) for f in frames]
        forward = self.W_f(frames[0])
        for frame in frames[1:]:
            forward = self.W_f(frame) + self.H_f(forward)
        backward = self.W_b(frames[-1])
        for frame in reversed(frames[:-1]):
            backward = self.W_b(frame) + self.H_b(backward)
        return spatial_softmax((forward + backward) / 2)


def _upsampling_convolution(channels: int, keypoints: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, keypoints, 3, stride=2, padding=1, output_padding=1)


def _recurrence(keypoints: int, filters: int) -> nn.Sequential:
    """``H_f`` / ``H_b``: a grouped 2x2 convolution down and a grouped 2x2 transposed one up."""
    return nn.Sequential(
        nn.Conv2d(keypoints, keypoints * filters, 2, stride=2, groups=keypoints),
        nn.ConvTranspose2d(keypoints * filters, keypoints, 2, stride=2, groups=keypoints),
    )


def spatial_softmax(maps: torch.Tensor) -> torch.Tensor:
    """Softmax over each (h, w) map of (N, K, h, w), in float32."""
    n, k, h, w = maps.shape
    return torch.softmax(maps.float().reshape(n, k, h * w), dim=2).reshape(n, k, h, w)


class HeatmapTrackerMHCRNN(nn.Module):
    """Lightning Pose's ``HeatmapTrackerMHCRNN`` at inference, with its state-dict names.

    ``forward`` takes (N, 5, 3, H, W) frames t-2 .. t+2 and returns the centre frame's single- and
    multi-frame heatmaps, soft-maxed; :meth:`features` and :class:`ContextHeads` split it.
    """

    def __init__(
        self,
        backbone: nn.Module,
        channels: int,
        stride: int,
        keypoints: int,
        downsample_factor: int,
    ) -> None:
        super().__init__()
        if downsample_factor != 2:
            raise ModelError(
                f"a context model with downsample_factor {downsample_factor}: Lightning Pose "
                "builds them with 2 only"
            )
        if stride not in CONTEXT_STRIDES:
            raise ModelError(f"a context model with a stride-{stride} backbone (16 or 32 only)")
        self.backbone = backbone
        self.head = nn.Module()
        self.head.head_sf = nn.Module()
        self.head.head_sf.upsampling_layers = upsampling_layers(
            channels, keypoints, stride, downsample_factor
        )
        self.head.head_mf = UpsamplingCRNN(
            channels, keypoints, upsampling_factor=CONTEXT_STRIDES[stride]
        )

    @classmethod
    def with_resnet(
        cls, depth: int, keypoints: int, downsample_factor: int
    ) -> HeatmapTrackerMHCRNN:
        """Build a context tracker on a torchvision-named ResNet trunk (stride 32)."""
        trunk = ResNet(depth, "batch", BACKBONE_STRIDE)
        return cls(
            trunk.as_sequential(), trunk.out_channels, BACKBONE_STRIDE, keypoints, downsample_factor
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) backbone features of (N, 3, H, W) images."""
        return self.backbone(images)

    def heads(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-frame and multi-frame heatmaps from the five frames' features."""
        single = spatial_softmax(self.head.head_sf.upsampling_layers(features[CENTRE]))
        return single, self.head.head_mf(features)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(single-frame, multi-frame) heatmaps of the centre frames of (N, 5, 3, H, W)."""
        n, t, c, h, w = frames.shape
        features = self.features(frames.reshape(n * t, c, h, w))
        features = features.reshape(n, t, *features.shape[1:])
        return self.heads([features[:, i] for i in range(t)])


class ContextBackbone(nn.Module):
    """The backbone of a context model alone: (N, 3, H, W) images -> (N, C, h, w) features."""

    def __init__(self, tracker: HeatmapTrackerMHCRNN) -> None:
        super().__init__()
        self.tracker = tracker

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Each image's features."""
        return self.tracker.features(images)


class ContextHeads(nn.Module):
    """The heads of a context model on (N, 5 * C, h, w) features of frames t-2 .. t+2, in order."""

    def __init__(self, tracker: HeatmapTrackerMHCRNN) -> None:
        super().__init__()
        self.tracker = tracker

    def forward(self, stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(single-frame, multi-frame) heatmaps."""
        return self.tracker.heads(list(torch.chunk(stacked, CONTEXT_FRAMES, dim=1)))
