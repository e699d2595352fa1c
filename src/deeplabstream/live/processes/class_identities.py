"""Identities that the pose model gives itself: a sleap-nn identity model's classes.

A bottom-up identity model (:mod:`pose.decoding.sleap_classes`) names each animal it finds by one
of its classes, in every frame on its own. Its decoder's row c is always class c, so no motion
tracking and no appearance learning is needed (nor wanted: they would overrule the model). What
the worker keeps per such camera is :class:`ClassIdentities`: the identities are the classes
(``animal1`` is the first class, ...), each frame's identity confidence is the model's (the
mean class value of the animal's points), and it goes where the tracker's would go: the
``<camera>.identity.csv`` file, the pose records (live view, experiments) and ``session.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.outputs.pose_files import IdentityConfidenceWriter


class ClassIdentities:
    """One camera's identities from its model's classes, and their confidence file.

    Parameters
    ----------
    path
        Its ``<camera>.identity.csv``.
    individuals
        The identities' names in the pose files (``animal1``, ...), one per class.
    classes
        The model's class names, in order: ``individuals[i]`` is ``classes[i]``.
    """

    def __init__(self, path: Path, individuals: tuple[str, ...], classes: tuple[str, ...]) -> None:
        if len(individuals) != len(classes):
            raise ValueError(f"{len(individuals)} individuals for {len(classes)} classes")
        self.classes = classes
        self.individuals = individuals
        self.file = IdentityConfidenceWriter(path, individuals)
        self.confidence = np.full(len(classes), np.nan)  # the last frame's, per identity
        self.frames = 0
        self.frames_seen = np.zeros(len(classes), np.int64)  # frames each class was found in

    def update(self, animals: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        """Return the frame's animals (A, K, 3), already in class order; keep their confidence.

        ``confidence`` is the model's (A,) identity confidence (NaN: the class was not found);
        None (no figures from the model) leaves every confidence NaN.
        """
        self.frames += 1
        if confidence is None:
            self.confidence = np.full(len(self.classes), np.nan)
        else:
            self.confidence = np.asarray(confidence, np.float64).copy()
        self.frames_seen += np.isfinite(self.confidence)
        return animals

    def write(self, frame_index: int) -> None:
        """Write the last frame's confidences as frame ``frame_index``'s row."""
        self.file.write(frame_index, self.confidence)

    def end_at(self, last_index: int) -> None:
        """Write the empty rows of the frames up to ``last_index`` (as the pose CSV's)."""
        self.file.end_at(last_index)

    def close(self) -> dict[str, Any]:
        """Close the file; return the figures for ``session.json``."""
        self.file.close()
        figures: dict[str, Any] = {
            "source": "model classes",
            "confidence_file": self.file.path.name,
            "classes": dict(zip(self.individuals, self.classes, strict=True)),
            "frames": self.frames,
            "frames_seen": dict(
                zip(self.individuals, (int(n) for n in self.frames_seen), strict=True)
            ),
        }
        if self.file.error:
            figures["file_error"] = self.file.error
        return figures
