"""Recording two simulated cameras for a minute: the app's process pipeline against a naive loop.

Run ``python -m benchmarks.recording [--duration S] [--codec h264|ffv1] [--quick] [--keep]``.

* **project**: the real app path. A settings file with two synthetic cameras (``colour``: 640x480
  bgr8 at 30 fps; ``mono``: 640x512 mono8 at 150 fps) is loaded and run by
  :class:`live.session.live.LiveSession` with recording for ``--duration`` seconds: a capture
  process and a recorder process per camera, frames through shared-memory rings. Afterwards the
  figures come from ``session.json``; every video is decoded again with PyAV to count its frames,
  the CPU use of the whole process tree is sampled every second with psutil, and the session folder
  is measured.
* **baseline** (same run, afterwards, same duration, cameras, codec and encoder options): the
  naive single-thread loop of the 2021 system. One thread renders each camera's frame at its
  deadline (``SimulatedArena``) and encodes it into that camera's ``VideoWriter`` right away. A
  frame whose deadline has passed by more than one frame interval when the loop gets to it is
  dropped (a real camera would have overwritten it); dropped frames are not rendered.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil

from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.machine import machine_description
from deeplabstream.hardware.simulator.arena import SimulatedArena
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.outputs.session_record import CameraRecord, read_session_record
from deeplabstream.outputs.video import VideoWriter, video_file_name
from deeplabstream.settings import load_settings
from deeplabstream.settings.sections import CameraSettings, Settings

DEFAULT_DURATION_S = 60.0
QUICK_DURATION_S = 10.0
CPU_SAMPLE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class CameraPlan:
    """One simulated camera of the benchmark."""

    name: str
    width: int
    height: int
    fps: float
    pixel_format: str
    seed: int

    def section(self) -> str:
        """Its ``[Camera NAME]`` section."""
        return (
            f"[Camera {self.name}]\nSOURCE = synthetic\nWIDTH = {self.width}\n"
            f"HEIGHT = {self.height}\nFRAMERATE = {self.fps:g}\n"
            f"PIXEL_FORMAT = {self.pixel_format}\nSEED = {self.seed}\n"
        )


CAMERAS = (
    CameraPlan("colour", 640, 480, 30.0, "bgr8", seed=1),
    CameraPlan("mono", 640, 512, 150.0, "mono8", seed=7),
)


def settings_text(codec: str) -> str:
    """The settings file of the benchmark (disk-space limits off, as in the tests)."""
    cameras = "\n".join(camera.section() for camera in CAMERAS)
    return (
        "[Streaming]\nBUFFER_SECONDS = 2.0\n\n"
        f"{cameras}\n"
        f"[Recording]\nCODEC = {codec}\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n\n"
        "[Output]\nDIRECTORY = sessions\n"
    )


def write_settings(folder: Path, codec: str) -> Path:
    """Write ``settings.ini`` into ``folder`` and return its path."""
    path = folder / "settings.ini"
    path.write_text(settings_text(codec), encoding="utf-8")
    return path


# -- measurements ------------------------------------------------------------------------------


def count_video_frames(path: Path) -> int:
    """Frames in a video file, by decoding every one of them with PyAV."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def folder_bytes(folder: Path) -> int:
    """Total size of the files in ``folder`` (recursively)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _process_name(process: psutil.Process) -> str:
    """``resource_tracker`` for multiprocessing's helper, else the executable's name."""
    if any("resource_tracker" in part for part in process.cmdline()):
        return "resource_tracker"
    return process.name()


class CpuMonitor:
    """Samples the CPU time of a process and all its descendants every second (a thread)."""

    def __init__(self, root_pid: int, interval_s: float = CPU_SAMPLE_INTERVAL_S) -> None:
        self.root = psutil.Process(root_pid)
        self.interval_s = interval_s
        self.samples_percent: list[float] = []  # whole tree, % of one core, per interval
        self.cpu_seconds: dict[int, float] = {}  # per process, over the monitored time
        self.names: dict[int, str] = {}  # what psutil calls each process
        self.labels: dict[int, str] = {}  # roles, filled in by the caller
        self._processes: dict[int, psutil.Process] = {root_pid: self.root}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-monitor", daemon=True)
        self._started = self._stopped = 0.0

    def start(self) -> None:
        """Begin sampling."""
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        self._stopped = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        """Seconds between start and stop."""
        return max(1e-9, (self._stopped or time.monotonic()) - self._started)

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            self._processes.setdefault(child.pid, child)
        return [self._processes[p.pid] for p in [self.root, *children]]

    def _cpu_times(self) -> dict[int, float]:
        times = {}
        for process in self._tree():
            try:
                with process.oneshot():
                    cpu = process.cpu_times()
                    if process.pid not in self.names:
                        self.names[process.pid] = _process_name(process)
                times[process.pid] = cpu.user + cpu.system
            except psutil.Error:  # ended between the listing and the reading
                continue
        return times

    def _run(self) -> None:
        previous, previous_t = self._cpu_times(), time.monotonic()
        while True:
            stopping = self._stop.wait(self.interval_s)
            current, now = self._cpu_times(), time.monotonic()
            total = 0.0
            for pid, seconds in current.items():
                delta = max(0.0, seconds - previous.get(pid, 0.0))
                self.cpu_seconds[pid] = self.cpu_seconds.get(pid, 0.0) + delta
                total += delta
            self.samples_percent.append(round(100.0 * total / max(now - previous_t, 1e-9), 1))
            previous, previous_t = current, now
            if stopping:
                return

    def summary(self) -> dict[str, Any]:
        """Mean and peak of the whole tree, and each process's mean, in % of one core."""
        elapsed = self.elapsed_s
        per_process: dict[str, float] = {}
        for pid, seconds in sorted(self.cpu_seconds.items(), key=lambda item: -item[1]):
            label = self.labels.get(pid) or f"{self.names.get(pid, '?')} (pid {pid})"
            per_process[label] = round(100.0 * seconds / elapsed, 1)
        samples = self.samples_percent
        return {
            "tree_mean_percent": round(100.0 * sum(self.cpu_seconds.values()) / elapsed, 1),
            "tree_peak_percent": max(samples) if samples else None,
            "per_process_mean_percent": per_process,
            "samples_percent": samples,
            "seconds": round(elapsed, 1),
        }


