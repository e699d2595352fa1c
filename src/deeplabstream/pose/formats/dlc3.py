"""DeepLabCut 3.0 exported models (``deeplabcut.export_model``), run without DeepLabCut.

An export is one file, ``torch.save({"config": ..., "pose": state_dict})``: ``config`` is the
model's ``pytorch_config.yaml`` as a dict, ``pose`` the weights of DeepLabCut's ``PoseModel``.
This module reads both, rebuilds the network in this project's code with DeepLabCut's
state-dict names (:mod:`pose.networks.cspnext`, :mod:`pose.networks.resnet`), loads the weights
strictly, and appends DeepLabCut's decoding, so that the network's output is the keypoints
themselves.

Supported: single-animal, bottom-up (``method: bu``) models without a detector, whose backbone
is ``CSPNeXt`` (``cspnext_s``, ``cspnext_m``, ``cspnext_x``, any width and depth of the ``P5`` or
``P6`` layout) or a timm ``ResNet`` (``resnet_50`` = ``resnet50_gn``, ``resnet_101`` =
``resnet101``, at their output stride), with one ``HeatmapHead`` (deconvolutions, optional
final convolution, with or without location refinement). Anything else gets a message naming
what the file holds.

Pre-processing (DeepLabCut's, read from its source and checked on a real export): the whole
frame as RGB, no resize, crop or padding, normalised with ImageNet mean and std. DeepLabCut
computes ``(pixel - 255 mean) / (255 std)``, this project ``(pixel / 255 - mean) / std``: equal
up to float32 rounding, which moves keypoints by less than 1e-4 pixels on the real export.
The network is fully convolutional and DeepLabCut runs it at the frame's own size; the
description's input size is the frame size given to :func:`load_deeplabcut` (default 640x480).

Decoding (DeepLabCut's ``HeatmapPredictor``): optional sigmoid; per keypoint the first maximum
of its heatmap in row-major order; ``x = col * stride + stride / 2 + dx * locref_std`` and the
same for y, where (dx, dy) are the location-refinement channels ``2k`` and ``2k + 1`` at that
cell; likelihood = the heatmap value there, clipped to [0, 1] when ``clip_scores``. It runs
inside the graph in float32, so the graph outputs ``keypoints`` (N, K, 3) in input pixels
(``output_kind="coordinates"``), beside the raw ``heatmaps`` and ``locref``.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplabstream.pose.formats.conversion import (
    ConversionSpec,
    Differences,
    Precision,
    convert,
    load_weights,
    max_abs_differences,
    synthetic_input,
)
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.networks.cspnext import CSPNeXt, CSPNeXtConfig
from deeplabstream.pose.networks.resnet import ResNet

FRAMEWORK = "deeplabcut"
DEFAULT_FRAME_SIZE = (480, 640)  # height, width
INPUT_NAME = "images"
SUPPORTED = (
    "supported: single-animal bottom-up models (method bu, no detector) with a CSPNeXt "
    "(cspnext_s/m/x) or ResNet (resnet_50, resnet_101) backbone and one HeatmapHead"
)
# Inference transforms that change pixels or geometry, which this program does not apply.
_UNSUPPORTED_TRANSFORMS = (
    "resize",
    "longest_max_size",
    "auto_padding",
    "top_down_crop",
    "hist_eq",
    "grayscale",
    "crop_sampling",
    "affine",
    "hflip",
)
# fp32: ONNX Runtime differs from PyTorch by about 1e-6 on real frames, a wrong conversion by
# 0.1 and more (0.59 for a plain TorchScript-based export of DeepLabCut's own module). fp16:
# about 7e-4 (heatmaps) and 4e-3 (locref) on real frames; its limits catch gross errors only.
TOLERANCES: Differences = {"heatmaps": 1e-3, "locref": 1e-2, "xy_px": 1e-2, "likelihood": 1e-3}
FP16_TOLERANCES: Differences = {"heatmaps": 0.05, "locref": 0.5}


@dataclass(frozen=True)
class DlcExport:
    """What an export file holds."""

    path: Path
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    other_entries: tuple[str, ...] = ()  # besides config and pose, e.g. a detector's weights

    @property
    def net_type(self) -> str:
        """DeepLabCut's name of the network (``cspnext_s``, ``resnet_50``, ...)."""
        return str(self.config.get("net_type", "?"))

    @property
    def bodyparts(self) -> tuple[str, ...]:
        """Keypoint names, in the order of the heatmaps."""
        return tuple(str(b) for b in self.config.get("metadata", {}).get("bodyparts") or ())


