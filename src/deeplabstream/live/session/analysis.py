"""The main process's handle on the inference worker: start it, read its poses, stop it."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.call_watchdog import STUCK_GRACE_S
from deeplabstream.core.control import (
    StopCheck,
    StopRequested,
    join_or_terminate,
    receive_unless_stopped,
    receive_within,
)
from deeplabstream.core.deadline import STAGES
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.lifetime import children_leave_stop_signals_to_parent
from deeplabstream.core.logs import LogTarget
from deeplabstream.core.plugins import settings_folder_in_use
from deeplabstream.core.priority import ProcessPriority
from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.live.processes.analysis.dispatch import EVENTS_FILE
from deeplabstream.live.processes.analysis.inference import pose_main
from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
from deeplabstream.live.processes.messages import (
    ExperimentEndsSession,
    ExperimentFailed,
    ExperimentSpec,
    ExperimentStarted,
    ExperimentStatus,
    ExperimentStopped,
    PoseFailed,
    PoseFinished,
    PoseReader,
    PoseReady,
    PoseRecord,
    PoseStuck,
    StartExperiment,
    StatusWanted,
    StopAnalysis,
    StopExperiment,
)
from deeplabstream.outputs.interface import ChosenOutput
from deeplabstream.outputs.pose.recovery import finish_events, how_it_ended, rebuild_camera_figures
from deeplabstream.settings.sections import PoseSettings
from deeplabstream.spatial.triangulation.live import TriangulationSpec
from deeplabstream.transport.channel import Doorbell
from deeplabstream.transport.ring import Channel, FrameRing

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0  # loading and warming a model up
#: What a first TensorRT start may take more: building its engines (cached for the next starts;
#: the build logs its progress every few seconds, so a long wait is never a silent one).
TENSORRT_BUILD_S = 1800.0


def ready_timeout_s(settings: PoseSettings) -> float:
    """How long the worker may take to be ready: longer where TensorRT may build engines."""
    device = str(getattr(settings, "device", "")).lower()
    return READY_TIMEOUT_S + (TENSORRT_BUILD_S if device == "tensorrt" else 0.0)


#: How long a stopping worker may take to finish its files (its pose tables), while it beats.
STOP_TIMEOUT_S = 30.0
#: A worker that gives no sign of life this long (core/heartbeat.py) is held whole: stopped
#: (SIGSTOP), or inside a C call that keeps Python's interpreter lock, where neither its watchdog
#: nor a message reaches it. At the stop it is then ended; while it runs, when a guarded call
#: (the experiment's update, a device's command, an output's write) holds it past its limit.
HELD_AFTER_S = 3.0
#: After StopAnalysis, the worker's loop takes it at its next turn (a wait of at most 1 s and a
#: batch): a loop that has not taken it this long is stuck, and is ended, named.
TAKE_STOP_S = 10.0
#: A stop asked for again while the worker finishes (Ctrl-C again) gives it this long more.
HURRY_GRACE_S = 2.0
#: How often the stop's wait looks at the worker's signs of life.
LOOK_S = 0.1
EXPERIMENT_TIMEOUT_S = 60.0  # opening devices: an Arduino resets for ~2 s when its port opens
#: The live latency figures cover the poses of the last RECENT_S seconds (at most RECENT_POSES):
#: a loop that stops producing shows no latency, never the last one it had.
RECENT_S = 5.0
RECENT_POSES = 2000


class PoseError(DeepLabStreamError, RuntimeError):
    """Pose estimation could not start; the message names the model and what to do."""


@dataclass
class LiveDeadline:
    """One camera's deadline figures as the poses tell them while the worker runs."""

    checked: int = 0
    misses: int = 0
    by_stage: list[int] = dataclasses.field(default_factory=lambda: [0] * len(STAGES))


#: How long a worker still loading its model gets to end by itself after a stop (Ctrl-C during
#: the start-up) before it is terminated: nothing of the session is written while it loads.
LOADING_STOP_GRACE_S = 5.0


def _end_loading_worker(process: Any, control: Connection) -> None:
    """End a worker whose start was stopped: a ready one stops itself, a loading one is killed."""
    try:
        control.send(StopAnalysis())
    except OSError:  # it has ended already
        pass
    process.join(LOADING_STOP_GRACE_S)
    if process.is_alive():
        log.info("the pose worker was still loading its model; ending it")
        process.kill()  # it leaves SIGTERM to this process (core.lifetime)
        process.join(5.0)


