"""Labelled behaviour sessions of the simulated arena, analysed by a pose model.

docs/behaviour-classifiers.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from deeplabstream.hardware.simulator.arena import BEHAVIOUR_NAMES, ArenaParams, SimulatedArena
from deeplabstream.outputs.pose.files import PoseCsvWriter
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend

FPS = 30.0


def parse_seeds(text: str) -> list[int]:
    """``"1-6"`` or ``"1,3,5"`` (or both, ``"1-3,7"``) -> the seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            seeds.extend(range(int(low), int(high or low) + 1))
        except ValueError:
            raise ValueError(f"--seeds: {part!r} is not a seed or a range like 1-6") from None
    return seeds


def write_session(
    seed: int,
    frames: int,
    out: Path,
    estimator: PoseEstimator,
    behaviours: tuple[str, ...] = BEHAVIOUR_NAMES,
) -> tuple[Path, Path]:
    """Render, analyse and label ``frames`` frames of ``seed``; return the two files written."""
    arena = SimulatedArena(ArenaParams(seed=seed, framerate=FPS, behaviours=behaviours))
    description = estimator.description
    pose_path, labels_path = out / f"seed{seed}.pose.csv", out / f"seed{seed}.behaviour.csv"
    for path in (pose_path, labels_path):
        path.unlink(missing_ok=True)
    writer = PoseCsvWriter(pose_path, f"deeplabstream_{description.name}", description.keypoints)
    image = np.empty(arena.frame_shape, np.uint8)
    rows = ["frame,behaviour"]
    try:
        for _ in range(frames):
            index, _ = arena.render_next(image)
            writer.write(index, estimator.estimate([image])[0])
            rows.append(f"{index},{arena.behaviour}")
    finally:
        writer.close()
    labels_path.write_text("\n".join(rows) + "\n", encoding="ascii")
    return pose_path, labels_path


def arena_estimator(model: Path | None, threads: int) -> PoseEstimator:
    """Open the pose model on the CPU, for the frames of the simulated arena (any model's kind)."""
    shape = SimulatedArena(ArenaParams()).frame_shape
    height, width = shape[:2]
    description = load_model(model, frame_size=(height, width))
    if description.any_input_size:
        description = description.at_input_size(height, width)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    backend.warm_up()
    return open_estimator(description, backend, shape)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``deeplabstream-train-behaviour_arena``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", required=True, help="seeds, e.g. 1-6 or 1,3,5")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each session")
    parser.add_argument("--out", type=Path, required=True, help="folder for the files")
    parser.add_argument("--model", type=Path, default=None, help=f"default: {BUNDLED_MODEL}")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the model")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        parser.error(str(error))
    if args.minutes <= 0:
        parser.error("--minutes must be more than 0")
    args.out.mkdir(parents=True, exist_ok=True)
    estimator = arena_estimator(args.model, args.threads)
    frames = round(args.minutes * 60 * FPS)
    for seed in seeds:
        started = time.perf_counter()
        pose, labels = write_session(seed, frames, args.out, estimator)
        took = time.perf_counter() - started
        print(f"seed {seed}: {frames} frames in {took:.0f} s -> {pose.name}, {labels.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
