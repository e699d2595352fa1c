"""Lightning Pose's offline prediction of a context model on a video, without Lightning Pose.

``python -m deeplabstream.pose.context_video MODEL VIDEO OUT.csv`` writes its CSV layout.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from deeplabstream.pose.cropzoom_video import video_frames, write_csv
from deeplabstream.pose.formats.lightning_context import context_of
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator

#: The scorer Lightning Pose writes in a context model's prediction CSV.
CONTEXT_SCORER = "heatmap_mhcrnn_tracker"


def predict_video_file(
    model: Path, video: Path, threads: int = 2, max_batch: int = 8
) -> tuple[ModelDescription, np.ndarray]:
    """Lightning Pose's offline keypoints of every frame of ``video``: (N, K, 3), frame pixels."""
    frames = video_frames(video)
    first = next(frames, None)
    if first is None:
        raise ModelError(f"{video}: no frame could be read")
    description = load_model(model, frame_size=first.shape[:2])
    if context_of(description) is None:
        raise ModelError(f"{model}: not a Lightning Pose context model")
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    estimator = open_estimator(description, backend, first.shape, max_batch=max_batch)
    assert isinstance(estimator, ContextEstimator)  # a context model's kind (checked above)
    return description, estimator.predict_video(itertools.chain([first], frames))


def main(argv: list[str] | None = None) -> int:
    """``python -m deeplabstream.pose.context_video MODEL VIDEO OUT.csv``."""
    parser = argparse.ArgumentParser(
        description="Lightning Pose's offline prediction of a context model on a video "
        "(frames t-2 .. t+2), without Lightning Pose"
    )
    parser.add_argument("model", type=Path, help="the .ckpt file or its model folder")
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path, help="CSV to write (Lightning Pose's columns)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        description, points = predict_video_file(args.model, args.video, args.threads)
    except ModelError as error:
        print(f"cannot predict: {error}", file=sys.stderr)
        return 2
    write_csv(args.out, description.keypoints, points, CONTEXT_SCORER)
    print(f"{len(points)} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    # Run as the imported module: its classes are the ones the loader's descriptions hold.
    from deeplabstream.pose.context_video import main as imported_main

    sys.exit(imported_main())
