"""The output plugin kind: where a session's poses go, live in the worker and after the stop.

An output is a subclass of :class:`Output`, registered in :data:`OUTPUTS` (the one plugin
registry of ``core/plugins.py``, entry point group ``deeplabstream.outputs``). It has two
optional halves:

* **live** (:meth:`Output.open_live`), in the inference worker: opened once per analysis with
  what the session knows (:class:`OutputSession`: its folder, its cameras, their keypoints), it
  gives each camera a :class:`PoseSink` (``write`` every analysed frame, ``write_not_analysed``
  every frame passed over, ``close`` with the figures it adds to the camera's in
  ``session.json``), and may take the experiment's events (:attr:`LiveOutput.markers`);
* **export** (:meth:`Output.export`), in the main process after the session has stopped and
  ``session.json`` is final: given the finished session folder, it writes its files.

Each output owns its settings: :attr:`Output.settings_class` is a dataclass of
:func:`core.schema.setting` fields, read from the output's ``[Output NAME]`` section (the
built-ins also keep their keys of ``[Output]``: ``NAMING``, ``LSL``, ``LSL_WAIT``, ``NWB``,
``SLP``; see ``settings/outputs.py``). What crosses to the worker is a :class:`ChosenOutput`:
the output's name and its settings (picklable); the worker finds the class by name again.

The built-ins are outputs too: ``pose`` (the pose files and their table, always chosen),
``ibl`` (IBL-named tables), ``lsl`` (Lab Streaming Layer), ``nwb`` (``session.nwb``), ``slp``
(SLEAP files) and ``annotated_video`` (each camera's video with its keypoints drawn).
docs/outputs.md, "Adding an output", shows a plugin of a lab's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from deeplabstream.core.plugins import Registry, subclass_check
from deeplabstream.outputs.pose_files import individual_names
from deeplabstream.transport.channel import FrameRecord


@dataclass(slots=True)
class AnalysedFrame:
    """One analysed frame of one camera, as its sinks see it.

    Each camera has one, filled in place for every frame it analyses (no allocation per
    frame): a sink reads it during :meth:`PoseSink.write` and keeps nothing of it.
    """

    record: Any = None  # transport.channel.FrameRecord: index, seq, host and camera times
    animals: np.ndarray = field(default_factory=lambda: np.empty((1, 0, 3), np.float32))
    seq: int = 0  # the worker's running count of poses sent
    late: int = 0  # core.deadline: the stage that missed the deadline (0: none)
    late_part: str = ""  # core.deadline: a miss in the model, the part of it blamed ("": none)
    box: tuple[int, int, int, int] | None = None  # the analysed region (x, y, width, height)
    picked_ns: int = 0  # the worker took the frame
    ready_ns: int = 0  # its keypoints were ready
    timings: dict[str, float] = field(default_factory=dict)  # pre-processing, network, decoding
    batch_size: int = 1
    experiment_ms: float | None = None  # the experiment's decision took this long
    worker_free_ns: int = 0  # the worker finished its previous turn
    decided_ns: int = 0  # the experiment decided (0: no experiment, or it decided nothing)
    written_ns: int = 0  # its outputs were written
    after_pose_us: int = 0  # keypoints ready -> decision written


class PoseSink(Protocol):
    """One output of a camera's poses, in the inference worker."""

    def write(self, frame: AnalysedFrame) -> None:
        """Take one analysed frame (animals in identity order, in frame pixels)."""

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Take one captured frame that was passed over (a newer one was analysed)."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Finish; return the figures it adds to its camera's in ``session.json`` ({}: none).

        ``last_index``: the stream's last frame index when frames were published after the
        last one read (their announcements were refused), so that files can end there; None
        otherwise. The sinks of a camera close in the order of the chosen outputs, ``pose``
        first: a later one may read the finished pose files.
        """
        ...


class EventMarkers(Protocol):
    """Where the experiment's events also go, one text per event (e.g. LSL markers)."""

    def push(self, text: str, host_time_s: float | None = None) -> None:
        """Send one event's text, stamped with its host time (s; None: now)."""


