"""The ``annotated_video`` export: each camera's video with its keypoints drawn, after the run.

Writes ``<camera>.annotated.mp4`` from the session's files only (docs/outputs.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pandas as pd

from deeplabstream.core.regular_files import regular_file
from deeplabstream.core.schema import setting
from deeplabstream.outputs.interface import ExportContext, Output
from deeplabstream.outputs.pose.drawing import display_copy, draw_animals_on, draw_pose
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.session_record import SessionRecord, read_session_record

log = logging.getLogger(__name__)

ANNOTATED_SUFFIX = ".annotated.mp4"
_REPORT_INTERVAL_S = 0.25
DEFAULT_THRESHOLD = 0.5  # [Pose] LIKELIHOOD_THRESHOLD's default, for a record without settings

#: Told the frames written so far, a few times a second.
FrameReport = Callable[[int], None]
#: Draws on a video frame (BGR, in place) under the keypoints: a replay's regions, which the
#: replay draws with the live view's own code (this layer knows no experiment).
FrameOverlay = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class AnnotatedVideoSettings:
    """Keys of ``[Output annotated_video]``."""

    threshold: float | None = setting(
        None,
        doc="Keypoints of a lower likelihood are not drawn. Empty: the session's own (the "
        "camera's LIKELIHOOD_THRESHOLD, else [Pose] LIKELIHOOD_THRESHOLD).",
        minimum=0,
        maximum=1,
    )


@dataclass(frozen=True)
class VideoToAnnotate:
    """One video of a camera to draw on, and how its frames map to the camera's frame index."""

    camera: str
    video: Path
    pose_file: Path
    target: Path
    frame_indices: np.ndarray | None  # video frame i is frame index frame_indices[i]; None: i


class AnnotatedVideoOutput(Output):
    """``annotated_video``: each camera's video with its keypoints, after the stop."""

    settings_class: ClassVar[type] = AnnotatedVideoSettings
    export_files: ClassVar[str] = "the annotated video"

    def export(self, context: ExportContext) -> list[Path]:
        """Write every camera's annotated video; return them (none without pose files)."""
        if not context.analysed:
            return []
        return annotate_session(context.session_dir, threshold=self.settings.threshold)


def annotate_session(
    session_dir: Path,
    *,
    threshold: float | None = None,
    cameras: tuple[str, ...] | None = None,
    report: Callable[[VideoToAnnotate, int], None] | None = None,
    overlays: Mapping[str, FrameOverlay] | None = None,
) -> list[Path]:
    """Write the annotated video of each camera (of ``cameras``, or all) of a finished session.

    ``threshold`` None: each camera's own. ``report`` gets the video and frames written so far;
    ``overlays`` draws under each camera's keypoints.
    """
    record = read_session_record(session_dir)
    written = []
    for job in videos_to_annotate(session_dir, record):
        if cameras is not None and job.camera not in cameras:
            continue
        write_annotated_video(
            job.video,
            job.pose_file,
            job.target,
            threshold=threshold if threshold is not None else camera_threshold(record, job.camera),
            skeleton=model_skeleton(record, job.camera),
            frame_indices=job.frame_indices,
            report=None if report is None else _reporting(report, job),
            overlay=(overlays or {}).get(job.camera),
        )
        written.append(job.target)
    return written


def _reporting(report: Callable[[VideoToAnnotate, int], None], job: VideoToAnnotate) -> FrameReport:
    """Return ``report`` told about ``job``: the writer knows only the frames written."""
    return lambda done: report(job, done)


def videos_to_annotate(session_dir: Path, record: SessionRecord) -> list[VideoToAnnotate]:
    """Return the videos of each analysed camera: its recordings, else its source file."""
    jobs = []
    pose = record.pose
    for camera, entry in record.cameras.items():
        pose_name = pose.cameras[camera].pose_file if pose and camera in pose.cameras else None
        pose_file = session_dir / (pose_name or f"{camera}.pose.csv")
        if not pose_file.is_file():
            continue
        recorded = [r for r in entry.recordings if r.video and (session_dir / r.video).is_file()]
        if recorded:
            for recording in recorded:
                assert recording.video is not None
                video = session_dir / recording.video
                name = camera if len(recorded) == 1 else video.name.split(".")[0]
                jobs.append(
                    VideoToAnnotate(
                        camera, video, pose_file, session_dir / f"{name}{ANNOTATED_SUFFIX}",
                        _video_frame_indices(session_dir, recording.frames_table, camera),
                    )
                )  # fmt: skip
            continue
        source = entry.device.get("file") if entry.source == "video" else None
        if source and Path(source).is_file():
            target = session_dir / f"{camera}{ANNOTATED_SUFFIX}"
            jobs.append(VideoToAnnotate(camera, Path(source), pose_file, target, None))
    return jobs


