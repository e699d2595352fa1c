"""Predict labelled images with a model's own image pre-processing, and score them.

    python utils/ImageAnalyzer.py IMAGES_OR_LABELS --model PATH [--output-dir DIR]
        [--backend onnxruntime|pytorch|openvino] [--device cpu|cuda|tensorrt] [--threads N]
        [--pcutoff P]

``IMAGES_OR_LABELS`` is a folder of images, or a labels file: DeepLabCut's
``CollectedData_<scorer>.csv`` / ``.h5`` or Lightning Pose's ``CollectedData.csv``. Each image
goes through the model the way its framework predicts a labelled image (Lightning Pose: bicubic
resize of the uint8 image; DeepLabCut, sleap-nn: the image at its own size), not the way a
video replay feeds frames (``offline/replay/images.py``). Written to ``--output-dir`` (default:
beside the labels file, or in the folder): ``<name>_predictions.csv`` in the labels' layout and,
with labels, ``<name>_predictions_pixel_error.csv`` (Lightning Pose's table) and
``<name>_predictions_scores.json`` (per keypoint median / p95, DeepLabCut's RMSE); the scores are
printed too. Exit codes: 0 done, 1 an image or the output could not be read or written, 2 bad
command line, model or labels (nothing is written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deeplabstream.app.arguments import positive_int
from deeplabstream.core.errors import ModelError
from deeplabstream.core.optional import exit_with
from deeplabstream.offline.replay.images import (
    DLC_PCUTOFF,
    ImagesError,
    ImageSet,
    find_images,
    predict,
    predictions_table,
    score,
    score_lines,
    write_outputs,
)
from deeplabstream.pose.formats.lightning_context import IMAGES_CONTEXT_TEXT, context_of
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        description="Predict labelled images as the model's framework does, and score them "
        "against their labels.",
    )
    parser.add_argument(
        "source",
        type=Path,
        metavar="IMAGES_OR_LABELS",
        help="a folder of images, or a CollectedData labels file (DeepLabCut, Lightning Pose)",
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="pose model folder or file (as [Pose] MODEL_PATH)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where the files go (default: beside the labels file, or in the images' folder)",
    )
    parser.add_argument("--backend", default="onnxruntime", help="as [Pose] BACKEND")
    parser.add_argument("--device", default="cpu", help="as [Pose] DEVICE")
    parser.add_argument("--threads", type=positive_int, default=2, help="inference threads")
    parser.add_argument(
        "--pcutoff",
        type=float,
        default=None,
        help="likelihood cut-off of DeepLabCut's 'RMSE with p-cutoff' (default 0.6, DeepLabCut's)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        images = find_images(args.source)
        description = _load(args.model)
    except (ImagesError, ModelError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    pcutoff = DLC_PCUTOFF if args.pcutoff is None else args.pcutoff
    try:
        return _run(args, images, description, pcutoff)
    except ImagesError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ModelError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _load(path: Path) -> ModelDescription:
    """Return the model's description, or raise ModelError naming what is wrong."""
    if not path.exists():
        raise ModelError(f"{path}: model not found (--model); name a model folder or file")
    return load_model(path.expanduser().resolve())


def _run(
    args: argparse.Namespace, images: ImageSet, description: ModelDescription, pcutoff: float
) -> int:
    """Predict, score, write and print; return the exit code."""

    def opened(model: ModelDescription) -> Any:
        return open_backend(model, args.backend, args.device, args.threads)

    points = predict(images, description, opened)
    keypoints = tuple(description.keypoints)
    table = predictions_table(images, points, keypoints, f"deeplabstream_{description.name}")
    scores = None
    if images.labels is not None and points.shape[1] == 1:
        scores = score(images, points, keypoints, pcutoff)
    folder = args.output_dir or (images.source.parent if images.source.is_file() else images.source)
    try:
        written = write_outputs(folder, images, table, scores, keypoints)
    except OSError as error:
        print(f"Error: {folder}: the results could not be written: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Predicted {len(images.paths)} image(s) with {description.name}:")
    if context_of(description) is not None:  # a Lightning Pose context model
        print(f"  context of each image: {IMAGES_CONTEXT_TEXT}")
    for line in score_lines(scores) if scores is not None else []:
        print(f"  {line}")
    for path in written:
        print(f"  wrote {path}")
    return EXIT_OK


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
