"""Pose tables as arrays: DeepLabCut-layout CSVs of one animal or several, whoever wrote them.

The readers of ``<camera>.pose.csv`` (ours, DeepLabCut's, Lightning Pose's) share this one: the
replay's annotated video, the NWB and SLEAP files. A multi-animal file has DeepLabCut's
``individuals`` header row (four header rows instead of three).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def is_multi_animal_csv(csv_path: Path) -> bool:
    """Return True when a DeepLabCut-style CSV has the multi-animal header (``individuals``)."""
    with csv_path.open(encoding="utf-8") as file:
        file.readline()
        return file.readline().startswith("individuals,")


@dataclass(frozen=True)
class PoseTable:
    """A DeepLabCut-layout pose CSV as arrays, one animal or several.

    ``points`` is (N, A, K, 3): x, y, likelihood of each identity's keypoints per row (A = 1
    for a single-animal file); ``individuals`` names the identities (None for one animal).
    """

    frames: np.ndarray
    points: np.ndarray
    keypoints: tuple[str, ...]
    individuals: tuple[str, ...] | None
    scorer: str


def read_pose_table(path: Path, analysed_only: bool = False) -> PoseTable:
    """Read ``<camera>.pose.csv`` (ours, DeepLabCut's or Lightning Pose's, one or more animals).

    ``analysed_only`` leaves out the rows of frames not analysed (all empty).
    """
    import pandas as pd  # here: a process that only writes pose rows never loads pandas

    multi = is_multi_animal_csv(path)
    table = pd.read_csv(path, header=[0, 1, 2, 3] if multi else [0, 1, 2], index_col=0)
    if analysed_only:
        table = table.dropna(how="all")
    columns = table.columns
    individuals = tuple(dict.fromkeys(columns.get_level_values(1))) if multi else None
    keypoints = tuple(dict.fromkeys(columns.get_level_values(-2)))
    animals = len(individuals) if individuals else 1
    points = table.to_numpy(dtype=np.float64).reshape(len(table), animals, len(keypoints), 3)
    return PoseTable(
        table.index.to_numpy(dtype=np.int64),
        points,
        keypoints,
        individuals,
        str(columns.get_level_values(0)[0]),
    )
