"""The output plugin interface: where a session's poses go, live and after the stop.

Design: docs/outputs.md, "Outputs are plugins: choosing one, adding one".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from deeplabstream.core.plugins import (
    Registry,
    subclass_check,
    subclasses_in,
    values_if_from_file,
)
from deeplabstream.outputs.pose.files import individual_names
from deeplabstream.transport.channel import FrameRecord

NO_FRAME = FrameRecord(camera_id=-1, slot=-1, seq=-1, frame_index=-1, camera_timestamp=math.nan,
                       host_timestamp_ns=0)  # fmt: skip
"""The record of an :class:`AnalysedFrame` before its first frame."""


@dataclass(slots=True)
class EnsembleValues:
    """One frame of a camera that runs an ensemble of models (docs/ensembles.md).

    ``members`` (M, K, 3); ``variance`` (K, 2) px²; ``std`` (K,) px, what ``MAX_ENSEMBLE_STD``
    compares; ``smoothed*`` (K, 2) with ``ENSEMBLE_SMOOTHING = causal``, else None.
    """

    members: np.ndarray
    variance: np.ndarray
    std: np.ndarray
    smoothed: np.ndarray | None = None
    smoothed_variance: np.ndarray | None = None
    observation_variance: np.ndarray | None = None


@dataclass(slots=True)
class AnalysedFrame:
    """One analysed frame of one camera, as its sinks see it (fields: docs/plugins.md).

    Refilled in place for every frame: a sink copies what it keeps (``frame.animals.copy()``).
    ``animals`` is (A, K, 3) float32 in frame pixels, NaN where not seen; the ``*_ns`` fields
    are host times (:func:`core.timing.host_now_ns`, 0: none).
    """

    record: FrameRecord = NO_FRAME
    animals: np.ndarray = field(default_factory=lambda: np.empty((1, 0, 3), np.float32))
    seq: int = 0
    late: int = 0
    late_part: str = ""
    box: tuple[int, int, int, int] | None = None
    picked_ns: int = 0
    ready_ns: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    experiment_ms: float | None = None
    worker_free_ns: int = 0
    decided_ns: int = 0
    written_ns: int = 0
    after_pose_us: int = 0
    batch: int = 0
    time_s: float = 0.0
    lead_s: float | None = None
    ensemble: EnsembleValues | None = None


class PoseSink(Protocol):
    """One output of a camera's poses, in the inference worker.

    A subclass may define :meth:`write` only. Every method runs in the worker's loop between
    frames: it must be quick and must not keep ``frame`` or its arrays (refilled in place).
    """

    def write(self, frame: AnalysedFrame) -> None:
        """Take one analysed frame (animals in identity order, in frame pixels)."""

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Take one captured frame that was passed over (a newer one was analysed)."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Finish; return the figures it adds to its camera's in ``session.json`` ({}: none).

        ``last_index``: the stream's last frame index when later frames were refused, else None.
        Sinks close in the chosen outputs' order, ``pose`` first.
        """
        return {}


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
    # Its identity keeper (live.processes.analysis.identities), None for one
    # animal: the pose files write its confidences beside each row and close it.
    identities: Any = None
    # An ensemble's models (their names, in order); () for one model.
    ensemble: tuple[str, ...] = ()
    # With ENSEMBLE_SMOOTHING = causal: the causal filter's file is written too.
    causal_eks: bool = False

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

    @property
    def warning(self) -> str | None:
        """Return what is worth knowing of its run, no failure (``session.json`` warnings)."""
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

    A subclass overrides :meth:`camera_sink`, :meth:`open_live` or :meth:`export`; it is made
    with its settings in the worker and in the main process (docs/plugins.md, "Outputs").
    """

    #: Its settings: a frozen dataclass of ``core.schema.setting`` fields, the keys of its
    #: ``[Output NAME]`` section.
    settings_class: ClassVar[type] = NoOutputSettings
    #: The files it exports, in words, for the message when that fails (``session.nwb``).
    export_files: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings if settings is not None else self.settings_class()

    def open_live(self, session: OutputSession) -> LiveOutput | None:
        """Open its live half for one analysis (None: none); by default from :meth:`camera_sink`."""
        if type(self).camera_sink is Output.camera_sink:
            return None
        return _SinksOf(self)

    def camera_sink(self, camera: OutputCamera) -> PoseSink | None:
        """Return the sink of ``camera``'s poses for one analysis (None: none for this camera)."""
        return None

    @property
    def start_up_s(self) -> float:
        """How long its live half may wait at the start (e.g. for consumers) before frames."""
        return 0.0

    def export(self, context: ExportContext) -> list[Path]:
        """Write its files from the finished session folder; return them ([]: nothing to do).

        Runs after ``session.json`` is final; an exception is reported there, never fatal.
        """
        return []


class _SinksOf(LiveOutput):
    """The live half of an output that only defines :meth:`Output.camera_sink`."""

    def __init__(self, output: Output) -> None:
        self._output = output

    def camera_sink(self, camera: OutputCamera) -> PoseSink | None:
        """Return the output's sink of ``camera``."""
        return self._output.camera_sink(camera)


@dataclass(frozen=True)
class ChosenOutput:
    """An output a session uses: its name and its settings (None: the defaults).

    ``settings_folder``: where a lab's ``outputs/NAME.py`` is (None: the process's folder).
    """

    name: str
    settings: Any = None
    settings_folder: Path | None = field(default=None, compare=False)  # where, not what

    def output_class(self) -> type[Output]:
        """Return the output's class, found by its name (registered, or in the lab's folder)."""
        return OUTPUTS.get(self.name, self.settings_folder)

    def plugin(self) -> Output:
        """Return the output, made with its settings (its class found by name)."""
        return self.output_class()(self.settings)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle a lab output's settings by value (their class is unknown to other processes)."""
        values = values_if_from_file(self.settings)
        settings = None if values is not None else self.settings
        return (_chosen_output, (self.name, settings, self.settings_folder, values))


def _chosen_output(
    name: str, settings: Any, settings_folder: Path | None, values: dict[str, Any] | None
) -> ChosenOutput:
    """Rebuild a pickled :class:`ChosenOutput` (its settings from ``values`` when given)."""
    if values is not None:
        settings = OUTPUTS.get(name, settings_folder).settings_class(**values)
    return ChosenOutput(name, settings, settings_folder)


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
    advice="Name an output of this list in an [Output NAME] section; for the lab's own output, "
    "put its module in the outputs/ folder beside the settings file ([Output module]), or "
    "install the package that provides it (its entry point group is deeplabstream.outputs; "
    "docs/plugins.md).",
    check=subclass_check(Output),
    lab_folder="outputs",
    normalise=lambda name: name.strip().lower(),
    find_in_module=lambda module: subclasses_in(module, Output),
)


def with_required(chosen: Iterable[ChosenOutput]) -> tuple[ChosenOutput, ...]:
    """Return ``chosen`` with the pose files first when not named (the others read them)."""
    chosen = tuple(chosen)
    if any(output.name == POSE_OUTPUT for output in chosen):
        return chosen
    return (ChosenOutput(POSE_OUTPUT), *chosen)
