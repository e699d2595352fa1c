"""A camera run alone as its capture process runs it: open, grab frames, close."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.hardware.cameras import camera_class
from deeplabstream.hardware.cameras.base import Camera
from deeplabstream.testing.plugin_settings import (
    PluginCheckError,
    close_twice,
    plugin_settings,
    returns_within,
)

#: How long one ``grab`` may wait for its frame in :func:`run_camera` (``grab_limit_s``).
GRAB_LIMIT_S = 5.0


@dataclass(frozen=True)
class CameraRun:
    """What a camera did in :func:`run_camera`: frames, stamps, ``ended``, ``description``."""

    geometry: FrameGeometry
    nominal_fps: float | None
    frames: list[np.ndarray]
    stamps: list[FrameStamp]
    ended: bool
    description: dict[str, Any]


def run_camera(
    camera: str | type[Camera],
    keys: Mapping[str, str] | None = None,
    *,
    frames: int = 10,
    name: str = "camera",
    settings_folder: Path | None = None,
    session_dir: Path | None = None,
    grab_limit_s: float = GRAB_LIMIT_S,
) -> CameraRun:
    """Open ``camera``, grab up to ``frames`` frames into a frame buffer, close it (twice).

    ``camera`` is its ``SOURCE`` name or class; ``keys`` its section's keys as text. With
    ``session_dir``, the session hooks run around the grabs; a ``grab`` is interrupted after
    ``grab_limit_s``. Raises :class:`PluginCheckError` for a broken rule of the camera interface
    (docs/plugins.md, "Testing a plugin alone").
    """
    with using_settings_folder(settings_folder):
        cls = camera_class(camera, settings_folder) if isinstance(camera, str) else camera
        options = plugin_settings(
            cls.settings_class, keys, settings_folder=settings_folder, section=f"Camera {name}"
        )
        instance = cls(name, options)
        label = f"camera {name!r} ({cls.__name__})"
        try:
            return _stream(instance, label, frames, session_dir, grab_limit_s)
        finally:
            close_twice(instance, label)


def _stream(
    camera: Camera, label: str, frames: int, session_dir: Path | None, grab_limit_s: float
) -> CameraRun:
    geometry = camera.open()
    if not isinstance(geometry, FrameGeometry):
        raise PluginCheckError(f"{label}: open() returned {geometry!r}, not a FrameGeometry")
    fps = camera.nominal_fps
    if fps is not None and not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise PluginCheckError(f"{label}: nominal_fps is {fps!r}; expected a rate > 0 or None")
    if session_dir is not None:
        camera.start_session(session_dir)
    taken: list[np.ndarray] = []
    stamps: list[FrameStamp] = []
    ended = False
    for _ in range(frames):
        out = np.zeros(geometry.shape, np.dtype(geometry.dtype))
        stamp = returns_within(
            label,
            "grab(out)",
            grab_limit_s,
            lambda out=out: camera.grab(out),  # type: ignore[misc]
            GRAB_RULE,
        )
        if stamp is None:
            ended = True
            break
        _check_stamp(label, stamp, stamps[-1] if stamps else None)
        taken.append(out.copy())
        stamps.append(stamp)
    if session_dir is not None:
        camera.finish_session()
    description = camera.describe()
    try:
        json.dumps(description)
    except (TypeError, ValueError) as error:
        raise PluginCheckError(
            f"{label}: describe() returned {description!r}, which session.json cannot hold "
            f"({error}); return a dict of numbers, texts, lists and dicts"
        ) from None
    return CameraRun(geometry, fps, taken, stamps, ended, description)


GRAB_RULE = (
    "grab waits for one frame, never longer: a session says a camera that delivers nothing "
    "for 2 s is stalled, and a device camera silent for [Streaming] CAMERA_LOST_AFTER is lost. "
    "For a camera that waits for a hardware trigger, give run_camera a longer grab_limit_s"
)


def _check_stamp(label: str, stamp: Any, previous: FrameStamp | None) -> None:
    """Check one stamp: a FrameStamp whose index and host time never go back."""
    if not isinstance(stamp, FrameStamp):
        raise PluginCheckError(f"{label}: grab() returned {stamp!r}, not a FrameStamp or None")
    if isinstance(stamp.frame_index, bool) or not isinstance(stamp.frame_index, int | np.integer):
        raise PluginCheckError(f"{label}: frame_index {stamp.frame_index!r} is not an integer")
    if previous is None:
        return
    if stamp.frame_index <= previous.frame_index:
        raise PluginCheckError(
            f"{label}: frame_index went from {previous.frame_index} to {stamp.frame_index}; "
            "the camera's own counter only grows (a gap is a frame it dropped)"
        )
    if stamp.host_timestamp_ns < previous.host_timestamp_ns:
        raise PluginCheckError(
            f"{label}: host_timestamp_ns went back ({previous.host_timestamp_ns} -> "
            f"{stamp.host_timestamp_ns}); stamp each frame with host_now_ns() when it arrives"
        )
