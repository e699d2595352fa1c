"""What is calibrated: the cameras' videos, and which of their frames were taken together.

docs/3d.md, "Pairing frames".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.errors import CalibrationError
from deeplabstream.outputs.frames_table import FRAMES_TABLE_COLUMNS, FRAMES_TABLE_SUFFIX
from deeplabstream.outputs.video import RECORDED_VIDEO_SUFFIXES
from deeplabstream.spatial.calibration.detection import BoardDetection, BoardDetector

CLOCKS = ("auto", "camera", "host")
FLOOR_SECONDS = 1.0
"""The board lies flat on the floor during this first part of a calibration recording."""


@dataclass(frozen=True)
class FramePlan:
    """Which frame of each camera's video belongs to each frame set; ``pairing`` says how."""

    videos: dict[str, Path]
    frames: dict[str, list[int | None]]
    floor_sets: list[int]
    pairing: str

    @property
    def set_count(self) -> int:
        """How many frame sets there are."""
        return len(next(iter(self.frames.values())))


@dataclass(frozen=True)
class _Table:
    """One camera's frames table: per video frame, its camera and host times (s)."""

    camera_s: np.ndarray
    host_s: np.ndarray


def plan_videos(paths: Sequence[Path], floor_seconds: float = FLOOR_SECONDS) -> FramePlan:
    """Pair frame ``i`` of every video; camera names are the files' stems.

    Raises :class:`CalibrationError`: under two videos, a bad file, or two videos with one name.
    """
    if len(paths) < 2:
        raise CalibrationError(
            f"3D calibration needs videos of two cameras or more, got {len(paths)}"
        )
    videos: dict[str, Path] = {}
    for path in map(Path, paths):
        name = path.name.split(".")[0]
        if name in videos:
            raise CalibrationError(
                f"{path}: a second video of camera {name!r} (after {videos[name]})"
            )
        videos[name] = path
    counts = {name: _count_frames(path) for name, path in videos.items()}
    sets = min(counts.values())
    rate = _frame_rate(next(iter(videos.values())))
    floor = list(range(min(sets, max(1, round(rate * floor_seconds)))))
    frames: dict[str, list[int | None]] = {name: list(range(sets)) for name in videos}
    pairing = f"by frame number ({sets} frames; frame counts {counts})"
    return FramePlan(videos, frames, floor, pairing)


def plan_session(
    folder: Path, clock: str = "auto", floor_seconds: float = FLOOR_SECONDS
) -> FramePlan:
    """Pair the frames of a recorded session's cameras by their timestamps (docs/3d.md).

    Raises :class:`CalibrationError` naming what in the folder cannot be used.
    """
    folder = Path(folder)
    if clock not in CLOCKS:
        raise ValueError(f"clock {clock!r}: expected one of {', '.join(CLOCKS)}")
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a session folder (no such directory)")
    videos = _session_videos(folder)
    tables = {name: _read_table(folder / (name + FRAMES_TABLE_SUFFIX)) for name in videos}
    chosen = _choose_clock(tables, clock, folder)
    times = {
        name: table.camera_s if chosen == "camera" else table.host_s
        for name, table in tables.items()
    }
    intervals = {name: _median_interval(name, stamps, folder) for name, stamps in times.items()}
    reference = max(videos, key=lambda name: intervals[name])
    frames: dict[str, list[int | None]] = {}
    for name in videos:
        tolerance = 0.5 * max(intervals[name], intervals[reference])
        frames[name] = _nearest_frames(times[reference], times[name], tolerance)
    start = times[reference][0]
    floor = [i for i, t in enumerate(times[reference]) if t - start < floor_seconds]
    pairing = (
        f"by {chosen} timestamps, to the frames of {reference!r}, within half a frame interval "
        f"({', '.join(f'{n}: {1000 * intervals[n]:.1f} ms' for n in videos)})"
    )
    return FramePlan(videos, frames, floor, pairing)


def _session_videos(folder: Path) -> dict[str, Path]:
    """Camera name -> video, for every frames table with a video beside it."""
    videos: dict[str, Path] = {}
    for table in sorted(folder.glob("*" + FRAMES_TABLE_SUFFIX)):
        name = table.name[: -len(FRAMES_TABLE_SUFFIX)]
        found = [folder / (name + suffix) for suffix in sorted(RECORDED_VIDEO_SUFFIXES)]
        found = [path for path in found if path.is_file()]
        if found:
            videos[name] = found[0]
    if len(videos) < 2:
        raise CalibrationError(
            f"{folder}: found {len(videos)} camera(s) with both a video (.mp4/.mkv) and a "
            f"{FRAMES_TABLE_SUFFIX} ({', '.join(videos) or 'none'}); 3D calibration needs two "
            "or more: record the calibration with every camera of the rig, or pass the videos"
        )
    return videos


