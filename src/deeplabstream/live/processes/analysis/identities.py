"""Identities in the inference worker: which animal is which, per multi-animal camera.

Design: docs/architecture.md, "Pose estimation".
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from deeplabstream.core.lifetime import (
    children_leave_stop_signals_to_parent,
    die_with_parent,
    leave_stop_signals_to_parent,
)
from deeplabstream.core.logs import LogTarget, configure_process_logging, current_log_target
from deeplabstream.core.priority import lower_priority
from deeplabstream.core.timing import DurationHistogram
from deeplabstream.experiments.observation import unnamed_rows
from deeplabstream.outputs.pose.files import IdentityConfidenceWriter
from deeplabstream.pose.tracking.appearance import AppearanceModel, SampleBank, fit_appearance
from deeplabstream.pose.tracking.identities import IdentityKeeper
from deeplabstream.pose.tracking.patches import feature_count
from deeplabstream.pose.tracking.tracker import IdentityTracker
from deeplabstream.transport.ring import short_shared_memory_name

log = logging.getLogger(__name__)

POLL_S = 0.2
"""How often the learner looks for new samples."""
REFIT_SAMPLES = 60
"""New samples that make the learner fit again (about 2 s of two animals apart)."""
CAPACITY = 4096
"""Samples the ring holds: the learner reads every 0.2 s, the keeper writes at most 15 a second
per animal, so it never falls a ring behind unless it is starved of CPU for minutes."""
STOP_TIMEOUT_S = 1.0
"""How long the stop waits for the learner to end by itself (it looks every POLL_S): it holds
no file, so one busy fitting at the lowest priority on a loaded machine is ended, not waited for
(the stop waited 5 s for it)."""
KILLED_TIMEOUT_S = 10.0
"""How long the stop waits for a killed learner to be gone: a lowest-priority process on a busy
machine may wait over a second for the core it needs to die on."""

# Header fields (int64).
_WRITTEN, _GENERATION, _MODEL_SEQ, _MODEL_VERSION, _STOP, _FITS, _FIT_NS, _FIT_TOTAL_NS = range(8)
_LOST, _HELD = 8, 9
_HEADER = 16


@dataclass(frozen=True)
class LearnerSpec:
    """What the learner process needs to attach (picklable)."""

    name: str
    identities: int
    features: int
    capacity: int = CAPACITY
    # Where it logs: the worker's console level and session.log (core/logs.py)
    log_target: LogTarget = field(default_factory=LogTarget)


class _Block:
    """Numpy views of one learner's shared memory."""

    def __init__(self, spec: LearnerSpec, shm: shared_memory.SharedMemory) -> None:
        self.spec, self.shm = spec, shm
        a, f, r = spec.identities, spec.features, spec.capacity
        layout = [
            ("header", np.int64, (_HEADER,)),
            ("features", np.float32, (r, f)),
            ("labels", np.int64, (r,)),
            ("times", np.float64, (r,)),
            ("generations", np.int64, (r,)),
            ("weights", np.float64, (a, f)),
            ("bias", np.float64, (a,)),
            ("accuracy", np.float64, (1,)),
            ("samples", np.int64, (1,)),
        ]
        offset = 0
        for name, dtype, shape in layout:
            array = np.ndarray(shape, dtype, buffer=shm.buf, offset=offset)
            setattr(self, name, array)
            offset += array.nbytes
        self.header: np.ndarray
        self.features: np.ndarray
        self.labels: np.ndarray
        self.times: np.ndarray
        self.generations: np.ndarray
        self.weights: np.ndarray
        self.bias: np.ndarray
        self.accuracy: np.ndarray
        self.samples: np.ndarray

    @staticmethod
    def size(spec: LearnerSpec) -> int:
        a, f, r = spec.identities, spec.features, spec.capacity
        return 8 * _HEADER + r * (4 * f + 24) + 8 * (a * f + a + 2)

    def release(self) -> None:
        """Drop the views, then the mapping (numpy views would keep the buffer exported)."""
        for name in (
            "header", "features", "labels", "times", "generations", "weights", "bias",
            "accuracy", "samples",
        ):  # fmt: skip
            setattr(self, name, None)
        self.shm.close()


