"""Training data for the project's own pose models: frames, augmentation and targets.

Geometry as at inference, targets in :mod:`pose.decoding.peaks`'s convention.
docs/bundled-model.md, "Reproduce it".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deeplabstream.hardware.simulator.arena import ArenaParams, ArenaRenderer, Pose, simulate_poses
from deeplabstream.hardware.simulator.arena import keypoints_from_poses as arena_keypoints
from deeplabstream.offline.labels import LabeledData
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD
from deeplabstream.pose.networks.own import SIZE_MULTIPLE, STRIDE, InputFormat
from deeplabstream.pose.runtime.transforms import letterbox_size

LOCREF_STD = 7.2801
"""DeepLabCut's scale of location-refinement offsets, in input pixels."""

Size = tuple[int, int]
"""(width, height) in pixels."""


# --------------------------------------------------------------------------------------------------
# Geometry: frames, network input and heatmaps, all with pixel centres at whole numbers
# --------------------------------------------------------------------------------------------------


def frame_to_input(points: np.ndarray, frame_size: Size, input_size: Size) -> np.ndarray:
    """Frame pixels to input pixels for a whole-frame resize; sizes are (width, height)."""
    scale = np.array(input_size, dtype=np.float64) / np.array(frame_size, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def input_to_frame(points: np.ndarray, frame_size: Size, input_size: Size) -> np.ndarray:
    """Map input points back to the frame (the inverse of :func:`frame_to_input`)."""
    scale = np.array(frame_size, dtype=np.float64) / np.array(input_size, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def default_input_size(frame_size: Size, letterbox: bool = False) -> Size:
    """Half the frame, each side rounded to a multiple of 32 (up with ``letterbox``)."""
    rounding = math.ceil if letterbox else round
    return tuple(  # type: ignore[return-value]
        max(SIZE_MULTIPLE, SIZE_MULTIPLE * int(rounding(side / 2 / SIZE_MULTIPLE)))
        for side in frame_size
    )


def content_size(frame_size: Size, input_size: Size, letterbox: bool) -> Size:
    """(width, height) the frame is resized to: the input size, or its letterboxed part."""
    if not letterbox:
        return input_size
    height, width = letterbox_size((frame_size[1], frame_size[0]), (input_size[1], input_size[0]))
    return (width, height)


def resize_to_input(frame: np.ndarray, input_size: Size, letterbox: bool = False) -> np.ndarray:
    """Resize a BGR (or grey) uint8 frame to the input size as at inference (area), as BGR."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    frame_size = (frame.shape[1], frame.shape[0])
    size = content_size(frame_size, input_size, letterbox)
    if frame_size == tuple(size):
        resized = np.ascontiguousarray(frame)
    else:
        resized = cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA)
    if tuple(size) == tuple(input_size):
        return resized
    image = np.zeros((input_size[1], input_size[0], 3), np.uint8)
    image[: size[1], : size[0]] = resized
    return image


def normalise(images_bgr: np.ndarray) -> np.ndarray:
    """uint8 or float BGR images (N, H, W, 3) in 0..255 to the network's float32 NCHW RGB input."""
    rgb = np.asarray(images_bgr, dtype=np.float32)[..., ::-1] / np.float32(255.0)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)
    std = np.array(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((rgb - mean) / std).transpose(0, 3, 1, 2))


def network_input(images_bgr: np.ndarray, input_format: InputFormat) -> np.ndarray:
    """BGR images (N, H, W, 3), uint8 or float in 0..255, in a graph's input format."""
    if not input_format.raw_pixels:
        if input_format.layout == "nhwc":
            return np.ascontiguousarray(normalise(images_bgr).transpose(0, 2, 3, 1))
        return normalise(images_bgr)
    rgb = np.asarray(images_bgr)[..., ::-1]
    if input_format.dtype == "uint8":
        rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8) if rgb.dtype != np.uint8 else rgb
    else:
        rgb = rgb.astype(np.float32)
    if input_format.layout == "nchw":
        rgb = rgb.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(rgb)


