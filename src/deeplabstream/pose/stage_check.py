"""Each graph of a model that runs several, and the whole model, checked on one frame.

Design: docs/pose-internals.md, "pose.stage_check".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.pose.formats.conversion import Differences, run_graph, run_module
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.model_format import source_file

#: The whole model's keypoints, graphs against rebuilt modules (fp32): 0.01 px.
WHOLE_TOLERANCES: Differences = {"xy_px": 1e-2, "likelihood": 1e-3}
#: The detector's kept boxes (x, y, w, h in frame pixels) and their scores.
BOX_TOLERANCES: Differences = {"boxes_px": 1e-2, "box_scores": 1e-4}


@dataclass(frozen=True)
class StageCheck:
    """One stage's (or the whole model's) comparison of the graphs with the rebuilt modules.

    ``differences``: largest absolute differences (inf: shapes or keypoints differ); ``limits`` the
    largest allowed (none: measured only).
    """

    stage: str
    graphs: tuple[Path, ...]
    compared: str
    differences: Differences
    limits: Differences = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """What the stage is, for messages: ``the heads graph``, ``the whole model``."""
        return "the whole model" if self.stage == "whole model" else f"the {self.stage} graph"

    @property
    def failed(self) -> list[str]:
        """The quantities beyond their limits."""
        return [k for k, v in self.differences.items() if not v <= self.limits.get(k, math.inf)]


def has_stages(description: ModelDescription) -> bool:
    """Return True for a converted model that runs more than one graph (checked here)."""
    return description.source_file is not None and _kind(description) is not None


def stage_parameters(description: ModelDescription) -> list[tuple[str, int]] | None:
    """Return each stage's parameter count (rebuilt networks), None for a one-graph model."""
    kind = _kind(description)
    if kind == "top-down":
        return _topdown_parameters(description)
    if kind == "context":
        tracker = _context_tracker(description)
        return [("backbone", _count(tracker.backbone)), ("heads", _count(tracker.head))]
    return None


def check_stages(
    description: ModelDescription, frames: Sequence[np.ndarray], centre: int, threads: int
) -> list[StageCheck]:
    """Check every graph and the whole model on ``frames[centre]`` (BGR uint8 frames)."""
    kind = _kind(description)
    if kind == "top-down":
        return _check_topdown(description, frames[centre], threads)
    if kind == "context":
        return _check_context(description, _context_window(frames, centre), threads)
    raise ValueError(f"{description.model_file}: a model of one graph (pose.inspect checks it)")


def _kind(description: ModelDescription) -> str | None:
    from deeplabstream.pose.formats.dlc3_topdown import topdown_decoding_of
    from deeplabstream.pose.formats.lightning_context import context_of

    if topdown_decoding_of(description) is not None:
        return "top-down"
    if context_of(description) is not None:
        return "context"
    return None


def _count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


# --- DeepLabCut top-down ------------------------------------------------------------------------


def _topdown_parameters(description: ModelDescription) -> list[tuple[str, int]]:
    from deeplabstream.pose.formats import dlc3_fasterrcnn
    from deeplabstream.pose.formats.dlc3 import read_export
    from deeplabstream.pose.formats.dlc3_topdown import (
        build_detector_module,
        build_pose_module,
        is_faster_rcnn,
        read_detector_weights,
    )

    export = read_export(source_file(description))
    if is_faster_rcnn(export.config):  # both graphs' networks (proposals and box head)
        detector = dlc3_fasterrcnn.build_detector(export, read_detector_weights(export))
    else:
        detector = build_detector_module(export)
    return [("detector", _count(detector)), ("pose network", _count(build_pose_module(export)))]


def _check_topdown(
    description: ModelDescription, frame: np.ndarray, threads: int
) -> list[StageCheck]:
    from deeplabstream.pose.formats.dlc3_topdown import DlcTopDownEstimator
    from deeplabstream.pose.loading import open_estimator, open_reference_estimator
    from deeplabstream.pose.runtime.backends import open_backend

    rebuilt = open_reference_estimator(description)  # the rebuilt modules, DeepLabCut's steps
    assert isinstance(rebuilt, DlcTopDownEstimator)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    graphs = open_estimator(description, backend, frame.shape)  # as the worker runs it
    assert isinstance(graphs, DlcTopDownEstimator)  # its boxes are compared too
    reference = rebuilt.estimate_animals([frame])
    converted = graphs.estimate_animals([frame])
    boxes = _paired_differences(
        np.asarray(rebuilt.last_boxes).reshape(-1, 4), np.asarray(graphs.last_boxes).reshape(-1, 4)
    )
    scores = _paired_differences(
        np.asarray(rebuilt.last_box_scores).reshape(-1, 1),
        np.asarray(graphs.last_box_scores).reshape(-1, 1),
    )
    box = _first_box(np.asarray(rebuilt.last_boxes).reshape(-1, 4), frame.shape)
    return [
        _topdown_detector(description, frame, (boxes, scores), threads),
        _topdown_pose(description, frame, box, threads),
        StageCheck(
            "whole model",
            _topdown_graphs(description),
            "keypoints in frame pixels: the graphs with DeepLabCut's steps between them "
            "(detector, top_down_crop, pose, back to the frame) vs the rebuilt networks with "
            "the same steps",
            keypoint_differences(reference, converted),
            WHOLE_TOLERANCES,
        ),
    ]


