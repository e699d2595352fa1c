"""The inference worker: one process that estimates poses for every camera.

docs/architecture.md, "Processes and what crosses between them" and "Pose estimation".
"""

from __future__ import annotations

import logging
import os
import signal
from collections import defaultdict

from deeplabstream.core.call_watchdog import CallStuck, publish_to, when_stuck
from deeplabstream.core.collector import settle_after_start_up
from deeplabstream.core.errors import CalibrationError, DeepLabStreamError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.lifetime import (
    at_orphan_end,
    die_with_parent,
    leave_stop_signals_to_parent,
)
from deeplabstream.core.logs import add_log_file, configure_process_logging
from deeplabstream.core.plugins import use_settings_folder
from deeplabstream.core.priority import apply_process_priority
from deeplabstream.core.timing import host_now_ns, precise_timers
from deeplabstream.core.whole_rows import close_open_files, flush_open_files
from deeplabstream.live.processes.analysis.closing import finish
from deeplabstream.live.processes.analysis.experiment_slot import (
    ExperimentSlot,
    ExperimentStartError,
)
from deeplabstream.live.processes.analysis.frame_wait import FrameWaiter, Waitable
from deeplabstream.live.processes.analysis.job import PoseJob
from deeplabstream.live.processes.analysis.models import load_models, model_key
from deeplabstream.live.processes.analysis.pipeline import (
    BatchKey,
    CameraPipeline,
    Turn,
    analyse_batch,
    open_pipelines,
    ready_message,
)
from deeplabstream.live.processes.analysis.points3d import finish_triangulation, open_triangulator
from deeplabstream.live.processes.analysis.sinks import open_outputs
from deeplabstream.live.processes.messages import (
    ExperimentStopped,
    PoseFailed,
    PoseFinished,
    PoseStuck,
    StartExperiment,
    StatusWanted,
    StopAnalysis,
    StopExperiment,
)
from deeplabstream.outputs.folder import SESSION_LOG
from deeplabstream.outputs.pose.recovery import finish_events
from deeplabstream.pose.model_format import use_lab_formats
from deeplabstream.spatial.triangulation.live import LiveTriangulator

log = logging.getLogger(__name__)

#: The worker's exit status when it ended itself, its loop stuck in a call it could not interrupt.
EXIT_STUCK = 3


def pose_main(job: PoseJob) -> None:
    """Entry point of the inference worker process."""
    use_settings_folder(job.settings_folder)  # before any plugin: the lab's, as the session's
    use_lab_formats(job.settings.model_formats)  # the lab's formats the settings name, only
    leave_stop_signals_to_parent()  # the main process decides when to stop
    die_with_parent(signal.SIGTERM)  # never outlive the session (a killed main process)
    configure_process_logging(job.log_target, "pose")
    scheduling = {
        "priority": apply_process_priority(job.priority),  # before ONNX Runtime's thread pool
        "timers": precise_timers(),  # awake on time before a frame is due ([Pose] WAIT)
    }
    add_log_file(job.session_dir / SESSION_LOG)
    if job.heartbeat is not None:  # held whole (a C call keeping the GIL), the session sees it
        publish_to(job.heartbeat)
    try:
        hold_here("pose-load")  # a fault test's chosen moment (core/fault_hooks.py)
        models = load_models(job)
    except DeepLabStreamError as load_error:  # models: every refusal is a ModelError
        job.control.send(PoseFailed(str(load_error)))
        return
    except Exception as load_error:  # a bug or an unexpected library error: say what it was
        log.exception("the pose model could not be loaded")
        job.control.send(PoseFailed(f"the pose model could not be loaded: {load_error!r}"))
        return
    descriptions = {c.name: models[model_key(c)].description for c in job.cameras}
    outputs = open_outputs(job, descriptions)  # the chosen outputs' live halves (LSL: its outlets)
    slot = ExperimentSlot(job.control, job.session_dir, outputs.markers, job.unwritten)
    at_orphan_end(lambda: _keep_rows_at_orphan_end(job, slot))  # the main process killed
    try:
        slot.open(job.experiment, job.events_file)
    except ExperimentStartError as start_error:
        outputs.close()
        job.control.send(PoseFailed(str(start_error)))
        return
    try:
        triangulator = open_triangulator(job, models)
    except CalibrationError as calibration_error:
        slot.finish()
        outputs.close()
        job.control.send(PoseFailed(f"[Triangulation]: {calibration_error}"))
        return
    pipelines = open_pipelines(job, models, outputs)
    settle_after_start_up()  # the model and the modules frozen: no full collection mid-frame
    ready = ready_message(pipelines)
    ready.model["scheduling"] = scheduling  # what this process asked for and got: session.json
    job.control.send(ready)
    error: str | None = None
    waiter = FrameWaiter(job.settings.wait)
    # A lab's call stuck for good in C code: keep the rows, name it, end (the main process
    # finishes the files and counts the frames, as for a worker that died).
    when_stuck(lambda stuck: _end_stuck(job, slot, stuck))
    try:
        _analyse(job, pipelines, slot, waiter, triangulator)
    except Exception as failure:  # the stream must hear why analysis stopped
        log.exception("pose estimation failed")
        error = f"pose estimation stopped: {failure!r}"
    finally:
        # The experiment first: its outputs are switched off before the files are closed (the
        # identity learner's stop and the pose tables take seconds).
        run_error = slot.run.error if slot.run is not None else None
        slot.finish()
        figures = finish(job, pipelines)
        for camera_figures in figures.values():  # one worker waits for every camera
            camera_figures["worker_wait"] = waiter.figures()
        finish_triangulation(triangulator, figures)
        outputs.close()  # after the experiment's last events
    if run_error and not error:
        error = run_error
    error = error or outputs.error  # output failures (LSL's) are reported, never fatal
    last = slot.summaries[-1] if slot.summaries else None
    try:
        job.control.send(
            PoseFinished(figures, error, last, tuple(slot.summaries), outputs.warnings)
        )
    except OSError:
        pass