# --------------------------------------------------------------------------------------------------
# Data: labeled images or rendered arenas, as frames resized to the input size
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One frame at input size with its keypoints.

    ``keypoints`` in input pixels (NaN: not labelled), ``truth`` in original-frame pixels; sizes
    (width, height); ``scaled_size`` None: the image's.
    """

    image: np.ndarray
    keypoints: np.ndarray
    truth: np.ndarray
    frame_size: Size
    scaled_size: Size | None = None

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Input pixels (..., 2) of this sample's image to its original frame's pixels."""
        scaled = self.scaled_size or (self.image.shape[1], self.image.shape[0])
        return input_to_frame(points, self.frame_size, scaled)


def make_sample(
    frame: np.ndarray, truth: np.ndarray, input_size: Size, letterbox: bool = False
) -> Sample:
    """Make a Sample from a full frame and its keypoints in frame pixels."""
    frame_size = (frame.shape[1], frame.shape[0])
    scaled = content_size(frame_size, input_size, letterbox)
    return Sample(
        image=resize_to_input(frame, input_size, letterbox),
        keypoints=frame_to_input(truth, frame_size, scaled),
        truth=np.asarray(truth, dtype=np.float64),
        frame_size=frame_size,
        scaled_size=scaled,
    )


def load_label_samples(
    labels: LabeledData, input_size: Size, letterbox: bool = False
) -> list[Sample]:
    """Every labeled image, resized to the input size; FileNotFoundError names one not readable."""
    samples = []
    for path, truth in zip(labels.image_paths, labels.coordinates, strict=True):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise FileNotFoundError(f"{path}: labeled image missing or unreadable")
        samples.append(make_sample(frame, truth, input_size, letterbox))
    return samples


@dataclass(frozen=True)
class ArenaVariation:
    """How much the simulated arenas of the training set differ from the default camera.

    Ranges of ``noise`` (grey levels), ``lighting_drift`` (relative) and ``body_scale``
    (relative to the default body length).
    """

    noise: tuple[float, float] = (0.0, 10.0)
    lighting_drift: tuple[float, float] = (0.0, 0.2)
    body_scale: tuple[float, float] = (0.8, 1.25)


def arena_params(seed: int, arena_size: Size, variation: ArenaVariation | None) -> ArenaParams:
    """Params of one arena; without ``variation`` the synthetic camera's defaults."""
    width, height = arena_size
    if variation is None:
        return ArenaParams(width=width, height=height, seed=seed)
    rng = np.random.default_rng([seed, 0x5EED])
    default_length = 0.2 * min(width, height)
    return ArenaParams(
        width=width,
        height=height,
        seed=seed,
        noise=float(rng.uniform(*variation.noise)),
        lighting_drift=float(rng.uniform(*variation.lighting_drift)),
        body_length=default_length * float(np.exp(rng.uniform(*np.log(variation.body_scale)))),
    )


