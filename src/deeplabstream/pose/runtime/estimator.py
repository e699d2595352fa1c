"""Frames in, keypoints in frame pixels out: pre-processing, a backend, a decoder.

Design: docs/pose-internals.md, "pose.runtime.estimator".
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import numpy as np

from deeplabstream.pose.decoding.sleap_topdown import (
    CropCutter,
    decode_two_stages,
    instance_stage_description,
    topdown_decoding_of,
)
from deeplabstream.pose.decoding.two_stage import CropFrom, PreviousDetections
from deeplabstream.pose.estimation import TIMED_PARTS, PoseEstimator
from deeplabstream.pose.model import Decoded, ModelDescription
from deeplabstream.pose.runtime.backends import (
    InferenceBackend,
    open_backend,
    second_graph_device,
    second_graph_threads,
)
from deeplabstream.pose.runtime.preprocess import Preprocessor


class NetworkEstimator(PoseEstimator):
    """Keypoints of frames, in the frames' pixels, by a network and its decoder.

    A fixed-batch model gets exactly its batch (the last padded). ``crop_from``: sleap-nn top-down
    models only.
    """

    def __init__(
        self,
        description: ModelDescription,
        backend: InferenceBackend,
        frame_shape: tuple[int, ...],
        max_batch: int = 1,
        crop: tuple[int, int, int, int] | None = None,
        crop_from: CropFrom = "same_frame",
    ) -> None:
        super().__init__(description)
        self.backend = backend
        self.batch = description.batch_size or max_batch
        # The backend's own host buffers (pinned memory on a GPU) where it has them: the frame
        # is written once, where IO binding hands it to the network.
        allocate = getattr(backend, "host_buffer", None)
        self.preprocessor = Preprocessor(description, frame_shape, self.batch, crop, allocate)
        # A two-stage model (sleap-nn top-down): the second network, on a backend of its own.
        self.second_stage = open_second_stage(description, backend)
        self.cutter: CropCutter | None = None
        if self.second_stage is not None:  # the crops' buffers, kept between frames
            self.cutter = CropCutter(topdown_decoding_of(description).crop_size)
        #: True for a model in two stages (a detector, the pose model on crops).
        self.two_stage = self.second_stage is not None
        self.crop_from: CropFrom = crop_from if self.two_stage else "same_frame"
        #: Each camera's last centroids (``crop_from = previous_frame``).
        self.previous: PreviousDetections = PreviousDetections()
        self._keys: tuple[Hashable, ...] | None = None
        self._more = False

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """(N, A, K, 3) keypoints of every animal of each frame, in batches of ``max_batch``."""
        n = len(frames)
        flips = [False] * n if flips is None else list(flips)
        if len(flips) != n:
            raise ValueError(f"{len(flips)} flips for {n} frames")
        keypoints = np.empty((n, self.animals, len(self.description.keypoints), 3), np.float64)
        classes = bool(self.description.identity_classes)
        confidence = np.full((n, self.animals), np.nan) if classes else None
        timings = dict.fromkeys(TIMED_PARTS, 0.0)
        if self.second_stage is not None:
            self.refresh()  # not called since the last frames (a caller that never does)
            refresh_s, self.previous.refresh_s = self.previous.refresh_s, 0.0
            self.last_stage_timings = dict.fromkeys(("centroid", "crop", "instance", "peaks"), 0.0)
            if self.crop_from == "previous_frame":
                self.last_stage_timings["refresh"] = refresh_s
        for start in range(0, n, self.batch):
            stop = min(start + self.batch, n)
            self._keys = None if keys is None else tuple(keys[start:stop])
            self._more = stop < n  # the preprocessor's buffer is reused for the next batch
            keypoints[start:stop], batch_confidence = self._estimate_batch(
                frames[start:stop], flips[start:stop], timings
            )
            if confidence is not None and batch_confidence is not None:
                confidence[start:stop] = batch_confidence
        self.last_timings = timings
        self.last_identity_confidence = confidence
        return keypoints

    def refresh(self) -> None:
        """Run the centroid stage on the last frames for the next crops (``previous_frame``)."""
        self.previous.run_pending(
            lambda batch, keys: self._keep_centroids(keys, self.backend.run(batch))
        )

    def _keep_centroids(self, keys: Sequence[Hashable], outputs: list[np.ndarray]) -> None:
        """Keep each frame's centroid outputs, by its camera."""
        for row, key in enumerate(keys):
            self.previous.detections[key] = [np.array(o[row : row + 1]) for o in outputs]

    def _estimate_batch(
        self, frames: Sequence[np.ndarray], flips: Sequence[bool], timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Keypoints and identity confidences of at most one batch; adds to ``timings``."""
        n = len(frames)
        t0 = time.perf_counter()
        # A graph of fixed batch size takes whole batches: the buffer's other slots pad it.
        fixed = self.description.batch_size is not None
        batch, transforms = self.preprocessor.prepare(frames, flips, whole_buffer=fixed)
        t1 = time.perf_counter()
        keys = self._keys
        previous = self.crop_from == "previous_frame" and self.previous.ready(keys)
        if previous:  # the centroids of each camera's previous frame: no centroid stage now
            assert keys is not None
            kept = [self.previous.detections[key] for key in keys]
            outputs = [np.concatenate(parts) for parts in zip(*kept, strict=True)]
        else:
            outputs = self.backend.run(batch)
        t2 = time.perf_counter()
        left: list[bool] | None = [] if previous else None
        first_s = 0.0 if previous else t2 - t1  # the centroid stage on this frame's path
        points, confidence = self._decode([o[:n] for o in outputs], batch[:n], first_s, left)
        if left and any(left):  # an animal left its crop: this frame's own centroids after all
            t_again = time.perf_counter()
            outputs = self.backend.run(batch)
            t_run = time.perf_counter()
            points, confidence = self._decode([o[:n] for o in outputs], batch[:n], t_run - t_again)
            previous = False
        if self.crop_from == "previous_frame" and keys is not None:
            self.previous.count(keys, previous)
            if previous:  # the centroid stage on this frame once its keypoints are out
                # the preprocessor's buffer (whole for a graph of fixed batch size): unchanged
                # until the next frames
                frames_in = batch if fixed else batch[:n]
                copied = np.array(frames_in) if self._more else frames_in
                self.previous.pending.append((copied, keys))
            else:  # its own centroids are the next frame's
                self._keep_centroids(keys, [o[:n] for o in outputs])
        if points.ndim == 3:  # a single-animal decoder: one animal per frame
            points = points[:, None]
        for i, transform in enumerate(transforms):
            points[i] = transform.to_frame(points[i])
        t3 = time.perf_counter()
        timings["preprocess"] += t1 - t0
        timings["inference"] += t2 - t1
        timings["decode"] += t3 - t2
        return points, confidence

    def _decode(
        self,
        outputs: list[np.ndarray],
        inputs: np.ndarray,
        first_stage_s: float = 0.0,
        left: list[bool] | None = None,
    ) -> Decoded:
        """Return points in input pixels ((n, K, 3) or (n, A, K, 3)) and identity confidences."""
        if self.second_stage is not None:  # sleap-nn's top-down model cut into two stages
            stages = self.last_stage_timings  # set anew by estimate_animals, added to here
            stages["centroid"] = stages.get("centroid", 0.0) + first_stage_s
            return decode_two_stages(
                inputs, outputs, self.description, self.second_stage.run, stages, self.cutter, left
            )
        return self.decoder.decode(outputs, self.description)


def open_second_stage(
    description: ModelDescription, backend: InferenceBackend
) -> InferenceBackend | None:
    """Open the second network of a two-stage model (None for the others), beside ``backend``."""
    stage = instance_stage_description(description)
    if stage is None:
        return None
    return open_backend(
        stage, "onnxruntime", second_graph_device(backend), second_graph_threads(backend)
    )
