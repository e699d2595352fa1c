"""DeepLabCut 3.0 top-down exports with several individuals: one box and one crop per animal.

Design: docs/pose-internals.md, "pose.formats.dlc3_topdown_animals".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from deeplabstream.pose.decoding import region_proposals as rp
from deeplabstream.pose.decoding.box_detections import (
    DetectionLimits,
    animal_detections,
    ssd_animal_detections,
)
from deeplabstream.pose.decoding.two_stage import CropFrom
from deeplabstream.pose.formats import dlc3_fasterrcnn
from deeplabstream.pose.formats.conversion import run_module
from deeplabstream.pose.formats.dlc3_fasterrcnn import (
    NO_DETECTION,
    FasterRcnnRunner,
    box_head_description,
)
from deeplabstream.pose.formats.dlc3_topdown import (
    DlcTopDownEstimator,
    Runner,
    build_detector_module,
    build_pose_module,
    pose_stage_description,
    read_detector_weights,
    read_for_rebuild,
    topdown_decoding_of,
)
from deeplabstream.pose.model import ModelDescription, ModelError


def _no_boxes(count: int, animals: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (count, animals, 4) NaN boxes and (count, animals) scores of ``NO_DETECTION``."""
    boxes = np.full((count, animals, 4), np.nan, np.float32)
    return boxes, np.full((count, animals), NO_DETECTION, np.float32)


