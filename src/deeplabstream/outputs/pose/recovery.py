"""What a dead inference worker leaves: its figures rebuilt from the files it had written.

Its files are finished as the worker would have, its summary marked ``rebuilt_from_files``.
"""

from __future__ import annotations

import csv
import logging
import signal
from pathlib import Path
from typing import Any

from deeplabstream.core.deadline import STAGES, deadline_figures
from deeplabstream.core.regular_files import regular_file
from deeplabstream.core.timing import DurationHistogram, percentiles
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.core.whole_rows import cut_to_whole_rows
from deeplabstream.outputs.pose.files import (
    EKS_CAUSAL_SUFFIX,
    ENSEMBLE_SUFFIX,
    POSE_CSV_SUFFIX,
    POSE_PARQUET_SUFFIX,
    POSE_TIMES_SUFFIX,
    POSE_TIMING_SUFFIX,
    write_pose_parquet,
)
from deeplabstream.outputs.pose.table import is_multi_animal_csv

log = logging.getLogger(__name__)

POSE_HEADER_ROWS = 3  # scorer, bodyparts, coords


def how_it_ended(exitcode: int | None) -> str:
    """Describe a process's end in words: ``killed by signal 9 (SIGKILL)`` or ``exit code 1``."""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exit code {exitcode}"


def rebuild_camera_figures(
    session_dir: Path,
    camera: str,
    file_label: str,
    last_index: int | None = None,
    deadline_ns: int | None = None,
) -> dict[str, Any]:
    """One camera's analysis figures from its pose and timing files (whole rows kept).

    With ``last_index``, the pose files get the empty rows up to it. ``deadline_ns`` None: off.
    """
    stem = f"{camera}{file_label}"
    pose_csv = session_dir / f"{stem}{POSE_CSV_SUFFIX}"
    timing_csv = session_dir / f"{stem}{POSE_TIMING_SUFFIX}"
    times_csv = session_dir / f"{stem}{POSE_TIMES_SUFFIX}"
    figures: dict[str, Any] = {
        "rebuilt_from_files": True,
        "frames_analysed": 0,
        "frames_skipped": 0,
        "frames_lost": 0,
        "frames_not_analysed_worker_gone": 0,
    }
    if not pose_csv.exists():
        return figures
    rows = cut_to_whole_rows(pose_csv) - _header_rows(pose_csv)
    cut_to_whole_rows(timing_csv)
    cut_to_whole_rows(times_csv)
    # An ensemble's files: its spread and its causal filter, one row per pose row as well.
    ensemble_files = [
        session_dir / f"{stem}{suffix}" for suffix in (ENSEMBLE_SUFFIX, EKS_CAUSAL_SUFFIX)
    ]
    ensemble_files = [path for path in ensemble_files if path.exists()]
    for path in ensemble_files:
        cut_to_whole_rows(path)
    if last_index is not None:
        rows += end_rows_at(pose_csv, last_index, empty_pose_row(pose_csv))
        end_rows_at(times_csv, last_index, ",,,0\n")
        for path in ensemble_files:
            end_rows_at(path, last_index, empty_pose_row(path))
    figures["frames_analysed"] = _rows_with_pose(pose_csv)
    figures["frames_skipped"] = max(0, rows - figures["frames_analysed"])  # the empty rows
    figures["pose_rows"] = max(0, rows)  # one per frame index, analysed or not
    figures["pose_file"] = pose_csv.name
    if times_csv.exists():
        figures["pose_times_file"] = times_csv.name
    figures["analysed_fps"] = _analysed_fps(timing_csv)
    figures["latency_ms"] = _latency_percentiles(timing_csv)
    figures["deadline"] = _deadline_from_timing(timing_csv, deadline_ns)
    parquet = session_dir / f"{stem}{POSE_PARQUET_SUFFIX}"
    try:
        ensemble = session_dir / f"{stem}{ENSEMBLE_SUFFIX}"
        write_pose_parquet(pose_csv, parquet, times_csv, ensemble_path=ensemble)
        figures["pose_table"] = parquet.name
    except (OSError, ValueError) as error:
        log.error("could not write %s from %s: %s", parquet.name, pose_csv.name, error)
        parquet.unlink(missing_ok=True)
        figures["pose_table"] = None
    return figures


