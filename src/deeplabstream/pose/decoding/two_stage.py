"""What every two-stage model (a detector, then a pose model on crops) shares: its crops' source.

A two-stage model (sleap-nn top-down: centroid + centered instance; DeepLabCut 3.0 top-down:
detector + RTMPose or a heatmap pose model) cuts the pose model's crops from the detector's
output. ``[Pose] CROP_FROM`` says from which frame's:

``same_frame`` (the default)
    the detector runs on the frame, then the crops are cut around what it found on it: the
    frameworks' own way, and what their predictions are compared with.
``previous_frame``
    the crops of frame t are cut around what the detector found on the camera's previous analysed
    frame t-1; the detector runs on frame t only **after** frame t's keypoints are out (the
    inference worker calls ``refresh`` once the frame's pose has gone to the experiment and the
    files), so frame -> keypoints no longer waits for the detector. The detector still runs on
    every frame (the next frame's crops need it): the worker's time per frame stays the same, and
    a camera that sends frames faster than the worker's whole turn still waits for it (the
    ``wait`` stage). A frame falls back to its own detections (``same_frame``, the detector on
    its path) when its camera has none yet (its first frame), or when an animal **left its
    crop** (:func:`left_the_crop`: a sleap-nn model's anchor keypoint, else the median of the
    keypoints found, not found in the crop or more than a quarter of the crop from its centre;
    the median of a DeepLabCut model's keypoints, which are always placed, within a tenth of
    the crop of its border). Such a frame pays for both.

:class:`PreviousDetections` keeps each camera's last detections (by a key: the camera's id) and
the frames the refresh runs on; it counts the frames cropped each way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

CropFrom = Literal["same_frame", "previous_frame"]
CROP_FROM: tuple[CropFrom, ...] = ("same_frame", "previous_frame")


def left_the_crop(points: np.ndarray, center: np.ndarray, reach: np.ndarray) -> bool:
    """Return True when an animal seen in a crop cut around its last position may have left it.

    Parameters
    ----------
    points
        (K, 2) the keypoints found in the crop that place the animal (its anchor part alone,
        or all of them), frame pixels; NaN: not found.
    center
        (x, y) the crop's centre, frame pixels.
    reach
        (x, y) how far from the centre the animal may be and stay in the crop (frame pixels):
        a quarter of the crop's width and height for crops centred on the animal (sleap-nn),
        more for boxes that frame it (DeepLabCut).

    Returns
    -------
    bool
        True when none of ``points`` was found, or their median is farther than ``reach`` from
        the centre along x or y (the median: one keypoint far off does not move it).
    """
    seen = points[~np.isnan(points[:, 0])]
    if not len(seen):
        return True
    return bool((np.abs(np.median(seen, axis=0) - center) > reach).any())


@dataclass
class PreviousDetections:
    """Each camera's last detections, for the crops of its next frame (``previous_frame``).

    ``detections`` holds, per key, whatever the model's estimator keeps of a frame's detector
    output (a sleap-nn model: its centroid outputs; DeepLabCut: the box and its score).
    """

    detections: dict[Hashable, Any] = field(default_factory=dict)
    #: What the estimators' ``refresh`` runs their detector on: (their input, the keys, ...).
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    #: Frames whose crops came from the previous frame, and from their own frame, per key.
    counts: dict[Hashable, list[int]] = field(default_factory=dict)
    #: The seconds of the last refresh (the detector on the previous frame, after its pose).
    refresh_s: float = 0.0

    def run_pending(self, detect_and_keep: Callable[..., None]) -> None:
        """Run the detector on the frames waiting in :attr:`pending`, then empty it.

        ``detect_and_keep`` gets one pending entry's items and keeps its cameras' detections.
        The seconds it all took go to :attr:`refresh_s` (the next estimate's ``refresh``
        stage); nothing waiting, nothing done. The estimators' ``refresh`` is this call.
        """
        if not self.pending:
            return
        started = time.perf_counter()
        for entry in self.pending:
            detect_and_keep(*entry)
        self.pending.clear()
        self.refresh_s = time.perf_counter() - started

    def ready(self, keys: Sequence[Hashable] | None) -> bool:
        """Return True when every key has a previous frame's detections."""
        return keys is not None and all(key in self.detections for key in keys)

    def count(self, keys: Sequence[Hashable] | None, previous: bool) -> None:
        """Count the frames of ``keys`` as cropped from the previous frame or their own."""
        for key in keys or ():
            self.counts.setdefault(key, [0, 0])[0 if previous else 1] += 1

    def figures(self, key: Hashable) -> dict[str, int]:
        """Return a camera's counts for ``session.json``."""
        previous, same = self.counts.get(key, [0, 0])
        return {"frames_crops_from_previous": previous, "frames_crops_from_same": same}
