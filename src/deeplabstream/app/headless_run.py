"""The headless command's run, once its command line is read (app.headless).

Its imports are the session's whole stack (seconds), loaded only after Ctrl-C is taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deeplabstream.app.arguments import absolute, default_settings
from deeplabstream.app.display.screen import has_display
from deeplabstream.app.stop_requests import StopRequests
from deeplabstream.app.verify_after import EXIT_STOPPED, verify_in_console
from deeplabstream.core.control import StopRequested
from deeplabstream.core.device_lock import DeviceBusyError
from deeplabstream.core.errors import DeepLabStreamError, DeviceError, SettingsError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.logs import LogTarget, configure_process_logging
from deeplabstream.hardware.stimulation.simulated_board import SimulatedBoard
from deeplabstream.live.session.device_locks import lock_session_devices
from deeplabstream.live.session.live import LiveSession
from deeplabstream.live.session.preflight import (
    absent_device_problems,
    check_plan,
    output_folder_problems,
    recording_space_problems,
)
from deeplabstream.live.session.report.summary import summary_lines as session_summary_lines
from deeplabstream.live.session.runner import SessionRunner, install_stop_signals
from deeplabstream.settings import Settings, load_settings
from deeplabstream.settings.effective import resolve_cameras

hold_here("command-import")  # a fault test's chosen moment: the command's stack is imported

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_checks(args: argparse.Namespace, stops: StopRequests) -> int:
    """Run what the command line asks (settings read, checked, locked, streamed); exit code."""
    log_level = getattr(logging, args.log_level)
    configure_process_logging(LogTarget(log_level), "main")
    try:
        # Without --settings: the file beside the launcher, else the current folder's.
        file = args.settings if args.settings is not None else default_settings(sys.argv[0])
        settings = load_settings(file)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if args.deadline is not None:
        settings = dataclasses.replace(
            settings,
            experiment=dataclasses.replace(settings.experiment, deadline_ms=args.deadline),
        )
    # The run's plan, made once here where the command line meets the file: --model replaces
    # [Pose] MODEL_PATH (a camera's own MODEL_PATH still wins) in the plan's settings, which the
    # session and session.json take, and the checks name it (settings/effective.py).
    model = absolute(args.model) if args.model is not None else None
    plan = resolve_cameras(settings, model=model, experiment=args.experiment)
    settings = plan.settings
    problems = check_plan(
        plan,
        pose=bool(
            args.pose_enabled
            or args.experiment_enabled
            or args.benchmark_enabled
            or args.latency_test
        ),
        experiment=bool(args.experiment_enabled),
        experiment_option=args.experiment,
    )
    problems += output_folder_problems(settings, args.output_dir)
    if args.recording_enabled:  # a disk too full to record is refused before anything starts
        problems += recording_space_problems(settings, args.output_dir)
    if problems:
        print("Error: cannot start; nothing was started:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE

    hold_here("main-before-start")  # a fault test's chosen moment (core/fault_hooks.py)
    if stops.reason is not None:
        print(stops.said)
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
    # Locked, the experiment's devices are asked whether they are there (a board's HELLO):
    # an absent one is refused now, before a camera opens or a session folder is made.
    absent = absent_device_problems(plan) if args.experiment_enabled else []
    if absent:
        lock.release()
        print("Error: cannot start; nothing was started:", file=sys.stderr)
        for problem in absent:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.latency_test:
        try:
            return _latency_test(settings, args, log_level, stops)
        finally:
            lock.release()
    stream = LiveSession(
        settings, output_dir=args.output_dir, max_frames=args.frames, log_level=log_level, plan=plan
    )
    for warning in stream.start_warnings():  # said before anything starts; session.json too
        print(f"Warning: {warning}", flush=True)
    # --frames alone means "this many frames": [Session] PLANNED_DURATION does not cut it short.
    planned = None if args.frames is not None else settings.session.planned_duration
    runner = SessionRunner(stream, duration_s=args.duration or planned)
    stops.forward_to(runner.signal_stop)
    started = False
    try:
        # Each step blocks (cameras opening, the model loading); a stop request made meanwhile
        # ends the wait at once (stop_requested), and then nothing more starts.
        def stopping() -> str | None:
            return runner.stop_reason

        steps: list[Callable[[], object]] = [lambda: stream.open(stop_requested=stopping)]
        if args.pose_enabled or args.experiment_enabled or args.benchmark_enabled:
            steps.append(
                lambda: stream.pose.start_analysis(
                    experiment=args.experiment_enabled,
                    stop_requested=stopping,
                    # the experiment as the checks read it: one plan, read once
                    experiment_plan=plan.experiment_plan() if args.experiment_enabled else None,
                )
            )
        if args.recording_enabled:
            steps.append(stream.start_recording)
        steps.append(stream.start)
        started = _start_up(steps, runner)
        if not started:
            pass  # stopped during start-up: stream.stop below finalises what was made
        elif not args.headless and has_display():
            # Qt loads only with a preview: a display was found, and --headless not given.
            from deeplabstream.app.gui.preview import run_preview

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
    if settings.session.verify == "after":
        stopped = _verify_after(stream)
        if stopped is not None:
            return stopped
    return EXIT_FAILED if stream.errors else EXIT_OK


def _verify_after(stream: LiveSession) -> int | None:
    """Verify the recorded session now and print its verdict (``[Session] VERIFY = after``)."""
    # The verdict does not change the exit code; a stop (Ctrl-C, SIGTERM) returns 130 or 143.
    folder = stream.session_dir
    if folder is None or not stream.recorded_anything:
        print("Verify (VERIFY = after): nothing was recorded, so there is nothing to verify")
        return None
    code = verify_in_console(folder, stream.settings.source_file)
    return code if code in EXIT_STOPPED.values() else None


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


def _stopped_during_start_up(stream: LiveSession, stops: StopRequests) -> int:
    """Say that the run stopped during its start-up and what became of its folder; exit code."""
    # A folder with nothing recorded or analysed is removed (as a preview's); one with a
    # recording is kept, with the stop as its stop_reason.
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
    if stream.session_dir is None or stream.pose.analysis is None:
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
    # Imported here: with pandas they cost every session's start about half a second of CPU.
    from deeplabstream.live.selftest.benchmark_mode import (
        benchmark_lines,
        build_benchmark,
        write_benchmark,
    )
    from deeplabstream.live.selftest.naive_loop import run_naive_loop, worker_threads

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
            stream.camera_plan,
            captured,
            args.experiment_enabled,
            stop_requested=lambda: bool(stop),
            record=record,
        )
    data = build_benchmark(
        stream.session_dir,
        stream.camera_plan,
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
    settings: Settings, args: argparse.Namespace, log_level: int, stops: StopRequests
) -> int:
    """``--latency-test``: stream with the board's test, then print and write the figures."""
    # Imported here, as the benchmark's: only this command pays for them.
    from deeplabstream.live.selftest.latency_analysis import LatencyAnalysisError
    from deeplabstream.live.selftest.latency_run import (
        finish_latency_test,
        note_simulated_board,
        plan_latency_test,
        summary_lines,
        write_experiment,
    )

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
    stops.forward_to(runner.signal_stop)
    print(
        f"Latency test for {duration:g} s: LED on channel {plan.spec.channel} of "
        f"{plan.spec.device}, camera {plan.camera}, flashes of {plan.spec.on_s * 1e3:g} ms "
        f"{plan.spec.min_interval_s:g}-{plan.spec.max_interval_s:g} s apart",
        flush=True,
    )

    def start_analysis() -> None:
        assert stream.session_dir is not None
        experiment_file = write_experiment(stream.session_dir, plan)
        stream.pose.start_analysis(
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
    """Print the summary, rendered from session.json's figures (live/session/report/summary.py)."""
    if stream.record is not None:
        print("\n".join(session_summary_lines(stream.record, stream.session_dir)))
        return
    print(f"Stopped: {stream.stop_reason}")  # no session folder was made: nothing was counted
    for error in stream.errors:
        print(f"  error: {error}")
