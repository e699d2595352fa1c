"""The end-of-session summary, rendered from ``session.json``'s figures and nothing else.

The CLI prints these lines and the window shows them, from the same dictionary the session
wrote to ``session.json``: the three can never disagree (a recording cut by a full disk reads
the same everywhere: recorded + lost = captured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary_lines(record: dict[str, Any], folder: Path | None = None) -> list[str]:
    """Return the summary of a finished session from its ``session.json`` data.

    Parameters
    ----------
    record
        The session's ``session.json`` content (``LiveSession.record``, or the file read back).
    folder
        The session folder, named on the second line (the record does not hold it).
    """
    lines = [_stop_line(record.get("stop_reason") or "stopped")]
    if folder is not None:
        lines.append(f"Session folder: {folder}")
    for name, camera in (record.get("cameras") or {}).items():
        lines.append(f"  {name}: {_camera_text(camera)}")
    for run in record.get("pose_runs") or ([record["pose"]] if record.get("pose") else []):
        for name, figures in (run.get("cameras") or {}).items():
            lines.append(f"  {name}: {_analysis_text(figures)}")
    for experiment in record.get("experiment_runs") or []:
        lines.append(f"  {_experiment_text(experiment)}")
    errors = list(record.get("errors") or [])
    lines += _health_lines(record.get("health") or {}, errors)
    lines += [f"  warning: {warning}" for warning in record.get("warnings") or []]
    lines += [f"  error: {error}" for error in errors]
    return lines


#: Stop reasons that are the user's own choice (the window's Stop, Ctrl-C, q, closing): the
#: summary says so plainly; such a stop is never an error (issue 38).
USER_STOPS = ("stopped by the user", "Ctrl-C received", "q pressed", "window closed")


def _stop_line(reason: str) -> str:
    """Say why the session stopped; a user's own stop reads as one, not as a failure."""
    if reason == USER_STOPS[0]:
        return "Stopped by the user"
    if reason in USER_STOPS:
        return f"Stopped by the user ({reason})"
    return f"Stopped: {reason}"


def _camera_text(camera: dict[str, Any]) -> str:
    """Say what a camera captured, recorded (+ lost) and dropped."""
    fps = camera.get("measured_fps")
    text = f"{camera.get('frames_captured', 0)} frames captured "
    text += f"({fps:.2f} fps)" if fps else "(no rate)"
    recorded, lost = camera.get("frames_recorded", 0), camera.get("frames_lost_in_recording", 0)
    if camera.get("recordings"):
        text += f", {recorded} recorded"
        if lost:
            text += f" + {lost} lost in recording"
    else:
        text += ", not recorded"
    return text + f", {camera.get('frames_dropped_by_camera', 0)} dropped by the camera"


def _analysis_text(figures: dict[str, Any]) -> str:
    """Say what was analysed, skipped, lost or not analysed (worker gone); the latency."""
    text = (
        f"{figures.get('frames_analysed', 0)} frames analysed "
        f"({figures.get('analysed_fps') or 0:.1f} fps), {figures.get('frames_skipped', 0)} skipped"
    )
    if figures.get("frames_lost"):
        text += f", {figures['frames_lost']} lost"
    gone = figures.get("frames_not_analysed_worker_gone")
    if gone:
        text += f", {gone} not analysed (the pose worker was gone)"
    latency = figures.get("latency_ms")
    if latency:
        text += f"; frame-to-pose latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms"
    return text


def _experiment_text(experiment: dict[str, Any]) -> str:
    """Say an experiment's actions, frame-to-command latency, update time, events file."""
    if experiment.get("rebuilt_from_files"):  # its worker died: what its events file holds
        return (
            f"experiment: {experiment.get('events', 0)} events in "
            f"{experiment.get('events_file')} (its worker died; rebuilt from the file)"
        )
    text = f"experiment {experiment.get('name')}: {experiment.get('actions', 0)} actions"
    command = (experiment.get("latency_ms") or {}).get("frame_to_command_written")
    if command:
        text += (
            f"; frame-to-command latency p50 {command['p50']:.1f} ms, p99 {command['p99']:.1f} ms"
        )
    update = experiment.get("update_ms")
    if update:
        text += f"; update p50 {update['p50']:.1f} / p99 {update['p99']:.1f} ms"
    return text + f"; events in {experiment.get('events_file')}"


def _health_lines(health: dict[str, Any], errors: list[str]) -> list[str]:
    """Say each camera's deadline and misses, the stalls, and the loop's warnings.

    The loop's problems that are errors are in ``errors`` (said once, as errors).
    """
    lines = []
    for name, camera in (health.get("cameras") or {}).items():
        deadline = camera.get("deadline_ms")
        if deadline is None:
            continue
        text = (
            f"  {name}: {camera['misses']} of {camera['frames_checked']} analysed frames late "
            f"(deadline {deadline:.1f} ms"
        )
        late = {stage: n for stage, n in camera["misses_by_stage"].items() if n}
        if late:
            text += "; " + ", ".join(f"{stage} {n}" for stage, n in late.items())
        end = camera.get("end_to_end_ms")
        if end:
            text += f"; frame -> end of the loop p99 {end['p99']:.1f} ms"
        lines.append(text + ")")
    stalls = health.get("stalls") or {}
    if stalls.get("count"):
        lines.append(
            f"  analysis stalled {stalls['count']} time(s), the longest "
            f"{stalls['longest_s']:.1f} s: {stalls['frames_not_analysed']} frame(s) not analysed"
        )
    if "loop_warnings" in health:
        warnings = health["loop_warnings"]
    else:  # a record of an older version: its problems were warnings with that verdict
        warnings = health.get("problems") or [] if health.get("verdict") == "warning" else []
    lines += [f"  warning: {text}" for text in warnings if text not in errors]
    return lines
