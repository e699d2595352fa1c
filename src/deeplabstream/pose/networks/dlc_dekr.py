"""DeepLabCut 3.0's DEKR head (disentangled keypoint regression), in PyTorch without torchvision.

Design: docs/pose-internals.md, "pose.networks.dlc_dekr".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.networks.dlc_layouts import DekrHeadSpec

#: DeepLabCut's DEKR predictor pools peaks over 5x5 cells (its ``pool2``).
PEAK_POOL = 5


def _final_conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    """DeepLabCut's final convolutions: padding 1 for a 3x3 kernel, else none."""
    return nn.Conv2d(c_in, c_out, kernel, stride=1, padding=1 if kernel == 3 else 0)


def _transition(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class DekrBasicBlock(nn.Module):
    """DeepLabCut's ``BasicBlock`` as the DEKR heatmap head uses it (same channels in and out)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv-BN-ReLU-conv-BN, plus the input, ReLU."""
        out = functional.relu(self.bn1(self.conv1(x)))
        return functional.relu(self.bn2(self.conv2(out)) + x)


def deformable_conv3x3(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilation: int
) -> torch.Tensor:
    """Compute torchvision's ``deform_conv2d``: 3x3 kernel, stride 1, padding = dilation, no bias.

    ``offset`` (N, 18, H, W): channels 2k, 2k + 1 are kernel point k's (row-major) row and column
    shifts; samples are bilinear, corners outside the map counting 0.
    """
    n, channels, height, width = x.shape
    rows = torch.arange(height, dtype=x.dtype, device=x.device).view(1, 1, height, 1)
    cols = torch.arange(width, dtype=x.dtype, device=x.device).view(1, 1, 1, width)
    kernel = torch.arange(-1, 2, dtype=x.dtype, device=x.device) * dilation
    kernel_rows = kernel.repeat_interleave(3).view(1, 9, 1, 1)  # -1 -1 -1 0 0 0 1 1 1
    kernel_cols = kernel.repeat(3).view(1, 9, 1, 1)  # -1 0 1 -1 0 1 -1 0 1
    at_row = rows + kernel_rows + offset[:, 0::2]  # (N, 9, H, W)
    at_col = cols + kernel_cols + offset[:, 1::2]
    # grid_sample with align_corners=True maps -1 and 1 to the centres of the first and the
    # last pixel: a position p is 2 p / (size - 1) - 1.
    grid = torch.stack(
        (at_col * (2.0 / max(width - 1, 1)) - 1.0, at_row * (2.0 / max(height - 1, 1)) - 1.0),
        dim=-1,
    )  # (N, 9, H, W, 2)
    sampled = functional.grid_sample(
        x,
        grid.reshape(n, 9 * height, width, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )  # (N, C, 9 * H, W): channel c, kernel point k at rows k * H ... (k + 1) * H
    columns = sampled.reshape(n, channels * 9, height, width)
    return functional.conv2d(columns, weight.reshape(weight.shape[0], channels * 9, 1, 1))


class DeformConvWeights(nn.Module):
    """torchvision's ``DeformConv2d`` parameters (``weight`` only: DEKR builds it without bias)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, 3, 3))


class AdaptBlock(nn.Module):
    """DeepLabCut's ``AdaptBlock``: a deformable 3x3 convolution, its points moved affinely."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        regular = torch.tensor(
            [[-1, -1, -1, 0, 0, 0, 1, 1, 1], [-1, 0, 1, -1, 0, 1, -1, 0, 1]], dtype=torch.float32
        )
        self.register_buffer("regular_matrix", regular)  # in DeepLabCut's state dict
        self.transform_matrix_conv = nn.Conv2d(channels, 4, 3, 1, 1, bias=True)
        self.translation_conv = nn.Conv2d(channels, 2, 3, 1, 1, bias=True)
        self.adapt_conv = DeformConvWeights(channels, channels)
        self.bn = nn.BatchNorm2d(channels)
        self.dilation = dilation

    def kernel_offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 18 offset channels (row, column per kernel point): ``T R - R + t``."""
        n, _, height, width = x.shape
        regular: torch.Tensor = self.regular_matrix
        matrix = self.transform_matrix_conv(x).permute(0, 2, 3, 1).reshape(n, height, width, 2, 2)
        moved = torch.matmul(matrix, regular) - regular  # (N, H, W, 2, 9): rows 0 (y) and 1 (x)
        offset = moved.transpose(3, 4).reshape(n, height, width, 18).permute(0, 3, 1, 2)
        translation = self.translation_conv(x)
        shift = translation.repeat(1, 9, 1, 1)  # channels 2k <- t_y, 2k + 1 <- t_x
        return offset + shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deformable conv, BatchNorm, plus the input, ReLU."""
        weight = self.adapt_conv.weight
        out = deformable_conv3x3(x, self.kernel_offsets(x), weight, self.dilation)
        return functional.relu(self.bn(out) + x)


class DekrHeatmap(nn.Module):
    """DeepLabCut's ``DEKRHeatmap``: K keypoint maps and the centre map (last)."""

    def __init__(self, spec: DekrHeadSpec) -> None:
        super().__init__()
        c = spec.heatmap_channels
        self.transition_heatmap = _transition(spec.in_channels, c)
        blocks = nn.Sequential(
            *(DekrBasicBlock(c, spec.heatmap_dilation) for _ in range(spec.heatmap_blocks))
        )
        final = _final_conv(c, spec.keypoints + 1, spec.heatmap_kernel)
        self.head_heatmap = nn.ModuleList([blocks, final])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K + 1, h, w)."""
        blocks, final = self.head_heatmap
        return final(blocks(self.transition_heatmap(x)))


class DekrOffset(nn.Module):
    """DeepLabCut's ``DEKROffset``: each keypoint's offset from the centre, by its own branch."""

    def __init__(self, spec: DekrHeadSpec) -> None:
        super().__init__()
        per = spec.offsets_per_keypoint
        self.per_keypoint = per
        self.transition_offset = _transition(spec.in_channels, per * spec.keypoints)
        self.offset_feature_layers = nn.ModuleList(
            nn.Sequential(
                *(AdaptBlock(per, spec.offset_dilation) for _ in range(spec.offset_blocks))
            )
            for _ in range(spec.keypoints)
        )
        self.offset_final_layer = nn.ModuleList(
            _final_conv(per, 2, spec.offset_kernel) for _ in range(spec.keypoints)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2K, h, w): channels 2k, 2k + 1 the x, y offset of keypoint k."""
        features = self.transition_offset(x)
        per = self.per_keypoint
        branches = zip(self.offset_feature_layers, self.offset_final_layer, strict=True)
        return torch.cat(
            [
                final(blocks(features[:, k * per : (k + 1) * per]))
                for k, (blocks, final) in enumerate(branches)
            ],
            dim=1,
        )


