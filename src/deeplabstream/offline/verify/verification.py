"""Verify a session: analyse its recordings again, compare, write ``verify/``.

:func:`verify_session` is the whole job of ``deeplabstream-verify`` (and of the window's Verify
button): read the folder (:mod:`.session_files`), run the offline reference
(:mod:`.reanalysis`), compare keypoints (:mod:`.keypoints`) and events (:mod:`.events`), and
write ``verify/summary.json``; :mod:`.report` then writes ``verify/report.html`` from it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.offline.replay.job import ProgressSink
from deeplabstream.offline.verify.events import (
    MIN_WINDOW_FRAMES,
    EventComparison,
    FrameFacts,
    compare_events,
    compared_events,
    read_events,
)
from deeplabstream.offline.verify.frames import (
    PoseSeries,
    captured_frames,
    live_poses,
    merge,
    place_offline,
    video_to_live,
)
from deeplabstream.offline.verify.keypoints import (
    CameraFacts,
    KeypointComparison,
    compare_keypoints,
)
from deeplabstream.offline.verify.reanalysis import OfflineRun, analyse_offline
from deeplabstream.offline.verify.session_files import (
    CameraFiles,
    SessionFiles,
    VerifyError,
    read_session,
)
from deeplabstream.outputs.pose.files import POSE_EXACT_SUFFIX, POSE_TIMES_SUFFIX
from deeplabstream.outputs.pose.table import read_pose_table

VERIFY_FOLDER = "verify"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
# With a lossy (H.264) recording: the largest p99 keypoint difference on frames whose only
# difference is the compression. The default recording (CRF 18) of the simulated arena with the
# bundled model measured about 1 px at p99 (docs/verify.md); 2 px leaves room for other scenes.
DEFAULT_TOLERANCE_PX = 2.0
CPU_PROVIDERS = ("CPUExecutionProvider", "cpu", None)


@dataclass
class Verification:
    """What verify found: the summary written to ``summary.json`` and the comparisons."""

    folder: Path
    summary: dict[str, Any]
    keypoints: list[KeypointComparison]
    events: EventComparison

    @property
    def agrees(self) -> bool:
        """True when everything agrees within tolerance (exit code 0)."""
        return bool(self.summary["verdict"] == "agrees")


def verify_session(
    folder: Path,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    progress: ProgressSink | None = None,
) -> Verification:
    """Verify the session in ``folder``; raises VerifyError when it cannot be verified."""
    began = time.monotonic()
    session = read_session(folder)
    target = session.folder / VERIFY_FOLDER
    runs = analyse_offline(session, target, progress)
    failed = [run for run in runs if not run.result.ok and not run.result.frames_analysed]
    if failed:
        raise VerifyError(
            f"{session.folder}: the offline analysis failed: "
            + "; ".join(e for run in failed for e in run.result.errors)
        )
    frame_maps = _frame_maps(session, runs)
    comparisons, facts = [], {}
    for camera in session.cameras:
        comparison, camera_facts = _compare_camera(session, camera, runs, frame_maps, tolerance_px)
        if comparison is not None:
            comparisons.append(comparison)
        facts[camera.name] = camera_facts
    events = _compare_events(session, runs, frame_maps, facts)
    summary = _summary(session, runs, comparisons, events, tolerance_px, began)
    (target / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return Verification(session.folder, summary, comparisons, events)


def _frame_maps(session: SessionFiles, runs: list[OfflineRun]) -> dict[int, dict[str, np.ndarray]]:
    """Per recording part, per camera: the live frame index of each video frame."""
    maps: dict[int, dict[str, np.ndarray]] = {}
    for run in runs:
        maps[run.part] = {}
        for camera in session.cameras:
            if run.part < len(camera.videos):
                table = camera.videos[run.part].frames_table
                maps[run.part][camera.name] = video_to_live(table, run.result.frames_captured)
    return maps


def _model_record(session: SessionFiles, camera: str) -> dict[str, Any]:
    pose = session.record.get("pose") or {}
    per_camera = (pose.get("camera_models") or {}).get(camera)
    return per_camera or pose.get("model") or {}


def _camera_facts(
    session: SessionFiles, camera: CameraFiles, runs: list[OfflineRun]
) -> CameraFacts:
    """Return what decides the causes of a camera's differences, from the reference's plan.

    The reference runs the session's settings of each camera (its own threshold and dynamic
    crop, else ``[Pose]``'s), resolved in its plan: they are read there, not derived again.
    """
    effective = next((c for run in runs for c in run.plan.cameras if c.name == camera.name), None)
    settings = session.settings
    model = _model_record(session, camera.name)
    threshold = effective.likelihood_threshold if effective else settings.pose.likelihood_threshold
    return CameraFacts(
        lossless=all(part.lossless for part in camera.videos),
        context_model="context" in model,
        crop_from_previous=settings.pose.crop_from == "previous_frame",
        dynamic_crop=bool(effective and effective.dynamic_crop.enabled),
        animals=int(model.get("max_animals") or 1),
        gpu=model.get("provider") not in CPU_PROVIDERS,
        likelihood_threshold=float(threshold),
    )


def _compare_camera(
    session: SessionFiles,
    camera: CameraFiles,
    runs: list[OfflineRun],
    frame_maps: dict[int, dict[str, np.ndarray]],
    tolerance_px: float,
) -> tuple[KeypointComparison | None, FrameFacts]:
    facts = _camera_facts(session, camera, runs)
    keypoints = tuple(_model_record(session, camera.name).get("keypoints") or ())
    captured = captured_frames(camera.pose_times)
    skipped = {int(f) for f, done in zip(*captured, strict=True) if not done}
    live = live_poses(camera.pose_exact, camera.pose_csv, camera.pose_timing, keypoints)
    offline = _offline_poses(camera, runs, frame_maps, keypoints)
    interval = _frame_interval_ms(session, camera.name)
    if live is None or offline is None:
        return None, FrameFacts(skipped, set(), interval)
    truth, truth_frames = _truth(camera)
    comparison = compare_keypoints(
        camera.name, live, offline, captured, facts, tolerance_px, truth, truth_frames
    )
    comparison.series["skipped"] = sorted(skipped)
    series = comparison.series
    explained = {  # frames whose keypoints differ, for a cause that applies
        frame
        for frame, cause, equal in zip(
            series["frame"], series["cause"], series["equal"], strict=True
        )
        if cause and not equal
    }
    recorded = _recorded_frames(camera, frame_maps)
    unrecorded = {int(f) for f in captured[0].tolist()} - recorded
    return comparison, FrameFacts(skipped, explained, interval, unrecorded)


def _recorded_frames(camera: CameraFiles, frame_maps: dict[int, dict[str, np.ndarray]]) -> set[int]:
    """Return the live frame indices the camera's recordings hold."""
    return {
        int(f)
        for maps in frame_maps.values()
        if camera.name in maps
        for f in maps[camera.name].tolist()
    }


