"""The loop's deadline, frame by frame, in the inference worker: misses and the stage to blame.

docs/performance.md, "The loop's deadline".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deeplabstream.core.timing import DurationHistogram

STAGES = ("wait", "transport", "inference", "experiment", "output")
#: Which stage a frame's miss is attributed to, as ``pose_timing.csv`` and pose records carry
#: it: 0 is "on time", i is ``STAGES[i - 1]``.
ON_TIME = 0
#: The code of a miss blamed on the model (``inference``).
INFERENCE = STAGES.index("inference") + 1
#: The parts of a two-stage model's time that are not stages of its own.
PREPROCESS_PART, OTHER_PART = "preprocess", "other"
#: Stages a model times that are off the frame's path (never blamed for its miss).
OFF_PATH_STAGES = ("refresh",)


def model_parts(stages: tuple[str, ...]) -> tuple[str, ...]:
    """Return the parts a model's ``inference`` time splits into; () for a model of one stage."""
    on_path = tuple(s for s in stages if s not in OFF_PATH_STAGES)
    return (PREPROCESS_PART, *on_path, OTHER_PART) if on_path else ()


def inference_parts(
    timings: Mapping[str, float], stage_timings: Mapping[str, float]
) -> dict[str, float]:
    """Return a frame's model time (seconds) per part of :func:`model_parts`, plus ``other``."""
    parts = {PREPROCESS_PART: timings.get("preprocess", 0.0)}
    staged = 0.0
    for stage, seconds in stage_timings.items():
        if stage not in OFF_PATH_STAGES:
            parts[stage] = seconds
            staged += seconds
    model = timings.get("inference", 0.0) + timings.get("decode", 0.0)
    parts[OTHER_PART] = max(0.0, model - staged)
    return parts


def stage_times_ns(
    arrived: int,
    worker_free: int,
    picked: int,
    model_ns: int,
    ready: int,
    decided: int = 0,
    written: int = 0,
) -> tuple[int, int, int, int, int]:
    """Return a frame's time in each of :data:`STAGES` (ns), from its times on the host clock.

    ``decided`` and ``written`` are 0 without an experiment or an action; ``transport`` is never
    negative.
    """
    wait = max(0, min(worker_free, picked) - arrived)
    transport = max(0, ready - arrived - wait - model_ns)
    experiment = decided - ready if decided else 0
    output = written - decided if written and decided else 0
    return wait, transport, model_ns, experiment, output


def longest(durations: Sequence[float]) -> int:
    """Return the index of the longest of ``durations`` (the first of equals)."""
    return max(range(len(durations)), key=durations.__getitem__)


def blamed_stage(stages: tuple[int, ...]) -> int:
    """Return the code (1-based index in :data:`STAGES`) of the stage that took the longest."""
    return 1 + longest(stages)


@dataclass
class DeadlineAccount:
    """One camera's deadline (None: frames are timed, never judged) and its frames' misses."""

    deadline_ns: int | None
    checked: int = 0
    misses: int = 0
    by_stage: list[int] = field(default_factory=lambda: [0] * len(STAGES))
    end_to_end: DurationHistogram = field(default_factory=DurationHistogram)
    #: The model's parts (:func:`model_parts`), for a model in several stages; () for others.
    parts: tuple[str, ...] = ()
    #: The misses blamed on ``inference``, per part.
    by_part: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start every part's count at 0."""
        self.by_part = [0] * len(self.parts)

    def blame_part(self, parts_s: Mapping[str, float]) -> str:
        """Count an ``inference`` miss for its longest part and return it (empty: no parts)."""
        if not self.parts:
            return ""
        index = longest([parts_s.get(part, 0.0) for part in self.parts])
        self.by_part[index] += 1
        return self.parts[index]

    def add(
        self,
        arrived: int,
        worker_free: int,
        picked: int,
        model_ns: int,
        ready: int,
        decided: int = 0,
        written: int = 0,
    ) -> int:
        """Judge one frame; return :data:`ON_TIME` or the code of the stage blamed for its miss."""
        took = (written or decided or ready) - arrived
        self.end_to_end.add(took)
        self.checked += 1
        if self.deadline_ns is None or took <= self.deadline_ns:
            return ON_TIME
        stages = stage_times_ns(arrived, worker_free, picked, model_ns, ready, decided, written)
        code = blamed_stage(stages)
        self.misses += 1
        self.by_stage[code - 1] += 1
        return code

    def figures(self) -> dict[str, Any]:
        """Return what ``session.json`` says about this camera's deadline."""
        by_part = dict(zip(self.parts, self.by_part, strict=True)) if self.parts else None
        return deadline_figures(
            self.deadline_ns,
            self.checked,
            self.misses,
            self.by_stage,
            self.end_to_end.figures(),
            by_part,
        )


def deadline_figures(
    deadline_ns: int | None,
    checked: int,
    misses: int,
    by_stage: list[int],
    end_to_end_ms: dict[str, float] | None,
    by_part: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Return a camera's deadline figures (the worker's, or rebuilt from its timing file)."""
    figures = {
        "deadline_ms": None if deadline_ns is None else round(deadline_ns / 1e6, 3),
        "frames_checked": checked,
        "misses": misses,
        "misses_by_stage": dict(zip(STAGES, by_stage, strict=True)),
        "end_to_end_ms": end_to_end_ms,
    }
    if by_part is not None:
        figures["inference_misses_by_part"] = by_part
    return figures


def stage_name(code: int) -> str:
    """Return the name of a stage code; empty for :data:`ON_TIME`."""
    return STAGES[code - 1] if code else ""