def held_reason(heartbeat: Heartbeat, now_ns: int, stop_sent_ns: int | None) -> str | None:
    """Say what holds the inference worker when it must be ended by the app; None while not.

    Running: a guarded call past its limit in a worker giving no sign of life. Stopping: no sign
    of life for :data:`HELD_AFTER_S`, or the stop not taken in :data:`TAKE_STOP_S`.
    """
    silent_s = heartbeat.silent_s(now_ns)
    call = heartbeat.call()
    overdue = call is not None and call.elapsed_s(now_ns) > (
        call.limit_s + STUCK_GRACE_S + HELD_AFTER_S
    )
    if call is not None and silent_s >= HELD_AFTER_S and (overdue or stop_sent_ns):
        elapsed_s = call.elapsed_s(now_ns)
        held = (
            f"did not return within {call.limit_s:g} s and held the whole pose worker"
            if elapsed_s >= call.limit_s
            else f"held the whole pose worker for {elapsed_s:.1f} s (its limit: "
            f"{call.limit_s:g} s) when the session stopped"
        )
        return (
            f"{call.what} {held} (no sign of life for {silent_s:.1f} s: inside code that keeps "
            "Python's interpreter lock, which neither the worker's watchdog nor its stop can "
            f"interrupt); the app ended the pose worker after {elapsed_s:.1f} s"
        )
    if stop_sent_ns is None:
        return None
    if silent_s >= HELD_AFTER_S:
        return (
            f"the pose worker gave no sign of life for {silent_s:.1f} s after the stop (stopped, "
            "or inside code that keeps Python's interpreter lock); the app ended it"
        )
    waited_s = (now_ns - stop_sent_ns) / 1e9
    if heartbeat.stopping_since_ns is None and waited_s >= TAKE_STOP_S:
        inside = f" (inside {call.what} for {call.elapsed_s(now_ns):.1f} s)" if call else ""
        return (
            f"the pose worker's loop did not take the stop within {TAKE_STOP_S:g} s{inside}; it "
            f"last came round {heartbeat.unturned_s(now_ns):.1f} s before; the app ended it"
        )
    return None


def _start_up_s(outputs: tuple[ChosenOutput, ...]) -> float:
    """Return how long the outputs may wait at the worker's start (LSL_WAIT), in all."""
    return sum(chosen.plugin().start_up_s for chosen in outputs)


@dataclass
class _WorkerFiles:
    """Where a worker writes: to finish its files if it dies."""

    session_dir: Path
    file_label: str
    events_file: str | None  # the running experiment's events file


