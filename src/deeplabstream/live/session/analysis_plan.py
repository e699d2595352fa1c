"""A session's pose estimation and experiments: Start/Stop Analysis, Start/Stop Experiment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from typing import Protocol

from deeplabstream.core.control import StopCheck, check_stop
from deeplabstream.core.logs import LogTarget
from deeplabstream.hardware.stimulation.latency import LatencyTestSpec
from deeplabstream.live.processes.analysis.depth import depth_source
from deeplabstream.live.processes.analysis.dispatch import EVENTS_FILE
from deeplabstream.live.processes.analysis.job import WorkerCamera
from deeplabstream.live.processes.messages import ExperimentSpec
from deeplabstream.live.session.analysis import Analysis, PoseError
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.live.session.report.events import SessionEvent
from deeplabstream.live.session.report.health import SessionHealth
from deeplabstream.live.session.report.session_report import ReportingSession, SessionReport
from deeplabstream.outputs.folder import run_label
from deeplabstream.settings.effective import CameraPlan
from deeplabstream.settings.experiment_plan import ExperimentPlan, resolve_experiment
from deeplabstream.settings.outputs import chosen_outputs
from deeplabstream.settings.sections import Settings
from deeplabstream.transport.ring import Channel


class AnalysedSession(ReportingSession, Protocol):
    """What the analyses read of the session and tell it (live.session.live.LiveSession)."""

    report: SessionReport

    @property
    def camera_plan(self) -> CameraPlan: ...  # noqa: D102 (a protocol's member)


class PoseEstimation:
    """The inference worker of one session and the experiments on its poses (module docstring)."""

    def __init__(
        self,
        session: AnalysedSession,
        context: SpawnContext,
        log_level: int,
        hurried: Callable[[], bool],
    ) -> None:
        self._session = session
        self._context = context
        self._log_level = log_level
        self._hurried = hurried  # true once the stop was asked for again: wait for less
        self.analysis: Analysis | None = None  # the current (or last) analysis
        self.analyses: list[Analysis] = []  # every analysis of this session, in order
        self.experiments_started = 0  # each named its events file (events_file_name)

    @property
    def analysing(self) -> bool:
        """True while the inference worker runs."""
        return self.analysis is not None and self.analysis.finished is None

    def start_analysis(
        self,
        experiment: bool = False,
        experiment_name: str | None = None,
        latency_test: LatencyTestSpec | None = None,
        stop_requested: StopCheck | None = None,
        experiment_plan: ExperimentPlan | None = None,
    ) -> None:
        """Start the inference worker for every streaming camera; returns once it is warmed up.

        With ``experiment``, it also runs the experiment with its devices opened first (and
        ``latency_test``). Raises PoseError (model, provider, experiment or device missing), and
        StopRequested when ``stop_requested`` gives a reason while the model loads.
        """
        session, branches = self._session, self._session.branches
        if session.session_dir is None or session.stopped:
            raise PoseError("the stream is not running: start the stream first")
        if self.analysing:
            return
        check_stop(stop_requested)  # asked before the worker starts: it is not started
        if self.analysis is not None:  # a worker that died: its frames are counted to now
            self.stop_analysis()
        cameras = worker_cameras(branches, session.camera_plan, session.report.health)
        if not cameras:
            raise PoseError("no camera is streaming any more: start a new stream")
        settings = session.settings
        spec = (
            experiment_spec(settings, experiment_name, latency_test, experiment_plan)
            if experiment
            else None
        )
        self.analysis = Analysis.start(
            self._context,
            cameras,
            settings.pose,
            session.session_dir,
            LogTarget(self._log_level),
            spec,
            file_label=run_label(len(self.analyses) + 1),
            events_file=self._next_events_file() if experiment else EVENTS_FILE,
            outputs=chosen_outputs(settings),
            priority=session.priority_plan.for_role("inference"),
            triangulation=settings.triangulation.spec(
                [camera.name for camera in settings.cameras], str(settings.source_file)
            ),
            stop_requested=stop_requested,
            settings_folder=settings.source_file.parent,  # the lab's plugin folders
            doorbell=session.doorbell,
        )
        self.analyses.append(self.analysis)
        for warning in self.analysis.ready.warnings:  # e.g. frames not the model's size
            session.report_warning(warning)
        names = {camera.name for camera in cameras}
        self.analysis.rings = {b.name: b.ring for b in branches if b.name in names and b.ring}
        self.analysis.deadlines = {camera.name: camera.deadline_ns for camera in cameras}
        session.report.health.watch(self.analysis, branches)
        session.report.priority_entry(session)  # the worker set its priority before it was ready

    def stop_analysis(self) -> None:
        """Stop the inference worker; its pose files (and a running experiment's) are finalised."""
        session = self._session
        if self.analysis is not None and self.analysis.process.pid is not None:
            error = self.analysis.stop(self._hurried)
            if error:
                session.report_error(error)
            session.report.analysis_ended(session, self.analysis)  # a stall, its files, no animal

    # -- the experiment ----------------------------------------------------------------------

    @property
    def experimenting(self) -> bool:
        """True while an experiment runs on the poses."""
        return self.analysing and self.analysis is not None and self.analysis.experiment_running

    def start_experiment(
        self, experiment_name: str | None = None, latency_test: LatencyTestSpec | None = None
    ) -> None:
        """Start ``[Experiment] NAME`` (or ``experiment_name``) on the running analysis."""
        if not self.analysing or self.analysis is None:
            raise PoseError("pose estimation is not running: start analysis first")
        if self.experimenting:
            return
        try:
            self.analysis.start_experiment(
                experiment_spec(self._session.settings, experiment_name, latency_test),
                self._next_events_file(),
            )
        except PoseError as error:  # the device's own words, kept for session.json too
            self._session.report_error(str(error))
            raise

    def stop_experiment(self) -> None:
        """Stop the running experiment; analysis, streaming and recording go on."""
        if self.analysis is not None:
            self.analysis.stop_experiment()

    def _next_events_file(self) -> str:
        """``events.csv`` for the session's first experiment, ``events.run2.csv`` and on after."""
        self.experiments_started += 1
        return events_file_name(self.experiments_started)

    def news(self) -> list[SessionEvent]:
        """Take the worker's news; return its failure for the user, once (one service turn)."""
        if self.analysis is None or self.analysis.finished is not None:
            return []
        self.analysis.drain()
        error = self.analysis.check_finished()
        if error:
            self._session.report_error(error)
            return [SessionEvent(logging.ERROR, error)]
        return []


def worker_cameras(
    branches: list[CameraBranch], plan: CameraPlan, health: SessionHealth
) -> list[WorkerCamera]:
    """Return the cameras still streaming, each with its effective settings from ``plan``."""
    cameras = []
    for branch in branches:
        if branch.ended or branch.ring is None:
            continue
        description = branch.opened.description if branch.opened else {}
        geometry = branch.ring.spec.geometry
        cameras.append(
            WorkerCamera(
                branch.camera_id,
                branch.ring.spec,
                branch.channel_ends[Channel.ANALYSE],
                plan.camera(branch.name),
                # A RealSense's aligned depth image: experiments read it (Observation.depth_m).
                depth_source(branch.name, description, (geometry.height, geometry.width)),
                deadline_ns=health.deadline_ns(
                    branch.opened.nominal_fps if branch.opened else None
                ),
            )
        )
    return cameras


def experiment_spec(
    settings: Settings,
    name: str | None,
    latency_test: LatencyTestSpec | None,
    plan: ExperimentPlan | None = None,
) -> ExperimentSpec:
    """Return experiment ``name`` (None: ``[Experiment] NAME``) with the settings' devices.

    Read now unless ``plan`` has it resolved already.
    """
    if plan is None:
        chosen = name or settings.experiment.name
        named_by = f"[Experiment] NAME in {settings.source_file}" if name is None else chosen
        plan = resolve_experiment(chosen, settings.source_file.parent, named_by)
    return ExperimentSpec(plan, dict(settings.devices), latency_test)


def events_file_name(run: int) -> str:
    """``events.csv`` for the session's first experiment, ``events.run2.csv`` and on after."""
    return f"events{run_label(run)}.csv"
