"""``points3d.csv``: the live 3D keypoints in Anipose's layout, whole rows as the stream runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabstream.core.whole_rows import WholeRowsFile
from deeplabstream.spatial.triangulation.dlt import Triangulated

POINTS3D_FILE = "points3d.csv"
KEYPOINT_COLUMNS = ("x", "y", "z", "error", "ncams", "score")


def points3d_columns(keypoints: Sequence[str], cameras: Sequence[str]) -> list[str]:
    """Return the column names of ``points3d.csv`` for these keypoints and cameras."""
    columns = [f"{kp}_{part}" for kp in keypoints for part in KEYPOINT_COLUMNS]
    return [*columns, "fnum", "time_s", "pairing_ms", *(f"{c}_fnum" for c in cameras)]


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else ""


class Points3dCsvWriter(WholeRowsFile):
    """Appends triangulated sets to ``points3d.csv`` in whole rows.

    A failed write ends the file at its last whole row; :attr:`error` says why.
    """

    def __init__(self, path: Path, keypoints: Sequence[str], cameras: Sequence[str]) -> None:
        self.keypoints = tuple(keypoints)
        self.cameras = tuple(cameras)
        header = ",".join(points3d_columns(self.keypoints, self.cameras)) + "\n"
        super().__init__(Path(path), header)

    def write(
        self,
        points: Triangulated,
        frame_indices: Sequence[int],
        time_s: float,
        pairing_ms: float,
    ) -> None:
        """Append one set: its points, each camera's frame index, its time and pairing error."""
        cells: list[str] = []
        for k in range(len(self.keypoints)):
            x, y, z = points.xyz[k]
            cells += [_number(x, 3), _number(y, 3), _number(z, 3)]
            cells += [_number(points.error_px[k], 3), str(int(points.ncams[k]))]
            cells.append(_number(points.score[k], 4))
        cells += [str(int(frame_indices[0])), repr(float(time_s)), f"{pairing_ms:.3f}"]
        cells += [str(int(index)) for index in frame_indices]
        self.write_row(",".join(cells) + "\n")


def read_points3d(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Return the keypoint names and their positions (N, K, 3) from a ``points3d.csv``."""
    import pandas as pd

    table = pd.read_csv(path)
    names = tuple(column[: -len("_x")] for column in table.columns if column.endswith("_x"))
    xyz = np.stack(
        [table[[f"{n}_x", f"{n}_y", f"{n}_z"]].to_numpy(dtype=np.float64) for n in names], axis=1
    )
    return names, xyz
