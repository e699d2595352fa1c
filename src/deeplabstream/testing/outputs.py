"""An output run alone: its live half given one camera's analysed frames, then its export."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.core.timing import host_now_ns
from deeplabstream.live.processes.analysis.sinks import WRITE_LIMIT_S
from deeplabstream.outputs.interface import (
    OUTPUTS,
    AnalysedFrame,
    ExportContext,
    Output,
    OutputCamera,
    OutputSession,
    PoseSink,
)
from deeplabstream.testing.plugin_settings import PluginCheckError, plugin_settings, returns_within
from deeplabstream.transport.channel import FrameRecord


@dataclass(frozen=True)
class OutputRun:
    """What an output did in :func:`run_output`: sink ``figures``, ``exported`` files, ``error``."""

    figures: dict[str, Any] | None
    exported: list[Path] = field(default_factory=list)
    error: str | None = None


def run_output(
    output: str | type[Output],
    keys: Mapping[str, str] | None = None,
    *,
    session_dir: Path,
    keypoints: Sequence[str] = ("nose", "tail_base"),
    poses: np.ndarray | None = None,
    passed_over: Sequence[int] = (),
    camera: str = "arena",
    settings_folder: Path | None = None,
    export: bool = True,
) -> OutputRun:
    """Give ``output`` one camera's analysed frames as the inference worker does, then export.

    ``output`` is its name or class; ``poses`` (frames, animals, keypoints, 3), None: ten frames of
    one animal walking right; ``session_dir`` is made if absent. Raises :class:`PluginCheckError`
    for a broken rule of the output interface (docs/plugins.md, "Testing a plugin alone").
    """
    session_dir.mkdir(parents=True, exist_ok=True)
    if poses is None:
        poses = walking(len(keypoints))
    with using_settings_folder(settings_folder):
        if isinstance(output, str):
            cls, label = OUTPUTS.get(output, settings_folder), f"output {output!r}"
        else:
            cls, label = output, f"output {output.__name__}"
        settings = plugin_settings(
            cls.settings_class, keys, settings_folder=settings_folder, section=f"Output {label}"
        )
        plugin = cls(settings)
        one = OutputCamera(
            camera, camera, session_dir, tuple(keypoints),
            multi_animal=poses.shape[1] > 1, max_animals=poses.shape[1],
        )  # fmt: skip
        live = plugin.open_live(OutputSession(session_dir, "", (one,)))
        sink = live.camera_sink(one) if live is not None else None
        figures = None
        if sink is not None:
            figures = _feed(sink, label, poses, set(passed_over))
        if live is not None:
            live.close()
        error = live.error if live is not None else None
        files = plugin.export(ExportContext(session_dir, True, False)) if export else []
    return OutputRun(figures, list(files), error)


def walking(keypoints: int, frames: int = 10) -> np.ndarray:
    """Return poses of one animal walking right, every keypoint seen: (frames, 1, K, 3)."""
    poses = np.zeros((frames, 1, keypoints, 3), np.float32)
    poses[..., 0] = 10.0 * np.arange(frames)[:, None, None] + 5.0 * np.arange(keypoints)
    poses[..., 1] = 50.0
    poses[..., 2] = 0.9
    return poses


def _feed(sink: PoseSink, label: str, poses: np.ndarray, passed_over: set[int]) -> dict[str, Any]:
    """Give ``sink`` each frame, in place as the worker does; return what its close said."""
    frame = AnalysedFrame()
    frame.animals = np.empty(poses.shape[1:], np.float32)
    for index in range(len(poses)):
        record = FrameRecord(0, index, index, index, math.nan, host_now_ns())
        if index in passed_over:
            _timed(label, "write_not_analysed", lambda r=record: sink.write_not_analysed(r))
            continue
        frame.record, frame.seq = record, index
        frame.animals[...] = poses[index]  # refilled in place: a sink keeps nothing of it
        _timed(label, "write", lambda: sink.write(frame))
    figures = sink.close(None) or {}
    try:
        json.dumps(figures)
    except (TypeError, ValueError) as error:
        raise PluginCheckError(
            f"{label}: close() returned {figures!r}, which session.json cannot hold ({error})"
        ) from None
    return figures


def _timed(label: str, what: str, call: Any) -> None:
    returns_within(
        label,
        f"sink's {what}",
        WRITE_LIMIT_S,
        call,
        f"The worker stops giving frames to one that has not returned after {WRITE_LIMIT_S:g} "
        "s. Append a row, nothing slower",
    )
