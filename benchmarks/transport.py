"""Frame transport between processes: the shared-memory ring + pipe against multiprocessing.Queue.

Run ``python -m benchmarks.transport [--frames N] [--rate-seconds S] [--quick | --smoke]``.

For every frame shape, two real processes (spawn context) move frames from a writer to a reader:

* **project**: the writer fills a :class:`transport.ring.FrameRing` slot (``begin_write``, copy the
  pixels, stamp ``host_now_ns()``, ``end_write``) and announces it with a 40-byte record through a
  :class:`transport.channel.ChannelWriter`; the reader blocks in ``ChannelReader.wait``, reads
  the records and copies each frame out with ``copy_frame``. It runs with both doorbells: the
  POSIX pipe (the project's figures against the baseline) and the portable one (Connection calls
  fed by a sending thread, what Windows uses), whose figures are printed and saved beside the
  pipe's (``benchmarks/results/transport_doorbells.json``).
* **baseline**: the writer makes a new frame (a copy of the pixels), stamps it and puts
  ``(seq, stamp, frame)`` on a ``multiprocessing.Queue`` (pickled); the reader ``get()``\\s it.

Latency is ``host_now_ns()`` in the reader once it holds its own copy of the frame minus the
writer's stamp (the clock is system-wide). Two modes per transport:

* **paced**: the writer sends at 200 fps, so the reader is idle between frames: latency
  percentiles of a single frame.
* **max rate**: the writer sends as fast as it can for a few seconds; it never gets more than
  a ring (16 frames) ahead of the reader (ring: it waits on the reader's ``consumed`` counter in
  the ring header; queue: ``maxsize`` = 16). The figure is frames per second that arrived whole
  (checked by marker bytes) in the reader.

The first frames of every run warm up caches and page tables and are not measured.
``--smoke`` runs a few frames of one shape and saves nothing: it proves the benchmark runs.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import host_now_ns
from deeplabstream.transport.channel import (
    ChannelReader,
    ChannelWriter,
    Doorbell,
    EndOfStream,
    EndReason,
    FrameRecord,
    encode_frame,
)
from deeplabstream.transport.ring import Channel, FrameRing, RingSpec, new_ring_name

SHAPES: dict[str, FrameGeometry] = {
    "640x480x3": FrameGeometry(height=480, width=640, channels=3),
    "1280x1024x1": FrameGeometry(height=1024, width=1280, channels=1),
}
PACED_FPS = 200.0
RING_SLOTS = 16  # also the queue's maxsize: how far the writer may run ahead of the reader
WARMUP_FRAMES = 50
DEFAULT_FRAMES = 1000
DEFAULT_RATE_SECONDS = 3.0
QUICK_FRAMES = 200
QUICK_RATE_SECONDS = 1.0
SMOKE_FRAMES = 20
SMOKE_RATE_SECONDS = 0.2
SMOKE_WARMUP_FRAMES = 5
READ_TIMEOUT_S = 10.0  # a reader that hears nothing this long gives up (writer died)
THROTTLE_POLL_S = 20e-6
_RECORD = Channel.RECORD


@dataclass(frozen=True)
class Plan:
    """What one writer/reader pair does (picklable; sent to both processes)."""

    geometry: FrameGeometry
    paced_fps: float | None  # None: as fast as the reader allows
    frames: int  # measured frames when paced (after the warm-up)
    duration_s: float  # measured seconds when not paced (after the warm-up)
    warmup: int = WARMUP_FRAMES


@dataclass
class ReaderTally:
    """What a reader saw: latencies of whole frames, losses, first and last arrival."""

    warmup: int
    latencies_ns: list[int] = field(default_factory=list)
    lost: int = 0
    first_ns: int = 0
    last_ns: int = 0

    def add(self, seq: int, whole: bool, stamp_ns: int, now_ns: int) -> None:
        """Count one frame (frames of the warm-up are ignored)."""
        if seq < self.warmup:
            return
        if not whole:
            self.lost += 1
            return
        if not self.latencies_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        self.latencies_ns.append(now_ns - stamp_ns)

    def summary(self) -> dict[str, Any]:
        """Counts, latency percentiles (ms) and the rate of whole frames (fps)."""
        whole = len(self.latencies_ns)
        span_s = (self.last_ns - self.first_ns) / 1e9
        return {
            "frames_whole": whole,
            "frames_lost": self.lost,
            "rate_fps": round((whole - 1) / span_s, 1) if whole > 1 and span_s > 0 else None,
            "latency_ms": summarize_ms(self.latencies_ns),
        }


# -- frames ------------------------------------------------------------------------------------


def source_frame(geometry: FrameGeometry) -> np.ndarray:
    """A frame of noise to send (what the writer copies into each slot or new array)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=geometry.shape, dtype=np.uint8)