# -- project: the app's stream ---------------------------------------------------------------


def process_labels(session: Path | None) -> dict[int, str]:
    """Process id -> role (``capture:NAME``, ``recorder:NAME``) from the running session.json.

    Read while the stream runs: the final session.json no longer lists the recorders.
    """
    if session is None:
        return {}
    info = read_session_record(session)
    return {pid: name for name, pid in info.processes.items() if pid is not None}


def run_stream(settings: Settings, output: Path, duration_s: float, monitor: CpuMonitor) -> Path:
    """Stream and record for ``duration_s`` (counted from the cameras' start); the session."""
    stream = LiveSession(settings, output_dir=output)
    runner: SessionRunner | None = None
    try:
        stream.open()
        stream.start_recording()
        stream.start()
        monitor.start()
        monitor.labels.update(process_labels(stream.session_dir))
        runner = SessionRunner(stream, duration_s=duration_s, status_out=None)
        runner.run_headless()
    finally:
        monitor.stop()
        stream.stop(runner.stop_reason if runner and runner.stop_reason else "benchmark over")
    assert stream.session_dir is not None
    return stream.session_dir


def project_camera(session: Path, name: str, entry: CameraRecord) -> dict[str, Any]:
    """One camera's figures from ``session.json``, with its video's frames counted."""
    videos = [session / r.video for r in entry.recordings if r.video]
    return {
        "nominal_fps": entry.nominal_fps,
        "measured_fps": entry.measured_fps,
        "captured": entry.frames_captured,
        "recorded": entry.frames_recorded,
        "lost_in_recording": entry.frames_lost_in_recording,
        "dropped_by_camera": entry.frames_dropped_by_camera,
        "dropped_total": entry.frames_dropped,
        "video_files": [v.name for v in videos],
        "video_frames": sum(count_video_frames(v) for v in videos),
    }


def run_project(folder: Path, settings: Settings, duration_s: float) -> dict[str, Any]:
    """The app's path: figures per camera, CPU use of the process tree, session size."""
    monitor = CpuMonitor(os.getpid())
    began = time.monotonic()
    session = run_stream(settings, folder / "sessions", duration_s, monitor)
    wall_s = time.monotonic() - began
    info = read_session_record(session)
    return {
        "session_dir": str(session),
        "status": info.status,
        "stop_reason": info.stop_reason,
        "errors": list(info.errors),
        "wall_s_including_start_and_stop": round(wall_s, 1),
        "cameras": {name: project_camera(session, name, e) for name, e in info.cameras.items()},
        "cpu": monitor.summary(),
        "session_bytes": folder_bytes(session),
    }


# -- baseline: one thread renders and encodes ---------------------------------------------------


