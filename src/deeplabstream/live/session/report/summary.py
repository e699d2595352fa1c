"""The end-of-session summary, rendered from ``session.json``'s figures and nothing else.

So the CLI, the window and ``session.json`` can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deeplabstream.outputs.session_record import (
    CameraRecord,
    ExperimentRun,
    Health,
    PoseCamera,
    SessionRecord,
)


def summary_lines(
    record: SessionRecord | Mapping[str, Any], folder: Path | None = None
) -> list[str]:
    """Return the summary of a finished session from its record (or its JSON data).

    ``folder`` is named on the second line (the record does not hold it).
    """
    if not isinstance(record, SessionRecord):
        record = SessionRecord.from_json(dict(record))
    lines = [_stop_line(record.stop_reason or "stopped")]
    if folder is not None:
        lines.append(f"Session folder: {folder}")
    for name, camera in record.cameras.items():
        lines.append(f"  {name}: {_camera_text(camera)}")
    for run in record.pose_runs:
        for name, figures in run.cameras.items():
            lines.append(f"  {name}: {_analysis_text(figures)}")
    for experiment in record.experiment_runs:
        lines.append(f"  {_experiment_text(experiment)}")
    errors = list(record.errors)
    lines += _health_lines(record.health, errors)
    lines += [f"  warning: {warning}" for warning in record.warnings]
    lines += [f"  error: {error}" for error in errors]
    return lines


def headline(record: SessionRecord | Mapping[str, Any]) -> str:
    """Return one line: why the session stopped, and what it lost (or that it lost nothing)."""
    if not isinstance(record, SessionRecord):
        record = SessionRecord.from_json(dict(record))
    said = []
    for name, camera in record.cameras.items():
        if camera.frames_lost_in_recording:
            said.append(
                f"the recorder lost {camera.frames_lost_in_recording} frames of {name!r} "
                "(its video has holes)"
            )
        if camera.frames_dropped_by_camera:
            said.append(f"{name!r} dropped {camera.frames_dropped_by_camera} frames")
    for name, health in record.health.cameras.items():
        if health.deadline_ms is not None and health.misses:
            said.append(f"{health.misses} analysed frames of {name!r} late")
    stop = _stop_line(record.stop_reason or "stopped")
    if said:
        return f"{stop}: {'; '.join(said)}"
    if record.errors:
        return f"{stop}, with errors (below)"
    recorded = any(camera.recordings for camera in record.cameras.values())
    return f"{stop}: nothing lost" + (", every frame captured was recorded" if recorded else "")


#: Stop reasons that are the user's own choice (the window's Stop, Ctrl-C, q, closing): the
#: summary says so plainly; such a stop is never an error.
USER_STOPS = ("stopped by the user", "Ctrl-C received", "q pressed", "window closed")


def _stop_line(reason: str) -> str:
    """Say why the session stopped; a user's own stop reads as one, not as a failure."""
    if reason == USER_STOPS[0]:
        return "Stopped by the user"
    if reason in USER_STOPS:
        return f"Stopped by the user ({reason})"
    return f"Stopped: {reason}"


def _camera_text(camera: CameraRecord) -> str:
    """Say what a camera captured, recorded (+ lost) and dropped."""
    fps = camera.measured_fps
    text = f"{camera.frames_captured} frames captured "
    text += f"({fps:.2f} fps)" if fps else "(no rate)"
    recorded, lost = camera.frames_recorded, camera.frames_lost_in_recording
    if camera.recordings:
        text += f", {recorded} recorded"
        if lost:
            text += f" + {lost} lost in recording"
    else:
        text += ", not recorded"
    return text + f", {camera.frames_dropped_by_camera} dropped by the camera"


def _analysis_text(figures: PoseCamera) -> str:
    """Say what was analysed, skipped, lost or not analysed (worker gone); the latency."""
    text = (
        f"{figures.frames_analysed or 0} frames analysed "
        f"({figures.analysed_fps or 0:.1f} fps), {figures.frames_skipped or 0} skipped"
    )
    if figures.frames_lost:
        text += f", {figures.frames_lost} lost"
    if figures.frames_no_animal:
        text += f", {figures.frames_no_animal} with no animal found"
    gone = figures.frames_not_analysed_worker_gone
    if gone:
        text += f", {gone} not analysed (the pose worker was gone)"
    latency = figures.latency_ms
    if latency and latency.p50 is not None and latency.p99 is not None:
        text += f"; frame-to-pose latency p50 {latency.p50:.1f} ms, p99 {latency.p99:.1f} ms"
    return text


def _experiment_text(experiment: ExperimentRun) -> str:
    """Say an experiment's actions, frame-to-command latency, update time, events file."""
    if experiment.rebuilt_from_files:  # its worker died: what its events file holds
        named = f"experiment {experiment.name}" if experiment.name else "experiment"
        return (
            f"{named}: {experiment.events or 0} events in "
            f"{experiment.events_file} (its worker died; rebuilt from the file)"
        )
    text = f"experiment {experiment.name}: {experiment.actions or 0} actions"
    command = experiment.latency_ms.frame_to_command_written if experiment.latency_ms else None
    if command and command.p50 is not None and command.p99 is not None:
        text += f"; frame-to-command latency p50 {command.p50:.1f} ms, p99 {command.p99:.1f} ms"
    update = experiment.update_ms
    if update and update.p50 is not None and update.p99 is not None:
        text += f"; update p50 {update.p50:.1f} / p99 {update.p99:.1f} ms"
    return text + f"; events in {experiment.events_file}"


def _health_lines(health: Health, errors: list[str]) -> list[str]:
    """Say each camera's deadline and misses, the stalls, and the loop's warnings."""
    lines = []
    for name, camera in health.cameras.items():
        deadline = camera.deadline_ms
        if deadline is None:
            continue
        text = (
            f"  {name}: {camera.misses} of {camera.frames_checked} analysed frames late "
            f"(deadline {deadline:.1f} ms"
        )
        late = {stage: n for stage, n in camera.misses_by_stage.items() if n}
        if late:
            text += "; " + ", ".join(f"{stage} {n}" for stage, n in late.items())
        end = camera.end_to_end_ms
        if end and end.p99 is not None:
            text += f"; frame -> end of the loop p99 {end.p99:.1f} ms"
        lines.append(text + ")")
    stalls = health.stalls
    if stalls.count:
        lines.append(
            f"  analysis stalled {stalls.count} time(s), the longest "
            f"{stalls.longest_s:.1f} s: {stalls.frames_not_analysed} frame(s) not analysed"
        )
    warnings = health.warnings_of_the_loop()
    lines += [f"  warning: {text}" for text in warnings if text not in errors]
    return lines
