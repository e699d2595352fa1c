"""Run one benchmark several times in a row and judge each run against its goals.

    python -m benchmarks.series end_to_end --runs 5 [-- --frames 900]
    python -m benchmarks.series closed_loop --runs 5 [-- --duration 30]
    python -m benchmarks.series latency_test --runs 5 --label 200fps -- --fps 200 --duration 60

A goal that says "in 5 runs out of 5" is a claim about the spread between runs, which one run
cannot show. Each run is the benchmark's own command in a fresh interpreter, one after the
other (never side by side: they would share the cores); after each, its results file
(``benchmarks/results/<name>.json``) is read and kept. The series is saved to
``benchmarks/results/series_<name>[_<label>].json``: every run's figures beside its baseline,
the goals each run met, and how many runs met each goal. ``docs/benchmarks.md`` shows it as one
table with a column per run. Exits 1 when a goal was missed in any run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, now_iso
from deeplabstream.core.machine import machine_description

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: What "within one process hop" allows the app behind the naive loop at the median (ms).
P50_ALLOWANCE_MS = 0.3


@dataclass(frozen=True)
class Goal:
    """One goal a run meets or not, judged from its results file."""

    key: str
    text: str
    met: Callable[[dict[str, Any]], bool | None]  # None: the run has no figure for it


def _value(run: dict[str, Any], key: str, side: str = "results") -> float | None:
    value = run.get(side, {}).get(key)
    return None if value is None else float(value)


def _better(key: str, allowance_ms: float = 0.0) -> Callable[[dict[str, Any]], bool | None]:
    """The app's figure at most the naive loop's (+ ``allowance_ms``)."""

    def met(run: dict[str, Any]) -> bool | None:
        mine, theirs = _value(run, key), _value(run, key, "baseline")
        if mine is None or theirs is None:
            return None
        return mine < theirs if allowance_ms == 0.0 else mine <= theirs + allowance_ms

    return met


def _at_most(
    key: str, limit: float, side: str = "results"
) -> Callable[[dict[str, Any]], bool | None]:
    def met(run: dict[str, Any]) -> bool | None:
        value = _value(run, key, side)
        return None if value is None else value <= limit

    return met


def _against_naive(prefix: str, label: str, separator: str = "_") -> list[Goal]:
    """Better than the naive loop at p95, p99 and max; within 0.3 ms at p50."""
    return [
        Goal(
            f"{prefix}{separator}p50",
            f"{label} p50 within {P50_ALLOWANCE_MS} ms of the naive loop",
            _better(f"{prefix}{separator}p50", P50_ALLOWANCE_MS),
        ),
        *(
            Goal(
                f"{prefix}{separator}{stat}",
                f"{label} {stat} below the naive loop's",
                _better(f"{prefix}{separator}{stat}"),
            )
            for stat in ("p95", "p99", "max")
        ),
    ]


def _tail_goal(key: str, label: str) -> Goal:
    """Over a long run, the max under twice the p99 (no lone tail)."""

    def met(run: dict[str, Any]) -> bool | None:
        p99, top = _value(run, f"{key}p99"), _value(run, f"{key}max")
        return None if p99 is None or top is None else top < 2 * p99

    return Goal(f"{key}max", f"{label} max under 2 x its p99", met)


def _latency_goals(run: dict[str, Any]) -> list[Goal]:
    """The self-test's goals at the run's frame rate (200 fps: the physical-limit goals)."""
    fps = float(run.get("results", {}).get("details", {}).get("fps", 30.0))
    agreement = 0.3 if fps >= 150 else 0.5
    goals = [
        Goal(
            "agreement_p99",
            f"|app - board| p99 <= {agreement} ms",
            _at_most("agreement_p99", agreement),
        )
    ]
    if fps >= 150:
        board = "light_to_command_"  # the board's figures are the baseline column
        goals += [
            Goal("board_p50", "board p50 <= 6.0 ms", _at_most(f"{board}p50", 6.0, "baseline")),
            Goal("board_p99", "board p99 <= 9.0 ms", _at_most(f"{board}p99", 9.0, "baseline")),
            Goal("board_max", "board max <= 12 ms", _at_most(f"{board}max", 12.0, "baseline")),
            Goal(
                "pipeline_p50",
                "frame -> command less the model p50 <= 0.5 ms",
                _at_most("pipeline_p50", 0.5),
            ),
            Goal(
                "pipeline_p99",
                "frame -> command less the model p99 <= 1.5 ms",
                _at_most("pipeline_p99", 1.5),
            ),
        ]
    return goals


GOALS: dict[str, Callable[[dict[str, Any]], list[Goal]]] = {
    "end_to_end": lambda run: [
        *_against_naive("end_to_end", "frame -> keypoints"),
        *_against_naive("closed_loop", "frame -> command"),
    ],
    "closed_loop": lambda run: [
        *_against_naive("written_ms", "frame -> command written", "."),
        *(
            [_tail_goal("written_ms.", "frame -> command written")]
            if float(run.get("results", {}).get("details", {}).get("duration_s", 0)) >= 600
            else []
        ),
    ],
    "latency_test": _latency_goals,
}


def judge(name: str, run: dict[str, Any]) -> dict[str, bool | None]:
    """Return each goal's text -> whether this run met it (None: no figure for it)."""
    goals = GOALS.get(name, lambda _run: [])(run)
    return {goal.text: goal.met(run) for goal in goals}


