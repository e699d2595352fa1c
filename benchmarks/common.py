"""Helpers shared by the benchmarks: percentiles, machine description, JSON results, tables.

Every benchmark reports a list of :class:`Figure`: one measured value of the project beside the
same value measured for the baseline in the same run. :func:`save_result` writes them to
``benchmarks/results/<name>.json`` and :func:`print_table` prints them aligned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.device_lock import DeviceBusyError
from deeplabstream.core.figures import Figure, table_lines
from deeplabstream.core.machine import describe_machine_line

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PERCENTILES = (50, 95, 99)


def now_iso() -> str:
    """The local time now, ISO 8601 with the offset (the ``started`` key)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def summarize_ms(samples_ns: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """Count, mean, p50/p95/p99 and max of durations given in ns, in ms (rounded to 1 us)."""
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if values.size == 0:
        return {"count": 0}
    summary: dict[str, float | int] = {"count": int(values.size)}
    summary["mean"] = round(float(values.mean()), 3)
    for percentile, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{percentile}"] = round(float(value), 3)
    summary["max"] = round(float(values.max()), 3)
    return summary


def save_result(
    name: str,
    figures: Iterable[Figure],
    *,
    started: str,
    machine: dict[str, Any],
    details: dict[str, Any] | None = None,
    baseline_details: dict[str, Any] | None = None,
    folder: Path = RESULTS_DIR,
) -> Path:
    """Write ``<folder>/<name>.json`` (``benchmarks/results`` by default); return its path.

    ``results``/``baseline``/``ratios`` map each figure's key to its value; ``details`` and
    ``baseline_details`` (raw counts, per-process figures, parameters) go under the key
    ``details`` inside ``results`` and ``baseline``.
    """
    figures = list(figures)
    results: dict[str, Any] = {f.key: f.value for f in figures}
    baseline: dict[str, Any] = {f.key: f.baseline for f in figures}
    if details:
        results["details"] = details
    if baseline_details:
        baseline["details"] = baseline_details
    data = {
        "benchmark": name,
        "machine": machine,
        "started": started,
        "results": results,
        "baseline": baseline,
        "ratios": {f.key: f.ratio for f in figures},
        # How to show each figure (benchmarks/report.py writes docs/benchmarks.md from these).
        "figures": [
            {"key": f.key, "label": f.label, "unit": f.unit, "goal": f.goal} for f in figures
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_table(
    title: str,
    figures: Iterable[Figure],
    machine: dict[str, Any],
    *,
    project: str = "project",
    baseline: str = "baseline",
) -> None:
    """Print a title, the machine and the figures beside their baselines."""
    print()
    print(title)
    print(f"machine: {describe_machine_line(machine)}")
    print()
    for line in table_lines(figures, project, baseline):
        print(line)
    print(flush=True)


@contextmanager
def rig_locked(settings: Any, *, devices: bool = True) -> Iterator[None]:
    """Hold the locks of the cameras and devices ``settings`` name while a benchmark uses them.

    A camera or board in use by another DeepLabStream ends the benchmark with the refusal's
    message (naming the device and its holder), never a traceback; nothing has started then.
    """
    from deeplabstream.live.session.device_locks import lock_session_devices

    try:
        locks = lock_session_devices(settings, devices=devices)
    except DeviceBusyError as error:
        raise SystemExit(f"Benchmark not run: {error}") from None
    try:
        yield
    finally:
        locks.release()


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """A video's first ``count`` frames as the app's video camera delivers them (BGR uint8)."""
    from deeplabstream.hardware.cameras.video import VideoCamera, VideoSettings

    camera = VideoCamera(path.stem, VideoSettings(path=path, pacing="free"))
    out = np.empty(camera.open().shape, np.uint8)
    frames: list[np.ndarray] = []
    try:
        while len(frames) < count and camera.grab(out) is not None:
            frames.append(out.copy())
    finally:
        camera.close()
    return frames


def onnx_cpu_session(model: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads, as a framework opens one.

    ONNX Runtime's defaults otherwise (idle pool threads spin): the baseline a framework's own
    reader runs, not the project's tuned session.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
