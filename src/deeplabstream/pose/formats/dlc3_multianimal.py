"""DeepLabCut 3.0 multi-animal bottom-up exports with part-affinity fields, run without DeepLabCut.

Design: docs/pose-internals.md, "pose.formats.dlc3_multianimal".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.dlc_assembly import (
    IDENTITY_OUTPUT,
    OUTPUT_NAMES,
    DlcAssemblySettings,
)
from deeplabstream.pose.decoding.dlc_identity import DlcIdentitySettings
from deeplabstream.pose.formats.conversion import Differences, Precision, load_weights
from deeplabstream.pose.formats.dlc3_bottomup import WholeFrameGraph, map_differences, skeleton_of
from deeplabstream.pose.formats.dlc3_heads import (
    _deconv_spec,
    bodypart_head_type,
    head_types,
)
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.networks.dlc_layouts import DeconvSpec, PafHeadSpec

HEAD_TYPE = "DLCRNetHead"
PREDICTOR_TYPE = "PartAffinityFieldPredictor"
SUPPORTED_BACKBONES = ("ResNet", "CSPNeXt", "HRNet", "DLCRNet")
IDENTITY_HEAD = "identity"
IDENTITY_HEAD_TYPE = "HeatmapHead"
IDENTITY_PREDICTOR = "IdentityPredictor"
# fp32: the graph's maps differ from PyTorch's by about 1e-6; a peak cell may flip only where
# two neighbours tie within that, which the comparison leaves out (see compare_paf_outputs).
# The identity head's logits (models with one) are compared as the fields are.
TOLERANCES: Differences = {"peaks": 1e-3, "locref": 1e-2, "pafs": 1e-3, "identity": 1e-3}
FP16_TOLERANCES: Differences = {"peaks": 0.05, "locref": 0.5, "pafs": 0.05, "identity": 0.5}


@dataclass(frozen=True)
class PafPredictorSpec:
    """The ``PartAffinityFieldPredictor``'s per-pixel settings (the rest: the assembly's)."""

    nms_radius: int
    sigma: float
    locref_std: float
    apply_sigmoid: bool


def is_paf_bottomup(config: dict[str, Any]) -> bool:
    """Return True for an export whose bodypart head is DeepLabCut's ``DLCRNetHead``."""
    return bodypart_head_type(config) == HEAD_TYPE


def paf_problems(export: Any) -> list[str]:
    """Return what keeps a PAF export from running here ([]: nothing)."""
    config = export.config
    model = config["model"]
    problems = []
    heads = head_types(model)
    if "unique_bodypart" in heads:
        problems.append(
            "a unique_bodypart head (bodyparts that belong to no individual: not rebuilt yet)"
        )
    others = set(heads) - {"bodypart", "unique_bodypart", IDENTITY_HEAD}
    if others:
        problems.append(f"heads {heads}")
    if IDENTITY_HEAD in heads:
        problems.extend(_identity_problems(model["heads"][IDENTITY_HEAD]))
    predictor = (model["heads"]["bodypart"].get("predictor") or {}).get("type")
    if predictor != PREDICTOR_TYPE:
        problems.append(f"predictor {predictor}")
    backbone = (model.get("backbone") or {}).get("type")
    if backbone not in SUPPORTED_BACKBONES:
        problems.append(f"backbone {backbone} ({', '.join(SUPPORTED_BACKBONES)} are)")
    if model.get("neck"):
        problems.append("a neck")
    if (config.get("metadata") or {}).get("unique_bodyparts") and "unique_bodypart" not in heads:
        problems.append("unique bodyparts (not rebuilt yet)")
    return problems


def _identity_problems(head: dict[str, Any]) -> list[str]:
    """Return what keeps an identity head from running here ([]: nothing)."""
    kind = (head or {}).get("type")
    predictor = ((head or {}).get("predictor") or {}).get("type")
    if kind != IDENTITY_HEAD_TYPE or predictor != IDENTITY_PREDICTOR:
        return [f"an identity head {kind} with predictor {predictor}"]
    if (head.get("heatmap_config") or {}).get("final_conv") or head.get("locref_config"):
        return ["an identity head with a final convolution or location refinement"]
    return []


def has_identity_head(export: Any) -> bool:
    """Return True for an export with DeepLabCut's identity head (``identity: true``)."""
    return IDENTITY_HEAD in (export.config["model"].get("heads") or {})


