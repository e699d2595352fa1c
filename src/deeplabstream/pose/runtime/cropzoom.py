"""A Lightning Pose crop-zoom pair run as one two-stage model (live, replays, labelled images).

Design: docs/pose-models.md, "Lightning Pose crop-zoom pairs".
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from deeplabstream.pose.decoding.cropzoom import (
    boxes_valid,
    cut_box,
    lightning_boxes,
    lightning_video_crop,
    remap_from_crop,
    smooth_boxes,
    video_crop_size,
)
from deeplabstream.pose.decoding.two_stage import CropFrom, PreviousDetections, left_the_crop
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.lightning_cropzoom import STAGES, CropZoomStages, cropzoom_of
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.estimator import NetworkEstimator

#: ``crop_from = previous_frame``: the animal left a crop cut around the previous frame's box
#: when the median of its anchor keypoints is farther than this fraction of the box's side
#: from the box's centre (the box is centred on the anchors' mean).
LEFT_REACH = 0.25
#: Crop shapes whose pose pre-processing is kept (``crop_ratio`` boxes change size).
KEPT_CROP_SHAPES = 16


def stages_of(description: ModelDescription) -> CropZoomStages:
    """Return a crop-zoom pair's stages; ModelError for another model."""
    stages = cropzoom_of(description)
    if stages is None:
        raise ModelError(f"{description.model_file}: not a Lightning Pose crop-zoom pair")
    return stages


def stage_descriptions(description: ModelDescription) -> tuple[ModelDescription, ModelDescription]:
    """Return the detector's and the pose model's descriptions, resized as the pair is."""
    stages = stages_of(description)
    return (
        dataclasses.replace(stages.detector, resize=description.resize),
        dataclasses.replace(stages.pose, resize=description.resize),
    )


class CropZoomEstimator(PoseEstimator):
    """Frames in, keypoints in frame pixels out, for a Lightning Pose crop-zoom pair.

    ``last_boxes``: (N, 4) int64 x, y, h, w in frame pixels; -1 rows for frames without a box.
    """

    def __init__(
        self,
        description: ModelDescription,
        detector_backend: Any,
        pose_backend: Any,
        frame_shape: tuple[int, ...],
        crop_from: CropFrom = "same_frame",
    ) -> None:
        super().__init__(description)
        self.stages = stages_of(description)
        self.detector_description, self.pose_description = stage_descriptions(description)
        self.detector = NetworkEstimator(self.detector_description, detector_backend, frame_shape)
        self.pose_backend = pose_backend
        self._pose_estimators: OrderedDict[tuple[int, ...], NetworkEstimator] = OrderedDict()
        self._canvas: np.ndarray | None = None  # a crop over the frame's edge, kept
        self.last_boxes = np.empty((0, 4), np.int64)
        self.two_stage = True
        self.crop_from: CropFrom = crop_from
        self.previous: PreviousDetections = PreviousDetections()
        pose_names = self.pose_description.keypoints
        anchors = [n for n in self.stages.anchor_names if n in pose_names]
        # The pose model's keypoints that place the animal in its crop: the anchors it shares
        # with the detector, else all of them.
        self._placing = [pose_names.index(n) for n in anchors] or list(range(len(pose_names)))

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """(N, 1, K, 3) float64: x, y in frame pixels and the likelihood; NaN without a box.

        ``keys``: each frame's camera, for ``crop_from = previous_frame``; None: each frame's own
        box.
        """
        self.refresh()  # not called since the last frames (a caller that never does)
        t0 = time.perf_counter()
        n = len(frames)
        flip_list = [False] * n if flips is None else list(flips)
        stages = dict.fromkeys(STAGES, 0.0)
        if self.crop_from == "previous_frame":
            stages["refresh"], self.previous.refresh_s = self.previous.refresh_s, 0.0
        self.last_stage_timings = stages
        keypoints = np.full((n, 1, len(self.description.keypoints), 3), np.nan)
        cameras = None if keys is None else tuple(keys)
        previous = self.crop_from == "previous_frame" and self.previous.ready(cameras)
        if previous:
            assert cameras is not None
            boxes = np.stack([self.previous.detections[c] for c in cameras])
        else:
            boxes = self._detect(frames, flip_list, stages)
        left = self._crops_and_pose(frames, flip_list, boxes, keypoints, stages, previous)
        if left:  # the animal left the previous frame's box: this frame's own box after all
            boxes = self._detect(frames, flip_list, stages)
            self._crops_and_pose(frames, flip_list, boxes, keypoints, stages, False)
            previous = False
        if self.crop_from == "previous_frame" and cameras is not None:
            self.previous.count(cameras, previous)
            if previous:  # the detector on these frames once their keypoints are out
                self.previous.pending.append(([np.array(f) for f in frames], cameras, flip_list))
            else:
                self._keep_boxes(cameras, boxes)
        self.last_boxes = boxes
        total = time.perf_counter() - t0
        staged = stages["detector"] + stages["crop"] + stages["pose"]
        self.last_timings = {
            "preprocess": max(0.0, total - staged),
            "inference": staged,
            "decode": 0.0,
        }
        return keypoints

    def refresh(self) -> None:
        """Run the detector on the last frames for the next boxes (``previous_frame`` only)."""
        self.previous.run_pending(
            lambda frames, cameras, flips: self._keep_boxes(
                cameras, self._detect(frames, flips, {})
            )
        )

    def _keep_boxes(self, cameras: Sequence[Hashable], boxes: np.ndarray) -> None:
        for row, camera in enumerate(cameras):
            if boxes[row, 2] > 0:  # a frame without a box leaves the camera's last one
                self.previous.detections[camera] = np.array(boxes[row])

    def detect_keypoints(
        self, frames: Sequence[np.ndarray], flips: Sequence[bool] | None = None
    ) -> np.ndarray:
        """Return the detector's (N, Kd, 3) keypoints of frames, frame pixels."""
        return self.detector.estimate_animals(frames, flips)[:, 0]

    def _detect(
        self, frames: Sequence[np.ndarray], flips: Sequence[bool], stages: dict[str, float]
    ) -> np.ndarray:
        """Return each frame's box (N, 4) int64 from the detector's keypoints; -1 rows: none."""
        t0 = time.perf_counter()
        points = self.detect_keypoints(frames, flips)
        t1 = time.perf_counter()
        boxes = self.boxes_of(points)
        stages["detector"] = stages.get("detector", 0.0) + t1 - t0
        stages["crop"] = stages.get("crop", 0.0) + time.perf_counter() - t1
        return boxes

    def boxes_of(self, points: np.ndarray) -> np.ndarray:
        """Return the boxes (N, 4) of detector keypoints (N, Kd, 2+); -1 rows where undefined."""
        rule = self.stages.rule
        boxes = lightning_boxes(points, rule)
        boxes[~boxes_valid(points, rule)] = -1
        return boxes

    def pose_estimator(self, shape: tuple[int, ...]) -> NetworkEstimator:
        """Return the pose model's estimator for crops of ``shape`` (a few shapes kept)."""
        estimator = self._pose_estimators.get(shape)
        if estimator is None:
            estimator = NetworkEstimator(self.pose_description, self.pose_backend, shape)
            self._pose_estimators[shape] = estimator
            while len(self._pose_estimators) > KEPT_CROP_SHAPES:
                self._pose_estimators.popitem(last=False)
        else:
            self._pose_estimators.move_to_end(shape)
        return estimator

    def _crops_and_pose(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool],
        boxes: np.ndarray,
        keypoints: np.ndarray,
        stages: dict[str, float],
        check: bool,
    ) -> bool:
        """Cut each box, run the pose model, fill ``keypoints``; True when an animal left."""
        left = False
        for i, frame in enumerate(frames):
            box = boxes[i]
            if box[2] <= 0:  # no box (an anchor keypoint not found)
                keypoints[i] = np.nan
                continue
            t0 = time.perf_counter()
            crop = cut_box(frame, box, self._canvas)
            if crop.base is None:  # a padded copy: keep its buffer for the next such crop
                self._canvas = crop
            t1 = time.perf_counter()
            points = self.pose_estimator(crop.shape).estimate_animals([crop], [flips[i]])[0, 0]
            remap_from_crop(points, box, crop.shape[:2])
            keypoints[i, 0] = points
            t2 = time.perf_counter()
            stages["crop"] += t1 - t0
            stages["pose"] += t2 - t1
            if check:
                centre = np.array([box[0] + box[3] / 2, box[1] + box[2] / 2])
                reach = np.array([box[3], box[2]]) * LEFT_REACH
                left = left or left_the_crop(points[self._placing, :2], centre, reach)
        return left