def run_once(name: str, arguments: list[str]) -> dict[str, Any]:
    """Run ``python -m benchmarks.<name> ARGUMENTS``; return the results file it wrote.

    That is the newest ``<name>*.json`` written during the run (a benchmark names its file
    after its options, e.g. ``latency_test_200fps.json``).
    """
    started_ns = time.time_ns()
    command = [sys.executable, "-m", f"benchmarks.{name}", *arguments]
    completed = subprocess.run(command, cwd=PROJECT_ROOT, env=os.environ.copy())
    written = [
        path for path in RESULTS_DIR.glob(f"{name}*.json") if path.stat().st_mtime_ns >= started_ns
    ]
    if not written:
        raise SystemExit(f"benchmarks.{name} wrote no results (exit {completed.returncode})")
    newest = max(written, key=lambda path: path.stat().st_mtime_ns)
    data: dict[str, Any] = json.loads(newest.read_text(encoding="utf-8"))
    data["exit_code"] = completed.returncode
    data["results_file"] = newest.name
    return data


def summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How many runs met each goal."""
    met: dict[str, list[bool | None]] = {}
    for run in runs:
        for text, ok in run["goals"].items():
            met.setdefault(text, []).append(ok)
    return {
        text: {"met": sum(ok is True for ok in oks), "runs": len(oks), "each": oks}
        for text, oks in met.items()
    }


def split_at_dashes(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split the command line into the series' options and the benchmark's own (after ``--``).

    Split by hand: argparse gives a positional declared after the benchmark's name nothing once
    options stand between them (``latency_test --runs 5 -- --fps 200``).
    """
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(GOALS), help="the benchmark to repeat")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="", help="names the series (e.g. 200fps)")
    series_options, own_options = split_at_dashes(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(series_options)
    args.arguments = own_options
    started, machine = now_iso(), machine_description()
    runs = []
    for number in range(1, args.runs + 1):
        print(f"\n=== {args.name} run {number} of {args.runs} ===", flush=True)
        data = run_once(args.name, args.arguments)
        data["goals"] = judge(args.name, data)
        runs.append(data)
    counts = summary(args.name, runs)
    label = f"_{args.label}" if args.label else ""
    series = {
        "benchmark": f"series_{args.name}{label}",
        "series_of": args.name,
        "label": args.label,
        "arguments": args.arguments,
        "machine": machine,
        "started": started,
        "runs": runs,
        "goals_met": counts,
    }
    path = RESULTS_DIR / f"series_{args.name}{label}.json"
    path.write_text(json.dumps(series, indent=2) + "\n", encoding="utf-8")
    print(f"\n{args.name}: {args.runs} runs")
    for text, count in counts.items():
        print(f"  {count['met']} of {count['runs']}: {text}")
    print(f"saved {path}")
    return 0 if all(c["met"] == c["runs"] for c in counts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
