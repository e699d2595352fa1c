"""``deeplabstream-calibrate SESSION_OR_VIDEOS``: calibrate a rig's cameras for 3D.

docs/3d.md, "Calibrating". :func:`main` takes a progress callback, so the GUI runs it too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deeplabstream.core.errors import CalibrationError
from deeplabstream.core.optional import exit_with
from deeplabstream.hardware.simulator.board import FLOOR_ORIGIN
from deeplabstream.spatial.calibration.detection import BoardDetector
from deeplabstream.spatial.calibration.intrinsics import DISTORTION_MODELS
from deeplabstream.spatial.calibration.report import write_outputs
from deeplabstream.spatial.calibration.solve import CalibrationResult, solve_calibration
from deeplabstream.spatial.calibration.sources import (
    CLOCKS,
    FramePlan,
    detect_in_plan,
    plan_session,
    plan_videos,
)

CALIBRATION_NAME = "calibration.toml"


@dataclass(frozen=True)
class CalibrationOptions:
    """The command's options (see ``--help``)."""

    output: Path | None = None
    clock: str = "auto"
    floor_frame: int | None = None
    floor_origin: tuple[float, float] = (float(FLOOR_ORIGIN[0]), float(FLOOR_ORIGIN[1]))
    distortion_model: str = "k1k2p1p2"
    step: int = 1


@dataclass(frozen=True)
class CalibrationRun:
    """What a calibration produced: the solution and the files written."""

    result: CalibrationResult
    calibration_path: Path
    report_path: Path


def plan_inputs(inputs: Sequence[Path], options: CalibrationOptions) -> FramePlan:
    """Pair the frames of a session folder (one folder given) or of a list of videos."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        plan = plan_session(Path(inputs[0]), options.clock)
    else:
        for path in inputs:
            if Path(path).is_dir():
                raise CalibrationError(f"{path}: give one session folder, or video files only")
            if not Path(path).is_file():
                raise CalibrationError(f"{path}: no such video file or session folder")
        plan = plan_videos([Path(p) for p in inputs])
    if options.floor_frame is None:
        return plan
    if not 0 <= options.floor_frame < plan.set_count:
        raise CalibrationError(
            f"--floor-frame {options.floor_frame}: the recording has frame sets 0.."
            f"{plan.set_count - 1}"
        )
    return FramePlan(plan.videos, plan.frames, [options.floor_frame], plan.pairing)


def default_output(inputs: Sequence[Path]) -> Path:
    """``calibration.toml`` in the session folder, or beside the first video."""
    first = Path(inputs[0])
    return (first if first.is_dir() else first.parent) / CALIBRATION_NAME


def calibrate(
    inputs: Sequence[Path], options: CalibrationOptions, progress: Callable[[str], None]
) -> CalibrationRun:
    """Run the whole calibration and write its files; CalibrationError for unusable input."""
    plan = plan_inputs(inputs, options)
    progress(f"{len(plan.videos)} cameras, {plan.set_count} frame sets paired {plan.pairing}")
    detections, sizes = detect_in_plan(plan, BoardDetector(), progress, options.step)
    result = solve_calibration(
        detections,
        sizes,
        plan.floor_sets,
        distortion_model=options.distortion_model,
        floor_origin=(*options.floor_origin, 0.0),
        progress=progress,
    )
    output = options.output or default_output(inputs)
    report_path = write_outputs(result, output, plan.pairing)
    return CalibrationRun(result, output, report_path)


def summary_lines(run: CalibrationRun) -> list[str]:
    """Return the closing table: per camera, detections and reprojection error."""
    lines = [f"{'camera':<16}{'board seen':>11}{'used':>7}{'mean px':>9}{'p95 px':>9}  centre (mm)"]
    for camera in run.result.cameras:
        figures = run.result.figures[camera.name]
        centre = ", ".join(f"{v:.1f}" for v in camera.center)
        lines.append(
            f"{camera.name:<16}{figures.detections:>11}{figures.frame_sets_used:>7}"
            f"{figures.error_mean_px:>9.3f}{figures.error_p95_px:>9.3f}  ({centre})"
        )
    lines.append(
        f"all cameras: mean {run.result.error_mean_px:.3f} px, 95th percentile "
        f"{run.result.error_p95_px:.3f} px"
    )
    lines += [f"wrote {run.calibration_path}", f"wrote {run.report_path}"]
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's parser."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-calibrate",
        description="Calibrate cameras for 3D from videos of the ChArUco board (see docs/3d.md).",
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="a recorded session folder, or one video per camera"
    )
    parser.add_argument(
        "--output", type=Path, help="calibration.toml to write (default: beside the input)"
    )
    parser.add_argument(
        "--clock", choices=CLOCKS, default="auto", help="timestamps pairing a session's frames"
    )
    parser.add_argument(
        "--floor-frame",
        type=int,
        help="frame set (0-based) with the board flat on the floor (default: the first second)",
    )
    parser.add_argument(
        "--floor-origin",
        type=float,
        nargs=2,
        metavar=("X", "Y"),
        default=CalibrationOptions.floor_origin,
        help="world x, y (mm) of the board's origin corner when it lies on the floor",
    )
    parser.add_argument(
        "--distortion",
        choices=DISTORTION_MODELS,
        default="k1k2p1p2",
        help="lens coefficients solved (default k1k2p1p2; 'full' adds k3)",
    )
    parser.add_argument(
        "--step", type=int, default=1, help="use every Nth frame set (long recordings)"
    )
    return parser


def main(argv: Sequence[str] | None = None, progress: Callable[[str], None] = print) -> int:
    """Run the command; return its exit status (0 done, 2 unusable input)."""
    arguments = build_parser().parse_args(argv)
    options = CalibrationOptions(
        output=arguments.output,
        clock=arguments.clock,
        floor_frame=arguments.floor_frame,
        floor_origin=(arguments.floor_origin[0], arguments.floor_origin[1]),
        distortion_model=arguments.distortion,
        step=max(1, arguments.step),
    )
    try:
        run = calibrate(arguments.inputs, options, progress)
    except CalibrationError as error:
        print(f"calibration failed: {error}", file=sys.stderr)
        return 2
    for line in summary_lines(run):
        progress(line)
    return 0


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