def identity_head_spec(export: Any) -> DeconvSpec:
    """Read the identity head's ``DeconvModule`` layout."""
    head = export.config["model"]["heads"][IDENTITY_HEAD]
    return _deconv_spec(head.get("heatmap_config"), "identity.heatmap_config", export.path)


def paf_head_spec(export: Any) -> PafHeadSpec:
    """Read the head's layout; input channels as DeepLabCut rewrites them when it builds it."""
    head = export.config["model"]["heads"]["bodypart"]
    path = export.path
    heatmap = _deconv_spec(head.get("heatmap_config"), "heatmap_config", path)
    locref = _deconv_spec(head.get("locref_config"), "locref_config", path)
    paf = _deconv_spec(head.get("paf_config"), "paf_config", path)
    stages = int(head.get("num_stages", 5))
    features = int(head.get("features_dim", 128))
    if stages > 0:  # the heads then take the last stage's concatenation, locref its own map
        refined = features + heatmap.channels[-1] + paf.channels[-1]
        heatmap = replace(heatmap, channels=(refined, *heatmap.channels[1:]))
        paf = replace(paf, channels=(refined, *paf.channels[1:]))
        locref = replace(locref, channels=(locref.channels[-1], *locref.channels[1:]))
    if not heatmap.stride == locref.stride == paf.stride:
        raise ModelError(f"{path}: the heatmap, locref and PAF heads upsample differently")
    return PafHeadSpec(heatmap, locref, paf, stages, features)


def predictor_spec(export: Any) -> PafPredictorSpec:
    """Read the predictor's per-pixel settings (DeepLabCut's defaults where absent)."""
    predictor = export.config["model"]["heads"]["bodypart"].get("predictor") or {}
    return PafPredictorSpec(
        nms_radius=int(predictor.get("nms_radius", 5)),
        sigma=float(predictor.get("sigma", 1.0)),
        locref_std=float(predictor.get("locref_stdev", 7.2801)),
        apply_sigmoid=bool(predictor.get("apply_sigmoid", True)),
    )


def identity_settings(export: Any, backbone_stride: float) -> DlcIdentitySettings | None:
    """Read the identity head's individuals and stride (None: no identity head)."""
    if not has_identity_head(export):
        return None
    spec = identity_head_spec(export)
    predictor = export.config["model"]["heads"][IDENTITY_HEAD].get("predictor") or {}
    individuals = tuple(_individuals(export))
    if spec.channels[-1] != len(individuals):
        raise ModelError(
            f"{export.path}: its identity head makes {spec.channels[-1]} maps for "
            f"{len(individuals)} individuals"
        )
    return DlcIdentitySettings(
        individuals=individuals,
        stride=backbone_stride / spec.stride,
        apply_sigmoid=bool(predictor.get("apply_sigmoid", True)),
    )


def assembly_settings(export: Any, stride: float) -> DlcAssemblySettings:
    """Read the assembly's settings: graph, edges kept, individuals, minimal affinity."""
    predictor = export.config["model"]["heads"]["bodypart"].get("predictor") or {}
    path = export.path
    try:
        graph = tuple((int(s), int(t)) for s, t in predictor["graph"])
        kept = predictor.get("edges_to_keep")
        edges = tuple(int(e) for e in kept) if kept is not None else tuple(range(len(graph)))
        individuals = int(predictor.get("num_animals") or len(_individuals(export)))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"{path}: its PartAffinityFieldPredictor is incomplete: {error!r}"
        ) from None
    try:
        return DlcAssemblySettings(
            graph=graph,
            edges_to_keep=edges,
            individuals=individuals,
            stride=stride,
            min_affinity=float(predictor.get("min_affinity", 0.05)),
            clip_scores=bool(predictor.get("clip_scores", False)),
        )
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None


def _individuals(export: Any) -> list[str]:
    return list((export.config.get("metadata") or {}).get("individuals") or [])


