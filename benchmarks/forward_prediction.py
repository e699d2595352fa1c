"""Forward prediction: where the nose is when the command is written, measured vs predicted.

    python -m benchmarks.forward_prediction [--fps F] [--duration S] [--exact-seconds S] [--quick]

The error of interest is the distance between the position an experiment acts on and where the
nose truly is at the moment its command is written. Without prediction that is the measured
position of a frame some tens of milliseconds old; with it, the position predicted for that
moment. Both sides come from the same run, on the same poses.

1. **The real pipeline.** ``DeepLabStream.py --headless --experiment-enabled`` on the simulated
   arena (640x480 at ``--fps``, default 30, random walk), the bundled model, and a config
   experiment with ``PREDICT = kalman`` and ``PREDICT_LEAD = auto`` that pulses a log device at
   every pose update (a region covering the arena, ``EDGE = while``). From ``events.csv``, for
   every action: the measured and the predicted nose and the time the command was written. The
   truth at that time: the arena's per-frame truth (``arena.truth.csv``) interpolated linearly
   at the command time. The simulation advances in steps of one frame interval (1 / ``--fps``)
   and its body centre moves on a straight segment in each step, so between frames the linear
   interpolation is its own motion (the head's turn within a step is the approximation). The
   camera's host clock is tied to frame times by the least delayed frame (the camera stamps a
   frame when it falls due). The constant-velocity side replays the run's own poses
   (``arena.pose.csv``, the frames analysed) with the leads the run used; the Kalman filter is
   replayed too and checked against the run's.
2. **Exact times.** The same random walk simulated in steps of at most 1/900 s
   (:func:`substeps` steps per frame: 30 at 30 fps, 900 Hz; 5 at 200 fps, 1000 Hz), every
   frame's step rendered and analysed by the bundled model offline (``--exact-seconds`` of
   frames at ``--fps``); each frame's command is written after a latency taken in order from
   part 1's measured latencies, the lead is the running median of the previous ones (as
   ``auto``), and the truth is the fine simulation at the command time. Also: errors at fixed
   leads, and with Gaussian noise added to the keypoints (a noisier model), to show when
   prediction helps.

The first second of actions (at least 30) is left out of both parts: the model warms up and the
lead is not measured yet. The app exits 1 when its loop misses the session's deadline (at
200 fps on a busy machine it may): the run is analysed all the same, and the exit code and
health verdict are kept in ``details``.

The baseline of every figure is the measured position (no prediction). Saved to
``benchmarks/results/forward_prediction.json`` at 30 fps, ``forward_prediction_<F>fps.json``
at another ``--fps`` (a variant section of the same benchmark in docs/benchmarks.md). The other
processes on the machine change the latency (and so the lead); the load is saved with the
results.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.app_run import run_app
from benchmarks.common import now_iso, print_table, save_result
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.experiments.prediction import (
    ConstantVelocity,
    KalmanConstantVelocity,
    KeypointPredictor,
    LeadEstimator,
    PredictionSettings,
)
from deeplabstream.hardware.simulator.arena import (
    ArenaParams,
    ArenaRenderer,
    Pose,
    keypoints_from_poses,
    simulate_poses,
)

NAME = "forward_prediction"
DEFAULT_FPS = 30.0
FINE_RATE_HZ = 900.0  # part 2: the simulation's steps are at most 1 / FINE_RATE_HZ long
SEED = 11
WARM_UP_ACTIONS = 30  # at least: the lead is not measured yet, the model warms up
MIN_LIKELIHOOD = 0.5  # the experiment's default threshold, used by the replay too
DEFAULTS = PredictionSettings("kalman")  # the parameters the config leaves at their defaults
EXPERIMENT = """# A pulse at every pose update, deciding on the predicted nose (benchmark only).
[Experiment]
DESCRIPTION = Forward prediction benchmark: a pulse at every pose update
TRIAL_DURATION = 0
PREDICT = kalman
PREDICT_LEAD = auto

[Trigger seen]
KIND = region
SHAPE = rect 0 0 640 480
KEYPOINT = nose

[Stimulation tick]
DEVICE = box
COMMAND = pulse
DURATION = 0.005