class BackgroundLearner:
    """The keeper's side: hands samples over and takes models, through shared memory.

    Use :meth:`start`; :meth:`close` stops the process and frees the memory.
    """

    def __init__(self, block: _Block, process: Any) -> None:
        self._block = block
        self._process = process
        self._version = 0
        self._model: AppearanceModel | None = None
        self._generation = 0

    @classmethod
    def start(cls, identities: int, features: int, label: str = "") -> BackgroundLearner:
        """Create the shared memory and start the learner process (it returns at once)."""
        # Named as the rings are (dls<pid>_...): a killed worker's block is removed as a stale
        # ring when the next session starts (transport.ring.remove_stale_rings).
        name = short_shared_memory_name("id")
        spec = LearnerSpec(name, identities, features, log_target=current_log_target())
        shm = shared_memory.SharedMemory(name=spec.name, create=True, size=_Block.size(spec))
        block = _Block(spec, shm)
        block.header[:] = 0
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=learner_main, args=(spec,), name=f"identity-learner{label}", daemon=True
        )
        with children_leave_stop_signals_to_parent():
            process.start()
        return cls(block, process)

    def add(self, features: np.ndarray, identity: int, time_s: float) -> None:
        """Write one sample into the ring (a copy of ``features``); never waits."""
        block = self._block
        written = int(block.header[_WRITTEN])
        slot = written % block.spec.capacity
        block.features[slot] = features
        block.labels[slot] = identity
        block.times[slot] = time_s
        block.generations[slot] = self._generation
        block.header[_WRITTEN] = written + 1  # last: the learner reads only what is counted

    def restart(self) -> None:
        """Have the learner drop every sample so far and its model."""
        self._generation += 1
        self._block.header[_GENERATION] = self._generation
        self._model = None

    def latest(self) -> AppearanceModel | None:
        """Return the newest model (copied when the learner published a new one)."""
        block = self._block
        version = int(block.header[_MODEL_VERSION])
        if version == self._version:
            return self._model
        before = int(block.header[_MODEL_SEQ])
        if before % 2:
            return self._model  # being written: next frame
        weights, bias = block.weights.copy(), block.bias.copy()
        accuracy, samples = float(block.accuracy[0]), int(block.samples[0])
        version = int(block.header[_MODEL_VERSION])
        if int(block.header[_MODEL_SEQ]) != before:
            return self._model
        self._version = version
        if version > 0 and np.isfinite(weights).all():
            self._model = AppearanceModel(weights, bias, accuracy, samples, version)
        return self._model

    def figures(self) -> dict[str, Any]:
        """Return the learner's figures, for ``session.json``."""
        header = self._block.header
        fits = int(header[_FITS])
        return {
            "fits": fits,
            "last_fit_ms": round(int(header[_FIT_NS]) / 1e6, 3) if fits else None,
            "fit_cpu_s": round(int(header[_FIT_TOTAL_NS]) / 1e9, 3),
            "samples_held": int(header[_HELD]),
            "samples_lost": int(header[_LOST]),
        }

    def close(self) -> dict[str, Any]:
        """Stop the learner, free the shared memory; return its figures."""
        figures = self.figures()
        self._block.header[_STOP] = 1
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():  # busy fitting: nothing of it is lost by ending it
            log.info("the identity learner was fitting at the stop; ended")
            self._process.kill()  # it holds no file, and leaves SIGTERM to us
            self._process.join(KILLED_TIMEOUT_S)
        shm = self._block.shm
        self._block.release()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
        return figures