def _topdown_graphs(description: ModelDescription) -> tuple[Path, ...]:
    from deeplabstream.pose.formats.dlc3_topdown import topdown_decoding_of

    decoding = topdown_decoding_of(description)
    assert decoding is not None
    head = (decoding.box_head_graph,) if decoding.box_head_graph is not None else ()
    return (description.model_file, *head, decoding.pose_graph)


def _topdown_detector(
    description: ModelDescription, frame: np.ndarray, found: tuple[float, float], threads: int
) -> StageCheck:
    from deeplabstream.pose.formats.dlc3_topdown import topdown_decoding_of
    from deeplabstream.pose.model_format import build_torch_module, format_of_description
    from deeplabstream.pose.runtime.preprocess import Preprocessor

    decoding = topdown_decoding_of(description)
    model_format = format_of_description(description)
    assert decoding is not None and model_format is not None
    compare, limits = model_format.comparison(description)
    batch, _ = Preprocessor(description, frame.shape, 1).prepare([frame])
    module = build_torch_module(description)  # the detector graph's network
    graph = run_graph(description.model_file, description.input_name, batch, threads)
    differences = compare(run_module(module, batch), graph)
    graphs: tuple[Path, ...] = (description.model_file,)
    what = f"the detector graph's outputs ({', '.join(differences)}) on the frame"
    if decoding.box_head_graph is not None:
        graphs += (decoding.box_head_graph,)
        what += ", then the whole FasterRCNN (box-head graph and torchvision's steps): "
    else:
        what += ", then "
    what += "the boxes kept (x, y, w, h) and their scores"
    return StageCheck(
        "detector",
        graphs,
        what,
        differences | {"boxes_px": found[0], "box_scores": found[1]},
        limits | BOX_TOLERANCES,
    )


def _topdown_pose(
    description: ModelDescription, frame: np.ndarray, box: np.ndarray, threads: int
) -> StageCheck:
    from deeplabstream.pose.formats.dlc3 import read_export
    from deeplabstream.pose.formats.dlc3_topdown import (
        HEATMAP_POSE_TOLERANCES,
        POSE_TOLERANCES,
        build_pose_module,
        compare_pose,
        pixels,
        top_down_crop,
        topdown_decoding_of,
    )

    decoding = topdown_decoding_of(description)
    assert decoding is not None
    crop, _, _ = top_down_crop(frame, tuple(float(v) for v in box), decoding.crop)
    batch = pixels(crop, bgr=True)[None]
    module = build_pose_module(read_export(source_file(description)))
    differences = compare_pose(
        run_module(module, batch), run_graph(decoding.pose_graph, "crops", batch, threads)
    )
    heatmap = "heatmaps" in decoding.pose_outputs
    return StageCheck(
        "pose network",
        (decoding.pose_graph,),
        f"the pose graph on the {decoding.crop.width}x{decoding.crop.height} crop of the "
        f"rebuilt detector's box: {', '.join(differences)} (keypoints decoded in the graph, "
        "crop pixels)",
        differences,
        HEATMAP_POSE_TOLERANCES if heatmap else POSE_TOLERANCES,
    )


