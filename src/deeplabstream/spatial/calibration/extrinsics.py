"""First guesses of where the cameras are: board poses per frame, chained between cameras."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from deeplabstream.core.errors import CalibrationError
from deeplabstream.hardware.simulator.board import BOARD, BoardSpec
from deeplabstream.spatial.calibration.detection import BoardDetection
from deeplabstream.spatial.calibration.geometry import invert, medoid_pose, pose_matrix
from deeplabstream.spatial.calibration.intrinsics import Intrinsics

MIN_SHARED_VIEWS = 3
"""Two cameras are linked only through at least this many frames in which both see the board."""

BoardPoses = list[np.ndarray | None]
"""Per frame set: the board -> camera 4 x 4 transform, or None where the board was not found."""


def board_poses_in_camera(
    detections: Sequence[BoardDetection | None], intrinsics: Intrinsics, spec: BoardSpec = BOARD
) -> BoardPoses:
    """Solve the board's pose in every frame where one camera found it (planar PnP, IPPE)."""
    import cv2

    poses: BoardPoses = []
    for detection in detections:
        if detection is None:
            poses.append(None)
            continue
        found, rotation, translation = cv2.solvePnP(
            detection.board_points(spec),
            detection.pixels,
            intrinsics.matrix,
            intrinsics.distortions,
            flags=cv2.SOLVEPNP_IPPE,
        )
        poses.append(pose_matrix(rotation, translation) if found else None)
    return poses


def shared_views(first: BoardPoses, second: BoardPoses) -> list[int]:
    """Return the frame sets in which both cameras have a board pose."""
    return [
        i
        for i, (a, b) in enumerate(zip(first, second, strict=True))
        if a is not None and b is not None
    ]


def relative_pose(source: BoardPoses, target: BoardPoses, frames: Sequence[int]) -> np.ndarray:
    """Return the source -> target camera transform agreed on by the shared frames (medoid)."""
    candidates = []
    for index in frames:
        seen_by_source, seen_by_target = source[index], target[index]
        assert seen_by_source is not None and seen_by_target is not None  # shared views only
        candidates.append(seen_by_target @ invert(seen_by_source))
    return medoid_pose(candidates)


def chain_cameras(poses: Mapping[str, BoardPoses], reference: str) -> dict[str, np.ndarray]:
    """Place every camera relative to ``reference``: name -> reference -> camera transform.

    Raises :class:`CalibrationError` when a camera shares too few frames (:data:`MIN_SHARED_VIEWS`).
    """
    placed = {reference: np.eye(4)}
    remaining = [name for name in poses if name != reference]
    while remaining:
        best: tuple[int, str, str] | None = None
        for name in remaining:
            for anchor in placed:
                count = len(shared_views(poses[anchor], poses[name]))
                if count >= MIN_SHARED_VIEWS and (best is None or count > best[0]):
                    best = (count, anchor, name)
        if best is None:
            raise CalibrationError(_unlinked_message(poses, list(placed), remaining))
        _, anchor, name = best
        frames = shared_views(poses[anchor], poses[name])
        placed[name] = relative_pose(poses[anchor], poses[name], frames) @ placed[anchor]
        remaining.remove(name)
    return placed


def _unlinked_message(poses: Mapping[str, BoardPoses], placed: list[str], left: list[str]) -> str:
    """Explain which cameras cannot be linked, with the frames each pair shares."""
    counts = ", ".join(
        f"{a}+{b}: {len(shared_views(poses[a], poses[b]))}" for a in placed for b in left
    )
    return (
        f"too few shared views: camera(s) {', '.join(map(repr, left))} see the board in fewer "
        f"than {MIN_SHARED_VIEWS} frames together with any of {', '.join(map(repr, placed))} "
        f"(frames with the board seen by both: {counts}); move the board where these cameras "
        "overlap, and check that the videos are of the same session and pair up in time"
    )


def board_in_reference(
    poses: Mapping[str, BoardPoses], cameras: Mapping[str, np.ndarray]
) -> list[np.ndarray | None]:
    """Per frame set: board -> reference transform, from the first camera that sees it."""
    count = len(next(iter(poses.values())))
    in_reference: list[np.ndarray | None] = [None] * count
    for index in range(count):
        for name, camera_poses in poses.items():
            seen = camera_poses[index]
            if seen is not None:
                in_reference[index] = invert(cameras[name]) @ seen
                break
    return in_reference
