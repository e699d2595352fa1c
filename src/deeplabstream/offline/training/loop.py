"""The training loop: batches (prefetched in a thread), the learning-rate schedule, validation."""

from __future__ import annotations

import copy
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import cv2
import numpy as np
import torch

from deeplabstream.offline.training.data import (
    Augmentation,
    Sample,
    Size,
    augment,
    flip_permutation,
    make_targets,
    network_input,
)
from deeplabstream.offline.training.loss import LossSettings, pose_loss
from deeplabstream.offline.training.metrics import decode_outputs, pixel_errors, torch_outputs
from deeplabstream.pose.networks.own import (
    InputFormat,
    NetworkConfig,
    PoseNet,
    parameter_count,
)


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
    time_budget: float | None = None  # seconds; None: run all steps


@dataclass
class TrainResult:
    """A trained network and how it got there."""

    model: PoseNet
    best_step: int
    best_validation: dict[str, Any]
    use_locref: bool
    history: list[dict[str, Any]]
    seconds: float


class TrainingTask(Protocol):
    """What a training run other than the single-animal one changes in :func:`train`.

    Its own network, batches, loss and validation; the loop stays the same.
    """

    def build(self, network: NetworkConfig) -> PoseNet:
        """Return the untrained network."""
        ...

    def batches(
        self,
        draw: Callable[[np.random.Generator], Sample],
        config: TrainConfig,
        rng: np.random.Generator,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield endless batches: the images first, then the targets :meth:`loss` takes."""
        ...

    def loss(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], config: TrainConfig
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss to minimise and its parts (for the log)."""
        ...

    def validate(self, model: PoseNet, samples: Sequence[Sample]) -> dict[str, Any]:
        """Score the model: a dict with ``mean`` (lower is better) and ``best`` (a label)."""
        ...


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch, make its CPU kernels deterministic, and give OpenCV the same thread count."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _channels_last(network: NetworkConfig) -> bool:
    """Return whether to train in PyTorch's channels-last memory format (NCHW input only)."""
    # Channels-last runs the depthwise convolutions ~1.4x faster on the CPU (oneDNN's blocked
    # kernels); an NHWC graph input is already that layout after its transpose.
    return network.architecture == "separable-fpn" and network.input.layout == "nchw"


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then a cosine decay to 2 % of the peak at the last step."""
    warmup = max(1, int(config.warmup_fraction * config.steps))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def scheduled_step(step: int, elapsed: float, config: TrainConfig) -> int:
    """Return the step the learning-rate schedule is at (with a time budget, time counts too)."""
    if not config.time_budget:
        return step
    return max(step, min(config.steps - 1, int(config.steps * elapsed / config.time_budget)))


def training_batches(
    draw: Callable[[np.random.Generator], Sample],
    config: TrainConfig,
    permutation: np.ndarray,
    rng: np.random.Generator,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless augmented batches: images, heatmaps, offsets, offset masks."""
    fmt = (config.network or NetworkConfig(num_keypoints=1)).input
    while True:
        examples = []
        for _ in range(config.batch_size):
            image, keypoints = augment(rng, draw(rng), config.augmentation, permutation)
            size = (image.shape[1], image.shape[0])
            targets = make_targets(keypoints, size, config.loss.sigma, config.loss.locref_radius)
            examples.append((image, *targets))
        yield stacked_batch(examples, fmt)


def stacked_batch(
    examples: Sequence[tuple[np.ndarray, ...]], fmt: InputFormat
) -> tuple[torch.Tensor, ...]:
    """One batch of ``(image, *targets)`` examples: the network's input, then each target."""
    images, *targets = zip(*examples, strict=True)
    network = torch.from_numpy(network_input(np.stack(images), fmt))
    return (network, *(torch.from_numpy(np.stack(target)) for target in targets))


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Failure:
    """An exception raised in the data thread, handed to the training loop."""

    error: BaseException


def prefetched(items: Iterator[_T], depth: int = 2) -> Generator[_T, None, None]:
    """Yield the items of ``items``, produced ahead in one background thread, in order.

    An exception in the thread is raised in the consumer; closing the generator stops it.
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
    task: TrainingTask | None = None,
) -> TrainResult:
    """Train a PoseNet; return the weights with the lowest mean validation error (eval mode).

    ``draw`` returns a random training sample; ``input_size`` is (width, height); ``task``
    None: the single-animal heatmaps and offsets.
    """
    set_determinism(config.seed, config.threads)
    network = config.network or NetworkConfig(num_keypoints=len(keypoints))
    model = task.build(network) if task else PoseNet(network)
    channels_last = _channels_last(network)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    batches: Iterator[tuple[torch.Tensor, ...]]
    if task is None:
        batches = training_batches(draw, config, flip_permutation(keypoints), rng)
    else:
        batches = task.batches(draw, config, rng)
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
        at = scheduled_step(step, time.perf_counter() - start, config)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate_at(at, config)
        images, *targets = next(batches)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if task is None:
            heatmaps, offsets, masks = targets
            loss, parts = pose_loss(model(images), heatmaps, offsets, masks, config.loss)
        else:
            loss, parts = task.loss(model(images), targets, config)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        for key, value in parts.items():
            running[key] = 0.9 * running.get(key, value) + 0.1 * value
        out_of_time = bool(config.time_budget) and (
            time.perf_counter() - start >= (config.time_budget or 0.0)
        )
        last = step + 1 == config.steps or out_of_time
        if (step + 1) % eval_every == 0 or last:
            if task is None:
                scores = validate(model, validation, keypoints, input_size)
            else:
                scores = task.validate(model, validation)
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
        if last:
            if out_of_time and step + 1 < config.steps:
                log(f"time budget of {config.time_budget:.0f} s spent after {step + 1} steps")
            break
    close = getattr(batches, "close", None)
    if close is not None:
        close()  # stops the data thread, if any
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
