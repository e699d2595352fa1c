"""Every message that crosses a process boundary, in one place.

Design: docs/architecture.md, "Processes and what crosses between them".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.experiments.triggers.geometry import Shape
from deeplabstream.hardware.cameras.base import CameraControl
from deeplabstream.hardware.stimulation.latency import LatencyTestSpec
from deeplabstream.settings.experiment_plan import ExperimentPlan
from deeplabstream.settings.sections import DeviceSettings
from deeplabstream.transport.channel import ChannelReader, Doorbell, EndReason
from deeplabstream.transport.ring import RingSpec

# --- live.processes.capture.camera ----------------------------------------


@dataclass(frozen=True)
class Opened:
    """The camera opened; the main process sizes the ring from this."""

    geometry: FrameGeometry
    nominal_fps: float | None
    description: dict[str, Any]
    live: bool = False  # a device that can be lost: the main process watches it for stalls
    controls: tuple[CameraControl, ...] = ()  # its settings with limits (camera.controls())
    # It delivers at nominal_fps on its own: the main process judges the rate it delivers.
    paced: bool = False


@dataclass(frozen=True)
class Failed:
    """The camera could not be opened; nothing was started."""

    message: str


@dataclass(frozen=True)
class Start:
    """Go: attach to this ring and write side outputs into this session folder."""

    ring: RingSpec
    session_dir: Path


@dataclass(frozen=True)
class Abort:
    """Another camera failed to open: close without streaming."""


@dataclass(frozen=True)
class Finished:
    """The stream ended; ``message`` explains a failure."""

    reason: EndReason
    message: str
    frames: int
    description: dict[str, Any] = field(default_factory=dict)  # camera.describe() at the end


# --- live.processes.recording.recorder ----------------------------------------


@dataclass(frozen=True)
class RecorderReady:
    """The recorder is subscribed: every frame published from now on will be recorded.

    ``first_seq``: the first ring sequence number it records.
    """

    first_seq: int = 0
    video_file: str = ""
    frames_table: str = ""


@dataclass(frozen=True)
class StopRecording:
    """Record the frames already announced, then close the files."""


@dataclass(frozen=True)
class RecorderFinished:
    """The recorder closed its files."""

    video_file: str
    frames_table: str
    frames_recorded: int
    frames_lost: int
    error: str | None
    first_seq: int = -1  # the recording's first frame (ring sequence number)
    last_seq: int = -1  # the last frame it handled (recorded or counted lost)


# --- live.processes.analysis.inference ----------------------------------------


@dataclass(frozen=True)
class ExperimentSpec:
    """The experiment to run on the poses (its plan), and the devices settings.ini declares."""

    plan: ExperimentPlan
    devices: dict[str, DeviceSettings]
    # The board's latency self-test, run beside the experiment (DeepLabStream.py --latency-test).
    latency_test: LatencyTestSpec | None = None

    @property
    def name(self) -> str:
        """The experiment's name, as the settings or the command line give it."""
        return self.plan.name


@dataclass(frozen=True)
class CameraModel:
    """The model one camera's poses come from: its keypoints (pose rows) and skeleton."""

    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]
    summary: dict[str, Any]
    animals: int = 1  # the most animals per frame (1: a single-animal model)
    ensemble: int = 0  # an ensemble's number of models (0: one model)


@dataclass(frozen=True)
class PoseReady:
    """The models are loaded and warmed up; frames from now on are analysed.

    ``model``, ``keypoints``, ``skeleton``: the first camera's model. Pose records carry
    ``record_keypoints`` rows and ``record_animals`` animals, the most of any model (NaN rows).
    """

    model: dict[str, Any]
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]
    cameras: dict[str, CameraModel] = field(default_factory=dict)
    record_keypoints: int = 0
    record_animals: int = 1
    # Per camera, the sequence number of the first frame the worker may take: with the ring's
    # write_seq at the stop, how many frames the analysis had to account for (a dead worker's).
    first_seq: dict[str, int] = field(default_factory=dict)
    # What the session should warn about (a camera's frames not the size its model was made for)
    warnings: tuple[str, ...] = ()
    # {registered name: origin} of the model formats that loaded the models (session.json)
    model_formats: dict[str, str] = field(default_factory=dict)
    # {path: SHA-256} of every lab file this process imported, as it ran them (plugin_files)
    lab_files: dict[str, str] = field(default_factory=dict)
    # A camera runs an ensemble: every record carries each keypoint's spread (NaN for others)
    record_spread: bool = False


@dataclass(frozen=True)
class PoseFailed:
    """The model could not be loaded or run; the message says why and what to do."""

    message: str


@dataclass(frozen=True)
class PoseStuck:
    """A lab's call on the loop cannot be interrupted: the worker flushed its rows and ends.

    ``experiment``, ``experiment_time_s``: the running experiment and its latest frame time.
    """

    message: str
    experiment: str | None = None
    experiment_time_s: float | None = None