@dataclass
class NaiveCamera:
    """One camera of the naive loop: its simulation, its writer and its counters."""

    name: str
    interval_s: float
    arena: SimulatedArena
    writer: VideoWriter
    pixels: np.ndarray
    next_index: int = 0
    recorded: int = 0
    dropped: int = 0
    late_s: list[float] = field(default_factory=list)

    def due_s(self) -> float:
        """When its next frame is due, in seconds from the loop's start."""
        return self.next_index * self.interval_s

    def record(self, due_s: float, late_s: float) -> None:
        """Render the due frame and encode it right away."""
        self.arena.render_next(self.pixels)
        self.writer.encode(self.writer.frame_from(self.pixels), due_s)
        self.late_s.append(late_s)
        self.recorded += 1
        self.next_index += 1

    def drop(self) -> None:
        """The frame was overwritten by the camera before the loop came to it."""
        self.dropped += 1
        self.next_index += 1


def naive_writer(
    camera: CameraSettings, settings: Settings, folder: Path
) -> tuple[VideoWriter, FrameGeometry]:
    """A naive loop's video writer for ``camera``, with the app's encoder options."""
    options, recording = camera.options, settings.recording
    geometry = FrameGeometry.for_pixel_format(options.width, options.height, options.pixel_format)
    writer = VideoWriter(
        folder / video_file_name(camera.name, recording.codec),
        geometry,
        recording.codec,
        options.framerate,
        crf=recording.crf,
        preset=recording.preset,
        threads=recording.encoder_threads,
        flush_interval=recording.flush_interval,
    )
    return writer, geometry


def naive_camera(camera: CameraSettings, settings: Settings, folder: Path) -> NaiveCamera:
    """A camera of the naive loop, with the same simulation and encoder options as the app."""
    options = camera.options
    writer, geometry = naive_writer(camera, settings, folder)
    return NaiveCamera(
        name=camera.name,
        interval_s=1.0 / options.framerate,
        arena=SimulatedArena(options.arena_params()),
        writer=writer,
        pixels=np.zeros(geometry.shape, np.uint8),
    )


def naive_loop(cameras: list[NaiveCamera], duration_s: float) -> float:
    """Serve every camera's deadlines from one thread for ``duration_s``; CPU % of one core."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    while True:
        camera = min(cameras, key=NaiveCamera.due_s)
        due_s = camera.due_s()
        if due_s >= duration_s:
            break
        late_s = time.perf_counter() - start - due_s
        if late_s < 0:
            time.sleep(-late_s)
            late_s = 0.0
        if late_s > camera.interval_s:
            camera.drop()
        else:
            camera.record(due_s, late_s)
    elapsed = time.perf_counter() - start
    return round(100.0 * (time.thread_time() - cpu_start) / elapsed, 1)


def run_baseline(folder: Path, settings: Settings, duration_s: float) -> dict[str, Any]:
    """The naive loop over the same cameras: figures per camera, CPU use, folder size."""
    folder.mkdir(parents=True, exist_ok=True)
    cameras = [naive_camera(camera, settings, folder) for camera in settings.cameras]
    try:
        cpu_percent = naive_loop(cameras, duration_s)
    finally:
        for camera in cameras:
            camera.writer.close()
    results = {}
    for camera in cameras:
        late_ms = np.asarray(camera.late_s) * 1e3
        results[camera.name] = {
            "due": camera.recorded + camera.dropped,
            "recorded": camera.recorded,
            "dropped": camera.dropped,
            "rate_fps": round(camera.recorded / duration_s, 3),
            "late_ms_p50": round(float(np.percentile(late_ms, 50)), 3) if late_ms.size else None,
            "late_ms_max": round(float(late_ms.max()), 3) if late_ms.size else None,
            "video_frames": count_video_frames(camera.writer.path),
        }
    return {"cameras": results, "cpu_percent": cpu_percent, "folder_bytes": folder_bytes(folder)}


# -- report ------------------------------------------------------------------------------------


def percent_of(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole`` (None when ``whole`` is 0)."""
    return round(100.0 * part / whole, 2) if whole else None