def finish_events(
    events_path: Path,
    why: str,
    time_s: float | None = None,
    unwritten: UnwrittenRows | None = None,
) -> dict[str, Any] | None:
    """End an experiment's events file the worker could not end; its summary, or None.

    ``unwritten`` rows are appended first; ``time_s`` None: the finish row takes the last
    row's time. A file already ending in ``finish`` gets no other.
    """
    if not events_path.exists():
        return None
    cut_to_whole_rows(events_path)
    if unwritten is not None:
        unwritten.append_missing(events_path)
    with regular_file(events_path).open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        rows_read = list(reader)
    last = rows_read[-1] if rows_read else None
    finished = last is not None and dict(zip(header, last, strict=False)).get("kind") == "finish"
    if header and not finished:
        row = dict.fromkeys(header, "")
        frame = ("time_s", "camera", "frame_index", "camera_timestamp", "host_timestamp")
        if last is not None:  # the last event's frame and camera; no pose decided the finish
            row.update((k, v) for k, v in zip(header, last, strict=False) if k in frame)
        row.update(kind="finish", name="experiment", detail=why)
        if time_s is not None and f"{time_s:.6f}" != row["time_s"]:
            row.update(dict.fromkeys(frame[2:], ""))  # a later frame than the last event's
            row["time_s"] = f"{time_s:.6f}"
        with regular_file(events_path).open("a", newline="", encoding="utf-8") as file:
            csv.writer(file, lineterminator="\n").writerow([row[c] for c in header])
    start = next(
        (r for r in rows_read if dict(zip(header, r, strict=False)).get("kind") == "start"), None
    )
    name = dict(zip(header, start, strict=False)).get("name") if start is not None else None
    return {
        "name": name or None,
        "events_file": events_path.name,
        "events": len(rows_read) + (0 if finished else 1),
        "error": why,
        "rebuilt_from_files": True,
    }


def end_rows_at(path: Path, last_index: int, empty: str) -> int:
    """Append rows ``empty`` for the frames after the last row up to ``last_index``; count them."""
    last_row = _last_row_index(path)
    if last_row is None or last_index <= last_row:
        return 0
    with regular_file(path).open("a", encoding="utf-8") as file:
        file.writelines(f"{index}{empty}" for index in range(last_row + 1, last_index + 1))
    return last_index - last_row


def empty_pose_row(pose_csv: Path) -> str:
    """Return the text after the index of a pose CSV's row of a frame not analysed."""
    with regular_file(pose_csv).open(encoding="utf-8") as file:
        values = next(file).count(",")  # the scorer row: one field per value
    return ",nan" * values + "\n"


def _last_row_index(path: Path) -> int | None:
    """Return the frame index of a table's last row; None when it has none (or no file)."""
    try:
        with regular_file(path).open("rb") as file:
            file.seek(0, 2)
            file.seek(max(0, file.tell() - 65536))
            lines = file.read().splitlines()
    except FileNotFoundError:
        return None
    try:
        return int(lines[-1].split(b",", 1)[0]) if lines else None
    except ValueError:  # the header: no data row
        return None


def _deadline_from_timing(timing_csv: Path, deadline_ns: int | None) -> dict[str, Any] | None:
    """Return a camera's deadline figures from the ``deadline_stage`` column of its timing file."""
    by_stage = [0] * len(STAGES)
    by_part: dict[str, int] | None = None  # a two-stage model's file has a deadline_part column
    end_to_end = DurationHistogram()
    try:
        with regular_file(timing_csv).open(newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                if "deadline_part" in row:
                    by_part = by_part if by_part is not None else {}
                    if row["deadline_part"]:
                        by_part[row["deadline_part"]] = by_part.get(row["deadline_part"], 0) + 1
                end = row.get("command_written") or row.get("decided") or row["pose_ready"]
                end_to_end.add(round((float(end) - float(row["host_timestamp"])) * 1e9))
                stage = row.get("deadline_stage") or ""
                if stage in STAGES:
                    by_stage[STAGES.index(stage)] += 1
    except (OSError, KeyError, ValueError):
        return None
    return deadline_figures(
        deadline_ns, end_to_end.count, sum(by_stage), by_stage, end_to_end.figures(), by_part
    )


def _header_rows(pose_csv: Path) -> int:
    """Return the header rows of a pose CSV: one more for the multi-animal ``individuals``."""
    return POSE_HEADER_ROWS + 1 if is_multi_animal_csv(pose_csv) else POSE_HEADER_ROWS


def _rows_with_pose(pose_csv: Path) -> int:
    """Count the rows of a pose CSV that hold a pose (frames not analysed are empty rows)."""
    with regular_file(pose_csv).open(encoding="utf-8") as file:
        lines = file.read().splitlines()[_header_rows(pose_csv) :]
    # An empty row is the index and then "nan" (or, in older files, nothing) in every field.
    return sum(1 for line in lines if any(f not in ("", "nan") for f in line.split(",")[1:]))


def _analysed_fps(timing_csv: Path) -> float | None:
    """Return analysed frames per second, first to last pose (the worker's own figure)."""
    try:
        with regular_file(timing_csv).open(newline="", encoding="utf-8") as file:
            ready = [float(row["pose_ready"]) for row in csv.DictReader(file) if row["pose_ready"]]
    except (OSError, KeyError, ValueError):
        return None
    span_s = ready[-1] - ready[0] if len(ready) > 1 else 0.0
    return round((len(ready) - 1) / span_s, 3) if span_s > 0 else None


def _latency_percentiles(timing_csv: Path) -> dict[str, float] | None:
    try:
        with regular_file(timing_csv).open(newline="", encoding="utf-8") as file:
            values = [float(row["latency_ms"]) for row in csv.DictReader(file) if row["latency_ms"]]
    except (OSError, KeyError, ValueError):
        return None
    return percentiles(values)
