"""A streaming session's cameras as the window reaches them: controls, display readers, names."""

from __future__ import annotations

from deeplabstream.hardware.cameras.base import CameraControl, CameraError
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.transport.channel import ChannelReader
from deeplabstream.transport.readers import NewestFrameReader
from deeplabstream.transport.ring import Channel


def camera_controls(branches: list[CameraBranch], name: str) -> tuple[CameraControl, ...]:
    """Return a camera's controls and limits as last reported (KeyError: no such camera)."""
    for branch in branches:
        if branch.name == name:
            return branch.controls
    raise KeyError(name)


def set_camera_control(
    branches: list[CameraBranch],
    streaming: bool,
    camera: str,
    control: str,
    value: float,
    timeout_s: float,
) -> float:
    """Set a live control of a streaming camera; return the value the camera really took.

    Raises CameraError: no such camera, not ``streaming``, the value refused (its limits
    given), or no answer within ``timeout_s``.
    """
    branch = next((b for b in branches if b.name == camera), None)
    if branch is None:
        raise CameraError(f"no camera {camera!r} in this session")
    if not streaming:
        raise CameraError(f"camera {camera!r}: {control} can be set only while streaming")
    return branch.set_control(control, value, timeout_s)


def display_reader(branches: list[CameraBranch], camera_name: str) -> NewestFrameReader:
    """Return a newest-frame reader on a camera's DISPLAY channel, for a window here."""
    for branch in branches:
        if branch.name == camera_name and branch.ring is not None:
            reader = ChannelReader(
                branch.channel_ends[Channel.DISPLAY], branch.camera_id, kind=branch.doorbell
            )
            return NewestFrameReader(branch.ring, reader, Channel.DISPLAY)
    raise KeyError(camera_name)
