"""The identity step's cost per frame beside another version's, in one run on the same frames.

Run ``python -m benchmarks.identity_step --baseline SRC [--case cross|free] [--seconds S]
[--seed N] [--instances DIR]``, where ``SRC`` is the ``src`` folder of another checkout (for
example ``git worktree add /tmp/v070 <0.7.0 commit>`` and ``/tmp/v070/src``).

Both keepers (:class:`pose.tracking.identities.IdentityKeeper`, motion tracker and appearance,
learning on the video's clock as in :mod:`benchmarks.multi_animal`) are fed the same instances
and frames of the simulated arena, frame by frame, in turns (which goes first alternates), in
one process, so that the machine's load falls on both alike. The baseline's package is copied
to a temporary folder under another name (``deeplabstream_baseline``) so that the two load
side by side. The instances are the two-mouse model's (``--instances DIR``: those
``benchmarks.multi_animal --dump`` wrote; without it the model runs here, untimed).
Reported: p50, p99 and max per frame of each, on the clock and in the thread's CPU time, and
the load average at the start and end (the step's cost depends on the load; the goal, p99 <=
1 ms, is for an idle 2-core machine). ``--runs N`` runs the same frames N times and also
reports, per frame, the fastest of the N in CPU time: the step's own work, which the machine's
noise (interruptions, cold caches on random frames) does not move. Beside the times: the frames
where what the rules read (the rows with their withheld keypoints as NaN, and which animals are
unnamed) differs between the two versions; 0 when a change to the step only made it faster.
``--out DIR`` saves the figures as ``DIR/identity_step.json``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks import multi_animal
from benchmarks.common import now_iso, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import load_average_1m, machine_description
from deeplabstream.pose.tracking.patches import feature_count

ALIAS = "deeplabstream_baseline"


def _load_baseline(src: Path, folder: Path) -> ModuleType:
    """Copy ``src/deeplabstream`` to ``folder/ALIAS`` with its imports renamed; import it."""
    package = src / "deeplabstream"
    if not (package / "__init__.py").is_file():
        raise SystemExit(f"--baseline: {package} is not a deeplabstream package")
    target = folder / ALIAS
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
    pattern = re.compile(r"\bdeeplabstream(?=[.\s])")
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(pattern.sub(ALIAS, text), encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{ALIAS}.pose.tracking.identities")


def _clock_learner(appearance: ModuleType, poll_s: float, refit: int) -> Any:
    """The benchmark's frame-clock learner, on the given version's InlineLearner."""

    class Learner(appearance.InlineLearner):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__(2, feature_count(), refit_every=sys.maxsize)
            self._next = poll_s

        def poll(self, time_s: float) -> None:
            if time_s < self._next:
                return
            self._next += poll_s * (1 + int((time_s - self._next) // poll_s))
            if self._new == 0 or (self.fits > 0 and self._new < refit):
                return
            self.fit()

    return Learner()


def _keeper(identities: ModuleType, tracker: ModuleType, appearance: ModuleType) -> Any:
    learner = _clock_learner(appearance, multi_animal.POLL_S, multi_animal.REFIT_SAMPLES)
    return identities.IdentityKeeper(tracker.IdentityTracker(2, 6), learner), learner


Timings = dict[str, list[int]]  # per keeper, each frame's nanoseconds


def _read_by_rules(keeper: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the rules read of a frame: the rows, withheld keypoints NaN; which are unnamed."""
    return keeper.named(rows), keeper.unnamed.copy()


