"""Training the project's own pose models: ``python -m training.train``.

Two sources of training data:

* ``--labels CollectedData_x.csv`` (or ``.h5``): DeepLabCut labels and their images;
* ``--synthetic``: frames rendered by the simulated arena (:mod:`simulator.arena`) with their exact
  keypoints, from many seeded arenas whose noise, lighting drift and body size vary.

Frames are resized to the network's input size with ``cv2.INTER_AREA`` exactly as at inference
(see :mod:`pose.own_model`), then augmented: a random affine crop (scale, rotation, translation,
horizontal flip with left/right keypoints swapped) and photometric changes (brightness, contrast,
colour balance, grey, noise, motion blur). Targets follow :mod:`pose.decode`'s convention: heatmap
pixel ``j`` is centred on input pixel ``j * stride + (stride - 1) / 2``; a Gaussian of
``--sigma`` heatmap pixels is drawn at each keypoint and location-refinement offsets (in units of
``locref_std`` input pixels) are learned around it. Data, augmentation and targets live in
:mod:`training.data`; this module has the loss, the loop, the export and the command.

The run keeps the checkpoint with the lowest validation error, exports it to ONNX (dynamic batch,
checked against PyTorch with ONNX Runtime) and TorchScript, scores the held-out frames in
original-frame pixels and writes a model folder (:mod:`pose.own_model`) and
``training_report.json``. Runs are reproducible from ``--seed`` on the same machine, thread count
and library versions.

The network (:mod:`pose.network`) is chosen with ``--architecture`` (``resnet-fpn``, the first
design and the default, or ``separable-fpn``, the bundled model's), ``--widths``,
``--decoder-width`` and ``--blocks``; how its graph takes its input with ``--input-format``
(normalised float, or pixels 0..255 normalised inside the graph as float or uint8, NCHW or NHWC)
and ``--letterbox`` (frames resized by one factor into the input's top-left corner). Training
feeds the network exactly what :class:`pose.preprocess.Preprocessor` feeds it live.

``--evaluate`` scores a model folder through the application's own path
(:class:`pose.estimator.PoseEstimator`) and times its stages.

Examples
--------
::

    python -m training.train --out models/me \
        --labels project/labeled-data/video/CollectedData_me.csv
    python -m training.train --synthetic --out models/arena --steps 2500 --seed 0
    python -m training.train --synthetic --out models/fast --architecture separable-fpn \
        --input-format float-raw --letterbox
    python -m training.train --evaluate models/arena --eval-seeds 0-9

The bundled model's exact command is in its ``model.json`` and in ``docs/bundled-model.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import queue
import re
import shlex
import sys
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.nn import functional

from pose.decode import decode_argmax
from pose.labels import read_dlc_labels
from pose.model import ModelDescription
from pose.network import (
    ARCHITECTURES,
    INPUT_FORMATS,
    STRIDE,
    InputFormat,
    NetworkConfig,
    PoseNet,
    check_input_size,
    example_input,
    export_onnx,
    parameter_count,
)
from pose.own_model import save_own_model
from simulator.arena import KEYPOINT_NAMES, ArenaParams
from training.data import (
    LOCREF_STD,
    ArenaPool,
    ArenaVariation,
    Augmentation,
    Sample,
    Size,
    augment,
    content_size,
    default_input_size,
    flip_permutation,
    input_to_frame,
    load_label_samples,
    make_targets,
    network_input,
    resize_to_input,
    synthetic_seeds,
)

ARENA_SKELETON = (
    ("nose", "left_ear"),
    ("nose", "right_ear"),
    ("left_ear", "neck"),
    ("right_ear", "neck"),
    ("neck", "body_center"),
    ("body_center", "tail_base"),
)


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSettings:
    """Target shapes and weights of the loss.

    Attributes
    ----------
    sigma
        Gaussian standard deviation in heatmap pixels.
    locref_radius
        Radius (heatmap pixels) around a keypoint where offsets are learned.
    locref_weight
        Weight of the offsets' loss against the heatmaps'.
    locref_beta
        Where the offsets' Huber loss turns from quadratic to linear (in ``locref_std`` units):
        small, so that errors of a fraction of a pixel still pull (a squared loss would not).
    """

    sigma: float = 1.25
    locref_radius: float = 2.0
    locref_weight: float = 5.0
    locref_beta: float = 0.05


def pose_loss(
    outputs: Sequence[torch.Tensor],
    heatmaps: torch.Tensor,
    offsets: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid cross-entropy on the heatmaps plus a masked Huber loss on the offsets.

    Each term is summed over a map and averaged over images and keypoints, so the loss does not
    depend on the crop size.
    """
    n, k = heatmaps.shape[:2]
    heat = functional.binary_cross_entropy_with_logits(outputs[0], heatmaps, reduction="sum")
    heat = heat / (n * k)
    total = heat
    parts = {"heatmap": float(heat.detach())}
    if len(outputs) > 1:
        weights = mask.repeat_interleave(2, dim=1)
        huber = functional.smooth_l1_loss(
            outputs[1], offsets, reduction="none", beta=settings.locref_beta
        )
        locref = (huber * weights).sum() / (n * k)
        total = total + settings.locref_weight * locref
        parts["locref"] = float(locref.detach())
    return total, parts