def _read_table(path: Path) -> _Table:
    """Read a frames table's camera and host timestamps (NaN where a camera time is empty)."""
    camera, host = [], []
    with path.open(encoding="ascii", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or tuple(header[:3]) != FRAMES_TABLE_COLUMNS:
            raise CalibrationError(
                f"{path}: expected the header {','.join(FRAMES_TABLE_COLUMNS)}, got {header}"
            )
        for line_number, row in enumerate(reader, start=2):
            try:
                camera.append(float(row[1]) if row[1] else math.nan)
                host.append(float(row[2]))
            except (IndexError, ValueError):
                raise CalibrationError(
                    f"{path}, line {line_number}: expected frame_index,camera_timestamp,"
                    f"host_timestamp numbers, got {row}"
                ) from None
    if len(host) < 2:
        raise CalibrationError(f"{path}: {len(host)} frame(s); a calibration needs many")
    return _Table(np.asarray(camera), np.asarray(host))


def _choose_clock(tables: dict[str, _Table], clock: str, folder: Path) -> str:
    """``camera`` or ``host``: which timestamps pair the frames (docs/3d.md, Pairing frames)."""
    complete = all(np.isfinite(t.camera_s).all() for t in tables.values())
    if clock == "camera" and not complete:
        missing = [name for name, t in tables.items() if not np.isfinite(t.camera_s).all()]
        raise CalibrationError(
            f"{folder}: --clock camera, but the frames tables of {missing} lack camera "
            "timestamps; use --clock host"
        )
    if clock != "auto":
        return clock
    if not complete:
        return "host"
    offsets = [float(np.median(t.host_s - t.camera_s)) for t in tables.values()]
    half_interval = 0.5 * min(float(np.median(np.diff(t.host_s))) for t in tables.values())
    return "camera" if max(offsets) - min(offsets) <= half_interval else "host"


def _median_interval(name: str, stamps: np.ndarray, folder: Path) -> float:
    """Return the camera's median frame interval (s); an error if its times do not increase."""
    interval = float(np.median(np.diff(stamps)))
    if not interval > 0:
        raise CalibrationError(
            f"{folder / (name + FRAMES_TABLE_SUFFIX)}: timestamps do not increase "
            f"(median interval {interval} s); is the table damaged?"
        )
    return interval


def _nearest_frames(reference: np.ndarray, other: np.ndarray, tolerance: float) -> list[int | None]:
    """Per reference time: the index of ``other``'s nearest time within ``tolerance``, or None."""
    order = np.argsort(other)
    sorted_times = other[order]
    after = np.clip(np.searchsorted(sorted_times, reference), 1, len(other) - 1)
    before = after - 1
    nearer = np.where(
        np.abs(sorted_times[before] - reference) <= np.abs(sorted_times[after] - reference),
        before,
        after,
    )
    gaps = np.abs(sorted_times[nearer] - reference)
    return [
        int(order[i]) if gap <= tolerance else None for i, gap in zip(nearer, gaps, strict=True)
    ]


def _open(path: Path) -> Any:
    """Open a video with PyAV, or raise an error naming the file."""
    import av

    try:
        return av.open(str(path))
    except (OSError, av.error.FFmpegError) as error:
        raise CalibrationError(f"{path}: cannot open the video ({error})") from None


def _count_frames(path: Path) -> int:
    """Count the frames of a video (its packets counted; nothing decoded)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def _frame_rate(path: Path) -> float:
    """Return the video's average frame rate (30 when it does not say)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return float(rate) if rate else 30.0


def _decoded_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield the video's frames in order, as grey uint8 arrays."""
    with _open(path) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


def detect_in_plan(
    plan: FramePlan,
    detector: BoardDetector,
    progress: Callable[[str], None],
    step: int = 1,
) -> tuple[dict[str, list[BoardDetection | None]], dict[str, tuple[int, int]]]:
    """Find the board in every camera's frames of the plan's frame sets (every ``step``-th one).

    Returns, per camera, the detection or None per frame set, and its (width, height).
    """
    wanted_sets = set(range(0, plan.set_count, max(1, step))) | set(plan.floor_sets)
    detections: dict[str, list[BoardDetection | None]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, path in plan.videos.items():
        set_of_frame = {
            frame: index
            for index, frame in enumerate(plan.frames[name])
            if frame is not None and index in wanted_sets
        }
        found: list[BoardDetection | None] = [None] * plan.set_count
        for frame_index, image in enumerate(_decoded_frames(path)):
            sizes[name] = (image.shape[1], image.shape[0])
            if frame_index in set_of_frame:
                found[set_of_frame[frame_index]] = detector.detect(image)
        detections[name] = found
        seen = sum(d is not None for d in found)
        progress(
            f"camera {name!r}: board found in {seen} of {len(set_of_frame)} frames ({path.name})"
        )
        if name not in sizes:
            raise CalibrationError(f"{path}: no frame could be decoded")
    return detections, sizes