@dataclass(frozen=True)
class StopAnalysis:
    """Finish the current batch, write the files, and end."""


@dataclass(frozen=True)
class StartExperiment:
    """Start an experiment on the poses from the next batch on (the GUI's Start Experiment)."""

    spec: ExperimentSpec
    events_file: str


@dataclass(frozen=True)
class ExperimentStarted:
    """The experiment runs and its devices are open."""

    name: str
    events_file: str


@dataclass(frozen=True)
class ExperimentFailed:
    """The experiment could not start; the message says why and what to do."""

    message: str


@dataclass(frozen=True)
class ExperimentEndsSession:
    """The experiment asked to end the whole session (``end_session``, its session duration)."""

    name: str
    reason: str


@dataclass(frozen=True)
class StopExperiment:
    """Stop the running experiment: outputs off, its events file closed; analysis goes on."""


@dataclass(frozen=True)
class ExperimentStopped:
    """The experiment has stopped; its summary for ``session.json``."""

    summary: dict[str, Any] | None


@dataclass(frozen=True)
class StatusWanted:
    """The main process has taken the last status and would take another."""


@dataclass(frozen=True)
class PoseFinished:
    """Per-camera figures of the analysis."""

    cameras: dict[str, dict[str, Any]]
    error: str | None = None
    experiment: dict[str, Any] | None = None  # the last experiment's summary
    experiments: tuple[dict[str, Any], ...] = ()  # every experiment of this analysis, in order
    warnings: tuple[str, ...] = ()  # worth knowing, no failure (an LSL stream nobody heard)


# --- live.processes.analysis.dispatch ----------------------------------------


@dataclass(frozen=True)
class TriggerView:
    """One named trigger as the live view draws it: its state and its shapes (frame pixels)."""

    name: str
    active: bool
    shapes: tuple[Shape, ...]
    camera: str | None = None  # the camera it watches (None: any; drawn on every camera)
    entries: int = 0  # False -> True transitions so far (entries into a region)
    seconds_active: float = 0.0  # frame time it was true so far
    # ANIMAL = any / each: each animal's own state, (animal number, state) in animal order;
    # empty for a trigger without a state per animal (Trigger.animal_states() is None)
    animal_states: tuple[tuple[int, bool], ...] = ()


@dataclass(frozen=True)
class EventView:
    """One experiment event as the GUI's event log shows it (a row of ``events.csv``, short)."""

    time_s: float  # frame time of the update it happened in
    kind: str  # start, trigger, trial_start, trial_end, action, pause, resume, finish
    name: str
    detail: str
    trial: int | None
    animal: str = ""  # the animal(s) that made it, as events.csv's animal column ("" for none)


@dataclass(frozen=True)
class ExperimentStatus:
    """A small picture of a running experiment, sent to the GUI a few times per second."""

    name: str
    state: str
    trials: int  # trials started so far
    trial: int | None  # the trial in progress
    actions: int  # actions performed so far
    last_event: str  # e.g. "trial_start zone_entered (trial 3)"; "" before the first
    triggers: tuple[TriggerView, ...]
    error: str | None = None
    new_events: tuple[EventView, ...] = ()  # the events since the previous status (the newest)
    events_total: int = 0  # events so far: the GUI counts those it never got (a long gap)
    elapsed_s: float = 0.0  # frame time since the experiment started (for % of session)


# --- live.processes.capture.camera: live camera controls (main -> capture -> main) ------------


@dataclass(frozen=True)
class SetCameraControl:
    """Change one of the camera's live controls (exposure, gain...) while it streams."""

    name: str
    value: float


@dataclass(frozen=True)
class CameraControlSet:
    """The answer to :class:`SetCameraControl`: the value taken, or why not; ``controls`` after."""

    name: str
    value: float
    error: str | None = None
    controls: tuple[CameraControl, ...] = ()


# --- the POSE pipe: inference worker -> main process, fixed-size records -------------------------
#
# A record holds the source frame's camera id, frame index and host timestamp, when the worker
# picked the frame up and when the pose was ready, and A x K x (x, y, likelihood) as float32 (A
# animals, 1 for single-animal models; row i is the animal with identity i), and for several
# animals each identity's confidence (A float32, pose.tracking.identities), and in a session
# where a camera runs an ensemble each keypoint's spread across its models (K float32, NaN for
# a camera of one model). Records of one
# session all have the same size (A and K are fixed by the models), are written non-blocking
# (a reader that stops reading never slows the worker) and atomically (smaller than PIPE_BUF).

# camera id, deadline code, (pad), pose ready -> end in us, frame index, arrival, pick-up, pose
# ready, sequence number: 48 bytes, the size it had before the deadline fields (they used the pad).
_HEAD = struct.Struct("<HBxIqqqqQ")
_MAX_LOOP_US = 2**32 - 1
_MAX_RECORD = 4096  # POSIX PIPE_BUF: larger writes could interleave


