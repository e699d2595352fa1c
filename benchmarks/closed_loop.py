"""Closed-loop latency: camera frame -> pose -> decision -> command on the stimulus board.

    python -m benchmarks.closed_loop [--duration S] [--quick]

The app: the simulated arena at 30 fps 640x480, the bundled model, recording on, and an
experiment that sends a 5 ms pulse on every pose update to the project's own stimulus firmware
running under simavr (its UART on a pty). From ``events.csv``: frame arrival (host clock) ->
command written on the pty, and -> the board's acknowledgement received (the board sends it
right after switching the pin). Baselines, in the same run: the naive single-thread loop
(grab -> preprocess -> infer -> decide -> write, as DeepLabCut-Live does) on the same model,
frames, experiment and firmware, recording every frame in a writer thread with the app's encoder
settings (the same work as the app, as DeepLabCut-Live-GUI records), and the same loop without
recording. Saved to ``benchmarks/results/closed_loop.json``.

The app's tail: every frame whose frame -> command took more than 2 x its p99, with its time in
each stage of the loop (waiting for the worker, transport, inference, the experiment's update,
the output: ``core/deadline.py``), from ``arena.pose_timing.csv``; printed and saved under
``details.tail_frames``, so the stage that took a tail frame's time can be named.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import now_iso, print_table, rig_locked, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.priority import AffinityMode, inference_thread_count, plan_priorities
from deeplabstream.core.timing import host_now_ns, percentiles
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.hardware.stimulation import create_device
from deeplabstream.live.selftest.benchmark_mode import tail_frames, tail_lines
from deeplabstream.live.selftest.naive_loop import NaiveWriter
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.runner import SessionRunner
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.settings import load_settings
from deeplabstream.settings.sections import RecordingSettings

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
EXPERIMENT = '''
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class PulseEveryUpdate(Experiment):
    """A benchmark's experiment: a 5 ms pulse on channel 0 at every pose update."""

    def __init__(self) -> None:
        super().__init__(name="pulse_every_update")
        self.declare_output("board", 0)

    def on_update(self, obs, t):
        return [Action.pulse("board", 0, 0.005, reason="benchmark")]