@dataclass(frozen=True)
class OutputCamera:
    """One camera as an output sees it: its name, its files' stem and its model's keypoints."""

    name: str
    stem: str  # its files start with this: ``<camera>`` or ``<camera>.run2`` etc.
    session_dir: Path
    keypoints: tuple[str, ...]
    model_name: str = ""
    multi_animal: bool = False
    max_animals: int = 1
    # The stages its timing file shows apart (a top-down model's), () for one stage.
    timing_stages: tuple[str, ...] = ()
    # Its identity keeper (live.processes.identities or class_identities), None for one
    # animal: the pose files write its confidences beside each row and close it.
    identities: Any = None

    @property
    def individuals(self) -> tuple[str, ...]:
        """Its animals' names in identity order (``animal1``, ...); () for a single animal."""
        if not self.multi_animal:
            return ()
        return individual_names(self.max_animals)


@dataclass(frozen=True)
class OutputSession:
    """What the session knows when an analysis starts: its folder and cameras."""

    session_dir: Path
    file_label: str  # "" for the session's first analysis, ".run2" etc. for later ones
    cameras: tuple[OutputCamera, ...]


class LiveOutput:
    """An output's live half in the worker: a sink per camera, maybe the events, its close."""

    #: Where the experiment's events also go (None: they go to events.csv only).
    markers: EventMarkers | None = None

    def camera_sink(self, camera: OutputCamera) -> PoseSink | None:
        """Return the sink of ``camera``'s poses (None: this output takes none of its frames)."""
        return None

    def close(self) -> None:
        """Close what it opened for the whole analysis (after every sink and the events)."""

    @property
    def error(self) -> str | None:
        """Return what failed while it ran (reported in ``session.json``, never fatal); None."""
        return None


@dataclass(frozen=True)
class ExportContext:
    """What an export is given: the finished session folder and how the session went."""

    session_dir: Path
    analysed: bool  # poses were estimated (there are pose files)
    preview: bool  # the session only streamed: nothing recorded, analysed or gone wrong


@dataclass(frozen=True)
class NoOutputSettings:
    """The settings of an output that has none (its ``[Output NAME]`` section is empty)."""


class Output:
    """One output kind: its settings, its live half (in the worker), its export (after the stop).

    A subclass overrides :meth:`open_live`, :meth:`export` or both. It is made with its
    settings (an instance of :attr:`settings_class`) in the worker and in the main process.
    """

    #: Its settings: a frozen dataclass of ``core.schema.setting`` fields, the keys of its
    #: ``[Output NAME]`` section.
    settings_class: ClassVar[type] = NoOutputSettings
    #: The files it exports, in words, for the message when that fails (``session.nwb``).
    export_files: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings if settings is not None else self.settings_class()

    def open_live(self, session: OutputSession) -> LiveOutput | None:
        """Open its live half for one analysis (None: it has none)."""
        return None

    @property
    def start_up_s(self) -> float:
        """How long its live half may wait at the start (e.g. for consumers) before frames."""
        return 0.0

    def export(self, context: ExportContext) -> list[Path]:
        """Write its files from the finished session folder; return them ([]: nothing to do).

        Runs after ``session.json`` is final. An exception is reported in ``session.json`` as
        ``<export_files> could not be written: <error>``; the session's own files stand.
        """
        return []


@dataclass(frozen=True)
class ChosenOutput:
    """An output a session uses: its registered name and its settings (None: the defaults)."""

    name: str
    settings: Any = None

    def plugin(self) -> Output:
        """Return the output, made with its settings (its class found by name)."""
        return OUTPUTS.get(self.name)(self.settings)


POSE_OUTPUT = "pose"

OUTPUTS: Registry[type[Output]] = Registry(
    "output",
    "deeplabstream.outputs",
    {
        POSE_OUTPUT: "deeplabstream.outputs.pose_output:PoseFilesOutput",
        "ibl": "deeplabstream.outputs.pose_output:IblOutput",
        "lsl": "deeplabstream.outputs.lsl_output:LslOutput",
        "nwb": "deeplabstream.outputs.exports:NwbOutput",
        "slp": "deeplabstream.outputs.exports:SlpOutput",
        "annotated_video": "deeplabstream.outputs.annotated_video:AnnotatedVideoOutput",
    },
    advice="Name an output of this list in an [Output NAME] section, or install the package "
    "that provides it (its entry point group is deeplabstream.outputs).",
    check=subclass_check(Output),
    normalise=lambda name: name.strip().lower(),
)


def with_required(chosen: Iterable[ChosenOutput]) -> tuple[ChosenOutput, ...]:
    """Return ``chosen`` with the pose files first when not named (the others read them)."""
    chosen = tuple(chosen)
    if any(output.name == POSE_OUTPUT for output in chosen):
        return chosen
    return (ChosenOutput(POSE_OUTPUT), *chosen)