@dataclass(frozen=True, slots=True)
class PoseRecord:
    """One analysed frame's keypoints in frame pixels, with its timestamps (host clock).

    ``pose`` (K, 3) is the first animal's; ``animals`` (A, K, 3) every animal's (None: one).
    """

    camera_id: int
    frame_index: int
    host_timestamp_ns: int
    picked_up_ns: int
    ready_ns: int
    seq: int
    pose: np.ndarray
    animals: np.ndarray | None = None
    # core.deadline: 0 on time, else the code of the stage blamed for missing the deadline
    late_stage: int = 0
    # pose ready -> the frame's decision or command (us); 0 without an experiment
    after_pose_us: int = 0
    # (A,) each identity's confidence for several animals (NaN: not seen); None for one
    identity_confidence: np.ndarray | None = None
    # (K,) an ensemble's spread of each keypoint, px (Observation.spread); None: no ensemble
    ensemble_std: np.ndarray | None = None

    @property
    def end_ns(self) -> int:
        """When the frame's loop ended: its command, decision or pose (host clock, ns)."""
        return self.ready_ns + self.after_pose_us * 1000

    @property
    def end_to_end_ms(self) -> float:
        """Frame arrival -> its command, decision or pose (whichever came last), in ms."""
        return (self.ready_ns - self.host_timestamp_ns) / 1e6 + self.after_pose_us / 1e3


def pose_record_size(keypoints: int, animals: int = 1, spread: bool = False) -> int:
    """Bytes of one record for ``animals`` animals of ``keypoints`` keypoints (and spreads)."""
    size = _HEAD.size + 12 * keypoints * animals + (4 * animals if animals > 1 else 0)
    size += 4 * keypoints if spread else 0
    if size > _MAX_RECORD:
        raise ValueError(
            f"{animals} animal(s) of {keypoints} keypoints do not fit an atomic pipe record; "
            "lower [Pose] MAX_ANIMALS"
        )
    return size


def encode_pose(record: PoseRecord) -> bytes:
    """Encode ``record`` as bytes (its animals when it has them, else its pose)."""
    head = _HEAD.pack(
        record.camera_id,
        record.late_stage,
        min(record.after_pose_us, _MAX_LOOP_US),
        record.frame_index,
        record.host_timestamp_ns,
        record.picked_up_ns,
        record.ready_ns,
        record.seq,
    )
    spread = b""
    if record.ensemble_std is not None:
        spread = np.ascontiguousarray(record.ensemble_std, dtype="<f4").tobytes()
    if record.animals is None:
        return head + np.ascontiguousarray(record.pose, dtype="<f4").tobytes() + spread
    confidence = record.identity_confidence
    if confidence is None:
        confidence = np.full(len(record.animals), np.nan)
    points = np.ascontiguousarray(record.animals, dtype="<f4").tobytes()
    return head + points + np.ascontiguousarray(confidence, dtype="<f4").tobytes() + spread


class PoseReader:
    """Read every pose record that has arrived, without blocking."""

    def __init__(
        self,
        connection: Connection,
        keypoints: int,
        animals: int = 1,
        spread: bool = False,
        doorbell: Doorbell | None = None,
    ) -> None:
        # The worker writes poses through a ChannelWriter: read them through the session's
        # doorbell (pipe or portable), which undoes its framing.
        self._channel = ChannelReader(connection, 0, kind=doorbell)
        self._size = pose_record_size(keypoints, animals, spread)
        self._keypoints = keypoints
        self._animals = animals
        self._spread = spread

    @property
    def at_eof(self) -> bool:
        """Return True once the worker has closed its end: no pose will arrive any more."""
        return self._channel.at_eof

    def fileno(self) -> int:
        """Return the descriptor to wait on."""
        return self._channel.fileno()

    def read_available(self) -> list[PoseRecord]:
        """Return the records that arrived since the last call, oldest first."""
        data = self._channel.read_bytes(self._size)
        return [self._decode(data, offset) for offset in range(0, len(data), self._size)]

    def _decode(self, data: bytes, offset: int) -> PoseRecord:
        camera_id, late, after_us, index, host, picked, ready, seq = _HEAD.unpack_from(data, offset)
        points = np.frombuffer(
            data, dtype="<f4", count=3 * self._keypoints * self._animals, offset=offset + _HEAD.size
        ).reshape(self._animals, self._keypoints, 3)
        after = offset + _HEAD.size + points.nbytes
        confidence = None
        if self._animals > 1:
            confidence = np.frombuffer(data, dtype="<f4", count=self._animals, offset=after)
            after += confidence.nbytes
        spread = None
        if self._spread:
            spread = np.frombuffer(data, dtype="<f4", count=self._keypoints, offset=after)
        return PoseRecord(
            camera_id, index, host, picked, ready, seq, points[0],
            points if self._animals > 1 else None, late, after_us, confidence, spread,
        )  # fmt: skip

    def close(self) -> None:
        """Close this end."""
        self._channel.close()
