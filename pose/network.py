"""The project's own pose network: a small fully-convolutional heatmap model for the CPU.

:class:`PoseNet` maps an image (N, 3, H, W), H and W multiples of 32, to

* ``heatmaps``: (N, K, H/4, W/4) logits, one map per keypoint (decode with a sigmoid), and
* ``locref``: (N, 2K, H/4, W/4) DeepLabCut-style location-refinement offsets in units of
  ``locref_std`` input pixels, channels ``x0, y0, x1, y1, ...`` (see :mod:`pose.decode`).

The design is a plain ResNet-like encoder down to stride 32 (for context: which end of a small dark
blob is the snout) with a light feature-pyramid decoder back to stride 4. Everything is 3x3 and 1x1
convolutions with batch norm and ReLU, which ONNX Runtime fuses and runs fast on a CPU; channels
are multiples of 8 for its vectorised kernels. About 1 M parameters and ~0.5 GMAC for a 256x320
input.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

STRIDE = 4
"""Input pixels per heatmap pixel."""

SIZE_MULTIPLE = 32
"""Input height and width must be multiples of this (the encoder's deepest stride)."""


@dataclass(frozen=True)
class NetworkConfig:
    """The shape of a :class:`PoseNet`; stored in ``model.json`` so a model can be rebuilt.

    Attributes
    ----------
    num_keypoints
        K, the number of heatmaps.
    widths
        Channels at strides 2, 4, 8, 16 and 32.
    decoder_width
        Channels of the feature pyramid and of the head.
    locref
        Whether the network also predicts location-refinement offsets.
    """

    num_keypoints: int
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 128)
    decoder_width: int = 48
    locref: bool = True

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form."""
        return {
            "num_keypoints": self.num_keypoints,
            "widths": list(self.widths),
            "decoder_width": self.decoder_width,
            "locref": self.locref,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NetworkConfig:
        """The inverse of :meth:`to_dict`."""
        widths = tuple(int(w) for w in data["widths"])  # type: ignore[union-attr]
        if len(widths) != 5:
            raise ValueError(f"network widths need 5 values, got {widths}")
        return cls(
            num_keypoints=int(data["num_keypoints"]),  # type: ignore[arg-type]
            widths=widths,  # type: ignore[arg-type]
            decoder_width=int(data["decoder_width"]),  # type: ignore[arg-type]
            locref=bool(data["locref"]),
        )


def conv_bn_relu(inputs: int, outputs: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Convolution, batch norm and ReLU (fused into one convolution by ONNX Runtime)."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet's basic block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output, same shape as ``x``."""
        return functional.relu(x + self.bn2(self.conv2(self.conv1(x))))


class PoseNet(nn.Module):
    """Heatmaps (and location refinement) of K keypoints at stride 4.

    Parameters
    ----------
    config
        Number of keypoints and channel widths.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        w2, w4, w8, w16, w32 = config.widths
        d = config.decoder_width
        self.stem = nn.Sequential(conv_bn_relu(3, w2, stride=2), conv_bn_relu(w2, w4, stride=2))
        self.stage4 = ResidualBlock(w4)
        self.stage8 = nn.Sequential(conv_bn_relu(w4, w8, stride=2), ResidualBlock(w8))
        self.stage16 = nn.Sequential(conv_bn_relu(w8, w16, stride=2), ResidualBlock(w16))
        self.stage32 = nn.Sequential(
            conv_bn_relu(w16, w32, stride=2), ResidualBlock(w32), ResidualBlock(w32)
        )
        # Feature pyramid: 1x1 laterals bring every stride to d channels, added top-down.
        self.lateral = nn.ModuleList([nn.Conv2d(width, d, 1) for width in (w4, w8, w16, w32)])
        self.smooth = nn.ModuleList([conv_bn_relu(d, d) for _ in range(3)])
        self.head = conv_bn_relu(d, d)
        k = config.num_keypoints
        self.heatmap_out = nn.Conv2d(d, k, 1)
        self.locref_out = nn.Conv2d(d, 2 * k, 1) if config.locref else None
        # Start the heatmaps near "nothing here" (sigmoid ~ 0.01) so the first steps are not
        # spent pushing every background pixel down: the focal-loss initialisation trick.
        nn.init.constant_(self.heatmap_out.bias, -4.6)
        if self.locref_out is not None:
            nn.init.zeros_(self.locref_out.weight)
            nn.init.zeros_(self.locref_out.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(heatmaps,)`` or ``(heatmaps, locref)`` for normalised images (N, 3, H, W)."""
        c4 = self.stage4(self.stem(images))
        c8 = self.stage8(c4)
        c16 = self.stage16(c8)
        c32 = self.stage32(c16)
        top = self.lateral[3](c32)
        for lateral, smooth, skip in zip(
            self.lateral[2::-1], self.smooth, (c16, c8, c4), strict=True
        ):
            top = smooth(lateral(skip) + _upsample(top, skip))
        features = self.head(top)
        heatmaps = self.heatmap_out(features)
        if self.locref_out is None:
            return (heatmaps,)
        return heatmaps, self.locref_out(features)


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Twice the resolution, bilinear with pixel centres (align_corners False, as decode.py)."""
    return functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def output_names(config: NetworkConfig) -> tuple[str, ...]:
    """Names of the graph outputs, in order."""
    return ("heatmaps", "locref") if config.locref else ("heatmaps",)


def export_onnx(model: PoseNet, path: str, height: int, width: int, opset: int = 18) -> None:
    """Write ``model`` as ONNX with a dynamic batch axis and a fixed input size.

    Parameters
    ----------
    model
        The network (put into eval mode here).
    path
        The ``.onnx`` file to write.
    height, width
        Input size, multiples of :data:`SIZE_MULTIPLE`.
    opset
        ONNX opset: 18, the exporter's own (no version conversion), read by ONNX Runtime 1.14+
        and TensorRT 8.6+.
    """
    check_input_size(height, width)
    model.eval()
    names = output_names(model.config)
    dummy = torch.zeros(2, 3, height, width)
    # torch.export-based exporter (the TorchScript-based one is deprecated); it folds batch norm
    # into the convolutions. Only the batch axis is dynamic: the input size is the model's.
    # It logs that torchvision's operators are not registered (we use none of them).
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own internals, not ours
        torch.onnx.export(
            model,
            (dummy,),
            path,
            input_names=["images"],
            output_names=list(names),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            dynamo=True,
            optimize=True,
            external_data=False,  # weights inside the one file: a model folder is self-contained
            verbose=False,
        )


def check_input_size(height: int, width: int) -> None:
    """Raise ValueError unless both sides are positive multiples of :data:`SIZE_MULTIPLE`."""
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"input size {width}x{height}: width and height must be positive multiples of "
            f"{SIZE_MULTIPLE}"
        )
