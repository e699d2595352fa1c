"""Lab cameras: an emulated Basler at its highest rate, and an IBL-style three-camera rig.

Run ``python -m benchmarks.cameras [--duration S] [--max-rate-duration S] [--codec h264|ffv1]
[--quick] [--keep]``. pylon's camera emulator (``PYLON_CAMEMU=2``, set here) stands in for the
Basler cameras: the same driver stack and grab path as a real camera, with the emulator making
the images in the camera's process.

Two runs, each with the project's side and the baseline's one after the other (never at once):

* ``max_rate``: one emulated Basler, 640x480 mono8, ``FRAMERATE`` at the emulator's maximum (5000
  Hz) and the shortest exposure (100 µs), so the camera delivers as fast as the emulator can make
  frames, recorded for ``--max-rate-duration`` seconds (default 10).
* ``ibl_rig``: IBL's three-camera rig: two emulated Baslers, ``left`` 640x512 at 60 Hz and
  ``right`` 640x512 at 150 Hz, and the simulated arena ``body`` 640x512 at 30 Hz, recorded for
  ``--duration`` seconds (default 20).

**project** (``app``): the real app path, as ``DeepLabStream.py --recording-enabled`` runs it: a
capture process and a recorder process per camera, frames through shared-memory rings, the
camera's driver buffers taking up any delay. Figures from ``session.json``; every video is
decoded again to count its frames; the CPU of the whole process tree is sampled every second.

**baseline** (``naive loop``): one thread serves every camera in turn, as a single-threaded
program must: it takes each Basler's newest frame (``GrabStrategy_LatestImageOnly``; older ones
are overwritten in the driver) and the simulated arena's frame when due, and encodes each at
once with the same encoder options. Frames the camera made that the loop never took (gaps in the
camera's block IDs; a late arena frame) are lost. CPU: the whole benchmark process during the
loop (pylon's threads and the emulator included, as in the app's capture processes).

Figures per camera: frames captured (baseline: made by the camera), recorded, lost (the camera's
own drops plus frames not recorded), recorded as % of captured, frames in the video read back,
rate; per run: CPU mean and peak. Results: ``benchmarks/results/cameras.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import now_iso, print_table, rig_locked, save_result
from benchmarks.recording import count_video_frames, naive_writer, percent_of, run_project
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.hardware.simulator.arena import SimulatedArena
from deeplabstream.outputs.video import VideoWriter
from deeplabstream.settings import load_settings
from deeplabstream.settings.sections import CameraSettings, Settings

EMULATED = ("0815-0000", "0815-0001")
DEFAULT_DURATION_S, DEFAULT_MAX_RATE_S = 20.0, 10.0
QUICK_DURATION_S, QUICK_MAX_RATE_S = 6.0, 4.0
MAX_RATE_HZ, SHORTEST_EXPOSURE_US = 5000, 100


def max_rate_settings(codec: str) -> str:
    """One emulated Basler as fast as the emulator goes."""
    return (
        f"[Camera basler]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 640\nHEIGHT = 480\n"
        f"FRAMERATE = {MAX_RATE_HZ}\nEXPOSURE = {SHORTEST_EXPOSURE_US}\n"
        f"[Recording]\nCODEC = {codec}\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    )


def ibl_settings(codec: str) -> str:
    """IBL's rig: left 60 Hz and right 150 Hz (emulated Baslers), body 30 Hz (simulated)."""
    return (
        f"[Camera left]\nSOURCE = basler\nSERIAL = {EMULATED[0]}\nWIDTH = 640\nHEIGHT = 512\n"
        "FRAMERATE = 60\nEXPOSURE = 1000\n"
        f"[Camera right]\nSOURCE = basler\nSERIAL = {EMULATED[1]}\nWIDTH = 640\nHEIGHT = 512\n"
        "FRAMERATE = 150\nEXPOSURE = 1000\n"
        "[Camera body]\nSOURCE = synthetic\nWIDTH = 640\nHEIGHT = 512\nFRAMERATE = 30\n"
        "PIXEL_FORMAT = mono8\n"
        f"[Recording]\nCODEC = {codec}\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    )


# -- baseline: one thread takes every camera's newest frame and encodes it ----------------------


@dataclass
class NaiveSource:
    """One camera of the naive loop and its counters."""

    name: str
    writer: VideoWriter
    pixels: np.ndarray
    recorded: int = 0
    made: int = 0  # frames the camera made (Basler: block ID span; arena: frames that fell due)
    basler: Any = None  # pylon InstantCamera
    first_id: int | None = None
    last_id: int | None = None
    arena: SimulatedArena | None = None
    interval_s: float = 0.0
    next_due_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def serve(self, now_s: float) -> bool:
        """Take this camera's frame if one is there; True when one was encoded."""
        if self.basler is not None:
            return self._serve_basler(now_s)
        return self._serve_arena(now_s)

    def _serve_basler(self, now_s: float) -> bool:
        from pypylon import pylon

        result = self.basler.RetrieveResult(0, pylon.TimeoutHandling_Return)
        if result is None or not result.IsValid():
            return False
        try:
            if not result.GrabSucceeded():
                return False
            block = int(result.GetBlockID())
            self.first_id = block if self.first_id is None else self.first_id
            self.last_id = block
            with result.GetArrayZeroCopy() as pixels:
                np.copyto(self.pixels, pixels)
        finally:
            result.Release()
        self.writer.encode(self.writer.frame_from(self.pixels), now_s)
        self.recorded += 1
        return True

    def _serve_arena(self, now_s: float) -> bool:
        assert self.arena is not None
        if now_s < self.next_due_s:
            return False
        while now_s - self.next_due_s > self.interval_s:  # a whole interval late: overwritten
            self.made += 1
            self.next_due_s += self.interval_s
        self.arena.render_next(self.pixels)
        self.writer.encode(self.writer.frame_from(self.pixels), self.next_due_s)
        self.made += 1
        self.recorded += 1
        self.next_due_s += self.interval_s
        return True

    def finish(self) -> None:
        if self.basler is not None:
            self.basler.StopGrabbing()
            if self.first_id is not None and self.last_id is not None:
                self.made = self.last_id - self.first_id + 1
            self.basler.Close()
        self.writer.close()


def naive_source(camera: CameraSettings, settings: Settings, folder: Path) -> NaiveSource:
    """A naive-loop camera set up like the app's (same size, rate, exposure, encoder)."""
    options = camera.options
    writer, geometry = naive_writer(camera, settings, folder)
    source = NaiveSource(camera.name, writer, np.zeros(geometry.shape, np.uint8))
    if camera.source == "synthetic":
        source.arena = SimulatedArena(options.arena_params())
        source.interval_s = 1.0 / options.framerate
        return source
    from pypylon import pylon

    factory = pylon.TlFactory.GetInstance()
    info = next(d for d in factory.EnumerateDevices() if d.GetSerialNumber() == options.serial)
    basler = pylon.InstantCamera(factory.CreateDevice(info))
    basler.Open()
    basler.Width.Value, basler.Height.Value = options.width, options.height
    basler.PixelFormat.Value = "Mono8"
    basler.ExposureTimeAbs.Value = options.exposure  # the node the emulator obeys
    basler.AcquisitionFrameRateEnable.Value = True
    basler.AcquisitionFrameRateAbs.Value = options.framerate
    source.basler = basler
    return source


def run_baseline(folder: Path, settings: Settings, duration_s: float) -> dict[str, Any]:
    """The naive loop over the same cameras for ``duration_s``."""
    from pypylon import pylon

    folder.mkdir(parents=True, exist_ok=True)
    sources = [naive_source(camera, settings, folder) for camera in settings.cameras]
    me = psutil.Process()
    cpu_before = me.cpu_times()
    start = time.perf_counter()
    try:
        for source in sources:
            if source.basler is not None:
                source.basler.StartGrabbing(pylon.GrabStrategy_LatestImageOnly)
        while (now := time.perf_counter() - start) < duration_s:
            if not any([source.serve(now) for source in sources]):
                time.sleep(0.0005)  # nothing ready anywhere: do not spin a whole core
    finally:
        elapsed = time.perf_counter() - start
        cpu_after = me.cpu_times()
        for source in sources:
            source.finish()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    cameras = {}
    for source in sources:
        cameras[source.name] = {
            "captured": source.made,
            "recorded": source.recorded,
            "lost": source.made - source.recorded,
            "rate_fps": round(source.recorded / elapsed, 2),
            "video_frames": count_video_frames(source.writer.path),
        }
    return {"cameras": cameras, "cpu_percent": round(100.0 * cpu_s / elapsed, 1)}


# -- figures ------------------------------------------------------------------------------------


def camera_figures(run: str, name: str, app: dict[str, Any], naive: dict[str, Any]) -> list[Figure]:
    """One camera's rows."""
    key = f"{run}.{name}"
    lost = app["dropped_total"]
    return [
        Figure(
            f"{key}.captured",
            f"{name}: frames captured (made)",
            app["captured"],
            naive["captured"],
            compare=False,
        ),
        Figure(
            f"{key}.recorded",
            f"{name}: frames recorded",
            app["recorded"],
            naive["recorded"],
            compare=False,
        ),
        Figure(f"{key}.lost", f"{name}: frames lost", lost, naive["lost"]),
        Figure(
            f"{key}.recorded_percent",
            f"{name}: recorded, % of captured",
            percent_of(app["recorded"], app["captured"]),
            percent_of(naive["recorded"], naive["captured"]),
            higher_is_better=True,
        ),
        Figure(
            f"{key}.video_frames",
            f"{name}: frames in the video (read back)",
            app["video_frames"],
            naive["video_frames"],
            compare=False,
        ),
        Figure(
            f"{key}.fps",
            f"{name}: recorded rate",
            app["measured_fps"],
            naive["rate_fps"],
            unit="fps",
            higher_is_better=True,
        ),
    ]


def run_figures(run: str, app: dict[str, Any], naive: dict[str, Any]) -> list[Figure]:
    """Every row of one run: its cameras, then CPU."""
    figures = []
    for name, camera in app["cameras"].items():
        figures += camera_figures(run, name, camera, naive["cameras"][name])
    figures += [
        Figure(
            f"{run}.cpu.mean_percent",
            "CPU, mean (% of one core)",
            app["cpu"]["tree_mean_percent"],
            naive["cpu_percent"],
        ),
        Figure(
            f"{run}.cpu.peak_percent",
            "CPU, peak 1-s sample (% of one core)",
            app["cpu"]["tree_peak_percent"],
            None,
        ),
    ]
    return figures


def problems_of(run: str, app: dict[str, Any], naive: dict[str, Any]) -> list[str]:
    """Videos that do not hold exactly the frames said to be recorded; session errors."""
    problems = []
    for side, cameras in (("app", app["cameras"]), ("naive loop", naive["cameras"])):
        for name, camera in cameras.items():
            if camera["video_frames"] != camera["recorded"]:
                problems.append(
                    f"{run} {side} {name}: the video holds {camera['video_frames']} frames, "
                    f"{camera['recorded']} were recorded"
                )
    return problems + [f"{run} app error: {error}" for error in app["errors"]]


def one_run(folder: Path, run: str, text: str, duration_s: float) -> tuple[dict, dict]:
    """The app, then the naive loop, on the same cameras."""
    folder.mkdir(parents=True)
    (folder / "settings.ini").write_text(text, encoding="utf-8")
    settings = load_settings(folder / "settings.ini")
    with rig_locked(settings):  # both sides open the same cameras, one after the other
        print(f"{run}: app, {duration_s:g} s ...", flush=True)
        app = run_project(folder, settings, duration_s)
        print(f"{run}: naive loop, {duration_s:g} s ...", flush=True)
        naive = run_baseline(folder / "baseline", settings, duration_s)
    return app, naive


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, help="seconds of the three-camera run")
    parser.add_argument("--max-rate-duration", type=float, help="seconds of the max-rate run")
    parser.add_argument("--codec", choices=("h264", "ffv1"), default="h264")
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--keep", action="store_true", help="keep the videos (path is printed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Both runs, both sides each; print the tables; save ``benchmarks/results/cameras.json``."""
    args = parse_args(argv)
    os.environ["PYLON_CAMEMU"] = "2"  # before pylon starts, here and in the capture processes
    rig_s = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    max_s = args.max_rate_duration or (QUICK_MAX_RATE_S if args.quick else DEFAULT_MAX_RATE_S)
    started, machine = now_iso(), machine_description()
    folder = Path(tempfile.mkdtemp(prefix="dls-bench-cameras-"))
    runs = {
        "max_rate": (max_rate_settings(args.codec), max_s),
        "ibl_rig": (ibl_settings(args.codec), rig_s),
    }
    results: dict[str, tuple[dict, dict]] = {}
    try:
        for run, (text, seconds) in runs.items():
            results[run] = one_run(folder / run, run, text, seconds)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    figures, problems = [], []
    for run, (app, naive) in results.items():
        figures += run_figures(run, app, naive)
        problems += problems_of(run, app, naive)
    parameters = {
        "codec": args.codec,
        "durations_s": {run: seconds for run, (_, seconds) in runs.items()},
        "settings": {run: text for run, (text, _) in runs.items()},
    }
    path = save_result(
        "cameras",
        figures,
        started=started,
        machine=machine,
        details={"parameters": parameters, **{run: app for run, (app, _) in results.items()}},
        baseline_details={run: naive for run, (_, naive) in results.items()},
    )
    titles = {
        "max_rate": f"Emulated Basler at its top rate, 640x480 mono8, {max_s:g} s, {args.codec}",
        "ibl_rig": f"IBL rig (left 60 Hz, right 150 Hz: emulated Basler; body 30 Hz: simulated), "
        f"{rig_s:g} s, {args.codec}",
    }
    for run, title in titles.items():
        print_table(
            f"{title} (app: capture + recorder processes; naive loop: one thread)",
            [f for f in figures if f.key.startswith(run + ".")],
            machine,
            project="app",
            baseline="naive loop",
        )
        print("CPU per process, mean % of one core:")
        for label, percent in results[run][0]["cpu"]["per_process_mean_percent"].items():
            print(f"  {label:<28} {percent:6.1f}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"saved {path}" + (f"; files kept in {folder}" if args.keep else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
