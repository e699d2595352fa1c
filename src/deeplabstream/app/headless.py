"""Headless checks of a rig: stream the configured cameras, report their rates, optionally record.

Exit codes: 0 done, 1 a camera or the recording failed or the loop missed its deadline or
stalled, 2 bad settings or command line, 130 (143 for SIGTERM) stopped during the start-up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deeplabstream.app.arguments import default_settings_text, positive_float, positive_int
from deeplabstream.app.stop_requests import EXIT_INTERRUPTED, take_stop_signals
from deeplabstream.core.optional import exit_with
from deeplabstream.settings.sections import deadline_option

BENCHMARK_FRAMES = 3000  # per camera, unless --frames or --duration says otherwise


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        description="Stream the cameras of a settings file; report rates; optionally record.",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help=f"settings file (default: {default_settings_text(sys.argv[0])})",
    )
    parser.add_argument("--headless", action="store_true", help="never open a window")
    parser.add_argument(
        "--recording-enabled", action="store_true", help="record every frame of every camera"
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--frames", type=positive_int, help="stop after N frames per camera")
    limit.add_argument("--duration", type=positive_float, help="stop after S seconds")
    parser.add_argument("--output-dir", type=Path, help="folder for the session folder")
    parser.add_argument(
        "--pose-enabled",
        "--dlc-enabled",
        action="store_true",
        help="estimate poses of every camera (the model of [Pose] MODEL_PATH, or --model)",
    )
    parser.add_argument(
        "--model", type=Path, help="pose model folder or file (overrides [Pose] MODEL_PATH)"
    )
    parser.add_argument(
        "--experiment-enabled",
        action="store_true",
        help="run the experiment of [Experiment] NAME on the poses (implies --pose-enabled)",
    )
    parser.add_argument(
        "--experiment",
        metavar="NAME",
        help="run this experiment (a config, module:Class or a path; overrides [Experiment] "
        "NAME; implies --experiment-enabled)",
    )
    parser.add_argument(
        "--deadline",
        type=deadline_option,
        metavar="MS|auto|off",
        help="the loop's deadline in ms, auto or off (overrides [Experiment] DEADLINE_MS)",
    )
    parser.add_argument(
        "--benchmark-enabled",
        action="store_true",
        help=f"measure the pipeline on --frames N frames (default {BENCHMARK_FRAMES}) with pose "
        "estimation, beside the naive single-thread loop; writes benchmark.json",
    )
    parser.add_argument(
        "--latency-test",
        action="store_true",
        help="the latency self-test: the stimulus board flashes an LED, the app answers what it "
        "sees, the board measures ([LatencyTest] in the settings; writes latency_test.json)",
    )
    parser.add_argument(
        "--simulated-board",
        action="store_true",
        help="with --latency-test: run the board's firmware under simavr (built if needed) and "
        "draw its LED into the simulated camera",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    # The launcher took them first thing (deeplabstream.launch); a stop since is in there.
    stops = take_stop_signals()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.simulated_board and not args.latency_test:
        parser.error("--simulated-board goes with --latency-test")
    if args.latency_test and (args.benchmark_enabled or args.frames is not None):
        parser.error("--latency-test runs for --duration S; not with --frames or --benchmark")
    if args.benchmark_enabled and args.frames is None and args.duration is None:
        args.frames = BENCHMARK_FRAMES
    if args.experiment is not None:
        if args.latency_test:
            parser.error("--latency-test runs its own experiment; leave --experiment out")
        # Naming an experiment is asking for it: without this, --experiment NAME alone ran none
        # and said nothing.
        args.experiment_enabled = True

    # Imported once Ctrl-C is taken: the session's stack takes 2 s to import (measured), and a
    # Ctrl-C meanwhile must stop the run cleanly (exit 130), not print a traceback.
    from deeplabstream.app.headless_run import run_checks

    if stops.reason is not None:  # during the imports: nothing is read, checked or started
        print(stops.said)
        return stops.exit_code
    return run_checks(args, stops)


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (130 for an early Ctrl-C)."""
    exit_with(_main_quiet_on_early_ctrl_c)


def _main_quiet_on_early_ctrl_c() -> int:
    try:
        return main()
    except KeyboardInterrupt:  # Ctrl-C before the stop handlers were installed: a quiet stop
        return EXIT_INTERRUPTED + 2  # SIGINT


if __name__ == "__main__":
    run()
