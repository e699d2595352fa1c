"""Pose tables as arrays: DeepLabCut-layout CSVs of one animal or several, whoever wrote them.

The one reader of ``<camera>.pose.csv`` for the annotated video, NWB and SLEAP files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.regular_files import regular_file

COORDS = ("x", "y", "likelihood")


class PoseTableError(DeepLabStreamError, ValueError):
    """A CSV that is not a pose table; the message names the file and what it is instead."""


def is_multi_animal_csv(csv_path: Path) -> bool:
    """Return True when a DeepLabCut-style CSV has the multi-animal header (``individuals``)."""
    with regular_file(csv_path).open(encoding="utf-8") as file:
        file.readline()
        return file.readline().startswith("individuals,")


@dataclass(frozen=True)
class PoseTable:
    """A DeepLabCut-layout pose CSV as arrays, one animal or several.

    ``points`` is (N, A, K, 3): x, y, likelihood (A = 1 for one animal); ``individuals`` None
    for one animal.
    """

    frames: np.ndarray
    points: np.ndarray
    keypoints: tuple[str, ...]
    individuals: tuple[str, ...] | None
    scorer: str


def read_pose_table(path: Path, analysed_only: bool = False) -> PoseTable:
    """Read ``<camera>.pose.csv`` (ours, DeepLabCut's or Lightning Pose's, one or more animals).

    ``analysed_only`` leaves out the empty rows. A table without likelihood reads it as NaN;
    a DeepLabCut labels file raises PoseTableError.
    """
    import pandas as pd  # here: a process that only writes pose rows never loads pandas

    multi = is_multi_animal_csv(path)
    try:
        table = pd.read_csv(path, header=[0, 1, 2, 3] if multi else [0, 1, 2], index_col=0)
    except (ValueError, IndexError) as error:
        raise PoseTableError(f"{path}: not a DeepLabCut-layout pose table: {error}") from None
    if analysed_only:
        table = table.dropna(how="all")
    columns = table.columns
    individuals = tuple(dict.fromkeys(columns.get_level_values(1))) if multi else None
    keypoints = tuple(dict.fromkeys(columns.get_level_values(-2)))
    coords = set(columns.get_level_values(-1))
    if not {"x", "y"} <= coords or not coords <= set(COORDS):
        raise PoseTableError(
            f"{path}: its coords are {', '.join(sorted(map(str, coords)))}; a pose table has x, "
            "y and likelihood for each keypoint"
        )
    try:
        frames = table.index.to_numpy(dtype=np.int64)
    except (TypeError, ValueError):
        labels = "likelihood" not in coords
        raise PoseTableError(
            f"{path}: its rows are named {str(table.index[0])!r}..., not frame indices"
            + (
                " and it has x, y without likelihood: a DeepLabCut labels file (CollectedData), "
                "not predictions; read it with deeplabstream.offline.labels.read_dlc_labels"
                if labels
                else ""
            )
        ) from None
    animals = len(individuals) if individuals else 1
    points = np.full((len(table), animals, len(keypoints), 3), np.nan)
    for number, column in enumerate(columns):
        animal = individuals.index(column[1]) if individuals else 0
        points[:, animal, keypoints.index(column[-2]), COORDS.index(column[-1])] = table.iloc[
            :, number
        ].to_numpy(dtype=np.float64)
    return PoseTable(frames, points, keypoints, individuals, str(columns.get_level_values(0)[0]))
