"""Lightning Pose's offline prediction of a context model on a video, without Lightning Pose.

``python -m deeplabstream.pose.context_video MODEL VIDEO OUT.csv``: frame t with frames
t-2 .. t+2, the first two and last two frames as Lightning Pose fills them
(:mod:`pose.formats.lightning_context`), written in Lightning Pose's CSV layout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from deeplabstream.pose.formats.lightning_context import context_of
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator


def predict_video_file(
    model: Path, video: Path, threads: int = 2, max_batch: int = 8
) -> tuple[ModelDescription, np.ndarray]:
    """Lightning Pose's offline keypoints of every frame of ``video``: (N, K, 3), frame pixels."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    ok, first = capture.read()
    if not ok:
        raise ModelError(f"{video}: no frame could be read")

    def frames() -> Iterator[np.ndarray]:
        yield first
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame

    description = load_model(model, frame_size=first.shape[:2])
    if context_of(description) is None:
        raise ModelError(f"{model}: not a Lightning Pose context model")
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    estimator = ContextEstimator(description, backend, first.shape, max_batch)
    try:
        return description, estimator.predict_video(frames())
    finally:
        capture.release()


def write_csv(path: Path, keypoints: Sequence[str], points: np.ndarray) -> None:
    """Write (N, K, 3) keypoints as Lightning Pose's prediction CSV (its context scorer name)."""
    import pandas as pd

    columns = pd.MultiIndex.from_tuples(
        [("heatmap_mhcrnn_tracker", k, c) for k in keypoints for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    pd.DataFrame(points.reshape(len(points), -1), columns=columns).to_csv(path)


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
    write_csv(args.out, description.keypoints, points)
    print(f"{len(points)} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    # Run as the imported module: its classes are the ones the loader's descriptions hold.
    from deeplabstream.pose.context_video import main as imported_main

    sys.exit(imported_main())