'''


#: How the results name a run whose board was the Python stand-in.
STANDIN = (
    "Python stand-in (benchmarks/board_standin.py: answers on reading the line, host clock, no "
    "UART simulated)"
)


def _firmware_built() -> bool:
    """Build the firmware and its simulator; False where this machine cannot (no compiler)."""
    try:
        done = subprocess.run(
            ["make", "-C", str(FIRMWARE), "all", "sim"], capture_output=True, text=True
        )
    except OSError:  # no make
        print("closed loop: no make here: the board is the Python stand-in")
        return False
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"closed loop: the firmware's simulator cannot be built here ({why}): the board is "
              "the Python stand-in")  # fmt: skip
        return False
    return True


class Board:
    """The stimulus firmware under simavr, its UART on a pty (or its Python stand-in).

    Where ``make -C firmware all sim`` fails (a machine without avr-gcc, gcc or libsimavr, such
    as a GPU machine), or ``--board standin`` asks for it, the Python stand-in of
    benchmarks/board_standin.py answers instead, and the results say so.

    A real board costs the host nothing; the simulator runs at real-time priority and wakes
    every 100 us of board time to poll its pty: on the core that runs the model it takes a
    third of the model's time (measured: 2.47 vs 1.73 ms p50 for the bundled model). Where the
    app's ``CPU_AFFINITY`` pins (``auto``: 3 or more cores; ``on``: 2 too) it is kept on the
    cores left to capture and recording, in every run (app and naive loops alike), so that it
    takes no time from the core that analyses and decides, as a real board would not.
    """

    def __init__(self, affinity: AffinityMode = "auto", *, standin: bool = False) -> None:
        built = not standin and _firmware_built()
        #: What answers the host: the firmware under simavr, or the Python stand-in (stated in
        #: the results: its timing is not a board's; benchmarks/board_standin.py).
        self.kind = "firmware under simavr" if built else STANDIN
        command = (
            [
                str(FIRMWARE / "build" / "simstim"),
                "--quit-on-eof",
                "--wait-open",
                # Its pin log would go to stdout, which nobody reads after the PTY line: the
                # pipe fills after about a minute of pulses and simstim stops reading its pty.
                "--pins",
                os.devnull,
                str(FIRMWARE / "build" / "stimulus.elf"),
            ]
            if built
            else [sys.executable, str(Path(__file__).with_name("board_standin.py"))]
        )
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=FIRMWARE.parent,
        )
        assert self.process.stdout is not None
        self.port = self.process.stdout.readline().split()[1]
        side_cores = plan_priorities(affinity, inference_thread_count(0)).other_cpus
        if side_cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.process.pid, side_cores)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def session_settings(folder: Path, port: str, extra: str = "") -> Path:
    """The benchmark session's settings file: the arena, the pulse experiment, the board."""
    experiment_file = folder / "experiments" / "bench_experiment.py"  # the lab's folder
    experiment_file.parent.mkdir(exist_ok=True)
    experiment_file.write_text(EXPERIMENT, encoding="utf-8")
    settings_file = folder / "settings.ini"
    settings_file.write_text(
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 123\n"
        "[Experiment]\nNAME = bench_experiment:PulseEveryUpdate\n"
        f"[Device board]\nTYPE = serial\nPORT = {port}\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n" + extra,
        encoding="utf-8",
    )
    return settings_file


def app_run(
    folder: Path,
    duration_s: float,
    device: str = "cpu",
    wait: str = "auto",
    affinity: AffinityMode = "auto",
    standin: bool = False,
) -> dict[str, Any]:
    """The app with recording and the experiment; latencies from its own events.csv."""
    board = Board(affinity, standin=standin)
    extra = f"[Pose]\nDEVICE = {device}\nWAIT = {wait}\n[Streaming]\nCPU_AFFINITY = {affinity}\n"
    settings_file = session_settings(folder, board.port, extra)
    settings = load_settings(settings_file)
    stream = LiveSession(settings, output_dir=folder / "out")
    runner = SessionRunner(stream, duration_s=duration_s, status_out=None)
    try:
        with rig_locked(settings):  # released once the stream has stopped
            try:
                stream.open()
                stream.pose.start_analysis(experiment=True)
                stream.start_recording()
                stream.start()
                runner.run_headless()
            finally:
                stream.stop("benchmark over")
    finally:
        board.stop()
    assert stream.session_dir is not None
    events = pd.read_csv(stream.session_dir / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    pulses = pulses.iloc[10:]  # warm
    stats = stream.camera_stats()["arena"]
    timing = pd.read_csv(stream.session_dir / "arena.pose_timing.csv").iloc[10:]  # warm
    tails = tail_frames(timing[timing["command_written"].notna()])
    return {
        "tail_frames": tails.round(3).to_dict("records"),
        "written_ms": _ms(pulses["written"] - pulses["host_timestamp"]),
        "acknowledged_ms": _ms((pulses["acknowledged"] - pulses["host_timestamp"]).dropna()),
        "decision_ms": _ms(pulses["decided"] - pulses["pose_ready"]),
        "actions": len(pulses),
        "captured": stats["captured"],
        "recorded": stats.get("recorded"),
        "analysed": stats.get("analysed"),
        "board": board.kind,
    }


def naive_run(
    duration_s: float,
    folder: Path | None = None,
    pose_device: str = "cpu",
    board_affinity: AffinityMode = "auto",
    standin: bool = False,
) -> dict[str, Any]:
    """Grab -> preprocess -> infer -> decide -> write, in one thread, paced like the camera.

    With ``folder``, every frame that falls due is also recorded there by a writer thread (the
    frames the busy loop missed as copies of the one it grabbed: the same encoding work).
    """
    writer = None
    if folder is not None:
        writer = NaiveWriter(folder / "arena.naive.mp4", (480, 640, 3), 30.0, RecordingSettings())
    board = Board(board_affinity, standin=standin)  # placed as in the app's run
    device = create_device("serial", port=board.port, hello_timeout_s=10.0)
    device.open()
    description = load_model(None)
    threads = max(1, min(4, (os.cpu_count() or 2) - 1))
    backend = open_backend(description, "onnxruntime", pose_device, threads)
    backend.warm_up(1)
    estimator = open_estimator(description, backend, (480, 640, 3), max_batch=1)
    experiment = ExperimentRuntime(load_experiment("ExampleExperiment"))  # the same machinery
    experiment.start()
    arena = SimulatedArena(ArenaParams(width=640, height=480, seed=123))
    frame = np.empty((480, 640, 3), np.uint8)
    written, acknowledged, records = [], [], []
    due = time.perf_counter()
    end = due + duration_s
    index = 0
    while due < end:
        arena.render_next(frame)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        arrived = host_now_ns()
        if writer is not None:
            writer.put(frame, index / 30)
        pose = estimator.estimate([frame])[0]
        experiment.update(Observation(index / 30, "arena", index, pose, description.keypoints))
        record = device.pulse(0, 0.005)
        written.append((record.written_ns - arrived) / 1e6)
        records.append((arrived, record))
        index += 1
        due += 1 / 30
        if time.perf_counter() > due:  # a busy loop misses camera frames
            missed = int((time.perf_counter() - due) * 30) + 1
            due += missed / 30
            if writer is not None:  # the camera delivered them: recorded all the same
                for k in range(missed):
                    writer.put(frame, (index + k) / 30)
            index += missed
    time.sleep(0.2)
    recorded = writer.close() if writer is not None else None
    for arrived, record in records:
        if record.acked_ns is not None:
            acknowledged.append((record.acked_ns - arrived) / 1e6)
    device.close()
    board.stop()
    return {
        "written_ms": _ms(pd.Series(written[10:]) / 1e3),
        "acknowledged_ms": _ms(pd.Series(acknowledged[10:]) / 1e3),
        "actions": len(written),
        "recorded": recorded,
        "board": board.kind,
    }


def _ms(seconds: pd.Series) -> dict[str, float]:
    """The percentiles session.json uses, in ms; NaN for each when there are none."""
    figures = percentiles(list(np.asarray(seconds, float) * 1e3))
    return figures or dict.fromkeys(("p50", "p95", "p99", "max"), float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--device", choices=("cpu", "cuda", "tensorrt"), default="cpu", help="[Pose] DEVICE"
    )
    parser.add_argument(
        "--wait", choices=("auto", "block", "spin"), default="auto", help="[Pose] WAIT of the app"
    )
    parser.add_argument(
        "--affinity",
        choices=("auto", "on", "off"),
        default="auto",
        help="[Streaming] CPU_AFFINITY of the app",
    )
    parser.add_argument(
        "--without-unrecorded-baseline",
        action="store_true",
        help="leave out the naive loop without recording (long runs: it adds a third of the "
        "time; the naive loop doing the same work, recording, still runs)",
    )
    parser.add_argument(
        "--board",
        choices=("firmware", "standin"),
        default="firmware",
        help="the firmware under simavr (the Python stand-in where it cannot be built), or the "
        "stand-in (benchmarks/board_standin.py)",
    )
    args = parser.parse_args(argv)
    duration = 8.0 if args.quick else args.duration
    standin = args.board == "standin"
    started, machine = now_iso(), machine_description()
    with tempfile.TemporaryDirectory() as folder:
        app = app_run(Path(folder), duration, args.device, args.wait, args.affinity, standin)
    with tempfile.TemporaryDirectory() as folder:
        # the same work: it records too
        naive = naive_run(duration, Path(folder), args.device, args.affinity, standin)
    naive_no_recording = (
        None
        if args.without_unrecorded_baseline
        else naive_run(duration, None, args.device, args.affinity, standin)
    )
    print(f"board: app run: {app['board']}; naive loop: {naive['board']}")
    figures = []
    # The stand-in (benchmarks/board_standin.py) is a Python process answering on a pty: its
    # "acknowledged" is a pty round trip to it on the host's clock, not a board's.
    acknowledged = (
        "frame -> stand-in acknowledged (pty round trip to a Python process, host clock)"
        if standin
        else "frame -> board acknowledged (firmware under simavr)"
    )
    for key, label, goal in (
        ("written_ms", "frame -> command written", "p50 <= 12, p99 <= 20"),
        ("acknowledged_ms", acknowledged, ""),
    ):
        for stat in ("p50", "p95", "p99", "max"):
            figures.append(
                Figure(
                    f"{key}.{stat}",
                    f"{label} {stat}",
                    app[key][stat],
                    naive[key][stat],
                    "ms",
                    goal=goal if stat != "max" else "",
                )
            )
    for stat in ("p50", "p95", "p99", "max") if naive_no_recording is not None else ():
        figures.append(
            Figure(
                f"written_ms.{stat}.vs_no_recording",
                f"frame -> command written {stat}, vs naive loop not recording",
                app["written_ms"][stat],
                naive_no_recording["written_ms"][stat],
                "ms",
            )
        )
    figures.append(Figure("actions", "actions", app["actions"], naive["actions"], compare=False))
    print("\n".join(tail_lines(pd.DataFrame(app["tail_frames"]))))
    print_table(
        f"closed loop at 30 fps 640x480, recording on, {duration:g} s, device {args.device}, "
        f"board: {app['board']}",
        figures,
        machine,
        project="app",
        baseline="naive loop, recording",
    )
    path = save_result(
        "closed_loop",
        figures,
        started=started,
        machine=machine,
        details={**app, "duration_s": duration, "wait": args.wait, "affinity": args.affinity},
        baseline_details={**naive, "no_recording": naive_no_recording},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
