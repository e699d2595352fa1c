"""The latency self-test's figures: the board's measurement beside the app's own account.

docs/latency-test.md.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.timing import percentiles
from deeplabstream.hardware.cameras.clock import ClockFit
from deeplabstream.hardware.stimulation.latency import FlashReport, read_board_reports, run_file
from deeplabstream.outputs.pose.files import POSE_TIMING_SUFFIX
from deeplabstream.outputs.session_record import (
    DamagedRecordError,
    SessionRecord,
    read_session_record,
)

#: A lit fraction above this in the frame before the answering one: the flash began there.
PARTIAL_LIT = 0.02
#: An answer's write time in events.csv (6 decimals) and in the board report match this closely.
MATCH_TOLERANCE_S = 2e-6
BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit


@dataclass(frozen=True)
class LineTiming:
    """How an answer's bytes reach the board, for the transfer stage.

    ``bits_per_byte``: 10 on a plain 8N1 line; ``link_delay_ms``: the mean time before the first
    bit, from the board's design (0 for a real board: the agreement's bias shows it).
    """

    bits_per_byte: int = BITS_PER_BYTE
    link_delay_ms: float = 0.0
    why: str = "a plain serial line: 10 bits a byte, no delay known"


class LatencyAnalysisError(DeepLabStreamError, RuntimeError):
    """The session folder lacks what the analysis needs; the message says what."""


@dataclass(frozen=True)
class CameraTiming:
    """How a camera's frames map to the host clock, and their exposure."""

    name: str
    interval_ms: float
    exposure_ms: float
    exposure_source: str  # where the exposure came from (the camera, or assumed)
    timestamp_marks: str  # "exposure_end" or "exposure_start"
    offset_s: float  # host = offset + rate * camera timestamp (lower envelope of arrivals)
    rate: float
    fit_frames: int

    def exposure_end_s(self, camera_timestamp: float) -> float:
        """Host time at which the exposure of a frame with this camera timestamp ended."""
        host = self.offset_s + self.rate * camera_timestamp
        if self.timestamp_marks == "exposure_start":
            host += self.exposure_ms / 1e3
        return host


@dataclass(frozen=True)
class FlashAccount:
    """One answered flash: the board's figure, the app's stages and their difference (ms)."""

    flash: int
    frame_index: int
    board_ms: float
    sampling_wait_ms: float
    frame_to_command_ms: float
    transfer_ms: float
    app_ms: float
    agreement_ms: float  # app - board
    lit_fraction: float  # of the first lit frame's exposure
    seen_one_frame_late: bool  # the flash began in the frame before the answering one
    # The answering frame's model time and the pipeline's parts (ms; nan without its timing row)
    model_ms: float = math.nan
    pipeline_ms: float = math.nan  # frame -> command less the model
    delivery_ms: float = math.nan
    wait_ms: float = math.nan
    transport_ms: float = math.nan
    handover_ms: float = math.nan
    experiment_ms: float = math.nan
    output_ms: float = math.nan


#: The parts of the pipeline around the model, in the order a frame passes them.
PIPELINE_PARTS = ("delivery", "wait", "transport", "handover", "experiment", "output")


@dataclass(frozen=True)
class FrameTiming:
    """One analysed frame's stage times on the host clock (s), from ``pose_timing.csv``."""

    arrived_s: float
    worker_free_s: float
    picked_s: float
    model_ms: float
    ready_s: float
    decided_s: float


