"""DeepLabCut 3.0's heads, read from an export's config (no PyTorch).

Which heads an export has (what tells its formats apart) and the shared ``HeatmapHead`` settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplabstream.pose.model import ModelError
from deeplabstream.pose.networks.dlc_layouts import DeconvSpec, HeadSpec


def head_types(model: dict[str, Any]) -> dict[str, Any]:
    """Return the ``type`` of each head of the config's ``model`` section, by head name."""
    return {name: (head or {}).get("type") for name, head in (model.get("heads") or {}).items()}


def bodypart_head_type(config: dict[str, Any]) -> Any:
    """Return the ``type`` of the export's bodypart head (None: it has none)."""
    heads = (config.get("model") or {}).get("heads") or {}
    return (heads.get("bodypart") or {}).get("type")


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


def head_spec(export: Any) -> HeadSpec:
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
