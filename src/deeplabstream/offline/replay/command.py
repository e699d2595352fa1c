"""Offline replay: run recorded videos through the live pipeline, as if each were the camera.

Exit codes: 0 every video done, 1 some video failed, 2 bad command line or settings, 130 / 143
Ctrl-C / SIGTERM. docs/outputs.md, "Replay sessions".
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

from deeplabstream.app.arguments import absolute, default_settings_text, positive_int
from deeplabstream.app.stop_requests import take_stop_signals
from deeplabstream.core.errors import DeepLabStreamError, SettingsError
from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.optional import exit_with
from deeplabstream.live.session.preflight import check_plan, output_folder_problems
from deeplabstream.offline.replay.batch import BatchStop, run_local, run_ray
from deeplabstream.offline.replay.job import ReplayOptions, ReplayResult
from deeplabstream.offline.replay.progress import ProgressView, failure_reason
from deeplabstream.offline.replay.regions import region_camera_problems
from deeplabstream.offline.replay.session import replay_plan
from deeplabstream.offline.replay.videos import ReplayError, camera_name_for, find_videos
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import CameraPlan, resolve_cameras
from deeplabstream.settings.sections import Settings, deadline_option

hold_here("command-import")  # a fault test's chosen moment: the command's stack is imported

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128  # + the signal's number (130: Ctrl-C, 143: SIGTERM), as a shell says


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        description="Replay videos through the live pipeline (pose, experiment), one session "
        "folder per video.",
    )
    parser.add_argument(
        "videos", nargs="+", type=Path, metavar="VIDEO", help="video files or folders of videos"
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="settings file whose [Pose], [Experiment] and [Device ...] sections are used "
        f"(default: {default_settings_text('deeplabstream-replay')}); its cameras are replaced "
        "by the videos",
    )
    parser.add_argument(
        "--model", type=Path, help="pose model folder or file (overrides [Pose] MODEL_PATH)"
    )
    experiment = parser.add_mutually_exclusive_group()
    experiment.add_argument(
        "--experiment", help="experiment name or file (overrides [Experiment] NAME)"
    )
    experiment.add_argument(
        "--no-experiment", action="store_true", help="pose estimation only, no experiment"
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--fast",
        dest="mode",
        action="store_const",
        const="fast",
        help="analyse every frame, as fast as the machine allows (default)",
    )
    pace.add_argument(
        "--realtime",
        dest="mode",
        action="store_const",
        const="realtime",
        help="play at the video's rate and analyse the newest frame, as live",
    )
    parser.set_defaults(mode="fast")
    parser.add_argument(
        "--deadline",
        type=deadline_option,
        metavar="MS|auto|off",
        help="the loop's deadline in ms, auto or off (overrides [Experiment] DEADLINE_MS); "
        "judged in --realtime replays, where frames come at the video's rate",
    )
    parser.add_argument(
        "--annotated-video",
        action="store_true",
        help="also write <video>.annotated.mp4 with the keypoints drawn",
    )
    parser.add_argument("--output-dir", type=Path, help="folder for the session folders")
    parser.add_argument("--show", action="store_true", help="show the live view while it runs")
    parser.add_argument(
        "--camera",
        type=camera_name,
        metavar="NAME",
        help="play every video as the camera NAME (default: a camera named after each video): "
        "the live camera whose regions the experiment's triggers read",
    )
    parser.add_argument(
        "--log-devices",
        action="store_true",
        help="replace every [Device] by a log-only device (a dry run: no hardware is driven)",
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--jobs", type=positive_int, default=1, help="videos replayed at once (default 1)"
    )
    scale.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the batch on Ray, one task per video: a local Ray cluster, or the cluster at "
        "ADDRESS",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def options_from(args: argparse.Namespace) -> ReplayOptions:
    """Return the replay options the command line asks for (paths absolute for other processes)."""
    return ReplayOptions(
        settings_file=absolute(args.settings) if args.settings else None,
        mode=args.mode,
        model=absolute(args.model) if args.model else None,
        experiment=not args.no_experiment,
        experiment_name=args.experiment,
        deadline_ms=args.deadline,
        annotated_video=args.annotated_video,
        output_dir=absolute(args.output_dir) if args.output_dir else None,
        show=args.show,
        log_devices=args.log_devices,
        log_level=getattr(logging, args.log_level),
        camera=args.camera,
    )


def camera_name(text: str) -> str:
    """``--camera``: a camera's name as settings write it (letters, digits, ``_`` and ``-``)."""
    if not text or camera_name_for(Path(text)) != text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a camera name: use letters, digits, _ and - (as [Camera NAME])"
        )
    return text


def camera_problems(settings: Settings, videos: list[Path], options: ReplayOptions) -> list[str]:
    """Return each video whose camera the experiment's triggers do not read (found at once)."""
    if not options.experiment:
        return []
    batch = _batch_plan(settings, options)
    problems = []
    for video in videos:
        camera = options.camera or camera_name_for(video)
        problems += region_camera_problems(batch, camera, video)
    return problems


def check_inputs(options: ReplayOptions, videos: list[Path]) -> list[str]:
    """Problems that would fail every video, found before anything starts, as a live start does.

    The settings, the cameras the regions read, then the live preflight on the first video's plan.
    """
    try:
        settings = load_settings(options.settings_file, cameras_required=False)
    except SettingsError as error:
        return [str(error)]
    try:
        plan = replay_plan(settings, videos[0], options)
    except (DeepLabStreamError, ValueError) as error:
        return [str(error)]
    mismatched = camera_problems(settings, videos, options)  # regions that would see no pose
    if mismatched:
        return mismatched
    problems = output_folder_problems(settings, options.output_dir)
    return problems + check_plan(
        plan, True, options.experiment, experiment_option=options.experiment_name
    )


def _batch_plan(settings: Settings, options: ReplayOptions) -> CameraPlan:
    """Return the plan every video of the batch shares: no camera of its own, the options'."""
    experiment = settings.experiment
    if options.experiment_name is not None:
        experiment = replace(experiment, name=options.experiment_name)
    batch = replace(settings, cameras=(), experiment=experiment)
    return resolve_cameras(batch, model=options.model)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    # The launcher took them first thing (deeplabstream.launch); a stop since is in there.
    early = take_stop_signals()
    args = build_parser().parse_args(argv)
    if early.reason is not None:  # during the imports: no video is looked at
        print(early.said)
        return early.exit_code
    options = options_from(args)
    videos, missing = find_videos(args.videos)
    if not videos:
        print("\n".join(missing or ["no video given"]), file=sys.stderr)
        return EXIT_USAGE
    # Before any video starts, as a live start: nothing made when one would fail them all.
    problems = check_inputs(options, videos)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_USAGE
    view = ProgressView(videos)
    stop = BatchStop()
    try:
        if args.ray is not None:
            results = run_ray(videos, options, view, args.ray or None)
        else:
            results = run_local(videos, options, view, args.jobs, stop)
    except ReplayError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    print_report(results, missing, options)
    if stop.signum is not None:
        return interrupted(stop.signum, results)
    failed = bool(missing) or any(not r.ok for r in results)
    return EXIT_FAILED if failed else EXIT_OK


def interrupted(signum: int, results: list[ReplayResult]) -> int:
    """Say that the batch was stopped by a signal; the exit code of a run ended by it."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    started = [r for r in results if r.session_dir is not None]
    print(
        f"Interrupted by {name}: the batch was stopped; {len(started)} replay(s) stopped with "
        f"their files kept, {len(results) - len(started)} not replayed.",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED + signum


def print_report(results: list[ReplayResult], missing: list[str], options: ReplayOptions) -> None:
    """Report the batch's end: how many videos were replayed, and every failure with its reason."""
    done = [r for r in results if r.ok]
    failures = [failure_reason(r) for r in results if not r.ok] + missing
    print(
        f"\nReplayed {len(done)} of {len(results) + len(missing)} video(s) ({options.mode})"
        + (f"; {len(failures)} failed:" if failures else ".")
    )
    for failure in failures:
        print(f"  - {failure}")
    for result in done:
        print(f"  {result.video.name}: {result.session_dir}")
    for warning in (w for result in results for w in result.warnings):
        print(f"  warning: {warning}")


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