def analyse_session(
    session_dir: Path,
    baudrate: int,
    events_file: str = "events.csv",
    line: LineTiming = LineTiming(),
) -> dict[str, Any]:
    """Return ``latency_test.json``'s content for the run ``events_file`` names."""
    board_path = session_dir / run_file(events_file, "latency_board")
    if not board_path.exists():
        raise LatencyAnalysisError(
            f"{board_path} is missing: the board's latency test did not run (see session.log)"
        )
    reports = read_board_reports(board_path)
    try:
        info = read_session_record(session_dir)
    except (OSError, DamagedRecordError) as error:
        raise LatencyAnalysisError(f"{session_dir / 'session.json'}: {error}") from None
    events = _read_events(session_dir / events_file)
    answers = [row for row in events if row["kind"] == "action"]
    camera_name = answers[0]["camera"] if answers else _first_camera(info)
    timing = camera_timing(session_dir, info, camera_name, events)
    frames = read_frame_timings(session_dir / f"{camera_name}{POSE_TIMING_SUFFIX}")
    accounts = []
    unmatched = 0
    for report in reports:
        if report.command_us is None:
            continue
        account = _account(report, answers, events, timing, baudrate, frames, line)
        if account is None:
            unmatched += 1
        else:
            accounts.append(account)
    figures = summarise(reports, accounts, unmatched, timing, baudrate)
    figures["line"] = asdict(line)
    return figures


def summarise(
    reports: list[FlashReport],
    accounts: list[FlashAccount],
    unmatched: int,
    timing: CameraTiming,
    baudrate: int,
) -> dict[str, Any]:
    """``latency_test.json``: counts, percentiles of each figure, and every flash."""
    agreement = [account.agreement_ms for account in accounts]
    return {
        "events": len(accounts),
        "flashes": len(reports),
        "flashes_answered_by_board": sum(r.command_us is not None for r in reports),
        "flashes_missed": sum(r.command_us is None for r in reports),
        # Answered flashes the app cannot account for: the answer is not in events.csv, or the
        # frames where the flash may have begun were skipped by the analysis.
        "answers_not_matched": unmatched,
        "board_ms": percentiles_4([a.board_ms for a in accounts]),
        "app_ms": percentiles_4([a.app_ms for a in accounts]),
        "agreement_ms": percentiles_4([abs(value) for value in agreement]),
        "agreement_bias_ms": round(statistics.median(agreement), 4) if agreement else None,
        "stages_ms": {
            "sampling_wait": percentiles_4([a.sampling_wait_ms for a in accounts]),
            "frame_to_command": percentiles_4([a.frame_to_command_ms for a in accounts]),
            "transfer": percentiles_4([a.transfer_ms for a in accounts]),
            "model": percentiles_4([a.model_ms for a in accounts]),
            "pipeline": percentiles_4([a.pipeline_ms for a in accounts]),
        },
        # What the app adds to the model, part by part (docs/latency-test.md).
        "pipeline_parts_ms": {
            part: percentiles_4([getattr(a, f"{part}_ms") for a in accounts])
            for part in PIPELINE_PARTS
        },
        "seen_one_frame_late": sum(a.seen_one_frame_late for a in accounts),
        "camera": {
            "name": timing.name,
            "frame_interval_ms": round(timing.interval_ms, 4),
            "exposure_ms": round(timing.exposure_ms, 4),
            "exposure_source": timing.exposure_source,
            "timestamp_marks": timing.timestamp_marks,
            "clock_fit_frames": timing.fit_frames,
        },
        "baudrate": baudrate,
        "per_event": [asdict(account) for account in accounts],
    }


