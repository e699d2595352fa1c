"""The annotated video of a replay: the source video with its keypoints drawn, made after the run.

It is rendered from the source video and the session's ``<camera>.pose.csv`` with
:func:`app.display.overlay.draw_pose`, so the frames that were analysed are never touched, and what
is drawn is exactly what the pose file says. Each frame shows the newest pose at or before it (what
the live view showed); frames before the first analysed one are left as they are.

The copy is H.264 in 4:2:0 (``yuv420p``), the one form every browser, QuickTime and phone plays;
4:2:0 needs an even width and height, so an odd-sized video gets one more column or row, a copy
of its last one, at the right or bottom (pixel coordinates stay those of the source).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from deeplabstream.app.display.overlay import display_copy, draw_animals_on, draw_pose
from deeplabstream.outputs.pose_table import read_pose_table

ANNOTATED_SUFFIX = ".annotated.mp4"
_REPORT_INTERVAL_S = 0.25


def read_pose_csv(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a DeepLabCut-layout pose CSV as (frame indices (N,), keypoints (N, A, K, 3), names).

    Only the frames analysed: rows of frames not analysed (all NaN) are left out, so each video
    frame shows the newest pose at or before it. A is 1 for a single-animal file.
    """
    table = read_pose_table(path, analysed_only=True)
    return table.frames, table.points, table.keypoints


def write_annotated_video(
    video: Path,
    pose_csv: Path,
    target: Path,
    *,
    threshold: float,
    skeleton: tuple[tuple[str, str], ...] = (),
    report: Callable[[int], None] | None = None,
) -> int:
    """Write ``target`` (H.264): ``video`` with the keypoints of ``pose_csv``; return its frames.

    ``threshold`` hides keypoints of a lower likelihood (``[Pose] LIKELIHOOD_THRESHOLD``);
    ``skeleton`` names the keypoint pairs joined by lines. ``report`` gets the frames written so
    far, a few times a second.
    """
    indices, poses, names = read_pose_csv(pose_csv)
    position = {name: i for i, name in enumerate(names)}
    known = [(a, b) for a, b in skeleton if a in position and b in position]
    lines = tuple((position[a], position[b]) for a, b in known)
    written = 0
    next_report = time.monotonic() + _REPORT_INTERVAL_S
    with av.open(str(video)) as source, av.open(str(target), "w") as sink:
        decoded = source.streams.video[0]
        decoded.thread_type = "AUTO"
        encoded = _output_stream(sink, decoded)
        row = -1  # the pose row shown: the newest at or before the frame
        for frame in source.decode(decoded):
            while row + 1 < len(indices) and indices[row + 1] <= written:
                row += 1
            image = frame.to_ndarray(format="bgr24")
            if row >= 0 and poses.shape[1] == 1:
                image = draw_pose(image, poses[row, 0], threshold, lines)
            elif row >= 0:  # several animals: each identity in its colour
                image = display_copy(image)
                draw_animals_on(image, poses[row], threshold, lines)
            out = av.VideoFrame.from_ndarray(_even_sized(image), format="bgr24")
            out.pts = written
            sink.mux(encoded.encode(out))
            written += 1
            if report is not None and time.monotonic() >= next_report:
                next_report = time.monotonic() + _REPORT_INTERVAL_S
                report(written)
        sink.mux(encoded.encode(None))
    return written


def _output_stream(
    sink: av.container.OutputContainer, source: av.video.stream.VideoStream
) -> av.video.stream.VideoStream:
    """Add an H.264 4:2:0 stream at the source's average rate (one tick per frame), even-sized."""
    rate = source.average_rate or source.guessed_rate or 30
    stream = sink.add_stream("libx264", rate=rate)
    stream.width = _even(source.codec_context.width)
    stream.height = _even(source.codec_context.height)
    stream.pix_fmt = "yuv420p"  # High profile: 4:4:4 (High 4:4:4) plays in few players
    stream.options = {"crf": "20", "preset": "veryfast"}
    return stream


def _even(size: int) -> int:
    """Return ``size`` rounded up to an even number (4:2:0 halves both axes)."""
    return size + size % 2


def _even_sized(image: np.ndarray) -> np.ndarray:
    """Return ``image`` with its last column and row repeated once where its size is odd."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
