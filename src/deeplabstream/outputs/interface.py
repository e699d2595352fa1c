"""The output plugin interface: where a session's poses go, live and after the stop.

An :class:`Output` (registered in :data:`OUTPUTS`) has two optional halves: live
(:meth:`Output.open_live`, a :class:`PoseSink` per camera in the inference worker) and export
(:meth:`Output.export`, on the finished folder). What crosses to the worker is a picklable
:class:`ChosenOutput`. docs/outputs.md, "Outputs are plugins: choosing one, adding one".
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

    Attributes
    ----------
    members
        (M, K, 3): each model's x, y and likelihood.
    variance
        (K, 2): the models' variance of x and of y (px²).
    std
        (K,): the mean of the x and y standard deviations (px; NaN with fewer than two models),
        what ``MAX_ENSEMBLE_STD`` compares.
    smoothed, smoothed_variance, observation_variance
        (K, 2) each with ``ENSEMBLE_SMOOTHING = causal``: the filter's x, y, posterior and
        observation variance; None otherwise.
    """

    members: np.ndarray
    variance: np.ndarray
    std: np.ndarray
    smoothed: np.ndarray | None = None
    smoothed_variance: np.ndarray | None = None
    observation_variance: np.ndarray | None = None


@dataclass(slots=True)
class AnalysedFrame:
    """One analysed frame of one camera, as its sinks see it (docs/plugins.md).

    Refilled in place for every frame: a sink reads it in :meth:`PoseSink.write` and copies what
    it keeps (``frame.animals.copy()``).

    Attributes
    ----------
    record
        The frame as its camera published it (frame index, camera clock, host arrival time).
    animals
        (A, K, 3) float32: x, y in frame pixels and likelihood of the model's keypoints
        (:attr:`OutputCamera.keypoints`) per animal in identity order; NaN where not seen.
    seq, batch
        The worker's count of poses sent, and of batches (the order the experiment got them).
    late, late_part
        The stage that missed the deadline (0: none), and the model's part blamed ("": none).
    box
        The analysed region (x, y, width, height) with dynamic cropping; None: the whole frame.
    picked_ns, ready_ns, decided_ns, written_ns, worker_free_ns
        Host times (:func:`core.clock.host_now_ns`): frame taken, keypoints ready, decided (0:
        nothing decided), outputs written, previous turn finished.
    timings
        Milliseconds of each step of the model.
    experiment_ms, after_pose_us
        The decision's time (None: no experiment); keypoints ready -> decision written (µs).
    time_s
        The frame's time as the experiment reads it (the camera's clock with one camera, the
        host's with several).
    lead_s
        The experiment's forward-prediction lead (None: none).
    ensemble
        Every member's values and their spread with an ensemble; None for one model.
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

    A lab's sink may subclass it (``class MySink(PoseSink)``) and write :meth:`write` only:
    :meth:`write_not_analysed` then ignores the frames passed over and :meth:`close` adds no
    figures. Every method runs in the inference worker's loop, between one frame's keypoints and
    the next frame: it must be quick (append a row to a file; no waiting on a network or a
    person), and it must not keep ``frame`` or its arrays (they are refilled in place).
    """

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

    A subclass overrides :meth:`camera_sink` (a sink per camera: the short way),
    :meth:`open_live` (the whole live half), :meth:`export` (files written from the finished
    session folder, in the main process), or several of them. It is made with its settings
    (an instance of :attr:`settings_class`, the keys of its ``[Output NAME]`` section) in the
    worker and in the main process. docs/plugins.md, "Outputs", has a whole one.
    """

    #: Its settings: a frozen dataclass of ``core.schema.setting`` fields, the keys of its
    #: ``[Output NAME]`` section.
    settings_class: ClassVar[type] = NoOutputSettings
    #: The files it exports, in words, for the message when that fails (``session.nwb``).
    export_files: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings if settings is not None else self.settings_class()

    def open_live(self, session: OutputSession) -> LiveOutput | None:
        """Open its live half for one analysis (None: it has none).

        By default, an output that defines :meth:`camera_sink` gets a live half that asks it
        for each camera's sink; one that needs more (the experiment's events, something
        opened once for every camera) overrides this.
        """
        if type(self).camera_sink is Output.camera_sink:
            return None
        return _SinksOf(self)

    def camera_sink(self, camera: OutputCamera) -> PoseSink | None:
        """Return the sink of ``camera``'s poses for one analysis (None: none for this camera).

        The short way to an output that writes per camera: define this, not :meth:`open_live`.
        """
        return None

    @property
    def start_up_s(self) -> float:
        """How long its live half may wait at the start (e.g. for consumers) before frames."""
        return 0.0

    def export(self, context: ExportContext) -> list[Path]:
        """Write its files from the finished session folder; return them ([]: nothing to do).

        Runs after ``session.json`` is final. An exception is reported in ``session.json`` as
        ``output 'NAME': <export_files> could not be written: <error>``; the session's own
        files stand.
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

    ``settings_folder`` is the settings file's folder, where a lab's ``outputs/NAME.py`` is
    (None: the process's). A lab output's settings cross to the worker as their values and are
    rebuilt there by its own settings class (:func:`core.plugins.values_if_from_file`).
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
