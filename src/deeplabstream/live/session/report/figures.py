"""The session's live figures: each camera's (cheap, read often), process ids, experiments."""

from __future__ import annotations

import os
from typing import Any

from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch, branch_stats
from deeplabstream.live.session.report.health import SessionHealth
from deeplabstream.outputs.folder import run_label


def camera_figures(
    branches: list[CameraBranch], analysis: Analysis | None, health: SessionHealth
) -> dict[str, dict[str, Any]]:
    """Return live per-camera figures read from the ring headers (cheap; call it often)."""
    stats = {branch.name: branch_stats(branch) for branch in branches}
    if analysis is not None:
        experiment = bool(analysis.experiment_running or analysis.experiment_summaries)
        for name, figures in stats.items():
            figures["latency_ms"] = analysis.recent_latency_ms(name)
            figures["loop_latency_ms"] = (
                analysis.recent_latency_ms(name, end_to_end=True) if experiment else None
            )
            live = analysis.live_deadline.get(name)
            figures["late"] = live.misses if live is not None else 0
            figures["stalled_s"] = health.stalled_s(name)
    return stats


def process_ids(branches: list[CameraBranch], analyses: list[Analysis]) -> dict[str, int | None]:
    """Return the process id of every process of the session, by process name."""
    processes: dict[str, int | None] = {"main": os.getpid()}
    for branch in branches:
        processes[branch.process.name] = branch.process.pid
        processes.update(branch.recorder_pids)
    for run, analysis in enumerate(analyses, start=1):
        processes[f"pose{run_label(run)}"] = analysis.process.pid
    return processes


def experiment_summaries(analyses: list[Analysis]) -> list[dict[str, Any]]:
    """Return the summary of every experiment of the session's analyses, in order."""
    return [summary for analysis in analyses for summary in analysis.experiment_summaries]


def last_experiment_summary(analyses: list[Analysis]) -> dict[str, Any] | None:
    """Return the summary of the session's last experiment; None when none ran."""
    for analysis in reversed(analyses):
        summary = analysis.experiment_summary()
        if summary is not None:
            return summary
    return None
