"""DeepLabCut 3.0's head layouts, as the formats read them from an export's config; no torch.

Kept apart from the networks that build them so that reading a config needs no ``torch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DeconvSpec:
    """One DeepLabCut ``DeconvModule``: transposed convolutions and an optional 1x1-ish conv."""

    channels: tuple[int, ...]  # the input's, then each transposed convolution's output
    kernels: tuple[int, ...]  # of each transposed convolution
    strides: tuple[int, ...]  # of each transposed convolution
    final_conv: tuple[int, int] | None  # (out_channels, kernel_size), or None

    @property
    def stride(self) -> int:
        """Upsampling factor of the module."""
        return math.prod(self.strides)


@dataclass(frozen=True)
class HeadSpec:
    """DeepLabCut's ``HeatmapHead`` and its ``HeatmapPredictor`` settings."""

    heatmap: DeconvSpec
    locref: DeconvSpec | None  # the location-refinement branch (None: no refinement)
    apply_sigmoid: bool  # the predictor applies a sigmoid to the heatmaps
    clip_scores: bool  # the predictor clips likelihoods to [0, 1]
    locref_std: float  # the scale of the location-refinement offsets


@dataclass(frozen=True)
class PafHeadSpec:
    """The ``DLCRNetHead`` layout, with input channels as DeepLabCut builds them."""

    heatmap: DeconvSpec  # the final heatmap DeconvModule
    locref: DeconvSpec  # the final location-refinement DeconvModule
    paf: DeconvSpec  # the final part-affinity-field DeconvModule
    num_stages: int  # refinement stages (0: the heads take the backbone's features)
    features_dim: int  # channels of convt4's features

    @property
    def stride(self) -> int:
        """The head's upsampling: its deconvolutions, and one more with refinement stages."""
        return self.heatmap.stride * (2 if self.num_stages > 0 else 1)


@dataclass(frozen=True)
class DekrHeadSpec:
    """The ``DEKRHead`` layout of an export (read by :mod:`pose.formats.dlc3_dekr`)."""

    in_channels: int  # of the backbone's features
    heatmap_channels: int  # after transition_heatmap
    heatmap_blocks: int  # basic blocks of the heatmap head
    heatmap_dilation: int  # of the heatmap head's blocks
    heatmap_kernel: int  # of the heatmap head's final convolution (1 or 3)
    keypoints: int  # K: the heatmap head gives K + 1 maps, the offsets 2K
    offsets_per_keypoint: int  # channels of each keypoint's regression branch
    offset_blocks: int  # adaptive blocks of each keypoint's branch
    offset_dilation: int  # of the adaptive blocks
    offset_kernel: int  # of each branch's final convolution (1 or 3)
