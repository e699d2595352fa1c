"""Replay many videos: each in its own process on this machine (default), or as Ray tasks.

On Ray every node must see the project, videos and output folder at the same paths.
docs/architecture.md, "Offline replay".
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from deeplabstream.app.stop_requests import stop_signal_received
from deeplabstream.core.lifetime import (
    ORPHAN_EXIT_CODE,
    StopLine,
    children_leave_stop_signals_to_parent,
    die_with_parent,
    leave_stop_signals_to_parent,
    parent_alive,
)
from deeplabstream.core.logs import LogTarget, configure_process_logging
from deeplabstream.offline.replay.job import Progress, ReplayOptions, ReplayResult
from deeplabstream.offline.replay.progress import ProgressView
from deeplabstream.offline.replay.videos import ReplayError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # src/, where the package is
QUEUE_SIZE = 1000
POLL_S = 0.2
#: How long a stopped replay may take to finalise its files before it is killed.
STOP_GRACE_S = 20.0
RAY_CPUS_PER_VIDEO = 2  # a replay keeps a capture process and an inference worker busy
RAY_OBJECT_STORE_BYTES = 256 * 2**20  # results are small; the rings live in /dev/shm


class QueueSink:
    """Puts progress on a queue without ever blocking the replay (a full queue drops it)."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def __call__(self, progress: Progress) -> None:
        """Send one progress message, or drop it when the queue is full."""
        try:
            self._channel.put_nowait(progress)
        except Exception:  # queue.Full, ray.util.queue.Full: progress is not worth waiting for
            pass


def replay_in_this_process(video: Path, options: ReplayOptions, channel: Any) -> ReplayResult:
    """Configure logging, replay, return the result; never raises (a failure becomes a result)."""
    # Imported here: the batch's main process never replays (its children and Ray tasks do),
    # and would load the live session's stack (2 s, measured) for nothing.
    from deeplabstream.offline.replay.session import replay_video

    configure_process_logging(LogTarget(options.log_level), f"replay:{video.name}")
    try:
        return replay_video(video, options, QueueSink(channel))
    except Exception as error:  # a bug must still reach the batch's report, with its name
        log.exception("replay of %s failed", video)
        return ReplayResult(video, False, errors=(f"{type(error).__name__}: {error}",))


def _local_child(video: Path, options: ReplayOptions, channel: Any, stop: StopLine) -> None:
    """Run one local replay process; its result goes on the queue last."""
    # It ends with the batch's main process (SIGTERM raised in itself) or by message (``stop``),
    # never by terminate, which is a hard kill on Windows and would cut its files.
    # Ctrl-C at a terminal reaches every process of the group; the main process passes the stop
    # on (SIGTERM), and the replay turns Ctrl-C into a clean stop once it can (no traceback).
    leave_stop_signals_to_parent()
    die_with_parent(signal.SIGTERM)
    stop.obey(signal.SIGTERM, STOP_GRACE_S)
    result = replay_in_this_process(video, options, channel)
    if not parent_alive():
        channel.cancel_join_thread()  # a full pipe nobody reads would block this exit forever
        log.warning("%s: the batch's main process has ended; the result is not reported", video)
        return
    channel.put(result)


@dataclass
class _Running:
    video: Path
    process: BaseProcess
    stop: StopLine
    result: ReplayResult | None = None
    killed: bool = False