class FasterRcnnAnimalsRunner(FasterRcnnRunner):
    """Frames -> (N, A, 4) x1, y1, x2, y2 boxes (NaN: none), (N, A) scores; DeepLabCut's order."""

    def __init__(
        self,
        run_proposals: Runner,
        run_box_head: Runner,
        settings: rp.FasterRcnnSettings,
        limits: DetectionLimits,
        threads: int = 1,
    ) -> None:
        super().__init__(run_proposals, run_box_head, settings, threads)
        self.limits = limits

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        """``boxes`` (N, A, 4) in frame pixels and ``scores`` (N, A), best first per frame."""
        count, _, height, width = frames.shape
        boxes, scores = _no_boxes(count, self.limits.max_individuals)
        plan = rp.resize_plan(height, width, self.settings)
        for row in range(count):
            found = self.detect(frames[row], plan)
            if found is None:  # no proposal at all
                continue
            kept, kept_scores = found
            boxes[row, : len(kept)] = rp.to_frame(kept, plan, (height, width))
            scores[row, : len(kept)] = kept_scores
        return [boxes, scores]

    def boxes_of(
        self,
        class_logits: np.ndarray,
        box_deltas: np.ndarray,
        proposals: np.ndarray,
        plan: rp.ResizePlan,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every kept box (M, 4) in resized pixels and its score, best first."""
        return animal_detections(
            class_logits, box_deltas, proposals, plan.resized, self.settings, self.limits
        )


class SsdLiteAnimalsRunner:
    """Frames -> (N, A, 4) SSDLite boxes (NaN: none) and (N, A) scores, DeepLabCut's order."""

    def __init__(self, run_graph: Runner, limits: DetectionLimits) -> None:
        self.run_graph = run_graph
        self.limits = limits

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        """``boxes`` (N, A, 4) in frame pixels and ``scores`` (N, A), best first per frame."""
        count, _, height, width = frames.shape
        boxes, scores = _no_boxes(count, self.limits.max_individuals)
        every_box, every_score = (np.asarray(o) for o in self.run_graph(frames)[:2])
        for row in range(count):
            kept, kept_scores = ssd_animal_detections(
                every_box[row], every_score[row], (height, width), self.limits
            )
            boxes[row, : len(kept)] = kept
            scores[row, : len(kept)] = kept_scores
        return [boxes, scores]


class DlcTopDownAnimalsEstimator(DlcTopDownEstimator):
    """Frames in, (N, A, K, 3) keypoints out: one row per box, in DeepLabCut's order.

    ``last_boxes`` (N, A, 4) x, y, w, h and ``last_box_scores`` (N, A), NaN past a frame's boxes.
    """

    def __init__(
        self,
        description: ModelDescription,
        run_detector: Runner,
        run_pose: Runner,
        frame_shape: tuple[int, ...] | None = None,
        crop_from: CropFrom = "same_frame",
    ) -> None:
        if crop_from != "same_frame":
            raise ModelError(
                f"{description.source_file or description.model_file}: [Pose] CROP_FROM = "
                f"{crop_from} is not implemented for a DeepLabCut top-down model with several "
                "animals; set CROP_FROM = same_frame"
            )
        super().__init__(description, run_detector, run_pose, frame_shape, crop_from)

    _one_box_per_frame = False


@dataclasses.dataclass(frozen=True)
class _Stages:
    """The runners of a top-down model's graphs; ``box_head`` None for an SSDLite detector."""

    detector: Runner  # an SSDLite's boxes, or a FasterRCNN's proposals
    box_head: Runner | None
    pose: Runner


def open_dlc_topdown_estimator(
    description: ModelDescription,
    open_backend: Callable[..., Any] | None = None,
    backend: Any = None,
    *,
    device: str = "cpu",
    threads: int | None = None,
    frame_shape: tuple[int, ...] | None = None,
    crop_from: CropFrom = "same_frame",
) -> DlcTopDownEstimator:
    """Open a DeepLabCut top-down model (detector + pose), of one animal or several.

    ``open_backend`` is passed in (the formats sit below the runtime); None runs the rebuilt
    modules. ``backend``: the detector's opened backend (None: opened here).
    """
    decoding = topdown_decoding_of(description)
    if decoding is None:
        raise ModelError(f"{description.model_file}: not a DeepLabCut top-down model")
    threads = threads or 1
    if open_backend is None:
        stages = _rebuilt_stages(description, decoding.box_head_graph is not None)
    else:
        stages = _onnx_stages(description, open_backend, backend, device, threads)
    if decoding.detection_limits is None:  # one animal: its best box
        run_detector = stages.detector
        if stages.box_head is not None:
            run_detector = FasterRcnnRunner(
                stages.detector, stages.box_head, decoding.detector_settings, threads
            )
        return DlcTopDownEstimator(description, run_detector, stages.pose, frame_shape, crop_from)
    # [Pose] MAX_ANIMALS (the description's max_animals) plays DeepLabCut's max_individuals.
    limits = dataclasses.replace(decoding.detection_limits, max_individuals=description.max_animals)
    animals_detector: Runner = SsdLiteAnimalsRunner(stages.detector, limits)
    if stages.box_head is not None:
        animals_detector = FasterRcnnAnimalsRunner(
            stages.detector, stages.box_head, decoding.detector_settings, limits, threads
        )
    return DlcTopDownAnimalsEstimator(
        description, animals_detector, stages.pose, frame_shape, crop_from
    )


def _rebuilt_stages(description: ModelDescription, faster_rcnn: bool) -> _Stages:
    """Return the runners of the export's rebuilt PyTorch modules."""
    export = read_for_rebuild(description)
    pose = build_pose_module(export)
    if not faster_rcnn:
        detector = build_detector_module(export)
        return _Stages(
            lambda batch: run_module(detector, batch), None, lambda batch: run_module(pose, batch)
        )
    networks = dlc3_fasterrcnn.build_detector(export, read_detector_weights(export))
    proposals = dlc3_fasterrcnn.proposal_module(networks)
    head = dlc3_fasterrcnn.box_head_module(networks)
    return _Stages(
        lambda batch: run_module(proposals, batch),
        lambda batch: run_module(head, batch),
        lambda batch: run_module(pose, batch),
    )


def _onnx_stages(
    description: ModelDescription,
    open_backend: Callable[..., Any],
    backend: Any,
    device: str,
    threads: int,
) -> _Stages:
    """Return the runners of the converted graphs on ONNX Runtime (the detector's ``backend``)."""
    if backend is None:
        backend = open_backend(description, "onnxruntime", device, threads)
    pose = open_backend(pose_stage_description(description), "onnxruntime", device, threads)
    decoding = topdown_decoding_of(description)
    if decoding is None or decoding.box_head_graph is None:  # SSDLite: one graph
        return _Stages(backend.run, None, pose.run)
    head = open_backend(box_head_description(description), "onnxruntime", device, threads)
    return _Stages(backend.run, head.run, pose.run)
