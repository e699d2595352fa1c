"""The benchmark mode's figures (``benchmark.json``), computed from a finished session's files.

Every key and how it is measured: docs/outputs.md, "benchmark.json".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeplabstream.core.deadline import STAGES
from deeplabstream.core.figures import Figure, format_number, table_lines
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import percentiles
from deeplabstream.outputs.folder import write_json_atomic
from deeplabstream.outputs.pose.files import POSE_CSV_SUFFIX, POSE_TIMING_SUFFIX
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.session_record import PoseCamera, SessionRecord, read_session_record
from deeplabstream.settings.effective import CameraPlan
from deeplabstream.settings.sections import Settings

BENCHMARK_JSON = "benchmark.json"
TAILS_KEPT = 50  # tail frames listed per camera in benchmark.json
EVENTS_CSV = "events.csv"
FORMAT = "deeplabstream-benchmark/1"
# Stages of one frame, in the order they happen; end_to_end is their sum (frame -> keypoints).
FRAME_STAGES = (
    "transport",
    "queue_wait",
    "handover",
    "preprocessing",
    "inference",
    "decoding",
)
# "experiment" is timed on every update (pose_timing.csv); "output" on the frames with an action
ACTION_STAGES = ("experiment", "output")
STAGE_LABELS = {
    "transport": "transport",
    "queue_wait": "queue wait",
    "handover": "copy out + batching",
    "preprocessing": "preprocessing",
    "inference": "inference",
    "decoding": "decoding",
    "experiment": "experiment (every update)",
    "output": "output (actions)",
    "end_to_end": "end to end: frame -> keypoints",
    "closed_loop": "closed loop: frame -> command",
}


def percentiles_ms(values: Iterable[float]) -> dict[str, float] | None:
    """Return session.json's p50 / p95 / p99 / max of durations in ms, with their count."""
    return percentiles(values, with_count=True)


def frame_stages_ms(timing: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each analysed frame's time in each stage, from the pose timing tables of all cameras.

    The stages add up to ``end_to_end`` = ``pose_ready - host_timestamp``; every stage:
    docs/outputs.md, "benchmark.json".
    """
    arrived = timing["host_timestamp"].to_numpy(np.float64)
    picked = timing["picked_up"].to_numpy(np.float64)
    ready = timing["pose_ready"].to_numpy(np.float64)
    batches = np.unique(ready)
    previous = np.searchsorted(batches, picked, side="left") - 1
    busy_until = np.where(previous >= 0, batches[np.maximum(previous, 0)], -np.inf)
    queue_wait = np.clip(np.minimum(busy_until, picked) - arrived, 0.0, None) * 1e3
    model_ms = timing[["preprocess_ms", "inference_ms", "decode_ms"]].to_numpy(np.float64)
    return {
        "transport": (picked - arrived) * 1e3 - queue_wait,
        "queue_wait": queue_wait,
        "handover": (ready - picked) * 1e3 - model_ms.sum(axis=1),
        "preprocessing": model_ms[:, 0],
        "inference": model_ms[:, 1],
        "decoding": model_ms[:, 2],
        "end_to_end": (ready - arrived) * 1e3,
    }


def loop_stages_ms(timing: pd.DataFrame) -> pd.DataFrame:
    """Each analysed frame's time (ms) in each stage of the loop, as the deadline blames them.

    From a ``pose_timing.csv`` table: the stages of :mod:`core.deadline`, ``end_ms`` (their
    sum), the longest ``stage`` and the recorded ``deadline_stage``.
    """
    arrived = timing["host_timestamp"].to_numpy(np.float64)
    picked = timing["picked_up"].to_numpy(np.float64)
    ready = timing["pose_ready"].to_numpy(np.float64)
    free = _column(timing, "worker_free")
    decided = _column(timing, "decided")
    written = _column(timing, "command_written")
    wait = np.clip(np.fmin(free, picked) - arrived, 0.0, None) * 1e3
    wait = np.nan_to_num(wait)  # tables from before worker_free: no wait known
    inference = timing[["preprocess_ms", "inference_ms", "decode_ms"]].to_numpy(np.float64)
    inference = inference.sum(axis=1)
    stages = pd.DataFrame(
        {
            "frame_index": timing["frame_index"].to_numpy(),
            "wait_ms": wait,
            "transport_ms": (ready - arrived) * 1e3 - wait - inference,
            "inference_ms": inference,
            "experiment_ms": np.nan_to_num((decided - ready) * 1e3),
            "output_ms": np.nan_to_num((written - decided) * 1e3),
        }
    )
    end = np.where(np.isfinite(written), written, np.where(np.isfinite(decided), decided, ready))
    stages["end_ms"] = (end - arrived) * 1e3
    stage_columns = [f"{stage}_ms" for stage in STAGES]
    stages["stage"] = [STAGES[i] for i in stages[stage_columns].to_numpy().argmax(axis=1)]
    recorded = timing.get("deadline_stage", pd.Series([None] * len(timing)))
    stages["deadline_stage"] = [text if isinstance(text, str) else "" for text in recorded]
    return stages


def tail_frames(timing: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    """Return the frames whose loop took more than ``factor`` x its p99, with their stages."""
    stages = loop_stages_ms(timing)
    if stages.empty:
        return stages
    limit = factor * float(np.percentile(stages["end_ms"], 99))
    return stages[stages["end_ms"] > limit].reset_index(drop=True)


def tail_lines(tails: pd.DataFrame, factor: float = 2.0) -> list[str]:
    """Return a table of the tail frames and their stages, for a benchmark's printout."""
    if tails.empty:
        return [f"no frame beyond {factor:g} x p99 of frame -> end of the loop"]
    header = f"{'frame':>8} {'end ms':>8} " + " ".join(f"{s:>10}" for s in STAGES) + "  took it"
    rows = [
        f"{int(t.frame_index):>8} {t.end_ms:>8.2f} "
        + " ".join(f"{getattr(t, f'{s}_ms'):>10.2f}" for s in STAGES)
        + f"  {t.stage}"
        for t in tails.itertuples()
    ]
    return [
        f"frames beyond {factor:g} x p99 of frame -> end of the loop: {len(tails)}",
        header,
        *rows,
    ]


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    """Return a column of seconds as floats; NaN where empty or missing (older tables)."""
    if name not in table:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)