# --- offline: Lightning Pose's own pipeline on a whole video -----------------------------------


def predict_video_as_lightning_pose(
    estimator: CropZoomEstimator,
    frames: Iterable[np.ndarray],
    smooth_window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lightning Pose's offline crop-zoom of a video: (N, K, 3) keypoints and (N, 4) boxes.

    As its predict, create_bbox, smooth_bbox, crop and remap, without re-encoding. Keeps every frame
    in memory (the median box size needs them all): for clips, not hours.
    """
    kept = [np.array(frame) for frame in frames]
    if not kept:
        raise ModelError("the video has no frames")
    points = np.concatenate([estimator.detect_keypoints([f]) for f in kept])
    boxes = lightning_boxes(points, estimator.stages.rule)
    if not boxes_valid(points, estimator.stages.rule).all():
        raise ModelError(
            "the detector found no anchor keypoint on some frames; Lightning Pose's boxes are "
            "undefined there"
        )
    if smooth_window:
        boxes = smooth_boxes(boxes, smooth_window)
    crops = [
        lightning_video_crop(frame, box, video_crop_size(boxes))
        for frame, box in zip(kept, boxes, strict=True)
    ]
    return pose_on_crops(estimator, crops, boxes), boxes


def pose_on_crops(
    estimator: CropZoomEstimator, crops: Sequence[np.ndarray], boxes: np.ndarray
) -> np.ndarray:
    """Run the pose model on crops of one size; add each box's corner: (N, K, 3) frame pixels."""
    out = np.empty((len(crops), len(estimator.description.keypoints), 3))
    for i, crop in enumerate(crops):
        points = estimator.pose_estimator(crop.shape).estimate_animals([crop])[0, 0]
        points[:, 0] += boxes[i, 0]
        points[:, 1] += boxes[i, 1]
        out[i] = points
    return out
