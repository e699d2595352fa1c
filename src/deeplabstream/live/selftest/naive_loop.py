"""The baseline of the benchmark mode: the naive single-thread loop on the same model and frames.

Design: docs/outputs.md, "benchmark.json".
"""

from __future__ import annotations

import dataclasses
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.priority import inference_thread_count
from deeplabstream.core.timing import host_now_ns
from deeplabstream.experiments.observation import Observation
from deeplabstream.live.processes.analysis.experiment_report import run_summary
from deeplabstream.live.processes.analysis.experiment_slot import open_experiment_run
from deeplabstream.live.selftest.benchmark_mode import percentiles_ms
from deeplabstream.outputs.video import VideoWriter
from deeplabstream.pose.ensemble.members import member_rows
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import load_model, open_ensemble_estimator, open_estimator
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.settings.effective import CameraPlan, EffectiveCamera
from deeplabstream.settings.sections import CameraSettings, RecordingSettings, Settings

POOL_FRAMES = 100
DEFAULT_FPS = 30.0  # a camera that states no rate


@dataclass
class _Camera:
    """One camera as the naive loop sees it: a pool of frames due at a fixed rate."""

    name: str
    frames: list[np.ndarray]
    fps: float
    flip: bool
    limit: int  # frames that fall due in the run (as many as the app captured)
    model: EffectiveCamera | None = None  # its model(s), as the app runs them (None: bundled)
    next_index: int = 0  # the first frame not yet due-and-passed
    writer: NaiveWriter | None = None  # records every due frame when the session recorded
    analysed: int = 0
    skipped: int = 0
    end_to_end_ms: list[float] = field(default_factory=list)
    wait_ms: list[float] = field(default_factory=list)


class NaiveWriter:
    """One camera's video writer on a thread of its own, fed through an unbounded queue."""

    def __init__(
        self, path: Path, shape: tuple[int, ...], fps: float, recording: RecordingSettings
    ) -> None:
        channels = 1 if len(shape) == 2 else shape[2]
        self._video = VideoWriter(
            path,
            FrameGeometry(shape[0], shape[1], channels),
            recording.codec,
            fps,
            crf=recording.crf,
            preset=recording.preset,
            threads=recording.encoder_threads,
            flush_interval=recording.flush_interval,
        )
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="naive writer", daemon=True)
        self._thread.start()

    def put(self, pixels: np.ndarray, timestamp_s: float) -> None:
        """Queue a copy of ``pixels`` (the camera reuses its buffer)."""
        self._queue.put((pixels.copy(), timestamp_s))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            pixels, timestamp_s = item
            self._video.encode(self._video.frame_from(pixels), timestamp_s)

    def close(self) -> int:
        """Encode what is queued, finalise the file; the frames written."""
        self._queue.put(None)
        self._thread.join()
        self._video.close()
        return self._video.frames_written


def worker_threads(settings: Settings) -> int:
    """Return the thread count the inference worker uses for these settings (``[Pose] THREADS``)."""
    return inference_thread_count(settings.pose.threads)


def frame_pool(camera: CameraSettings, count: int) -> tuple[list[np.ndarray], float]:
    """Return the first ``count`` frames of ``camera`` (opened here) and its nominal rate."""
    options = camera.options
    if camera.source in ("synthetic", "video"):  # files and simulations need no waiting here
        options = dataclasses.replace(options, pacing="free")
    device = camera.camera_class()(camera.name, options)
    geometry = device.open()
    try:
        frames = []
        for _ in range(count):
            frame = np.empty(geometry.shape, geometry.dtype)
            if device.grab(frame) is None:
                break
            frames.append(frame)
        fps = device.nominal_fps or DEFAULT_FPS
    finally:
        device.close()
    return frames, fps


def _key(camera: _Camera) -> str:
    """Return the key of a camera's model(s): cameras that run the same share an estimator."""
    return camera.model.model_key if camera.model is not None else ""


def _estimator(
    camera: _Camera, descriptions: dict[Path | None, Any], backends: dict[Path | None, Any]
) -> PoseEstimator:
    """Return a camera's estimator: its model's, or its ensemble's (as the app runs it)."""
    shape = camera.frames[0].shape
    effective = camera.model
    paths = effective.models if effective is not None else (None,)
    alone = [open_estimator(descriptions[path], backends[path], shape) for path in paths]
    if len(alone) == 1:
        return alone[0]
    assert effective is not None
    ensemble = descriptions[paths[0]].keypoints
    rows = [
        member_rows(
            ensemble, descriptions[path], effective.keypoint_map if index else (), str(path)
        )
        for index, path in enumerate(paths)
    ]
    return open_ensemble_estimator(descriptions[paths[0]], alone, rows)


