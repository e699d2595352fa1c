"""Where each analysed frame goes: the inference worker's outputs behind one small interface.

docs/architecture.md, "Pose estimation"; docs/outputs.md for the outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.core.plugins import error_text
from deeplabstream.live.processes.analysis.identities import CameraIdentities, ClassIdentities
from deeplabstream.live.processes.analysis.job import PoseJob, WorkerCamera
from deeplabstream.live.processes.messages import PoseRecord, encode_pose
from deeplabstream.outputs.interface import (
    POSE_OUTPUT,
    AnalysedFrame,
    EnsembleValues,
    EventMarkers,
    LiveOutput,
    OutputCamera,
    OutputSession,
    PoseSink,
    with_required,
)
from deeplabstream.outputs.lsl_output import LslPoseSink
from deeplabstream.outputs.pose_output import PoseFileSink
from deeplabstream.pose.formats.lightning_context import context_stages
from deeplabstream.pose.loading import model_stage_names
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.ensemble import MEMBER_STAGE
from deeplabstream.transport.channel import ChannelWriter, FrameRecord

__all__ = [  # the sinks' interface and the built-in sinks, where the worker's modules find them
    "AnalysedFrame",
    "EnsembleValues",
    "GuardedMarkers",
    "GuardedSink",
    "LiveOutputs",
    "LslPoseSink",
    "PoseFileSink",
    "PosePipeSink",
    "PoseSink",
    "open_outputs",
]

log = logging.getLogger(__name__)

#: An output's call (``write``, ``write_not_analysed``, ``close``) that has not returned after
#: this long is stopped: a sink appends a row, so seconds mean it hangs (a network share that
#: never answers, a lock never released), never that it is slow.
WRITE_LIMIT_S = 3.0


class PosePipeSink:
    """The POSE pipe: each analysed frame's pose record to the main process."""

    def __init__(
        self,
        writer: ChannelWriter,
        camera_id: int,
        record_rows: int,
        record_animals: int,
        identities: CameraIdentities | ClassIdentities | None,
        record_spread: bool = False,
    ) -> None:
        self._writer = writer
        self._camera_id = camera_id
        self._rows = record_rows  # rows of a pose record (the most keypoints of any model)
        self._animals = record_animals  # animals of a pose record (the most of any model)
        self._identities = identities
        self._spread = record_spread  # a camera of the session runs an ensemble

    def write(self, frame: AnalysedFrame) -> None:
        """Send its pose record (the record's size: the largest model's, NaN-padded)."""
        record = frame.record
        padded = self._padded(frame.animals)
        self._writer.send(
            encode_pose(
                PoseRecord(
                    self._camera_id,
                    record.frame_index,
                    record.host_timestamp_ns,
                    frame.picked_ns,
                    frame.ready_ns,
                    frame.seq,
                    padded[0],
                    padded if self._animals > 1 else None,
                    frame.late,
                    frame.after_pose_us,
                    self._confidence(),
                    self._spread_of(frame) if self._spread else None,
                )
            )
        )

    def _spread_of(self, frame: AnalysedFrame) -> np.ndarray:
        """Return the frame's spread per keypoint (record rows,): NaN without an ensemble."""
        out = np.full(self._rows, np.nan, np.float32)
        if frame.ensemble is not None:
            out[: len(frame.ensemble.std)] = frame.ensemble.std
        return out

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Nothing: the main process counts frames passed over from the ring's header."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Add nothing: the pipe is the session's; the worker's last message ends it."""
        return {}  # the pipe is the session's; the worker's last message says it ended

    def _padded(self, animals: np.ndarray) -> np.ndarray:
        """Return a camera's animals (A, K, 3) in the record's size, NaN where it has none."""
        if animals.shape[:2] == (self._animals, self._rows):
            return animals
        out = np.full((self._animals, self._rows, 3), np.nan, np.float32)
        out[: animals.shape[0], : animals.shape[1]] = animals
        return out

    def _confidence(self) -> np.ndarray | None:
        """Return the identities' confidence (record animals,) for the record (NaN: none)."""
        if self._animals == 1:
            return None
        out = np.full(self._animals, np.nan, np.float32)
        if self._identities is not None:
            confidence = self._identities.confidence
            out[: confidence.size] = confidence
        return out


