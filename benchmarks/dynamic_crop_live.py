"""Dynamic cropping live at a high camera rate: the app on the open-field video, crop on vs off.

    python -m benchmarks.dynamic_crop --live [--fps F] [--frames N] [--rounds R] [--threads T]
                                             [--quick]

The app itself, as a user runs it: ``DeepLabStream.py --headless --pose-enabled --frames N``
with one camera, ``SOURCE = video`` playing the open-field video
(``../shared/data/dlc-openfield/videos/m3v1mp4.mp4``, 640x480, 2330 frames) with
``PACING = native``, and DeepLabCut 3.0's ``cspnext_s`` export as ``[Pose] MODEL_PATH``,
``[Pose] DYNAMIC_CROP = on`` (the project) and ``off`` (the baseline, the whole frame).

**The rate.** A video camera delivers each frame at its own timestamp (``PACING = native``);
``SOURCE = video`` has no key to play a file faster than it was recorded (the clip is 30 fps).
So the benchmark plays a copy of the clip retimed to ``--fps`` (default 200): the same
compressed frames, remuxed without re-encoding (identical pixels) with every timestamp scaled
by native rate / ``--fps``, which is what a high-speed camera's file at that rate is. Its
nominal rate (``session.json``) is then ``--fps``, and so is the deadline the app judges
(``[Experiment] DEADLINE_MS = auto``).

**Same work, same duration.** Both variants stream the same ``--frames`` (default: the whole
clip, 11.7 s at 200 fps; longer loops the file), in ``--rounds`` rounds (default 2) in ABBA
order (off, on, on, off, ...) so that a drift of the machine's load touches both alike. Per
variant, over its runs:

- analysed rate (frames analysed per second, first to last pose; the mean of the runs);
- frames skipped (share of the frames captured): the analysis takes the newest frame;
- frame -> pose latency p50 / p99 (``<camera>.pose_timing.csv``: pose ready - arrival, every
  analysed frame of every run);
- the model's time per frame (pre-processing + network + decoding), mean;
- the share of analysed frames cropped (``session.json``: the rest were analysed whole,
  tracking lost or the periodic whole-frame refresh);
- the camera's captured rate (decoding at ``--fps`` in the capture process can fall behind on
  a busy machine; ``details`` keeps how late frames were delivered).

The app exits 1 when the loop misses its deadline (at 200 fps three frame intervals = 20 ms,
far below this model's time on a CPU): each run's exit code and health verdict are kept in
``details``, and the benchmark goes on. Saved to
``benchmarks/results/dynamic_crop_live_<F>fps.json``, a variant section of ``dynamic_crop`` in
docs/benchmarks.md. Without ``../shared`` the benchmark is skipped, saying why.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.app_run import AppRunError, run_app
from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.outputs.pose.files import POSE_TIMING_SUFFIX
from deeplabstream.outputs.session_record import PoseCamera, SessionRecord, read_session_record

CAMERA = "openfield"
VARIANTS = ("off", "on")  # [Pose] DYNAMIC_CROP; "off" is the baseline
DEFAULT_FPS = 200.0
DEFAULT_ROUNDS = 2
QUICK_FRAMES = 400
MODEL_STAGES = ("preprocess_ms", "inference_ms", "decode_ms")
RETIMED_TIME_BASE = Fraction(1, 1_000_000)  # the retimed copy's clock: microseconds


def result_name(fps: float) -> str:
    """Return the results file's name, a variant of ``dynamic_crop`` in the report."""
    return f"dynamic_crop_live_{fps:g}fps"


def run_order(rounds: int) -> list[str]:
    """Return the runs' ``DYNAMIC_CROP`` values in ABBA order: off, on, on, off, off, on, ..."""
    order: list[str] = []
    for number in range(rounds):
        order += list(VARIANTS if number % 2 == 0 else reversed(VARIANTS))
    return order


