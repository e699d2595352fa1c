"""SLEAP's own files (``.slp``) of a session's poses, with ``sleap-io``.

docs/outputs.md, "SLEAP files (<camera>.slp)".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deeplabstream.core.errors import OutputError
from deeplabstream.core.regular_files import regular_file
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.outputs.session_record import (
    CameraRecord,
    ModelRecord,
    read_session_folder,
)

SLP_SUFFIX = ".slp"


class SlpError(OutputError, RuntimeError):
    """A file the ``.slp`` needs is missing or unreadable; the message names it."""


def write_session_slp(session_dir: Path) -> list[Path]:
    """Write ``<pose stem>.slp`` beside every pose file of ``session_dir``; return their paths.

    Raises SlpError when ``session.json`` or a pose file it names is missing or unreadable.
    """
    session_dir = Path(session_dir)
    session = read_session_folder(session_dir, SlpError)
    written = []
    for run in session.pose_runs:
        for camera, figures in run.cameras.items():
            pose_file = figures.pose_file
            if not pose_file:
                continue
            model = run.model_of(camera)
            entry = session.cameras.get(camera) or CameraRecord()
            target = session_dir / (pose_file.removesuffix(".pose.csv") + SLP_SUFFIX)
            written.append(_write_one(session_dir, camera, pose_file, model, entry, target))
    return written


def _write_one(
    session_dir: Path,
    camera: str,
    pose_file: str,
    model: ModelRecord,
    entry: CameraRecord,
    target: Path,
) -> Path:
    """Write one pose file's ``.slp`` to ``target``."""
    import sleap_io as sio

    frames, points, keypoints, individuals = _read_pose_csv(session_dir / pose_file)
    skeleton = sio.Skeleton(
        nodes=list(keypoints),
        edges=[list(pair) for pair in _skeleton(model, keypoints)],
        name=str(model.name or camera),
    )
    video_path, positions = _video_of(session_dir, camera, entry, frames)
    video = sio.Video(filename=str(video_path), open_backend=False)
    tracks = [sio.Track(name=name) for name in individuals] if individuals else []
    labelled = []
    for row, frame_index in enumerate(frames):
        instances = []
        for animal, pose in enumerate(points[row]):
            if np.isnan(pose[:, 0]).all():
                continue  # this identity is not in the frame
            instances.append(
                sio.PredictedInstance.from_numpy(
                    points_data=pose[:, :2],
                    skeleton=skeleton,
                    point_scores=np.nan_to_num(pose[:, 2]),
                    score=float(np.nanmean(pose[:, 2])),
                    track=tracks[animal] if tracks else None,
                )
            )
        if instances and positions.get(int(frame_index)) is not None:
            labelled.append(
                sio.LabeledFrame(
                    video=video, frame_idx=positions[int(frame_index)], instances=instances
                )
            )
    labels = sio.Labels(
        labeled_frames=labelled, videos=[video], skeletons=[skeleton], tracks=tracks
    )
    partial = target.with_name(f".{target.name}.partial")
    try:
        sio.save_slp(labels, str(partial), verbose=False)
        partial.replace(target)  # a reader never sees half a file under the final name
    finally:
        partial.unlink(missing_ok=True)
    return target


def _read_pose_csv(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...] | None]:
    """Return a pose CSV's analysed rows: frame indices, (N, A, K, 3), keypoints, individuals."""
    try:
        table = read_pose_table(path, analysed_only=True)
    except FileNotFoundError:
        raise SlpError(f"{path.parent}: missing {path.name}") from None
    except (OSError, ValueError) as error:
        raise SlpError(f"{path}: cannot be read: {error}") from None
    return table.frames, table.points, table.keypoints, table.individuals


def _skeleton(model: ModelRecord, keypoints: tuple[str, ...]) -> list[tuple[str, str]]:
    """Return the model's skeleton pairs whose keypoints are in the file."""
    pairs = model.skeleton or []
    return [(str(a), str(b)) for a, b in pairs if a in keypoints and b in keypoints]


def _video_of(
    session_dir: Path, camera: str, entry: CameraRecord, frames: np.ndarray
) -> tuple[Path, dict[int, int | None]]:
    """Return the camera's video (recording, replayed file or placeholder) and frame numbers."""
    recordings = [r for r in entry.recordings if r.video]
    if recordings and recordings[0].frames_table:
        table = session_dir / recordings[0].frames_table
        try:
            rows = pd.read_csv(regular_file(table), usecols=["frame_index"])
            indices = rows["frame_index"].to_numpy()
        except (OSError, ValueError) as error:
            raise SlpError(f"{table}: cannot be read: {error}") from None
        position = {int(index): row for row, index in enumerate(indices)}
        video = session_dir / str(recordings[0].video)
        return video, {int(f): position.get(int(f)) for f in frames}
    replayed = entry.device.get("file")  # a video camera's own description: the file it read
    if replayed:
        return Path(replayed), {int(f): int(f) for f in frames}
    return session_dir / f"{camera} (not recorded)", {int(f): int(f) for f in frames}


def main(argv: list[str] | None = None) -> int:
    """Write a session's ``.slp`` files (``python -m deeplabstream.outputs.slp SESSION_FOLDER``)."""
    parser = argparse.ArgumentParser(
        prog="python -m deeplabstream.outputs.slp",
        description="Write SLEAP .slp files (sleap-io) of a session folder's pose files.",
    )
    parser.add_argument("session", type=Path, help="a session folder (with session.json)")
    args = parser.parse_args(argv)
    try:
        paths = write_session_slp(args.session)
    except SlpError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not paths:
        print(f"{args.session}: no pose file: nothing to write", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