def run_naive_loop(
    plan: CameraPlan,
    frames_per_camera: dict[str, int],
    experiment: bool,
    stop_requested: Callable[[], bool] = lambda: False,
    *,
    record: bool = False,
) -> dict[str, Any]:
    """Run the naive loop for as many due frames per camera as the app captured; its figures.

    Each camera runs its model and flip from ``plan``; ``experiment`` adds the actions' latency,
    ``record`` a writer thread per camera (docs/outputs.md, "benchmark.json").
    """
    settings = plan.settings
    descriptions = {path: load_model(path) for path in plan.models}
    backends = {
        path: open_backend(
            description, settings.pose.backend, settings.pose.device, worker_threads(settings)
        )
        for path, description in descriptions.items()
    }
    for backend in backends.values():
        backend.warm_up(1)
    cameras: list[_Camera] = []
    for camera_settings in settings.cameras:
        due = frames_per_camera.get(camera_settings.name, 0)
        frames, fps = frame_pool(camera_settings, min(POOL_FRAMES, due))
        if frames:
            name = camera_settings.name
            limit = frames_per_camera[name]
            effective = plan.camera(name)
            cameras.append(_Camera(name, frames, fps, effective.flip, limit, model=effective))
    estimators = {
        (_key(c), c.frames[0].shape): _estimator(c, descriptions, backends) for c in cameras
    }
    stages: dict[str, list[float]] = {"preprocessing": [], "inference": [], "decoding": []}
    recorded: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        run = _open_experiment(settings, Path(folder)) if experiment else None
        if record:
            for camera in cameras:
                path = Path(folder) / f"{camera.name}.naive.mkv"
                shape = camera.frames[0].shape
                camera.writer = NaiveWriter(path, shape, camera.fps, settings.recording)
        try:
            elapsed = _loop(cameras, estimators, stages, run, stop_requested)
        finally:
            summary = _close_experiment(run)
            for camera in cameras:
                if camera.writer is not None:
                    recorded[camera.name] = camera.writer.close()
    for backend in backends.values():
        backend.close()
    analysed = sum(c.analysed for c in cameras)
    all_end_to_end = [v for c in cameras for v in c.end_to_end_ms]
    latency = {name: percentiles_ms(values) for name, values in stages.items()}
    latency["queue_wait"] = percentiles_ms([v for c in cameras for v in c.wait_ms])
    latency["end_to_end"] = percentiles_ms(all_end_to_end)
    if summary is not None:
        latency["closed_loop"] = summary["latency_ms"]["frame_to_command_written"]
    return {
        "analysed_fps": round(analysed / elapsed, 3) if elapsed > 0 else None,
        "latency_ms": latency,
        "duration_s": round(elapsed, 3),
        "threads": worker_threads(settings),
        "pool_frames": POOL_FRAMES,
        "records": record,
        "actions": summary["actions"] if summary is not None else None,
        "cameras": {
            c.name: {
                "due": min(c.next_index, c.limit),
                "analysed": c.analysed,
                "skipped": c.skipped,
                "recorded": recorded.get(c.name),
                "analysed_fps": round(c.analysed / elapsed, 3) if elapsed > 0 else None,
            }
            for c in cameras
        },
    }


def _loop(
    cameras: list[_Camera],
    estimators: dict[tuple[str, tuple[int, ...]], Any],
    stages: dict[str, list[float]],
    run: Any,
    stop_requested: Callable[[], bool],
) -> float:
    """Return the loop itself; returns its duration in seconds."""
    start_ns = host_now_ns()
    while not stop_requested():
        active = [c for c in cameras if c.next_index < c.limit]
        if not active:
            break
        now = host_now_ns()
        due = [c for c in active if _due_ns(c, c.next_index, start_ns) <= now]
        if not due:  # the loop waits for the camera, like a blocking grab
            wake = min(_due_ns(c, c.next_index, start_ns) for c in active)
            time.sleep(max(0.0, (wake - now) / 1e9))
            continue
        for camera in due:  # one camera after the other, as the 2021 loop grabbed them
            newest = _newest_due(camera, start_ns, host_now_ns())
            newest = min(camera.limit - 1, max(camera.next_index, newest))
            camera.skipped += newest - camera.next_index
            if camera.writer is not None:  # the camera delivered them all: all are recorded
                for index in range(camera.next_index, newest + 1):
                    pixels = camera.frames[index % len(camera.frames)]
                    camera.writer.put(pixels, index / camera.fps)
            camera.next_index = newest + 1
            due_ns = _due_ns(camera, newest, start_ns)
            grabbed_ns = host_now_ns()
            frame = camera.frames[newest % len(camera.frames)].copy()  # the driver's copy
            estimator = estimators[_key(camera), frame.shape]
            pose = estimator.estimate([frame], [camera.flip])[0]
            ensemble = estimator.last_frames[0] if estimator.last_frames else None
            ready_ns = host_now_ns()
            for stage, key in (("preprocessing", "preprocess"), ("inference", "inference")):
                stages[stage].append(estimator.last_timings[key] * 1e3)
            stages["decoding"].append(estimator.last_timings["decode"] * 1e3)
            if run is not None:
                observation = Observation(
                    time_s=newest / camera.fps,
                    camera=camera.name,
                    frame_index=newest,
                    keypoints=pose,
                    names=estimator.description.keypoints,
                    frame=frame,
                    host_time_s=due_ns / 1e9,
                    ensemble_std=None if ensemble is None else ensemble.std,
                )
                run.on_poses([observation], ready_ns)
            camera.analysed += 1
            camera.wait_ms.append((grabbed_ns - due_ns) / 1e6)
            camera.end_to_end_ms.append((ready_ns - due_ns) / 1e6)
    return (host_now_ns() - start_ns) / 1e9


def _due_ns(camera: _Camera, index: int, start_ns: int) -> int:
    return start_ns + round(index / camera.fps * 1e9)


def _newest_due(camera: _Camera, start_ns: int, now_ns: int) -> int:
    return int((now_ns - start_ns) / 1e9 * camera.fps)


def _open_experiment(settings: Settings, folder: Path) -> Any:
    return open_experiment_run(
        settings.experiment.name,
        dict(settings.devices),
        folder,
        settings_folder=settings.source_file.parent,
    )


def _close_experiment(run: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    run.stop()
    run.close_devices()
    return run_summary(run)