def retime_video(source: Path, target: Path, fps: float) -> dict[str, Any]:
    """Write ``source`` to ``target`` with its timestamps scaled to play at ``fps``.

    The packets are copied, not re-encoded: every frame decodes to the same pixels. The copy
    counts time in microseconds (a file's coarser time base would round 5 ms steps). Returns
    the source's and the copy's rates and the frame count.
    """
    import av

    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        stream = reader.streams.video[0]
        native = stream.average_rate or stream.guessed_rate
        if not native or stream.time_base is None:
            raise ValueError(f"{source}: the video does not state its frame rate")
        output = writer.add_stream_from_template(stream)
        output.time_base = RETIMED_TIME_BASE
        # input ticks -> seconds -> seconds at the new rate -> output ticks
        scale = stream.time_base * Fraction(native) / Fraction(fps) / RETIMED_TIME_BASE
        packets = 0
        for packet in reader.demux(stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.pts = None if packet.pts is None else round(packet.pts * scale)
            packet.dts = round(packet.dts * scale)
            if packet.duration:
                packet.duration = max(1, round(packet.duration * scale))
            packet.time_base = RETIMED_TIME_BASE
            packet.stream = output
            writer.mux(packet)
            packets += 1
    with av.open(str(target)) as check:
        copied = check.streams.video[0].average_rate
    return {
        "source": str(source),
        "native_fps": round(float(native), 3),
        "fps": None if copied is None else round(float(copied), 3),
        "frames": packets,
    }


def settings_text(video: Path, model: Path, crop: str, loop: bool, threads: int | None) -> str:
    """Return the settings file of one run."""
    threads_line = "" if threads is None else f"THREADS = {threads}\n"
    return (
        f"[Camera {CAMERA}]\nSOURCE = video\nPATH = {video}\nPACING = native\n"
        f"LOOP = {'true' if loop else 'false'}\n"
        f"[Pose]\nMODEL_PATH = {model}\nDYNAMIC_CROP = {crop}\n{threads_line}"
    )


def run_once(folder: Path, settings: str, frames: int) -> dict[str, Any]:
    """Run the app with pose estimation for ``frames`` frames; the run's figures and health."""
    folder.mkdir(parents=True)
    path = folder / "settings.ini"
    path.write_text(settings, encoding="utf-8")
    load = round(os.getloadavg()[0], 2)
    try:
        run = run_app(path, ["--pose-enabled", "--frames", str(frames)], folder / "out")
    except AppRunError as error:
        return {"error": str(error), "load_1m_at_start": load}
    session = read_session_record(run.session)
    timing_csv = run.session / f"{CAMERA}{POSE_TIMING_SUFFIX}"
    timing = pd.read_csv(timing_csv) if timing_csv.is_file() else pd.DataFrame()
    return run_figures(session, timing) | {"run": run.health(), "load_1m_at_start": load}


def run_figures(session: SessionRecord | Mapping[str, Any], timing: pd.DataFrame) -> dict[str, Any]:
    """Return one run's figures from its ``session.json`` and ``pose_timing.csv`` table.

    ``latency_ms`` and ``model_ms`` are per analysed frame (lists, pooled by
    :func:`variant_figures`). JSON data is read as a :class:`SessionRecord`.
    """
    if not isinstance(session, SessionRecord):
        session = SessionRecord.from_json(dict(session))
    camera = session.cameras[CAMERA]
    pose = (session.pose.cameras.get(CAMERA) if session.pose else None) or PoseCamera()
    if len(timing):
        latency = (timing["pose_ready"] - timing["host_timestamp"]).to_numpy(np.float64) * 1e3
        model = timing[list(MODEL_STAGES)].to_numpy(np.float64).sum(axis=1)
    else:
        latency = model = np.array([])
    return {
        "captured": camera.frames_captured,
        "captured_fps": camera.measured_fps,
        "delivery": camera.device.get("delivery"),  # the video camera's own description
        "analysed": pose.frames_analysed or 0,
        "analysed_fps": pose.analysed_fps,
        "skipped": pose.frames_skipped or 0,
        "cropped": pose.frames_cropped or 0,
        "crop_sizes": (pose.dynamic_crop or {}).get("sizes"),
        "latency_ms": latency.round(3).tolist(),
        "model_ms": model.round(3).tolist(),
    }


def variant_figures(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return a variant's figures over its runs (those that failed are left out)."""
    done = [run for run in runs if "error" not in run]
    rates = [run["analysed_fps"] for run in done if run["analysed_fps"] is not None]
    captured_rates = [run["captured_fps"] for run in done if run["captured_fps"] is not None]
    captured = sum(run["captured"] for run in done)
    analysed = sum(run["analysed"] for run in done)
    latency = [value for run in done for value in run["latency_ms"]]
    model = [value for run in done for value in run["model_ms"]]
    return {
        "runs": len(done),
        "analysed_fps": round(float(np.mean(rates)), 2) if rates else None,
        "captured_fps": round(float(np.mean(captured_rates)), 2) if captured_rates else None,
        "frames_captured": captured,
        "frames_analysed": analysed,
        "skipped_percent": round(100 * sum(r["skipped"] for r in done) / captured, 2)
        if captured
        else None,
        "cropped_percent": round(100 * sum(r["cropped"] for r in done) / analysed, 2)
        if analysed
        else None,
        "latency_ms": summarize_ms(np.asarray(latency) * 1e6),
        "model_ms": summarize_ms(np.asarray(model) * 1e6),
    }


def figures_of(crop: dict[str, Any], full: dict[str, Any]) -> list[Figure]:
    """Return dynamic crop (project) beside the whole frame (baseline)."""
    figures = [
        Figure(
            "analysed_fps",
            "analysed rate",
            crop["analysed_fps"],
            full["analysed_fps"],
            "fps",
            higher_is_better=True,
        ),
        Figure(
            "skipped_percent",
            "frames skipped (share of captured)",
            crop["skipped_percent"],
            full["skipped_percent"],
            "%",
        ),
    ]
    for stat in ("p50", "p99"):
        figures.append(
            Figure(
                f"latency_{stat}_ms",
                f"frame -> pose latency {stat}",
                crop["latency_ms"].get(stat),
                full["latency_ms"].get(stat),
                "ms",
            )
        )
    figures += [
        Figure(
            "model_mean_ms",
            "model per frame (pre-processing + network + decoding), mean",
            crop["model_ms"].get("mean"),
            full["model_ms"].get("mean"),
            "ms",
        ),
        Figure(
            "frames_cropped_percent",
            "analysed frames cropped (the rest whole: tracking lost, refresh)",
            crop["cropped_percent"],
            full["cropped_percent"],
            "%",
            compare=False,
        ),
        Figure(
            "captured_fps",
            "camera rate, captured",
            crop["captured_fps"],
            full["captured_fps"],
            "fps",
            compare=False,
        ),
    ]
    return figures


def run_kept(run: dict[str, Any]) -> dict[str, Any]:
    """Return what ``details`` keeps of a run: all but the per-frame lists."""
    kept = {k: v for k, v in run.items() if k not in ("latency_ms", "model_ms")}
    if "latency_ms" in run:
        kept["latency_ms"] = summarize_ms(np.asarray(run["latency_ms"]) * 1e6)
        kept["model_ms"] = summarize_ms(np.asarray(run["model_ms"]) * 1e6)
    return kept


def main_live(args: argparse.Namespace, model: Path, video: Path) -> int:
    """``python -m benchmarks.dynamic_crop --live``: see the module's description."""
    for needed in (model, video):
        if not needed.is_file():
            print(f"dynamic crop, live: skipped: the shared data folder is absent ({needed})")
            return 0
    fps = args.fps
    started, machine = now_iso(), machine_description()
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    order = run_order(args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        retimed = Path(folder) / f"{video.stem}_{fps:g}fps.mp4"
        clip = retime_video(video, retimed, fps)
        frames = args.frames or (QUICK_FRAMES if args.quick else clip["frames"])
        print(
            f"dynamic crop, live: {model.name} on {video.name} retimed from "
            f"{clip['native_fps']:g} to {clip['fps']:g} fps; {frames} frames per run, runs "
            f"{', '.join(order)}",
            flush=True,
        )
        for number, setting in enumerate(order):
            text = settings_text(retimed, model, setting, frames > clip["frames"], args.threads)
            run = run_once(Path(folder) / f"run{number}-{setting}", text, frames)
            runs[setting].append(run)
            print(f"  DYNAMIC_CROP = {setting}: {run_line(run)}", flush=True)
    crop, full = variant_figures(runs["on"]), variant_figures(runs["off"])
    figures = figures_of(crop, full)
    print_table(
        f"dynamic crop, live at {fps:g} fps: the app on the open-field video ({frames} frames "
        f"per run, {args.rounds} round(s))",
        figures,
        machine,
        project="dynamic crop",
        baseline="full frame",
    )
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    path = save_result(
        result_name(fps),
        figures,
        started=started,
        machine=machine,
        details={
            "model": str(model),
            "video": clip,
            "frames_per_run": frames,
            "threads": args.threads,
            "order": order,
            "variant": crop,
            "runs": [run_kept(run) for run in runs["on"]],
        },
        baseline_details={"variant": full, "runs": [run_kept(run) for run in runs["off"]]},
    )
    print(f"saved {path}")
    return 0 if all("error" not in run for group in runs.values() for run in group) else 1


def run_line(run: dict[str, Any]) -> str:
    """Return one run in a line: rates, skipped, cropped, exit code and health."""
    if "error" in run:
        return f"failed: {run['error']}"
    health = run["run"]
    return (
        f"captured {run['captured']} ({run['captured_fps']} fps), analysed {run['analysed']} "
        f"({run['analysed_fps']} fps), skipped {run['skipped']}, cropped {run['cropped']}; "
        f"exit code {health['exit_code']}, health {health['verdict']}"
    )