class LiveOutputs:
    """The live halves of an analysis's outputs: each camera's sinks, the events, their close."""

    def __init__(self, session: OutputSession, opened: list[tuple[str, LiveOutput]]) -> None:
        self.session = session
        self._opened = opened
        self._errors: list[str] = []

    @property
    def markers(self) -> EventMarkers | None:
        """Where the experiment's events also go: the first output that takes them (guarded)."""
        for name, live in self._opened:
            if live.markers is not None:
                return GuardedMarkers(live.markers, f"output {name!r}", self)
        return None

    def camera(self, name: str) -> OutputCamera:
        """Return the camera ``name`` as the outputs see it."""
        return next(camera for camera in self.session.cameras if camera.name == name)

    def sinks(self, camera: OutputCamera) -> list[PoseSink]:
        """Return ``camera``'s sinks, one per output that takes its frames, in their order.

        Every sink but the pose files' is guarded (:class:`GuardedSink`).
        """
        sinks: list[PoseSink] = []
        for name, live in self._opened:
            try:
                sink = live.camera_sink(camera)
            except Exception as error:  # a lab's output: reported, the session goes on
                if name == POSE_OUTPUT:
                    raise  # its files are the analysis's own record, as before outputs
                self.report_failure(f"output {name!r} could not open camera {camera.name!r}", error)
                continue
            if sink is None:
                continue
            if name == POSE_OUTPUT:  # a failure of the pose files stops the analysis, as always
                sinks.append(sink)
            else:
                sinks.append(GuardedSink(sink, f"output {name!r} of camera {camera.name!r}", self))
        return sinks

    def close(self) -> None:
        """Close every output (after the experiment's last events); failures are reported."""
        for name, live in self._opened:
            try:
                with time_limit(f"output {name!r}: its close", WRITE_LIMIT_S):
                    live.close()
            except CallStalled as stall:  # a hung close never holds the worker's end
                self.report(f"{stall}; its files may end early")
            except Exception as error:  # one output's close never stops the others'
                self.report_failure(f"output {name!r} could not be closed", error)

    @property
    def error(self) -> str | None:
        """Every output's failures in one message (reported in session.json), or None."""
        messages = [*self._errors]
        for _, live in self._opened:
            try:
                text = live.error
            except Exception as error:  # a lab's output whose error property fails
                text = error_text(error)
            if text:
                messages.append(text)
        return "; ".join(messages) or None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every output's warning (after :meth:`close`: LSL streams nobody heard)."""
        found = []
        for name, live in self._opened:
            try:
                text = getattr(live, "warning", None)  # a lab's half may not have one
            except Exception as error:  # a lab's output whose warning property fails
                text = f"output {name!r}: its warning could not be read: {error_text(error)}"
            if text:
                found.append(text)
        return tuple(found)

    def report_failure(self, what: str, error: Exception) -> None:
        """Log and keep an output's failure; the session reports it and goes on without it."""
        self.report(f"{what}: {error_text(error)}; the session goes on without it")

    def report(self, message: str) -> None:
        """Log and keep one message of an output's failure (``session.json`` -> ``errors``)."""
        log.error("%s", message)
        self._errors.append(message)


