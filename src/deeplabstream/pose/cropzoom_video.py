"""Lightning Pose's offline crop-zoom prediction of a video, without Lightning Pose.

``python -m deeplabstream.pose.cropzoom_video MODEL VIDEO OUT.csv``. Design: docs/pose-models.md,
"Lightning Pose crop-zoom pairs".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from deeplabstream.pose.formats.lightning_cropzoom import cropzoom_of
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription, ModelError
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.cropzoom import (
    CropZoomEstimator,
    predict_video_as_lightning_pose,
    stage_descriptions,
)

#: The scorer Lightning Pose writes in a heatmap model's prediction CSV.
SCORER = "heatmap_tracker"


def video_frames(video: Path) -> Iterator[np.ndarray]:
    """Yield the BGR frames of ``video`` in order (OpenCV, as Lightning Pose's CPU reader)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def predict_video_file(
    model: Path, video: Path, smooth_window: int | None = None, threads: int = 2
) -> tuple[ModelDescription, np.ndarray, np.ndarray]:
    """Return the pair, (N, K, 3) remapped keypoints and (N, 4) boxes of every frame."""
    frames = list(video_frames(video))
    if not frames:
        raise ModelError(f"{video}: no frame could be read")
    description = load_model(model, frame_size=frames[0].shape[:2])
    if cropzoom_of(description) is None:
        raise ModelError(f"{model}: not a Lightning Pose crop-zoom pair (cropzoom.yaml)")
    detector = open_backend(stage_descriptions(description)[0], "onnxruntime", "cpu", threads)
    estimator = open_estimator(description, detector, frames[0].shape)
    assert isinstance(estimator, CropZoomEstimator)  # a crop-zoom pair, checked above
    points, boxes = predict_video_as_lightning_pose(estimator, frames, smooth_window)
    return description, points, boxes


def write_csv(
    path: Path, keypoints: Sequence[str], points: np.ndarray, scorer: str = SCORER
) -> None:
    """Write (N, K, 3) keypoints in Lightning Pose's prediction CSV layout (its scorer name)."""
    import pandas as pd

    columns = pd.MultiIndex.from_tuples(
        [(scorer, k, c) for k in keypoints for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    pd.DataFrame(points.reshape(len(points), -1), columns=columns).to_csv(path)


def write_boxes(path: Path, boxes: np.ndarray) -> None:
    """Write (N, 4) boxes as Lightning Pose's bbox CSV (columns x, y, h, w, frame index)."""
    import pandas as pd

    pd.DataFrame(boxes, columns=["x", "y", "h", "w"]).to_csv(path, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m deeplabstream.pose.cropzoom_video MODEL VIDEO OUT.csv``."""
    parser = argparse.ArgumentParser(
        description="Lightning Pose's offline crop-zoom prediction of a video (detector, "
        "boxes, crops, pose model, remap), without Lightning Pose"
    )
    parser.add_argument("model", type=Path, help="cropzoom.yaml or its folder")
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path, help="CSV to write (Lightning Pose's columns)")
    parser.add_argument(
        "--smooth-window",
        type=int,
        default=None,
        help="smooth the boxes as `litpose smooth_bbox --window N` (a centred median)",
    )
    parser.add_argument("--boxes", type=Path, help="also write the boxes (Lightning Pose's CSV)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        description, points, boxes = predict_video_file(
            args.model, args.video, args.smooth_window, args.threads
        )
    except ModelError as error:
        print(f"cannot predict: {error}", file=sys.stderr)
        return 2
    write_csv(args.out, description.keypoints, points)
    if args.boxes is not None:
        write_boxes(args.boxes, boxes)
    print(f"{len(points)} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    # Run as the imported module: its classes are the ones the loader's descriptions hold.
    from deeplabstream.pose.cropzoom_video import main as imported_main

    sys.exit(imported_main())
