"""DeepLabCut 3.0's multi-animal bottom-up network with part-affinity fields (PyTorch).

Design: docs/pose-internals.md, "pose.networks.dlc_paf".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.networks.dlc import DeconvModule
from deeplabstream.pose.networks.dlc_layouts import DeconvSpec, PafHeadSpec


def _double_size(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """DeepLabCut's "same padding" transposed convolution: exactly twice the size."""
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)


class DlcrnetHead(nn.Module):
    """DeepLabCut's ``DLCRNetHead``: heatmaps, location refinement and part-affinity fields."""

    def __init__(self, spec: PafHeadSpec, in_channels: int) -> None:
        super().__init__()
        keypoints = spec.heatmap.channels[-1]
        fields = spec.paf.channels[-1]
        self.num_stages = spec.num_stages
        self.heatmap_head = DeconvModule(spec.heatmap)
        self.locref_head = DeconvModule(spec.locref)
        self.paf_head = DeconvModule(spec.paf)
        if self.num_stages > 0:
            stage_channels = spec.features_dim + keypoints + fields
            self.convt1 = _double_size(in_channels, keypoints)
            self.convt2 = _double_size(in_channels, spec.locref.channels[-1])
            self.convt3 = _double_size(in_channels, fields)
            self.convt4 = _double_size(in_channels, spec.features_dim)
            self.hm_ref_layers = nn.ModuleList(
                nn.Conv2d(stage_channels, keypoints, 3, padding=1) for _ in range(self.num_stages)
            )
            self.paf_ref_layers = nn.ModuleList(
                nn.Conv2d(stage_channels, fields, 3, padding=1) for _ in range(self.num_stages)
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(heatmap logits N x K, locref N x 2K, fields N x 2E), all at the head's stride."""
        if self.num_stages == 0:
            return self.heatmap_head(x), self.locref_head(x), self.paf_head(x)
        heatmaps, fields, features = self.convt1(x), self.convt3(x), self.convt4(x)
        stage_in = torch.cat((heatmaps, fields, features), dim=1)
        for i, (to_heatmaps, to_fields) in enumerate(
            zip(self.hm_ref_layers, self.paf_ref_layers, strict=True)
        ):
            previous = heatmaps
            heatmaps = to_heatmaps(stage_in)
            fields = to_fields(stage_in)
            if i > 0:
                heatmaps = heatmaps + previous
            stage_in = torch.cat((heatmaps, fields, features), dim=1)
        return (
            self.heatmap_head(stage_in),
            self.locref_head(self.convt2(x)),
            self.paf_head(stage_in),
        )


class IdentityHead(nn.Module):
    """DeepLabCut's identity ``HeatmapHead`` (``heads.identity``): one map per individual."""

    def __init__(self, spec: DeconvSpec) -> None:
        super().__init__()
        self.heatmap_head = DeconvModule(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity logits (N, individuals, h, w)."""
        return self.heatmap_head(x)


class DlcPafNetwork(nn.Module):
    """DeepLabCut's ``PoseModel`` with a ``DLCRNetHead``; with ``identity``, its logits fourth."""

    def __init__(
        self, backbone: nn.Module, head: PafHeadSpec, identity: DeconvSpec | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels = int(getattr(backbone, "out_channels"))  # noqa: B009  (set by every backbone)
        heads: dict[str, nn.Module] = {"bodypart": DlcrnetHead(head, channels)}
        if identity is not None:
            heads["identity"] = IdentityHead(identity)
        self.heads = nn.ModuleDict(heads)

    @property
    def with_identity(self) -> bool:
        """Whether the network has DeepLabCut's identity head."""
        return "identity" in self.heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the head's three maps, and the identity logits with an identity head."""
        features = self.backbone(x)
        head: DlcrnetHead = self.heads["bodypart"]
        maps = head(features)
        if self.with_identity:
            return (*maps, self.heads["identity"](features))
        return maps


def gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    """DeepLabCut's smoothing kernel: a softmax over -d^2 / (2 sigma^2), outer product (float32)."""
    d = torch.arange(-size // 2 + 1, size // 2 + 1, dtype=torch.float32) ** 2
    k = torch.softmax(-d / (2 * sigma**2), dim=0)
    return torch.einsum("i,j->ij", k, k)


class DlcPafKeypointModel(nn.Module):
    """The network and DeepLabCut's per-pixel predictor steps: frames in, peaks and fields out.

    ``forward`` returns float32 ``peaks`` (N, K, h, w; 0 off the local maxima), ``locref`` (N, 2K,
    h, w, input pixels), ``pafs`` (N, 2E, h, w) and, with an identity head, its logits.
    """

    def __init__(
        self,
        network: DlcPafNetwork,
        *,
        stride: float,
        nms_radius: int,
        sigma: float,
        locref_std: float,
        apply_sigmoid: bool,
    ) -> None:
        super().__init__()
        self.network = network
        self.stride = float(stride)
        self.nms_radius = int(nms_radius)
        self.locref_std = float(locref_std)
        self.apply_sigmoid = apply_sigmoid
        kernel = gaussian_kernel(sigma, 2 * self.nms_radius + 1)[None, None]
        self.register_buffer("kernel", kernel, persistent=False)  # not in DeepLabCut's weights

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Peaks, scaled location refinement, fields (and identity logits, when present)."""
        heatmaps, locref, pafs, *identity = self.network(images)
        heatmaps, locref, pafs = heatmaps.float(), locref.float(), pafs.float()
        if self.apply_sigmoid:
            heatmaps = torch.sigmoid(heatmaps)
        k = heatmaps.shape[1]
        kernel: torch.Tensor = self.kernel
        pad = self.nms_radius  # "same" padding of the (2r + 1)-wide kernel
        smoothed = functional.conv2d(heatmaps, kernel.expand(k, 1, -1, -1), padding=pad, groups=k)
        pooled = functional.max_pool2d(
            smoothed, kernel_size=self.nms_radius, stride=1, padding=self.nms_radius // 2
        )
        peaks = smoothed * torch.eq(smoothed, pooled).float()
        # DeepLabCut's IdentityPredictor resizes, then applies its sigmoid: both on the host
        return (peaks, locref * self.locref_std, pafs, *(i.float() for i in identity))