[Rule every_update]
WHEN = seen
EDGE = while
DO = tick
"""


def substeps(fps: float) -> int:
    """Return part 2's simulation steps per camera frame: steps of at most 1/900 s.

    30 at 30 fps (900 Hz), 5 at 200 fps (1000 Hz); the camera's frames are every
    ``substeps``-th step, so the fine simulation follows the camera's rate.
    """
    return max(1, math.ceil(FINE_RATE_HZ / fps - 1e-9))


def warm_up_count(fps: float) -> int:
    """Return the actions (part 1) or frames (part 2) left out at the start: one second, >= 30."""
    return max(WARM_UP_ACTIONS, round(fps))


def result_name(fps: float) -> str:
    """Return the results file's name: ``forward_prediction`` at 30 fps, else with the rate.

    ``forward_prediction_200fps`` is shown as a variant of ``forward_prediction`` by
    ``benchmarks/report.py``.
    """
    return NAME if fps == DEFAULT_FPS else f"{NAME}_{fps:g}fps"


# --------------------------------------------------------------------------------------------------
# Predictors and error figures
# --------------------------------------------------------------------------------------------------


def make_predictors() -> dict[str, Callable[[], KeypointPredictor]]:
    """The two methods with the defaults an experiment gets."""
    return {
        "constant-velocity": lambda: ConstantVelocity(
            DEFAULTS.window_s, DEFAULTS.max_gap_s, MIN_LIKELIHOOD
        ),
        "kalman": lambda: KalmanConstantVelocity(
            DEFAULTS.process_noise, DEFAULTS.measurement_noise, DEFAULTS.max_gap_s, MIN_LIKELIHOOD
        ),
    }


def error_stats(errors: Iterable[float]) -> dict[str, float | int]:
    """Count, median, 95th percentile and mean of distances in px (NaNs left out)."""
    values = np.asarray(list(errors), dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "p50": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "mean": round(float(values.mean()), 3),
    }


def replay(
    make: Callable[[], KeypointPredictor],
    times: np.ndarray,
    poses: np.ndarray,
    horizons: dict[int, float],
    keypoint: int,
) -> dict[int, np.ndarray]:
    """Feed every analysed frame to a fresh predictor; predict ``keypoint`` at some of them.

    ``horizons`` maps a frame's row to how far ahead of its time to predict (s).
    """
    predictor = make()
    predicted = {}
    for row, (t, pose) in enumerate(zip(times, poses, strict=True)):
        predictor.update(float(t), pose)
        if row in horizons:
            predicted[row] = predictor.predict(float(t) + horizons[row])[keypoint]
    return predicted


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances of two (N, 2) arrays."""
    return np.hypot(*(np.asarray(a) - np.asarray(b)).T)


# --------------------------------------------------------------------------------------------------
# Part 1: the real pipeline
# --------------------------------------------------------------------------------------------------


def run_pipeline(
    folder: Path, duration_s: float, recording: bool, fps: float = DEFAULT_FPS
) -> tuple[Path, dict[str, Any]]:
    """Run DeepLabStream.py with the predicting experiment; the session folder and its health.

    The health holds the app's exit code: 1 when the loop missed its deadline, which does not
    stop the benchmark (the run's actions are measured all the same).
    """
    experiment = folder / "forward_prediction.ini"
    experiment.write_text(EXPERIMENT, encoding="utf-8")
    settings = folder / "settings.ini"
    settings.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {fps:g}\nSEED = {SEED}\n"
        f"[Experiment]\nNAME = {experiment}\n[Device box]\nTYPE = log\n"
        "[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n",
        encoding="utf-8",
    )
    arguments = ["--experiment-enabled", "--duration", f"{duration_s:g}"]
    if recording:
        arguments.append("--recording-enabled")
    # Its own instance lock: the simulated camera is no device another instance could hold.
    env = {**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(folder / "instance.lock")}
    run = run_app(settings, arguments, folder / "out", env=env)
    return run.session, run.health()