def camera_figures(name: str, project: dict[str, Any], baseline: dict[str, Any]) -> list[Figure]:
    """The table rows of one camera."""
    return [
        Figure(
            f"{name}.captured",
            f"{name} frames captured (baseline: due)",
            project["captured"],
            baseline["due"],
            compare=False,
        ),
        Figure(
            f"{name}.recorded",
            f"{name} frames recorded",
            project["recorded"],
            baseline["recorded"],
            compare=False,
        ),
        Figure(
            f"{name}.recorded_percent",
            f"{name} recorded, % of captured (baseline: of due)",
            percent_of(project["recorded"], project["captured"]),
            percent_of(baseline["recorded"], baseline["due"]),
            higher_is_better=True,
        ),
        Figure(
            f"{name}.video_frames",
            f"{name} frames in the video (read back)",
            project["video_frames"],
            baseline["video_frames"],
            compare=False,
        ),
        Figure(
            f"{name}.lost_in_recording",
            f"{name} frames lost in recording",
            project["lost_in_recording"],
            None,
        ),
        Figure(
            f"{name}.dropped_by_camera",
            f"{name} frames dropped by camera",
            project["dropped_by_camera"],
            None,
        ),
        Figure(
            f"{name}.missing",
            f"{name} frames missing (baseline: dropped)",
            project["dropped_total"],
            baseline["dropped"],
        ),
        Figure(
            f"{name}.fps",
            f"{name} measured rate",
            project["measured_fps"],
            baseline["rate_fps"],
            unit="fps",
            higher_is_better=True,
        ),
    ]


def all_figures(project: dict[str, Any], baseline: dict[str, Any]) -> list[Figure]:
    """Every table row: cameras, CPU, disk."""
    figures = []
    for name in project["cameras"]:
        figures += camera_figures(name, project["cameras"][name], baseline["cameras"][name])
    cpu = project["cpu"]
    figures += [
        Figure(
            "cpu.mean_percent",
            "CPU, mean (% of one core)",
            cpu["tree_mean_percent"],
            baseline["cpu_percent"],
        ),
        Figure(
            "cpu.peak_percent",
            "CPU, peak 1-s sample (% of one core)",
            cpu["tree_peak_percent"],
            None,
        ),
        Figure(
            "disk.megabytes",
            "folder size",
            round(project["session_bytes"] / 1e6, 1),
            round(baseline["folder_bytes"] / 1e6, 1),
            unit="MB",
            compare=False,
        ),
    ]
    return figures


def consistency_problems(project: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Videos whose decoded frame count differs from the frames said to be recorded."""
    problems = []
    for side, cameras in (("project", project["cameras"]), ("baseline", baseline["cameras"])):
        for name, camera in cameras.items():
            if camera["video_frames"] != camera["recorded"]:
                problems.append(
                    f"{side} {name}: the video holds {camera['video_frames']} frames but "
                    f"{camera['recorded']} were recorded"
                )
    return problems + [f"project error: {error}" for error in project["errors"]]


def print_process_cpu(project: dict[str, Any]) -> None:
    """The mean CPU use of each process of the app."""
    print("CPU per process, mean % of one core:")
    for label, percent in project["cpu"]["per_process_mean_percent"].items():
        print(f"  {label:<28} {percent:6.1f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds of streaming per side (default {DEFAULT_DURATION_S:g}, quick "
        f"{QUICK_DURATION_S:g})",
    )
    parser.add_argument("--codec", choices=("h264", "ffv1"), default="h264")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S:g} s per side")
    parser.add_argument("--keep", action="store_true", help="keep the videos (path is printed)")
    return parser.parse_args(argv)


def run(folder: Path, duration_s: float, codec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The project, then the baseline, one after the other (never at the same time)."""
    settings = load_settings(write_settings(folder, codec))
    print(f"recording: project (app stream), {duration_s:g} s, {codec} ...", flush=True)
    project = run_project(folder, settings, duration_s)
    print(f"recording: baseline (naive single-thread loop), {duration_s:g} s ...", flush=True)
    baseline = run_baseline(folder / "baseline", settings, duration_s)
    return project, baseline


def main(argv: list[str] | None = None) -> int:
    """Run both sides, print the table, save ``benchmarks/results/recording.json``."""
    args = parse_args(argv)
    duration_s = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    started, machine = now_iso(), machine_description()
    folder = Path(tempfile.mkdtemp(prefix="dls-bench-recording-"))
    try:
        project, baseline = run(folder, duration_s, args.codec)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    figures = all_figures(project, baseline)
    parameters = {
        "duration_s": duration_s,
        "codec": args.codec,
        "settings": settings_text(args.codec),
    }
    path = save_result(
        "recording",
        figures,
        started=started,
        machine=machine,
        details={"parameters": parameters, **project},
        baseline_details=baseline,
    )
    print_table(
        f"Recording 2 cameras for {duration_s:g} s, {args.codec} (project: app stream with "
        "capture + recorder processes; baseline: single-thread render-and-encode loop)",
        figures,
        machine,
        project="app",
        baseline="naive loop",
    )
    print_process_cpu(project)
    problems = consistency_problems(project, baseline)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"saved {path}" + (f"; files kept in {folder}" if args.keep else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
