"""The cost of the Lab Streaming Layer outlets in the inference worker's loop.

Run ``python -m benchmarks.lsl [--samples N] [--rate HZ] [--smoke]``.

For poses with 6 and 20 keypoints, and for event markers, a paced loop (``--rate`` per second,
as a camera would) times each :meth:`outputs.lsl.PoseOutlet.push` /
:meth:`~outputs.lsl.EventOutlet.push` call with ``host_now_ns`` around it:

* **no inlet**: nobody listens (the default on a rig): liblsl drops the sample at once;
* **inlet**: an inlet in another process (spawned, resolving the stream by name over loopback,
  as LabRecorder would) pulls every sample; it reports how many arrived (``received``), so the
  figures also show that nothing was lost.

The baseline is the same loop in the same run without the push: it prepares the same sample
(the pose's float32 view and the clock mapping; the marker's text) and stops there. The goal is
a push of at most 0.2 ms at p99. ``--smoke`` runs a few samples and saves nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.core.timing import host_now_ns
from deeplabstream.outputs.lsl import (
    ClockMapping,
    EventOutlet,
    PoseOutlet,
    marker_text,
)

KEYPOINT_COUNTS = (6, 20)
DEFAULT_SAMPLES = 5000
DEFAULT_RATE_HZ = 500.0
SMOKE_SAMPLES = 100
WARMUP = 50
CONNECT_TIMEOUT_S = 30.0
GOAL = "p99 <= 0.2 ms"


def _inlet(name: str, ready: Event, stop: Event, results: Any) -> None:
    """Resolve ``name``, pull every sample until told to stop, and report how many came."""
    import pylsl

    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=CONNECT_TIMEOUT_S)
    if not found:
        ready.set()
        results.put(-1)
        return
    inlet = pylsl.StreamInlet(found[0], max_buflen=360)
    inlet.open_stream(timeout=CONNECT_TIMEOUT_S)
    ready.set()
    received, quiet_since = 0, time.monotonic()
    while not (stop.is_set() and time.monotonic() - quiet_since > 1.0):
        _, stamps = inlet.pull_chunk(timeout=0.05)
        if stamps:
            received += len(stamps)
            quiet_since = time.monotonic()
    results.put(received)


class _Listener:
    """An inlet process on one stream, connected before the measurement starts."""

    def __init__(self, name: str, outlet: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop = context.Event(), context.Event()
        self.results = context.Queue()
        self.process = context.Process(
            target=_inlet, args=(name, self.ready, self.stop, self.results), daemon=True
        )
        self.process.start()
        self.ready.wait(CONNECT_TIMEOUT_S + 10)
        deadline = time.monotonic() + 10
        while not outlet.consumers and time.monotonic() < deadline:
            time.sleep(0.01)

    def received(self) -> int:
        """Stop the inlet; return the samples it got (-1: it never found the stream)."""
        self.stop.set()
        count = int(self.results.get(timeout=60))
        self.process.join(10)
        return count


def _paced(count: int, rate_hz: float, step: Callable[[int], None]) -> np.ndarray:
    """Call ``step(i)`` ``count`` times at ``rate_hz``; return each call's duration (ns)."""
    durations = np.empty(count, np.int64)
    interval_ns = int(1e9 / rate_hz)
    next_ns = host_now_ns()
    for index in range(count):
        while host_now_ns() < next_ns:  # sleep most of the wait, spin the rest
            remaining = (next_ns - host_now_ns()) / 1e9
            if remaining > 0.0005:
                time.sleep(remaining - 0.0003)
        started = host_now_ns()
        step(index)
        durations[index] = host_now_ns() - started
        next_ns += interval_ns
    return durations[WARMUP:] if count > 2 * WARMUP else durations


