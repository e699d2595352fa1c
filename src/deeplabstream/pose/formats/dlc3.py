"""DeepLabCut 3.0 exported models (``deeplabcut.export_model``), run without DeepLabCut.

Design: docs/pose-internals.md, "pose.formats.dlc3".
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.formats import dlc3_dekr as dekr
from deeplabstream.pose.formats import dlc3_multianimal as paf
from deeplabstream.pose.formats.conversion import (
    Differences,
    Precision,
    load_weights,
    max_abs_differences,
)
from deeplabstream.pose.formats.dlc3_bottomup import FRAMEWORK, Normalisation, WholeFrameGraph
from deeplabstream.pose.formats.dlc3_dekr import (
    build_dekr_module,
    compare_dekr_outputs,
    dekr_problems,
    is_dekr,
    load_dlc_dekr,
)
from deeplabstream.pose.formats.dlc3_folders import snapshot_refusal
from deeplabstream.pose.formats.dlc3_heads import HeadSpec, head_spec, head_types
from deeplabstream.pose.formats.dlc3_multianimal import (
    build_paf_module,
    compare_paf_outputs,
    describe_identity,
    is_paf_bottomup,
    load_dlc_multianimal,
    paf_head_spec,
    paf_problems,
)
from deeplabstream.pose.formats.dlc3_topdown import (
    check_topdown,
    is_topdown,
    load_dlc_topdown,
    topdown_decoding_of,
    topdown_problems,
)
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD, ModelDescription, ModelError
from deeplabstream.pose.model_format import (
    ModelFormat,
    check_torch_file,
    source_file,
    unreadable,
    unreadable_reason,
)

DEEPLABCUT_EXPORT_ADVICE = (
    "not a readable DeepLabCut 3.0 export",
    "This program reads only DeepLabCut 3.0 exports it can load safely (weights and settings, "
    "no code): export the model again with deeplabcut.export_model and set MODEL_PATH (or "
    "--model) to the .pt file it writes.",
)
DEFAULT_FRAME_SIZE = (480, 640)  # height, width
SUPPORTED = (
    "supported: single-animal bottom-up models (method bu, no detector) with a CSPNeXt "
    "(cspnext_s/m/x), ResNet (resnet_50, resnet_101) or HRNet (hrnet_w18/32/48) backbone and "
    "one HeatmapHead, and single-animal top-down models with an SSDLite or a FasterRCNN "
    "(fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn_v2) detector and an "
    "RTMPose or a CSPNeXt/ResNet/HRNet HeatmapHead pose model, multi-animal top-down models "
    "with the same detectors and pose models, and multi-animal bottom-up "
    "models with a CSPNeXt/ResNet/HRNet or DLCRNet (dlcrnet_stride16_ms5/stride32_ms5) "
    "backbone and DeepLabCut's part-affinity-field head (DLCRNetHead), with or without an "
    "identity head, or DEKR (dekr_w18/32/48) (not yet: unique bodyparts, other detectors and "
    "FasterRCNN variants)"
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
    state_dict: dict[str, Any]  # name -> torch.Tensor
    other_entries: tuple[str, ...] = ()  # besides config and pose, e.g. a detector's weights

    @property
    def net_type(self) -> str:
        """DeepLabCut's name of the network (``cspnext_s``, ``resnet_50``, ...)."""
        return str(self.config.get("net_type", "?"))

    @property
    def bodyparts(self) -> tuple[str, ...]:
        """Keypoint names, in the order of the heatmaps."""
        return tuple(str(b) for b in self.config.get("metadata", {}).get("bodyparts") or ())


# --- reading and checking the file ------------------------------------------------------------


def read_export(path: str | Path, *, mmap: bool = False) -> DlcExport:
    """Load an export file without running any code from it (``weights_only``).

    With ``mmap`` the tensors stay on disk until used (torch's legacy format is read whole).
    """
    import torch  # optional and heavy: only to read an export

    path = Path(path)
    check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)  # missing, empty, not of torch.save
    mmap = mmap and zipfile.is_zipfile(path)  # torch maps only its zip format
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # a damaged zip, a pickle with code in it, not a torch file...
        raise unreadable(path, DEEPLABCUT_EXPORT_ADVICE, unreadable_reason(error)) from error
    if isinstance(data, dict) and "model" in data and "pose" not in data:
        raise ModelError(snapshot_refusal(path))  # a training snapshot: say what to export
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
    """Return the keypoint names of an export cheaply (weights mapped, not read).

    ModelError as :func:`read_export`.
    """
    import torch  # optional and heavy: only to read an export

    path = Path(path)
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
    """Check before a start that ``path`` is an export this program runs, weights unread.

    ModelError as :func:`read_export` and :func:`check_supported`.
    """
    export = read_export(path, mmap=True)
    if is_topdown(export.config, export.other_entries):
        check_topdown_supported(export)  # a detector + a pose model (pose.formats.dlc3_topdown)
        return
    if is_paf_bottomup(export.config):  # multi-animal (pose.formats.dlc3_multianimal)
        check_paf_supported(export)
        return
    if is_dekr(export.config):  # multi-animal DEKR (pose.formats.dlc3_dekr)
        check_dekr_supported(export)
        return
    check_supported(export)
    head_spec(export)