class BatchStop:
    """Turns Ctrl-C / SIGTERM into a request to stop the batch: no new replay starts.

    ``signum``: the signal that stopped the batch (None: not stopped).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.signum is not None

    def __enter__(self) -> BatchStop:
        """Install the stop's handlers for SIGINT and SIGTERM (a stop already taken counts)."""
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[number] = signal.signal(number, self._handle)
            except ValueError:  # not the main thread: Ctrl-C is the caller's business
                pass
        if self.signum is None:  # since the command's start (app.stop_requests), before these
            self.signum = stop_signal_received()
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc: object) -> None:
        """Restore the signal handlers that were there before."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


_Interrupt = BatchStop  # the Ray batch's name for it


def run_local(
    videos: list[Path],
    options: ReplayOptions,
    view: ProgressView,
    jobs: int = 1,
    stop: BatchStop | None = None,
) -> list[ReplayResult]:
    """Replay every video, each in a fresh local process, ``jobs`` at a time; results in order.

    A stop starts no new replay and stops the running ones; one still running after
    ``STOP_GRACE_S`` is killed.
    """
    context = multiprocessing.get_context("spawn")
    channel = context.Queue(QUEUE_SIZE)
    waiting = list(videos)
    running: list[_Running] = []
    results: dict[Path, ReplayResult] = {}
    stopped_at: float | None = None
    with stop or BatchStop() as interrupt:
        while waiting or running:
            while waiting and len(running) < jobs and not interrupt.requested:
                video = waiting.pop(0)
                stop_line = StopLine(context)
                process = context.Process(
                    target=_local_child,
                    args=(video, options, channel, stop_line),
                    name=f"replay:{video}",
                )
                with children_leave_stop_signals_to_parent():
                    process.start()
                running.append(_Running(video, process, stop_line))
            if interrupt.requested:
                if stopped_at is None:
                    stopped_at = time.monotonic()
                    _pass_stop_on(running)
                elif time.monotonic() - stopped_at > STOP_GRACE_S:
                    _kill_stragglers(running)
                if not running:
                    break
            _take_messages(channel, running, view, POLL_S)
            for entry in [r for r in running if not r.process.is_alive()]:
                _take_messages(channel, running, view, 0.0)  # its result may be in the pipe still
                entry.process.join()
                result = entry.result or ReplayResult(
                    entry.video,
                    False,
                    errors=(_no_result(entry, interrupt.requested),),
                )
                results[entry.video] = result
                running.remove(entry)
                view.finished(result)
    for video in waiting:  # interrupted before they started
        results[video] = ReplayResult(video, False, errors=("not replayed: the batch was stopped",))
    channel.close()
    view.close()
    return [results[video] for video in videos]


def _pass_stop_on(running: list[_Running]) -> None:
    """Ask every running replay process to stop, by message: it stops cleanly, keeping its files."""
    for entry in running:
        if entry.process.is_alive():
            log.info("stopping the replay of %s", entry.video)
            entry.stop.request()


def _kill_stragglers(running: list[_Running]) -> None:
    """Kill the replay processes that did not stop in time (their own children follow them)."""
    for entry in running:
        if entry.process.is_alive() and not entry.killed:
            log.warning(
                "the replay of %s did not stop within %.0f s of the stop; killing it",
                entry.video,
                STOP_GRACE_S,
            )
            entry.killed = True
            entry.process.kill()


def _no_result(entry: _Running, stopping: bool) -> str:
    """Why a replay process has no result to give."""
    code = entry.process.exitcode
    if entry.killed:
        return "killed: it did not stop in time after the batch was stopped; its files may be cut"
    if stopping and code is not None and (code < 0 or code == ORPHAN_EXIT_CODE):
        return "stopped with the batch before its stream started"
    return f"the replay process ended without a result (exit code {code}); see the log above"


def _take_messages(
    channel: Any, running: list[_Running], view: ProgressView, timeout: float
) -> None:
    """Handle the messages waiting on the queue (wait up to ``timeout`` s for the first)."""
    by_video = {entry.video: entry for entry in running}
    block = timeout > 0
    while True:
        try:
            message = channel.get(block, timeout) if block else channel.get_nowait()
        except queue.Empty:
            return
        block = False
        if isinstance(message, ReplayResult) and message.video in by_video:
            by_video[message.video].result = message
        elif isinstance(message, Progress):
            view.update(message)


def run_ray(
    videos: list[Path], options: ReplayOptions, view: ProgressView, address: str | None = None
) -> list[ReplayResult]:
    """Replay every video as one Ray task each; results in order.

    ``address`` None starts a local Ray cluster (shut down at the end); ``auto`` finds one here.
    """
    ray = _import_ray()
    runtime_env = {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}}
    if address is None:
        ray.init(
            num_cpus=os.cpu_count() or 2,
            include_dashboard=False,
            object_store_memory=RAY_OBJECT_STORE_BYTES,
            runtime_env=runtime_env,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    try:
        return _ray_batch(ray, videos, options, view)
    finally:
        ray.shutdown()
        view.close()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ReplayError(
            "--ray needs the ray package, which is not installed in this environment: "
            "pip install -r requirements.txt (or leave --ray out to replay with local processes)"
        ) from None
    return ray


def _ray_batch(
    ray: Any, videos: list[Path], options: ReplayOptions, view: ProgressView
) -> list[ReplayResult]:
    from ray.util.queue import Queue

    channel = Queue(maxsize=QUEUE_SIZE)
    cpus = min(RAY_CPUS_PER_VIDEO, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=cpus, max_retries=0)(replay_in_this_process)
    pending = {task.remote(video, options, channel): video for video in videos}
    results: dict[Path, ReplayResult] = {}
    cancelled = False
    with _Interrupt() as interrupt:
        while pending:
            if interrupt.requested and not cancelled:
                cancelled = True  # a running task gets Ctrl-C: its replay stops cleanly
                for reference in pending:
                    ray.cancel(reference)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            _drain(channel.get_nowait_batch, channel.qsize, view.update)
            for reference in done:
                video = pending.pop(reference)
                results[video] = _ray_result(ray, reference, video)
                view.finished(results[video])
    _drain(channel.get_nowait_batch, channel.qsize, view.update)
    return [results[video] for video in videos]


def _drain(take: Callable[[int], list], size: Callable[[], int], handle: Callable) -> None:
    waiting = size()
    if waiting:
        for message in take(waiting):
            handle(message)


def _ray_result(ray: Any, reference: Any, video: Path) -> ReplayResult:
    """Return the task's result, or a failed result naming what Ray reported."""
    try:
        return ray.get(reference)
    except Exception as error:  # RayTaskError, TaskCancelledError, WorkerCrashedError, ...
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        return ReplayResult(video, False, errors=(f"the Ray task failed: {reason}",))
