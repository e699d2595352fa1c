"""Running a Lightning Pose context model: each frame's backbone once, the heads on five frames.

Live and in replays causal (the camera's last two analysed frames as t-2, t-1); offline Lightning
Pose's own windows (t-2 .. t+2). Conversion: :mod:`pose.formats.lightning_context`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.lightning_context import (
    CENTRE,
    CONTEXT_FRAMES,
    combine_heads,
    context_of,
    heads_description,
)
from deeplabstream.pose.model import ModelDescription, ModelError


class ContextEstimator(PoseEstimator):
    """Frames in, keypoints in frame pixels out, for a Lightning Pose context model."""

    def __init__(
        self,
        description: ModelDescription,
        backend: Any,
        frame_shape: tuple[int, ...],
        max_batch: int = 1,
        heads_backend: Any | None = None,
    ) -> None:
        from deeplabstream.pose.runtime.preprocess import Preprocessor

        stages = context_of(description)
        if stages is None:
            raise ModelError(f"{description.model_file}: not a Lightning Pose context model")
        super().__init__(description)
        self.stages = stages
        self.backend = backend
        self.batch = max(1, max_batch)
        allocate = getattr(backend, "host_buffer", None)
        self.preprocessor = Preprocessor(description, frame_shape, self.batch, None, allocate)
        if heads_backend is None:
            heads_backend = open_heads(description, backend)
        self.heads = heads_backend
        self._past: dict[Hashable, deque[np.ndarray]] = {}

    def reset(self) -> None:
        """Forget every camera's past frames."""
        self._past.clear()

    def estimate_animals(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """(N, 1, K, 3) keypoints of each frame with its causal context (frames in order)."""
        features, transforms, preprocess_s, backbone_s = self._features(frames, flips)
        windows = []
        for i, own in enumerate(features):
            key = None if keys is None else keys[i]
            past = self._past.get(key) if key is not None else None
            if past is None:
                past = deque(maxlen=CENTRE)
                if key is not None:
                    self._past[key] = past
            earlier = list(past)
            before = [*[earlier[0] if earlier else own] * (CENTRE - len(earlier)), *earlier]
            windows.append(np.stack([*before, own, *[own] * CENTRE]))
            if key is not None:
                past.append(own)
        points = self._heads(np.stack(windows), transforms, preprocess_s, backbone_s)
        return points[:, None]

    def estimate_windows(
        self, windows: Sequence[Sequence[np.ndarray]], flips: Sequence[bool] | None = None
    ) -> np.ndarray:
        """(N, 1, K, 3) keypoints of the centre frame of each five-frame window, as given."""
        if any(len(w) != CONTEXT_FRAMES for w in windows):
            raise ValueError(f"each window needs {CONTEXT_FRAMES} frames")
        flat = [frame for window in windows for frame in window]
        flat_flips = None if flips is None else [f for f in flips for _ in range(CONTEXT_FRAMES)]
        features, transforms, preprocess_s, backbone_s = self._features(flat, flat_flips)
        stacked = features.reshape(len(windows), CONTEXT_FRAMES, *features.shape[1:])
        centres = transforms[CENTRE::CONTEXT_FRAMES]
        return self._heads(stacked, centres, preprocess_s, backbone_s)[:, None]

    def predict_video(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Lightning Pose's offline result on a whole video: (N, K, 3) in frame pixels.

        Edges as ``litpose predict`` (frames 0, 1 take frame 2's result; the last two frame N-3's).
        ``frames`` may be an iterator: at most five frames' features are kept beyond a batch.
        """
        kept: list[tuple[np.ndarray, Any]] = []  # (features, transform) from frame ``first``
        first = count = 0
        valid: list[np.ndarray] = []  # results of centres 2, 3, ...
        for chunk in _batches(frames, self.batch):
            features, transforms, preprocess_s, backbone_s = self._features(chunk, None)
            kept.extend(zip(features, transforms, strict=True))
            count += len(chunk)
            centres = range(CENTRE + len(valid), count - CENTRE)
            if len(centres) and count >= CONTEXT_FRAMES:
                windows = np.stack(
                    [np.stack([f for f, _ in kept[t - CENTRE - first : t + CENTRE + 1 - first]])
                     for t in centres]
                )  # fmt: skip
                centre_transforms = [kept[t - first][1] for t in centres]
                valid.extend(self._heads(windows, centre_transforms, preprocess_s, backbone_s))
                drop = centres[-1] + 1 - CENTRE - first  # frames no later centre needs
                del kept[:drop]
                first += drop
        if count == 0:
            return np.empty((0, len(self.description.keypoints), 3))
        if count < CONTEXT_FRAMES:  # every frame is still kept
            features = np.stack([f for f, _ in kept])
            ends = [features[:1]] * CENTRE, [features[-1:]] * CENTRE
            padded = np.concatenate([*ends[0], features, *ends[1]])
            windows = np.stack([padded[t : t + CONTEXT_FRAMES] for t in range(count)])
            return self._heads(windows, [t for _, t in kept], 0.0, 0.0)
        head, tail = valid[:1], valid[-1:]
        return np.stack([*head, *head, *valid, *tail, *tail])

    def _features(
        self, frames: Sequence[np.ndarray], flips: Sequence[bool] | None
    ) -> tuple[np.ndarray, list[Any], float, float]:
        """Each frame's backbone features (N, C, h, w), its transform, and the seconds taken."""
        n = len(frames)
        flips = [False] * n if flips is None else list(flips)
        features = np.empty((n, *self.stages.feature_shape), np.float32)
        transforms: list[Any] = []
        preprocess_s = backbone_s = 0.0
        for start in range(0, n, self.batch):
            stop = min(start + self.batch, n)
            t0 = _now()
            batch, chunk = self.preprocessor.prepare(frames[start:stop], flips[start:stop])
            t1 = _now()
            features[start:stop] = self.backend.run(batch)[0][: stop - start]
            backbone_s += _now() - t1
            preprocess_s += t1 - t0
            transforms.extend(chunk)
        return features, transforms, preprocess_s, backbone_s

    def _heads(
        self,
        windows: np.ndarray,
        transforms: Sequence[Any],
        preprocess_s: float,
        backbone_s: float,
    ) -> np.ndarray:
        """Keypoints (N, K, 3) in frame pixels of (N, 5, C, h, w) windows of features."""
        n, frames, channels, h, w = windows.shape
        dtype = np.float16 if self.description.precision == "fp16" else np.float32
        stacked = np.ascontiguousarray(windows.reshape(n, frames * channels, h, w), dtype)
        t1 = _now()
        single, multi = self.heads.run(stacked)[:2]
        t2 = _now()
        points = combine_heads(
            np.asarray(single[:n], np.float32),
            np.asarray(multi[:n], np.float32),
            self.description.downsample_factor,
        )
        for i, transform in enumerate(transforms):
            points[i] = transform.to_frame(points[i])
        t3 = _now()
        self.last_stage_timings = {"backbone": backbone_s, "heads": t2 - t1}
        self.last_timings = {
            "preprocess": preprocess_s,
            "inference": backbone_s + (t2 - t1),
            "decode": t3 - t2,
        }
        return points


def open_heads(description: ModelDescription, backend: Any) -> Any:
    """Open the heads graph on the backbone's kind of backend (ONNX Runtime, its threads)."""
    from deeplabstream.pose.runtime.backends import (
        open_backend,
        second_graph_device,
        second_graph_threads,
    )

    name = getattr(backend, "name", "onnxruntime")
    device, threads = second_graph_device(backend), second_graph_threads(backend)
    heads = open_backend(heads_description(description), name, device, threads)
    # The backend's own warm-up feeds an image-shaped batch: the heads take features.
    stages = context_of(description)
    assert stages is not None
    channels, h, w = stages.feature_shape
    dtype = np.float16 if description.precision == "fp16" else np.float32
    for _ in range(2):
        heads.run(np.zeros((1, CONTEXT_FRAMES * channels, h, w), dtype))
    return heads


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _now() -> float:
    import time

    return time.perf_counter()