def mark(frame: np.ndarray, seq: int) -> None:
    """Write the frame number into its first and last bytes (so the reader can check it)."""
    frame.flat[0] = seq & 0xFF
    frame.flat[-1] = (seq >> 8) & 0xFF


def is_marked(frame: np.ndarray, seq: int) -> bool:
    """True when ``frame`` carries the marks of frame ``seq``."""
    return int(frame.flat[0]) == seq & 0xFF and int(frame.flat[-1]) == (seq >> 8) & 0xFF


class Pacer:
    """Decides when the writer sends its next frame and when it stops."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.start_ns = host_now_ns()
        self._interval_ns = 1e9 / plan.paced_fps if plan.paced_fps else 0.0
        self._end_ns: int | None = None

    def more(self, seq: int) -> bool:
        """True while frame ``seq`` should be sent (sleeping until it is due when paced)."""
        plan = self.plan
        if plan.paced_fps:
            if seq >= plan.warmup + plan.frames:
                return False
            remaining_ns = self.start_ns + seq * self._interval_ns - host_now_ns()
            if remaining_ns > 0:
                time.sleep(remaining_ns / 1e9)
            return True
        if seq == plan.warmup:
            self._end_ns = host_now_ns() + round(plan.duration_s * 1e9)
        return self._end_ns is None or host_now_ns() < self._end_ns

    def writer_report(self, sent: int, **extra: Any) -> dict[str, Any]:
        """What the writer tells the main process when it is done."""
        elapsed_s = (host_now_ns() - self.start_ns) / 1e9
        return {"sent": sent, "elapsed_s": round(elapsed_s, 3), **extra}


# -- project: ring + pipe ----------------------------------------------------------------------


def ring_writer(
    spec: RingSpec,
    channel_end: Connection,
    kind: Doorbell,
    plan: Plan,
    ready: Event,
    report: Connection,
) -> None:
    """Writer process: fill slots, stamp, publish, announce; never more than a ring ahead."""
    ring = FrameRing.attach(spec)
    channel = ChannelWriter(channel_end, kind=kind)
    try:
        ready.wait()
        report.send(_write_ring(ring, channel, plan))
    finally:
        ring.close()
        channel.close()


def _write_ring(ring: FrameRing, channel: ChannelWriter, plan: Plan) -> dict[str, Any]:
    source = source_frame(plan.geometry)
    consumed = ring.header["consumed"]
    slots = ring.spec.slots
    pacer = Pacer(plan)
    seq = undelivered = throttled = 0
    while pacer.more(seq):
        while seq - int(consumed[_RECORD]) >= slots:
            throttled += 1
            time.sleep(THROTTLE_POLL_S)
        slot = ring.begin_write(seq)
        np.copyto(slot, source)
        mark(slot, seq)
        stamp = host_now_ns()
        ring.end_write(seq)
        record = FrameRecord(0, ring.slot_for(seq), seq, seq, math.nan, stamp)
        if not channel.send(encode_frame(record)):
            undelivered += 1
        seq += 1
    channel.send_end(0, EndReason.STOPPED, seq)
    return pacer.writer_report(seq, undelivered=undelivered, throttle_waits=throttled)


def ring_reader(
    spec: RingSpec,
    channel_end: Connection,
    kind: Doorbell,
    plan: Plan,
    ready: Event,
    report: Connection,
) -> None:
    """Reader process: wait for records, copy every announced frame out, time it."""
    ring = FrameRing.attach(spec)
    reader = ChannelReader(channel_end, 0, kind=kind)
    try:
        ring.set_subscribed(_RECORD, True)
        report.send(_read_ring(ring, reader, plan, ready))
    finally:
        ring.close()
        reader.close()


def _read_ring(ring: FrameRing, reader: ChannelReader, plan: Plan, ready: Event) -> dict[str, Any]:
    out = np.zeros(plan.geometry.shape, plan.geometry.dtype)  # touched: no page faults later
    consumed = ring.header["consumed"]
    tally = ReaderTally(plan.warmup)
    ready.set()
    ended = False
    while not ended and reader.wait(READ_TIMEOUT_S):
        for record in reader.read_available():
            if isinstance(record, EndOfStream):
                ended = True
                break
            whole = ring.copy_frame(record.slot, record.seq, out)
            now = host_now_ns()
            consumed[_RECORD] = record.seq + 1
            whole = whole and is_marked(out, record.seq)
            tally.add(record.seq, whole, record.host_timestamp_ns, now)
    return {**tally.summary(), "ended": ended}


# -- baseline: multiprocessing.Queue -----------------------------------------------------------


def queue_writer(frames: Any, plan: Plan, ready: Event, report: Connection) -> None:
    """Writer process: a new frame each time, stamped and put on the queue (pickled)."""
    source = source_frame(plan.geometry)
    ready.wait()
    pacer = Pacer(plan)
    seq = 0
    while pacer.more(seq):
        frame = source.copy()
        mark(frame, seq)
        stamp = host_now_ns()
        frames.put((seq, stamp, frame))
        seq += 1
    frames.put(None)
    report.send(pacer.writer_report(seq))
    frames.close()
    frames.join_thread()


def queue_reader(frames: Any, plan: Plan, ready: Event, report: Connection) -> None:
    """Reader process: ``get()`` every frame (unpickled into this process's memory), time it."""
    tally = ReaderTally(plan.warmup)
    ready.set()
    ended = False
    while True:
        try:
            item = frames.get(timeout=READ_TIMEOUT_S)
        except queue.Empty:
            break
        if item is None:
            ended = True
            break
        seq, stamp, frame = item
        now = host_now_ns()
        tally.add(seq, is_marked(frame, seq), stamp, now)
    report.send({**tally.summary(), "ended": ended})


# -- orchestration -----------------------------------------------------------------------------


def _receive(connection: Connection, timeout: float, who: str) -> dict[str, Any]:
    if not connection.poll(timeout):
        raise RuntimeError(f"{who} sent no result within {timeout:.0f} s")
    return connection.recv()


def _finish(processes: Sequence[BaseProcess]) -> None:
    for process in processes:
        process.join(10.0)
        if process.is_alive():
            process.terminate()
            process.join(5.0)


def _run_pair(
    context: SpawnContext,
    writer: tuple[Any, tuple[Any, ...]],
    reader: tuple[Any, tuple[Any, ...]],
    plan: Plan,
    closers: list[Connection],
) -> dict[str, Any]:
    """Start a reader and a writer process, collect both reports, join them."""
    ready = context.Event()
    results = []
    processes = []
    for name, (target, args) in (("reader", reader), ("writer", writer)):
        receive_end, send_end = context.Pipe(duplex=False)
        process = context.Process(target=target, args=(*args, plan, ready, send_end), name=name)
        process.start()
        send_end.close()
        processes.append(process)
        results.append(receive_end)
    for connection in closers:  # our copies of the child's ends, so end-of-file works
        connection.close()
    timeout = 60.0 + (plan.frames + plan.warmup) / (plan.paced_fps or 1e9) + plan.duration_s
    try:
        reader_report = _receive(results[0], timeout, "reader")
        writer_report = _receive(results[1], timeout, "writer")
    finally:
        _finish(processes)
    return {**reader_report, "writer": writer_report}


def run_ring(context: SpawnContext, plan: Plan, kind: Doorbell = Doorbell.PIPE) -> dict[str, Any]:
    """One run of the project's transport with the doorbell ``kind``."""
    ring = FrameRing.create(RingSpec(new_ring_name("bench"), plan.geometry, RING_SLOTS))
    read_end, write_end = context.Pipe(duplex=False)
    try:
        return _run_pair(
            context,
            (ring_writer, (ring.spec, write_end, kind)),
            (ring_reader, (ring.spec, read_end, kind)),
            plan,
            [read_end, write_end],
        )
    finally:
        ring.close()
        ring.unlink()


def run_ring_portable(context: SpawnContext, plan: Plan) -> dict[str, Any]:
    """One run of the project's transport with the portable doorbell."""
    return run_ring(context, plan, Doorbell.PORTABLE)


def run_queue(context: SpawnContext, plan: Plan) -> dict[str, Any]:
    """One run of the baseline transport."""
    frames = context.Queue(maxsize=RING_SLOTS)
    try:
        return _run_pair(context, (queue_writer, (frames,)), (queue_reader, (frames,)), plan, [])
    finally:
        frames.close()
        frames.join_thread()


# "ring" is the pipe doorbell (the default on Linux and macOS); each runs in turn, never together.
RUNNERS: dict[str, Callable[[SpawnContext, Plan], dict[str, Any]]] = {
    "ring": run_ring,
    "ring_portable": run_ring_portable,
    "queue": run_queue,
}


def run_shape(
    context: SpawnContext,
    geometry: FrameGeometry,
    frames: int,
    rate_seconds: float,
    warmup: int = WARMUP_FRAMES,
) -> dict[str, dict[str, Any]]:
    """Every transport in both modes for one frame shape: ``{transport: {mode: report}}``."""
    paced = Plan(geometry, PACED_FPS, frames, 0.0, warmup)
    unpaced = Plan(geometry, None, 0, rate_seconds, warmup)
    out: dict[str, dict[str, Any]] = {}
    for transport, run in RUNNERS.items():
        out[transport] = {"paced": run(context, paced), "max_rate": run(context, unpaced)}
    return out


def figures_for(
    shape: str, project: dict[str, Any], baseline: dict[str, Any], goals: bool = True
) -> list[Figure]:
    """The table rows of one shape (``goals``: the project's goals, against the queue only)."""
    goal_of = {"p50": "~0.2 (queue ~2.7)", "p99": "~0.35", "rate": ">10,000 (queue <500)"}
    use_goals = goals and shape == "640x480x3"
    rows = []
    for stat in ("p50", "p95", "p99", "max"):
        rows.append(
            Figure(
                key=f"{shape}.paced_latency_{stat}_ms",
                label=f"{shape} latency {stat} @{PACED_FPS:g} fps",
                value=project["paced"]["latency_ms"].get(stat),
                baseline=baseline["paced"]["latency_ms"].get(stat),
                unit="ms",
                goal=goal_of.get(stat, "") if use_goals else "",
            )
        )
    rows.append(
        Figure(
            key=f"{shape}.max_rate_fps",
            label=f"{shape} max rate, frames whole",
            value=project["max_rate"]["rate_fps"],
            baseline=baseline["max_rate"]["rate_fps"],
            unit="fps",
            higher_is_better=True,
            goal=goal_of["rate"] if use_goals else "",
        )
    )
    lost = sum(project[m]["frames_lost"] for m in project)
    lost_baseline = sum(baseline[m]["frames_lost"] for m in baseline)
    rows.append(Figure(f"{shape}.frames_lost", f"{shape} frames lost or torn", lost, lost_baseline))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"measured frames per paced run (default {DEFAULT_FRAMES}, quick {QUICK_FRAMES})",
    )
    parser.add_argument(
        "--rate-seconds",
        type=float,
        default=None,
        help=f"seconds per max-rate run (default {DEFAULT_RATE_SECONDS:g}, "
        f"quick {QUICK_RATE_SECONDS:g})",
    )
    parser.add_argument("--quick", action="store_true", help="fewer frames: about 15 s in all")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few frames of one shape, nothing saved: proves the benchmark runs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every shape, print the tables, save ``transport.json`` and ``transport_doorbells.json``.

    Both files go to ``benchmarks/results/`` (not with ``--smoke``).
    """
    args = parse_args(argv)
    if args.smoke:
        frames, rate_seconds, warmup = SMOKE_FRAMES, SMOKE_RATE_SECONDS, SMOKE_WARMUP_FRAMES
        shapes = dict(list(SHAPES.items())[:1])
    else:
        frames = args.frames or (QUICK_FRAMES if args.quick else DEFAULT_FRAMES)
        rate_seconds = args.rate_seconds or (
            QUICK_RATE_SECONDS if args.quick else DEFAULT_RATE_SECONDS
        )
        warmup, shapes = WARMUP_FRAMES, SHAPES
    started, machine = now_iso(), machine_description()
    context = multiprocessing.get_context("spawn")
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    began = time.monotonic()
    for shape, geometry in shapes.items():
        print(f"transport: {shape} ...", flush=True)
        runs[shape] = run_shape(context, geometry, frames, rate_seconds, warmup)
    figures = [
        f for shape in shapes for f in figures_for(shape, runs[shape]["ring"], runs[shape]["queue"])
    ]
    doorbells = [
        f
        for shape in shapes
        for f in figures_for(shape, runs[shape]["ring"], runs[shape]["ring_portable"], False)
    ]
    parameters = {
        "paced_fps": PACED_FPS,
        "paced_frames": frames,
        "max_rate_seconds": rate_seconds,
        "ring_slots_and_queue_maxsize": RING_SLOTS,
        "warmup_frames": warmup,
        "wall_s": round(time.monotonic() - began, 1),
    }
    print_table(
        "Frame transport between processes (project: shared-memory ring + pipe; "
        "baseline: multiprocessing.Queue)",
        figures,
        machine,
        project="ring+pipe",
        baseline="mp.Queue",
    )
    print_table(
        "The two doorbells of the ring (pipe: non-blocking POSIX pipe; portable: "
        "Connection calls fed by a sending thread)",
        doorbells,
        machine,
        project="pipe",
        baseline="portable",
    )
    if args.smoke:
        print(f"smoke run ({frames} paced frames, {rate_seconds:g} s max rate): nothing saved")
        return 0
    paths = _save(runs, figures, doorbells, parameters, started, machine)
    saved = ", ".join(str(path) for path in paths)
    print(f"{frames} paced frames per run, {rate_seconds:g} s per max-rate run; saved {saved}")
    return 0


def _save(
    runs: dict[str, dict[str, dict[str, Any]]],
    figures: list[Figure],
    doorbells: list[Figure],
    parameters: dict[str, Any],
    started: str,
    machine: dict[str, Any],
) -> list[Path]:
    """Write ``transport.json`` (ring+pipe vs queue) and ``transport_doorbells.json``."""
    transport = save_result(
        "transport",
        figures,
        started=started,
        machine=machine,
        details={"parameters": parameters, **{s: runs[s]["ring"] for s in runs}},
        baseline_details={
            "transport": "multiprocessing.Queue (pickle)",
            **{s: runs[s]["queue"] for s in runs},
        },
    )
    doorbell = save_result(
        "transport_doorbells",
        doorbells,
        started=started,
        machine=machine,
        details={
            "parameters": parameters,
            "doorbell": "pipe",
            **{s: runs[s]["ring"] for s in runs},
        },
        baseline_details={
            "doorbell": "portable",
            **{s: runs[s]["ring_portable"] for s in runs},
        },
    )
    return [transport, doorbell]


if __name__ == "__main__":
    raise SystemExit(main())
