"""DeepLabCut 3.0 multi-animal DEKR exports (``dekr_w18/32/48``), run without DeepLabCut.

Design: docs/pose-internals.md, "pose.formats.dlc3_dekr".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.dlc_dekr import OUTPUT_NAMES, DekrSettings
from deeplabstream.pose.formats.conversion import Differences, Precision, load_weights
from deeplabstream.pose.formats.dlc3_bottomup import WholeFrameGraph, map_differences, skeleton_of
from deeplabstream.pose.formats.dlc3_heads import bodypart_head_type, head_types
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlc_layouts import DekrHeadSpec

HEAD_TYPE = "DEKRHead"
PREDICTOR_TYPE = "DEKRPredictor"
# fp32: the graph's maps differ from PyTorch's by about 1e-6 (the offsets, through the
# deformable convolutions' grid sampling, by about 1e-5 cells); a wrong layer by 0.1 and more.
TOLERANCES: Differences = {"heatmaps": 1e-3, "peaks": 1e-3, "offsets": 1e-2}
FP16_TOLERANCES: Differences = {"heatmaps": 0.05, "peaks": 0.05, "offsets": 0.5}


def is_dekr(config: dict[str, Any]) -> bool:
    """Return True for an export whose bodypart head is DeepLabCut's ``DEKRHead``."""
    return bodypart_head_type(config) == HEAD_TYPE


def dekr_problems(export: Any) -> list[str]:
    """Return what keeps a DEKR export from running here ([]: nothing)."""
    config = export.config
    model = config["model"]
    problems = []
    heads = head_types(model)
    if set(heads) != {"bodypart"}:
        problems.append(f"heads {heads} (unique bodyparts or identity: not rebuilt yet)")
    predictor = (model["heads"]["bodypart"].get("predictor") or {}).get("type")
    if predictor != PREDICTOR_TYPE:
        problems.append(f"predictor {predictor}")
    backbone = model.get("backbone") or {}
    if backbone.get("type") != "HRNet":
        problems.append(f"backbone {backbone.get('type')} (DEKR is rebuilt on HRNet only)")
    if model.get("neck"):
        problems.append("a neck")
    if (config.get("metadata") or {}).get("unique_bodyparts"):
        problems.append("unique bodyparts")
    return problems


def _int(section: dict[str, Any], key: str, where: str, path: Any) -> int:
    try:
        return int(section[key])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: model.heads.bodypart.{where}.{key}: {error!r}") from None


