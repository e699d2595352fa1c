"""Ensembles: what several models on every frame cost, and whether a 30 fps camera holds.

    python -m benchmarks.ensembles [--seconds S] [--frames N] [--device auto|cpu|cuda] [--quick]

Members of the bundled model's size (``pose/bundled/arena``, 320x256 input, 0.21 M parameters):
the bundled model and copies of it with perturbed weights (``tests/support/ensembles.py``, as a
lab's seeds would differ), 1, 3 and 5 of them, in the same run:

1. **the models alone** (in-process, simulated-arena frames of 640x480, one frame at a time as
   one camera): the inference worker's estimator (``pose.runtime.ensemble``: each model's own
   ONNX Runtime session, then the ensemble's median and spread); the three variants take turns
   on blocks of ``BLOCK`` frames (the order rotating, each block after an untimed frame) so that
   other load affects them alike. Frames per second (1 / mean) and the frame's p50 / p99, with
   their ratio to one model.
2. **live** (``DeepLabStream.py``): the synthetic camera at 30 fps, pose estimation and an
   experiment whose rule is gated on the models' agreement (``MAX_ENSEMBLE_STD = 4``; one model:
   the same rule without it), for
   ``--seconds`` per variant, the variants one after the other: frame -> decision p50 / p99 (the
   pose timing file's ``decided`` minus the frame's arrival), the analysed rate, the frames
   skipped, and the loop's deadline misses (``DEADLINE_MS = auto``: three frame intervals).
   Goal: an ensemble of 3 holds the 30 fps camera with no deadline miss.
3. **GPU**, where ONNX Runtime has its CUDA provider (``--device auto``, the default, finds it):
   part 1 again on ``DEVICE = cuda``.

The baseline column is one model, measured in the same run. Figures are printed and saved to
``benchmarks/results/ensembles.json``; ``--quick`` runs a few seconds of each part and saves
nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.app_run import run_app
from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.ensemble import EnsembleEstimator
from deeplabstream.pose.runtime.providers import device_problem
from tests.support.ensembles import perturbed_member

SIZES = (1, 3, 5)
BLOCK = 10
FPS = 30.0
THREADS = 2
EXPERIMENT = """\
[Experiment]
HOLD = 0

[Trigger agree]
KIND = region
SHAPE = rect 0 0 640 480
KEYPOINT = nose
{gate}

[Stimulation light]
DEVICE = light
COMMAND = pulse
DURATION = 0.01

[Rule go]
WHEN = agree
DO = light
"""


def members(folder: Path, count: int) -> list[Path]:
    """The bundled model and ``count - 1`` perturbed copies (seeded: the same every run)."""
    made = [perturbed_member(folder / f"member{i}", i, 0.05) for i in range(1, count)]
    return [BUNDLED_MODEL, *made]


def arena_frames(count: int) -> list[np.ndarray]:
    """``count`` frames of the simulated arena, 640x480 BGR."""
    arena = SimulatedArena(ArenaParams(seed=11))
    frames = []
    for _ in range(count):
        frame = np.empty((480, 640, 3), np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    return frames


def estimator_of(paths: list[Path], device: str, shape: tuple[int, ...]) -> Any:
    """One camera's estimator of ``paths``: one model's, or the ensemble's of them."""
    alone = []
    for path in paths:
        description = load_model(path)
        alone.append(
            open_estimator(
                description, open_backend(description, "onnxruntime", device, THREADS), shape
            )
        )
    if len(alone) == 1:
        return alone[0]
    rows = [np.arange(len(alone[0].description.keypoints))] * len(alone)
    return EnsembleEstimator(alone[0].description, alone, rows)


def time_models(paths: list[Path], device: str, frames: list[np.ndarray]) -> dict[int, Any]:
    """Per-frame times (ns) of 1, 3 and 5 models, taking turns on blocks of frames."""
    estimators = {size: estimator_of(paths[:size], device, frames[0].shape) for size in SIZES}
    times: dict[int, list[int]] = {size: [] for size in SIZES}
    order = list(SIZES)
    for start in range(0, len(frames), BLOCK):
        block = frames[start : start + BLOCK]
        for size in order:
            estimator = estimators[size]
            estimator.estimate([block[0]])  # untimed: the caches warm for this variant
            for frame in block:
                began = time.perf_counter_ns()
                estimator.estimate([frame])
                times[size].append(time.perf_counter_ns() - began)
        order = order[1:] + order[:1]
    return {size: summarize_ms(values) for size, values in times.items()}


