"""The loop's health: the deadline of every camera, its misses, stalls, and the verdict at the end.

The rules: docs/performance.md, "The loop's deadline".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deeplabstream.core.deadline import STAGES
from deeplabstream.live.session.analysis import Analysis
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.events import SessionEvent, WatchedSession
from deeplabstream.live.session.report.stalls import AnalysisStall, AnalysisStallWatch
from deeplabstream.outputs.session_record import (
    CameraHealth,
    Counted,
    DeadlineSetting,
    ExperimentHealth,
    ExperimentRun,
    Health,
    Stalls,
    parse_or_keep,
)
from deeplabstream.settings.sections import ExperimentSettings

log = logging.getLogger(__name__)

#: Fewer misses than this never fail a session, whatever their share: a short session's one
#: late frame (a machine's hiccup) says nothing about its loop.
MIN_MISSES = 3

STAGE_WORDS = {
    "wait": "waiting for the worker (busy with the previous frame)",
    "transport": "transport (the frame reaching the model)",
    "inference": "inference",
    "experiment": "the experiment's update",
    "output": "the output (the device's command)",
}


@dataclass(frozen=True)
class HealthNews:
    """Something about the loop's health the user must hear (``level``: a logging level)."""

    level: int
    text: str
    camera: str | None = None


class SessionHealth:
    """A session's deadline, stall watch and verdict.

    ``settings``: ``[Experiment]``; ``live`` False (a replay): no deadline, no stall watch.
    """

    def __init__(self, settings: ExperimentSettings, live: bool) -> None:
        self.settings = settings
        self.live = live
        self.stalls = AnalysisStallWatch()
        self.problems: list[str] = []  # the loop's own texts (errors and warnings)
        self.loop_warnings: list[str] = []  # those of ``problems`` that are warnings
        self.verdict = "ok"  # the loop's own verdict; session.json's is :func:`verdict_of`

    @property
    def deadline_on(self) -> bool:
        """Whether frames are judged against a deadline (a live session, not ``off``)."""
        return self.live and self.settings.deadline_ms != "off"

    def deadline_ns(self, nominal_fps: float | None) -> int | None:
        """Return the deadline of a camera at ``nominal_fps`` (ns); None when there is none."""
        return self.settings.deadline_ns(nominal_fps) if self.live else None

    def watch(self, analysis: Analysis, branches: list[CameraBranch]) -> None:
        """Follow a new analysis: its poses feed the stall watch (live sessions)."""
        if not self.live:
            return
        for branch in branches:
            if branch.name in analysis.deadlines:
                self.stalls.watch(
                    branch.name,
                    branch.opened.nominal_fps if branch.opened else None,
                    analysis.deadlines[branch.name],
                    self.stalls.first_index(branch),
                )
        analysis.pose_listeners.append(self.stalls.on_pose)

    def check(self, branches: list[CameraBranch]) -> list[HealthNews]:
        """Return the stalls that began (a warning) or ended (an error) since the last look."""
        began, ended = self.stalls.check(branches)
        news = [HealthNews(logging.WARNING, text) for text in began]
        return news + [self._stall_news(stall) for stall in ended]

    def end_analysis(self, branches: list[CameraBranch]) -> list[HealthNews]:
        """End the watch of a stopped analysis; return the stall still going on, if any."""
        return [self._stall_news(stall) for stall in self.stalls.close(branches)]

    def stalled_s(self, camera: str) -> float | None:
        """Return how long the camera's analysis has been stalled; None when it is not."""
        return self.stalls.stalled_s(camera)

    def _stall_news(self, stall: AnalysisStall) -> HealthNews:
        level = logging.ERROR if self.deadline_on else logging.WARNING
        return HealthNews(level, stall.text(), stall.camera)

    # -- session.json ------------------------------------------------------------------------

    def section(
        self,
        analyses: list[Analysis],
        experiments: Sequence[ExperimentRun],
        session_start_ns: int,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
    ) -> Health:
        """Return ``session.json``'s ``health``; ``errors``, ``warnings``: the session's own."""
        errors, warnings = list(errors or []), list(warnings or [])
        return Health(
            deadline=DeadlineSetting(
                setting=self.settings.deadline_ms,
                applies=self.deadline_on,
                miss_tolerance_percent=self.settings.deadline_miss_tolerance,
                judged="frame -> command on frames with an action, else frame -> decision "
                "with an experiment, else frame -> pose ready",
            ),
            cameras={
                name: parse_or_keep(CameraHealth, figures, f"health.cameras.{name}")
                for name, figures in camera_health(analyses).items()
            },
            experiments=tuple(
                ExperimentHealth(
                    name=run.name, events_file=run.events_file, update_ms=run.update_ms
                )
                for run in experiments
            ),
            stalls=parse_or_keep(Stalls, self.stalls.figures(session_start_ns), "health.stalls"),
            verdict=verdict_of(self.verdict, errors, warnings),
            problems=tuple(self.problems),
            loop_warnings=tuple(self.loop_warnings),
            counted=Counted(errors=len(errors), warnings=len(warnings)),
        )

    def judge(
        self, analyses: list[Analysis], experiments: list[dict[str, Any]]
    ) -> list[HealthNews]:
        """Judge at the end whether the loop kept its deadline: an error per camera over it."""
        news = []
        # The auto deadline is the experiment's (a stimulus due within three frames): pose
        # estimation alone is only warned about it; a number the user set is judged always.
        late_level = logging.ERROR
        if not experiments and self.settings.deadline_ms == "auto":
            late_level = logging.WARNING
        for camera, figures in camera_health(analyses).items():
            text = self._late_text(camera, figures, experiments)
            if text is not None:
                if late_level == logging.WARNING:
                    text += (
                        "; no experiment ran, so this is a warning: the auto deadline is the "
                        "experiment's (set DEADLINE_MS to a number to judge poses by it)"
                    )
                news.append(HealthNews(late_level, text, camera))
        if self.stalls.count:
            news_level = logging.ERROR if self.deadline_on else logging.WARNING
            self._add_problem(news_level, self.stalls_text())
        for item in news:
            self._add_problem(item.level, item.text)
        return news

    def stalls_text(self) -> str:
        """Say the stalls in one line."""
        watch = self.stalls
        return (
            f"analysis stalled {watch.count} time(s), the longest {watch.longest_s:.1f} s; "
            f"{watch.frames_not_analysed} frame(s) not analysed meanwhile"
        )

    def _add_problem(self, level: int, text: str) -> None:
        self.problems.append(text)
        if level >= logging.ERROR:
            self.verdict = "error"
            return
        self.loop_warnings.append(text)
        if self.verdict == "ok":
            self.verdict = "warning"

    def _late_text(
        self, camera: str, figures: dict[str, Any], experiments: list[dict[str, Any]]
    ) -> str | None:
        """Return the text of a camera above the tolerance; None when it kept its deadline."""
        checked, misses = figures["frames_checked"], figures["misses"]
        tolerance = self.settings.deadline_miss_tolerance
        if not self.deadline_on or misses < MIN_MISSES or misses <= tolerance / 100 * checked:
            return None
        by_stage: dict[str, int] = figures["misses_by_stage"]
        stage = max(by_stage, key=lambda name: by_stage[name])
        return (
            f"camera {camera!r}: {misses} of {checked} analysed frames "
            f"({100 * misses / checked:.1f} %) missed the {figures['deadline_ms']:.1f} ms deadline "
            f"(tolerance {tolerance:g} %), {by_stage[stage]} of them in "
            f"{STAGE_WORDS[stage]}{_part_words(stage, figures)}"
            f"{_stage_figure(stage, figures, experiments)}. Set [Experiment] "
            "DEADLINE_MS to what the experiment allows, or make that stage faster "
            "(docs/performance.md)"
        )


