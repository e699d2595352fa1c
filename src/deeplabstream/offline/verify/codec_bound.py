"""A lossy recording's bound, measured from the recording itself, per camera.

Design: docs/verify.md, "offline.verify.codec_bound".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.outputs.video import codec_setup
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.settings.sections import RecordingSettings

#: Runs of consecutive frames sampled per camera, and their length: their re-encoding and two
#: analyses cost about RUNS x RUN_FRAMES frames of the replay twice.
RUNS = 6
RUN_FRAMES = 10
#: The bound per frame, in rms of the measured keypoint noise (see the module's notes).
NOISE_FACTOR = 40.0
#: The smallest bound, px: a codec whose re-encoding moves nothing still moved the first pass.
MIN_BOUND_PX = 1.0


@dataclass(frozen=True)
class CodecBound:
    """A lossy camera's bound per frame, and what it was measured from."""

    bound_px: float | None  # None: nothing could be measured (no keypoint seen)
    median_px: float | None = None
    max_px: float | None = None
    frames: int = 0  # frames sampled and analysed twice
    keypoints: int = 0  # keypoints seen on both sides among them
    encoder: str = ""  # the encoder settings used, in words
    given: bool = False  # --bound-px: the reviewer's, not measured

    def describe(self) -> str:
        """Return how the bound was made, in words (the report and the notes)."""
        if self.given:
            return f"{self.bound_px:.2f} px per frame, as given (--bound-px)"
        if self.bound_px is None:
            return (
                f"no bound: no keypoint was seen on the {self.frames} frames sampled to measure "
                "the codec's noise"
            )
        return (
            f"{self.bound_px:.2f} px per frame: the codec's keypoint noise measured on "
            f"{self.frames} frames of this recording encoded again ({self.encoder}): median "
            f"{self.median_px:.3f} px, largest {self.max_px:.2f} px over {self.keypoints} "
            f"keypoints; the bound is {NOISE_FACTOR:g} x the median"
        )

    def summary(self) -> dict[str, Any]:
        """Return the figures for ``summary.json``."""
        return {
            "bound_px": self.bound_px,
            "median_px": self.median_px,
            "max_px": self.max_px,
            "frames_sampled": self.frames,
            "keypoints_measured": self.keypoints,
            "encoder": self.encoder,
            "given": self.given,
            "how": self.describe(),
        }


def bound_from(displacements: np.ndarray, frames: int, encoder: str) -> CodecBound:
    """Return the bound made of the keypoints' displacements (px, NaN: not seen on both)."""
    seen = displacements[np.isfinite(displacements)]
    if seen.size == 0:
        return CodecBound(None, frames=frames, encoder=encoder)
    median = float(np.median(seen))
    bound = max(NOISE_FACTOR * median, MIN_BOUND_PX)
    return CodecBound(round(bound, 3), median, float(seen.max()), frames, int(seen.size), encoder)


def measure_bound(
    video: Path,
    positions: Sequence[int],
    recording: RecordingSettings,
    model: Path | None,
    threshold: float,
    max_animals: int | None = None,
) -> CodecBound:
    """Measure the bound of ``video`` on runs of frames starting among ``positions``.

    ``positions``: the frames of the video the live loop analysed (its schedule). The model
    runs on the CPU, at the frame's size, each frame on its own.
    """
    runs = sample_runs(sorted(set(positions)))
    decoded = decode_frames(video, sorted({position for run in runs for position in run}))
    clips = [[decoded[p] for p in run if p in decoded] for run in runs]
    clips = [clip for clip in clips if clip]
    encoder = f"libx264 CRF {recording.crf}, preset {recording.preset}"
    if not clips:
        return CodecBound(None, encoder=encoder)
    recorded = [frame for clip in clips for frame in clip]
    again = [frame for clip in clips for frame in encode_again(clip, recording)]
    height, width = recorded[0].shape[:2]
    description = load_model(model, frame_size=(height, width), max_animals=max_animals)
    from deeplabstream.offline.replay.images import predict_frames

    def analyse(frames: list[np.ndarray]) -> np.ndarray:
        return predict_frames(lambda index: frames[index], len(frames), description, open_backend)

    first, second = analyse(recorded), analyse(again)
    seen = (first[..., 2] >= threshold) & (second[..., 2] >= threshold)
    moved = np.hypot(first[..., 0] - second[..., 0], first[..., 1] - second[..., 1])
    return bound_from(np.where(seen, moved, np.nan), len(recorded), encoder)


def sample_runs(positions: list[int]) -> list[list[int]]:
    """Return :data:`RUNS` runs of :data:`RUN_FRAMES` consecutive frames, spread over ``positions``.

    Consecutive, so that the frames after the first are predicted from it as in the recording.
    """
    if not positions:
        return []
    starts = np.linspace(positions[0], max(positions[0], positions[-1] - RUN_FRAMES + 1), RUNS)
    runs: list[list[int]] = []
    taken: set[int] = set()
    for start in sorted(set(starts.round().astype(int).tolist())):
        run = [p for p in range(start, start + RUN_FRAMES) if p not in taken]
        taken.update(run)
        if run:
            runs.append(run)
    return runs


def decode_frames(video: Path, positions: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode the frames at ``positions`` (ascending) of ``video``, as the replay gives them.

    Only the packets of a group of pictures that holds a wanted frame are decoded: each group
    is kept undecoded until one of its frames is wanted.
    """
    wanted = set(positions)
    last = max(positions, default=-1)
    found: dict[int, np.ndarray] = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        pending: list[av.Packet] = []  # this group's packets not decoded yet
        index = -1
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            index += 1
            if index > last:
                break
            if packet.is_keyframe:
                pending = []
            pending.append(packet)
            if index not in wanted:
                continue
            frames = [frame for queued in pending for frame in codec.decode(queued)]
            pending = []
            if frames:
                found[index] = _pixels(frames[-1])
    return found


def _pixels(frame: av.VideoFrame) -> np.ndarray:
    grey = frame.format.name in ("gray", "gray8")
    return frame.to_ndarray(format="gray" if grey else "bgr24")


def encode_again(frames: list[np.ndarray], recording: RecordingSettings) -> list[np.ndarray]:
    """Encode consecutive ``frames`` as the recorder encodes (its options), and decode them."""
    grey = frames[0].ndim == 2
    height, width = frames[0].shape[:2]
    geometry = FrameGeometry(height=height, width=width, channels=1 if grey else 3)
    options, _, pixel_format = codec_setup(
        "h264", geometry, 30.0, recording.crf, recording.preset, recording.flush_interval
    )
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pixel_format
    encoder.time_base = Fraction(1, 30)
    encoder.options = options
    decoder = av.CodecContext.create("h264", "r")
    packets: list[av.Packet] = []
    for number, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="gray" if grey else "bgr24")
        frame = frame.reformat(format=pixel_format)
        frame.pts = number
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    out: list[np.ndarray] = []
    for packet in packets:
        out += [_pixels(frame) for frame in decoder.decode(packet)]
    out += [_pixels(frame) for frame in decoder.decode(None)]
    return out[: len(frames)]
