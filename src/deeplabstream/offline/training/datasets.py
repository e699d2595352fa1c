"""The two sources of training data, split into training and validation frames."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deeplabstream.core.errors import LabelsError
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.offline.labels import read_dlc_labels
from deeplabstream.offline.training.data import (
    ArenaPool,
    ArenaVariation,
    Sample,
    Size,
    default_input_size,
    load_label_samples,
    synthetic_seeds,
)
from deeplabstream.pose.networks.own import (
    check_input_size,
)

ARENA_SKELETON = (
    ("nose", "left_ear"),
    ("nose", "right_ear"),
    ("left_ear", "neck"),
    ("right_ear", "neck"),
    ("neck", "body_center"),
    ("body_center", "tail_base"),
)


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
    try:
        labels = read_dlc_labels(args.labels, individual=args.individual)
    except LabelsError as error:
        raise SystemExit(f"Error: {error}") from None
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
    input_size = args.input_size or default_input_size(args.arena_size, args.letterbox)
    check_input_size(input_size[1], input_size[0])
    return arena_data_set(args, input_size, ArenaPool, {"kind": "synthetic"})


def arena_data_set(
    args: argparse.Namespace,
    input_size: Size,
    make_pool: Callable[..., Any],
    described: dict[str, Any],
    notes: dict[str, str] | None = None,
) -> DataSet:
    """Training arenas (varied), validation arenas (varied) and test arenas (camera defaults).

    ``make_pool(seeds, variation=, walk_frames=, arena_size=, input_size=, letterbox=)`` makes
    the arenas; the description starts with ``described`` and ends with ``notes``.
    """
    arena_size, letterbox = args.arena_size, args.letterbox
    variation = ArenaVariation()
    train_seeds = synthetic_seeds(args.seed, "train", args.arenas)
    validation_seeds = synthetic_seeds(args.seed, "validation", 8)
    test_seeds = synthetic_seeds(args.seed, "test", 8)
    pool = {"arena_size": arena_size, "input_size": input_size, "letterbox": letterbox}
    train_pool = make_pool(train_seeds, variation=variation, **pool)
    validation = make_pool(validation_seeds, variation=variation, walk_frames=3000, **pool)
    test = make_pool(test_seeds, variation=None, walk_frames=3000, **pool)
    description = {
        **described,
        "arena_size": list(arena_size),
        "train_seeds": [train_seeds[0], train_seeds[-1]],
        "validation_seeds": [validation_seeds[0], validation_seeds[-1]],
        "test_seeds": [test_seeds[0], test_seeds[-1]],
        "variation": asdict(variation),
        **(notes or {}),
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