def learner_main(spec: LearnerSpec) -> None:
    """Entry point of the learner process: poll for samples, fit, publish, until told to stop."""
    leave_stop_signals_to_parent()
    die_with_parent(signal.SIGTERM)
    configure_process_logging(spec.log_target, multiprocessing.current_process().name)
    try:
        lower_priority(19)  # the loop first: the learner takes what the cores have left
    except (psutil.Error, OSError) as error:
        log.warning("the identity learner runs at the normal priority: %s", error)
    _one_blas_thread()
    block = _Block(spec, shared_memory.SharedMemory(name=spec.name))
    try:
        _learn(block)
    finally:
        block.release()


def _one_blas_thread() -> None:
    """Keep numpy's BLAS to one thread in this process (a fit must not take both cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only a missed optimisation
        return
    threadpool_limits(1)


def _learn(block: _Block) -> None:
    """Read new samples every :data:`POLL_S`; fit every :data:`REFIT_SAMPLES` new ones."""
    spec = block.spec
    bank = SampleBank(spec.identities, spec.features)
    read, generation, fresh, version = 0, 0, 0, 0
    header = block.header
    while not header[_STOP]:
        time.sleep(POLL_S)
        if int(header[_GENERATION]) != generation:
            generation = int(header[_GENERATION])
            bank.clear()
            fresh = 0
        written = int(header[_WRITTEN])
        if written - read > spec.capacity:  # starved for minutes: the oldest are gone
            header[_LOST] += written - read - spec.capacity
            read = written - spec.capacity
        for index in range(read, written):
            slot = index % spec.capacity
            if int(block.generations[slot]) == generation:
                bank.add(block.features[slot].copy(), int(block.labels[slot]), block.times[slot])
                fresh += 1
        read = written
        header[_HELD] = int(bank.counts.sum())
        if fresh == 0 or (version > 0 and fresh < REFIT_SAMPLES):
            continue  # before the first model, try as soon as there is anything new
        fresh = 0
        started = time.process_time_ns()
        model = fit_appearance(*bank.arrays(), spec.identities, version + 1)
        spent = time.process_time_ns() - started
        header[_FIT_NS] = spent
        header[_FIT_TOTAL_NS] += spent
        if model is None or int(header[_GENERATION]) != generation:
            continue
        version += 1
        header[_FITS] = version
        _publish(block, model, version)


def _publish(block: _Block, model: AppearanceModel, version: int) -> None:
    """Write the model under the sequence lock, then its version."""
    header = block.header
    header[_MODEL_SEQ] += 1  # odd: being written
    block.weights[:] = model.weights
    block.bias[:] = model.bias
    block.accuracy[0] = model.accuracy
    block.samples[0] = model.samples
    header[_MODEL_SEQ] += 1
    header[_MODEL_VERSION] = version


def rules_view(
    keeper: IdentityKeeper, animals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return the last frame's ``animals`` as the experiments see them (what is unsure empty).

    With the (A, K) keypoints withheld (unknown, not lost) and the unnamed animals' rows as
    found (:attr:`~experiments.observation.Observation.unnamed_rows`; None when fewer than two).
    """
    withheld = keeper.withheld
    unnamed = unnamed_rows(animals, withheld) if withheld.any() else None
    return keeper.named(animals), withheld, unnamed


