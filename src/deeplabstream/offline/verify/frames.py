"""The frames of one camera, live and offline, on the live stream's frame index.

Design: docs/verify.md, "offline.verify.frames".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deeplabstream.outputs.pose.table import read_pose_table


@dataclass
class PoseSeries:
    """Keypoints per frame index: ``points[i]`` (A, K, 3) is frame ``frames[i]``."""

    frames: np.ndarray  # int64, ascending
    points: np.ndarray  # (N, A, K, 3) float64
    keypoints: tuple[str, ...]
    exact: bool  # full precision (pose_exact) or 0.001 px (pose CSV)
    crops: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def index_of(self) -> dict[int, int]:
        """Frame index -> row."""
        return {int(frame): row for row, frame in enumerate(self.frames)}


@dataclass
class ExactRows:
    """``<camera>.pose_exact.csv`` read back: every analysed frame as the experiment saw it.

    ``points`` (N, A, K, 3) in the values' own type (float32 or float64: to the bit);
    ``batches``, ``times`` and ``leads`` are the update's (NaN lead: no prediction; batch 0 and
    NaN time in files from before they were written); ``identity`` (N, A) or None.
    """

    frames: np.ndarray
    batches: np.ndarray
    times: np.ndarray
    leads: np.ndarray
    points: np.ndarray
    identity: np.ndarray | None
    multi_animal: bool
    members: np.ndarray | None = None  # an ensemble's models' own values (N, M, K, 3)


def read_exact_rows(path: Path, keypoints: tuple[str, ...], dtype: str | None) -> ExactRows:
    """Read ``<camera>.pose_exact.csv`` (either layout: with the update's columns or without)."""
    with path.open(encoding="utf-8") as file:
        header = file.readline().strip().split(",")
    leading = 4 if header[1:4] == ["batch", "time_s", "lead_s"] else 1
    confidences = sum(1 for name in header if name.startswith("identity_"))
    member_columns = sum(1 for name in header if _MEMBER.match(name))
    values = len(header) - leading - confidences - member_columns
    animals = max(1, values // (3 * len(keypoints)))
    multi = header[leading] != f"{keypoints[0]}_x" if keypoints else animals > 1
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, ndmin=2)
    if data.size == 0:
        data = np.zeros((0, len(header)))
    rows, k = len(data), len(keypoints)
    points = data[:, leading : leading + values].reshape(rows, animals, k, 3)
    start = leading + values
    members = data[:, start : start + member_columns].reshape(rows, -1, k, 3)
    if dtype == "float32":  # written with 9 digits: they read back to the float32's bits
        points, members = points.astype(np.float32), members.astype(np.float32)
    nan = np.full(rows, np.nan)
    return ExactRows(
        frames=data[:, 0].astype(np.int64),
        batches=data[:, 1].astype(np.int64) if leading == 4 else np.zeros(rows, np.int64),
        times=data[:, 2] if leading == 4 else nan,
        leads=data[:, 3] if leading == 4 else nan,
        points=points,
        identity=data[:, start + member_columns :] if confidences else None,
        multi_animal=multi,
        members=members if member_columns else None,
    )


_MEMBER = re.compile(r"^model\d+_")  # an ensemble's model's column (outputs/pose/files.py)


def read_exact_poses(path: Path, keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``<camera>.pose_exact.csv``: frame indices and (N, A, K, 3) values (float64)."""
    names = tuple(f"k{i}" for i in range(keypoints))
    rows = read_exact_rows(path, names, None)
    return rows.frames, rows.points.astype(np.float64)


def live_poses(
    exact: Path | None, csv: Path | None, timing: Path | None, keypoints: tuple[str, ...]
) -> PoseSeries | None:
    """Return the keypoints of every analysed frame (None: no pose file)."""
    if exact is not None:
        frames, points = read_exact_poses(exact, len(keypoints))
        series = PoseSeries(frames, points, keypoints, exact=True)
    elif csv is not None:
        table = read_pose_table(csv, analysed_only=True)
        series = PoseSeries(
            table.frames.astype(np.int64), table.points, table.keypoints, exact=False
        )
    else:
        return None
    if timing is not None:
        series.crops, series.batch_sizes = read_timing(timing)
    return series


def read_timing(path: Path) -> tuple[dict[int, tuple[int, int, int, int]], dict[int, int]]:
    """Each analysed frame's region (x, y, width, height) and batch size from pose_timing.csv."""
    import csv

    crops: dict[int, tuple[int, int, int, int]] = {}
    batches: dict[int, int] = {}
    with path.open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            frame = int(row["frame_index"])
            if row.get("crop_width"):
                crops[frame] = (
                    int(row["crop_x"]),
                    int(row["crop_y"]),
                    int(row["crop_width"]),
                    int(row["crop_height"]),
                )
            if row.get("batch_size"):
                batches[frame] = int(row["batch_size"])
    return crops, batches


def place_offline(series: PoseSeries, live_index: np.ndarray) -> PoseSeries:
    """``series`` (indexed by video frame) re-indexed by the live frame index."""
    inside = series.frames < len(live_index)
    frames = live_index[series.frames[inside]]
    moved = PoseSeries(frames, series.points[inside], series.keypoints, series.exact)
    moved.crops = {
        int(live_index[f]): box for f, box in series.crops.items() if f < len(live_index)
    }
    moved.batch_sizes = {
        int(live_index[f]): size for f, size in series.batch_sizes.items() if f < len(live_index)
    }
    return moved


def merge(parts: list[PoseSeries]) -> PoseSeries | None:
    """One series from the offline analyses of a stream recorded in several parts."""
    if not parts:
        return None
    merged = PoseSeries(
        np.concatenate([p.frames for p in parts]),
        np.concatenate([p.points for p in parts]),
        parts[0].keypoints,
        all(p.exact for p in parts),
    )
    for part in parts:
        merged.crops.update(part.crops)
        merged.batch_sizes.update(part.batch_sizes)
    order = np.argsort(merged.frames, kind="stable")
    merged.frames, merged.points = merged.frames[order], merged.points[order]
    return merged
