"""Training the project's own pose models: ``python -m deeplabstream.offline.training.train``.

Trains on DeepLabCut labels (``--labels CollectedData_x.csv`` or ``.h5``) or on frames of the
simulated arena (``--synthetic``; ``--animals 2``: a bottom-up multi-animal model) and writes a
model folder (``model.onnx``, ``model.json``, ``training_report.json``); ``--evaluate MODEL``
scores a model folder. docs/bundled-model.md, "Reproduce it" and "Your own model".
"""

# This docstring is also ``deeplabstream-train --help`` where torch is missing (command.py).

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplabstream.core.machine import load_average_1m
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.offline.training.data import (
    Augmentation,
    Size,
)
from deeplabstream.offline.training.datasets import (
    DataSet,
    labels_data_set,
    parse_indices,
    parse_size,
    synthetic_data_set,
)
from deeplabstream.offline.training.export import export_model, model_description
from deeplabstream.offline.training.loop import TrainConfig, TrainResult, train
from deeplabstream.offline.training.loss import LossSettings
from deeplabstream.offline.training.metrics import (
    OnnxPredictor,
    decode_outputs,
    error_summary,
    format_errors,
    pixel_errors,
    rounded,
)
from deeplabstream.offline.training.multi_animal import (
    finish_pair,
    pair_data_set,
    pair_task,
    run_pair_evaluation,
)
from deeplabstream.pose.formats.own_model import load_own_model, save_own_model
from deeplabstream.pose.loading import open_estimator
from deeplabstream.pose.networks.own import (
    ARCHITECTURES,
    INPUT_FORMATS,
    NetworkConfig,
)
from deeplabstream.pose.runtime.backends import open_backend

# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m deeplabstream.offline.training.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m deeplabstream.offline.training.train",
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
    synthetic.add_argument(
        "--animals",
        type=int,
        default=1,
        help="mice per arena; 2 or more trains (or --evaluate scores) a bottom-up multi-animal "
        "model: heatmaps with a peak per animal and part-affinity fields of the skeleton's edges "
        "(deeplabstream.offline.training.multi_animal)",
    )
    synthetic.add_argument(
        "--paf-width",
        type=float,
        default=1.0,
        help="multi-animal: half-width of a limb in the part-affinity fields, heatmap px",
    )
    synthetic.add_argument(
        "--paf-weight", type=float, default=1.0, help="multi-animal: weight of the fields' loss"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        help="stop training after this many minutes (the learning-rate schedule then runs on "
        "time: its decay ends with the budget)",
    )
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
    """Run the command (``argv`` default: ``sys.argv[1:]``); return the training report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.animals > 1 and args.labels is not None:
        parser.error("--animals trains on the simulated arena: use it with --synthetic")
    if args.evaluate is not None:
        return run_pair_evaluation(args) if args.animals > 1 else run_evaluation(args)
    if not (args.synthetic or args.labels) or args.out is None:
        parser.error("give --labels FILE or --synthetic, and --out FOLDER (or --evaluate MODEL)")
    try:
        network_config(args, 1)
    except ValueError as error:
        parser.error(str(error))
    if args.animals > 1:
        return run_multi_animal(args, argv)
    started = time.perf_counter()
    data = synthetic_data_set(args) if args.synthetic else labels_data_set(args)
    train_count = len(data.description.get("train_indices", [])) or 1000
    loss = LossSettings(sigma=args.sigma, locref_weight=args.locref_weight)
    config = train_config(args, train_count, len(data.keypoints), loss)
    result = train(data.draw, data.validation, data.keypoints, data.input_size, config)
    report = finish(args, argv, data, config, result, time.perf_counter() - started)
    return report


def train_config(
    args: argparse.Namespace, train_frames: int, keypoints: int, loss: LossSettings
) -> TrainConfig:
    """Return the training loop's settings from the command line (one animal or several)."""
    return TrainConfig(
        steps=steps_for(args, train_frames),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        augmentation=Augmentation(
            crop=args.crop,
            scale=tuple(args.scale),
            rotation=args.rotation,
            flip=not args.no_flip,
        ),
        loss=loss,
        network=network_config(args, keypoints),
        time_budget=_budget_seconds(args),
    )


def _budget_seconds(args: argparse.Namespace) -> float | None:
    """``--time-budget`` in seconds (None when not given)."""
    return None if args.time_budget is None else 60.0 * args.time_budget


def run_multi_animal(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """Train, export and score a bottom-up multi-animal model (``--synthetic --animals N``)."""
    started = time.perf_counter()
    data = pair_data_set(args)
    task = pair_task(data.keypoints, data.skeleton, args.animals, args)
    config = train_config(args, 1000, len(data.keypoints), LossSettings(sigma=args.sigma))
    result = train(data.draw, data.validation, data.keypoints, data.input_size, config, task=task)
    return finish_pair(args, argv, data, task, config, result, time.perf_counter() - started)


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
        "command": "python -m deeplabstream.offline.training.train " + shlex.join(argv),
        "torch": torch.__version__,
        "accuracy": accuracy,
        "validation": rounded(result.best_validation),
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
        "history": rounded(result.history),
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

    Runs on the application's own path; use seeds below 1000. Returns :func:`error_summary`
    plus frames, seeds, size, stage times (``timing_ms``) and the load average.
    """
    description = load_own_model(model)
    backend = open_backend(description, "onnxruntime", "cpu", threads)
    frame_shape = (arena_size[1], arena_size[0], 3)
    estimator = open_estimator(description, backend, frame_shape, max_batch=8)
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
    timing = time_estimator(
        open_estimator(description, backend, frame_shape), frames, timing_frames
    )
    backend.close()
    all_errors = np.concatenate(errors)
    return {
        **error_summary(all_errors, description.keypoints),
        "frames": len(all_errors),
        "seeds": f"{min(seeds)}-{max(seeds)}",
        "arena_size": list(arena_size),
        "timing_ms": timing,
        "inference_ms": timing["inference"],
        "load_average": load_average_1m(),
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


def main() -> None:
    """Entry point of ``python -m deeplabstream.offline.training.train``."""
    run()


if __name__ == "__main__":
    main()