@dataclass(frozen=True)
class DeconvSpec:
    """One DeepLabCut ``DeconvModule``: transposed convolutions and an optional 1x1-ish conv."""

    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    final_conv: tuple[int, int] | None  # (out_channels, kernel_size)

    @property
    def stride(self) -> int:
        """Upsampling factor of the module."""
        return int(np.prod(self.strides)) if self.strides else 1


@dataclass(frozen=True)
class HeadSpec:
    """DeepLabCut's ``HeatmapHead`` and its ``HeatmapPredictor`` settings."""

    heatmap: DeconvSpec
    locref: DeconvSpec | None
    apply_sigmoid: bool
    clip_scores: bool
    locref_std: float


# --- reading and checking the file ------------------------------------------------------------


def read_export(path: str | Path, *, mmap: bool = False) -> DlcExport:
    """Load an export file without running any code from it (``weights_only``).

    With ``mmap`` the tensors stay on disk until used (a check of the file reads its small
    pickle only); a file in torch's legacy format is read whole all the same.
    """
    path = Path(path)
    from deeplabstream.pose.loading import DEEPLABCUT_EXPORT_ADVICE, check_torch_file, unreadable

    check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)  # missing, empty, not of torch.save
    mmap = mmap and zipfile.is_zipfile(path)  # torch maps only its zip format
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # a damaged zip, a pickle with code in it, not a torch file...
        raise unreadable(path, DEEPLABCUT_EXPORT_ADVICE, unreadable_reason(error)) from error
    if not isinstance(data, dict) or not {"config", "pose"} <= set(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ModelError(
            f"{path}: expected a DeepLabCut 3.0 export (a dict with 'config' and 'pose', as "
            f"deeplabcut.export_model writes), found {found}"
        )
    config, weights = data["config"], data["pose"]
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ModelError(f"{path}: its 'config' has no 'model' section")
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ModelError(f"{path}: its 'pose' entry is not a state_dict of tensors")
    others = tuple(sorted(str(k) for k in data if k not in ("config", "pose")))
    return DlcExport(path, config, dict(weights), others)


def read_bodyparts(path: str | Path) -> tuple[str, ...]:
    """Return the keypoint names of an export, cheaply: its weights are mapped, not read.

    ``torch.load(mmap=True)`` reads the small pickle of ``config`` and leaves the tensors on
    disk, so the window can check an experiment's keypoints against a 100 MB export in
    milliseconds. ModelError as :func:`read_export` for a file it cannot read.
    """
    path = Path(path)
    from deeplabstream.pose.loading import DEEPLABCUT_EXPORT_ADVICE, check_torch_file, unreadable

    check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # as read_export: a damaged zip, code in the pickle...
        raise unreadable(path, DEEPLABCUT_EXPORT_ADVICE, unreadable_reason(error)) from error
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: expected a DeepLabCut 3.0 export (a dict with 'config')")
    return tuple(str(b) for b in (config.get("metadata") or {}).get("bodyparts") or ())


def check_export(path: str | Path) -> None:
    """Check before a start that ``path`` is an export this program runs, without its weights.

    The file is opened as at load (a dict with ``config`` and a ``pose`` state dict, read
    without running code), and what the network needs is read from its config; the tensors
    are mapped, not read, so a 100 MB export is checked in milliseconds. ModelError as
    :func:`read_export` and :func:`check_supported`.
    """
    export = read_export(path, mmap=True)
    check_supported(export)
    head_spec(export)


def unreadable_reason(error: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, without PyTorch's advice.

    PyTorch's message suggests loading with ``weights_only=False``, which runs any code the
    file holds: never passed on. Its first line is kept only when it gives no such advice.
    """
    if isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than weights and settings, or is not a PyTorch file"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if not first or "weights_only" in first:
        return f"PyTorch could not read it: {type(error).__name__}"
    return f"PyTorch could not read it: {type(error).__name__}: {first}"


def describe_holding(export: DlcExport) -> str:
    """Describe what the export holds, in one line, for messages and ``pose.inspect``."""
    config = export.config
    model = config["model"]
    backbone = model.get("backbone") or {}
    heads = {name: (head or {}).get("type") for name, head in (model.get("heads") or {}).items()}
    individuals = config.get("metadata", {}).get("individuals") or []
    return (
        f"net_type {export.net_type}, method {config.get('method')!r}, backbone "
        f"{backbone.get('type')} {backbone.get('model_name', '')}".rstrip()
        + f", heads {heads}, {len(individuals)} individual(s), "
        + (
            "a detector"
            if config.get("detector") or "detector" in export.other_entries
            else "no detector"
        )
    )


def check_supported(export: DlcExport) -> None:
    """Raise a ModelError naming what the export holds when it is not supported."""
    config, path = export.config, export.path
    model = config["model"]
    reasons = []
    if str(config.get("method", "bu")).lower() != "bu":
        reasons.append(f"method {config.get('method')!r} (top-down needs a detector)")
    if config.get("detector") or "detector" in export.other_entries:
        reasons.append("a detector")
    individuals = config.get("metadata", {}).get("individuals") or []
    if len(individuals) > 1:
        reasons.append(f"{len(individuals)} individuals (multi-animal)")
    if config.get("metadata", {}).get("unique_bodyparts"):
        reasons.append("unique bodyparts")
    heads = {name: (head or {}).get("type") for name, head in (model.get("heads") or {}).items()}
    if heads != {"bodypart": "HeatmapHead"}:
        reasons.append(f"heads {heads}")
    if model.get("neck"):
        reasons.append("a neck")
    backbone = (model.get("backbone") or {}).get("type")
    if backbone not in ("CSPNeXt", "ResNet"):
        reasons.append(f"backbone {backbone}")
    if reasons:
        raise ModelError(
            f"{path}: a DeepLabCut 3.0 export of {export.net_type} with "
            f"{', '.join(reasons)}, which this program cannot run; {SUPPORTED}. "
            f"(The file holds {describe_holding(export)}.)"
        )
    if not export.bodyparts:
        raise ModelError(f"{path}: its config names no bodyparts (metadata.bodyparts)")
    transforms = config.get("data", {}).get("inference") or {}
    used = [name for name in _UNSUPPORTED_TRANSFORMS if transforms.get(name)]
    if used:
        raise ModelError(
            f"{path}: its inference pre-processing uses {', '.join(used)}, which this program "
            f"does not apply; only normalize_images / scale_to_unit_range are supported"
        )
    colour = str(config.get("data", {}).get("colormode", "RGB")).upper()
    if colour not in ("RGB", "BGR"):
        raise ModelError(f"{path}: data.colormode {colour!r}, expected RGB or BGR")


# --- the network --------------------------------------------------------------------------------


def _deconv_spec(section: Any, where: str, path: Path) -> DeconvSpec:
    """Read a ``heatmap_config`` / ``locref_config`` section as a DeconvSpec."""
    try:
        channels = tuple(int(c) for c in section["channels"])
        kernels = tuple(int(k) for k in section["kernel_size"])
        strides = tuple(int(s) for s in section["strides"])
        final = section.get("final_conv")
        final_conv = (int(final["out_channels"]), int(final["kernel_size"])) if final else None
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: model.heads.bodypart.{where} is incomplete: {error!r}") from None
    if not len(channels) == len(kernels) + 1 == len(strides) + 1:
        raise ModelError(
            f"{path}: model.heads.bodypart.{where} needs one more channel count than kernel "
            f"sizes and strides, got {channels}, {kernels}, {strides}"
        )
    return DeconvSpec(channels, kernels, strides, final_conv)


def head_spec(export: DlcExport) -> HeadSpec:
    """Read the head and predictor settings of the export's config."""
    path = export.path
    head = export.config["model"]["heads"]["bodypart"]
    predictor = head.get("predictor") or {}
    heatmap = _deconv_spec(head.get("heatmap_config"), "heatmap_config", path)
    refine = bool(predictor.get("location_refinement", True))
    locref = None
    if refine:
        if not head.get("locref_config"):
            raise ModelError(f"{path}: location_refinement is on but there is no locref_config")
        locref = _deconv_spec(head["locref_config"], "locref_config", path)
        if locref.stride != heatmap.stride:
            raise ModelError(f"{path}: heatmap and locref heads upsample differently")
    return HeadSpec(
        heatmap=heatmap,
        locref=locref,
        apply_sigmoid=bool(predictor.get("apply_sigmoid", True)),
        clip_scores=bool(predictor.get("clip_scores", False)),
        locref_std=float(predictor.get("locref_std", 7.2801)),
    )


class DeconvModule(nn.Module):
    """Transposed convolutions (ReLU between them, none after) and an optional final conv."""

    def __init__(self, spec: DeconvSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        steps = zip(spec.channels[:-1], spec.channels[1:], spec.kernels, spec.strides, strict=True)
        for number, (c_in, c_out, kernel, stride) in enumerate(steps):
            if number:
                layers.append(nn.ReLU())
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride))
        self.deconv_layers = nn.Sequential(*layers)
        self.final_conv: nn.Module = nn.Identity()
        if spec.final_conv is not None:
            self.final_conv = nn.Conv2d(spec.channels[-1], spec.final_conv[0], spec.final_conv[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deconvolutions, then the final conv."""
        return self.final_conv(self.deconv_layers(x))


class HeatmapHead(nn.Module):
    """Heatmaps and, with location refinement, their offsets."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.heatmap_head = DeconvModule(spec.heatmap)
        self.locref_head = DeconvModule(spec.locref) if spec.locref is not None else None


class TimmResNet(nn.Module):
    """DeepLabCut's ``ResNet`` backbone: a timm model under ``model``, its features out."""

    def __init__(self, depth: int, group_norm: bool, output_stride: int) -> None:
        super().__init__()
        self.model = ResNet(depth, "group" if group_norm else "batch", output_stride)
        self.stride = output_stride
        self.out_channels = self.model.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's features."""
        return self.model(x)


def build_backbone(export: DlcExport) -> nn.Module:
    """Build the backbone of the config (with ``stride`` and ``out_channels`` attributes)."""
    section = export.config["model"]["backbone"]
    path = export.path
    if section["type"] == "CSPNeXt":
        fields = {f.name for f in dataclasses.fields(CSPNeXtConfig)}
        out_indices = section.get("out_indices", -1)
        if out_indices not in (-1, None):
            raise ModelError(f"{path}: CSPNeXt out_indices {out_indices!r}; only -1 is supported")
        try:
            return CSPNeXt(CSPNeXtConfig(**{k: v for k, v in section.items() if k in fields}))
        except (TypeError, ValueError) as error:
            raise ModelError(f"{path}: model.backbone: {error}") from None
    name = str(section.get("model_name", ""))
    match = re.fullmatch(r"resnet(\d+)(_gn)?", name)
    if not match or int(match.group(1)) not in (18, 34, 50, 101, 152):
        raise ModelError(
            f"{path}: ResNet backbone {name!r} is not supported; expected timm's resnet50_gn, "
            f"resnet101 or another plain resnetNN[_gn]"
        )
    stride = int(section.get("output_stride") or 32)
    if stride not in (8, 16, 32):
        raise ModelError(f"{path}: ResNet output_stride {stride}; expected 8, 16 or 32")
    return TimmResNet(int(match.group(1)), bool(match.group(2)), stride)


class DlcPoseNetwork(nn.Module):
    """DeepLabCut's ``PoseModel`` for one heatmap head: ``backbone`` and ``heads.bodypart``."""

    def __init__(self, backbone: nn.Module, head: HeadSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({"bodypart": HeatmapHead(head)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(heatmaps N x K x h x w, locref N x 2K x h x w or None)."""
        features = self.backbone(x)
        head = self.heads["bodypart"]
        locref = head.locref_head(features) if head.locref_head is not None else None
        return head.heatmap_head(features), locref


class DlcKeypointModel(nn.Module):
    """The network followed by DeepLabCut's decoding: frames in, keypoints out.

    ``forward`` returns ``(keypoints, heatmaps)`` or ``(keypoints, heatmaps, locref)``:
    keypoints (N, K, 3) float32 x, y in input pixels and likelihood. The decoding runs in
    float32 whatever the network's precision.
    """

    def __init__(self, network: DlcPoseNetwork, head: HeadSpec, stride: float) -> None:
        super().__init__()
        self.network = network
        self.stride = float(stride)
        self.apply_sigmoid = head.apply_sigmoid
        self.clip_scores = head.clip_scores
        self.locref_std = head.locref_std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Keypoints and the raw maps."""
        heatmaps, locref = self.network(images)
        heatmaps, locref = heatmaps.float(), None if locref is None else locref.float()
        scores = torch.sigmoid(heatmaps) if self.apply_sigmoid else heatmaps
        n, k, h, w = scores.shape
        flat = scores.reshape(n, k, h * w)
        index = flat.argmax(dim=2, keepdim=True)  # the first maximum, as torch.argmax gives
        value = flat.gather(2, index)[..., 0]
        row = torch.div(index[..., 0], w, rounding_mode="floor")
        col = index[..., 0] - row * w
        x = col.float() * self.stride + 0.5 * self.stride
        y = row.float() * self.stride + 0.5 * self.stride
        if locref is not None:
            offsets = locref.reshape(n, k, 2, h * w)
            at_peak = offsets.gather(3, index[:, :, None, :].expand(n, k, 2, 1))[..., 0]
            at_peak = at_peak * self.locref_std
            x, y = x + at_peak[..., 0], y + at_peak[..., 1]
        if self.clip_scores:
            value = value.clamp(0.0, 1.0)
        keypoints = torch.stack((x, y, value), dim=-1)
        return (keypoints, heatmaps) if locref is None else (keypoints, heatmaps, locref)


def build_module(export: DlcExport) -> DlcKeypointModel:
    """Build the export's network with its weights and decoding, in eval mode (float32, CPU)."""
    check_supported(export)
    head = head_spec(export)
    backbone = build_backbone(export)
    network = DlcPoseNetwork(backbone, head)
    what = f"a {export.net_type} network as its config describes"
    load_weights(network, export.state_dict, export.path, what)
    k = len(export.bodyparts)
    outputs = head.heatmap.final_conv[0] if head.heatmap.final_conv else head.heatmap.channels[-1]
    if outputs != k:
        raise ModelError(
            f"{export.path}: the head makes {outputs} heatmaps but the config names {k} "
            f"bodyparts {export.bodyparts}"
        )
    return DlcKeypointModel(network, head, backbone.stride / head.heatmap.stride).eval()


def input_multiple(export: DlcExport) -> int:
    """Return the backbone's total down-sampling: inputs cropped on multiples of it keep its grid.

    CSPNeXt halves the size in its stem and at the start of every stage (32 for ``P5``, 64 for
    ``P6``); DeepLabCut's ResNet stops halving at its output stride (dilation after that).
    """
    section = export.config["model"]["backbone"]
    if section.get("type") == "CSPNeXt":
        from deeplabstream.pose.networks.cspnext import ARCHITECTURES

        stages = ARCHITECTURES.get(str(section.get("arch", "P5")), ARCHITECTURES["P5"])
        return 2 ** (1 + len(stages))
    return int(section.get("output_stride") or 32)


def input_multiple_of_export(path: str | Path) -> int:
    """:func:`input_multiple` of the export file at ``path`` (read without running its code)."""
    return input_multiple(read_export(path))


# --- the description ----------------------------------------------------------------------------


def output_names(head: HeadSpec) -> tuple[str, ...]:
    """Name the graph's outputs: keypoints first (what the estimator reads), then the raw maps."""
    return ("keypoints", "heatmaps") if head.locref is None else ("keypoints", "heatmaps", "locref")


def normalisation(export: DlcExport) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (in 0..1 pixel units) of the export's inference pre-processing."""
    transforms = export.config.get("data", {}).get("inference") or {}
    if transforms.get("normalize_images", True):
        return IMAGENET_MEAN, IMAGENET_STD
    if transforms.get("scale_to_unit_range"):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)  # raw 0..255 pixels


def compare_outputs(
    reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    """Differences of maps and keypoints; keypoints only where the peak is unambiguous.

    A keypoint whose two highest heatmap cells differ by less than twice the heatmap
    difference may move to the other cell in a correct conversion: it is left out.
    """
    names = ("keypoints", "heatmaps", "locref")[: len(reference)]
    differences = max_abs_differences(names, reference, converted)
    differences.pop("keypoints")
    ours, theirs = reference[0], converted[0]
    if ours.shape != theirs.shape:
        return differences | {"xy_px": float("inf"), "likelihood": float("inf")}
    heatmaps = reference[1]
    n, k = heatmaps.shape[:2]
    top2 = np.sort(heatmaps.reshape(n, k, -1), axis=2)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 2 * differences["heatmaps"] + 1e-6
    delta = np.abs(ours - theirs)
    xy = float(delta[..., :2][clear].max()) if clear.any() else 0.0
    return differences | {"xy_px": xy, "likelihood": float(delta[..., 2].max())}


def conversion_spec(
    export: DlcExport, head: HeadSpec, input_size: tuple[int, int]
) -> ConversionSpec:
    """How to export the module (dynamic batch, height and width)."""
    return ConversionSpec(
        sources=(export.path,),
        input_name=INPUT_NAME,
        output_names=output_names(head),
        example_shape=(1, 3, *input_size),
        dynamic_size=True,
        compare=compare_outputs,
        tolerances=TOLERANCES,
        fp16_tolerances=FP16_TOLERANCES,
    )


def load_deeplabcut(
    path: str | Path,
    frame_size: tuple[int, int] | None = None,
    precision: Precision = "fp32",
) -> ModelDescription:
    """Describe a DeepLabCut 3.0 export, converting it to ONNX on first use.

    Parameters
    ----------
    path
        The ``.pt`` file that ``deeplabcut.export_model`` wrote.
    frame_size
        (height, width) of the frames the model will see: the network runs at exactly this
        size, as DeepLabCut runs it at the frame's own size. Default 640x480.
    precision
        ``fp32`` (DeepLabCut's numbers) or ``fp16`` (half-precision network, float32 decoding).

    Returns
    -------
    ModelDescription
        ``framework="deeplabcut"``, ``output_kind="coordinates"``, ``model_file`` the ONNX
        graph, ``source_file`` the export.

    Raises
    ------
    ModelError
        When the file is not an export, holds an unsupported model (the message names what it
        holds), its weights do not fit its config (the message names the keys), or the
        conversion does not reproduce the network.
    """
    export = read_export(path)
    module = build_module(export)
    head = head_spec(export)
    height, width = frame_size or DEFAULT_FRAME_SIZE
    mean, std = normalisation(export)
    check = synthetic_input(height, width, mean, std)
    conversion = convert(module, conversion_spec(export, head, (height, width)), check, precision)
    colour = str(export.config.get("data", {}).get("colormode", "RGB")).lower()
    return ModelDescription(
        name=export.path.stem,
        framework=FRAMEWORK,
        model_file=conversion.onnx_file,
        keypoints=export.bodyparts,
        input_height=height,
        input_width=width,
        color_order="bgr" if colour == "bgr" else "rgb",
        mean=mean,
        std=std,
        resize="bilinear-float",
        output_kind="coordinates",
        stride=module.stride,
        decoder="argmax",
        heatmaps_are_probabilities=not head.apply_sigmoid,
        locref_std=head.locref_std,
        input_name=INPUT_NAME,
        output_names=("keypoints",),
        batch_size=None,
        precision=precision,
        source_file=export.path,
        any_input_size=True,
    )