def _first_box(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return the first box found (x, y, w, h); the whole frame when the detector found none."""
    found = boxes[np.isfinite(boxes).all(axis=1)]
    if len(found):
        return np.asarray(found[0])
    return np.array([0.0, 0.0, float(shape[1]), float(shape[0])])


# --- Lightning Pose context models --------------------------------------------------------------


class _ModuleRunner:
    """A rebuilt module as a backend (:class:`~pose.runtime.backends.InferenceBackend`)."""

    name = "pytorch"
    provider = "torch cpu"

    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return run_module(self.module, np.asarray(batch, np.float32))

    def warm_up(self, batch_size: int | None = None) -> None:
        """Nothing to warm: the module runs as it is."""

    def close(self) -> None:
        """Nothing to release: the module is the caller's."""


def _context_tracker(description: ModelDescription) -> Any:
    from deeplabstream.pose.formats.lightning_ckpt import build_module, read_checkpoint

    return build_module(read_checkpoint(source_file(description)))


def _context_window(frames: Sequence[np.ndarray], centre: int) -> list[np.ndarray]:
    """Frames t-2 .. t+2 around ``frames[centre]``; the first or last stands in beyond the ends."""
    from deeplabstream.pose.formats.lightning_context import CENTRE

    last = len(frames) - 1
    return [frames[min(max(centre + d, 0), last)] for d in range(-CENTRE, CENTRE + 1)]


def _check_context(
    description: ModelDescription, window: list[np.ndarray], threads: int
) -> list[StageCheck]:
    from deeplabstream.pose.formats import lightning_context as context
    from deeplabstream.pose.loading import open_estimator
    from deeplabstream.pose.networks.lightning import ContextBackbone, ContextHeads
    from deeplabstream.pose.runtime.backends import open_backend
    from deeplabstream.pose.runtime.context import ContextEstimator
    from deeplabstream.pose.runtime.preprocess import Preprocessor

    stages = context.context_of(description)
    assert stages is not None
    tracker = _context_tracker(description)
    backbone, heads = ContextBackbone(tracker).eval(), ContextHeads(tracker).eval()
    fp32 = description.precision == "fp32"

    preprocessor = Preprocessor(description, window[0].shape, len(window))
    images, _ = preprocessor.prepare(window)
    reference_features = run_module(backbone, images)
    graph_features = run_graph(description.model_file, description.input_name, images, threads)
    stacked = reference_features[0].reshape(1, -1, *reference_features[0].shape[2:])
    compare_heads = context.heads_comparison(description.downsample_factor)
    heads_differences = compare_heads(
        run_module(heads, stacked),
        run_graph(stages.heads_file, context.FEATURES, stacked, threads),
    )

    rebuilt = open_estimator(
        description,
        _ModuleRunner(backbone),
        window[0].shape,
        max_batch=len(window),
        open_stage=lambda _: _ModuleRunner(heads),
    )
    assert isinstance(rebuilt, ContextEstimator)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    try:
        graphs = open_estimator(description, backend, window[0].shape, max_batch=len(window))
        assert isinstance(graphs, ContextEstimator)  # Lightning Pose's windows t-2 .. t+2
        converted = graphs.estimate_windows([window])
    finally:
        backend.close()
    reference = rebuilt.estimate_windows([window])
    return [
        StageCheck(
            "backbone",
            (description.model_file,),
            f"features of the {len(window)} frames t-2 .. t+2",
            context.features_comparison(reference_features, graph_features),
            context.FEATURE_TOLERANCES if fp32 else context.FEATURE_FP16_TOLERANCES,
        ),
        StageCheck(
            "heads",
            (stages.heads_file,),
            "both heads' heatmaps on the rebuilt backbone's features, and the keypoints "
            "Lightning Pose keeps from them (model pixels)",
            heads_differences,
            context.HEADS_TOLERANCES if fp32 else context.HEADS_FP16_TOLERANCES,
        ),
        StageCheck(
            "whole model",
            (description.model_file, stages.heads_file),
            "keypoints of the middle frame in frame pixels: backbone graph, heads graph and "
            "Lightning Pose's decoding vs the rebuilt network with the same decoding",
            keypoint_differences(reference, converted),
            WHOLE_TOLERANCES if fp32 else {},
        ),
    ]


# --- differences --------------------------------------------------------------------------------


def keypoint_differences(reference: np.ndarray, converted: np.ndarray) -> Differences:
    """Largest |dx|, |dy| (together) and |dlikelihood|; inf where one misses a keypoint."""
    ours = np.asarray(reference, np.float64).reshape(-1, 3)
    theirs = np.asarray(converted, np.float64).reshape(-1, 3)
    return {
        "xy_px": _paired_differences(ours[:, :2], theirs[:, :2]),
        "likelihood": _paired_differences(ours[:, 2:], theirs[:, 2:]),
    }


def _paired_differences(reference: np.ndarray, converted: np.ndarray) -> float:
    """Return the largest absolute difference of rows both found: inf on a mismatch, 0 for none."""
    if reference.shape != converted.shape:
        return math.inf
    missing = np.isnan(reference).any(axis=-1)
    if (missing != np.isnan(converted).any(axis=-1)).any():
        return math.inf
    if missing.all():
        return 0.0
    return float(np.abs(reference[~missing] - converted[~missing]).max())
