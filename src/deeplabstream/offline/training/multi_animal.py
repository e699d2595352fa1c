"""Multi-animal (bottom-up) training on the simulated arena: ``offline.training.train --animals 2``.

Heatmaps with a peak per animal and part-affinity fields on the single-animal trainer's
network, loop and export. docs/bundled-model.md, "The two-mouse model (pose/bundled/arena-pair)".
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.core.machine import load_average_1m
from deeplabstream.hardware.simulator.arena import ArenaParams, ArenaRenderer, Pose
from deeplabstream.hardware.simulator.herd import (
    FreeHerdMotion,
    HerdParams,
    ScriptedHerdMotion,
    SimulatedHerd,
    SocialKind,
    render_herd,
    truth_from_poses,
)
from deeplabstream.hardware.simulator.marks import Marks, PatchPlace, marks_of
from deeplabstream.offline.training.data import (
    ArenaVariation,
    Augmentation,
    Sample,
    Size,
    arena_params,
    augment,
    default_input_size,
    flip_permutation,
    make_sample,
    make_targets,
    network_input,
)
from deeplabstream.offline.training.datasets import DataSet, arena_data_set
from deeplabstream.offline.training.export import export_model, model_description
from deeplabstream.offline.training.loop import TrainConfig, TrainResult, stacked_batch
from deeplabstream.offline.training.metrics import (
    error_summary,
    format_errors,
    rounded,
    torch_outputs,
)
from deeplabstream.pose.decoding.bottomup import OUTPUT_NAMES, PafDecoding, decode_pafs
from deeplabstream.pose.formats.own_model import PAF_DECODER, save_own_model
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.networks.own import SHUFFLE, STRIDE, InputFormat, NetworkConfig, PoseNet
from deeplabstream.pose.runtime.backends import open_backend

#: Scenarios of the training arenas, by arena number (cycled): mostly independent walks, with
#: scripted crossings, nose-to-nose and nose-to-tail contacts and following.
TRAINING_SCENARIOS: tuple[SocialKind, ...] = (
    "free",
    "cross",
    "free",
    "touch",
    "free",
    "follow",
    "free",
    "free",
)

#: A true animal counts as found when its matched prediction's median keypoint error (frame
#: pixels) is at most this: a tenth of the default body length of 96 px.
FOUND_WITHIN = 10.0

#: Validation: a missing or far-off keypoint costs this many frame pixels (so that losing an
#: animal is never better than finding it roughly).
MISS_COST = 20.0


def skeleton_edges(
    keypoints: Sequence[str], skeleton: Sequence[tuple[str, str]]
) -> tuple[tuple[int, int], ...]:
    """Return the skeleton as (source, destination) keypoint indices."""
    index = {name: i for i, name in enumerate(keypoints)}
    missing = [name for pair in skeleton for name in pair if name not in index]
    if missing:
        raise ValueError(f"skeleton names unknown keypoints {missing}; keypoints are {keypoints}")
    return tuple((index[a], index[b]) for a, b in skeleton)


def skeleton_centre(edges: Sequence[tuple[int, int]]) -> int:
    """Return the keypoint fewest edges away from the farthest one (the lowest index on a tie).

    The grouping starts there (:attr:`pose.decoding.bottomup.PafDecoding.root`).
    """
    nodes = sorted({node for edge in edges for node in edge})
    neighbours: dict[int, set[int]] = {node: set() for node in nodes}
    for src, dst in edges:
        neighbours[src].add(dst)
        neighbours[dst].add(src)

    def eccentricity(start: int) -> float:
        distance, frontier = {start: 0}, [start]
        while frontier:
            node = frontier.pop(0)
            for other in neighbours[node] - distance.keys():
                distance[other] = distance[node] + 1
                frontier.append(other)
        return max(distance.values()) if len(distance) == len(nodes) else math.inf

    return min(nodes, key=lambda node: (eccentricity(node), node))


# --------------------------------------------------------------------------------------------------
# Targets and loss
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PafSettings:
    """Targets and loss of a bottom-up model.

    ``sigma`` and ``paf_width`` (a limb band's half-width, also past both ends) are in heatmap
    pixels; ``paf_weight`` weighs the fields' loss against the heatmaps'.
    """

    sigma: float = 1.25
    paf_width: float = 1.0
    paf_weight: float = 1.0


def pair_targets(
    keypoints: np.ndarray,
    image_size: Size,
    edges: Sequence[tuple[int, int]],
    sigma: float,
    paf_width: float,
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps and part-affinity fields of several animals (``pose.decoding.peaks``' convention).

    ``keypoints`` (A, K, 2) in input pixels, NaN where unlabelled; ``sigma`` and ``paf_width``
    in heatmap pixels. Returns heatmaps (K, h, w), the maximum over animals, and fields
    (2E, h, w), channels ``x0, y0, x1, ...``: the unit vector along each limb, zero elsewhere.
    """
    width, height = image_size
    w, h = width // stride, height // stride
    heatmaps = np.zeros((keypoints.shape[1], h, w), np.float32)
    for animal in keypoints:
        animal_maps = make_targets(animal, image_size, sigma, 0.0, stride=stride)[0]
        np.maximum(heatmaps, animal_maps, out=heatmaps)
    # Fields in heatmap pixels: pixel (i, j) sits at (j, i) once keypoints are mapped by
    # (x - (stride - 1) / 2) / stride.
    grid = (np.asarray(keypoints, np.float64) - (stride - 1) / 2) / stride
    cols = np.arange(w, dtype=np.float64)[None, :]
    rows = np.arange(h, dtype=np.float64)[:, None]
    fields = np.zeros((len(edges), 2, h, w), np.float32)
    for e, (src, dst) in enumerate(edges):
        total = np.zeros((2, h, w))
        count = np.zeros((h, w))
        for animal in grid:
            start, end = animal[src], animal[dst]
            if not (np.isfinite(start).all() and np.isfinite(end).all()):
                continue
            segment = end - start
            length = float(np.hypot(*segment))
            if length < 1e-6:
                continue
            unit = segment / length
            along = (cols - start[0]) * unit[0] + (rows - start[1]) * unit[1]
            across = np.abs((cols - start[0]) * unit[1] - (rows - start[1]) * unit[0])
            band = (along >= -paf_width) & (along <= length + paf_width) & (across <= paf_width)
            total[:, band] += unit[:, None]
            count += band
        covered = count > 0
        fields[e][:, covered] = total[:, covered] / count[covered]
    return heatmaps, fields.reshape(2 * len(edges), h, w)


def paf_loss(
    outputs: Sequence[torch.Tensor],
    heatmaps: torch.Tensor,
    fields: torch.Tensor,
    settings: PafSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid cross-entropy on the heatmaps plus a squared error on the fields."""
    n, k = heatmaps.shape[:2]
    heat = functional.binary_cross_entropy_with_logits(outputs[0], heatmaps, reduction="sum")
    heat = heat / (n * k)
    paf = functional.mse_loss(outputs[1], fields, reduction="sum") / (n * fields.shape[1])
    total = heat + settings.paf_weight * paf
    return total, {"heatmap": float(heat.detach()), "paf": float(paf.detach())}


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


class PafNet(PoseNet):
    """A :class:`PoseNet` whose second output is the fields of E edges (2E channels).

    ``forward`` returns ``(heatmaps, pafs)``; ``config.locref`` is ignored.
    """

    def __init__(self, config: NetworkConfig, edges: int) -> None:
        super().__init__(dataclasses.replace(config, locref=True))
        width = config.refine_width or int(config.decoder_width or 0)
        from_stride_8 = self.separable and not config.refine_width
        head: nn.Module
        if from_stride_8:
            head = nn.ConvTranspose2d(width, 2 * edges, SHUFFLE, stride=SHUFFLE)
        else:
            head = nn.Conv2d(width, 2 * edges, 1)
        nn.init.zeros_(head.weight)  # the fields start at "no limb here"
        nn.init.zeros_(head.bias)
        self.locref_out = head
        self.edges = edges


# --------------------------------------------------------------------------------------------------
# Data: arenas with several mice
# --------------------------------------------------------------------------------------------------


class HerdPool:
    """Seeded arenas of several mice that render frames on demand, with exact keypoints.

    Sizes are (width, height); ``variation`` None keeps the camera's defaults.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        scenarios: Sequence[SocialKind],
        arena_size: Size,
        input_size: Size,
        variation: ArenaVariation | None,
        animals: int = 2,
        walk_frames: int = 6000,
        letterbox: bool = False,
    ) -> None:
        self.input_size = input_size
        self.letterbox = letterbox
        self.animals = animals
        self.walk_frames = walk_frames
        self.params = [
            herd_params(
                arena_params(seed, arena_size, variation), animals, scenarios[i % len(scenarios)]
            )
            for i, seed in enumerate(seeds)
        ]
        self.renderers = [ArenaRenderer(p.arena) for p in self.params]
        # Half the arenas' mice carry marks (labs train on their marked animals), each its own
        # drawn at random, so that the model learns the mice whatever their marks.
        self.marks = [
            training_marks(seed, animals) if i % 2 == 0 else marks_of(animals, False)
            for i, seed in enumerate(seeds)
        ]
        self._scripted: list[ScriptedHerdMotion | None] = []
        self._walks: list[list[list[Pose]] | None] = []
        for p in self.params:
            if p.social == "free":
                motion = FreeHerdMotion(p)
                self._walks.append([motion.step() for _ in range(walk_frames)])
                self._scripted.append(None)
            else:
                self._walks.append(None)
                self._scripted.append(ScriptedHerdMotion(p))
        self._frame = np.empty(self.renderers[0].frame_shape, np.uint8)

    def poses(self, arena: int, frame_index: int) -> list[Pose]:
        """Return the animals' poses in frame ``frame_index`` of arena number ``arena``."""
        walk = self._walks[arena]
        if walk is not None:
            return walk[frame_index]
        scripted = self._scripted[arena]
        assert scripted is not None  # one of the two is set for every arena
        return scripted.poses_at(frame_index)

    def render(self, arena: int, frame_index: int) -> Sample:
        """Render a frame: keypoints (A * K, 2) in input pixels, NaN where hidden."""
        poses, marks, params = self.poses(arena, frame_index), self.marks[arena], self.params[arena]
        render_herd(self.renderers[arena], params.arena, poses, marks, frame_index, self._frame)
        truth = truth_from_poses(poses, params.arena, marks)
        points = np.where(truth[..., 2:] > 0, truth[..., :2], np.nan).reshape(-1, 2)
        return make_sample(self._frame, points, self.input_size, self.letterbox)

    def random(self, rng: np.random.Generator) -> Sample:
        """Render a random frame of a random arena."""
        arena = int(rng.integers(len(self.renderers)))
        return self.render(arena, int(rng.integers(self.walk_frames)))

    def spread(self, count: int) -> list[Sample]:
        """``count`` frames spread evenly over the arenas and their walks (deterministic)."""
        per_arena = math.ceil(count / len(self.renderers))
        samples = []
        for arena in range(len(self.renderers)):
            for frame_index in np.linspace(0, self.walk_frames - 1, per_arena).astype(int):
                samples.append(self.render(arena, int(frame_index)))
        return samples[:count]


def training_marks(seed: int, animals: int) -> tuple[Marks, ...]:
    """Return marks drawn at random (from ``seed``) for the mice of one training arena."""
    rng = np.random.default_rng([seed, 0x3A4C5])
    bands: tuple[tuple[float, ...], ...] = ((), (0.33,), (0.25, 0.55))
    patches: tuple[PatchPlace, ...] = ("", "rump", "head")
    return tuple(
        Marks(
            scale=float(rng.choice((1.0, 0.9))),
            tail_bands=bands[int(rng.integers(len(bands)))],
            patch=patches[int(rng.integers(len(patches)))],
        )
        for _ in range(animals)
    )


def herd_params(arena: ArenaParams, animals: int, social: SocialKind) -> HerdParams:
    """Params of one herd; a scripted scenario that needs more room gets the default body size."""
    try:
        return HerdParams(arena, animals=animals, social=social)
    except ValueError:
        if social == "free":
            raise
        return HerdParams(dataclasses.replace(arena, body_length=None), animals, social)


def augment_pair(
    rng: np.random.Generator,
    sample: Sample,
    augmentation: Augmentation,
    permutation: np.ndarray,
    animals: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a sample of several animals with a random transform around one of them.

    Returns the float32 BGR crop and the keypoints (A, K, 2) in crop pixels.
    """
    per_animal = sample.keypoints.reshape(animals, -1, 2)
    focus = per_animal[int(rng.integers(animals))]
    if not np.isfinite(focus).any():
        focus = sample.keypoints
    image, keypoints = augment(rng, sample, augmentation, permutation, focus)
    return image, keypoints.reshape(animals, -1, 2)


# --------------------------------------------------------------------------------------------------
# Scoring: predicted animals matched to true ones
# --------------------------------------------------------------------------------------------------


def match_animals(predicted: np.ndarray, truth: np.ndarray) -> list[tuple[int, int, float]]:
    """Match predicted (P, K, 2+) to true (T, K, 2) animals by median keypoint distance (Hungarian).

    Returns (predicted index, true index, median distance) per pair.
    """
    distance = np.linalg.norm(predicted[:, None, :, :2] - truth[None, :, :, :2], axis=-1)
    cost = np.full(distance.shape[:2], np.inf)
    for p, t in zip(*np.nonzero(np.isfinite(distance).any(axis=-1)), strict=True):
        row = distance[p, t]
        cost[p, t] = float(np.median(row[np.isfinite(row)]))
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
    return [
        (int(r), int(c), float(cost[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if np.isfinite(cost[r, c])
    ]


def score_animals(
    predicted: np.ndarray, truth: np.ndarray, found_within: float = FOUND_WITHIN
) -> dict[str, Any]:
    """Errors of predicted animals (N, P, K, 3) against the true ones (N, T, K, 2), in frame pixels.

    Returns ``errors`` (N * T, K), NaN where not found; ``found`` (N * T,); ``capped_mean``, a
    missing keypoint costing :data:`MISS_COST`. Found: median error at most ``found_within``.
    """
    n, t, k = truth.shape[:3]
    errors = np.full((n, t, k), np.nan)
    found = np.zeros((n, t), bool)
    for i in range(n):
        for p, j, median in match_animals(predicted[i], truth[i]):
            distance = np.linalg.norm(predicted[i, p, :, :2] - truth[i, j], axis=-1)
            if median <= found_within:
                found[i, j] = True
                errors[i, j] = distance
    visible = np.isfinite(truth).all(axis=-1)
    capped = np.where(np.isfinite(errors), np.minimum(errors, MISS_COST), MISS_COST)[visible]
    return {
        "errors": errors.reshape(n * t, k),
        "found": found.reshape(n * t),
        "capped_mean": float(capped.mean()) if capped.size else math.nan,
        "visible": visible.reshape(n * t, k),
    }


# --------------------------------------------------------------------------------------------------
# The training task (plugged into offline.training.loop.train)
# --------------------------------------------------------------------------------------------------


@dataclass
class PafTask:
    """Bottom-up training for ``offline.training.loop.train`` (``decoding``: validation's)."""

    keypoints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    animals: int = 2
    settings: PafSettings = field(default_factory=PafSettings)
    decoding: PafDecoding | None = None

    def __post_init__(self) -> None:
        """Default the decoding settings to the edges, grouped from the skeleton's centre."""
        if self.decoding is None:
            self.decoding = PafDecoding(edges=self.edges, root=skeleton_centre(self.edges))

    def build(self, network: NetworkConfig) -> PoseNet:
        """Return a :class:`PafNet` of the network's shape."""
        return PafNet(network, len(self.edges))

    def batches(
        self,
        draw: Callable[[np.random.Generator], Sample],
        config: TrainConfig,
        rng: np.random.Generator,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield endless augmented batches: images, heatmaps, fields."""
        fmt = (config.network or NetworkConfig(num_keypoints=1)).input
        single = flip_permutation(self.keypoints)
        k = len(self.keypoints)
        permutation = np.concatenate([single + a * k for a in range(self.animals)])
        while True:
            examples = []
            for _ in range(config.batch_size):
                image, keypoints = augment_pair(
                    rng, draw(rng), config.augmentation, permutation, self.animals
                )
                size = (image.shape[1], image.shape[0])
                heat, paf = pair_targets(
                    keypoints, size, self.edges, self.settings.sigma, self.settings.paf_width
                )
                examples.append((image, heat, paf))
            yield stacked_batch(examples, fmt)

    def loss(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], config: TrainConfig
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return :func:`paf_loss` of a batch."""
        heatmaps, fields = targets
        return paf_loss(outputs, heatmaps, fields, self.settings)

    def predict(self, model: PoseNet, samples: Sequence[Sample]) -> np.ndarray:
        """Decode the animals (N, A, K, 3) of samples, x, y in their frames' pixels."""
        assert self.decoding is not None
        heatmaps, fields = torch_outputs(model, np.stack([s.image for s in samples]))
        decoded = decode_pafs(heatmaps, fields, STRIDE, self.decoding, self.animals)
        for i, sample in enumerate(samples):
            decoded[i, ..., :2] = sample.to_frame(decoded[i, ..., :2])
        return decoded

    def validate(self, model: PoseNet, samples: Sequence[Sample]) -> dict[str, Any]:
        """Score: the capped mean error (``mean``), the median error and the share found."""
        predicted = self.predict(model, samples)
        truth = np.stack([s.truth.reshape(self.animals, -1, 2) for s in samples])
        scores = score_animals(predicted, truth)
        errors = scores["errors"]
        return {
            "mean": scores["capped_mean"],
            "median": float(np.nanmedian(errors)) if np.isfinite(errors).any() else math.nan,
            "found": float(scores["found"].mean()),
            "best": "paf",
        }


# --------------------------------------------------------------------------------------------------
# The command's parts: data, export, model folder, evaluation
# --------------------------------------------------------------------------------------------------


def pair_data_set(args: argparse.Namespace) -> DataSet:
    """Training arenas (varied), validation arenas (varied) and test arenas (camera defaults)."""
    input_size = args.input_size or default_input_size(args.arena_size, args.letterbox)
    pools = functools.partial(HerdPool, animals=args.animals, scenarios=TRAINING_SCENARIOS)
    described = {
        "kind": "synthetic-herd",
        "animals": args.animals,
        "scenarios": list(TRAINING_SCENARIOS),
    }
    notes = {
        "hidden_keypoints": "unlabeled (no heatmap peak where the other mouse covers them)",
        "marks": "every other arena's mice carry marks drawn at random (training_marks); the "
        "others none",
    }
    return arena_data_set(args, input_size, pools, described, notes)


def pair_task(
    keypoints: Sequence[str],
    skeleton: Sequence[tuple[str, str]],
    animals: int,
    args: argparse.Namespace,
) -> PafTask:
    """Return the training task of the command's options."""
    edges = skeleton_edges(keypoints, skeleton)
    settings = PafSettings(sigma=args.sigma, paf_width=args.paf_width, paf_weight=args.paf_weight)
    decoding = PafDecoding(edges=edges, root=skeleton_centre(edges))
    return PafTask(tuple(keypoints), edges, animals, settings, decoding)


def export_pair_model(
    model: PafNet, folder: Path, input_size: Size, check_images: np.ndarray
) -> dict[str, Any]:
    """Write ``model.onnx`` with outputs ``heatmaps`` and ``pafs``, checked against PyTorch."""
    differences = export_model(model, folder, input_size, check_images, torchscript=False)
    rename_outputs(folder / "model.onnx", {"locref": OUTPUT_NAMES[1]})
    return differences


def rename_outputs(onnx_file: Path, names: dict[str, str]) -> None:
    """Rename graph outputs (and every use of those values) in an ONNX file, in place."""
    import onnx

    model = onnx.load(str(onnx_file))
    graph = model.graph
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in names:
                node.output[i] = names[name]
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]
    for value in [*graph.output, *graph.value_info]:
        if value.name in names:
            value.name = names[value.name]
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))


def pair_description(
    name: str,
    data: DataSet,
    model: PafNet,
    decoding: PafDecoding,
    max_animals: int,
) -> ModelDescription:
    """Describe a bottom-up model trained here."""
    single = model_description(
        name,
        data.keypoints,
        data.input_size,
        False,
        data.skeleton,
        input_format=model.config.input,
        letterbox=data.letterbox,
    )
    return dataclasses.replace(
        single,
        output_kind="heatmaps",
        decoder=PAF_DECODER,
        output_names=OUTPUT_NAMES,
        max_animals=max_animals,
        decoding=decoding,
    )


def finish_pair(
    args: argparse.Namespace,
    argv: Sequence[str],
    data: DataSet,
    task: PafTask,
    config: TrainConfig,
    result: TrainResult,
    elapsed: float,
) -> dict[str, Any]:
    """Export, score the test frames with the exported model, write model.json and the report."""
    assert task.decoding is not None
    out: Path = args.out
    model = result.model
    assert isinstance(model, PafNet)
    check = np.stack([s.image for s in data.validation[:3]])
    differences = export_pair_model(model, out, data.input_size, check)
    description = pair_description(
        args.name or out.resolve().name, data, model, task.decoding, args.animals
    )
    training = {
        "data": data.description,
        "seed": args.seed,
        "steps": config.steps,
        "steps_done": result.history[-1]["step"] if result.history else 0,
        "batch_size": config.batch_size,
        "best_step": result.best_step,
        "threads": config.threads,
        "training_seconds": round(elapsed, 1),
        "command": "python -m deeplabstream.offline.training.train " + shlex.join(argv),
        "torch": torch.__version__,
        "validation": rounded(result.best_validation),
        "decoder": PAF_DECODER,
    }
    network = {**config.network.to_dict(), "pafs": 2 * len(task.edges)} if config.network else None
    # Written before scoring so that the test frames go through the loaded folder.
    save_own_model(
        out, description, onnx_file=out / "model.onnx", network=network, training=training
    )
    accuracy = score_folder_on_samples(out, data.test, args.animals, args.threads)
    training["accuracy"] = accuracy
    save_own_model(
        out, description, onnx_file=out / "model.onnx", network=network, training=training
    )
    report = {
        **training,
        "input_size": list(data.input_size),
        "keypoints": list(data.keypoints),
        "edges": [list(e) for e in task.edges],
        "export_max_difference": differences,
        "augmentation": asdict(config.augmentation),
        "targets_and_loss": asdict(task.settings),
        "grouping": task.decoding.to_dict(),
        "history": rounded(result.history),
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print(format_pair_summary(accuracy))
    print(f"wrote {out} in {elapsed:.0f} s (best step {result.best_step})")
    return report


def score_folder_on_samples(
    folder: Path, samples: Sequence[Sample], animals: int, threads: int
) -> dict[str, Any]:
    """Score a written model folder on whole test samples (ONNX Runtime, the live decoder)."""
    description = load_model(folder)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    try:
        predicted = []
        for start in range(0, len(samples), 8):
            chunk = samples[start : start + 8]
            images = network_input(np.stack([s.image for s in chunk]), model_input(description))
            outputs = backend.run(images)
            decoded = decode_pafs(
                outputs[0], outputs[1], description.stride, description.decoding, animals
            )
            for i, sample in enumerate(chunk):
                decoded[i, ..., :2] = sample.to_frame(decoded[i, ..., :2])
            predicted.append(decoded)
    finally:
        backend.close()
    truth = np.stack([s.truth.reshape(animals, -1, 2) for s in samples])
    return pair_summary(
        np.concatenate(predicted), truth, description.keypoints, "held-out test frames"
    )


def model_input(description: ModelDescription) -> InputFormat:
    """Return the :class:`InputFormat` of a description (for :func:`network_input`)."""
    return InputFormat(
        dtype="uint8" if description.input_type == "uint8" else "float32",
        layout=description.input_layout,
        normalization=description.normalization,
        mean=description.mean,
        std=description.std,
    )


def pair_summary(
    predicted: np.ndarray, truth: np.ndarray, keypoints: Sequence[str], what: str
) -> dict[str, Any]:
    """Per-keypoint errors of found animals, the share of animals and keypoints found."""
    scores = score_animals(predicted, truth)
    errors, found, visible = scores["errors"], scores["found"], scores["visible"]
    return {
        "data": what,
        "units": "original-frame pixels; errors of found animals' visible keypoints",
        "animal_frames": len(found),
        "found_fraction": round(float(found.mean()), 4),
        "found_within_px": FOUND_WITHIN,
        "keypoints_found_fraction": round(
            float(np.isfinite(errors)[visible].mean()) if visible.any() else math.nan, 4
        ),
        **error_summary(errors, keypoints),
    }


def format_pair_summary(summary: dict[str, Any]) -> str:
    """Format a :func:`pair_summary` as a few lines and a table."""
    return (
        f"{summary['data']}: {summary['animal_frames']} animal-frames, found "
        f"{100 * summary['found_fraction']:.1f} % (median error <= {summary['found_within_px']:g}"
        f" px), visible keypoints found {100 * summary['keypoints_found_fraction']:.1f} %\n"
        + format_errors(summary)
    )


def evaluate_pair(
    model: str | Path,
    seeds: Sequence[int],
    frames_per_seed: int = 100,
    arena_size: Size = (640, 480),
    scenarios: Sequence[SocialKind] = ("free", "cross", "touch", "follow"),
    every: int = 5,
    threads: int = 1,
    animals: int = 2,
    timing_frames: int = 200,
) -> dict[str, Any]:
    """Errors of a multi-animal model folder on fresh frames of the simulated herd.

    Runs on the application's own path; use seeds below 1000 (training never uses them).
    Returns :func:`pair_summary` plus seeds, per-scenario found fractions and stage times (ms).
    """
    description = load_model(Path(model))
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    frame_shape = (arena_size[1], arena_size[0], 3)
    estimator = open_estimator(description, backend, frame_shape, max_batch=8)
    predicted, truths, kinds, timing_sample = [], [], [], []
    for i, seed in enumerate(seeds):
        social = scenarios[i % len(scenarios)]
        arena = ArenaParams(width=arena_size[0], height=arena_size[1], seed=seed)
        herd = SimulatedHerd(HerdParams(arena, animals=animals, social=social))
        frame = np.empty(herd.frame_shape, np.uint8)
        frames, truth = [], []
        for index in range(frames_per_seed * every):
            _, true = herd.render_next(frame)
            if index % every == 0:
                frames.append(frame.copy())
                truth.append(np.where(true[..., 2:] > 0, true[..., :2], np.nan))
        predicted.append(estimator.estimate_animals(frames))
        truths.append(np.stack(truth))
        kinds += [social] * len(frames)
        timing_sample += frames[:20]
    all_predicted, all_truth = np.concatenate(predicted), np.concatenate(truths)
    summary = pair_summary(all_predicted, all_truth, description.keypoints, "fresh herd arenas")
    by_kind = {}
    for social in dict.fromkeys(kinds):
        rows = np.array([k == social for k in kinds])
        found = score_animals(all_predicted[rows], all_truth[rows])["found"]
        by_kind[social] = round(float(found.mean()), 4)
    timing = _time_stages(
        open_estimator(description, backend, frame_shape), timing_sample, timing_frames
    )
    backend.close()
    return {
        **summary,
        "frames": len(all_predicted),
        "seeds": f"{min(seeds)}-{max(seeds)}",
        "scenarios": list(scenarios),
        "found_fraction_by_scenario": by_kind,
        "arena_size": list(arena_size),
        "timing_ms": timing,
        "load_average": load_average_1m(),
    }


def _time_stages(
    estimator: Any, frames: Sequence[np.ndarray], count: int = 200
) -> dict[str, float]:
    """Median milliseconds of the estimator's stages on one frame at a time."""
    for frame in frames[:10]:  # warm-up: the first runs allocate
        estimator.estimate_animals([frame])
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "decode": [], "total": []}
    for index in range(count):
        started = time.perf_counter()
        estimator.estimate_animals([frames[index % len(frames)]])
        stages["total"].append(time.perf_counter() - started)
        for stage in ("preprocess", "inference", "decode"):
            stages[stage].append(estimator.last_timings[stage])
    return {stage: round(float(np.median(v)) * 1e3, 3) for stage, v in stages.items()}


def run_pair_evaluation(args: argparse.Namespace) -> dict[str, Any]:
    """``--evaluate MODEL --animals 2``: print and return :func:`evaluate_pair`."""
    summary = evaluate_pair(
        args.evaluate,
        args.eval_seeds,
        args.eval_frames,
        args.arena_size,
        threads=args.threads,
        animals=args.animals,
    )
    print(format_pair_summary(summary))
    print(
        "found by scenario: "
        + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in summary["found_fraction_by_scenario"].items()
        )
    )
    timing = summary["timing_ms"]
    print(
        f"per frame, batch 1, {args.threads} threads, median ms: "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in timing.items())
        + f" (machine load {summary['load_average']:.2f})"
    )
    return summary