def read_dlc_csv(path: Path) -> tuple[pd.Index, np.ndarray, tuple[str, ...]]:
    """Frame indices, keypoints (N, K, 3) and keypoint names of a DeepLabCut-style CSV.

    Rows without any value (frames not analysed) are left out.
    """
    table = pd.read_csv(path, header=[0, 1, 2], index_col=0).dropna(how="all")
    table.columns = table.columns.droplevel(0)  # the scorer
    names = tuple(dict.fromkeys(table.columns.get_level_values(0)))
    values = np.stack([table[name][["x", "y", "likelihood"]].to_numpy() for name in names], axis=1)
    return table.index, values.astype(np.float64), names


def analyse_pipeline(session: Path, fps: float = DEFAULT_FPS) -> dict[str, Any]:
    """Nose errors at the command time: measured, the run's Kalman, replayed predictors."""
    events = pd.read_csv(session / "events.csv")
    actions = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    actions = actions.iloc[warm_up_count(fps) :].reset_index(drop=True)
    frames, poses, names = read_dlc_csv(session / "arena.pose.csv")
    truth_frames, truth, _ = read_dlc_csv(session / "arena.truth.csv")
    timing = pd.read_csv(session / "arena.pose_timing.csv")
    nose = names.index("nose")
    # Host time of frame 0 falling due: the camera stamps a frame when due (or late, never early).
    delay = timing["host_timestamp"] - timing["frame_index"] / fps
    frame0_host = float(delay.min())
    command_frame = (actions["written"].to_numpy() - frame0_host) * fps  # fractional frames
    truth_xy = np.column_stack(
        [np.interp(command_frame, truth_frames, truth[:, nose, axis]) for axis in (0, 1)]
    )
    measured = actions[["measured_x", "measured_y"]].to_numpy()
    online = actions[["predicted_x", "predicted_y"]].to_numpy()
    # Replay the analysed poses with the leads the run used (and with the true latency).
    row_of = {int(frame): row for row, frame in enumerate(frames)}
    rows = [row_of[int(f)] for f in actions["frame_index"]]
    times = np.asarray(frames, dtype=np.float64) / fps
    leads = dict(zip(rows, actions["lead_ms"].to_numpy() / 1e3, strict=True))
    true_horizon = command_frame / fps - actions["frame_index"].to_numpy() / fps
    oracle = dict(zip(rows, true_horizon, strict=True))
    result: dict[str, Any] = {
        "fps": fps,
        "actions": len(actions),
        "frames_analysed": len(frames),
        "frames_captured": len(truth_frames),
        "latency_ms": error_stats((actions["written"] - actions["host_timestamp"]) * 1e3),
        "frame_lateness_ms": error_stats((delay - frame0_host) * 1e3),
        "lead_ms": error_stats(actions["lead_ms"]),
        "horizon_ms": error_stats(true_horizon * 1e3),
        "measured": error_stats(distances(measured, truth_xy)),
        "kalman_online": error_stats(distances(online, truth_xy)),
        "latencies_s": list((actions["written"] - actions["host_timestamp"]).to_numpy()),
    }
    for method, make in make_predictors().items():
        replayed = replay(make, times, poses, leads, nose)
        predicted = np.array([replayed[row] for row in rows])
        result[method] = error_stats(distances(predicted, truth_xy))
        ideal = replay(make, times, poses, oracle, nose)
        result[f"{method}_true_lead"] = error_stats(
            distances(np.array([ideal[row] for row in rows]), truth_xy)
        )
        if method == "kalman":  # the replay must be the run's own filter, to csv rounding
            result["kalman_replay_max_difference_px"] = round(
                float(np.nanmax(distances(predicted, online))), 4
            )
    return result


# --------------------------------------------------------------------------------------------------
# Part 2: exact times
# --------------------------------------------------------------------------------------------------