def check_topdown_supported(export: DlcExport) -> None:
    """Raise a ModelError naming what a top-down export holds when it is not supported."""
    problems = topdown_problems(export)
    if problems:
        raise ModelError(
            f"{export.path}: a DeepLabCut 3.0 export of {export.net_type} with a detector, "
            f"which this program cannot run: method {export.config.get('method')!r}, "
            f"{', '.join(problems)}; {SUPPORTED}. (The file holds {describe_holding(export)}.)"
        )
    check_topdown(export)


def describe_holding(export: DlcExport) -> str:
    """Describe what the export holds, in one line, for messages and ``pose.inspect``."""
    config = export.config
    model = config["model"]
    backbone = model.get("backbone") or {}
    heads = head_types(model)
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
    config = export.config
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
    heads = head_types(model)
    if heads != {"bodypart": "HeatmapHead"}:
        reasons.append(f"heads {heads}")
    if model.get("neck"):
        reasons.append("a neck")
    backbone = (model.get("backbone") or {}).get("type")
    if backbone not in ("CSPNeXt", "ResNet", "HRNet"):
        reasons.append(f"backbone {backbone}")
    refuse_problems(export, "export", reasons)
    check_preprocessing(export)


def check_paf_supported(export: DlcExport) -> None:
    """Raise a ModelError naming what a multi-animal PAF export holds when it is not supported."""
    refuse_problems(export, "multi-animal export", paf_problems(export))
    check_preprocessing(export)
    paf_head_spec(export)


def check_dekr_supported(export: DlcExport) -> None:
    """Raise a ModelError naming what a multi-animal DEKR export holds when it is not supported."""
    refuse_problems(export, "multi-animal DEKR export", dekr_problems(export))
    check_preprocessing(export)


def refuse_problems(export: DlcExport, kind: str, problems: list[str]) -> None:
    """Raise a ModelError naming the ``problems`` of a ``kind`` of export ([]: return)."""
    if problems:
        raise ModelError(
            f"{export.path}: a DeepLabCut 3.0 {kind} of {export.net_type} with "
            f"{', '.join(problems)}, which this program cannot run; {SUPPORTED}. "
            f"(The file holds {describe_holding(export)}.)"
        )


def check_preprocessing(export: DlcExport) -> None:
    """Raise a ModelError for missing bodyparts or pre-processing this program does not apply."""
    config, path = export.config, export.path
    backbone = (config["model"].get("backbone") or {}).get("type")
    if not export.bodyparts:
        raise ModelError(f"{path}: its config names no bodyparts (metadata.bodyparts)")
    transforms = config.get("data", {}).get("inference") or {}
    used = [name for name in _UNSUPPORTED_TRANSFORMS if transforms.get(name)]
    if backbone == "HRNet" and "auto_padding" in used:
        check_hrnet_padding(export, transforms["auto_padding"])
        used.remove("auto_padding")  # HRNet pads inside the network, as DeepLabCut asks
    if used:
        raise ModelError(
            f"{path}: its inference pre-processing uses {', '.join(used)}, which this program "
            f"does not apply; only normalize_images / scale_to_unit_range are supported"
        )
    colour = str(config.get("data", {}).get("colormode", "RGB")).upper()
    if colour not in ("RGB", "BGR"):
        raise ModelError(f"{path}: data.colormode {colour!r}, expected RGB or BGR")


def check_hrnet_padding(export: DlcExport, padding: Any) -> None:
    """Raise a ModelError unless ``auto_padding`` is HRNet's own (multiples of 32, reflect)."""
    padding = padding if isinstance(padding, dict) else {}
    divisors = (padding.get("pad_height_divisor"), padding.get("pad_width_divisor"))
    mode = str(padding.get("border_mode") or "reflect_101")
    if (
        padding.get("min_height")
        or padding.get("min_width")
        or any(d not in (None, 32) for d in divisors)
        or mode != "reflect_101"
    ):
        raise ModelError(
            f"{export.path}: its inference auto_padding {padding} is not HRNet's (sides "
            "padded to multiples of 32 with the reflect_101 border); this program applies "
            "only that one"
        )