VERDICTS = ("ok", "warning", "error")

#: A camera whose model found no animal in at least this share of its analysed frames is
#: warned about: an empty arena, a camera the model does not fit, a top-down model whose first
#: stage finds nothing. (An animal put in later, or leaving for a while, is below it.)
NO_ANIMAL_SHARE = 0.95


def no_animal_warnings(cameras: dict[str, Any]) -> list[str]:
    """Return a warning per camera whose model found no animal in (nearly) every frame."""
    warnings = []
    for name, figures in cameras.items():
        analysed = int(figures.get("frames_analysed") or 0)
        empty = int(figures.get("frames_no_animal") or 0)
        if analysed and empty >= NO_ANIMAL_SHARE * analysed:
            warnings.append(
                f"camera {name!r}: the model found no animal in {empty} of {analysed} analysed "
                f"frames ({100 * empty / analysed:.0f} %): check that the animal is in view and "
                "lit, and that the model ([Pose] MODEL_PATH) was trained for this camera's view"
            )
    return warnings


def verdict_of(loop_verdict: str, errors: list[str], warnings: list[str]) -> str:
    """Return the session's verdict: the worst of the loop's, its errors and its warnings."""
    worst = VERDICTS.index(loop_verdict) if loop_verdict in VERDICTS else 0
    if errors:
        worst = max(worst, VERDICTS.index("error"))
    elif warnings:
        worst = max(worst, VERDICTS.index("warning"))
    return VERDICTS[worst]


