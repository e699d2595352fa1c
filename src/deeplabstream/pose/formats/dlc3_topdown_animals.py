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
from deeplabstream.pose.formats.dlc3_fasterrcnn import (
    NO_DETECTION,
    FasterRcnnRunner,
    box_head_description,
)
from deeplabstream.pose.formats.dlc3_topdown import (
    DlcTopDownEstimator,
    Runner,
    open_topdown_estimator,
    pose_stage_description,
    topdown_decoding_of,
)
from deeplabstream.pose.model import ModelDescription, ModelError


class FasterRcnnAnimalsRunner(FasterRcnnRunner):
    """Frames -> up to ``limits.max_individuals`` boxes per frame, DeepLabCut's order.

    Returns ``boxes`` (N, A, 4) x1, y1, x2, y2 in frame pixels (NaN: no box) and ``scores``
    (N, A) (``NO_DETECTION``: no box), A = ``limits.max_individuals``.
    """

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
        animals = self.limits.max_individuals
        boxes = np.full((count, animals, 4), np.nan, np.float32)
        scores = np.full((count, animals), NO_DETECTION, np.float32)
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
    """Frames -> up to ``limits.max_individuals`` SSDLite boxes per frame, DeepLabCut's order.

    ``run_graph`` gives every default box (N, B, 4) in 320 x 320 pixels and its score (N, B)
    (:class:`pose.networks.ssdlite.AllBoxesDetector`); returns ``boxes`` (N, A, 4) x1, y1, x2,
    y2 in frame pixels (NaN: no box) and ``scores`` (N, A) (``NO_DETECTION``: no box).
    """

    def __init__(self, run_graph: Runner, limits: DetectionLimits) -> None:
        self.run_graph = run_graph
        self.limits = limits

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        """``boxes`` (N, A, 4) in frame pixels and ``scores`` (N, A), best first per frame."""
        count, _, height, width = frames.shape
        animals = self.limits.max_individuals
        boxes = np.full((count, animals, 4), np.nan, np.float32)
        scores = np.full((count, animals), NO_DETECTION, np.float32)
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

    ``run_detector`` returns (N, A, 4) boxes and (N, A) scores (:class:`FasterRcnnAnimalsRunner`);
    A is the description's ``max_animals``. ``last_boxes`` (N, A, 4) x, y, w, h and
    ``last_box_scores`` (N, A), NaN where a frame has fewer boxes.
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
    """Open any DeepLabCut top-down model: several animals here, one by ``open_topdown_estimator``.

    The arguments are :func:`pose.formats.dlc3_topdown.open_topdown_estimator`'s.
    """
    decoding = topdown_decoding_of(description)
    if decoding is None or decoding.detection_limits is None:  # one animal: its best box
        return open_topdown_estimator(
            description,
            open_backend,
            backend,
            device=device,
            threads=threads,
            frame_shape=frame_shape,
            crop_from=crop_from,
        )
    return open_animals_estimator(
        description,
        open_backend,
        backend,
        device=device,
        threads=threads or 1,
        frame_shape=frame_shape,
        crop_from=crop_from,
    )


def open_animals_estimator(
    description: ModelDescription,
    open_backend: Callable[..., Any] | None,
    backend: Any,
    *,
    device: str,
    threads: int,
    frame_shape: tuple[int, ...] | None,
    crop_from: CropFrom,
) -> DlcTopDownAnimalsEstimator:
    """Open a multi-animal top-down estimator (for ``dlc3_topdown.open_topdown_estimator``).

    ``open_backend`` None runs the rebuilt PyTorch modules; else ONNX Runtime backends (the
    detector's ``backend`` given, or opened here).
    """
    from deeplabstream.pose.formats import dlc3_fasterrcnn, dlc3_topdown
    from deeplabstream.pose.formats.conversion import run_module

    decoding = topdown_decoding_of(description)
    if decoding is None or decoding.detection_limits is None:
        raise ModelError(
            f"{description.source_file or description.model_file}: not a DeepLabCut top-down "
            "model of several animals"
        )
    # [Pose] MAX_ANIMALS (the description's max_animals) plays DeepLabCut's max_individuals.
    limits = dataclasses.replace(decoding.detection_limits, max_individuals=description.max_animals)
    if decoding.box_head_graph is None:  # SSDLite: one graph, torchvision's steps on the host
        return _open_ssdlite_animals(
            description, open_backend, backend, limits, device=device, threads=threads,
            frame_shape=frame_shape, crop_from=crop_from,
        )  # fmt: skip
    if open_backend is None:  # the rebuilt modules, as DeepLabCut runs them
        export = dlc3_topdown._read_for_rebuild(description)
        networks = dlc3_fasterrcnn.build_detector(
            export, dlc3_topdown.read_detector_weights(export)
        )
        proposals = dlc3_fasterrcnn.proposal_module(networks)
        head = dlc3_fasterrcnn.box_head_module(networks)
        pose = dlc3_topdown.build_pose_module(export)
        detector = FasterRcnnAnimalsRunner(
            lambda batch: run_module(proposals, batch),
            lambda batch: run_module(head, batch),
            decoding.detector_settings,
            limits,
            threads,
        )
        return DlcTopDownAnimalsEstimator(
            description,
            detector,
            lambda batch: run_module(pose, batch),
            frame_shape,
            crop_from,
        )
    if backend is None:
        backend = open_backend(description, "onnxruntime", device, threads)
    pose_backend = open_backend(pose_stage_description(description), "onnxruntime", device, threads)
    head_backend = open_backend(box_head_description(description), "onnxruntime", device, threads)
    detector = FasterRcnnAnimalsRunner(
        backend.run, head_backend.run, decoding.detector_settings, limits, threads
    )
    return DlcTopDownAnimalsEstimator(
        description, detector, pose_backend.run, frame_shape, crop_from
    )


def _open_ssdlite_animals(
    description: ModelDescription,
    open_backend: Callable[..., Any] | None,
    backend: Any,
    limits: DetectionLimits,
    *,
    device: str,
    threads: int,
    frame_shape: tuple[int, ...] | None,
    crop_from: CropFrom,
) -> DlcTopDownAnimalsEstimator:
    """Open a multi-animal top-down estimator whose detector is an SSDLite (as above)."""
    from deeplabstream.pose.formats import dlc3_topdown
    from deeplabstream.pose.formats.conversion import run_module

    if open_backend is None:  # the rebuilt modules, as DeepLabCut runs them
        export = dlc3_topdown._read_for_rebuild(description)
        detector = dlc3_topdown.build_detector_module(export)
        pose = dlc3_topdown.build_pose_module(export)
        return DlcTopDownAnimalsEstimator(
            description,
            SsdLiteAnimalsRunner(lambda batch: run_module(detector, batch), limits),
            lambda batch: run_module(pose, batch),
            frame_shape,
            crop_from,
        )
    if backend is None:
        backend = open_backend(description, "onnxruntime", device, threads)
    pose_backend = open_backend(pose_stage_description(description), "onnxruntime", device, threads)
    return DlcTopDownAnimalsEstimator(
        description,
        SsdLiteAnimalsRunner(backend.run, limits),
        pose_backend.run,
        frame_shape,
        crop_from,
    )
