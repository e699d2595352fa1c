"""``deeplabstream-eks SESSION_FOLDER``: smooth a session's ensemble predictions with EKS.

Exit codes: 0 done, 1 a camera could not be smoothed, 2 a bad command line or folder, no
ensemble or no package; 130 Ctrl-C. docs/ensembles.md, "EKS offline: the package itself".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deeplabstream.core.fault_hooks import hold_here
from deeplabstream.core.optional import exit_with
from deeplabstream.offline.eks.smoothing import (
    ensemble_files,
    missing_ensemble_files,
    smooth_camera,
)
from deeplabstream.pose.ensemble.statistics import VAR_MODES
from deeplabstream.settings.sections import parse_smooth_param

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _smooth_param(text: str) -> tuple[float, ...]:
    try:
        return parse_smooth_param(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number > 0, or one per keypoint, comma-separated"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-eks",
        description="Smooth a session's ensemble predictions with the Ensemble Kalman Smoother "
        "(the ensemble-kalman-smoother package), beside its pose files.",
    )
    parser.add_argument("session", type=Path, help="a session (or replay) folder")
    parser.add_argument(
        "--smooth-param",
        type=_smooth_param,
        default=None,
        help="EKS's smoothing parameter s (one, or one per keypoint); default: fitted by the "
        "package",
    )
    parser.add_argument(
        "--var-mode",
        choices=VAR_MODES,
        default="confidence_weighted_var",
        help="EKS's observation variance (default: the package's, confidence_weighted_var)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    args = build_parser().parse_args(argv)
    hold_here("command-import")  # a fault test's chosen moment (core/fault_hooks.py)
    folder: Path = args.session.expanduser()
    if not folder.is_dir():
        print(f"Error: {folder}: no such session folder", file=sys.stderr)
        return EXIT_USAGE
    files = ensemble_files(folder)
    failed = smoothed = 0
    for gone in missing_ensemble_files(folder, files):
        print(
            f"Error: {gone}: gone. The session wrote it (its camera ran an ensemble), and it "
            "holds the models' values the smoother needs: restore it from a copy of the folder",
            file=sys.stderr,
        )
        failed += 1
    for exact in files:
        try:
            camera = smooth_camera(exact, args.smooth_param, args.var_mode)
        except (OSError, ValueError) as error:
            print(f"Error: {error}", file=sys.stderr)
            failed += 1
            continue
        if camera is None:
            continue
        smoothed += 1
        if camera.cut_line:  # smoothed as far as it goes, and said: the rest is missing
            print(
                f"Error: {exact}: it ends inside line {camera.cut_line}, so it was cut short (a "
                "copy that did not finish?): the whole rows before it were smoothed, the rest "
                "of the session's frames are missing from it. Restore it from a copy",
                file=sys.stderr,
            )
            failed += 1
        left = f", {camera.left_out} left out (no keypoint placed)" if camera.left_out else ""
        values = ", ".join(f"{value:.6g}" for value in camera.smooth_param)
        print(f"{camera.stem}: {camera.frames} analysed frames smoothed{left}")
        print(f"  wrote {camera.table}")
        print(f"  wrote {camera.record}")
        print(f"  the live causal filter with the same parameter: EKS_SMOOTH_PARAM = {values}")
    if failed:
        return EXIT_FAILED
    if not smoothed:
        print(
            f"Error: {folder}: no camera ran an ensemble (no pose_exact.csv with the models' "
            "values); name several models in MODEL_PATH (docs/ensembles.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


def run() -> None:
    """Run as the console script (2: the package is missing, with how to install it)."""
    exit_with(main)


if __name__ == "__main__":
    run()