class ArenaPool:
    """Seeded arenas that render frames of a random walk on demand, with exact keypoints.

    Sizes are (width, height); ``variation`` None keeps the camera's defaults.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        arena_size: Size,
        input_size: Size,
        variation: ArenaVariation | None,
        walk_frames: int = 6000,
        letterbox: bool = False,
    ) -> None:
        self.input_size = input_size
        self.letterbox = letterbox
        self.params = [arena_params(seed, arena_size, variation) for seed in seeds]
        self.renderers = [ArenaRenderer(p) for p in self.params]
        self.poses = [simulate_poses(p, walk_frames) for p in self.params]
        self._frame = np.empty(self.renderers[0].frame_shape, np.uint8)

    def render(self, arena: int, frame_index: int) -> Sample:
        """Frame ``frame_index`` of arena number ``arena`` (an index into ``seeds``)."""
        pose = self.poses[arena][frame_index]
        self.renderers[arena].render(Pose(*pose.tolist()), frame_index, self._frame)
        truth = arena_keypoints(pose, self.params[arena].body_length_px)
        return make_sample(self._frame, truth, self.input_size, self.letterbox)

    def random(self, rng: np.random.Generator) -> Sample:
        """Render a random frame of a random arena."""
        arena = int(rng.integers(len(self.renderers)))
        return self.render(arena, int(rng.integers(len(self.poses[arena]))))

    def spread(self, count: int) -> list[Sample]:
        """``count`` frames spread evenly over the arenas and their walks (deterministic)."""
        per_arena = math.ceil(count / len(self.renderers))
        walk = len(self.poses[0])
        samples = []
        for arena in range(len(self.renderers)):
            for frame_index in np.linspace(0, walk - 1, per_arena).astype(int):
                samples.append(self.render(arena, int(frame_index)))
        return samples[:count]


def synthetic_seeds(seed: int, role: str, count: int) -> list[int]:
    """Arena seeds for training, validation or testing; never overlapping, never 0..999."""
    base = 1000 * (seed + 1) + {"train": 0, "validation": 500, "test": 800}[role]
    return list(range(base, base + count))


# --------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to every training sample.

    ``crop``: side of the square crop in input pixels (a multiple of 32; 0: whole frames);
    ``scale`` (zoom, drawn log-uniformly) and ``contrast`` are ranges; ``rotation`` in degrees;
    ``brightness`` and ``noise`` in grey levels; ``color``: each channel's relative gain change;
    ``on_animal``, ``gray`` and ``blur`` are probabilities; ``flip`` swaps left/right keypoints.
    """

    crop: int = 160
    on_animal: float = 0.85
    scale: tuple[float, float] = (0.8, 1.25)
    rotation: float = 180.0
    flip: bool = True
    brightness: float = 30.0
    contrast: tuple[float, float] = (0.7, 1.3)
    color: float = 0.08
    gray: float = 0.2
    noise: float = 8.0
    blur: float = 0.2


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """Keypoint order after a left-right mirror (``left``/``right``, ``l``/``r`` names swapped)."""
    index = {name: i for i, name in enumerate(names)}
    permutation = np.arange(len(names))
    for i, name in enumerate(names):
        partner = _mirror_name(name)
        if partner != name and partner in index:
            permutation[i] = index[partner]
    return permutation


def _mirror_name(name: str) -> str:
    swaps = {"left": "right", "right": "left", "l": "r", "r": "l"}

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        mirrored = swaps[word.lower()]
        if word.isupper():
            return mirrored.upper()
        return mirrored.capitalize() if word[0].isupper() else mirrored

    mirrored = re.sub(r"(?i)left|right", swap, name)
    if mirrored != name:
        return mirrored
    return re.sub(r"(?i)(?<![a-z])[lr](?![a-z])", swap, name)


def random_affine(
    rng: np.random.Generator,
    augmentation: Augmentation,
    keypoints: np.ndarray,
    image_size: Size,
    out_size: Size,
) -> tuple[np.ndarray, bool]:
    """Draw a random 2x3 affine from the input image to the crop, and whether it mirrors."""
    scale = float(np.exp(rng.uniform(*np.log(augmentation.scale))))
    angle = math.radians(rng.uniform(-augmentation.rotation, augmentation.rotation))
    mirror = augmentation.flip and rng.random() < 0.5
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[cos, -sin], [sin, cos]])
    if mirror:
        linear = linear @ np.diag([-1.0, 1.0])
    out_centre = (np.array(out_size, dtype=np.float64) - 1) / 2
    labeled = keypoints[np.isfinite(keypoints).all(axis=1)]
    if len(labeled) and rng.random() < augmentation.on_animal:
        # Anywhere that keeps the animal's centre inside the middle 70 % of the crop.
        reach = 0.35 * np.array(out_size, dtype=np.float64) / scale
        centre = labeled.mean(axis=0) + rng.uniform(-reach, reach)
    else:
        centre = rng.uniform((0.0, 0.0), np.array(image_size, dtype=np.float64) - 1)
    translation = out_centre - linear @ centre
    return np.hstack([linear, translation[:, None]]), mirror