def _build_backbone(section: dict[str, Any], path: Any) -> Any:
    """Build the backbone: DLCRNet here, the others as single-animal exports do."""
    # torch: an optional, heavy dependency, imported only to rebuild a network.
    from deeplabstream.pose.networks.dlc import build_backbone

    if section.get("type") != "DLCRNet":
        return build_backbone(section, path)
    from deeplabstream.pose.networks.dlcrnet import DlcrnetBackbone

    name = str(section.get("model_name", "resnet50"))
    match = re.fullmatch(r"resnet(50|101|152)(_gn)?", name)
    stride = int(section.get("output_stride") or 32)
    if not match or stride not in (16, 32):
        raise ModelError(
            f"{path}: DLCRNet on {name!r} at output stride {stride}; DeepLabCut's "
            "dlcrnet_stride16_ms5 / dlcrnet_stride32_ms5 (resnet50, stride 16 or 32) are supported"
        )
    return DlcrnetBackbone(int(match.group(1)), "group" if match.group(2) else "batch", stride)


def build_paf_module(export: Any) -> Any:
    """Build the export's network with its weights and the predictor's per-pixel steps."""
    from deeplabstream.pose.networks.dlc_paf import DlcPafKeypointModel, DlcPafNetwork

    head = paf_head_spec(export)
    backbone = _build_backbone(export.config["model"]["backbone"], export.path)
    identity = identity_head_spec(export) if has_identity_head(export) else None
    network = DlcPafNetwork(backbone, head, identity)
    load_weights(network, export.state_dict, export.path, f"a {export.net_type} PAF network")
    keypoints, fields = head.heatmap.channels[-1], head.paf.channels[-1]
    graph = export.config["model"]["heads"]["bodypart"].get("predictor", {}).get("graph") or []
    if keypoints != len(export.bodyparts) or fields != 2 * len(graph):
        raise ModelError(
            f"{export.path}: the head makes {keypoints} heatmaps and {fields} field channels; "
            f"the config names {len(export.bodyparts)} bodyparts and {len(graph)} PAF edges"
        )
    predictor = predictor_spec(export)
    return DlcPafKeypointModel(
        network,
        stride=backbone.stride / head.stride,
        nms_radius=predictor.nms_radius,
        sigma=predictor.sigma,
        locref_std=predictor.locref_std,
        apply_sigmoid=predictor.apply_sigmoid,
    ).eval()


def compare_paf_outputs(
    reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]
) -> Differences:
    """Largest differences of the maps; ``peaks`` where both call the cell a peak (above 0)."""
    names = (*OUTPUT_NAMES, IDENTITY_OUTPUT)
    return map_differences(names, reference, converted, 0, _peak_cells)


def _peak_cells(peaks: np.ndarray) -> np.ndarray:
    return peaks > 0  # the graph's peak map: the smoothed heatmap at a maximum, 0 elsewhere


def load_dlc_multianimal(
    export: Any,
    frame_size: tuple[int, int],
    precision: Precision,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]],
) -> ModelDescription:
    """Describe a PAF export, converting its network to ONNX on first use."""
    module = build_paf_module(export)
    identity = identity_settings(export, float(module.network.backbone.stride))
    output_names = OUTPUT_NAMES if identity is None else (*OUTPUT_NAMES, IDENTITY_OUTPUT)
    graph = WholeFrameGraph(export, frame_size, normalisation, precision)
    conversion = graph.convert(
        module, output_names, compare_paf_outputs, TOLERANCES, FP16_TOLERANCES
    )
    settings = replace(assembly_settings(export, module.stride), identity=identity)
    if identity is not None and settings.individuals != len(identity.individuals):
        raise ModelError(  # DeepLabCut's assignment pairs pose rows with individuals
            f"{export.path}: an identity head for {len(identity.individuals)} individuals with "
            f"a predictor of {settings.individuals} animals; DeepLabCut assigns one to each"
        )
    return graph.describe(
        conversion,
        module.stride,
        decoder="dlc-assembly",
        locref_std=module.locref_std,
        output_names=output_names,
        # only a skeleton the metadata names: DeepLabCut's PAF graph links every pair of
        # keypoints (78 edges for 13), which is no skeleton to draw
        skeleton=skeleton_of(export),
        max_animals=settings.individuals,
        decoding=settings,
        # with an identity head, row i is always individual i (as sleap-nn's identity classes)
        identity_classes=() if identity is None else identity.individuals,
    )


def describe_identity(description: ModelDescription) -> str:
    """Describe the identity step of a PAF model for ``pose.inspect`` ('' without one)."""
    if not description.identity_classes:
        return ""
    return (
        "; DeepLabCut's identity head (logits in graph; resize, sigmoid and its assignment of "
        f"the animals to {', '.join(description.identity_classes)} on the host: row i = "
        "individual i, with an identity confidence)"
    )