def _video_frame_indices(
    session_dir: Path, frames_table: str | None, camera: str
) -> np.ndarray | None:
    """Return the frame index of each video frame, from the recording's frames table."""
    path = session_dir / (frames_table or f"{camera}.frames.csv")
    if not path.is_file():
        log.warning("%s is missing: the video's frame i is drawn with frame index i", path)
        return None
    table = pd.read_csv(regular_file(path), usecols=["frame_index"])
    return table["frame_index"].to_numpy(dtype=np.int64)


def camera_threshold(record: SessionRecord, camera: str) -> float:
    """Return the likelihood threshold the session used for ``camera`` (its own, else [Pose]'s)."""
    value = record.camera_setting(camera, "LIKELIHOOD_THRESHOLD")
    return float(value) if isinstance(value, int | float) else DEFAULT_THRESHOLD


def model_skeleton(record: SessionRecord, camera: str) -> tuple[tuple[str, str], ...]:
    """Return the skeleton of ``camera``'s model as keypoint-name pairs (none when unknown)."""
    if record.pose is None:
        return ()
    model = record.pose.model_of(camera)
    keypoints = tuple(model.keypoints or ())
    pairs: list[tuple[str, str]] = []
    for pair in model.skeleton or ():
        a, b = pair
        if isinstance(a, int) and isinstance(b, int):  # index pairs: name them
            if max(a, b) >= len(keypoints):
                continue
            a, b = keypoints[a], keypoints[b]
        pairs.append((str(a), str(b)))
    return tuple(pairs)


def read_pose_csv(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a pose CSV's analysed rows: (frame indices (N,), keypoints (N, A, K, 3), names)."""
    table = read_pose_table(path, analysed_only=True)
    return table.frames, table.points, table.keypoints


def write_annotated_video(
    video: Path,
    pose_csv: Path,
    target: Path,
    *,
    threshold: float,
    skeleton: tuple[tuple[str, str], ...] = (),
    frame_indices: np.ndarray | None = None,
    report: FrameReport | None = None,
    overlay: FrameOverlay | None = None,
) -> int:
    """Write ``target`` (H.264): ``video`` with the keypoints of ``pose_csv``; return its frames.

    ``frame_indices``: each video frame's camera frame index (None: ``i`` is ``i``);
    ``overlay`` draws on every frame under the keypoints.
    """
    indices, poses, names = read_pose_csv(pose_csv)
    position = {name: i for i, name in enumerate(names)}
    lines = tuple(
        (position[a], position[b]) for a, b in skeleton if a in position and b in position
    )
    written = 0
    next_report = time.monotonic() + _REPORT_INTERVAL_S
    with av.open(str(regular_file(video))) as source, av.open(str(target), "w") as sink:
        decoded = source.streams.video[0]
        decoded.thread_type = "AUTO"
        encoded = _output_stream(sink, decoded)
        row = -1  # the pose row shown: the newest at or before the frame
        for frame in source.decode(decoded):
            index = _frame_index(frame_indices, written)
            while row + 1 < len(indices) and indices[row + 1] <= index:
                row += 1
            image = frame.to_ndarray(format="bgr24")  # a new array: drawn on in place
            if overlay is not None:
                overlay(image)
            image = _drawn(image, poses, row, threshold, lines)
            out = av.VideoFrame.from_ndarray(_even_sized(image), format="bgr24")
            out.pts = written
            sink.mux(encoded.encode(out))
            written += 1
            if report is not None and time.monotonic() >= next_report:
                next_report = time.monotonic() + _REPORT_INTERVAL_S
                report(written)
        sink.mux(encoded.encode(None))
    return written


def _frame_index(frame_indices: np.ndarray | None, position: int) -> int:
    """Return the frame index of video frame ``position`` (past the table's end: beyond all)."""
    if frame_indices is None:
        return position
    if position < len(frame_indices):
        return int(frame_indices[position])
    return int(frame_indices[-1]) + 1 + position - len(frame_indices) if len(frame_indices) else -1


def _drawn(
    image: np.ndarray, poses: np.ndarray, row: int, threshold: float, lines: Any
) -> np.ndarray:
    """Return ``image`` with pose row ``row`` drawn (itself when no pose is due yet)."""
    if row < 0:
        return image
    if poses.shape[1] == 1:
        return draw_pose(image, poses[row, 0], threshold, lines)
    canvas = display_copy(image)  # several animals: each identity in its colour
    draw_animals_on(canvas, poses[row], threshold, lines)
    return canvas


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
