"""Where the time goes in a recording closed-loop session: per-process CPU and scheduler waits.

    python -m benchmarks.profile_session [--duration S] [--quick]

The session of ``benchmarks.closed_loop`` (the simulated arena at 30 fps 640x480, the bundled
model, recording on, a 5 ms pulse to the project's firmware under simavr on every pose update)
runs three times: without priorities (``[Streaming] CPU_AFFINITY = off``, ``SIDE_NICENESS = 0``:
what the app did before, and its defaults on 2 cores), with the recorder niced
(``SIDE_NICENESS = 5``) and with the worker pinned to a core of its own (``CPU_AFFINITY = on``).
For every process of the
session (main, capture, recorder, pose worker, and the simulated board) the kernel's own
accounting is read at the start and the end of the run (Linux ``/proc``):

- CPU time (``utime + stime``) as a percentage of one core;
- run-queue wait (``/proc/<pid>/task/*/schedstat``): time its threads were ready to run but
  waited for a core, per second of run; for the pose worker also per analysed frame;
- involuntary context switches per second: how often the process was pre-empted.

Beside them, from the session's own files: the worker's stages (transport = frame arrival ->
picked up, pre-processing, inference, decoding) and frame -> command written. Saved to
``benchmarks/results/profile_session.json``; ``docs/performance.md`` discusses the figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.closed_loop import Board, session_settings
from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import percentiles
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.settings import load_settings

WARM_FRAMES = 30  # the first second: model warm-up and first allocations


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def process_counters(pid: int) -> dict[str, float] | None:
    """CPU seconds, run-queue wait seconds and context switches of ``pid`` (all its threads)."""
    base = Path(f"/proc/{pid}")
    try:
        fields = (base / "stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / _ticks()  # utime, stime
        wait_ns = 0
        for task in (base / "task").iterdir():
            wait_ns += int((task / "schedstat").read_text().split()[1])
        switches = {"voluntary": 0, "involuntary": 0}
        for task in (base / "task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    switches["voluntary"] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    switches["involuntary"] += int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None  # ended, or not Linux
    return {
        "cpu_s": cpu_s,
        "runqueue_wait_s": wait_ns / 1e9,
        "voluntary": float(switches["voluntary"]),
        "involuntary": float(switches["involuntary"]),
    }


CONFIGURATIONS = {"none": ("off", 0), "niced": ("off", 5), "pinned": ("on", 0)}


def _session(folder: Path, duration_s: float, affinity: str, niceness: int) -> dict[str, Any]:
    """One recording closed-loop session; per-process counters over its steady part."""
    board = Board()
    settings_file = session_settings(
        folder, board.port, f"[Streaming]\nCPU_AFFINITY = {affinity}\nSIDE_NICENESS = {niceness}\n"
    )
    stream = LiveSession(load_settings(settings_file), output_dir=folder / "out")
    runner = SessionRunner(stream, duration_s=duration_s, status_out=None)
    try:
        stream.open()
        stream.pose.start_analysis(experiment=True)
        stream.start_recording()
        stream.start()
        pids = {name: pid for name, pid in stream.process_ids().items() if pid is not None}
        pids["board (simavr)"] = board.process.pid
        runner.tick(1.0)  # warm-up second, not counted
        before = {name: process_counters(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        runner.run_headless()
        elapsed = time.perf_counter() - started
        after = {name: process_counters(pid) for name, pid in pids.items()}
    finally:
        stream.stop("profile over")
        board.stop()
    assert stream.session_dir is not None
    return {
        "processes": _per_process(before, after, elapsed, stream.session_dir),
        "stages_ms": _stages(stream.session_dir),
        "priority": stream.report.priority_entry(stream),
        "seconds": round(elapsed, 2),
    }


def _per_process(
    before: dict[str, Any], after: dict[str, Any], elapsed: float, session_dir: Path
) -> dict[str, dict[str, float]]:
    analysed = len(pd.read_csv(session_dir / "arena.pose_timing.csv")) - WARM_FRAMES
    rows = {}
    for name, start in before.items():
        end = after.get(name)
        if start is None or end is None:
            continue
        delta = {key: end[key] - start[key] for key in start}
        rows[name] = {
            "cpu_percent": round(100 * delta["cpu_s"] / elapsed, 1),
            "runqueue_wait_ms_per_s": round(1e3 * delta["runqueue_wait_s"] / elapsed, 2),
            "involuntary_switches_per_s": round(delta["involuntary"] / elapsed, 1),
            "voluntary_switches_per_s": round(delta["voluntary"] / elapsed, 1),
        }
        if name.startswith("pose") and analysed > 0:
            rows[name]["runqueue_wait_ms_per_frame"] = round(
                1e3 * delta["runqueue_wait_s"] / analysed, 3
            )
    return rows


def _stages(session_dir: Path) -> dict[str, Any]:
    timing = pd.read_csv(session_dir / "arena.pose_timing.csv").iloc[WARM_FRAMES:]
    events = pd.read_csv(session_dir / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    pulses = pulses.iloc[WARM_FRAMES:]
    ms = {
        "transport": (timing["picked_up"] - timing["host_timestamp"]) * 1e3,
        "preprocess": timing["preprocess_ms"],
        "inference": timing["inference_ms"],
        "decode": timing["decode_ms"],
        "frame_to_pose": timing["latency_ms"],
        "frame_to_command_written": (pulses["written"] - pulses["host_timestamp"]) * 1e3,
    }
    stages = {key: percentiles(list(np.asarray(values, float))) for key, values in ms.items()}
    work = timing["preprocess_ms"] + timing["inference_ms"] + timing["decode_ms"]
    stages["overhead"] = percentiles(list(np.asarray(timing["latency_ms"] - work, float)))
    return stages


def _pose(run: dict[str, Any]) -> dict[str, float]:
    return next(v for k, v in run["processes"].items() if k.startswith("pose"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    duration = 8.0 if args.quick else args.duration
    started, machine = now_iso(), machine_description()
    runs = {}
    for name, (affinity, niceness) in CONFIGURATIONS.items():
        with tempfile.TemporaryDirectory() as folder:
            runs[name] = _session(Path(folder), duration, affinity, niceness)
    for name, run in runs.items():
        affinity, niceness = CONFIGURATIONS[name]
        print(
            f"\n{name} (CPU_AFFINITY = {affinity}, SIDE_NICENESS = {niceness}): per process "
            f"over {run['seconds']} s"
        )
        header = f"{'process':<22}{'CPU %':>8}{'runq ms/s':>11}{'invol/s':>9}{'vol/s':>8}"
        print(header)
        for process, row in run["processes"].items():
            print(
                f"{process:<22}{row['cpu_percent']:>8}{row['runqueue_wait_ms_per_s']:>11}"
                f"{row['involuntary_switches_per_s']:>9}{row['voluntary_switches_per_s']:>8}"
            )
    figures = []
    stages = ("transport", "inference", "overhead", "frame_to_pose", "frame_to_command_written")
    for name in ("niced", "pinned"):
        for stage in stages:
            for stat in ("p50", "p99"):
                figures.append(
                    Figure(
                        f"{name}.{stage}.{stat}",
                        f"{name}: {stage.replace('_', ' ')} {stat}",
                        runs[name]["stages_ms"][stage][stat],
                        runs["none"]["stages_ms"][stage][stat],
                        "ms",
                    )
                )
        figures.append(
            Figure(
                f"{name}.pose_runqueue_wait_ms_per_frame",
                f"{name}: pose worker run-queue wait per frame",
                _pose(runs[name]).get("runqueue_wait_ms_per_frame"),
                _pose(runs["none"]).get("runqueue_wait_ms_per_frame"),
                "ms",
            )
        )
    print_table(
        f"recording closed-loop session, {duration:g} s: niced recorder, pinned worker vs neither",
        figures,
        machine,
        project="with priorities",
        baseline="none",
    )
    path = save_result(
        "profile_session",
        figures,
        started=started,
        machine=machine,
        details={"niced": runs["niced"], "pinned": runs["pinned"]},
        baseline_details=runs["none"],
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
