"""The project's own pose networks: small fully-convolutional heatmap models for the CPU.

Design and measurements: docs/bundled-model.md, "What the network is".
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import nn
from torch.nn import functional

from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD

STRIDE = 4
"""Input pixels per heatmap pixel."""

SHUFFLE = 2
"""The separable design's last features are at stride ``STRIDE * SHUFFLE``; a pixel shuffle
(sub-pixel convolution) turns their outputs into stride-``STRIDE`` maps."""

SIZE_MULTIPLE = 32
"""Input height and width must be multiples of this (the encoder's deepest stride)."""

Architecture = Literal["resnet-fpn", "separable-fpn"]
ARCHITECTURES: tuple[str, ...] = ("resnet-fpn", "separable-fpn")

InputDtype = Literal["float32", "uint8"]
InputLayout = Literal["nchw", "nhwc"]
Normalization = Literal["outside", "in-graph"]

# Per architecture: default channel widths, decoder width and residual blocks per stage.
_DEFAULT_WIDTHS: dict[str, tuple[int, ...]] = {
    "resnet-fpn": (16, 32, 64, 96, 128),  # strides 2, 4, 8, 16, 32
    "separable-fpn": (32, 64, 128, 192),  # strides 4, 8, 16, 32
}
_DEFAULT_DECODER_WIDTH = {"resnet-fpn": 48, "separable-fpn": 64}
_DEFAULT_BLOCKS: dict[str, tuple[int, ...]] = {
    "resnet-fpn": (1, 1, 1, 2),  # fixed by the first design (strides 4, 8, 16, 32)
    "separable-fpn": (0, 2, 2, 2),
}


@dataclass(frozen=True)
class InputFormat:
    """How a graph takes its input.

    ``uint8`` needs ``normalization="in-graph"``; ``outside``: already ``(pixel / 255 - mean) /
    std``, ``mean`` and ``std`` in RGB order.
    """

    dtype: InputDtype = "float32"
    layout: InputLayout = "nchw"
    normalization: Normalization = "outside"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        """Reject combinations that cannot work."""
        if self.dtype not in ("float32", "uint8"):
            raise ValueError(f"input dtype {self.dtype!r}: use float32 or uint8")
        if self.layout not in ("nchw", "nhwc"):
            raise ValueError(f"input layout {self.layout!r}: use nchw or nhwc")
        if self.normalization not in ("outside", "in-graph"):
            raise ValueError(f"input normalization {self.normalization!r}: use outside or in-graph")
        if self.dtype == "uint8" and self.normalization != "in-graph":
            raise ValueError("uint8 input needs normalization in the graph")

    @property
    def raw_pixels(self) -> bool:
        """True when the graph takes pixels 0..255 (and normalises them itself)."""
        return self.normalization == "in-graph"

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-friendly form."""
        return {
            "dtype": self.dtype,
            "layout": self.layout,
            "normalization": self.normalization,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> InputFormat:
        """Invert :meth:`to_dict`; missing keys (older files) take the defaults."""
        data = data or {}
        default = cls()
        # JSON values: __post_init__ rejects strings outside the literals.
        mean = cast("Sequence[float]", data.get("mean", default.mean))
        std = cast("Sequence[float]", data.get("std", default.std))
        return cls(
            dtype=cast(InputDtype, str(data.get("dtype", default.dtype))),
            layout=cast(InputLayout, str(data.get("layout", default.layout))),
            normalization=cast(
                Normalization, str(data.get("normalization", default.normalization))
            ),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
        )


# Named input formats of the training command's --input-format.
INPUT_FORMATS: dict[str, InputFormat] = {
    "float-normalised": InputFormat(),
    "float-raw": InputFormat(normalization="in-graph"),
    "uint8-nchw": InputFormat(dtype="uint8", normalization="in-graph"),
    "uint8-nhwc": InputFormat(dtype="uint8", layout="nhwc", normalization="in-graph"),
}


@dataclass(frozen=True)
class NetworkConfig:
    """The shape of a network; stored in ``model.json`` so a model can be rebuilt.

    None in ``widths``, ``decoder_width`` or ``blocks``: the architecture's default.
    ``architecture`` ``resnet-fpn`` is the default so that older files rebuild; ``refine_width``
    (``separable-fpn``) 0 takes outputs from the stride-8 head.
    """

    num_keypoints: int
    widths: tuple[int, ...] | None = None
    decoder_width: int | None = None
    locref: bool = True
    architecture: Architecture = "resnet-fpn"
    blocks: tuple[int, ...] | None = None
    input: InputFormat = field(default_factory=InputFormat)
    refine_width: int = 0

    def __post_init__(self) -> None:
        """Fill the architecture's defaults and check the shape."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; use {', '.join(ARCHITECTURES)}"
            )
        arch = self.architecture
        widths = tuple(int(w) for w in (self.widths or _DEFAULT_WIDTHS[arch]))
        blocks = tuple(int(b) for b in (self.blocks or _DEFAULT_BLOCKS[arch]))
        decoder = int(self.decoder_width or _DEFAULT_DECODER_WIDTH[arch])
        if len(widths) != len(_DEFAULT_WIDTHS[arch]):
            raise ValueError(
                f"{arch} network widths need {len(_DEFAULT_WIDTHS[arch])} values, got {widths}"
            )
        if arch == "resnet-fpn" and blocks != _DEFAULT_BLOCKS[arch]:
            raise ValueError("the resnet-fpn design has fixed blocks")
        if len(blocks) != 4 or min(blocks) < 0:
            raise ValueError(f"blocks need 4 counts (strides 4 to 32), got {blocks}")
        if self.refine_width and arch != "separable-fpn":
            raise ValueError("a refinement head is for the separable-fpn design")
        if min(widths) < 1 or decoder < 1 or self.refine_width < 0:
            raise ValueError(f"channel widths must be positive, got {widths} and {decoder}")
        # A frozen dataclass: the filled-in defaults are set past its guard, once, here.
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "decoder_width", decoder)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-friendly form."""
        data: dict[str, object] = {
            "architecture": self.architecture,
            "num_keypoints": self.num_keypoints,
            "widths": list(self.widths or ()),
            "decoder_width": self.decoder_width,
            "locref": self.locref,
        }
        if self.architecture != "resnet-fpn":
            data["blocks"] = list(self.blocks or ())
            data["refine_width"] = self.refine_width
        data["input"] = self.input.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NetworkConfig:
        """Invert :meth:`to_dict`; without ``architecture`` or ``input``: the first design."""
        # JSON values: __post_init__ rejects an unknown architecture.
        widths = tuple(int(w) for w in cast("Sequence[int]", data["widths"]))
        blocks = cast("Sequence[int] | None", data.get("blocks"))
        return cls(
            num_keypoints=int(cast(int, data["num_keypoints"])),
            widths=widths,
            decoder_width=int(cast(int, data["decoder_width"])),
            locref=bool(data["locref"]),
            architecture=cast(Architecture, str(data.get("architecture", "resnet-fpn"))),
            blocks=tuple(int(b) for b in blocks) if blocks else None,
            input=InputFormat.from_dict(cast("dict[str, object] | None", data.get("input"))),
            refine_width=int(cast(int, data.get("refine_width", 0))),
        )


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class NormalisingConv2d(nn.Conv2d):
    """A convolution of raw pixels 0..255 that normalises them on the way in, for free.

    Its weights are scaled by ``1 / (255 std)`` with a bias of ``-sum(w * mean / std)``: one plain
    convolution in the exported graph, trained as with normalised input. Zero padding reads as a
    black border, not a mean-grey one.
    """

    def __init__(self, *args: object, input_format: InputFormat, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        mean = torch.tensor(input_format.mean, dtype=torch.float32)
        std = torch.tensor(input_format.std, dtype=torch.float32)
        # Not persistent: they follow from the config, and state dicts stay those of nn.Conv2d.
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve the normalised ``x``."""
        weight = self.weight * self.scale
        bias = (self.weight * self.shift).sum(dim=(1, 2, 3))
        if self.bias is not None:
            bias = bias + self.bias
        return functional.conv2d(x, weight, bias, self.stride, self.padding)


