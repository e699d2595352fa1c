"""The main process's handle on the inference worker: start it, read its poses, stop it.

Used by :class:`stream.supervisor.Stream`; the worker itself is ``pose/worker.py``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

import numpy as np

from pose.records import PoseReader, PoseRecord
from pose.worker import (
    ExperimentSpec,
    PoseFailed,
    PoseFinished,
    PoseJob,
    PoseReady,
    StopAnalysis,
    WorkerCamera,
    pose_main,
)
from settings.sections import PoseSettings
from stream.control import join_or_terminate, receive_within
from stream.logs import LogTarget

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0  # loading, and for TensorRT building, an engine can take minutes
STOP_TIMEOUT_S = 30.0
RECENT_POSES = 300  # latency figures of the live view cover about the last 10 s at 30 fps


class PoseError(RuntimeError):
    """Pose estimation could not start; the message names the model and what to do."""


@dataclass
class _Latest:
    record: PoseRecord
    recent_latency_ms: deque


class Analysis:
    """A running inference worker and what it has sent so far."""

    def __init__(
        self,
        process: Any,
        control: Connection,
        reader: PoseReader,
        ready: PoseReady,
        names: dict[int, str],
    ) -> None:
        self.process = process
        self.control = control
        self.reader = reader
        self.ready = ready
        self.finished: PoseFinished | None = None
        self._stopped = False
        self._names = names
        self.latest: dict[str, PoseRecord] = {}
        self._latency: dict[str, deque] = {
            name: deque(maxlen=RECENT_POSES) for name in names.values()
        }

    @classmethod
    def start(
        cls,
        context: SpawnContext,
        cameras: list[WorkerCamera],
        settings: PoseSettings,
        session_dir: Path,
        log_target: LogTarget,
        experiment: ExperimentSpec | None = None,
    ) -> Analysis:
        """Spawn the worker; wait until its model is warm (and the experiment's devices open)."""
        control, child_control = context.Pipe(duplex=True)
        pose_read, pose_write = context.Pipe(duplex=False)
        job = PoseJob(
            tuple(cameras), settings, session_dir, child_control, pose_write, log_target, experiment
        )
        process = context.Process(target=pose_main, args=(job,), name="pose")
        process.start()
        child_control.close()
        pose_write.close()
        message = receive_within(control, time.monotonic() + READY_TIMEOUT_S)
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
        reader = PoseReader(pose_read, len(message.keypoints))
        names = {camera.camera_id: camera.name for camera in cameras}
        log.info("pose estimation running: %s", message.model)
        return cls(process, control, reader, message, names)

    @property
    def keypoints(self) -> tuple[str, ...]:
        """The model's keypoint names."""
        return self.ready.keypoints

    def wait_objects(self) -> list[Any]:
        """What to wait on for news from the worker."""
        return [] if self.finished else [self.control, self.reader]

    def drain(self) -> None:
        """Take every pose that has arrived; keep the newest per camera and recent latencies."""
        for record in self.reader.read_available():
            name = self._names.get(record.camera_id)
            if name is None:
                continue
            self.latest[name] = record
            self._latency[name].append((record.ready_ns - record.host_timestamp_ns) / 1e6)

    def recent_latency_ms(self, camera: str) -> tuple[float, float] | None:
        """p50 and p99 of the frame-to-pose latency over the most recent poses."""
        values = self._latency.get(camera)
        if not values:
            return None
        p50, p99 = np.percentile(np.fromiter(values, float), [50, 99])
        return float(p50), float(p99)

    def check_finished(self) -> str | None:
        """Collect the worker's end if it has ended; return an error message if it failed."""
        if self.finished is not None or not self.control.poll():
            return None
        message = receive_within(self.control, time.monotonic())
        return self._take_finished(message)

    def stop(self) -> str | None:
        """Ask the worker to stop, collect its figures, join it; return an error message if any."""
        if self._stopped:
            return None
        self._stopped = True
        error = None
        if self.finished is None:
            try:
                self.control.send(StopAnalysis())
            except OSError:
                pass
            error = self._take_finished(
                receive_within(self.control, time.monotonic() + STOP_TIMEOUT_S)
            )
        self.drain()
        join_or_terminate(self.process, STOP_TIMEOUT_S)
        self.control.close()
        self.reader.close()
        return error

    def _take_finished(self, message: Any) -> str | None:
        if isinstance(message, PoseFinished):
            self.finished = message
            return message.error
        self.finished = PoseFinished({}, "the pose worker died (see session.log)")
        return self.finished.error

    def summary(self) -> dict[str, Any]:
        """For ``session.json``: the model and each camera's analysis figures."""
        cameras = self.finished.cameras if self.finished else {}
        return {"model": self.ready.model, "cameras": cameras}

    def experiment_summary(self) -> dict[str, Any] | None:
        """For ``session.json``: the experiment's summary and action latencies, once it ended."""
        return self.finished.experiment if self.finished else None