def live_run(paths: list[Path], seconds: float, folder: Path) -> dict[str, Any]:
    """Run the app on the 30 fps synthetic camera with ``paths``; its loop's figures."""
    (folder / "experiments").mkdir(parents=True)
    # One model has no spread: its rule reads the nose alone (the same decision otherwise).
    gate = "MAX_ENSEMBLE_STD = 4" if len(paths) > 1 else ""
    (folder / "experiments" / "agree.ini").write_text(
        EXPERIMENT.format(gate=gate), encoding="utf-8"
    )
    models = "; ".join(str(path) for path in paths)
    settings = folder / "settings.ini"
    settings.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {FPS:g}\n\n"
        f"[Pose]\nMODEL_PATH = {models}\nTHREADS = {THREADS}\n\n"
        "[Experiment]\nNAME = agree\nDEADLINE_MS = auto\n\n[Device light]\nTYPE = log\n",
        encoding="utf-8",
    )
    run = run_app(
        settings,
        ["--experiment-enabled", "--duration", f"{seconds:g}"],
        folder / "out",
    )
    timing = pd.read_csv(run.session / "arena.pose_timing.csv")
    decided = timing.dropna(subset=["decided"])
    to_decision = ((decided["decided"] - decided["host_timestamp"]) * 1e9).to_numpy()
    health = run.health()
    span = timing["pose_ready"].iloc[-1] - timing["pose_ready"].iloc[0]
    return {
        "frame_to_decision_ms": summarize_ms(to_decision.astype(np.int64)),
        "analysed": len(timing),
        "analysed_fps": round((len(timing) - 1) / span, 2) if span > 0 else None,
        "deadline_misses": health["deadline_misses"].get("arena"),
        "deadline_ms": health["deadline_ms"].get("arena"),
        "health": health,
    }


def gpu_device(choice: str) -> str | None:
    """The GPU part's device: ``cuda`` where ONNX Runtime has the provider (``auto``)."""
    if choice == "cpu":
        return None
    problem = device_problem("cuda")
    if problem is None:
        return "cuda"
    if choice == "cuda":
        raise SystemExit(f"--device cuda: {problem}")
    print(f"no GPU part: {problem}")
    return None


def figures_of(
    cpu: dict[int, Any], live: dict[int, Any], gpu: dict[int, Any] | None
) -> list[Figure]:
    """The table: each ensemble beside one model, in the same run (the ratio: one model's share).

    A ratio of 0.33 for 3 models: they take three times one model's time.
    """
    rows: list[Figure] = []
    for size in SIZES[1:]:
        alone, one = cpu[size], cpu[1]
        decision = live[size]["frame_to_decision_ms"]
        one_decision = live[1]["frame_to_decision_ms"]
        rows += [
            Figure(f"cpu.models{size}.fps", f"{size} models alone: frames/s (CPU)",
                   round(1000 / alone["mean"], 1), round(1000 / one["mean"], 1), "fps",
                   higher_is_better=True),
            Figure(f"cpu.models{size}.p50_ms", f"{size} models alone: frame p50 (CPU)",
                   alone["p50"], one["p50"], "ms"),
            Figure(f"cpu.models{size}.p99_ms", f"{size} models alone: frame p99 (CPU)",
                   alone["p99"], one["p99"], "ms"),
            Figure(f"live.models{size}.decision_p50_ms", f"{size} models live: frame->decision p50",
                   decision.get("p50"), one_decision.get("p50"), "ms"),
            Figure(f"live.models{size}.decision_p99_ms", f"{size} models live: frame->decision p99",
                   decision.get("p99"), one_decision.get("p99"), "ms"),
            Figure(f"live.models{size}.analysed_fps", f"{size} models live: analysed frames/s",
                   live[size]["analysed_fps"], live[1]["analysed_fps"], "fps",
                   higher_is_better=True, goal=f"{FPS:g} (the camera's)" if size == 3 else ""),
            Figure(f"live.models{size}.deadline_misses", f"{size} models live: deadline misses",
                   live[size]["deadline_misses"], live[1]["deadline_misses"],
                   goal="0 at 30 fps" if size == 3 else "", compare=False),
        ]  # fmt: skip
    for size in SIZES[1:] if gpu else ():
        assert gpu is not None
        rows += [
            Figure(f"gpu.models{size}.fps", f"{size} models alone: frames/s (GPU)",
                   round(1000 / gpu[size]["mean"], 1), round(1000 / gpu[1]["mean"], 1), "fps",
                   higher_is_better=True),
            Figure(f"gpu.models{size}.p99_ms", f"{size} models alone: frame p99 (GPU)",
                   gpu[size]["p99"], gpu[1]["p99"], "ms"),
        ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of each live run")
    parser.add_argument("--frames", type=int, default=600, help="frames of the models-alone part")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="the GPU part: auto (where CUDA is available), cpu (none), cuda",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds of each part; saves nothing"
    )
    args = parser.parse_args(argv)
    frames_count, seconds = (40, 6.0) if args.quick else (args.frames, args.seconds)
    started, machine = now_iso(), machine_description()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        paths = members(folder / "models", max(SIZES))
        frames = arena_frames(frames_count)
        cpu = time_models(paths, "cpu", frames)
        live = {size: live_run(paths[:size], seconds, folder / f"live{size}") for size in SIZES}
        device = gpu_device(args.device)
        gpu = time_models(paths, device, frames) if device else None
    rows = figures_of(cpu, live, gpu)
    print_table(
        "Ensembles (each beside one model, same run)",
        rows,
        machine,
        project="ensemble",
        baseline="one model",
    )
    details = {
        "cpu_ms": {str(size): cpu[size] for size in SIZES},
        "live": {str(size): live[size] for size in SIZES},
        "gpu_ms": None if gpu is None else {str(size): gpu[size] for size in SIZES},
        "frames": frames_count,
        "seconds": seconds,
        "threads": THREADS,
        "camera_fps": FPS,
    }
    if args.quick:
        print("--quick: nothing saved")
        return 0
    path = save_result("ensembles", rows, started=started, machine=machine, details=details)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