def first_conv(
    inputs: int, outputs: int, kernel: int, stride: int, padding: int, input_format: InputFormat
) -> nn.Conv2d:
    """Make the network's first convolution: a plain one, or one that normalises raw pixels."""
    if input_format.raw_pixels:
        return NormalisingConv2d(
            inputs, outputs, kernel, stride, padding, bias=False, input_format=input_format
        )
    return nn.Conv2d(inputs, outputs, kernel, stride, padding=padding, bias=False)


def to_nchw_float(images: torch.Tensor, input_format: InputFormat) -> torch.Tensor:
    """Convert the graph's input to float NCHW (a cast for uint8, a transpose for NHWC)."""
    if input_format.layout == "nhwc":
        # Transposed before the cast: a quarter of the bytes to move for uint8.
        images = images.permute(0, 3, 1, 2)
    return images.float() if images.dtype != torch.float32 else images


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


class SeparableBlock(nn.Module):
    """Depthwise 3x3, pointwise 1x1, a shortcut (none when the shape changes), ReLU."""

    def __init__(self, inputs: int, outputs: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv2d(inputs, inputs, 3, stride, padding=1, groups=inputs, bias=False),
            nn.BatchNorm2d(inputs),
            nn.ReLU(inplace=True),
        )
        self.pointwise = nn.Sequential(
            nn.Conv2d(inputs, outputs, 1, bias=False), nn.BatchNorm2d(outputs)
        )
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output; the shape of ``x`` unless it strides or changes channels."""
        y = self.pointwise(self.depthwise(x))
        return functional.relu(x + y if self.residual else y)


# --------------------------------------------------------------------------------------------------
# The networks
# --------------------------------------------------------------------------------------------------


class PoseNet(nn.Module):
    """Heatmaps (and location refinement) of K keypoints at stride 4."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        d = int(config.decoder_width or 0)
        k = config.num_keypoints
        self.separable = config.architecture == "separable-fpn"
        build = _separable_encoder if self.separable else _resnet_encoder
        encoder_widths, parts = build(config)
        self.stem, self.stage4, self.stage8, self.stage16, self.stage32 = parts
        # Feature pyramid: 1x1 laterals bring every stride to d channels, added top-down; the
        # separable design's pyramid stops at stride 8 (its widths start there).
        self.lateral = nn.ModuleList([nn.Conv2d(width, d, 1) for width in encoder_widths])
        if self.separable:
            self.smooth = nn.ModuleList([SeparableBlock(d, d) for _ in range(2)])
            self.head: nn.Module = SeparableBlock(d, d)
        else:
            self.smooth = nn.ModuleList([conv_bn_relu(d, d) for _ in range(3)])
            self.head = conv_bn_relu(d, d)
        r = config.refine_width
        self.refine: nn.Module | None = None
        if r:
            # Stride-8 features to stride 4 (a 2x2 stride-2 transposed convolution), plus the
            # stem's stride-4 features, then one full 3x3 convolution: the fine detail for the
            # offsets, at a few channels.
            self.refine_up = nn.ConvTranspose2d(d, r, SHUFFLE, stride=SHUFFLE)
            self.refine_lateral = nn.Conv2d(config.widths[0], r, 1)  # type: ignore[index]
            self.refine = conv_bn_relu(r, r)
        from_stride_8 = self.separable and not r
        width = r or d
        self.heatmap_out = _output_conv(width, k, from_stride_8)
        self.locref_out = _output_conv(width, 2 * k, from_stride_8) if config.locref else None
        # Start the heatmaps near "nothing here" (sigmoid ~ 0.01) so the first steps are not
        # spent pushing every background pixel down: the focal-loss initialisation trick.
        nn.init.constant_(self.heatmap_out.bias, -4.6)
        if self.locref_out is not None:
            nn.init.zeros_(self.locref_out.weight)
            nn.init.zeros_(self.locref_out.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(heatmaps,)`` or ``(heatmaps, locref)`` for images in the config's input format."""
        c4 = self.stage4(self.stem(to_nchw_float(images, self.config.input)))
        c8 = self.stage8(c4)
        c16 = self.stage16(c8)
        c32 = self.stage32(c16)
        skips = (c16, c8) if self.separable else (c16, c8, c4)
        top = self.lateral[-1](c32)
        for lateral, smooth, skip in zip(self.lateral[-2::-1], self.smooth, skips, strict=True):
            top = smooth(lateral(skip) + self._upsample(top, skip))
        features = self.head(top)
        if self.refine is not None:
            fine = self.refine_up(features) + self.refine_lateral(c4)
            features = self.refine(functional.relu(fine))
        heatmaps = self.heatmap_out(features)
        if self.locref_out is None:
            return (heatmaps,)
        return heatmaps, self.locref_out(features)

    def _upsample(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Twice the resolution: bilinear (first design) or nearest (separable design)."""
        if self.separable:
            # A fixed factor, not like's size: ONNX Runtime then runs it in its blocked layout
            # and fuses the addition and ReLU around it (sizes are multiples of 32).
            return functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return _upsample(x, like)


def _output_conv(inputs: int, outputs: int, from_stride_8: bool) -> nn.Module:
    """Make the 1x1 output convolution, or from stride-8 features a 2x2 stride-2 transposed one."""
    # The transposed convolution is a 1x1 convolution to 4x the channels and a pixel shuffle in one
    # operator: ONNX Runtime's DepthToSpace is several times slower than the whole convolution.
    if from_stride_8:
        return nn.ConvTranspose2d(inputs, outputs, SHUFFLE, stride=SHUFFLE)
    return nn.Conv2d(inputs, outputs, 1)


EncoderParts = tuple[tuple[int, ...], tuple[nn.Module, ...]]
"""The widths of the features the pyramid reads (strides 4 or 8 to 32), the stem and the four
stages."""


def _resnet_encoder(config: NetworkConfig) -> EncoderParts:
    """Build the first design's encoder: two strided 3x3 convolutions, then ResNet basic blocks."""
    w2, w4, w8, w16, w32 = config.widths or ()
    stem = nn.Sequential(
        nn.Sequential(
            first_conv(3, w2, 3, 2, 1, config.input), nn.BatchNorm2d(w2), nn.ReLU(inplace=True)
        ),
        conv_bn_relu(w2, w4, stride=2),
    )
    stages = (
        ResidualBlock(w4),
        nn.Sequential(conv_bn_relu(w4, w8, stride=2), ResidualBlock(w8)),
        nn.Sequential(conv_bn_relu(w8, w16, stride=2), ResidualBlock(w16)),
        nn.Sequential(conv_bn_relu(w16, w32, stride=2), ResidualBlock(w32), ResidualBlock(w32)),
    )
    return (w4, w8, w16, w32), (stem, *stages)


def _separable_encoder(config: NetworkConfig) -> EncoderParts:
    """Build the separable encoder: a patch stem to stride 4, then strides 8, 16 and 32."""
    w4, w8, w16, w32 = config.widths or ()
    b4, b8, b16, b32 = config.blocks or ()
    # A 4x4 stride-4 convolution: each stride-4 cell sees exactly its own 16 pixels, so the
    # stride-4 grid is pose.decoding.peaks's (cell j centred on input pixel 4j + 1.5), and nothing
    # is computed at full or half resolution.
    stem = nn.Sequential(
        first_conv(3, w4, STRIDE, STRIDE, 0, config.input),
        nn.BatchNorm2d(w4),
        nn.ReLU(inplace=True),
    )
    stages = (
        nn.Sequential(*[SeparableBlock(w4, w4) for _ in range(b4)]),
        _separable_stage(w4, w8, b8),
        _separable_stage(w8, w16, b16),
        _separable_stage(w16, w32, b32),
    )
    return (w8, w16, w32), (stem, *stages)


def _separable_stage(inputs: int, outputs: int, blocks: int) -> nn.Sequential:
    """Build a strided separable block into ``outputs`` channels, then ``blocks`` residual ones."""
    return nn.Sequential(
        SeparableBlock(inputs, outputs, stride=2),
        *[SeparableBlock(outputs, outputs) for _ in range(blocks)],
    )


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Twice the resolution, bilinear with pixel centres (align_corners False, as decode.py)."""
    return functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def parameter_count(model: nn.Module) -> int:
    """Count the trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def output_names(config: NetworkConfig) -> tuple[str, ...]:
    """Names of the graph outputs, in order."""
    return ("heatmaps", "locref") if config.locref else ("heatmaps",)


def example_input(config: NetworkConfig, batch: int, height: int, width: int) -> torch.Tensor:
    """Zeros shaped and typed as the graph's input (for export and tracing)."""
    fmt = config.input
    shape = (batch, height, width, 3) if fmt.layout == "nhwc" else (batch, 3, height, width)
    return torch.zeros(shape, dtype=torch.uint8 if fmt.dtype == "uint8" else torch.float32)


def export_onnx(model: PoseNet, path: str, height: int, width: int, opset: int = 18) -> None:
    """Write ``model`` (put in eval mode) as ONNX with a dynamic batch axis and a fixed input size.

    Sides are multiples of :data:`SIZE_MULTIPLE`; opset 18 runs on ONNX Runtime 1.14+, TensorRT
    8.6+.
    """
    check_input_size(height, width)
    model.eval()
    names = output_names(model.config)
    dummy = example_input(model.config, 2, height, width)
    # torch.export-based exporter (the TorchScript-based one is deprecated); it folds batch norm
    # into the convolutions, and the normalisation into the first one. Only the batch axis is
    # dynamic: the input size is the model's.
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
