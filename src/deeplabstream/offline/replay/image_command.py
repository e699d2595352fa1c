"""Predict labelled images with a model's own image pre-processing, and score them.

Exit codes: 0 done, 1 an image or output could not be read or written, 2 bad command line,
model or labels. docs/outputs.md, "Labelled images (utils/ImageAnalyzer.py)".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeplabstream.app.arguments import positive_int
from deeplabstream.core.errors import ModelError
from deeplabstream.core.optional import exit_with
from deeplabstream.offline.replay.images import (
    DLC_PCUTOFF,
    ENSEMBLE_PREDICTIONS_SUFFIX,
    MEMBER_PREDICTIONS_SUFFIX,
    ImagesError,
    ImageSet,
    ensemble_table,
    find_images,
    predict,
    predict_ensemble,
    predictions_table,
    score,
    score_lines,
    write_outputs,
)
from deeplabstream.pose.ensemble.members import (
    KEYPOINT_MAP_SYNTAX,
    KeypointMap,
    parse_keypoint_map,
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
        "--model",
        type=Path,
        required=True,
        action="append",
        help="pose model folder or file (as [Pose] MODEL_PATH); give it again for each model "
        "of an ensemble",
    )
    parser.add_argument(
        "--keypoint-map",
        type=_keypoint_map,
        default=(),
        help="an ensemble: the other models' keypoint names mapped onto the first's, as "
        "KEYPOINT_MAP (snout=nose, tailbase=tail_base)",
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


def _keypoint_map(text: str) -> KeypointMap:
    """``--keypoint-map``: KEYPOINT_MAP's pairs, with argparse's error."""
    try:
        return parse_keypoint_map(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}; expected {KEYPOINT_MAP_SYNTAX}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        images = find_images(args.source)
        descriptions = [_load(path) for path in args.model]
    except (ImagesError, ModelError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    pcutoff = DLC_PCUTOFF if args.pcutoff is None else args.pcutoff
    try:
        if len(descriptions) > 1:
            return _run_ensemble(args, images, descriptions, pcutoff)
        return _run(args, images, descriptions[0], pcutoff)
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


def _opener(args: argparse.Namespace) -> Callable[[ModelDescription], Any]:
    """Return how a model's backend is opened, as the command line asks."""

    def opened(model: ModelDescription) -> Any:
        return open_backend(model, args.backend, args.device, args.threads)

    return opened


def _folder(args: argparse.Namespace, images: ImageSet) -> Path:
    """Return where the files go: ``--output-dir``, else beside the labels or in the folder."""
    return args.output_dir or (images.source.parent if images.source.is_file() else images.source)


def _run(
    args: argparse.Namespace, images: ImageSet, description: ModelDescription, pcutoff: float
) -> int:
    """Predict, score, write and print; return the exit code."""
    points = predict(images, description, _opener(args))
    keypoints = tuple(description.keypoints)
    table = predictions_table(images, points, keypoints, f"deeplabstream_{description.name}")
    scores = None
    if images.labels is not None and points.shape[1] == 1:
        scores = score(images, points, keypoints, pcutoff)
    folder = _folder(args, images)
    try:
        written = write_outputs(folder, images, table, scores, keypoints)
    except OSError as error:
        print(f"Error: {folder}: the results could not be written: {error}", file=sys.stderr)
        return EXIT_FAILED
    _report(images, description, scores, written)
    return EXIT_OK


def _run_ensemble(
    args: argparse.Namespace,
    images: ImageSet,
    descriptions: list[ModelDescription],
    pcutoff: float,
) -> int:
    """Predict with every model, take their ensemble, score and write it; return the exit code."""
    ensemble = predict_ensemble(images, descriptions, _opener(args), args.keypoint_map)
    first = descriptions[0]
    keypoints = tuple(first.keypoints)
    scorer = f"deeplabstream_ensemble_{first.name}"
    table = predictions_table(images, ensemble.points, keypoints, scorer)
    scores = (
        score(images, ensemble.points, keypoints, pcutoff) if images.labels is not None else None
    )
    folder = _folder(args, images)
    try:
        written = write_outputs(folder, images, table, scores, keypoints)
        extra = folder / f"{images.stem}{ENSEMBLE_PREDICTIONS_SUFFIX}"
        ensemble_table(images, ensemble, keypoints, scorer).to_csv(extra)
        written.append(extra)
        for index, (description, members) in enumerate(
            zip(descriptions, ensemble.members, strict=True)
        ):
            path = folder / f"{images.stem}{MEMBER_PREDICTIONS_SUFFIX.format(index + 1)}"
            scorer = f"deeplabstream_{description.name}"
            predictions_table(images, members[:, None], keypoints, scorer).to_csv(path)
            written.append(path)
    except OSError as error:
        print(f"Error: {folder}: the results could not be written: {error}", file=sys.stderr)
        return EXIT_FAILED
    _report(images, first, scores, written, len(descriptions))
    return EXIT_OK


def _report(
    images: ImageSet,
    description: ModelDescription,
    scores: Any,
    written: list[Path],
    models: int = 1,
) -> None:
    """Print what was predicted, the scores and the files written."""
    ensemble = f" (an ensemble of {models} models)" if models > 1 else ""
    print(f"Predicted {len(images.paths)} image(s) with {description.name}{ensemble}:")
    if context_of(description) is not None:  # a Lightning Pose context model
        print(f"  context of each image: {IMAGES_CONTEXT_TEXT}")
    for line in score_lines(scores) if scores is not None else []:
        print(f"  {line}")
    for path in written:
        print(f"  wrote {path}")


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code (2: an extra is missing)."""
    exit_with(main)


if __name__ == "__main__":
    run()
