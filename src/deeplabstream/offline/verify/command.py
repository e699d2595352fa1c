"""``deeplabstream-verify SESSION_FOLDER``: check a session against its own recording.

Exit codes: 0 agrees (everything checked agrees), 1 differs (the reasons are printed and in
``verify/summary.json``), 2 it cannot be verified at all (no such session, no recording, no
poses: the message says what to do), 3 agrees in part (nothing differs, but some of it could not
be checked: printed, with why).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.optional import exit_with
from deeplabstream.offline.replay.job import Progress, ProgressSink
from deeplabstream.offline.verify.keypoints import CATEGORIES
from deeplabstream.offline.verify.report import write_report
from deeplabstream.offline.verify.verification import (
    DEFAULT_TOLERANCE_PX,
    REPORT_FILE,
    SUMMARY_FILE,
    VERIFY_FOLDER,
    Verification,
    verify_session,
)

EXIT_AGREES, EXIT_DIFFERS, EXIT_CANNOT, EXIT_IN_PART = 0, 1, 2, 3
EXIT_CODES = {"agrees": EXIT_AGREES, "differs": EXIT_DIFFERS, "agrees in part": EXIT_IN_PART}
Say = Callable[[str], None]


def build_parser() -> argparse.ArgumentParser:
    """Return the command's parser."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-verify",
        description=(
            "Check a session against its own recording: every file against the digest recorded "
            "at its close, the decisions re-derived by its recorded experiment from its live "
            "keypoints (exactly), the keypoints re-derived by its model from its recording on "
            "the live schedule (to the bit when lossless). Writes "
            f"{VERIFY_FOLDER}/{SUMMARY_FILE} and {VERIFY_FOLDER}/{REPORT_FILE} in the session "
            "folder. Exit 0: agrees; 1: differs (why is printed); 2: cannot verify; 3: agrees "
            "in part (what was not checked is printed)."
        ),
    )
    parser.add_argument("session", type=Path, help="the session folder (it holds session.json)")
    parser.add_argument(
        "--tolerance-px",
        type=float,
        default=DEFAULT_TOLERANCE_PX,
        help="with a lossy (H.264) recording: the codec's share of each frame's bound, px "
        f"(default {DEFAULT_TOLERANCE_PX}); the model's output grid in frame pixels is added "
        "per camera. A lossless recording is checked to the bit.",
    )
    parser.add_argument(
        "--decisions-only",
        action="store_true",
        help="check the files and re-derive the decisions only (seconds for an hour-long "
        "session); the recording is not analysed again, so the verdict is at best 'agrees in "
        "part'",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say: Say = (lambda _text: None) if args.quiet else (lambda text: print(text, flush=True))
    try:
        verification = verify_session(
            args.session, args.tolerance_px, _progress(say), keypoints=not args.decisions_only
        )
        write_report(verification, verification.folder / VERIFY_FOLDER / REPORT_FILE)
    except (DeepLabStreamError, OSError, ValueError) as error:
        print(f"deeplabstream-verify: cannot verify: {error}", file=sys.stderr, flush=True)
        return EXIT_CANNOT
    _print_result(verification, say)
    return EXIT_CODES[verification.verdict]


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
    for name, counts in summary["coverage"]["keypoints"].items():
        shares = ", ".join(
            f"{counts[c]['frames']} {c.replace('_', ' ')}"
            for c in CATEGORIES
            if counts[c]["frames"]
        )
        lines.append(f"  {name} keypoints: {shares or 'no frame analysed'}")
    for run in summary["decisions"]:
        if run["not_re_derived"]:
            lines.append(f"  {run['events_file']}: not re-derived: {run['not_re_derived']}")
        else:
            lines.append(
                f"  {run['events_file']}: {run['rows_equal']} of {run['rows_live']} decision rows "
                f"equal to the re-derived ones ({run['updates_re_derived']} updates re-run)"
            )
    files = summary["files"]
    lines.append(f"  files: {files['proven']} of {files['recorded']} unchanged since the close")
    lines += [f"  note: {note}" for note in summary["notes"]]
    lines.append(f"  report: {verification.folder / VERIFY_FOLDER / REPORT_FILE}")
    for line in lines:
        say(line)
    print(f"verdict: {summary['verdict']}", flush=True)
    for reason in summary["reasons"]:
        print(f"  differs: {reason}", flush=True)
    for item in summary["not_checked"]:
        print(f"  not checked: {item}", flush=True)


def run() -> None:
    """Console-script entry point (the current folder off the module path, as every command)."""
    exit_with(main)
