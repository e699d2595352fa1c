"""Headless checks of a rig: stream the configured cameras, report their rates, optionally record.

    python DeepLabStream.py [--settings PATH] [--headless] [--recording-enabled]
                            [--frames N | --duration S] [--output-dir DIR]
                            [--pose-enabled] [--experiment-enabled] [--benchmark-enabled]
    python DeepLabStream.py --latency-test [--simulated-board] [--duration S] [--settings PATH]
                            [--output-dir DIR] [--recording-enabled]

Ctrl-C, ``q`` in the window, the frame or time limit, or the end of every video stop it cleanly:
processes joined, shared memory released, files finalised. Exit codes: 0 done, 1 a camera or the
recording failed (files up to the failure are kept), or the loop missed its deadline or stalled
(``session.json`` -> ``health``), 2 bad settings or command line, 130 (143 for
SIGTERM) stopped by Ctrl-C during the start-up (before the cameras streamed: a folder with
nothing recorded is removed, as the app removes a preview's; no child process prints a traceback).

``--benchmark-enabled`` streams ``--frames`` (default 3000) frames per camera with pose estimation,
then runs the naive single-thread loop on the same model and frames, prints a table and writes
``benchmark.json`` into the session folder (``docs/outputs.md`` explains every field).

``--latency-test`` runs the latency self-test: the stimulus board flashes an LED in the camera's
view, the app answers each flash it sees, and the board measures light on -> answer received on
its own clock; ``latency_test.json`` sets that beside the app's own account
(docs/latency-test.md). ``--simulated-board`` runs the board's firmware under simavr and draws
its LED into the simulated camera.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeplabstream.app.arguments import positive_float, positive_int
from deeplabstream.app.display.screen import has_display
from deeplabstream.core.control import StopRequested
from deeplabstream.core.device_lock import DeviceBusyError
from deeplabstream.core.errors import DeepLabStreamError, DeviceError, SettingsError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.logs import LogTarget, configure_process_logging
from deeplabstream.core.optional import exit_with
from deeplabstream.live.session.summary import summary_lines as session_summary_lines
from deeplabstream.settings.sections import parse_deadline

if TYPE_CHECKING:  # imported lazily at run time, so --help answers at once
    from deeplabstream.live.session.live import LiveSession

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128  # + the signal's number (130: Ctrl-C, 143: SIGTERM) during start-up
BENCHMARK_FRAMES = 3000  # per camera, unless --frames or --duration says otherwise


def _deadline_option(text: str) -> float | str:
    try:
        return parse_deadline(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of ms > 0, auto or off"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        description="Stream the cameras of a settings file; report rates; optionally record.",
    )
    parser.add_argument(
        "--settings", type=Path, help="settings file (default: the settings.ini beside this script)"
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
        "--experiment", help="experiment name or file (overrides [Experiment] NAME)"
    )
    parser.add_argument(
        "--deadline",
        type=_deadline_option,
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


class _StopRequests:
    """Ctrl-C and SIGTERM from the very start: remembered, then passed on to the run.

    A stop during start-up (imports, opening cameras, loading the model) is honoured at once
    (the waits for cameras and the model look at it), instead of raising KeyboardInterrupt or
    waiting for the start-up to end; such a run exits with :attr:`exit_code`.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signum: int | None = None
        self._forward: Any = None

    @property
    def exit_code(self) -> int:
        """The exit code of a run stopped by the first signal, as a shell reports it (130)."""
        return EXIT_INTERRUPTED + (self.signum or 2)

    def install(self) -> None:
        import signal

        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    def forward_to(self, on_stop: Any) -> None:
        """Pass this and later requests to ``on_stop`` (a request already made: at once)."""
        self._forward = on_stop
        if self.reason is not None:
            on_stop(self.reason)

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if self._forward is not None:
            self._forward(reason)

    def _handler(self, signum: int, frame: Any) -> None:
        import signal

        if self.signum is None:
            self.signum = signum
        self(
            "Ctrl-C received"
            if signum == signal.SIGINT
            else f"{signal.Signals(signum).name} received"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    stops = _StopRequests()
    stops.install()  # before anything slow: imports, settings, cameras, the model
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.simulated_board and not args.latency_test:
        parser.error("--simulated-board goes with --latency-test")
    if args.latency_test and (args.benchmark_enabled or args.frames is not None):
        parser.error("--latency-test runs for --duration S; not with --frames or --benchmark")
    if args.benchmark_enabled and args.frames is None and args.duration is None:
        args.frames = BENCHMARK_FRAMES

    # Imported here, not at the top: the session's stack takes seconds to import, and --help
    # answers at once.
    from deeplabstream.live.session.device_locks import lock_session_devices
    from deeplabstream.live.session.live import LiveSession
    from deeplabstream.live.session.preflight import check_before_start
    from deeplabstream.live.session.runner import SessionRunner
    from deeplabstream.settings import load_settings

    log_level = getattr(logging, args.log_level)
    configure_process_logging(LogTarget(log_level), "main")
    try:
        settings = load_settings(args.settings)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if args.experiment is not None:
        settings = dataclasses.replace(
            settings, experiment=dataclasses.replace(settings.experiment, name=args.experiment)
        )
    if args.deadline is not None:
        settings = dataclasses.replace(
            settings,
            experiment=dataclasses.replace(settings.experiment, deadline_ms=args.deadline),
        )
    if args.model is not None:
        settings = dataclasses.replace(
            settings, pose=dataclasses.replace(settings.pose, model_path=args.model.resolve())
        )
    problems = check_before_start(
        settings,
        pose=bool(
            args.pose_enabled
            or args.experiment_enabled
            or args.benchmark_enabled
            or args.latency_test
        ),
        experiment=bool(args.experiment_enabled),
        model_option=args.model,
        experiment_option=args.experiment,
    )
    if problems:
        print("Error: cannot start; nothing was started:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE

    hold_here("main-before-start")  # a fault test's chosen moment (core/fault_hooks.py)
    if stops.reason is not None:
        print(f"Stopped before the start: {stops.reason}; nothing was started")
        return stops.exit_code

    # Every camera and device this run opens is locked: a second rig with its own cameras and
    # board runs beside this one; one naming a camera or board in use is refused here.
    try:
        lock = lock_session_devices(
            settings, devices=bool(args.experiment_enabled or args.latency_test)
        )
    except DeviceBusyError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.latency_test:
        try:
            return _latency_test(settings, args, log_level, stops)
        finally:
            lock.release()
    stream = LiveSession(
        settings, output_dir=args.output_dir, max_frames=args.frames, log_level=log_level
    )
    # --frames alone means "this many frames": [Session] PLANNED_DURATION does not cut it short.
    planned = None if args.frames is not None else settings.session.planned_duration
    runner = SessionRunner(stream, duration_s=args.duration or planned)
    stops.forward_to(runner.request_stop)
    started = False
    try:
        # Each step blocks (cameras opening, the model loading); a stop request made meanwhile
        # ends the wait at once (stop_requested), and then nothing more starts.
        def stopping() -> str | None:
            return runner.stop_reason

        steps: list[Callable[[], object]] = [lambda: stream.open(stop_requested=stopping)]
        if args.pose_enabled or args.experiment_enabled or args.benchmark_enabled:
            steps.append(
                lambda: stream.start_analysis(
                    experiment=args.experiment_enabled, stop_requested=stopping
                )
            )
        if args.recording_enabled:
            steps.append(stream.start_recording)
        steps.append(stream.start)
        started = _start_up(steps, runner)
        if not started:
            pass  # stopped during start-up: stream.stop below finalises what was made
        elif not args.headless and has_display():
            from deeplabstream.app.gui.preview import run_preview  # Qt: only with a preview

            run_preview(stream, runner)
        else:
            runner.run_headless()
    except (DeepLabStreamError, OSError, MemoryError) as error:  # OSError: the disk, a port
        return _stop_at_error(stream, error)
    finally:
        reason = runner.stop_reason or "stop requested"
        stream.stop(reason if started else f"{reason} during start-up")
        lock.release()
    if not started:
        return _stopped_during_start_up(stream, stops)
    _print_summary(stream)
    if args.benchmark_enabled:
        _benchmark(stream, args)
    return EXIT_FAILED if stream.errors else EXIT_OK


def _stop_at_error(stream: LiveSession, error: Exception) -> int:
    """Report a failed start or run, record it in the session and stop; return the exit code."""
    print(f"Error: {error}", file=sys.stderr)
    if stream.session_dir is not None:
        stream.report_error(str(error))
    stream.stop(f"error: {error}")
    return EXIT_FAILED


def _start_up(steps: Sequence[Callable[[], object]], runner: Any) -> bool:
    """Run the start-up steps in order; False when a stop request came before or during one."""
    for number, step in enumerate(steps, start=1):
        hold_here(f"start-up-step-{number}")  # a fault test's chosen moment
        if runner.stop_reason is not None:
            return False
        try:
            step()
        except StopRequested:  # a wait ended by the stop; what it started has ended
            return False
    return runner.stop_reason is None


def _stopped_during_start_up(stream: LiveSession, stops: _StopRequests) -> int:
    """Say that the run stopped during its start-up, and what became of its folder; exit code.

    Nothing streamed yet: a folder with nothing recorded or analysed is removed, as the app
    removes a preview's (:meth:`LiveSession.discard_preview`); one with a recording started
    is kept, finalised with the stop as its ``stop_reason``.
    """
    folder = stream.session_dir
    # (No session folder yet, the stream's stop had nothing to record its reason in.)
    print(f"Stopped: {stream.stop_reason or f'{stops.reason} during start-up'}")
    if folder is not None and stream.discard_preview():
        print(f"Nothing was recorded or analysed: its session folder {folder} was removed")
    elif folder is not None:
        print(f"Session folder (finalised): {folder}")
    for error in stream.errors:
        print(f"  error: {error}")
    return EXIT_FAILED if stream.errors else stops.exit_code


def _benchmark(stream: LiveSession, args: argparse.Namespace) -> None:
    """Run the benchmark mode's second half: the naive loop, then benchmark.json and its table."""
    # Imported here, as in main(): the plugin registries behind it cost --help its speed.
    from deeplabstream.live.session.device_locks import lock_session_devices

    if stream.session_dir is None or stream.analysis is None:
        print("No benchmark: pose estimation did not run.", file=sys.stderr)
        return
    try:  # the naive loop opens the session's cameras (and devices) again: lock them again
        lock = lock_session_devices(stream.settings, devices=bool(args.experiment_enabled))
    except DeviceBusyError as error:
        print(f"No benchmark: the naive loop cannot run. {error}", file=sys.stderr)
        return
    try:
        _naive_and_report(stream, args)
    finally:
        lock.release()


def _naive_and_report(stream: LiveSession, args: argparse.Namespace) -> None:
    """Run the naive loop on the session's frames, then write benchmark.json and print it."""
    # Imported here, as in main(): the pose stack takes seconds, and --help answers at once.
    from deeplabstream.live.selftest.benchmark_mode import (
        benchmark_lines,
        build_benchmark,
        write_benchmark,
    )
    from deeplabstream.live.selftest.naive_loop import run_naive_loop, worker_threads
    from deeplabstream.live.session.runner import install_stop_signals

    assert stream.session_dir is not None
    captured = {name: stats["captured"] for name, stats in stream.camera_stats().items()}
    stop: list[str] = []
    install_stop_signals(stop.append)  # Ctrl-C ends the naive loop too; what it has is reported
    recorded = bool(args.recording_enabled)
    naive_runs: dict[bool, dict[str, Any]] = {}
    # The same work first (recording when the session recorded), then without recording.
    for record in (True, False) if recorded else (False,):
        print(
            f"\nNaive single-thread loop on the same model and frames ({sum(captured.values())} "
            f"frames due, {'recording' if record else 'not recording'}; Ctrl-C stops it)...",
            flush=True,
        )
        naive_runs[record] = run_naive_loop(
            stream.settings,
            captured,
            args.experiment_enabled,
            stop_requested=lambda: bool(stop),
            record=record,
        )
    data = build_benchmark(
        stream.session_dir,
        stream.settings,
        frames_requested=args.frames,
        naive=naive_runs[recorded],
        naive_no_recording=naive_runs[False] if recorded else None,
        threads=worker_threads(stream.settings),
    )
    path = write_benchmark(stream.session_dir, data)
    print()
    print("\n".join(benchmark_lines(data)))
    print(f"\nBenchmark written to {path}")


def _latency_test(
    settings: Any, args: argparse.Namespace, log_level: int, stops: _StopRequests
) -> int:
    """``--latency-test``: stream with the board's test, then print and write the figures."""
    import shutil
    import tempfile

    # Imported here, not at the top: the session's stack takes seconds to import, and --help
    # answers at once.
    from deeplabstream.hardware.stimulation.simulated_board import (
        SimulatedBoard,
    )
    from deeplabstream.live.selftest.latency_analysis import LatencyAnalysisError
    from deeplabstream.live.selftest.latency_run import (
        finish_latency_test,
        note_simulated_board,
        plan_latency_test,
        summary_lines,
        write_experiment,
    )
    from deeplabstream.live.session.live import LiveSession
    from deeplabstream.live.session.runner import SessionRunner

    board_folder = Path(tempfile.mkdtemp(prefix="dls-board-"))
    board = SimulatedBoard(board_folder) if args.simulated_board else None
    try:
        if board is not None:
            board.start()
        plan = plan_latency_test(settings, board)
    except (SettingsError, DeviceError) as error:  # the test's settings; the simulated board
        print(f"Error: {error}", file=sys.stderr)
        if board is not None:
            board.stop()
        return EXIT_USAGE if isinstance(error, SettingsError) else EXIT_FAILED
    duration = args.duration or settings.latency_test.duration
    stream = LiveSession(plan.settings, output_dir=args.output_dir, log_level=log_level)
    runner = SessionRunner(stream, duration_s=duration)
    stops.forward_to(runner.request_stop)
    print(
        f"Latency test for {duration:g} s: LED on channel {plan.spec.channel} of "
        f"{plan.spec.device}, camera {plan.camera}, flashes of {plan.spec.on_s * 1e3:g} ms "
        f"{plan.spec.min_interval_s:g}-{plan.spec.max_interval_s:g} s apart",
        flush=True,
    )

    def start_analysis() -> None:
        assert stream.session_dir is not None
        experiment_file = write_experiment(stream.session_dir, plan)
        stream.start_analysis(
            experiment=True,
            experiment_name=str(experiment_file),
            latency_test=plan.spec,
            stop_requested=lambda: runner.stop_reason,
        )

    steps = [lambda: stream.open(stop_requested=lambda: runner.stop_reason), start_analysis]
    if args.recording_enabled:
        steps.append(stream.start_recording)
    steps.append(stream.start)
    started = False
    try:
        started = _start_up(steps, runner)
        if started:
            runner.run_headless()
    except (DeepLabStreamError, OSError, MemoryError) as error:  # OSError: the disk, a port
        return _stop_at_error(stream, error)
    finally:
        reason = runner.stop_reason or "stop requested"
        stream.stop(reason if started else f"{reason} during start-up")
        if board is not None:
            board.stop()
            if stream.session_dir is not None:
                note_simulated_board(stream.session_dir, board)
        shutil.rmtree(board_folder, ignore_errors=True)
    if not started:
        return _stopped_during_start_up(stream, stops)
    _print_summary(stream)
    assert stream.session_dir is not None
    try:
        figures = finish_latency_test(stream.session_dir, plan)
    except LatencyAnalysisError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print()
    print("\n".join(summary_lines(figures)))
    print(f"\nLatency test written to {stream.session_dir / 'latency_test.json'}")
    if not figures["events"]:
        print("Error: no flash was answered and accounted for", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if stream.errors else EXIT_OK


def _print_summary(stream: LiveSession) -> None:
    """Print the summary, rendered from the figures session.json holds (live/session/summary.py)."""
    if stream.record is not None:
        print("\n".join(session_summary_lines(stream.record, stream.session_dir)))
        return
    print(f"Stopped: {stream.stop_reason}")  # no session folder was made: nothing was counted
    for error in stream.errors:
        print(f"  error: {error}")


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (130 for an early Ctrl-C)."""
    exit_with(_main_quiet_on_early_ctrl_c)


def _main_quiet_on_early_ctrl_c() -> int:
    try:
        return main()
    except KeyboardInterrupt:  # Ctrl-C before the stop handlers were installed: a quiet stop
        return 130


if __name__ == "__main__":
    run()