def camera_timing(
    session_dir: Path, info: SessionRecord, camera: str, events: list[dict[str, str]]
) -> CameraTiming:
    """Return the camera's frame interval, exposure and camera -> host time mapping."""
    # Every frame's times: the recording's table, else the pose files' (every frame the worker
    # was given, analysed or skipped, recorded or not); else those of the frames that made events.
    frames = (
        _frame_times(session_dir / f"{camera}.frames.csv")
        or _frame_times(session_dir / f"{camera}.pose_times.csv")
        or {
            int(row["frame_index"]): (float(row["camera_timestamp"]), float(row["host_timestamp"]))
            for row in events
            if row["camera"] == camera and row["camera_timestamp"] and row["host_timestamp"]
        }
    )
    pairs = [frames[index] for index in sorted(frames)]
    if len(pairs) < 10:
        raise LatencyAnalysisError(
            f"too few frames of camera {camera!r} with camera and host times to fit its clock"
        )
    entry = info.cameras.get(camera)
    device = entry.device if entry is not None else {}  # the camera plugin's own description
    if device.get("timestamp_clock") == "host":
        # Stamped on the host's own clock (a simulated camera): from the origin it names, or
        # else the least arrival delay finds the offset.
        origin_ns = device.get("timestamp_origin_ns")
        offset = (
            origin_ns / 1e9
            if origin_ns is not None
            else min(host - camera_s for camera_s, host in pairs)
        )
        summary = {"fitted": True, "offset_s": offset, "rate": 1.0, "frames": len(pairs)}
    else:
        fit = ClockFit()
        for camera_s, host_s in pairs:
            fit.add(camera_s, round(host_s * 1e9))
        summary = fit.summary()
    if not summary.get("fitted"):
        raise LatencyAnalysisError(f"the clock of camera {camera!r} could not be fitted: {summary}")
    indices = np.array(sorted(frames))
    camera_times = np.array([frames[index][0] for index in indices])
    steps = np.diff(indices)
    per_frame = np.diff(camera_times)[steps > 0] / steps[steps > 0]
    interval_s = float(np.median(per_frame)) * summary["rate"]
    exposure_ms = device.get("exposure_ms")
    source = "camera"
    if not exposure_ms:
        exposure_ms, source = interval_s * 1e3, "assumed: the whole frame interval"
    return CameraTiming(
        name=camera,
        interval_ms=interval_s * 1e3,
        exposure_ms=float(exposure_ms),
        exposure_source=source,
        timestamp_marks=device.get("timestamp_marks", "exposure_end"),
        offset_s=summary["offset_s"],
        rate=summary["rate"],
        fit_frames=int(summary["frames"]),
    )


def _account(
    report: FlashReport,
    answers: list[dict[str, str]],
    events: list[dict[str, str]],
    timing: CameraTiming,
    baudrate: int,
    frames: dict[int, FrameTiming] | None = None,
    line: LineTiming = LineTiming(),
) -> FlashAccount | None:
    """Return the app's account of one answered flash; None when its answer is not in events.csv."""
    if report.answer_written_ns is None or report.board_ms is None:
        return None
    written_s = report.answer_written_ns / 1e9
    answer = next(
        (row for row in answers if abs(float(row["written"]) - written_s) <= MATCH_TOLERANCE_S),
        None,
    )
    if answer is None:
        return None
    frame_index = int(answer["frame_index"])
    levels = _light_levels(events, answer["camera"], frame_index)
    if levels is None:
        return None
    level, previous, off, on, gap = levels
    end_s = timing.exposure_end_s(float(answer["camera_timestamp"]))
    exposure_s, interval_s = timing.exposure_ms / 1e3, timing.interval_ms / 1e3
    fraction_now = _fraction(level, off, on)
    fraction_before = _fraction(previous, off, on) if math.isfinite(previous) else 0.0
    late = fraction_before > PARTIAL_LIT
    if gap > 1 and not late and fraction_now >= 1.0 - PARTIAL_LIT:
        # Fully lit, and the frames just before it were not analysed (the analysis skipped
        # them): the flash may have begun in any of them; its onset is unknown to the app.
        return None
    if late:  # the flash began in the exposure of the frame before
        onset_s = end_s - interval_s - fraction_before * exposure_s
        fraction = fraction_before
    elif fraction_now >= 1.0 and exposure_s < interval_s:
        # Fully lit and dark before: the flash began between two exposures; take the middle.
        onset_s = end_s - exposure_s - (interval_s - exposure_s) / 2
        fraction = fraction_now
    else:
        onset_s = end_s - fraction_now * exposure_s
        fraction = fraction_now
    line_bytes = len(report.answer_command or "") + 1  # and its newline
    transfer_s = line.link_delay_ms / 1e3 + line_bytes * line.bits_per_byte / baudrate
    sampling_ms = (end_s - onset_s) * 1e3
    frame_to_command_ms = (written_s - end_s) * 1e3
    app_ms = sampling_ms + frame_to_command_ms + transfer_s * 1e3
    parts = _pipeline_parts((frames or {}).get(frame_index), end_s, written_s)
    return FlashAccount(
        flash=report.flash,
        frame_index=frame_index,
        board_ms=round(report.board_ms, 4),
        sampling_wait_ms=round(sampling_ms, 4),
        frame_to_command_ms=round(frame_to_command_ms, 4),
        transfer_ms=round(transfer_s * 1e3, 4),
        app_ms=round(app_ms, 4),
        agreement_ms=round(app_ms - report.board_ms, 4),
        lit_fraction=round(fraction, 4),
        seen_one_frame_late=late,
        **parts,
    )


