"""What a model file is, its conversion, and a check of the conversion on one frame.

Design: docs/pose-internals.md, "pose.inspect".
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.optional import exit_with
from deeplabstream.pose.formats.conversion import run_graph, run_module, synthetic_input
from deeplabstream.pose.formats.lightning_cropzoom import cropzoom_of
from deeplabstream.pose.formats.own_model import OwnModel
from deeplabstream.pose.loading import build_torch_module, load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.model_format import ModelFormat, format_of_description
from deeplabstream.pose.runtime.precision import PRECISIONS, cost_lines, int8_cost
from deeplabstream.pose.runtime.preprocess import Preprocessor
from deeplabstream.pose.stage_check import StageCheck, check_stages, has_stages, stage_parameters

#: Frames before and after the checked one a context model takes (t-2 .. t+2).
CONTEXT_REACH = 2


@dataclass(frozen=True)
class Frame:
    """A BGR uint8 frame, where it came from, and the frames around it (a context model's)."""

    pixels: np.ndarray
    origin: str
    #: The video's frames two before to two after it, as far as the video has them (the
    #: frame itself alone for an image).
    window: tuple[np.ndarray, ...] = ()
    #: The frame's place in ``window``.
    centre: int = 0

    @property
    def frames(self) -> tuple[np.ndarray, ...]:
        """The frames a check runs on: the window, or the frame itself."""
        return self.window or (self.pixels,)


def main(argv: list[str] | None = None) -> int:
    """Run the command (without a lab's settings: the built-in and installed formats only)."""
    return inspect(build_parser().parse_args(argv))


def inspect(args: argparse.Namespace) -> int:
    """Describe the model ``args.path`` and check its conversion; return the exit status."""
    try:
        frame = _read_frame(args.frame, args.frame_index) if args.frame else None
        size = frame.pixels.shape[:2] if frame is not None else None
        started, wall = time.perf_counter(), time.time()

        description = load_model(args.path, frame_size=size, precision=args.precision)
        seconds = time.perf_counter() - started
    except ModelError as error:
        print(f"cannot load the model: {error}", file=sys.stderr)
        return 2
    for label, value in facts(description):
        print(f"{label + ':':<13}{value}")
    stages = cropzoom_of(description)
    if stages is not None:  # a Lightning Pose crop-zoom pair: each stage checked as a model
        return _check_stages((stages.detector, stages.pose), frame, args.threads)
    cost = int8_cost(description)
    if cost is not None:  # pose.runtime.precision: measured by the quantize command
        for line in ["int8 cost:", *cost_lines(cost)]:
            print(f"  {line}" if line != "int8 cost:" else line)
        return 0
    if description.source_file is None:
        print(f"{'loaded in:':<13}{seconds:.1f} s")
        print("conversion:  none needed (the model is an ONNX graph already)")
        return 0
    new = description.model_file.stat().st_mtime >= wall - 1
    how = "converted now" if new else "converted earlier, reused from the cache"
    print(f"{'conversion:':<13}{how}; loaded in {seconds:.1f} s")
    if frame is None:
        frame = _synthetic_frame(description)
    return check_converted(description, frame, args.threads)


def build_parser(path_required: bool = True) -> argparse.ArgumentParser:
    """Return the command line's parser (``path_required`` False: PATH may be left out)."""
    parser = argparse.ArgumentParser(
        prog="deeplabstream-inspect", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "path",
        type=Path,
        nargs=None if path_required else "?",
        help="model file or folder (as MODEL_PATH)",
    )
    parser.add_argument("--frame", type=Path, help="an image, or a video (see --frame-index)")
    parser.add_argument("--frame-index", type=int, default=0, help="frame of the video to use")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the check")
    return parser


# --- what the model is --------------------------------------------------------------------------


def facts(description: ModelDescription) -> list[tuple[str, str]]:
    """Label, value pairs describing the model."""
    d = description
    size = f"{d.input_width}x{d.input_height} {d.color_order.upper()}"
    if d.any_input_size:
        size += " (any size: runs at the frame's own size)"
    rows = [
        ("model", _format(d).model_text(d)),
        ("framework", _framework(d)),
        ("network", _network(d)),
        ("keypoints", f"{len(d.keypoints)}: {', '.join(d.keypoints)}"),
        ("input", size),
        ("stride", f"{d.stride:g} input pixels per heatmap pixel"),
        ("decoding", _decoding(d)),
        ("precision", d.precision),
        ("graph", str(d.model_file)),
    ]
    parameters = _parameters(d)
    if parameters is not None:
        rows.insert(3, ("parameters", parameters))
    return rows


def _format(d: ModelDescription) -> ModelFormat:
    """Return the format that loaded ``d`` (the project's own when none claims it)."""
    return format_of_description(d) or OwnModel()


def _framework(d: ModelDescription) -> str:
    return _format(d).framework_text(d)


def _network(d: ModelDescription) -> str:
    return _format(d).network_text(d)


def _decoding(d: ModelDescription) -> str:
    return _format(d).decoding_text(d)


def _parameters(d: ModelDescription) -> str | None:
    """Parameters of the rebuilt network, per stage where it has two (None: only a graph)."""
    if d.source_file is None:
        return None
    stages = stage_parameters(d)
    if stages is not None:
        each = ", ".join(f"{stage} {count:,}" for stage, count in stages)
        return f"{sum(count for _, count in stages):,} in all: {each}"
    return f"{int(sum(p.numel() for p in build_torch_module(d).parameters())):,}"


# --- the check ----------------------------------------------------------------------------------


def check_converted(description: ModelDescription, frame: Frame, threads: int) -> int:
    """Check every graph of a converted model on ``frame``; print the figures; the status."""
    if has_stages(description):
        return check_each_graph(description, frame, threads)
    return check(description, frame, threads)


def check_each_graph(description: ModelDescription, frame: Frame, threads: int) -> int:
    """Check each graph of a model that runs several, and the whole model (pose.stage_check)."""
    checks = check_stages(description, frame.frames, frame.centre, threads)
    height, width = frame.pixels.shape[:2]
    shown = f"{len(frame.frames)} frames around " if len(frame.frames) > 1 else ""
    print(
        f"check on:    {shown}{frame.origin} ({width}x{height}), ONNX Runtime CPU vs the "
        "rebuilt PyTorch networks, each graph then the whole model"
    )
    for stage in checks:
        _print_stage(stage)
    failed = [stage for stage in checks if stage.failed]
    for stage in failed:
        graphs = ", ".join(str(g) for g in stage.graphs)
        beyond = ", ".join(stage.failed)
        print(
            f"result:      {stage.subject} does NOT reproduce the network ({beyond} beyond "
            f"their limits): {graphs}"
        )
    if failed:
        return 1
    what = "within the fp32 tolerances" if description.precision == "fp32" else "fp16, measured"
    print(
        "result:      each converted graph reproduces the network, and together they give its "
        f"keypoints ({what})"
    )
    return 0


def _print_stage(stage: StageCheck) -> None:
    names = ", ".join(g.name for g in stage.graphs)
    print(f"  {stage.stage} ({names}): {stage.compared}")
    for name, value in stage.differences.items():
        limit = stage.limits.get(name)
        bound = f" (allowed {limit:g})" if limit is not None else ""
        print(f"    max |difference| {name:<11}{value:.3g}{bound}")


def check(description: ModelDescription, frame: Frame, threads: int) -> int:
    """Compare the converted graph with the rebuilt network on ``frame``; print the figures."""
    module = build_torch_module(description)
    preprocessor = Preprocessor(description, frame.pixels.shape, 1)
    preprocessor.prepare([frame.pixels])
    batch = preprocessor.buffer[:1]  # float32 (the graph's own cast happens in run_graph)
    reference = run_module(module, batch)
    converted = run_graph(description.model_file, description.input_name, batch, threads)
    compare, limits = _comparison(description)
    differences = compare(reference, converted)
    height, width = frame.pixels.shape[:2]
    print(f"check on:    {frame.origin} ({width}x{height}), ONNX Runtime CPU vs PyTorch")
    for name, value in differences.items():
        limit = limits.get(name)
        bound = f" (allowed {limit:g})" if limit is not None else ""
        print(f"  max |difference| {name:<11}{value:.3g}{bound}")
    failed = [name for name, value in differences.items() if not value <= limits.get(name, np.inf)]
    if failed:
        print(f"result:      the converted graph does NOT reproduce the network ({failed})")
        return 1
    what = "within the fp32 tolerances" if description.precision == "fp32" else "fp16, measured"
    print(f"result:      the converted graph reproduces the network ({what})")
    return 0


def _check_stages(stages: tuple[ModelDescription, ...], frame: Frame | None, threads: int) -> int:
    """Describe each stage of a two-stage pair and check its conversion; the worst status."""
    status = 0
    for label, stage in zip(("detector", "pose model"), stages, strict=True):
        print(f"--- {label}: {stage.source_file or stage.model_file}")
        for name, value in facts(stage):
            print(f"  {name + ':':<13}{value}")
        if stage.source_file is None:
            print("  conversion:  none needed (an ONNX export)")
            continue
        # The whole frame checks the conversion (not the keypoints): any image will do.
        status = max(status, check_converted(stage, frame or _synthetic_frame(stage), threads))
    return status


def _comparison(description: ModelDescription) -> tuple[Any, dict[str, float]]:
    """Return the format's comparison and the limits that apply at the model's precision."""
    return _format(description).comparison(description)


def _read_frame(path: Path, index: int) -> Frame:
    """Return a BGR frame from an image file, or frame ``index`` of a video."""
    import cv2

    if not path.is_file():
        raise ModelError(f"{path}: no such image or video")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return Frame(image, str(path))
    import av

    window: list[np.ndarray] = []  # frames index - 2 .. index + 2, where the video has them
    try:
        with av.open(str(path)) as container:
            for number, decoded in enumerate(container.decode(container.streams.video[0])):
                if number >= index - CONTEXT_REACH:
                    window.append(decoded.to_ndarray(format="bgr24"))
                if number >= index + CONTEXT_REACH:
                    break
    except (av.error.FFmpegError, IndexError) as error:
        raise ModelError(f"{path}: neither an image nor a readable video: {error}") from error
    if index < 0 or len(window) <= index - max(0, index - CONTEXT_REACH):
        raise ModelError(f"{path}: has no frame {index}")
    middle = index - max(0, index - CONTEXT_REACH)
    return Frame(window[middle], f"{path} frame {index}", tuple(window), middle)


def _synthetic_frame(description: ModelDescription) -> Frame:
    """Return an image-like frame of the model's input size, when no frame was given."""
    normalised = synthetic_input(description.input_height, description.input_width, (0,), (1,))
    grey = np.round(normalised[0, 0] * 255).astype(np.uint8)
    origin = "a synthetic image (no --frame given; a frame of your camera proves more)"
    return Frame(np.repeat(grey[:, :, None], 3, axis=2), origin)


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