def _offline_poses(
    camera: CameraFiles,
    runs: list[OfflineRun],
    frame_maps: dict[int, dict[str, np.ndarray]],
    keypoints: tuple[str, ...],
) -> PoseSeries | None:
    parts = []
    for run in runs:
        folder = run.result.session_dir or run.folder
        exact = folder / f"{camera.name}{POSE_EXACT_SUFFIX}"
        live_index = frame_maps.get(run.part, {}).get(camera.name)
        if not exact.is_file() or live_index is None:
            continue
        series = live_poses(exact, None, folder / f"{camera.name}.pose_timing.csv", keypoints)
        if series is not None:
            parts.append(place_offline(series, live_index))
    return merge(parts)


def _truth(camera: CameraFiles) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return the simulated animal's true keypoints (N, A, K, 3) and their frame indices."""
    if camera.truth is None:
        return None, None
    try:
        table = read_pose_table(camera.truth)
    except ValueError:
        return None, None
    return table.points, table.frames.astype(np.int64)


def _frame_interval_ms(session: SessionFiles, camera: str) -> float:
    entry = (session.record.get("cameras") or {}).get(camera) or {}
    fps = entry.get("measured_fps") or entry.get("nominal_fps")
    return 1000.0 / float(fps) if fps else 0.0


def _compare_events(
    session: SessionFiles,
    runs: list[OfflineRun],
    frame_maps: dict[int, dict[str, np.ndarray]],
    facts: dict[str, FrameFacts],
) -> EventComparison:
    host_times = {camera.name: _host_times(camera) for camera in session.cameras}
    # An action logged within one frame of the slowest camera after a trigger change is that
    # change's decision (events.compared_events).
    anchor_s = max((f.frame_interval_ms for f in facts.values()), default=0.0) / 1000.0
    live, closing = compared_events(read_events(session.events), None, host_times, anchor_s)
    offline = []
    for run in runs:
        folder = run.result.session_dir or run.folder
        rows = read_events(folder / "events.csv")
        events, _ = compared_events(rows, frame_maps[run.part], host_times, anchor_s)
        offline += events
    longest_gap = max(
        (max(_longest_run(f.skipped | f.unrecorded), 0) for f in facts.values()), default=0
    )
    window = MIN_WINDOW_FRAMES + longest_gap + _lead_frames(live, facts)
    result = compare_events(live, offline, facts, window)
    result.closing_live = closing
    return result