def camera_health(analyses: list[Analysis]) -> dict[str, dict[str, Any]]:
    """Return each camera's deadline figures, summed over the session's analyses."""
    cameras: dict[str, dict[str, Any]] = {}
    for analysis in analyses:
        finished = analysis.finished.cameras if analysis.finished is not None else None
        for name in analysis.live_deadline:
            entry = cameras.setdefault(
                name,
                {
                    "deadline_ms": None,
                    "frames_checked": 0,
                    "misses": 0,
                    "miss_percent": 0.0,
                    "misses_by_stage": dict.fromkeys(STAGES, 0),
                    "end_to_end_ms": None,
                },
            )
            deadline_ns = analysis.deadlines.get(name)
            entry["deadline_ms"] = None if deadline_ns is None else round(deadline_ns / 1e6, 3)
            own = (finished or {}).get(name, {}).get("deadline")
            if own is not None:
                checked, misses = own["frames_checked"], own["misses"]
                by_stage = own["misses_by_stage"]
                entry["end_to_end_ms"] = own.get("end_to_end_ms")
            else:
                live = analysis.live_deadline[name]
                checked, misses = live.checked, live.misses
                by_stage = dict(zip(STAGES, live.by_stage, strict=True))
            entry["frames_checked"] += checked
            entry["misses"] += misses
            for stage in STAGES:
                entry["misses_by_stage"][stage] += int(by_stage.get(stage, 0))
            # a two-stage model: its misses in the model per part (core/deadline.py)
            for part, count in ((own or {}).get("inference_misses_by_part") or {}).items():
                parts = entry.setdefault("inference_misses_by_part", {})
                parts[part] = parts.get(part, 0) + int(count)
    for entry in cameras.values():
        checked = entry["frames_checked"]
        entry["miss_percent"] = round(100 * entry["misses"] / checked, 3) if checked else 0.0
    return cameras


def _part_words(stage: str, figures: dict[str, Any]) -> str:
    """Return `` (its crop part: N)`` for misses in a two-stage model's parts, else nothing."""
    parts: dict[str, int] = figures.get("inference_misses_by_part") or {}
    if stage != "inference" or not any(parts.values()):
        return ""
    part = max(parts, key=lambda name: parts[name])
    return f" (most in its {part} part: {parts[part]})"


def _stage_figure(stage: str, figures: dict[str, Any], experiments: list[dict[str, Any]]) -> str:
    """Return the figure that shows the blamed stage's time (``; ...``), or nothing."""
    if stage == "experiment":
        slowest = [e["update_ms"] for e in experiments if e.get("update_ms")]
        if slowest:
            worst = max(slowest, key=lambda update: update["p99"])
            return f"; its update took {_p50_p99_max(worst)}"
    end = figures.get("end_to_end_ms")
    return f"; frame -> end of the loop {_p50_p99_max(end)}" if end else ""


def _p50_p99_max(figures: dict[str, float]) -> str:
    return f"p50 {figures['p50']:.1f} / p99 {figures['p99']:.1f} / max {figures['max']:.1f} ms"


def tell_health(session: WatchedSession, news: HealthNews) -> SessionEvent:
    """Log (an error: report) what the health watch found; return it for the user."""
    if news.level >= logging.ERROR:
        session.report_error(news.text)
    else:
        log.warning("%s", news.text)
    return SessionEvent(news.level, news.text, news.camera)