class GuardedSink:
    """An output's sink whose failure is reported and ends that sink only, never the analysis.

    Its first exception is kept (``LiveOutputs.error``) and it gets no more frames; a call not
    returned after :data:`WRITE_LIMIT_S` is interrupted and counts as its failure.
    """

    def __init__(self, sink: PoseSink, name: str, outputs: LiveOutputs) -> None:
        self.sink = sink
        self.name = name
        self._outputs = outputs
        self.failed = False

    def write(self, frame: AnalysedFrame) -> None:
        """Hand the frame on, unless the sink has failed."""
        if not self.failed:
            self._guarded("write", "failed while writing a frame", self.sink.write, frame)

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Hand the record on, unless the sink has failed."""
        if not self.failed:
            self._guarded(
                "write_not_analysed",
                "failed while writing a frame not analysed",
                self.sink.write_not_analysed,
                record,
            )

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Close the sink (a failed one too: its files end); its figures, or {}."""
        figures = self._guarded("close", "failed at its close", self.sink.close, last_index)
        return figures if isinstance(figures, dict) else {}

    def _guarded(self, call: str, what: str, method: Callable[[Any], Any], argument: Any) -> Any:
        """Run one of the sink's calls under the watchdog; its failure ends the sink."""
        try:
            with time_limit(f"{self.name}: its {call}", WRITE_LIMIT_S):
                return method(argument)
        except CallStalled as stall:  # hung: stopped, and never called again
            self._stop(f"{stall}", "no more frames go to it")
        except Exception as error:  # a lab's output: the poses and the experiment go on
            self._fail(what, error)
        return None

    def _fail(self, what: str, error: Exception) -> None:
        if not self.failed:
            self.failed = True
            self._outputs.report_failure(f"{self.name} {what}", error)

    def _stop(self, message: str, consequence: str) -> None:
        self.failed = True
        self._outputs.report(f"{message}; {consequence}, the session goes on without it")


class GuardedMarkers:
    """An output's event markers whose failure (an exception, a hung push) ends them only."""

    def __init__(self, markers: EventMarkers, name: str, outputs: LiveOutputs) -> None:
        self.markers = markers
        self.name = name
        self._outputs = outputs
        self.failed = False

    def push(self, text: str, host_time_s: float | None = None) -> None:
        """Send the marker, unless the markers have failed."""
        if self.failed:
            return
        try:
            with time_limit(f"{self.name}: its marker", WRITE_LIMIT_S):
                self.markers.push(text, host_time_s)
        except CallStalled as stall:  # hung: stopped, and never called again
            self.failed = True
            self._outputs.report(f"{stall}; no more markers go to it, the session goes on")
        except Exception as error:  # a lab's output: the experiment goes on
            self.failed = True
            self._outputs.report_failure(f"{self.name} failed while sending a marker", error)


def open_outputs(job: PoseJob, descriptions: dict[str, ModelDescription]) -> LiveOutputs:
    """Open the live half of every output chosen (the pose files always, first).

    ``descriptions``: each camera's model. One that cannot be opened is reported and left out.
    """
    session = OutputSession(
        job.session_dir,
        job.file_label,
        tuple(_output_camera(job, camera, descriptions[camera.name]) for camera in job.cameras),
    )
    outputs = LiveOutputs(session, [])
    for chosen in with_required(job.outputs):
        try:
            live = chosen.plugin().open_live(session)
        except Exception as error:  # a lab's output, or its package gone since the check
            if chosen.name == POSE_OUTPUT:
                raise  # the pose files are the analysis's own record: no analysis without them
            outputs.report_failure(f"output {chosen.name!r} could not be opened", error)
            continue
        if live is not None:
            outputs._opened.append((chosen.name, live))
    return outputs


def _timing_stages(
    job: PoseJob, camera: WorkerCamera, description: ModelDescription
) -> tuple[str, ...]:
    """Return the stages timed apart (``refresh``, an ensemble's ``model1``...); () for one."""
    if camera.effective.ensemble:
        return tuple(MEMBER_STAGE.format(i + 1) for i in range(len(camera.effective.ensemble)))
    stages = model_stage_names(description)
    if stages and job.settings.crop_from == "previous_frame":
        return (*stages, "refresh")
    return stages or context_stages(description)  # a Lightning Pose context model's graphs


def _output_camera(
    job: PoseJob, camera: WorkerCamera, description: ModelDescription
) -> OutputCamera:
    """Return a camera as the outputs see it: its name, stem and model's keypoints."""
    return OutputCamera(
        name=camera.name,
        stem=job.stem(camera),
        session_dir=job.session_dir,
        keypoints=tuple(description.keypoints),
        model_name=description.name,
        multi_animal=description.multi_animal,
        max_animals=description.max_animals,
        timing_stages=_timing_stages(job, camera, description),
        ensemble=tuple(str(path) for path in camera.effective.ensemble),
        causal_eks=bool(camera.effective.ensemble) and job.settings.ensemble_smoothing == "causal",
    )