def _end_stuck(job: PoseJob, slot: ExperimentSlot, stuck: CallStuck) -> None:
    """End the worker whose loop is stuck in a lab's call (run by the watchdog's thread)."""
    # The loop's thread never comes back, so this one keeps what it can: pose rows and events
    # reach their files and the main process is told which call is stuck, then the process ends.
    log.error("%s: the pose worker ends here, its files flushed", stuck)
    flush_open_files()  # the events not in events.csv yet: the main process has them
    run = slot.run
    name = time_s = None
    if run is not None:
        name, time_s = run.runtime.name, run.runtime.now_s
    try:
        job.control.send(PoseStuck(str(stuck), name, time_s))
    except (OSError, ValueError):  # the main process is gone: nothing to tell
        pass
    logging.shutdown()  # the log's last lines reach session.log
    os._exit(EXIT_STUCK)  # the loop's thread cannot be joined: end the process from here


def _keep_rows_at_orphan_end(job: PoseJob, slot: ExperimentSlot) -> None:
    """Keep every row and end the experiment's events: the session's main process is gone."""
    # The last act before the worker ends with it (core/lifetime.py): rows reach their files, then
    # the missing events and a finish row; the next start repairs the session from its files.
    unwritten = job.unwritten
    if unwritten is not None:
        unwritten.freeze()  # the loop publishes no more: its last text is read here
    close_open_files()
    run = slot.run
    if run is not None and unwritten is not None:
        finish_events(
            run.events_path,
            "the session's main process ended (killed, or the machine stopped); the pose "
            "worker ended with it",
            unwritten.reached_s,
            unwritten,
        )


def _handle_control(job: PoseJob, slot: ExperimentSlot) -> bool:
    """Act on the main process's messages; False once analysis should end."""
    while job.control.poll():
        try:
            message = job.control.recv()
        except EOFError:  # the main process is gone
            return False
        if isinstance(message, StopAnalysis):
            return False
        if isinstance(message, StatusWanted):
            slot.status_wanted = True
        elif isinstance(message, StartExperiment):
            slot.start(message)
        elif isinstance(message, StopExperiment):
            job.control.send(ExperimentStopped(slot.finish()))
    return True


def _analyse(
    job: PoseJob,
    pipelines: list[CameraPipeline],
    slot: ExperimentSlot,
    waiter: FrameWaiter,
    triangulator: LiveTriangulator | None = None,
) -> None:
    """Run the worker's loop: wait, read, group, hand each batch on, until told to stop."""
    active = list(pipelines)
    common_clock = len(pipelines) > 1
    seq = batch = 0
    while active:
        waitables: list[Waitable] = [*(p.reader for p in active), job.control]
        worker_free_ns = host_now_ns()  # a frame that arrived before now waited for the worker
        waiter.wait(waitables, [p.arrivals for p in active], timeout_s=1.0)
        if job.heartbeat is not None:
            job.heartbeat.turned()
        # On a stop, one last turn: frames announced before it are analysed (the newest of each
        # camera) or counted as skipped, never left uncounted.
        stopping = not _handle_control(job, slot)
        if stopping and job.heartbeat is not None:
            job.heartbeat.stopping()  # the session waits for the files while it beats
        slot.take_opened()  # an experiment started meanwhile: its devices open beside the loop
        picked_ns = host_now_ns()
        ready = [p for p in active if p.read()]
        for pipeline in active:  # before this turn's pose: the frames passed over came first
            pipeline.write_not_analysed()
        active = [p for p in active if p.reader.ended is None]
        groups: dict[BatchKey, list[CameraPipeline]] = defaultdict(list)
        for pipeline in ready:  # one batch per model and input size (the frame's, or its crop's)
            groups[pipeline.batch_key()].append(pipeline)
        for (_, shape, _), group in groups.items():
            turn = Turn(picked_ns, seq, common_clock, triangulator, worker_free_ns)
            batch += 1
            seq = analyse_batch(group, shape, turn, slot.run, batch)
        # The turn's rows to their files, after its decisions and commands: a worker that dies
        # or is held from now on loses none of them (the events waiting for their times are
        # the main process's to write then: dispatch.ExperimentRun.keep_unwritten).
        flush_open_files()
        if stopping:
            return
        if ready:
            slot.after_turn()  # its status, and an end of session it asked for