def model_poses(
    params: ArenaParams, fine_poses: np.ndarray, steps: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Render every ``steps``-th pose at the camera's rate and analyse it (bundled model)."""
    from deeplabstream.pose.loading import load_model, open_estimator
    from deeplabstream.pose.runtime.backends import open_backend

    description = load_model(None)
    backend = open_backend(description, "onnxruntime", "cpu", 1)
    backend.warm_up(1)
    shape = (params.height, params.width, 3)
    estimator = open_estimator(description, backend, shape, max_batch=1)
    renderer = ArenaRenderer(params)
    frame = np.empty(shape, np.uint8)
    out = []
    for index, fine in enumerate(fine_poses[::steps]):
        renderer.render(Pose(*fine.tolist()), index, frame)
        out.append(estimator.estimate([frame])[0])
    return np.asarray(out), tuple(description.keypoints)


def exact_time_errors(
    poses: np.ndarray,
    truth_fine: np.ndarray,
    nose: int,
    latencies_s: np.ndarray,
    fixed_leads_ms: Iterable[float] = (),
    skip: int = WARM_UP_ACTIONS,
    predictors: dict[str, Callable[[], KeypointPredictor]] | None = None,
    *,
    fps: float = DEFAULT_FPS,
    steps: int | None = None,
) -> dict[str, Any]:
    """Nose errors at each frame's command time, truth from the fine simulation.

    The lead is the running median of the previous latencies (auto); the command time is the
    frame's time plus its own latency. ``fixed_leads_ms``: also with the lead equal to the
    latency, fixed (a rig whose latency is known and steady). ``predictors``: default
    :func:`make_predictors`. ``poses`` are frames at ``fps``; ``truth_fine`` the simulation
    at ``steps`` (default :func:`substeps`) steps per frame.
    """
    predictors = predictors or make_predictors()
    steps = steps or substeps(fps)
    fine_times = np.arange(len(truth_fine)) / (fps * steps)
    count = len(poses)
    times = np.arange(count) / fps

    def truth_at(t: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [np.interp(t, fine_times, truth_fine[:, nose, axis]) for axis in (0, 1)]
        )

    latency = np.resize(latencies_s, count)  # in order, repeated when the run was shorter
    estimator = LeadEstimator()
    leads = np.empty(count)
    for row in range(count):
        leads[row] = estimator.current_s()
        estimator.add_latency(float(latency[row]))
    rows = range(skip, count)
    truth_xy = truth_at(times[skip:] + latency[skip:])
    result: dict[str, Any] = {
        "frames": count - skip,
        "measured": error_stats(distances(poses[skip:, nose, :2], truth_xy)),
    }
    for method, make in predictors.items():
        predicted = replay(make, times, poses, {r: leads[r] for r in rows}, nose)
        result[method] = error_stats(distances(np.array([predicted[r] for r in rows]), truth_xy))
    by_lead: dict[str, Any] = {}
    for lead_ms in fixed_leads_ms:
        lead = lead_ms / 1e3
        truth_fixed = truth_at(times[skip:] + lead)
        entry = {"measured": error_stats(distances(poses[skip:, nose, :2], truth_fixed))}
        for method, make in predictors.items():
            predicted = replay(make, times, poses, dict.fromkeys(rows, lead), nose)
            entry[method] = error_stats(
                distances(np.array([predicted[r] for r in rows]), truth_fixed)
            )
        by_lead[f"{lead_ms:g}"] = entry
    if by_lead:
        result["fixed_lead_ms"] = by_lead
    return result


def run_exact(
    seconds: float, latencies_s: np.ndarray, noise_px: float, fps: float = DEFAULT_FPS
) -> dict[str, Any]:
    """Part 2: the fine simulation, the model's poses, errors with and without prediction."""
    steps = substeps(fps)
    fine_params = ArenaParams(framerate=fps * steps, seed=SEED)
    frames = int(seconds * fps)
    fine_poses = simulate_poses(fine_params, frames * steps)
    truth_fine = keypoints_from_poses(fine_poses, fine_params.body_length_px)
    started = time.perf_counter()
    poses, names = model_poses(ArenaParams(framerate=fps, seed=SEED), fine_poses, steps)
    analysed_s = time.perf_counter() - started
    nose = names.index("nose")
    skip = warm_up_count(fps)
    result = {
        "frames_rendered_and_analysed": frames,
        "simulation_steps_per_frame": steps,
        "simulation_rate_hz": fps * steps,
        "analysis_s": round(analysed_s, 1),
        "bundled_model": exact_time_errors(
            poses, truth_fine, nose, latencies_s, (10, 20, 40, 80), skip=skip, fps=fps, steps=steps
        ),
    }
    noisy = poses.copy()
    noisy[..., :2] += np.random.default_rng(SEED).normal(0.0, noise_px, noisy[..., :2].shape)
    # A noisier model, with the defaults and with the Kalman filter told the noise.
    predictors = make_predictors()
    predictors["kalman_measurement_noise_matched"] = lambda: KalmanConstantVelocity(
        DEFAULTS.process_noise, noise_px, DEFAULTS.max_gap_s, MIN_LIKELIHOOD
    )
    result[f"bundled_model_plus_{noise_px:g}px_noise"] = exact_time_errors(
        noisy,
        truth_fine,
        nose,
        latencies_s,
        (20, 40),
        predictors=predictors,
        skip=skip,
        fps=fps,
        steps=steps,
    )
    return result


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def figures_of(part: str, label: str, result: dict[str, Any]) -> list[Figure]:
    """Predicted vs measured nose error (p50, p95) of each method in one part."""
    figures = []
    for method, name in (("constant-velocity", "constant velocity"), ("kalman", "Kalman")):
        for stat in ("p50", "p95"):
            figures.append(
                Figure(
                    f"{part}.{method}.{stat}",
                    f"{label}: nose error at the command, {name}, {stat}",
                    result[method].get(stat),
                    result["measured"].get(stat),
                    "px",
                )
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fps",
        type=float,
        default=DEFAULT_FPS,
        help=f"the camera's rate (default {DEFAULT_FPS:g}; another rate saves {NAME}_<F>fps.json)",
    )
    parser.add_argument("--duration", type=float, default=40.0, help="pipeline run, seconds")
    parser.add_argument(
        "--exact-seconds", type=float, default=60.0, help="part 2: seconds of frames at --fps"
    )
    parser.add_argument("--noise", type=float, default=2.0, help="part 2: added noise, px")
    parser.add_argument("--recording", action="store_true", help="record during the pipeline run")
    parser.add_argument("--quick", action="store_true", help="15 s and 20 s")
    args = parser.parse_args(argv)
    duration = 15.0 if args.quick else args.duration
    exact_seconds = 20.0 if args.quick else args.exact_seconds
    started, machine = now_iso(), machine_description()
    fps = args.fps
    print(f"forward prediction at {fps:g} fps: pipeline {duration:g} s ...", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        session, health = run_pipeline(Path(folder), duration, args.recording, fps)
        pipeline = analyse_pipeline(session, fps)
    pipeline["run"] = health
    latencies = np.asarray(pipeline.pop("latencies_s"))
    print(f"exact times: {exact_seconds:g} s of frames at {fps:g} fps ...", flush=True)
    exact = run_exact(exact_seconds, latencies, args.noise, fps)
    figures = figures_of("pipeline", "pipeline", pipeline)
    figures += figures_of("exact", "exact times", exact["bundled_model"])
    figures.append(
        Figure("pipeline.actions", "pipeline: actions", pipeline["actions"], None, compare=False)
    )
    print_table(
        f"forward prediction at {fps:g} fps: the nose at the command time, pipeline "
        f"{duration:g} s, exact times {exact_seconds:g} s",
        figures,
        machine,
        project="predicted",
        baseline="measured",
    )
    print(
        "pipeline latency frame -> command written (ms):",
        pipeline["latency_ms"],
        "lead used (ms):",
        pipeline["lead_ms"],
    )
    print("Kalman replay vs the run's own (px):", pipeline["kalman_replay_max_difference_px"])
    print(f"app exit code {health['exit_code']}, health {health['verdict']}")
    for problem in health["problems"]:
        print(f"  {problem}")
    for lead, entry in exact["bundled_model"]["fixed_lead_ms"].items():
        print(f"exact, fixed lead {lead} ms:", {k: v.get("p50") for k, v in entry.items()})
    noisy_key = f"bundled_model_plus_{args.noise:g}px_noise"
    print(
        f"exact, +{args.noise:g} px noise:",
        {
            k: v.get("p50")
            for k, v in exact[noisy_key].items()
            if isinstance(v, dict) and "p50" in v
        },
    )
    path = save_result(
        result_name(fps),
        figures,
        started=started,
        machine=machine,
        details={"pipeline": pipeline, "exact_times": exact, "settings": DEFAULTS.describe()},
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