# --- the network --------------------------------------------------------------------------------


def build_backbone(export: DlcExport) -> Any:
    """Build the backbone of the config (with ``stride`` and ``out_channels`` attributes)."""
    # torch: an optional, heavy dependency, imported only to rebuild a network.
    from deeplabstream.pose.networks.dlc import build_backbone as build

    return build(export.config["model"]["backbone"], export.path)


def build_module(export: DlcExport) -> Any:
    """Build the export's network with its weights and decoding, in eval mode (float32, CPU)."""
    # torch: an optional, heavy dependency, imported only to rebuild a network.
    from deeplabstream.pose.networks.dlc import DlcKeypointModel, DlcPoseNetwork

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
    """Return the backbone's total down-sampling (crops on multiples of it keep its grid)."""
    section = export.config["model"]["backbone"]
    if section.get("type") == "HRNet":
        return 32  # its lowest-resolution branch: stride 32
    if section.get("type") == "CSPNeXt":
        # torch: an optional, heavy dependency (the network's module holds its layouts).
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


def normalisation(export: DlcExport) -> Normalisation:
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
    """Differences of maps and keypoints; keypoints only where the peak is unambiguous."""
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


def load_deeplabcut(
    path: str | Path,
    frame_size: tuple[int, int] | None = None,
    precision: Precision = "fp32",
) -> ModelDescription:
    """Describe a DeepLabCut 3.0 ``.pt`` export, converting it to ONNX on first use.

    ``frame_size`` (height, width; default 640x480) is the size the network runs at. Raises
    ModelError when the file is not an export, holds an unsupported model, its weights do not fit
    its config, or the conversion does not reproduce the network; the message names which.
    """
    export = read_export(path)
    size = frame_size or DEFAULT_FRAME_SIZE
    if is_topdown(export.config, export.other_entries):  # a detector + a pose model
        check_topdown_supported(export)
        return load_dlc_topdown(export, size, precision)
    if is_paf_bottomup(export.config):  # multi-animal: peaks, fields, DeepLabCut's assembly
        check_paf_supported(export)
        return load_dlc_multianimal(export, size, precision, normalisation(export))
    if is_dekr(export.config):  # multi-animal DEKR: centres, offsets, DeepLabCut's pose NMS
        check_dekr_supported(export)
        return load_dlc_dekr(export, size, precision, normalisation(export))
    module = build_module(export)
    head = head_spec(export)
    graph = WholeFrameGraph(export, size, normalisation(export), precision)
    conversion = graph.convert(
        module, output_names(head), compare_outputs, TOLERANCES, FP16_TOLERANCES
    )
    return graph.describe(
        conversion,
        module.stride,
        decoder="argmax",
        heatmaps_are_probabilities=not head.apply_sigmoid,
        locref_std=head.locref_std,
        output_names=("keypoints",),
    )


# --- the format ---------------------------------------------------------------------------------