def dekr_head_spec(export: Any, in_channels: int) -> DekrHeadSpec:
    """Read the head's layout from the config; ``in_channels`` the backbone's features."""
    head = export.config["model"]["heads"]["bodypart"]
    path = export.path
    heatmap = head.get("heatmap_config") or {}
    offset = head.get("offset_config") or {}
    try:
        heatmap_channels = [int(c) for c in heatmap["channels"]]
        offset_channels = [int(c) for c in offset["channels"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: the DEKRHead's channels are incomplete: {error!r}") from None
    keypoints = len(export.bodyparts)
    per = _int(offset, "num_offset_per_kpt", "offset_config", path)
    expected = (
        [in_channels, heatmap_channels[1], keypoints + 1],
        [in_channels, per * keypoints, keypoints],
    )
    if [heatmap_channels, offset_channels] != list(expected):
        raise ModelError(
            f"{path}: the DEKRHead's channels heatmap {heatmap_channels}, offset "
            f"{offset_channels} do not fit {keypoints} bodyparts and the backbone's "
            f"{in_channels} channels (expected {expected[0]}, {expected[1]})"
        )
    kernels = (
        _int(heatmap, "final_conv_kernel", "heatmap_config", path),
        _int(offset, "final_conv_kernel", "offset_config", path),
    )
    if any(k not in (1, 3) for k in kernels):
        raise ModelError(f"{path}: DEKR final_conv_kernel {kernels}; 1 or 3 expected")
    return DekrHeadSpec(
        in_channels=in_channels,
        heatmap_channels=heatmap_channels[1],
        heatmap_blocks=_int(heatmap, "num_blocks", "heatmap_config", path),
        heatmap_dilation=_int(heatmap, "dilation_rate", "heatmap_config", path),
        heatmap_kernel=kernels[0],
        keypoints=keypoints,
        offsets_per_keypoint=per,
        offset_blocks=_int(offset, "num_blocks", "offset_config", path),
        offset_dilation=_int(offset, "dilation_rate", "offset_config", path),
        offset_kernel=kernels[1],
    )


def _predictor(export: Any) -> dict[str, Any]:
    return dict(export.config["model"]["heads"]["bodypart"].get("predictor") or {})


def applies_sigmoid(export: Any) -> bool:
    """Whether the predictor applies a sigmoid to the heatmaps (DeepLabCut's default: yes)."""
    return bool(_predictor(export).get("apply_sigmoid", True))


def dekr_settings(export: Any, stride: float) -> DekrSettings:
    """Read the predictor's settings (DeepLabCut's defaults where absent)."""
    predictor = _predictor(export)
    individuals = (export.config.get("metadata") or {}).get("individuals") or []
    try:
        return DekrSettings(
            individuals=int(predictor.get("num_animals") or len(individuals)),
            stride=float(stride),
            use_heatmap=bool(predictor.get("use_heatmap", True)),
            keypoint_score_type=str(predictor.get("keypoint_score_type", "combined")),
            clip_scores=bool(predictor.get("clip_scores", False)),
            max_absorb_distance=float(predictor.get("max_absorb_distance", 75)),
            nms_threshold=float(predictor.get("nms_threshold", 0.05)),
            apply_pose_nms=bool(predictor.get("apply_pose_nms", True)),
        )
    except (TypeError, ValueError, ModelError) as error:
        raise ModelError(f"{export.path}: its DEKRPredictor settings: {error}") from None


def build_dekr_module(export: Any) -> Any:
    """Build the export's network with its weights and the predictor's per-cell steps."""
    # torch: an optional, heavy dependency, imported only to rebuild a network.
    from deeplabstream.pose.networks.dlc import build_backbone
    from deeplabstream.pose.networks.dlc_dekr import DlcDekrKeypointModel, DlcDekrNetwork

    backbone = build_backbone(export.config["model"]["backbone"], export.path)
    channels = int(getattr(backbone, "out_channels"))  # noqa: B009  (set by every backbone)
    network = DlcDekrNetwork(backbone, dekr_head_spec(export, channels))
    load_weights(network, export.state_dict, export.path, f"a {export.net_type} DEKR network")
    # DEKRHead's stride is 1: the model's stride is the backbone's.
    stride = float(getattr(backbone, "stride"))  # noqa: B009
    return DlcDekrKeypointModel(
        network, stride=stride, apply_sigmoid=applies_sigmoid(export)
    ).eval()


def compare_dekr_outputs(
    reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    """Largest differences of the maps; ``peaks`` where both call the cell a peak (not 0)."""
    return map_differences(OUTPUT_NAMES, reference, converted, 1, _nonzero)


def _nonzero(peaks: np.ndarray) -> np.ndarray:
    return peaks != 0  # the graph's peak map: the heatmap at a 5x5 maximum, 0 elsewhere


def load_dlc_dekr(
    export: Any,
    frame_size: tuple[int, int],
    precision: Precision,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]],
) -> ModelDescription:
    """Describe a DEKR export, converting its network to ONNX on first use."""
    module = build_dekr_module(export)
    graph = WholeFrameGraph(export, frame_size, normalisation, precision)
    conversion = graph.convert(
        module, OUTPUT_NAMES, compare_dekr_outputs, TOLERANCES, FP16_TOLERANCES
    )
    settings = dekr_settings(export, module.stride)
    return graph.describe(
        conversion,
        module.stride,
        decoder="dlc-dekr",
        output_names=OUTPUT_NAMES,
        skeleton=skeleton_of(export),
        max_animals=settings.individuals,
        decoding=settings,
    )