def augment(
    rng: np.random.Generator,
    sample: Sample,
    augmentation: Augmentation,
    permutation: np.ndarray,
    focus: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a sample with a random transform: float32 BGR image and keypoints in crop pixels.

    The crop is placed near ``focus`` (keypoints; None: all of the sample's).
    """
    height, width = sample.image.shape[:2]
    side = augmentation.crop
    out_size = (side, side) if side else (width, height)
    near = sample.keypoints if focus is None else focus
    matrix, mirrored = random_affine(rng, augmentation, near, (width, height), out_size)
    border = cv2.mean(sample.image)[:3]  # the mean colour (numpy's mean is ~20x slower)
    image = cv2.warpAffine(
        sample.image,
        matrix,
        out_size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    keypoints = sample.keypoints @ matrix[:, :2].T + matrix[:, 2]
    if mirrored:
        keypoints = keypoints[permutation]
    return photometric(rng, image, augmentation), keypoints


def photometric(
    rng: np.random.Generator, image: np.ndarray, augmentation: Augmentation
) -> np.ndarray:
    """Brightness, contrast, colour balance, grey, motion blur and noise; float32 0..255."""
    out = image.astype(np.float32)
    if rng.random() < augmentation.gray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        out = np.repeat(grey[..., None], 3, axis=2)
    if rng.random() < augmentation.blur:
        out = cv2.filter2D(out, -1, _motion_kernel(rng))
    contrast = rng.uniform(*augmentation.contrast)
    gains = 1.0 + rng.uniform(-augmentation.color, augmentation.color, size=3)
    shift = rng.uniform(-augmentation.brightness, augmentation.brightness)
    mean = sum(cv2.mean(out)[:3]) / 3
    # ((x - mean) * contrast + mean + shift) * gain as one multiply and one add, in place.
    np.multiply(out, (contrast * gains).astype(np.float32), out=out)
    np.add(out, (((1 - contrast) * mean + shift) * gains).astype(np.float32), out=out)
    sigma = rng.uniform(0.0, augmentation.noise)
    if sigma > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(out, 0.0, 255.0, out=out)


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    """Make a normalised line kernel 3..7 pixels long at a random angle (an animal moving fast)."""
    length = int(rng.choice([3, 5, 7]))
    kernel = np.zeros((length, length), np.float32)
    angle = rng.uniform(0.0, math.pi)
    half = (length - 1) / 2
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    start = (round((half - dx) * 16), round((half - dy) * 16))
    end = (round((half + dx) * 16), round((half + dy) * 16))
    cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA, 4)
    return kernel / max(float(kernel.sum()), 1e-6)


# --------------------------------------------------------------------------------------------------
# Targets and loss
# --------------------------------------------------------------------------------------------------


def make_targets(
    keypoints: np.ndarray,
    image_size: Size,
    sigma: float,
    locref_radius: float,
    locref_std: float = LOCREF_STD,
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap, location-refinement and mask targets for keypoints (K, 2) in input pixels.

    ``sigma`` and ``locref_radius`` in heatmap pixels, offsets in ``locref_std`` input pixels.
    Returns heatmaps (K, h, w), offsets (2K, h, w) ordered x0, y0, ..., and the mask (K, h, w).
    """
    width, height = image_size
    w, h = width // stride, height // stride
    centres_x = np.arange(w) * stride + (stride - 1) / 2  # pose.decoding.peaks's convention
    centres_y = np.arange(h) * stride + (stride - 1) / 2
    k = len(keypoints)
    x = keypoints[:, 0]
    y = keypoints[:, 1]
    visible = np.isfinite(keypoints).all(axis=1)
    visible &= (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    x = np.where(visible, x, -1e6)[:, None, None]
    y = np.where(visible, y, -1e6)[:, None, None]
    dx = x - centres_x[None, None, :]  # keypoint minus pixel centre, input pixels
    dy = y - centres_y[None, :, None]
    distance2 = (dx**2 + dy**2) / stride**2
    heatmaps = np.exp(-distance2 / (2 * sigma**2)).astype(np.float32)
    mask = (distance2 <= locref_radius**2).astype(np.float32)
    offsets = np.empty((k, 2, h, w), np.float32)
    offsets[:, 0] = np.broadcast_to(dx / locref_std, (k, h, w))
    offsets[:, 1] = np.broadcast_to(dy / locref_std, (k, h, w))
    offsets *= mask[:, None]
    return heatmaps, offsets.reshape(2 * k, h, w), mask