class DeepLabCutExport(ModelFormat):
    """A DeepLabCut 3.0 export (``.pt`` / ``.pth``), not part of a model of this project."""

    name = "DeepLabCut 3.0 export"
    converted = True

    def recognises(self, path: Path) -> bool:
        """Return True for a .pt or .pth file without a model.json beside it."""
        return (
            path.is_file()
            and path.suffix in (".pt", ".pth")
            and not (path.parent / "model.json").is_file()
        )

    def load(
        self, path: Path, frame_size: tuple[int, int] | None, precision: Precision
    ) -> ModelDescription:
        """Rebuild the network from the export and convert it (or reuse the cached graph)."""
        return load_deeplabcut(path, frame_size, precision)

    def check(self, path: Path) -> None:
        """Open the export (its tensors mapped, not read) and check what it holds."""
        check_torch_file(path, DEEPLABCUT_EXPORT_ADVICE)  # without importing torch
        check_export(path)

    def keypoints(self, path: Path) -> tuple[str, ...]:
        """Return the export's ``metadata.bodyparts`` (its weights are mapped, not read)."""
        return read_bodyparts(path)

    def describes(self, description: ModelDescription) -> bool:
        """Return True for a DeepLabCut model converted here."""
        return description.framework == FRAMEWORK and description.source_file is not None

    def input_multiple(self, description: ModelDescription) -> int | None:
        """Return the backbone's total down-sampling; a top-down model refuses dynamic cropping."""
        if topdown_decoding_of(description) is not None:
            raise ModelError(
                f"{description.source_file}: a DeepLabCut top-down model crops around its "
                "detector's box itself; set DYNAMIC_CROP = off for it"
            )
        return input_multiple_of_export(source_file(description))

    def framework_text(self, description: ModelDescription) -> str:
        """Return the DeepLabCut config version the export names."""
        version = read_export(source_file(description)).config.get("config_version", "?")
        return f"DeepLabCut 3.x export (PyTorch engine, config_version {version})"

    def network_text(self, description: ModelDescription) -> str:
        """Return what the export holds, in one line."""
        return describe_holding(read_export(source_file(description)))

    def decoding_text(self, description: ModelDescription) -> str:
        """Return DeepLabCut's decoding (in the graph) and its locref scale."""
        topdown = topdown_decoding_of(description)
        if topdown is not None:
            crop = topdown.crop
            heatmap = "heatmaps" in topdown.pose_outputs
            decoder = "argmax + location refinement" if heatmap else "SimCC argmax"
            detector = f"{topdown.detector_type} detector"
            if topdown.box_head_graph is not None:  # FasterRCNN: two graphs, steps between
                head = topdown.box_head_graph.name
                detector += (
                    " (this graph: backbone + FPN + RPN head at 800 px short side; torchvision's"
                    f" proposals, NMS and RoIAlign on the host; box head {head})"
                )
            boxes = "best box"
            if topdown.detection_limits is not None:  # pose.formats.dlc3_topdown_animals
                boxes = (
                    f"up to {description.max_animals} boxes, highest score first after "
                    f"torchvision's NMS ({topdown.detection_limits.nms_threshold:g})"
                )
            return (
                f"two stages: {detector} ({boxes}, frame size) -> "
                f"crop {crop.width}x{crop.height} (margin {crop.margin}, with context "
                f"{crop.with_context}, OpenCV bilinear) -> {topdown.net_type} ({decoder}, in "
                f"graph) -> frame pixels; pose graph {topdown.pose_graph.name}"
            )
        on_host = _HOST_DECODING.get(description.decoder)
        if on_host is None:
            return (
                "DeepLabCut's argmax + location refinement "
                f"(locref_std {description.locref_std:g}), in graph"
            )
        return on_host.format(animals=description.max_animals) + describe_identity(description)

    def build_module(self, source: Path) -> Any:
        """Return the DeepLabCut network rebuilt from the export (a top-down one's detector)."""
        export = read_export(source)
        if is_topdown(export.config, export.other_entries):
            from deeplabstream.pose.formats.dlc3_topdown import build_detector_module

            return build_detector_module(export)
        if is_paf_bottomup(export.config):
            return build_paf_module(export)
        if is_dekr(export.config):
            return build_dekr_module(export)
        return build_module(export)

    def comparison(self, description: ModelDescription) -> tuple[Any, dict[str, float]]:
        """Return DeepLabCut's comparison and the limits at the model's precision."""
        topdown = topdown_decoding_of(description)
        if topdown is not None and topdown.box_head_graph is not None:  # FasterRCNN
            from deeplabstream.pose.formats import dlc3_fasterrcnn

            return dlc3_fasterrcnn.compare_proposals, dlc3_fasterrcnn.PROPOSAL_TOLERANCES
        if topdown is not None:
            from deeplabstream.pose.formats import dlc3_topdown

            return dlc3_topdown.compare_detector, dlc3_topdown.DETECTOR_TOLERANCES
        compare, fp32_limits, fp16_limits = _COMPARISONS[description.decoder]
        return compare, fp32_limits if description.precision == "fp32" else fp16_limits


# The whole-frame multi-animal families, by decoder: what decodes on the host (besides the
# graph) and how a conversion is compared with DeepLabCut (limits at fp32 and at fp16).
_HOST_DECODING = {
    "dlc-dekr": "DeepLabCut's DEKRPredictor: 5x5 max-pool peaks in graph; centres, poses "
    "regressed from the offsets, matching to heatmap peaks and pose NMS on the host (up to "
    "{animals} per frame)",
    "dlc-assembly": "DeepLabCut's PartAffinityFieldPredictor: sigmoid, Gaussian smoothing and "
    "max-pool peaks in graph; peaks, PAF costs and DeepLabCut's assembly of individuals on the "
    "host (up to {animals} per frame)",
}
_COMPARISONS: dict[str, tuple[Callable[..., Differences], Differences, Differences]] = {
    "dlc-dekr": (compare_dekr_outputs, dekr.TOLERANCES, dekr.FP16_TOLERANCES),
    "dlc-assembly": (compare_paf_outputs, paf.TOLERANCES, paf.FP16_TOLERANCES),
    "argmax": (compare_outputs, TOLERANCES, FP16_TOLERANCES),
}