class DekrHead(nn.Module):
    """DeepLabCut's ``DEKRHead``: ``heatmap_head`` and ``offset_head``."""

    def __init__(self, spec: DekrHeadSpec) -> None:
        super().__init__()
        self.heatmap_head = DekrHeatmap(spec)
        self.offset_head = DekrOffset(spec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(heatmaps N x (K + 1), offsets N x 2K), at the backbone's stride."""
        return self.heatmap_head(x), self.offset_head(x)


class DlcDekrNetwork(nn.Module):
    """DeepLabCut's ``PoseModel`` with a ``DEKRHead``: ``backbone`` and ``heads.bodypart``."""

    def __init__(self, backbone: nn.Module, head: DekrHeadSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({"bodypart": DekrHead(head)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the head's two outputs."""
        head: DekrHead = self.heads["bodypart"]
        return head(self.backbone(x))


def local_maxima(maps: torch.Tensor) -> torch.Tensor:
    """Keep ``maps`` where a cell equals its 5x5 neighbourhood's maximum, else 0 (as DeepLabCut)."""
    pooled = functional.max_pool2d(maps, PEAK_POOL, stride=1, padding=PEAK_POOL // 2)
    return maps * torch.eq(pooled, maps).float()


class DlcDekrKeypointModel(nn.Module):
    """The network and DeepLabCut's per-cell DEKR predictor steps: frames in, maps out.

    ``forward`` returns float32 ``heatmaps`` (N, K + 1, h, w; the centre map last), ``peaks`` (the
    same at 5x5 local maxima only) and ``offsets`` (N, 2K, h, w) in heatmap cells.
    """

    def __init__(self, network: DlcDekrNetwork, *, stride: float, apply_sigmoid: bool) -> None:
        super().__init__()
        self.network = network
        self.stride = float(stride)
        self.apply_sigmoid = apply_sigmoid

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heatmaps, their peaks, offsets."""
        heatmaps, offsets = self.network(images)
        heatmaps, offsets = heatmaps.float(), offsets.float()
        if self.apply_sigmoid:
            heatmaps = torch.sigmoid(heatmaps)
        return heatmaps, local_maxima(heatmaps), offsets
