"""``deeplabstream-verify SESSION_FOLDER``: check a session against its own recording.

Design: docs/verify.md, "offline.verify.command".
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from deeplabstream.app.stop_requests import stop_signal_received
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.optional import exit_with
from deeplabstream.offline.replay.job import Progress, ProgressSink
from deeplabstream.offline.verify.keypoints import CATEGORIES
from deeplabstream.offline.verify.report import write_report
from deeplabstream.offline.verify.session_files import VerifyStopped
from deeplabstream.offline.verify.verification import (
    REPORT_FILE,
    SUMMARY_FILE,
    VERIFY_FOLDER,
    Verification,
    verify_session,
)
from deeplabstream.outputs.signature import (
    SigningError,
    fingerprint,
    installation_key,
    key_file,
    public_bytes,
    public_key_pem,
    rig_name,
    trusted_fingerprint,
)
from deeplabstream.settings.loader import SETTINGS_FILE_NAME

EXIT_AGREES, EXIT_DIFFERS, EXIT_CANNOT, EXIT_IN_PART, EXIT_UNTRUSTED = 0, 1, 2, 3, 4
EXIT_CODES = {"agrees": EXIT_AGREES, "differs": EXIT_DIFFERS, "agrees in part": EXIT_IN_PART}
Say = Callable[[str], None]


def build_parser() -> argparse.ArgumentParser:
    """Return the command's parser."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-verify",
        description=(
            "Check a session against its own recording: session.json's signature and fields, "
            "every file against the digest recorded at its close, the decisions re-derived by "
            "its recorded experiment from its live keypoints (exactly), the keypoints "
            "re-derived by its model from its recording on the live schedule (to the bit when "
            "lossless). Only the lab code the session recorded runs. Writes "
            f"{VERIFY_FOLDER}/{SUMMARY_FILE} and {VERIFY_FOLDER}/{REPORT_FILE} in the session "
            "folder. Exit 0: agrees; 1: differs (why is printed); 2: cannot verify; 3: agrees "
            "in part (what was not checked is printed); 4: nothing differs, but its signer is "
            "in no list of trusted signers; 130: stopped."
        ),
    )
    parser.add_argument(
        "session", type=Path, nargs="?", help="the session folder (it holds session.json)"
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KEY",
        help="a key you trust: its public key file (PEM, as --show-key prints it) or its "
        "fingerprint (SHA256:...); may be given again. A session signed by another key is "
        "'unsigned by your key'",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        metavar="FILE",
        help="the lab's settings file: the keys its lab trusts are in allowed_signers beside "
        "it (default: the current folder's settings.ini, if there is one; nothing is written)",
    )
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="accept a session.json that is not signed (a session from before signing, or "
        "one that never closed) or that no longer matches its signature: said, never 'agrees'",
    )
    parser.add_argument(
        "--bound-px",
        "--tolerance-px",
        dest="bound_px",
        type=float,
        default=None,
        help="with a lossy (H.264) recording: the bound per frame, px, instead of the one "
        "measured from the recording (its frames encoded again with its own settings)",
    )
    parser.add_argument(
        "--decisions-only",
        action="store_true",
        help="check session.json, the files and re-derive the decisions only (seconds for an "
        "hour-long session); the recording is not analysed again, so the verdict is at best "
        "'agrees in part'",
    )
    parser.add_argument(
        "--show-key",
        action="store_true",
        help="print this installation's public signing key (PEM) and its fingerprint, for a "
        "reviewer's --trust; made first if there is none",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.show_key:
        return _show_key()
    if args.session is None:
        parser.error("give a session folder (or --show-key)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say: Say = (lambda _text: None) if args.quiet else (lambda text: print(text, flush=True))
    _stops_end_verify()
    early = stop_signal_received()  # taken while the command imported (deeplabstream.launch)
    if early is not None:
        return _stopped(args.session, _signal_name(early), early)
    try:
        trusted = tuple(trusted_fingerprint(key) for key in args.trust)
        verification = verify_session(
            args.session,
            args.bound_px,
            _progress(say),
            keypoints=not args.decisions_only,
            trusted=trusted,
            unsigned=args.unsigned,
            settings_file=_lab_settings(args.settings),
        )
        write_report(verification, verification.folder / VERIFY_FOLDER / REPORT_FILE)
    except VerifyStopped as stop:
        return _stopped(args.session, stop.reason, stop.signum)
    except (DeepLabStreamError, OSError, ValueError) as error:
        print(f"deeplabstream-verify: cannot verify: {error}", file=sys.stderr, flush=True)
        return EXIT_CANNOT
    _print_result(verification, say)
    return exit_code(verification.summary)


def exit_code(summary: dict[str, Any]) -> int:
    """Return the exit code of a verdict: 4 when nothing differs but the signer is not trusted."""
    signature = summary.get("signature") or {}
    untrusted = signature.get("status") == "valid" and signature.get("trusted") is False
    if untrusted and summary["verdict"] != "differs":
        return EXIT_UNTRUSTED
    return EXIT_CODES[summary["verdict"]]


def _lab_settings(named: Path | None) -> Path | None:
    """Return the lab's settings file (``--settings``, else the current folder's, if any)."""
    if named is not None:
        return named
    here = Path.cwd() / SETTINGS_FILE_NAME
    return here if here.is_file() else None


def _signal_name(signum: int) -> str:
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return f"{name} received"


def _stopped(session: Path, reason: str, signum: int) -> int:
    """Say that a stop ended the command, and return its exit code (128 + the signal)."""
    verify_folder = session / VERIFY_FOLDER
    try:  # made by this run and left empty: nothing of it stays
        verify_folder.rmdir()
    except OSError:  # not empty (an earlier verify's), or not there
        pass
    print(
        f"deeplabstream-verify: stopped ({reason}); nothing was written. Run it again "
        f"to verify {session}",
        file=sys.stderr,
        flush=True,
    )
    return 128 + signum


def _stops_end_verify() -> None:
    """Make Ctrl-C and SIGTERM end the command at once (the offline replay has its own stop)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise VerifyStopped(_signal_name(signum), signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if hasattr(signal, "SIGHUP"):  # a closed terminal: a stop too (none on Windows)
        signal.signal(signal.SIGHUP, stop)
    if hasattr(signal, "pthread_sigmask"):  # a parent that held them back passed that on
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _show_key() -> int:
    try:
        key = installation_key()
    except SigningError as error:
        print(f"deeplabstream-verify: {error}", file=sys.stderr)
        return EXIT_CANNOT
    assert key is not None  # made when missing
    print(public_key_pem(key), end="")
    print(f"fingerprint: {fingerprint(public_bytes(key.public_key()))}")
    print(f"rig: {rig_name()}")
    name = rig_name().replace(" ", "_")
    print(f"allowed_signers line: {name} {fingerprint(public_bytes(key.public_key()))}")
    print(f"private key: {key_file()} (keep it there; give the public key above to reviewers)")
    return EXIT_AGREES


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
    for check in verification.decisions:
        if check.not_re_derived:
            lines.append(f"  {check.events_file}: not re-derived: {check.not_re_derived}")
        else:
            lines.append(f"  {check.events_file}: {check.counts()}")
    files = summary["files"]
    lines.append(f"  files: {files['proven']} of {files['recorded']} unchanged since the close")
    lines += [f"  note: {note}" for note in summary["notes"]]
    lines.append(f"  report: {verification.folder / VERIFY_FOLDER / REPORT_FILE}")
    for line in lines:
        say(line)
    print(f"verdict: {summary['verdict_line']}", flush=True)
    for reason in summary["reasons"]:
        print(f"  differs: {reason}", flush=True)
    for item in summary["not_checked"]:
        print(f"  not checked: {item}", flush=True)
    alone = summary.get("signature_alone") or []
    if alone and summary["signature"].get("status") == "valid":
        print("  rests on the signature alone (no other check holds it):", flush=True)
        for item in alone:
            print(f"    {item}", flush=True)


def run() -> None:
    """Console-script entry point (the current folder off the module path, as every command)."""
    exit_with(main)