def action_stages_ms(events: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per action prompted by a pose: decision time, output time, frame -> command written."""
    actions = events[(events["kind"] == "action") & events["pose_ready"].notna()]
    return {
        "experiment": ((actions["decided"] - actions["pose_ready"]) * 1e3).to_numpy(),
        "output": ((actions["written"] - actions["decided"]) * 1e3).to_numpy(),
        "closed_loop": ((actions["written"] - actions["host_timestamp"]) * 1e3).to_numpy(),
    }


def tracking_lost(pose_csv: Path, threshold: float) -> tuple[int, int]:
    """(frames with any keypoint's likelihood below ``threshold``, frames analysed).

    Only analysed rows count; with several animals, only animals present in the frame.
    """
    table = read_pose_table(pose_csv, analysed_only=True)
    likelihood = table.points[..., 2]  # (N, A, K)
    present = ~np.isnan(likelihood).all(axis=2)
    below = np.nan_to_num(likelihood, nan=-1.0) < threshold
    lost = (below.any(axis=2) & present).any(axis=1)
    return int(lost.sum()), len(table.frames)


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists; empty when there is none (or no driver)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def session_figures(session_dir: Path, plan: CameraPlan) -> dict[str, Any]:
    """Everything ``benchmark.json`` holds about the app's own run (not the baseline)."""
    session = read_session_record(session_dir)
    pose = session.pose.cameras if session.pose is not None else {}
    threshold = plan.likelihood_threshold  # [Pose]'s
    cameras: dict[str, dict[str, Any]] = {}
    timings: list[pd.DataFrame] = []
    lost = analysed_total = 0
    for name, entry in session.cameras.items():
        figures = pose.get(name) or PoseCamera()
        camera = {
            "captured": entry.frames_captured,
            "analysed": figures.frames_analysed or 0,
            "skipped": figures.frames_skipped or 0,
            "recorded": entry.frames_recorded,
            "analysed_fps": figures.analysed_fps,
            "nominal_fps": entry.nominal_fps,
            "measured_fps": entry.measured_fps,
            "tracking_lost_fraction": None,
        }
        pose_csv = session_dir / f"{name}{POSE_CSV_SUFFIX}"
        if pose_csv.is_file():
            frames_lost, frames = tracking_lost(pose_csv, plan.threshold(name))
            camera["tracking_lost_fraction"] = round(frames_lost / frames, 4) if frames else None
            lost, analysed_total = lost + frames_lost, analysed_total + frames
        timing_csv = session_dir / f"{name}{POSE_TIMING_SUFFIX}"
        if timing_csv.is_file():
            timings.append(pd.read_csv(timing_csv))
            # The frames beyond 2 x p99 of frame -> end of the loop, and what took their time.
            tails = tail_frames(timings[-1]).head(TAILS_KEPT)
            camera["tail_frames"] = tails.round(3).to_dict("records")
        cameras[name] = camera
    return {
        "cameras": cameras,
        "latency_ms": _latency(session_dir, timings, session.experiment is not None),
        "tracking_lost_fraction": round(lost / analysed_total, 4) if analysed_total else None,
        "likelihood_threshold": threshold,
        "session": session,
    }


def _latency(session_dir: Path, timings: list[pd.DataFrame], experiment: bool) -> dict[str, Any]:
    frames = [t for t in timings if len(t)]
    stages = frame_stages_ms(pd.concat(frames, ignore_index=True)) if frames else {}
    latency: dict[str, Any] = {s: percentiles_ms(stages.get(s, ())) for s in FRAME_STAGES}
    events = session_dir / EVENTS_CSV
    actions = action_stages_ms(pd.read_csv(events)) if experiment and events.is_file() else {}
    for stage in (*ACTION_STAGES, "closed_loop"):
        latency[stage] = percentiles_ms(actions.get(stage, ()))
    every_update = _experiment_ms(frames)
    if len(every_update):  # the worker times each update: better than the action frames alone
        latency["experiment"] = percentiles_ms(every_update)
    latency["end_to_end"] = percentiles_ms(stages.get("end_to_end", ()))
    return latency


def _experiment_ms(timings: list[pd.DataFrame]) -> np.ndarray:
    """Return the experiment's update time on every analysed frame (``experiment_ms`` column)."""
    columns = [t["experiment_ms"] for t in timings if "experiment_ms" in t]
    if not columns:
        return np.array([])
    values = pd.concat(columns, ignore_index=True).to_numpy(np.float64)
    return values[np.isfinite(values)]


def model_entry(session: SessionRecord, settings: Settings, threads: int) -> dict[str, Any]:
    """Return the model and how it ran: session.json's description plus the backend settings."""
    described = session.pose.model if session.pose is not None else None
    model = described.to_json() if described is not None else {}
    model.update(
        backend=settings.pose.backend,
        device=settings.pose.device,
        threads=threads,
        max_batch=settings.pose.max_batch,
    )
    return model


def comparison(app: dict[str, Any], naive: dict[str, Any]) -> list[Figure]:
    """Return the app beside the naive loop: rate and latency (what ``ratios`` holds)."""
    app_fps = sum(c["analysed_fps"] or 0.0 for c in app["cameras"].values())
    figures = [
        Figure(
            "analysed_fps",
            "analysed rate",
            round(app_fps, 3),
            naive["analysed_fps"],
            "fps",
            higher_is_better=True,
        )
    ]
    for stage in ("end_to_end", "closed_loop"):
        mine, theirs = app["latency_ms"].get(stage), naive["latency_ms"].get(stage)
        if not mine or not theirs:
            continue
        for stat in ("p50", "p95", "p99", "max"):
            label = f"{STAGE_LABELS[stage]} {stat}"
            figures.append(Figure(f"{stage}_{stat}", label, mine[stat], theirs[stat], "ms"))
    return figures


def build_benchmark(
    session_dir: Path,
    plan: CameraPlan,
    *,
    frames_requested: int | None,
    naive: dict[str, Any] | None,
    threads: int,
    naive_no_recording: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the content of ``benchmark.json`` (``naive`` None: the baseline did not run)."""
    app = session_figures(session_dir, plan)
    session: SessionRecord = app.pop("session")
    machine = machine_description()
    machine["gpu"] = gpu_names()
    data: dict[str, Any] = {
        "format": FORMAT,
        "session": session_dir.name,
        "started": session.started if session.has("started") else None,
        "stop_reason": session.stop_reason,
        "frames_requested": frames_requested,
        "machine": machine,
        "model": model_entry(session, plan.settings, threads),
        "experiment": _experiment_entry(session),
        **app,
        "naive": naive,
        "naive_no_recording": naive_no_recording,
        "ratios": {f.key: f.ratio for f in comparison(app, naive)} if naive else None,
    }
    return data


def _experiment_entry(session: SessionRecord) -> dict[str, Any] | None:
    experiment = session.experiment
    if experiment is None:
        return None
    return {"name": experiment.name, "actions": experiment.actions}


def write_benchmark(session_dir: Path, data: dict[str, Any]) -> Path:
    """Write ``benchmark.json`` into the session folder (atomically); return its path."""
    path = session_dir / BENCHMARK_JSON
    write_json_atomic(path, data)
    return path


def benchmark_lines(data: dict[str, Any]) -> list[str]:
    """Return the printed report: machine, model, cameras, stages, the app vs the naive loop."""
    machine, model = data["machine"], data["model"]
    gpu = ", ".join(machine["gpu"]) or "none"
    lines = [
        f"Benchmark of session {data['session']} ({data['stop_reason']})",
        f"machine: {machine['cpu']}, {machine['cores']} cores, GPU {gpu}, {machine['os']}",
        f"model: {model.get('name')} ({model.get('framework')}), {model['backend']} on "
        f"{model.get('provider') or model['device']}, {model['threads']} thread(s)",
    ]
    if data["experiment"]:
        experiment = data["experiment"]
        lines.append(f"experiment: {experiment['name']}, {experiment['actions']} action(s)")
    lines += ["", *_camera_lines(data), "", *_latency_lines(data["latency_ms"])]
    for name, camera in data["cameras"].items():
        if "tail_frames" in camera:
            lines += ["", f"camera {name}:", *tail_lines(pd.DataFrame(camera["tail_frames"]))]
    lost = data["tracking_lost_fraction"]
    lines.append(
        f"tracking lost (any keypoint below likelihood {data['likelihood_threshold']:g}): "
        + ("-" if lost is None else f"{lost:.1%} of analysed frames")
    )
    if data["naive"]:
        figures = comparison(data, data["naive"])
        same_work = "naive loop, recording" if data["naive"].get("records") else "naive loop"
        lines += ["", *table_lines(figures, project="app", baseline=same_work)]
    if data.get("naive_no_recording"):
        figures = comparison(data, data["naive_no_recording"])
        lines += ["", *table_lines(figures, project="app", baseline="naive, no recording")]
    return lines


def _camera_lines(data: dict[str, Any]) -> list[str]:
    header = ("camera", "captured", "analysed", "skipped", "recorded", "analysed fps", "lost")
    rows: list[Sequence[str]] = [header]
    for name, camera in data["cameras"].items():
        lost = camera["tracking_lost_fraction"]
        rows.append(
            (
                name,
                *(format_number(camera[k]) for k in ("captured", "analysed", "skipped")),
                format_number(camera["recorded"]),
                format_number(camera["analysed_fps"]),
                "-" if lost is None else f"{lost:.1%}",
            )
        )
    return _aligned(rows)


def _latency_lines(latency: dict[str, Any]) -> list[str]:
    rows: list[Sequence[str]] = [("latency (ms)", "p50", "p95", "p99", "max", "frames")]
    for stage in (*FRAME_STAGES, *ACTION_STAGES, "end_to_end", "closed_loop"):
        figures = latency.get(stage)
        if figures is None:
            rows.append((STAGE_LABELS[stage], "-", "-", "-", "-", "0"))
            continue
        values = [f"{figures[s]:.2f}" for s in ("p50", "p95", "p99", "max")]
        rows.append((STAGE_LABELS[stage], *values, str(figures["count"])))
    return _aligned(rows)


def _aligned(rows: list[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines
