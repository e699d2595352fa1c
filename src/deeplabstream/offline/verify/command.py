"""``deeplabstream-verify SESSION_FOLDER``: check a session against its own recording.

Exit codes: 0 the live session agrees with the offline analysis within tolerance, 1 it does not
(the reasons are printed and in ``verify/summary.json``), 2 it cannot be verified (no such
session, no recording, no poses: the message says what to do).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.offline.replay.job import Progress, ProgressSink
from deeplabstream.offline.verify.report import write_report
from deeplabstream.offline.verify.verification import (
    DEFAULT_TOLERANCE_PX,
    REPORT_FILE,
    SUMMARY_FILE,
    VERIFY_FOLDER,
    Verification,
    verify_session,
)

EXIT_AGREES, EXIT_DIFFERS, EXIT_CANNOT = 0, 1, 2
Say = Callable[[str], None]


def build_parser() -> argparse.ArgumentParser:
    """Return the command's parser."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-verify",
        description=(
            "Analyse a session's recordings again, every frame, with the session's own model, "
            "settings and experiment, and compare the live keypoints and events with it. "
            f"Writes {VERIFY_FOLDER}/{SUMMARY_FILE} and {VERIFY_FOLDER}/{REPORT_FILE} in the "
            "session folder. Exit 0: agrees; 1: differs (why is printed); 2: cannot verify."
        ),
    )
    parser.add_argument("session", type=Path, help="the session folder (it holds session.json)")
    parser.add_argument(
        "--tolerance-px",
        type=float,
        default=DEFAULT_TOLERANCE_PX,
        help="with a lossy (H.264) recording: the largest p99 keypoint difference, px, on frames "
        f"whose only difference is the compression (default {DEFAULT_TOLERANCE_PX}); frames with "
        "no cause to differ must always agree to the bit",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say: Say = (lambda _text: None) if args.quiet else (lambda text: print(text, flush=True))
    try:
        verification = verify_session(args.session, args.tolerance_px, _progress(say))
        write_report(verification, verification.folder / VERIFY_FOLDER / REPORT_FILE)
    except (DeepLabStreamError, OSError, ValueError) as error:
        print(f"deeplabstream-verify: cannot verify: {error}", file=sys.stderr, flush=True)
        return EXIT_CANNOT
    _print_result(verification, say)
    return EXIT_AGREES if verification.agrees else EXIT_DIFFERS


def _progress(say: Say) -> ProgressSink:
    last: dict[str, int] = {}

    def report(update: Progress) -> None:
        step = update.done // 300
        if last.get(update.stage) == step and update.stage == "replaying":
            return
        last[update.stage] = step
        total = f" of {update.total}" if update.total else ""
        say(f"verify: {update.stage} {update.video.name}: {update.done}{total} frames")

    return report


def _print_result(verification: Verification, say: Say) -> None:
    summary = verification.summary
    lines = [f"verify: {verification.folder}"]
    for name, camera in summary["cameras"].items():
        lines.append(
            f"  {name}: {camera['frames_compared']} frames compared, "
            f"{camera['frames_equal_to_the_bit']} equal to the bit, "
            f"{camera['frames_skipped_live']} skipped live, "
            f"{camera['frames_not_in_recording']} not in the recording"
        )
    events = summary["events"]
    for kind, counts in events["counts"].items():
        lines.append(
            f"  {kind}: {counts['matched']} matched ({counts['exact']} on the same frame), "
            f"{counts['live_only']} live only, {counts['offline_only']} offline only"
        )
    lines.append(
        f"  offline decisions on frames skipped live: "
        f"{events['offline_decisions_on_frames_skipped_live']}"
    )
    lines += [f"  note: {note}" for note in summary["notes"]]
    report = verification.folder / VERIFY_FOLDER / REPORT_FILE
    lines.append(f"  report: {report}")
    for line in lines:
        say(line)
    print(f"verdict: {summary['verdict']}", flush=True)
    for reason in summary["reasons"]:
        print(f"  why: {reason}", flush=True)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