def _same_reading(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> bool:
    """Whether two versions gave the rules the same frame (NaN where the other has NaN)."""
    return np.array_equal(first[0], second[0], equal_nan=True) and np.array_equal(
        first[1], second[1]
    )


def _one_run(
    args: argparse.Namespace, frames: int, versions: dict[str, tuple[ModuleType, ...]]
) -> tuple[Timings, Timings, list[int]]:
    """Feed fresh keepers of each version the same frames in turns.

    Returns the (clock, CPU) times and the frames where the versions' rules read differently.
    """
    social, marked = multi_animal.IDENTITY_CASES[args.case]
    herd = multi_animal._herd(args.seed, 2, social, marked)
    if args.instances is not None:
        source: Any = multi_animal._Recorded(
            multi_animal._instances_file(args.instances, args.case, args.seed), frames
        )
    else:
        source = multi_animal._estimator(multi_animal.PAIR_MODEL, herd.frame_shape, 2)
    keepers = {name: _keeper(*modules) for name, modules in versions.items()}
    took: Timings = {name: [] for name in keepers}
    cpu: Timings = {name: [] for name in keepers}
    image = np.empty(herd.frame_shape, np.uint8)
    differing: list[int] = []
    for index in range(frames):
        herd.render_next(image)
        found = source.estimate_animals([image])[0]
        time_s = index / multi_animal.FPS
        order = list(keepers) if index % 2 else list(keepers)[::-1]
        read = {}
        for name in order:
            keeper, learner = keepers[name]
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            rows = keeper.update(time_s, found, image)
            took[name].append(time.perf_counter_ns() - started)
            cpu[name].append(time.thread_time_ns() - started_cpu)
            learner.poll(time_s)
            read[name] = _read_by_rules(keeper, rows)
        if not _same_reading(*read.values()):
            differing.append(index)
    return took, cpu, differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other version's src")
    parser.add_argument("--case", choices=multi_animal.MARKED_CASES, default="cross")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=multi_animal.FIRST_SEED)
    parser.add_argument("--instances", type=Path, default=None)
    parser.add_argument(
        "--runs", type=int, default=1, help="runs of the same frames (more: the fastest of each)"
    )
    parser.add_argument("--out", type=Path, default=None, help="save identity_step.json here")
    args = parser.parse_args(argv)
    started, machine = now_iso(), machine_description()
    frames = round(args.seconds * multi_animal.FPS)
    from deeplabstream.pose.tracking import appearance, identities, tracker

    fastest: dict[str, np.ndarray] = {}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        old_identities = _load_baseline(args.baseline, Path(folder))
        old_tracker = importlib.import_module(f"{ALIAS}.pose.tracking.tracker")
        old_appearance = importlib.import_module(f"{ALIAS}.pose.tracking.appearance")
        versions: dict[str, tuple[ModuleType, ...]] = {
            "this": (identities, tracker, appearance),
            "baseline": (old_identities, old_tracker, old_appearance),
        }
        for run in range(1, max(1, args.runs) + 1):
            load_start = load_average_1m()
            took, cpu, differing = _one_run(args, frames, versions)
            load_end = load_average_1m()
            print(f"identity step, {args.case}, seed {args.seed}, {frames} frames, run {run}, "
                  f"load average {load_start}-{load_end}")  # fmt: skip
            summaries = {"load": [load_start, load_end], "differing_frames": len(differing)}
            for name in versions:
                clock, thread = summarize_ms(took[name][10:]), summarize_ms(cpu[name][10:])
                print(
                    f"  {name:8s} clock p50 {clock['p50']} p99 {clock['p99']} max {clock['max']} "
                    f"ms; CPU p50 {thread['p50']} p99 {thread['p99']} ms"
                )
                summaries[name] = {"clock_ms": clock, "cpu_ms": thread}
                each = np.asarray(cpu[name][10:])
                fastest[name] = np.minimum(fastest.get(name, each), each)
            first = f" (the first at frame {differing[0]})" if differing else ""
            print(f"  frames the rules read differently: {len(differing)} of {frames}{first}")
            runs.append(summaries)
    fastest_ms = {name: summarize_ms(each.tolist()) for name, each in fastest.items()}
    if args.runs > 1:
        # The same decisions every run: a frame's fastest is its own work, without the
        # interruptions and cold caches that fall on random frames (the machine's noise).
        print(f"the fastest of {args.runs} runs per frame (CPU time):")
        for name, summary in fastest_ms.items():
            print(f"  {name:8s} p50 {summary['p50']} p99 {summary['p99']} ms")
    if args.out is not None:
        path = _save(args, started, machine, runs, fastest_ms)
        print(f"saved {path}")
    return 0


def _save(
    args: argparse.Namespace,
    started: str,
    machine: dict[str, Any],
    runs: list[dict[str, Any]],
    fastest_ms: dict[str, dict[str, float | int]],
) -> Path:
    """Write ``identity_step.json``: the worst run's clock p99 and the per-frame fastest."""
    worst = max(runs, key=lambda run: run["this"]["clock_ms"]["p99"])
    this, other = worst["this"]["clock_ms"], worst["baseline"]["clock_ms"]
    mine, theirs = fastest_ms["this"], fastest_ms["baseline"]
    figures = [
        Figure(
            "clock_p99_ms_worst_run",
            "clock p99, worst run",
            this["p99"],
            other["p99"],
            "ms",
            goal="<= 1 ms on an idle 2-core machine",
        ),
        Figure(
            "fastest_p50_ms", "fastest of the runs per frame, p50", mine["p50"], theirs["p50"], "ms"
        ),
        Figure(
            "fastest_p99_ms", "fastest of the runs per frame, p99", mine["p99"], theirs["p99"], "ms"
        ),
    ]
    details = {
        "case": args.case, "seed": args.seed, "seconds": args.seconds, "runs": runs,
        "baseline_src": str(args.baseline), "instances": str(args.instances),
    }  # fmt: skip
    return save_result(
        "identity_step", figures, started=started, machine=machine, details=details,
        folder=args.out,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
