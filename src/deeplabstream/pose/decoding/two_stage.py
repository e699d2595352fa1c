"""What every two-stage model (a detector, then a pose model on crops) shares: its crops' source.

Design: docs/pose-internals.md, "pose.decoding.two_stage".
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

    True when none of ``points`` (K, 2) was found or their median is beyond ``reach`` from
    ``center`` along x or y.
    """
    seen = points[~np.isnan(points[:, 0])]
    if not len(seen):
        return True
    return bool((np.abs(np.median(seen, axis=0) - center) > reach).any())


@dataclass
class PreviousDetections:
    """Each camera's last detections, for the crops of its next frame (``previous_frame``)."""

    detections: dict[Hashable, Any] = field(default_factory=dict)
    #: What the estimators' ``refresh`` runs their detector on: (their input, the keys, ...).
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    #: Frames whose crops came from the previous frame, and from their own frame, per key.
    counts: dict[Hashable, list[int]] = field(default_factory=dict)
    #: The seconds of the last refresh (the detector on the previous frame, after its pose).
    refresh_s: float = 0.0

    def run_pending(self, detect_and_keep: Callable[..., None]) -> None:
        """Run the detector on the frames waiting in :attr:`pending`, then empty it."""
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