def _pose_case(keypoints: int, listen: bool, samples: int, rate_hz: float) -> dict[str, Any]:
    """Time PoseOutlet.push and the same loop without it; with or without an inlet."""
    names = [f"kp{k}" for k in range(keypoints)]
    camera = f"bench{keypoints}-{'inlet' if listen else 'none'}-{time.monotonic_ns()}"
    clock = ClockMapping.measure()
    outlet = PoseOutlet(camera, names, source_id=f"benchmark-{camera}", clock=clock)
    poses = np.random.default_rng(0).uniform(0, 640, (64, keypoints, 3)).astype(np.float32)
    listener = _Listener(outlet.name, outlet) if listen else None

    def push(index: int) -> None:
        outlet.push(poses[index % 64], host_now_ns() / 1e9)

    def prepare(index: int) -> None:  # the loop without the push: the sample, its time
        np.ascontiguousarray(poses[index % 64], np.float32).reshape(-1)
        clock.to_lsl(host_now_ns() / 1e9)

    return _measure(outlet, listener, samples, rate_hz, prepare, push)


def _event_case(listen: bool, samples: int, rate_hz: float) -> dict[str, Any]:
    """Time EventOutlet.push of a typical action marker, and its formatting alone."""
    clock = ClockMapping.measure()
    source = f"benchmark-events-{'inlet' if listen else 'none'}-{time.monotonic_ns()}"
    outlet = EventOutlet(source_id=source, clock=clock)
    listener = _Listener(outlet.name, outlet) if listen else None

    def text(index: int) -> str:
        detail = "pulse channel=1 duration_s=1.0 reason=left_stimulus"
        return marker_text("action", "stimulus_box", detail, index, "arena", index)

    def push(index: int) -> None:
        outlet.push(text(index), host_now_ns() / 1e9)

    def prepare(index: int) -> None:
        text(index)
        clock.to_lsl(host_now_ns() / 1e9)

    return _measure(outlet, listener, samples, rate_hz, prepare, push)


def _measure(
    outlet: Any,
    listener: Any,
    samples: int,
    rate_hz: float,
    prepare: Callable[[int], None],
    push: Callable[[int], None],
) -> dict[str, Any]:
    """Time the loop without the push (baseline), then with it; close the outlet."""
    baseline = _paced(samples, rate_hz, prepare)
    project = _paced(samples, rate_hz, push)
    outlet.close()
    return {
        "push_ms": summarize_ms(project),
        "without_push_ms": summarize_ms(baseline),
        "pushed": outlet.samples,
        "failures": outlet.failures,
        "received": listener.received() if listener is not None else None,
    }


def _figures(cases: dict[str, dict[str, Any]]) -> list[Figure]:
    figures = []
    for name, case in cases.items():
        for stat in ("p50", "p99", "max"):
            figures.append(
                Figure(
                    f"{name}.push_{stat}_ms",
                    f"{name}: push {stat}",
                    case["push_ms"].get(stat),
                    case["without_push_ms"].get(stat),
                    unit="ms",
                    goal=GOAL if stat == "p99" else "",
                    compare=False,  # the baseline does less: it shows what the push adds
                )
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and (unless ``--smoke``) save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ, help="pushes per second")
    parser.add_argument("--smoke", action="store_true", help="a few samples; save nothing")
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the samples (benchmarks.run_all --quick)"
    )
    args = parser.parse_args(argv)
    samples = SMOKE_SAMPLES if args.smoke else args.samples
    if args.quick and not args.smoke:
        samples = max(SMOKE_SAMPLES, samples // 10)
    started, machine = now_iso(), machine_description()
    wall = time.monotonic()
    cases: dict[str, dict[str, Any]] = {}
    for listen in (False, True):
        where = "inlet" if listen else "no inlet"
        for keypoints in KEYPOINT_COUNTS:
            cases[f"pose {keypoints} kp, {where}"] = _pose_case(
                keypoints, listen, samples, args.rate
            )
        cases[f"event, {where}"] = _event_case(listen, samples, args.rate)
    figures = _figures(cases)
    print_table(
        "LSL outlets: push cost per sample",
        figures,
        machine,
        project="push",
        baseline="loop without push",
    )
    for name, case in cases.items():
        print(f"{name}: pushed {case['pushed']}, received {case['received']}")
    if args.smoke:
        return 0
    details = {
        "parameters": {
            "samples": samples,
            "rate_hz": args.rate,
            "warmup": WARMUP,
            "wall_s": round(time.monotonic() - wall, 1),
        },
        "cases": cases,
    }
    path = save_result("lsl", figures, started=started, machine=machine, details=details)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
