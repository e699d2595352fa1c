"""DeepLabCut 3.0's RTMPose pose network (CSPNeXt + ``RTMCCHead``), with DeepLabCut's names.

Design: docs/pose-internals.md, "pose.networks.rtmpose".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class RtmccLayout:
    """The head's settings (``model.heads.bodypart`` of the export's config)."""

    input_size: tuple[int, int]  # (width, height) of the crop, as DeepLabCut writes it
    in_channels: int
    keypoints: int
    featuremap_size: tuple[int, int]  # (width, height) of the backbone's output
    split_ratio: float
    final_kernel: int
    hidden_dims: int
    s: int
    expansion_factor: float
    use_rel_bias: bool
    pos_enc: bool
    activation: str
    # SimCCPredictor
    sigma: tuple[float, float]
    decode_beta: float
    apply_softmax: bool
    normalize_outputs: bool


class ScaleNorm(nn.Module):
    """``x / max(||x|| / sqrt(dim), eps) * g`` over the last axis."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each token."""
        norm = torch.linalg.norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class ResidualScale(nn.Module):
    """A learnt per-channel scale (DeepLabCut's ``Scale``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels."""
        return x * self.scale


class GatedAttentionUnit(nn.Module):
    """DeepLabCut's ``GatedAttentionUnit`` in its self-attention form."""

    def __init__(self, layout: RtmccLayout) -> None:
        super().__init__()
        dims = layout.hidden_dims
        self.s = layout.s
        self.e = int(dims * layout.expansion_factor)
        self.use_rel_bias = layout.use_rel_bias
        self.pos_enc = layout.pos_enc
        if layout.use_rel_bias:
            self.w = nn.Parameter(torch.zeros(2 * layout.keypoints - 1))
        self.o = nn.Linear(self.e, dims, bias=False)
        self.uv = nn.Linear(dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.zeros(2, self.s))
        self.beta = nn.Parameter(torch.zeros(2, self.s))
        self.ln = ScaleNorm(dims)
        self.act: nn.Module = nn.SiLU() if layout.activation == "SiLU" else nn.ReLU()
        self.res_scale = ResidualScale(dims)
        self.sqrt_s = math.sqrt(self.s)

    def _relative_bias(self, tokens: int) -> torch.Tensor:
        """DeepLabCut's ``rel_pos_bias`` for self-attention: bias[i, j] = w[j - i + K - 1]."""
        t = functional.pad(self.w[: 2 * tokens - 1], [0, tokens]).repeat(tokens)
        t = t[..., :-tokens].reshape(-1, tokens, 3 * tokens - 2)
        r = (2 * tokens - 1) // 2
        return t[..., r:-r]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention over the keypoint tokens, plus the scaled input."""
        shortcut = x
        uv = self.act(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta
        if self.pos_enc:
            raise NotImplementedError("checked at load: pos_enc is refused")
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))
        if self.use_rel_bias:
            tokens = q.size(1)
            qk = qk + self._relative_bias(tokens)[:, :tokens, :tokens]
        kernel = torch.square(functional.relu(qk / self.sqrt_s))
        out = self.o(u * torch.bmm(kernel, v))
        return self.res_scale(shortcut) + out


class RtmccHead(nn.Module):
    """DeepLabCut's ``RTMCCHead``: features -> (x logits (N, K, W*r), y logits (N, K, H*r))."""

    def __init__(self, layout: RtmccLayout) -> None:
        super().__init__()
        fw, fh = layout.featuremap_size
        width, height = layout.input_size
        self.final_layer = nn.Conv2d(
            layout.in_channels,
            layout.keypoints,
            layout.final_kernel,
            padding=layout.final_kernel // 2,
        )
        self.mlp = nn.Sequential(
            ScaleNorm(fw * fh), nn.Linear(fw * fh, layout.hidden_dims, bias=False)
        )
        self.gau = GatedAttentionUnit(layout)
        self.cls_x = nn.Linear(layout.hidden_dims, int(width * layout.split_ratio), bias=False)
        self.cls_y = nn.Linear(layout.hidden_dims, int(height * layout.split_ratio), bias=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SimCC logits along x and y."""
        tokens = self.gau(self.mlp(torch.flatten(self.final_layer(features), start_dim=2)))
        return self.cls_x(tokens), self.cls_y(tokens)


class RtmPoseNetwork(nn.Module):
    """DeepLabCut's ``PoseModel`` for RTMPose: ``backbone`` and ``heads.bodypart``."""

    def __init__(self, backbone: nn.Module, layout: RtmccLayout) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({"bodypart": RtmccHead(layout)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SimCC logits of the crops."""
        head: RtmccHead = self.heads["bodypart"]
        return head(self.backbone(x))


class RtmPoseKeypoints(nn.Module):
    """The network followed by DeepLabCut's ``SimCCPredictor``: crops in, keypoints out.

    ``forward`` returns ``(keypoints, simcc_x, simcc_y)``: (N, K, 3) in crop pixels, raw logits.
    """

    def __init__(self, network: RtmPoseNetwork, layout: RtmccLayout) -> None:
        super().__init__()
        self.network = network
        self.split_ratio = float(layout.split_ratio)
        self.scale_x = float(layout.sigma[0] * layout.decode_beta)
        self.scale_y = float(layout.sigma[1] * layout.decode_beta)
        self.apply_softmax = layout.apply_softmax

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keypoints of each crop, and the raw SimCC logits."""
        logits_x, logits_y = self.network(crops)
        logits_x, logits_y = logits_x.float(), logits_y.float()
        x, y = logits_x * self.scale_x, logits_y * self.scale_y
        if self.apply_softmax:
            x = torch.softmax(x, dim=-1)
            y = torch.softmax(y, dim=-1)
        value_x, index_x = x.max(dim=-1)
        value_y, index_y = y.max(dim=-1)
        score = torch.minimum(value_x, value_y)
        threshold = 1.0 / x.shape[-1] if self.apply_softmax else 0.0
        lost = score <= threshold
        minus_one = torch.full_like(score, -1.0)
        px = torch.where(lost, minus_one, index_x.float()) / self.split_ratio
        py = torch.where(lost, minus_one, index_y.float()) / self.split_ratio
        return torch.stack((px, py, score), dim=-1), logits_x, logits_y
