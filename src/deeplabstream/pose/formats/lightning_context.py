"""Lightning Pose context models (``model_type: heatmap_mhcrnn``), run without Lightning Pose.

Design: docs/pose-internals.md, "pose.formats.lightning_context".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.lightning import decode_lightning_pose
from deeplabstream.pose.formats.conversion import (
    Comparison,
    Differences,
    max_abs_differences,
)
from deeplabstream.pose.model import ModelDescription, ModelError

CONTEXT_FRAMES = 5
CENTRE = CONTEXT_FRAMES // 2
FEATURES = "features"
HEADS_OUTPUTS = ("heatmaps_sf", "heatmaps_mf")
LIVE_MODE = "causal"
#: The parts of the model's time in ``pose_timing.csv`` (``backbone_ms``, ``heads_ms``).
STAGE_NAMES = ("backbone", "heads")
LIVE_CONTEXT_TEXT = (
    "causal: frame t with the camera's two previously analysed frames as t-2, t-1 and itself "
    "as t+1, t+2 (Lightning Pose's end-of-sequence padding); no delay added"
)
OFFLINE_CONTEXT_TEXT = (
    "Lightning Pose's: frames t-2 .. t+2 (frames 0, 1 take frame 2's result; the last two "
    "the third last's)"
)
IMAGES_CONTEXT_TEXT = (
    "Lightning Pose's: the files numbered 2 below to 2 above the image's; a missing one is the "
    "image itself"
)
# The backbone's features: ONNX Runtime differs from PyTorch by about 1e-5.
FEATURE_TOLERANCES: Differences = {FEATURES: 1e-3}
FEATURE_FP16_TOLERANCES: Differences = {FEATURES: 1.0}
HEADS_TOLERANCES: Differences = {"heatmaps": 1e-4, "xy_px": 0.01, "likelihood": 1e-3}
HEADS_FP16_TOLERANCES: Differences = {"heatmaps": 0.01}


@dataclass(frozen=True)
class ContextStages:
    """What a context model's description carries beyond the backbone graph (``decoding``)."""

    heads_file: Path
    feature_shape: tuple[int, int, int]  # C, h, w of one frame's features
    frames: int = CONTEXT_FRAMES
    live: str = LIVE_MODE

    def summary(self) -> dict[str, Any]:
        """Return what ``session.json`` says about the context (the model entry's ``context``)."""
        return {
            "frames": self.frames,
            "offsets": list(range(-CENTRE, CENTRE + 1)),
            "live_mode": self.live,
            "live": LIVE_CONTEXT_TEXT,
            "delay_frames": 0,
            "heads_graph": str(self.heads_file),
        }


def context_of(description: ModelDescription) -> ContextStages | None:
    """Return the context stages of a context model's description, None for other models."""
    return description.decoding if isinstance(description.decoding, ContextStages) else None


def context_text(description: ModelDescription, backbone: str) -> str:
    """Return a context model's network in words, its stages and context (``inspect``)."""
    stages = context_of(description)
    channels, h, w = stages.feature_shape if stages is not None else ("?", "?", "?")
    heads = stages.heads_file if stages is not None else "?"
    return (
        f"context tracker (heatmap_mhcrnn), backbone {backbone}, downsample_factor "
        f"{description.downsample_factor}; {CONTEXT_FRAMES} context frames t-2 .. t+2; two "
        f"stages: the backbone graph per frame ({description.input_width}x"
        f"{description.input_height} -> {channels}x{h}x{w} features, kept per camera), then "
        f"the heads graph ({heads}) on the {CONTEXT_FRAMES} frames' features: single-frame and "
        f"multi-frame heatmaps, the likelier kept per keypoint. Live and replays: "
        f"{LIVE_CONTEXT_TEXT}. Video offline (python -m "
        f"deeplabstream.pose.context_video): {OFFLINE_CONTEXT_TEXT}. Labelled "
        f"images (utils/ImageAnalyzer.py): {IMAGES_CONTEXT_TEXT}"
    )


def context_stages(description: ModelDescription) -> tuple[str, ...]:
    """Return the stages a context model's timing files show apart (``backbone``, ``heads``)."""
    return STAGE_NAMES if context_of(description) is not None else ()


def context_summary(description: ModelDescription) -> dict[str, Any]:
    """``{"context": ...}`` for a context model's ``session.json`` entry, {} for the others."""
    stages = context_of(description)
    return {} if stages is None else {"context": stages.summary()}


# --- conversion ---------------------------------------------------------------------------------


def features_comparison(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]) -> Any:
    """Largest difference of the backbone's features."""
    return max_abs_differences((FEATURES,), reference, converted)


def heads_comparison(downsample_factor: int) -> Comparison:
    """Differences of both heads' heatmaps and of the keypoints Lightning Pose would keep."""

    def compare(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray]) -> Differences:
        maps = max(
            max_abs_differences((name,), [r], [c])[name]
            for name, r, c in zip(HEADS_OUTPUTS, reference, converted, strict=True)
        )
        if not np.isfinite(maps):
            return {"heatmaps": maps, "xy_px": float("inf"), "likelihood": float("inf")}
        ours = combine_heads(reference[0], reference[1], downsample_factor)
        theirs = combine_heads(
            converted[0].astype(np.float32), converted[1].astype(np.float32), downsample_factor
        )
        delta = np.abs(ours - theirs)
        return {
            "heatmaps": maps,
            "xy_px": float(delta[..., :2].max()),
            "likelihood": float(delta[..., 2].max()),
        }

    return compare


def heads_description(description: ModelDescription) -> ModelDescription:
    """Return the description of the heads graph (what its backend opens)."""
    stages = context_of(description)
    if stages is None:
        raise ModelError(f"{description.model_file}: not a Lightning Pose context model")
    return dataclasses.replace(
        description,
        model_file=stages.heads_file,
        input_name=FEATURES,
        output_names=HEADS_OUTPUTS,
        source_file=None,
        decoding=None,
    )


# --- decoding -----------------------------------------------------------------------------------


def combine_heads(single: np.ndarray, multi: np.ndarray, downsample_factor: int) -> np.ndarray:
    """Lightning Pose's keypoints of a context model: (N, K, 3) in model-input pixels."""
    keypoints = single.shape[1]
    # One call for both heads' maps (the decoder works through them in groups).
    both = decode_lightning_pose(np.concatenate([single, multi], axis=1), downsample_factor)
    single_points, multi_points = both[:, :keypoints], both[:, keypoints:]
    # Lightning Pose compares its float32 confidences.
    better = multi_points[..., 2].astype(np.float32) > single_points[..., 2].astype(np.float32)
    return np.where(better[..., None], multi_points, single_points)


# --- the estimator ------------------------------------------------------------------------------


# --- labelled images ----------------------------------------------------------------------------


def context_image_paths(path: Path) -> list[Path]:
    """Lightning Pose's context files of a labelled image (``get_context_img_paths``)."""
    match = re.search(r"(\d+)", path.stem)
    if match is None:
        return [path] * CONTEXT_FRAMES
    digits = match.group()
    centre = int(digits)
    paths = []
    for index in range(centre - CENTRE, centre + CENTRE + 1):
        stem = path.stem.replace(digits, str(max(index, 0)).zfill(len(digits)))
        candidate = path.with_name(stem + path.suffix)
        paths.append(candidate if candidate.is_file() else path)
    return paths