class Analysis:
    """A running inference worker and what it has sent so far."""

    def __init__(
        self,
        process: Any,
        control: Connection,
        reader: PoseReader,
        ready: PoseReady,
        names: dict[int, str],
        heartbeat: Heartbeat | None = None,
        unwritten: UnwrittenRows | None = None,
    ) -> None:
        self.process = process
        self.heartbeat = heartbeat  # its signs of life and the guarded call it is inside
        self.unwritten = unwritten  # the events its file lacks yet, should the worker die
        self._untold_error: str | None = None  # the worker's end found by a request
        self.control = control
        self.reader = reader
        self.ready = ready
        self.finished: PoseFinished | None = None
        self._stopped = False
        self._names = names
        self.latest: dict[str, PoseRecord] = {}
        # (pose ready ns, frame -> pose ms, frame -> end ms) of the recent poses, per camera
        self._recent: dict[str, deque[tuple[int, float, float]]] = {
            name: deque(maxlen=RECENT_POSES) for name in names.values()
        }
        self.live_deadline: dict[str, LiveDeadline] = {n: LiveDeadline() for n in names.values()}
        # Set by LiveSession: each camera's ring (a dead worker's frames are counted from its
        # header) and deadline (ns, None: off).
        self.rings: dict[str, FrameRing] = {}
        self.deadlines: dict[str, int | None] = {}
        self._died = False
        self.experiment_status: ExperimentStatus | None = None
        self.experiment_running = False
        self.experiment_summaries: list[dict[str, Any]] = []
        #: Why an experiment asked to end the session (None: none asked); the runner stops.
        self.session_ended_by: str | None = None
        self._reply: Any = None  # the answer to the request in flight (start/stop experiment)
        self.files: _WorkerFiles | None = None  # where its files are, to finish them if it dies
        # Called with (camera, record) for every pose drain() takes (the window's trail and
        # occupancy map): on the draining thread, so each must be quick and must not block.
        self.pose_listeners: list[Callable[[str, PoseRecord], None]] = []

    @classmethod
    def start(
        cls,
        context: SpawnContext,
        cameras: list[WorkerCamera],
        settings: PoseSettings,
        session_dir: Path,
        log_target: LogTarget,
        experiment: ExperimentSpec | None = None,
        file_label: str = "",
        events_file: str = EVENTS_FILE,
        outputs: tuple[ChosenOutput, ...] = (),
        priority: ProcessPriority | None = None,
        triangulation: TriangulationSpec | None = None,
        stop_requested: StopCheck | None = None,
        settings_folder: Path | None = None,
        doorbell: Doorbell | None = None,
    ) -> Analysis:
        """Spawn the worker; wait until its model is warm (and the experiment's devices open).

        ``file_label`` goes between the camera name and the pose files' suffixes
        (``cam.run2.pose.csv``). ``stop_requested`` ends the wait with StopRequested, after the
        worker has ended. ``settings_folder`` None: plugins from this process's folder.
        """
        start_up_s = _start_up_s(outputs)  # each output found by name: before any process
        control, child_control = context.Pipe(duplex=True)
        pose_read, pose_write = context.Pipe(duplex=False)
        heartbeat = Heartbeat(context)
        unwritten = UnwrittenRows(context)
        job = PoseJob(
            tuple(cameras),
            settings,
            session_dir,
            child_control,
            pose_write,
            log_target,
            experiment,
            file_label,
            events_file,
            outputs,
            priority,
            triangulation=triangulation,
            settings_folder=settings_folder or settings_folder_in_use(),
            heartbeat=heartbeat,
            unwritten=unwritten,
            doorbell=doorbell,
        )
        process = context.Process(target=pose_main, args=(job,), name="pose")
        with children_leave_stop_signals_to_parent():
            process.start()
        child_control.close()
        pose_write.close()
        deadline = time.monotonic() + ready_timeout_s(settings) + start_up_s
        try:
            message = receive_unless_stopped(control, deadline, stop_requested)
        except StopRequested:
            _end_loading_worker(process, control)
            control.close()
            pose_read.close()
            raise
        if not isinstance(message, PoseReady):
            join_or_terminate(process, 10)
            control.close()
            pose_read.close()
            if isinstance(message, PoseFailed):
                raise PoseError(message.message)
            raise PoseError(
                f"the pose worker ended before its model was ready (exit code "
                f"{process.exitcode}); see session.log"
            )
        reader = PoseReader(
            pose_read,
            message.record_keypoints or len(message.keypoints),
            message.record_animals,
            message.record_spread,  # an ensemble's spread per keypoint (docs/ensembles.md)
            doorbell,
        )
        names = {camera.camera_id: camera.name for camera in cameras}
        log.info("pose estimation running: %s", message.model)
        analysis = cls(process, control, reader, message, names, heartbeat, unwritten)
        analysis.experiment_running = experiment is not None
        analysis.files = _WorkerFiles(session_dir, file_label, events_file if experiment else None)
        return analysis

    @property
    def keypoints(self) -> tuple[str, ...]:
        """The shared model's keypoint names."""
        return self.ready.keypoints

    def keypoints_of(self, camera: str) -> tuple[str, ...]:
        """Return the keypoint names of the model that ``camera`` uses."""
        model = self.ready.cameras.get(camera)
        return model.keypoints if model is not None else self.ready.keypoints

    def skeleton_of(self, camera: str) -> tuple[tuple[str, str], ...]:
        """Return the skeleton of the model that ``camera`` uses."""
        model = self.ready.cameras.get(camera)
        return model.skeleton if model is not None else self.ready.skeleton

    def wait_objects(self) -> list[Any]:
        """Return what to wait on for news from the worker."""
        return [] if self.finished else [self.control, self.reader]

    def drain(self) -> None:
        """Take every pose that has arrived; keep the newest per camera and recent latencies."""
        for record in self.reader.read_available():
            name = self._names.get(record.camera_id)
            if name is None:
                continue
            rows = len(self.keypoints_of(name))
            if len(record.pose) != rows:  # padded to the largest model's keypoints
                record = dataclasses.replace(record, pose=record.pose[:rows])
            if record.animals is not None:  # padded to the most animals of any model
                model = self.ready.cameras.get(name)
                animals = model.animals if model is not None else 1
                kept = record.animals[:animals, :rows] if animals > 1 else None
                record = dataclasses.replace(record, animals=kept)
            self.latest[name] = record
            self._recent[name].append(
                (
                    record.ready_ns,
                    (record.ready_ns - record.host_timestamp_ns) / 1e6,
                    record.end_to_end_ms,
                )
            )
            live = self.live_deadline[name]
            live.checked += 1
            if record.late_stage:
                live.misses += 1
                live.by_stage[record.late_stage - 1] += 1
            for listener in tuple(self.pose_listeners):  # a copy: a failing one is removed
                self._tell(listener, name, record)

    def _tell(
        self, listener: Callable[[str, PoseRecord], None], name: str, record: PoseRecord
    ) -> None:
        """Call one pose listener; a failing one is logged and dropped, the poses go on."""
        try:
            listener(name, record)
        except Exception:  # a display bug must never stop the poses reaching the session
            log.exception("a pose listener failed; it gets no more poses")
            if listener in self.pose_listeners:
                self.pose_listeners.remove(listener)

    def recent_latency_ms(
        self, camera: str, end_to_end: bool = False
    ) -> tuple[float, float] | None:
        """p50 and p99 latency (ms) of the poses of the last :data:`RECENT_S` s (None: none came).

        With ``end_to_end``, frame -> decision or command, else frame -> pose ready.
        """
        recent = self._recent.get(camera)
        if not recent:
            return None
        since = host_now_ns() - round(RECENT_S * 1e9)
        values = [entry[2 if end_to_end else 1] for entry in recent if entry[0] >= since]
        if not values:
            return None
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        return float(p50), float(p99)

    def check_finished(self) -> str | None:
        """Handle the worker's messages; return an error message if it ended with one.

        A worker held whole by a guarded call past its limit is ended here, the call named.
        """
        if self._untold_error is not None:
            untold, self._untold_error = self._untold_error, None
            return untold
        while self.finished is None and self.control.poll():
            error = self._handle(receive_within(self.control, time.monotonic()))
            if error:
                return error
        held = self._held(None) if self.finished is None else None
        return self._end_held(held) if held else None

    def _held(self, stop_sent_ns: int | None) -> str | None:
        """Say what holds the worker when it must be ended (:func:`held_reason`); else None."""
        if self.heartbeat is None:
            return None
        return held_reason(self.heartbeat, host_now_ns(), stop_sent_ns)

    def _end_held(self, why: str) -> str | None:
        """End a worker that cannot end itself (``why``); finish its files; the error to report."""
        log.error("%s", why)
        self.process.kill()  # it leaves SIGTERM to this process (core.lifetime)
        self.process.join(5.0)
        name = self.experiment_status.name if self.experiment_status is not None else None
        return self._take_finished(PoseStuck(why, name), ended_by_app=True)

    def _handle(self, message: Any) -> str | None:
        """Take one control message from the worker; an error message if it ended with one."""
        if isinstance(message, ExperimentStatus):
            self.experiment_status = message
            self._send(StatusWanted())
        elif isinstance(message, (ExperimentStarted, ExperimentFailed, ExperimentStopped)):
            self._reply = message
        elif isinstance(message, ExperimentEndsSession):
            ended = f"experiment {message.name!r} ended the session: {message.reason}"
            self.session_ended_by = ended
        else:
            return self._take_finished(message)
        return None

    def _send(self, message: Any) -> None:
        try:
            self.control.send(message)
        except OSError:  # the worker is gone; its end is collected by check_finished
            pass

    def _request(self, message: Any, timeout_s: float) -> Any:
        """Send a request and handle messages until its answer (or the worker ends or is held)."""
        self._reply = None
        self._send(message)
        deadline = time.monotonic() + timeout_s
        while self._reply is None and self.finished is None:
            answer = receive_within(self.control, min(deadline, time.monotonic() + LOOK_S))
            if answer is not None:
                self._handle(answer)
            elif not self.process.is_alive() or time.monotonic() >= deadline:
                break
            elif held := self._held(None):
                self._untold_error = self._end_held(held)  # said at the next look or the stop
        return self._reply

    def start_experiment(self, spec: ExperimentSpec, events_file: str) -> None:
        """Start ``spec`` in the running worker; PoseError with the reason if it cannot."""
        if self.finished is not None:
            raise PoseError("pose estimation has stopped: start analysis first")
        answer = self._request(StartExperiment(spec, events_file), EXPERIMENT_TIMEOUT_S)
        if isinstance(answer, ExperimentFailed):
            raise PoseError(answer.message)
        if not isinstance(answer, ExperimentStarted):
            raise PoseError(f"experiment {spec.name!r}: the pose worker did not answer")
        if self.files is not None:
            self.files.events_file = events_file
        self.experiment_running = True
        self.experiment_status = None

    def stop_experiment(self) -> None:
        """Stop the running experiment (outputs off, events file closed); analysis goes on."""
        if not self.experiment_running or self.finished is not None:
            return
        answer = self._request(StopExperiment(), STOP_TIMEOUT_S)
        self.experiment_running = False
        if isinstance(answer, ExperimentStopped) and answer.summary is not None:
            self.experiment_summaries.append(answer.summary)

    def stop(self, hurry: Callable[[], bool] | None = None) -> str | None:
        """Ask the worker to stop, collect its figures, join it; return an error message if any.

        Bounded: a held worker is ended within seconds; one finishing its files is waited for
        while it beats, up to :data:`STOP_TIMEOUT_S` (:data:`HURRY_GRACE_S` once ``hurry``).
        """
        if self._stopped:
            return None
        self._stopped = True
        error, self._untold_error = self._untold_error, None
        if self.finished is None:
            error = self._await_finished(hurry)
        self.experiment_running = False
        self.drain()
        join_or_terminate(self.process, HURRY_GRACE_S + HELD_AFTER_S)
        self.control.close()
        self.reader.close()
        if self._died:
            self._account_dead_worker(final=True)
        return error

    def _await_finished(self, hurry: Callable[[], bool] | None) -> str | None:
        """Send StopAnalysis; wait for the worker's figures (bounded, see :meth:`stop`)."""
        self._send(StopAnalysis())
        sent_ns = host_now_ns()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        hurried_at: float | None = None
        error: str | None = None
        while self.finished is None:
            message = receive_within(self.control, min(deadline, time.monotonic() + LOOK_S))
            if message is None and not self.process.is_alive():
                message = receive_within(self.control, time.monotonic())  # its last words
                if message is None:
                    return self._handle(None)  # it died: rebuilt from its files
            if message is not None:
                error = self._handle(message)
                continue
            now = time.monotonic()
            if hurried_at is None and hurry is not None and hurry():
                hurried_at = now
            if held := self._held(sent_ns):
                error = self._end_held(held)
            elif hurried_at is not None and now - hurried_at >= HURRY_GRACE_S:
                error = self._end_held(
                    "the pose worker was still finishing its files when the stop was asked for "
                    "again; the app ended it"
                )
            elif now >= deadline:
                error = self._end_held(
                    f"the pose worker did not finish its files within {STOP_TIMEOUT_S:g} s of the "
                    "stop; the app ended it"
                )
        return error

    def _take_finished(self, message: Any, ended_by_app: bool = False) -> str | None:
        experiment_was_running = self.experiment_running
        self.experiment_running = False
        if isinstance(message, PoseFinished):
            self.finished = message
            for summary in message.experiments:
                if summary not in self.experiment_summaries:
                    self.experiment_summaries.append(summary)
            return message.error
        stuck = message if isinstance(message, PoseStuck) else None
        self.finished = self._rebuilt_after_death(experiment_was_running, stuck, ended_by_app)
        return self.finished.error

    def _rebuilt_after_death(
        self,
        experiment_was_running: bool,
        stuck: PoseStuck | None = None,
        ended_by_app: bool = False,
    ) -> PoseFinished:
        """Return the figures of a worker that died without its summary, rebuilt from its files."""
        # ``stuck``: it ended itself in a lab's call (rows flushed); ``ended_by_app``: held whole.
        join_or_terminate(self.process, 2.0)
        if stuck is not None and ended_by_app:
            error = (
                f"{stuck.message}: pose estimation ended there; its pose files and events were "
                "finished from what it had written (every pose analysed before it, every event "
                "it made); the frames captured after it are counted as not analysed"
            )
        elif stuck is not None:
            error = (
                f"{stuck.message}: pose estimation ended there; the pose files and events keep "
                "every pose analysed before it; the frames captured after it are counted as not "
                "analysed"
            )
        else:
            how = how_it_ended(self.process.exitcode)
            error = (
                f"the pose worker ended unexpectedly ({how}); its pose files and events were "
                "finished from what it had written (every pose it had analysed, every event it "
                "made); the frames captured after it are counted as not analysed"
            )
        log.error("%s", error)
        self._died = True
        files = self.files
        if files is None:
            return PoseFinished({}, error)
        self.finished = PoseFinished({}, error)
        self._account_dead_worker(final=False)
        if experiment_was_running and files.events_file is not None:
            time_s = stuck.experiment_time_s if stuck is not None else None
            unwritten = self.unwritten
            summary = finish_events(
                files.session_dir / files.events_file,
                error,
                time_s if time_s is not None or unwritten is None else unwritten.reached_s,
                unwritten,
            )
            if summary is not None and stuck is not None and stuck.experiment:
                summary["name"] = stuck.experiment  # its worker could say which it was
            if summary is not None:
                self.experiment_summaries.append(summary)
        return self.finished

    def _account_dead_worker(self, final: bool) -> None:
        """Rebuild a dead worker's figures from its files; count every frame of its analysis."""
        # Each frame is analysed, skipped or lost (the ring header's reader counters outlive the
        # worker), or not analysed; ``final`` also gives the pose files those frames' empty rows.
        files, finished = self.files, self.finished
        if files is None or finished is None:
            return
        for name in self._names.values():
            header = self._header(name)
            last_index = None
            if final and header is not None and int(header["captured"]):
                last_index = int(header["last_frame_index"])
            figures = rebuild_camera_figures(
                files.session_dir,
                name,
                files.file_label,
                last_index=last_index,
                deadline_ns=self.deadlines.get(name),
            )
            if header is not None:
                during = int(header["write_seq"]) - self.ready.first_seq.get(name, 0)
                skipped = int(header["skipped"][Channel.ANALYSE])
                lost = int(header["lost"][Channel.ANALYSE])
                figures["frames_skipped"], figures["frames_lost"] = skipped, lost
                figures["frames_not_analysed_worker_gone"] = max(
                    0, during - figures["frames_analysed"] - skipped - lost
                )
            finished.cameras[name] = figures

    def _header(self, camera: str) -> Any:
        """Return a camera's ring header while its ring is open; None otherwise."""
        ring = self.rings.get(camera)
        return ring.header if ring is not None else None

    def summary(self) -> dict[str, Any]:
        """For ``session.json``: the model(s) and each camera's analysis figures."""
        cameras = self.finished.cameras if self.finished else {}
        summary: dict[str, Any] = {"model": self.ready.model, "cameras": cameras}
        models = {name: model.summary for name, model in self.ready.cameras.items()}
        # The worker's own scheduling is in the shared model's entry only: not a model's.
        shared = {key: value for key, value in self.ready.model.items() if key != "scheduling"}
        if any(model != shared for model in models.values()):
            summary["camera_models"] = models  # cameras with their own MODEL_PATH
        return summary

    def file_errors(self) -> list[str]:
        """Return the files the worker (and its experiments) could not write, one line each."""
        errors = []
        for name, figures in (self.summary() or {}).get("cameras", {}).items():
            errors += [f"camera {name!r}: {error}" for error in figures.get("file_errors") or []]
        for experiment in self.experiment_summaries:
            written = (experiment or {}).get("file_errors") or []
            errors += [f"experiment: {error}" for error in written]
        return errors

    def experiment_summary(self) -> dict[str, Any] | None:
        """For ``session.json``: the last experiment's summary and action latencies, once ended."""
        return self.experiment_summaries[-1] if self.experiment_summaries else None