# --------------------------------------------------------------------------------------------------
# Prediction and scoring
# --------------------------------------------------------------------------------------------------


def decode_outputs(
    outputs: Sequence[np.ndarray], use_locref: bool, locref_std: float = LOCREF_STD
) -> np.ndarray:
    """Network outputs to (N, K, 3) keypoints in input pixels (x, y, likelihood)."""
    return decode_argmax(
        outputs[0],
        STRIDE,
        locref=outputs[1] if use_locref and len(outputs) > 1 else None,
        locref_std=locref_std,
        heatmaps_are_probabilities=False,
    )


def torch_outputs(model: PoseNet, images: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    """Run the network in eval mode on BGR uint8 images (N, H, W, 3) at input size."""
    model.eval()
    parts: list[list[np.ndarray]] = []
    fmt = model.config.input
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            result = model(torch.from_numpy(network_input(images[start : start + batch], fmt)))
            parts.append([r.numpy() for r in result])
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def pixel_errors(predicted_input: np.ndarray, samples: Sequence[Sample]) -> np.ndarray:
    """Distances (N, K) in original-frame pixels between predictions and truth (NaN: unlabeled).

    Each sample maps its own predictions back to its frame (it knows how it was resized).
    """
    errors = np.empty((len(samples), predicted_input.shape[1]))
    for i, sample in enumerate(samples):
        predicted = sample.to_frame(predicted_input[i, :, :2])
        errors[i] = np.linalg.norm(predicted - sample.truth, axis=1)
    return errors


def error_summary(errors: np.ndarray, keypoints: Sequence[str]) -> dict[str, Any]:
    """Per-keypoint and overall median, mean and 95th percentile of pixel errors (N, K)."""

    def stats(values: np.ndarray) -> dict[str, float]:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return {"median": math.nan, "mean": math.nan, "p95": math.nan, "count": 0}
        return {
            "median": round(float(np.median(values)), 3),
            "mean": round(float(np.mean(values)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
            "count": int(values.size),
        }

    return {
        "per_keypoint": {name: stats(errors[:, k]) for k, name in enumerate(keypoints)},
        "all": stats(errors.ravel()),
    }


def format_errors(summary: dict[str, Any]) -> str:
    """Format an :func:`error_summary` as a small table."""
    lines = [f"{'keypoint':<14}{'median':>8}{'mean':>8}{'p95':>8}{'n':>6}"]
    rows = [*summary["per_keypoint"].items(), ("ALL", summary["all"])]
    for name, s in rows:
        lines.append(
            f"{name:<14}{s['median']:>8.2f}{s['mean']:>8.2f}{s['p95']:>8.2f}{s['count']:>6}"
        )
    return "\n".join(lines)


class OnnxPredictor:
    """Keypoints of whole frames from an exported model with ONNX Runtime (for scoring).

    This follows the live path (area resize or letterbox, RGB, the graph's input format, argmax
    decoding) in a few lines, for frames of any size; the application itself uses
    :mod:`pose.estimator` (and so does :func:`evaluate_synthetic`).

    Parameters
    ----------
    onnx_file
        The exported network.
    input_size
        Its (width, height).
    use_locref
        Decode with the location-refinement offsets (else parabola refinement).
    threads
        ONNX Runtime intra-op threads.
    input_format
        How the graph takes its input (the network's :class:`~pose.network.InputFormat`).
    letterbox
        Letterbox frames into the input (else resize them to fill it).
    """

    def __init__(
        self,
        onnx_file: str | Path,
        input_size: Size,
        use_locref: bool,
        threads: int = 2,
        input_format: InputFormat | None = None,
        letterbox: bool = False,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_size = input_size
        self.use_locref = use_locref
        self.input_format = input_format or InputFormat()
        self.letterbox = letterbox

    def outputs(self, images: np.ndarray) -> list[np.ndarray]:
        """Raw outputs for BGR uint8 images (N, H, W, 3) already at input size."""
        return self.session.run(None, {"images": network_input(images, self.input_format)})

    def predict(self, frames: Sequence[np.ndarray], batch: int = 8) -> np.ndarray:
        """(N, K, 3) keypoints (x, y in frame pixels, likelihood) of whole BGR or grey frames."""
        results = []
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            images = np.stack([resize_to_input(f, self.input_size, self.letterbox) for f in chunk])
            decoded = decode_outputs(self.outputs(images), self.use_locref)
            for frame, keypoints in zip(chunk, decoded, strict=True):
                frame_size = (frame.shape[1], frame.shape[0])
                scaled = content_size(frame_size, self.input_size, self.letterbox)
                keypoints[:, :2] = input_to_frame(keypoints[:, :2], frame_size, scaled)
            results.append(decoded)
        return np.concatenate(results)


# --------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything a training run depends on (written into the report)."""

    steps: int
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    eval_every: int = 0  # 0: about 20 validations per run
    seed: int = 0
    threads: int = 2
    augmentation: Augmentation = field(default_factory=Augmentation)
    loss: LossSettings = field(default_factory=LossSettings)
    network: NetworkConfig | None = None


@dataclass
class TrainResult:
    """A trained network and how it got there."""

    model: PoseNet
    best_step: int
    best_validation: dict[str, Any]
    use_locref: bool
    history: list[dict[str, Any]]
    seconds: float


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch and make its CPU kernels deterministic where it can.

    OpenCV (the data pipeline: rendering, resizing, warping) gets the same thread count as
    PyTorch: the run then uses ``threads`` cores, and its results do not depend on OpenCV's.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _channels_last(network: NetworkConfig) -> bool:
    """Whether to train in PyTorch's channels-last memory format.

    It runs the separable design's depthwise convolutions ~1.4x faster on the CPU (oneDNN's
    blocked kernels); only for NCHW input, which it then stores as NHWC (an NHWC graph input is
    already that layout after its transpose).
    """
    return network.architecture == "separable-fpn" and network.input.layout == "nchw"


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then a cosine decay to 2 % of the peak at the last step."""
    warmup = max(1, int(config.warmup_fraction * config.steps))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_batches(
    draw: Callable[[np.random.Generator], Sample],
    config: TrainConfig,
    permutation: np.ndarray,
    rng: np.random.Generator,
) -> Generator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None, None]:
    """Endless augmented batches: images, heatmaps, offsets, offset masks."""
    fmt = (config.network or NetworkConfig(num_keypoints=1)).input
    while True:
        images, heatmaps, offsets, masks = [], [], [], []
        for _ in range(config.batch_size):
            image, keypoints = augment(rng, draw(rng), config.augmentation, permutation)
            size = (image.shape[1], image.shape[0])
            heat, offset, mask = make_targets(
                keypoints, size, config.loss.sigma, config.loss.locref_radius
            )
            images.append(image)
            heatmaps.append(heat)
            offsets.append(offset)
            masks.append(mask)
        yield (
            torch.from_numpy(network_input(np.stack(images), fmt)),
            torch.from_numpy(np.stack(heatmaps)),
            torch.from_numpy(np.stack(offsets)),
            torch.from_numpy(np.stack(masks)),
        )


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Failure:
    """An exception raised in the data thread, handed to the training loop."""

    error: BaseException


def prefetched(items: Iterator[_T], depth: int = 2) -> Generator[_T, None, None]:
    """Yield the items of ``items``, produced ahead in a background thread.

    One thread consumes ``items`` in order, so the items (and the random numbers behind them)
    are exactly those of ``items`` itself; the data pipeline (rendering, OpenCV and numpy, which
    release the GIL) then overlaps with PyTorch's work on the previous batch. An exception in
    the thread is raised in the consumer; closing the generator stops the thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()  # put after the last item

    def hand_over(item: Any) -> bool:
        """Queue one item; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
        except BaseException as error:  # handed over and raised where the items are used
            hand_over(_Failure(error))
            return
        hand_over(end)

    thread = threading.Thread(target=produce, name="training-data", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()


def validate(
    model: PoseNet, samples: Sequence[Sample], keypoints: Sequence[str], input_size: Size
) -> dict[str, Any]:
    """Mean and median frame-pixel errors on validation samples, with and without locref."""
    outputs = torch_outputs(model, np.stack([s.image for s in samples]))
    result: dict[str, Any] = {}
    for use_locref in (True, False) if len(outputs) > 1 else (False,):
        errors = pixel_errors(decode_outputs(outputs, use_locref), samples)
        name = "locref" if use_locref else "parabola"
        result[name] = {
            "mean": float(np.nanmean(errors)),
            "median": float(np.nanmedian(errors)),
        }
    result["best"] = min(result, key=lambda name: result[name]["mean"])
    result["mean"] = result[result["best"]]["mean"]
    return result


def train(
    draw: Callable[[np.random.Generator], Sample],
    validation: Sequence[Sample],
    keypoints: Sequence[str],
    input_size: Size,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a PoseNet; keep the weights with the lowest mean validation error.

    Parameters
    ----------
    draw
        Returns a random training sample (input size) for a random generator.
    validation
        Whole frames the checkpoints are chosen on.
    keypoints
        Keypoint names (left/right pairs are swapped by mirrored crops).
    input_size
        The network's input (width, height).
    config
        Steps, batch, optimiser, augmentation, loss, network shape and seed.
    log
        Where progress lines go.

    Returns
    -------
    TrainResult
        The best network (in eval mode) and the history of validations.
    """
    set_determinism(config.seed, config.threads)
    network = config.network or NetworkConfig(num_keypoints=len(keypoints))
    model = PoseNet(network)
    channels_last = _channels_last(network)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    batches = training_batches(draw, config, flip_permutation(keypoints), rng)
    if config.threads < (os.cpu_count() or 1):
        # A spare core: render and augment the next batch in a second thread while the network
        # trains on this one. (Without one, the thread would stall PyTorch's own threads.) The
        # batches are the same either way.
        batches = prefetched(batches)
    eval_every = config.eval_every or max(25, config.steps // 20)
    log(
        f"training {parameter_count(model) / 1e6:.2f} M parameters for {config.steps} steps of "
        f"{config.batch_size} on {config.threads} threads; validating on {len(validation)} frames"
    )
    best: dict[str, Any] = {"mean": math.inf}
    best_state, best_step, history = None, 0, []
    start = time.perf_counter()
    running: dict[str, float] = {}
    for step in range(config.steps):
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate_at(step, config)
        images, heatmaps, offsets, masks = next(batches)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss, parts = pose_loss(model(images), heatmaps, offsets, masks, config.loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        for key, value in parts.items():
            running[key] = 0.9 * running.get(key, value) + 0.1 * value
        if (step + 1) % eval_every == 0 or step + 1 == config.steps:
            scores = validate(model, validation, keypoints, input_size)
            history.append({"step": step + 1, "loss": dict(running), "validation": scores})
            improved = scores["mean"] < best["mean"]
            if improved:
                best, best_step = scores, step + 1
                best_state = copy.deepcopy(model.state_dict())
            log(
                f"step {step + 1:>6}  {time.perf_counter() - start:7.1f} s  loss "
                + " ".join(f"{k} {v:.4f}" for k, v in running.items())
                + f"  val mean {scores['mean']:.2f} px ({scores['best']})"
                + ("  *" if improved else "")
            )
    batches.close()  # stops the data thread, if any
    assert best_state is not None  # at least the last step validates
    model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        best_step=best_step,
        best_validation=best,
        use_locref=best["best"] == "locref",
        history=history,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


def export_model(
    model: PoseNet,
    folder: Path,
    input_size: Size,
    check_images: np.ndarray,
    torchscript: bool,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.pt``) into ``folder`` and check them against PyTorch.

    Returns
    -------
    dict
        The largest absolute differences found, per file.

    Raises
    ------
    RuntimeError
        If ONNX Runtime's (or TorchScript's) outputs differ from PyTorch's by more than
        ``tolerance`` (absolute, plus the same relative to the value).
    """
    width, height = input_size
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    export_onnx(model, str(onnx_path), height, width)
    expected = torch_outputs(model, check_images)
    fmt = model.config.input
    predictor = OnnxPredictor(onnx_path, input_size, use_locref=True, input_format=fmt)
    differences = {"onnx": predictor.outputs(check_images)}
    if torchscript:
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is what PyTorch-only
            # deployments load today; the warning would only clutter the training log.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example_input(model.config, 1, height, width))
            traced.save(str(folder / "model.pt"))
            loaded = torch.jit.load(str(folder / "model.pt"))
        with torch.inference_mode():
            got = [r.numpy() for r in loaded(torch.from_numpy(network_input(check_images, fmt)))]
        differences["torchscript"] = got
    largest = {}
    for name, outputs in differences.items():
        largest[name], worst = _largest_difference(outputs, expected, tolerance)
        if worst > 1.0:
            raise RuntimeError(
                f"{name} export differs from PyTorch by {largest[name]:.2e} "
                f"(tolerance {tolerance} absolute plus {tolerance} relative)"
            )
    return largest


def _largest_difference(
    got: Sequence[np.ndarray], expected: Sequence[np.ndarray], tolerance: float
) -> tuple[float, float]:
    """Largest ``|a - b|``, and largest ``|a - b| / (tolerance * (1 + |b|))`` (> 1 fails)."""
    absolute, worst = 0.0, 0.0
    for a, b in zip(got, expected, strict=True):
        difference = np.abs(a - b)
        absolute = max(absolute, float(difference.max()))
        worst = max(worst, float((difference / (tolerance * (1.0 + np.abs(b)))).max()))
    return absolute, worst


def model_description(
    name: str,
    keypoints: Sequence[str],
    input_size: Size,
    use_locref: bool,
    skeleton: Any = (),
    input_format: InputFormat | None = None,
    letterbox: bool = False,
) -> ModelDescription:
    """Describe a model trained here (its graph takes ``input_format``)."""
    width, height = input_size
    fmt = input_format or InputFormat()
    return ModelDescription(
        name=name,
        framework="deeplabstream",
        model_file=Path("model.onnx"),
        keypoints=tuple(keypoints),
        input_height=height,
        input_width=width,
        color_order="rgb",
        mean=fmt.mean,
        std=fmt.std,
        resize="area",
        output_kind="heatmaps+locref" if use_locref else "heatmaps",
        stride=float(STRIDE),
        decoder="argmax",
        heatmaps_are_probabilities=False,
        locref_std=LOCREF_STD,
        output_names=("heatmaps", "locref") if use_locref else ("heatmaps",),
        skeleton=tuple(tuple(pair) for pair in skeleton),
        input_type="uint8" if fmt.dtype == "uint8" else "float",
        input_layout=fmt.layout,
        normalization=fmt.normalization,
        letterbox=letterbox,
    )


# --------------------------------------------------------------------------------------------------
# Data sets for the command
# --------------------------------------------------------------------------------------------------


@dataclass
class DataSet:
    """Training draw, validation and test frames, and what to write about them."""

    keypoints: tuple[str, ...]
    input_size: Size
    draw: Callable[[np.random.Generator], Sample]
    validation: list[Sample]
    test: list[Sample]
    description: dict[str, Any]
    skeleton: tuple[tuple[str, str], ...] = ()
    letterbox: bool = False


def parse_size(text: str) -> Size:
    """``WxH`` to (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size WIDTHxHEIGHT, e.g. 320x256")
    return int(match.group(1)), int(match.group(2))


def parse_indices(text: str) -> list[int]:
    """``0-99,105,110-112`` to a sorted list of distinct indices."""
    indices: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise argparse.ArgumentTypeError(f"'{part}' is not an index or a range like 0-99")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low:
            raise argparse.ArgumentTypeError(f"range '{part}' runs backwards")
        indices.update(range(low, high + 1))
    return sorted(indices)


def split_indices(
    count: int, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test indices of labeled frames from the command's options."""
    everything = np.arange(count)
    rng = np.random.default_rng(args.seed)
    if args.train_indices is not None:
        train = np.array([i for i in args.train_indices if i < count], dtype=np.int64)
        if len(train) < len(args.train_indices):
            raise SystemExit(f"--train-indices names frames beyond the {count} labeled ones")
        test = np.setdiff1d(everything, train)
    else:
        shuffled = rng.permutation(count)
        test_count = round(args.test_fraction * count)
        test, train = np.sort(shuffled[:test_count]), np.sort(shuffled[test_count:])
    validation_count = round(args.val_fraction * len(train))
    if validation_count:
        picked = np.sort(rng.choice(len(train), validation_count, replace=False))
        validation = train[picked]
        train = np.delete(train, picked)
    else:
        validation = train  # no held-out frames for choosing checkpoints: use the training ones
    if len(train) == 0:
        raise SystemExit("no frames left to train on: lower --test-fraction or --val-fraction")
    return train, validation, test


def labels_data_set(args: argparse.Namespace) -> DataSet:
    """Training, validation and test frames from DeepLabCut labels."""
    labels = read_dlc_labels(args.labels, individual=args.individual)
    missing = labels.missing_images()
    if missing:
        raise SystemExit(f"{len(missing)} labeled images are missing, e.g. {missing[0]}")
    first = cv2.imread(str(labels.image_paths[0]), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise SystemExit(f"cannot read the labeled image {labels.image_paths[0]}")
    frame_size = (first.shape[1], first.shape[0])
    input_size = args.input_size or default_input_size(frame_size, args.letterbox)
    check_input_size(input_size[1], input_size[0])
    samples = load_label_samples(labels, input_size, args.letterbox)
    train_idx, validation_idx, test_idx = split_indices(len(samples), args)
    train_samples = [samples[i] for i in train_idx]

    def draw(rng: np.random.Generator) -> Sample:
        return train_samples[int(rng.integers(len(train_samples)))]

    description = {
        "kind": "labels",
        "labels": str(Path(args.labels)),
        "layout": labels.layout,
        "individual": labels.individual,
        "frames": len(samples),
        "frame_size": list(frame_size),
        "train_indices": train_idx.tolist(),
        "validation_indices": validation_idx.tolist(),
        "test_indices": test_idx.tolist(),
    }
    return DataSet(
        keypoints=labels.keypoints,
        input_size=input_size,
        draw=draw,
        validation=[samples[i] for i in validation_idx],
        test=[samples[i] for i in test_idx],
        description=description,
        letterbox=args.letterbox,
    )


def synthetic_data_set(args: argparse.Namespace) -> DataSet:
    """Training arenas (varied), validation arenas (varied) and test arenas (camera defaults)."""
    arena_size = args.arena_size
    letterbox = args.letterbox
    input_size = args.input_size or default_input_size(arena_size, letterbox)
    check_input_size(input_size[1], input_size[0])
    variation = ArenaVariation()
    train_seeds = synthetic_seeds(args.seed, "train", args.arenas)
    validation_seeds = synthetic_seeds(args.seed, "validation", 8)
    test_seeds = synthetic_seeds(args.seed, "test", 8)
    pool = {"arena_size": arena_size, "input_size": input_size, "letterbox": letterbox}
    train_pool = ArenaPool(train_seeds, variation=variation, **pool)
    validation = ArenaPool(validation_seeds, variation=variation, walk_frames=3000, **pool)
    test = ArenaPool(test_seeds, variation=None, walk_frames=3000, **pool)
    description = {
        "kind": "synthetic",
        "arena_size": list(arena_size),
        "train_seeds": [train_seeds[0], train_seeds[-1]],
        "validation_seeds": [validation_seeds[0], validation_seeds[-1]],
        "test_seeds": [test_seeds[0], test_seeds[-1]],
        "variation": asdict(variation),
        "test_arenas": "the synthetic camera's defaults (noise, lighting, body size)",
    }
    return DataSet(
        keypoints=KEYPOINT_NAMES,
        input_size=input_size,
        draw=train_pool.random,
        validation=validation.spread(args.val_frames),
        test=test.spread(args.test_frames),
        description=description,
        skeleton=ARENA_SKELETON,
        letterbox=letterbox,
    )


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m training.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train the project's own small pose network on DeepLabCut labels or on the "
        "simulated arena, and write a model folder (model.onnx, model.json).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--labels", type=Path, help="DeepLabCut CollectedData_*.csv or .h5")
    source.add_argument(
        "--synthetic", action="store_true", help="train on frames of the simulated arena"
    )
    source.add_argument(
        "--evaluate",
        type=Path,
        metavar="MODEL",
        help="train nothing: score a model folder on fresh frames of the simulated arena with "
        "the camera's defaults (see --eval-seeds)",
    )
    parser.add_argument("--out", type=Path, help="model folder to write")
    parser.add_argument("--name", help="model name (default: the folder's name)")
    parser.add_argument(
        "--input-size",
        type=parse_size,
        help="network input WxH, multiples of 32; frames are resized to it (default: half the "
        "frame, e.g. 320x256 for 640x480)",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimisation steps")
    length.add_argument(
        "--epochs",
        type=float,
        help="passes over the training frames (synthetic: an epoch is 1000 frames)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random")
    parser.add_argument(
        "--threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="CPU threads for PyTorch (results are reproducible for the same count)",
    )
    parser.add_argument("--crop", type=int, default=160, help="training crop side, 0: whole frame")
    parser.add_argument("--scale", type=float, nargs=2, default=(0.8, 1.25), metavar=("MIN", "MAX"))
    parser.add_argument("--rotation", type=float, default=180.0, help="largest rotation, degrees")
    parser.add_argument("--no-flip", action="store_true", help="no left-right mirroring")
    parser.add_argument("--sigma", type=float, default=1.25, help="heatmap Gaussian, heatmap px")
    parser.add_argument("--no-locref", action="store_true", help="heatmaps only")
    parser.add_argument(
        "--locref-weight", type=float, default=5.0, help="weight of the offsets' loss"
    )
    parser.add_argument("--no-torchscript", action="store_true", help="write no model.pt")
    network = parser.add_argument_group("network")
    network.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default="resnet-fpn",
        help="resnet-fpn (the first design, ~0.6 GMAC at 320x256) or separable-fpn (depthwise-"
        "separable, ~73 MMAC with its default widths: the bundled model's)",
    )
    network.add_argument(
        "--widths",
        type=parse_ints,
        help="encoder channels: strides 2 to 32 (resnet-fpn, 5 values, default 16,32,64,96,128) "
        "or 4 to 32 (separable-fpn, 4 values, default 32,64,128,192)",
    )
    network.add_argument(
        "--decoder-width",
        type=int,
        help="feature-pyramid channels (default 48 for resnet-fpn, 64 for separable-fpn)",
    )
    network.add_argument(
        "--refine-width",
        type=int,
        default=0,
        help="separable-fpn: channels of a stride-4 refinement head (0: none)",
    )
    network.add_argument(
        "--blocks",
        type=parse_ints,
        help="residual blocks at strides 4, 8, 16, 32 (separable-fpn; default 0,2,2,2)",
    )
    network.add_argument(
        "--input-format",
        choices=list(INPUT_FORMATS),
        default="float-normalised",
        help="the graph's input: float-normalised (normalised float32 NCHW), float-raw (pixels "
        "0..255 as float32 NCHW, normalised in the graph), uint8-nchw or uint8-nhwc",
    )
    network.add_argument(
        "--letterbox",
        action="store_true",
        help="resize frames by one factor into the input's top-left corner (keeps the aspect "
        "ratio; 640x480 -> 320x240 in 320x256, an exact 2x)",
    )
    labels = parser.add_argument_group("labels")
    labels.add_argument("--individual", help="the animal to take from multi-animal labels")
    split = labels.add_mutually_exclusive_group()
    split.add_argument(
        "--train-indices",
        type=parse_indices,
        help="labeled frames to train on, e.g. 0-99 (the others are the test set)",
    )
    split.add_argument(
        "--test-fraction", type=float, default=0.1, help="random share of frames kept for testing"
    )
    labels.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training frames used to choose the checkpoint (0: the training frames)",
    )
    synthetic = parser.add_argument_group("synthetic")
    synthetic.add_argument("--arena-size", type=parse_size, default=(640, 480))
    synthetic.add_argument("--arenas", type=int, default=32, help="training arenas (seeds)")
    synthetic.add_argument("--val-frames", type=int, default=160)
    synthetic.add_argument("--test-frames", type=int, default=200)
    evaluation = parser.add_argument_group("evaluate")
    evaluation.add_argument(
        "--eval-seeds", type=parse_indices, default=list(range(10)), help="arena seeds, e.g. 0-9"
    )
    evaluation.add_argument("--eval-frames", type=int, default=100, help="frames per arena")
    return parser


def parse_ints(text: str) -> tuple[int, ...]:
    """``32,64,96`` to (32, 64, 96)."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of whole numbers") from None


def network_config(args: argparse.Namespace, keypoints: int) -> NetworkConfig:
    """Return the network of the command's options (ValueError when they do not fit together)."""
    return NetworkConfig(
        num_keypoints=keypoints,
        widths=args.widths,
        decoder_width=args.decoder_width,
        locref=not args.no_locref,
        architecture=args.architecture,
        blocks=args.blocks,
        input=INPUT_FORMATS[args.input_format],
        refine_width=args.refine_width,
    )


def steps_for(args: argparse.Namespace, train_frames: int) -> int:
    """Optimisation steps from ``--steps`` or ``--epochs`` (default: 30 epochs or 4000 steps)."""
    if args.steps is not None:
        return args.steps
    frames_per_epoch = 1000 if args.synthetic else train_frames
    if args.epochs is None:
        return 4000 if args.synthetic else max(200, math.ceil(30 * train_frames / args.batch_size))
    return max(1, math.ceil(args.epochs * frames_per_epoch / args.batch_size))


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command; return the training report.

    Parameters
    ----------
    argv
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.evaluate is not None:
        return run_evaluation(args)
    if not (args.synthetic or args.labels) or args.out is None:
        parser.error("give --labels FILE or --synthetic, and --out FOLDER (or --evaluate MODEL)")
    try:
        network_config(args, 1)
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    data = synthetic_data_set(args) if args.synthetic else labels_data_set(args)
    train_count = len(data.description.get("train_indices", [])) or 1000
    augmentation = Augmentation(
        crop=args.crop,
        scale=tuple(args.scale),
        rotation=args.rotation,
        flip=not args.no_flip,
    )
    config = TrainConfig(
        steps=steps_for(args, train_count),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        augmentation=augmentation,
        loss=LossSettings(sigma=args.sigma, locref_weight=args.locref_weight),
        network=network_config(args, len(data.keypoints)),
    )
    result = train(data.draw, data.validation, data.keypoints, data.input_size, config)
    report = finish(args, argv, data, config, result, time.perf_counter() - started)
    return report


def finish(
    args: argparse.Namespace,
    argv: Sequence[str],
    data: DataSet,
    config: TrainConfig,
    result: TrainResult,
    elapsed: float,
) -> dict[str, Any]:
    """Export, score the test frames with the exported model, write model.json and the report."""
    out: Path = args.out
    check = np.stack([s.image for s in data.validation[:3]])
    # Exported straight into the model folder, and scored from there: what is measured is the
    # file that ships.
    differences = export_model(result.model, out, data.input_size, check, not args.no_torchscript)
    accuracy: dict[str, Any] = {}
    if data.test:
        predictor = OnnxPredictor(
            out / "model.onnx",
            data.input_size,
            result.use_locref,
            args.threads,
            input_format=result.model.config.input,
        )
        outputs = predictor.outputs(np.stack([s.image for s in data.test]))
        errors = pixel_errors(decode_outputs(outputs, result.use_locref), data.test)
        accuracy = {
            "data": "held-out test frames, scored with the exported ONNX model",
            "units": "original-frame pixels",
            "frames": len(data.test),
            **error_summary(errors, data.keypoints),
        }
    training = {
        "data": data.description,
        "seed": args.seed,
        "steps": config.steps,
        "epochs": args.epochs,
        "batch_size": config.batch_size,
        "best_step": result.best_step,
        "threads": config.threads,
        "training_seconds": round(elapsed, 1),
        "command": "python -m training.train " + shlex.join(argv),
        "torch": torch.__version__,
        "accuracy": accuracy,
        "validation": _rounded(result.best_validation),
        "decoder": "locref" if result.use_locref else "parabola",
    }
    description = model_description(
        args.name or out.resolve().name,
        data.keypoints,
        data.input_size,
        result.use_locref,
        data.skeleton,
        input_format=result.model.config.input,
        letterbox=data.letterbox,
    )
    save_own_model(
        out,
        description,
        onnx_file=out / "model.onnx",
        torchscript=None if args.no_torchscript else out / "model.pt",
        network=config.network.to_dict() if config.network else None,
        training=training,
    )
    report = {
        **training,
        "input_size": list(data.input_size),
        "keypoints": list(data.keypoints),
        "export_max_difference": differences,
        "augmentation": asdict(config.augmentation),
        "loss": asdict(config.loss),
        "history": _rounded(result.history),
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    if accuracy:
        print(f"held-out error ({accuracy['frames']} frames, original-frame pixels):")
        print(format_errors(accuracy))
    print(f"wrote {out} in {elapsed:.0f} s (best step {result.best_step})")
    return report


def run_evaluation(args: argparse.Namespace) -> dict[str, Any]:
    """``--evaluate``: print and return the error of a model on fresh synthetic arenas."""
    summary = evaluate_synthetic(
        args.evaluate, args.eval_seeds, args.eval_frames, args.arena_size, threads=args.threads
    )
    print(
        f"{args.evaluate}: {summary['frames']} frames of arenas {summary['seeds']} "
        f"({summary['arena_size'][0]}x{summary['arena_size'][1]}, camera defaults), "
        f"original-frame pixels:"
    )
    print(format_errors(summary))
    timing = summary["timing_ms"]
    print(
        f"per frame, batch 1, {args.threads} threads, median ms: "
        + ", ".join(f"{stage} {timing[stage]:.2f}" for stage in ESTIMATOR_STAGES)
        + f" (machine load {summary['load_average']:.2f})"
    )
    return summary


ESTIMATOR_STAGES = ("preprocess", "inference", "decode", "total")


def evaluate_synthetic(
    model: str | Path,
    seeds: Sequence[int],
    frames_per_seed: int = 100,
    arena_size: Size = (640, 480),
    every: int = 5,
    threads: int = 2,
    timing_frames: int = 200,
) -> dict[str, Any]:
    """Pixel errors of a model folder on fresh frames of the simulated camera.

    The frames go through the application's own path (:class:`pose.estimator.PoseEstimator`
    with ONNX Runtime): what is scored is what runs live.

    Parameters
    ----------
    model
        A model folder of this project's format.
    seeds
        Arena seeds (use seeds below 1000: training never uses them).
    frames_per_seed
        Frames scored per arena.
    arena_size
        Frame (width, height).
    every
        Score every ``every``-th frame of the walk (neighbouring frames are near-duplicates).
    threads
        ONNX Runtime threads.
    timing_frames
        Frames timed one at a time after scoring.

    Returns
    -------
    dict
        :func:`error_summary` plus the frames, seeds, size, the median milliseconds per frame
        of each stage at batch 1 (``timing_ms``) and the machine's load average then.
    """
    from pose.backends import open_backend
    from pose.estimator import PoseEstimator
    from pose.own_model import load_own_model
    from simulator.arena import SimulatedArena

    description = load_own_model(model)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    frame_shape = (arena_size[1], arena_size[0], 3)
    estimator = PoseEstimator(description, backend, frame_shape, max_batch=8)
    errors = []
    for seed in seeds:
        arena = SimulatedArena(ArenaParams(width=arena_size[0], height=arena_size[1], seed=seed))
        frame = np.empty(arena.frame_shape, np.uint8)
        frames, truth = [], []
        for index in range(frames_per_seed * every):
            _, keypoints = arena.render_next(frame)
            if index % every == 0:
                frames.append(frame.copy())
                truth.append(keypoints)
        predicted = estimator.estimate(frames)
        errors.append(np.linalg.norm(predicted[..., :2] - np.array(truth), axis=2))
    timing = time_estimator(PoseEstimator(description, backend, frame_shape), frames, timing_frames)
    backend.close()
    all_errors = np.concatenate(errors)
    return {
        **error_summary(all_errors, description.keypoints),
        "frames": len(all_errors),
        "seeds": f"{min(seeds)}-{max(seeds)}",
        "arena_size": list(arena_size),
        "timing_ms": timing,
        "inference_ms": timing["inference"],
        "load_average": os.getloadavg()[0],
    }


def time_estimator(estimator: Any, frames: Sequence[np.ndarray], count: int) -> dict[str, float]:
    """Median milliseconds per stage of ``estimator.estimate`` on one frame at a time."""
    for frame in frames[:10]:  # warm-up: the first runs allocate
        estimator.estimate([frame])
    stages: dict[str, list[float]] = {stage: [] for stage in ESTIMATOR_STAGES}
    for index in range(count):
        started = time.perf_counter()
        estimator.estimate([frames[index % len(frames)]])
        stages["total"].append(time.perf_counter() - started)
        for stage in ESTIMATOR_STAGES[:-1]:
            stages[stage].append(estimator.last_timings[stage])
    return {stage: float(np.median(values)) * 1e3 for stage, values in stages.items()}


def _rounded(value: Any) -> Any:
    """Floats rounded to 4 decimals inside nested dicts and lists (a readable report)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def main() -> None:
    """Entry point of ``python -m training.train``."""
    run()


if __name__ == "__main__":
    main()