class CameraIdentities:
    """One multi-animal camera's identities: keeper, background learner and confidence file.

    ``min_likelihood``: keypoints below it make no patches; ``learn`` False: motion only.
    """

    def __init__(
        self,
        tracker: IdentityTracker,
        path: Any,
        individuals: tuple[str, ...],
        min_likelihood: float,
        learn: bool = True,
        keypoints: tuple[str, ...] = (),
    ) -> None:
        self.learner = (
            BackgroundLearner.start(tracker.max_animals, feature_count(), label=f" {path.name}")
            if learn
            else None
        )
        self.keeper = IdentityKeeper(tracker, self.learner, min_likelihood=min_likelihood)
        self.file = IdentityConfidenceWriter(path, individuals, keypoints)
        self.step = DurationHistogram()  # the identity step's cost on the loop

    @property
    def confidence(self) -> np.ndarray:
        """(A,) each identity's confidence in the last frame (NaN: not seen)."""
        return self.keeper.confidence

    def update(self, time_s: float, animals: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        """Return the frame's animals in identity order (see :meth:`IdentityKeeper.update`)."""
        started = time.perf_counter_ns()
        identified = self.keeper.update(time_s, animals, frame)
        self.step.add(time.perf_counter_ns() - started)
        return identified

    def method(self) -> dict[str, str]:
        """How the pose files' rows were assigned: for the pose table's metadata."""
        return {
            "identities": "motion and looks" if self.learner is not None else "motion",
            "merged_instance_repair": "on" if self.keeper.tracker.regroup else "off",
        }

    def write(self, frame_index: int) -> None:
        """Write the last frame's confidences (and unnamed animals) as frame ``frame_index``'s."""
        keeper = self.keeper
        self.file.write(frame_index, keeper.confidence, keeper.unnamed, keeper.withheld)

    def end_at(self, last_index: int) -> None:
        """Write the empty rows of the frames up to ``last_index`` (as the pose CSV's)."""
        self.file.end_at(last_index)

    def close(self) -> dict[str, Any]:
        """Stop the learner, close the file; return the figures for ``session.json``."""
        learner = self.learner.close() if self.learner is not None else None
        self.file.close()
        figures: dict[str, Any] = {
            "confidence_file": self.file.path.name,
            **self.keeper.counts.as_dict(),
            "learner": learner,  # None: APPEARANCE_IDENTITY = off
        }
        figures["identity_step_ms"] = self.step.figures()
        if self.file.error:
            figures["file_error"] = self.file.error
        return figures


class ClassIdentities:
    """One camera's identities from its model's classes, and their confidence file.

    ``individuals[i]`` (the pose files' name) is ``classes[i]``; ``path``: its identity.csv.
    """

    def __init__(self, path: Path, individuals: tuple[str, ...], classes: tuple[str, ...]) -> None:
        if len(individuals) != len(classes):
            raise ValueError(f"{len(individuals)} individuals for {len(classes)} classes")
        self.classes = classes
        self.individuals = individuals
        self.file = IdentityConfidenceWriter(path, individuals)
        self.confidence = np.full(len(classes), np.nan)  # the last frame's, per identity
        self.frames = 0
        self.frames_seen = np.zeros(len(classes), np.int64)  # frames each class was found in

    def update(self, animals: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        """Return the frame's animals (A, K, 3), in class order; keep their confidence (A,)."""
        self.frames += 1
        if confidence is None:
            self.confidence = np.full(len(self.classes), np.nan)
        else:
            self.confidence = np.asarray(confidence, np.float64).copy()
        self.frames_seen += np.isfinite(self.confidence)
        return animals

    def method(self) -> dict[str, str]:
        """How the pose files' rows were assigned: for the pose table's metadata."""
        return {"identities": "model classes", "merged_instance_repair": "off"}

    def write(self, frame_index: int) -> None:
        """Write the last frame's confidences as frame ``frame_index``'s row."""
        self.file.write(frame_index, self.confidence)

    def end_at(self, last_index: int) -> None:
        """Write the empty rows of the frames up to ``last_index`` (as the pose CSV's)."""
        self.file.end_at(last_index)

    def close(self) -> dict[str, Any]:
        """Close the file; return the figures for ``session.json``."""
        self.file.close()
        figures: dict[str, Any] = {
            "source": "model classes",
            "confidence_file": self.file.path.name,
            "classes": dict(zip(self.individuals, self.classes, strict=True)),
            "frames": self.frames,
            "frames_seen": dict(
                zip(self.individuals, (int(n) for n in self.frames_seen), strict=True)
            ),
        }
        if self.file.error:
            figures["file_error"] = self.file.error
        return figures