def _pipeline_parts(
    frame: FrameTiming | None, exposure_end_s: float, written_s: float
) -> dict[str, float]:
    """Split frame -> command into the model and the pipeline's parts (ms, 4 decimals)."""
    if frame is None:
        return {}
    free_s = min(frame.worker_free_s, frame.picked_s)
    wait_s = max(0.0, free_s - frame.arrived_s)
    decided_s = frame.decided_s if math.isfinite(frame.decided_s) else frame.ready_s
    parts_s = {
        "delivery": frame.arrived_s - exposure_end_s,
        "wait": wait_s,
        "transport": frame.picked_s - frame.arrived_s - wait_s,
        "handover": frame.ready_s - frame.picked_s - frame.model_ms / 1e3,
        "experiment": decided_s - frame.ready_s,
        "output": written_s - decided_s,
    }
    figures = {f"{part}_ms": round(value * 1e3, 4) for part, value in parts_s.items()}
    figures["model_ms"] = round(frame.model_ms, 4)
    figures["pipeline_ms"] = round((written_s - exposure_end_s) * 1e3 - frame.model_ms, 4)
    return figures


def read_frame_timings(path: Path) -> dict[int, FrameTiming]:
    """Frame index -> its stage times, from a ``pose_timing.csv`` (empty when there is none)."""
    if not path.exists():
        return {}
    timings = {}
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            try:
                timings[int(row["frame_index"])] = FrameTiming(
                    arrived_s=float(row["host_timestamp"]),
                    worker_free_s=float(row["worker_free"] or row["picked_up"]),
                    picked_s=float(row["picked_up"]),
                    model_ms=sum(
                        float(row[k]) for k in ("preprocess_ms", "inference_ms", "decode_ms")
                    ),
                    ready_s=float(row["pose_ready"]),
                    decided_s=float(row["decided"]) if row.get("decided") else math.nan,
                )
            except (KeyError, ValueError):  # a row cut by a kill: the others still count
                continue
    return timings


def _light_levels(
    events: list[dict[str, str]], camera: str, frame_index: int
) -> tuple[float, float, float, float, int] | None:
    """level, previous, off, on and frame gap of the light trigger's change to true here."""
    for row in events:
        if (
            row["kind"] == "trigger"
            and row["camera"] == camera
            and row["frame_index"] == str(frame_index)
            and row["detail"].startswith("true ")
        ):
            values = dict(word.split("=", 1) for word in row["detail"].split()[1:] if "=" in word)
            try:
                level, previous, off, on = (
                    float(values[k]) for k in ("level", "previous", "off", "on")
                )
                return level, previous, off, on, int(values.get("gap", "1"))
            except (KeyError, ValueError):
                return None
    return None


def _fraction(level: float, off: float, on: float) -> float:
    return min(1.0, max(0.0, (level - off) / (on - off))) if on > off else 0.0


def _frame_times(path: Path) -> dict[int, tuple[float, float]]:
    """Frame index -> (camera time, host arrival), seconds, from a frames or pose times table."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as file:
        return {
            int(row["frame_index"]): (float(row["camera_timestamp"]), float(row["host_timestamp"]))
            for row in csv.DictReader(file)
            if row.get("camera_timestamp") and row.get("host_timestamp")
        }


def _read_events(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise LatencyAnalysisError(f"{path} is missing: the latency test's experiment did not run")
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _first_camera(info: SessionRecord) -> str:
    cameras = list(info.cameras)
    if not cameras:
        raise LatencyAnalysisError("session.json names no camera")
    return cameras[0]


def percentiles_4(values: list[float]) -> dict[str, float] | None:
    """Percentiles to 0.1 us, with their count."""
    return percentiles(values, digits=4, with_count=True)