def _host_times(camera: CameraFiles) -> dict[int, float]:
    """Return each live frame's host time (s), from ``<camera>.pose_times.csv``."""
    if camera.pose_times is None:
        return {}
    data = np.genfromtxt(camera.pose_times, delimiter=",", skip_header=1, usecols=(0, 1), ndmin=2)
    known = ~np.isnan(data[:, 1]) if data.size else np.zeros(0, dtype=bool)
    return {int(f): float(t) for f, t in data[known]}


def _longest_run(frames: set[int]) -> int:
    longest, run, previous = 0, 0, None
    for frame in sorted(frames):
        run = run + 1 if previous is not None and frame == previous + 1 else 1
        longest, previous = max(longest, run), frame
    return longest


def _lead_frames(live: list[Any], facts: dict[str, FrameFacts]) -> int:
    frames = 0
    for event in live:
        lead, camera = event.lead_ms(), facts.get(event.camera)
        if lead and camera and camera.frame_interval_ms > 0:
            frames = max(frames, math.ceil(lead / camera.frame_interval_ms) + 1)
    return frames


def _summary(
    session: SessionFiles,
    runs: list[OfflineRun],
    comparisons: list[KeypointComparison],
    events: EventComparison,
    tolerance_px: float,
    began: float,
) -> dict[str, Any]:
    reasons = [reason for c in comparisons for reason in c.reasons()] + events.reasons()
    notes = _notes(session, runs, comparisons)
    return {
        "session": str(session.folder),
        "verdict": "agrees" if not reasons else "differs",
        "reasons": reasons,
        "notes": notes,
        "report": REPORT_FILE,
        "tolerance_px": tolerance_px,
        "elapsed_s": round(time.monotonic() - began, 3),
        "offline": [
            {
                "folder": str((run.result.session_dir or run.folder).relative_to(session.folder)),
                "videos": [
                    str(c.videos[run.part].video)
                    for c in session.cameras
                    if run.part < len(c.videos)
                ],
                "frames_analysed": run.result.frames_analysed,
                "frames_skipped": run.result.frames_skipped,
                "elapsed_s": round(run.result.elapsed_s, 3),
                "forward_prediction_removed": run.prediction_removed,
            }
            for run in runs
        ],
        "cameras": {c.camera: _camera_summary(c) for c in comparisons},
        "events": {
            "counts": events.counts(),
            "offline_decisions_on_frames_skipped_live": events.offline_on_skipped_frames,
            "closing_switch_offs_not_compared": events.closing_live,
            "matched": events.matched,
            "live_only": events.live_only,
            "offline_only": events.offline_only,
        },
        "actions": [
            {
                "name": item["name"],
                "detail": item["detail"],
                "frame": item["frame"],
                "frames_late": item["frames_late"],
                "latency_ms": item["latency_ms"],
                "explained_by": item["explained_by"],
            }
            for item in events.matched
            if item["kind"] == "action"
        ],
    }


def _camera_summary(comparison: KeypointComparison) -> dict[str, Any]:
    data = asdict(comparison)
    data.pop("series")
    data.pop("camera")
    data["frames_skipped_live"] = len(comparison.series.get("skipped", []))
    return data


def _notes(
    session: SessionFiles, runs: list[OfflineRun], comparisons: list[KeypointComparison]
) -> list[str]:
    """Return what a reader must know to read the figures (not failures)."""
    notes = []
    for camera in session.cameras:
        if not all(part.lossless for part in camera.videos):
            notes.append(
                f"{camera.name}: recorded with a lossy codec (H.264): the offline analysis saw "
                "the compressed frames, so compression is part of every keypoint difference. "
                "Record with [Recording] CODEC = ffv1 to verify to the bit."
            )
        if camera.pose_exact is None:
            notes.append(
                f"{camera.name}: no {camera.name}{POSE_EXACT_SUFFIX} (a session from before it "
                "was written): live keypoints are compared at the pose CSV's 0.001 px."
            )
        if camera.pose_times is None:
            notes.append(
                f"{camera.name}: no {camera.name}{POSE_TIMES_SUFFIX}: skipped frames unknown"
            )
    if any(run.prediction_removed for run in runs):
        notes.append(
            "The experiment predicted forward live; the offline reference decides on the measured "
            "keypoints (PREDICT = off), so live decisions made early by prediction show as early."
        )
    for comparison in comparisons:
        if comparison.frames_not_in_recording:
            notes.append(
                f"{comparison.camera}: {comparison.frames_not_in_recording} frame(s) analysed "
                "live are not in the recording (the recorder lost them): not compared."
            )
    return notes
