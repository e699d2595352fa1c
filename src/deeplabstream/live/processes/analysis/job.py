"""What the inference worker is given: its cameras and its job (both picklable)."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from deeplabstream.core.heartbeat import Heartbeat
from deeplabstream.core.logs import LogTarget
from deeplabstream.core.priority import ProcessPriority
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.live.processes.analysis.depth import DepthSource
from deeplabstream.live.processes.analysis.dispatch import EVENTS_FILE
from deeplabstream.live.processes.messages import ExperimentSpec
from deeplabstream.outputs.interface import ChosenOutput
from deeplabstream.settings.effective import EffectiveCamera
from deeplabstream.settings.sections import PoseSettings
from deeplabstream.spatial.triangulation.live import TriangulationSpec
from deeplabstream.transport.channel import Doorbell
from deeplabstream.transport.ring import RingSpec


@dataclass(frozen=True)
class WorkerCamera:
    """One camera as the worker sees it."""

    camera_id: int
    ring: RingSpec
    channel: Connection  # read end of the camera's ANALYSE pipe
    # Its settings, every fallback to [Pose] resolved once by the session (settings/effective.py):
    # its model (its own MODEL_PATH, else [Pose]'s or --model), FLIP, dynamic crop, PIXELS_PER_MM.
    effective: EffectiveCamera
    depth: DepthSource | None = None  # its aligned depth image: Observation.depth_m reads it
    # Its deadline ([Experiment] DEADLINE_MS for its rate; core/deadline.py); None: off.
    deadline_ns: int | None = None

    @property
    def name(self) -> str:
        """The camera's name (``[Camera NAME]``)."""
        return self.effective.name


@dataclass(frozen=True)
class PoseJob:
    """Everything the worker process needs (picklable)."""

    cameras: tuple[WorkerCamera, ...]
    # [Pose]: backend, device, threads, tracking... A camera's model and crop are its own
    # (WorkerCamera.effective), never read from here.
    settings: PoseSettings
    session_dir: Path
    control: Connection
    poses: Connection  # write end of the POSE pipe
    log_target: LogTarget
    experiment: ExperimentSpec | None = None
    file_label: str = ""  # "" for the session's first analysis, ".run2" etc. for later ones
    events_file: str = EVENTS_FILE  # for ``experiment``
    # The outputs chosen (settings/outputs.py), each by name with its settings: the worker
    # opens their live halves (outputs/interface.py). The pose files ("pose") are always among them.
    outputs: tuple[ChosenOutput, ...] = ()
    priority: ProcessPriority | None = None  # its own cores (core/priority.py)
    # [Triangulation] with a calibration: the calibrated cameras' poses are triangulated after
    # each batch into points3d.csv and Observations.points3d (spatial/triangulation/live.py).
    triangulation: TriangulationSpec | None = None
    # The settings file's folder: the worker finds the lab's plugins there (devices/, triggers/,
    # outputs/, backends/, formats/, experiments/), set first thing (core/plugins/).
    settings_folder: Path | None = None
    # Its signs of life and the lab's call it is inside, read by the session (core/heartbeat.py):
    # a worker held whole is named and ended there.
    heartbeat: Heartbeat | None = None
    # The events its experiments made that events.csv lacks yet, and their latest frame time,
    # where the session finds them if the worker dies (core/unwritten_rows.py).
    unwritten: UnwrittenRows | None = None
    doorbell: Doorbell | None = None  # [Streaming] DOORBELL as the session chose it

    def stem(self, camera: WorkerCamera) -> str:
        """Return the name its files start with: ``<camera>`` or ``<camera>.run2`` etc."""
        return f"{camera.name}{self.file_label}"
