"""Several animals: the multi-animal path's rate, identity switches and keypoint error.

Run ``python -m benchmarks.multi_animal [--seconds S] [--model PATH] [--smoke]``.

All cases run on the simulated arena (640 x 480, 30 fps), seeds the models never trained on,
one frame at a time as the live loop does (batch 1):

* **rate**: two mice moving freely, every frame through the whole multi-animal path of the
  inference worker: pre-processing, the two-mouse model (``pose/bundled/arena-pair``, this
  project's bottom-up model), grouping into animals, and the identity tracker. Baseline: the
  bundled single-animal model's path on the same frames in the same run (one animal, no
  grouping, no tracker). Goal: 30 fps for two animals.
* **identities**: two mice crossing paths (``SOCIAL = cross``: bodies overlapping at every
  crossing) for ``--seconds`` of video; the tracker's identities against the simulator's, with
  identity switches counted the MOT way (:mod:`tracking.switches`) and scaled to 10 minutes.
  Goal: at most 1 per 10 minutes.
* **keypoint error**: the median distance of every visible true keypoint to its tracked keypoint,
  on the crossing and on the free frames, with each identity kept from its first match (so a
  switch shows as error: what a closed loop lives with), and on the free frames matched anew
  each frame (the model's accuracy alone). Baseline: the single-animal model on one mouse moving
  freely over the same number of frames. Goal: within 1 px of the baseline.
* The same run also counts the switches of two mice moving freely (``SOCIAL = free``: random
  walks that touch and pass now and then), no goal.
* **SLEAP**: the sleap-nn flies export on its 1024 x 1024 clip (``../shared/data/sleap-flies``,
  when present), per frame: a real multi-animal model's cost on this machine (no baseline).

``--smoke`` runs a few frames and saves nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from core.figures import Figure
from core.machine import machine_description
from pose.backends import open_backend
from pose.estimator import PoseEstimator
from pose.loading import BUNDLED_MODEL, load_model
from simulator.arena import ArenaParams
from simulator.herd import HerdParams, SimulatedHerd
from tracking.switches import count_identity_switches, keypoint_errors
from tracking.tracker import IdentityTracker

PAIR_MODEL = BUNDLED_MODEL.parent / "arena-pair"
SLEAP_EXPORT = (
    Path(__file__).resolve().parents[2] / "shared/data/sleap-flies/onnx/flies_bottomup_tiny_onnx"
)
SLEAP_CLIP = SLEAP_EXPORT.parents[1] / "inference" / "flies_clip_first100.mp4"
SEED = 4242  # an arena neither model trained on
FPS = 30.0
RATE_FRAMES = 600
DEFAULT_SECONDS = 120.0
SMOKE_FRAMES = 30
THREADS = 2


def _herd(animals: int, social: str) -> SimulatedHerd:
    return SimulatedHerd(HerdParams(ArenaParams(seed=SEED, framerate=FPS), animals, social))


def _estimator(model: Path | None, shape: tuple[int, ...], max_animals: int) -> PoseEstimator:
    description = load_model(model, frame_size=shape[:2], max_animals=max_animals)
    if description.any_input_size:
        description = description.at_input_size(*shape[:2])
    backend = open_backend(description, "onnxruntime", "cpu", THREADS)
    backend.warm_up()
    return PoseEstimator(description, backend, shape, 1)


def _analyse(
    estimator: PoseEstimator,
    herd: SimulatedHerd,
    count: int,
    tracker: IdentityTracker | None,
    raw: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Render and analyse ``count`` frames one by one, as the worker does (frames not kept).

    Returns the analysed animals (T, A, K, 3), the truth (T, B, 6, 2) with keypoints hidden
    under another mouse NaN (nothing to score there), and each frame's analysis time (ns).
    ``raw``, when given, gets each frame's instances as the model gave them (before the tracker).
    """
    frame = np.empty(herd.frame_shape, np.uint8)
    out, truth, took = [], [], []
    for index in range(count):
        _, true = herd.render_next(frame)
        started = time.perf_counter_ns()
        animals = estimator.estimate_animals([frame])[0]
        if raw is not None:
            raw.append(animals)
        if tracker is not None:
            animals = tracker.update(index / FPS, animals)
        took.append(time.perf_counter_ns() - started)
        out.append(animals)
        xy = true[..., :2].astype(np.float64)
        xy[true[..., 2] < 0.5] = np.nan
        truth.append(xy)
    return np.stack(out), np.stack(truth), took


def _run_frames(
    estimator: PoseEstimator, frames: list[np.ndarray], tracker: IdentityTracker | None
) -> list[int]:
    """Analyse decoded frames one by one; return each frame's analysis time (ns)."""
    took = []
    for index, frame in enumerate(frames):
        started = time.perf_counter_ns()
        animals = estimator.estimate_animals([frame])[0]
        if tracker is not None:
            tracker.update(index / FPS, animals)
        took.append(time.perf_counter_ns() - started)
    return took


def _switches(tracked: np.ndarray, truth: np.ndarray, frames: int) -> dict[str, Any]:
    """Identity switches of one scenario, and per 10 minutes of video."""
    report = count_identity_switches(tracked, truth)
    minutes = frames / FPS / 60
    return {
        "switches": report.switches,
        "switch_frames": list(report.switch_frames),
        "minutes": round(minutes, 2),
        "per_10_min": round(report.switches * 10 / minutes, 2),
        "animal_frames_matched": report.animal_frames_matched,
        "animal_frames": report.animal_frames,
    }


def _median_error(tracked: np.ndarray, truth: np.ndarray, per_frame: bool = False) -> float:
    """Median keypoint error; ``per_frame``: matched anew each frame (pose accuracy alone)."""
    errors = keypoint_errors(tracked, truth, per_frame=per_frame)
    return float(np.nanmedian(errors))


def _sleap_case(frames: int) -> dict[str, Any] | None:
    """Per-frame cost of the sleap-nn flies export on its clip; None without ../shared."""
    if not SLEAP_CLIP.is_file():
        return None
    import av

    with av.open(str(SLEAP_CLIP)) as video:
        images = [f.to_ndarray(format="bgr24") for f in video.decode(video=0)][:frames]
    estimator = _estimator(SLEAP_EXPORT, images[0].shape, 2)
    tracker = IdentityTracker(2, len(estimator.description.keypoints), min_likelihood=0.1)
    took = _run_frames(estimator, images, tracker)
    return {"frame_ms": summarize_ms(took[5:]), "frames": len(images)}


def _figures(cases: dict[str, Any]) -> list[Figure]:
    pair, single = cases["rate"]["two_mice_ms"], cases["rate"]["one_mouse_ms"]
    figures = [
        Figure("rate.frame_p50_ms", "frame, p50", pair["p50"], single["p50"], unit="ms",
               compare=False),
        Figure("rate.frame_p99_ms", "frame, p99", pair["p99"], single["p99"], unit="ms",
               compare=False),
        Figure("rate.fps", "analysed per second (1 / mean)", round(1000 / pair["mean"], 1),
               round(1000 / single["mean"], 1), unit="fps", higher_is_better=True,
               goal="two animals >= 30 fps", compare=False),
        Figure("identities.switches_per_10_min", "identity switches per 10 min (crossing)",
               cases["identities"]["cross"]["per_10_min"], None, goal="<= 1", compare=False),
        Figure("identities.free_switches_per_10_min", "identity switches per 10 min (free)",
               cases["identities"]["free"]["per_10_min"], None, compare=False),
        Figure("error.median_px", "median keypoint error (crossing)",
               cases["error"]["two_mice_px"], cases["error"]["one_mouse_px"], unit="px",
               goal="within 1 px of one mouse", compare=False),
        Figure("error.free_median_px", "median keypoint error (free)",
               cases["error"]["two_mice_free_px"], cases["error"]["one_mouse_px"], unit="px",
               goal="within 1 px of one mouse", compare=False),
        Figure("error.matched_median_px", "median keypoint error (free, matched each frame)",
               cases["error"]["two_mice_matched_each_frame_px"], cases["error"]["one_mouse_px"],
               unit="px", goal="within 1 px of one mouse", compare=False),
    ]  # fmt: skip
    sleap = cases.get("sleap")
    if sleap is not None:
        figures.append(
            Figure("sleap.frame_p50_ms", "sleap-nn flies 1024x1024, frame p50",
                   sleap["frame_ms"]["p50"], None, unit="ms", compare=False)
        )  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and (unless ``--smoke``) save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="seconds of crossing video for the identity figures",
    )
    parser.add_argument("--model", type=Path, default=PAIR_MODEL, help="the two-mouse model")
    parser.add_argument("--smoke", action="store_true", help="a few frames; save nothing")
    parser.add_argument("--quick", action="store_true", help="a quarter of the frames")
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="also save the model's untracked instances and the truth of the crossing and free "
        "runs to this .npz (arrays <social>_raw (T, A, K, 3) and <social>_truth (T, B, K, 2), "
        "fps), to work on the tracker offline",
    )
    args = parser.parse_args(argv)
    rate_frames, crossing_frames = RATE_FRAMES, round(args.seconds * FPS)
    if args.quick:
        rate_frames, crossing_frames = rate_frames // 4, crossing_frames // 4
    if args.smoke:
        rate_frames = crossing_frames = SMOKE_FRAMES
    started, machine = now_iso(), machine_description()
    wall = time.monotonic()

    shape = _herd(2, "free").frame_shape
    pair = _estimator(args.model, shape, 2)
    keypoints = len(pair.description.keypoints)
    single = _estimator(None, shape, 1)
    _, _, pair_ns = _analyse(pair, _herd(2, "free"), rate_frames, IdentityTracker(2, keypoints))
    _, _, single_ns = _analyse(single, _herd(2, "free"), rate_frames, None)
    rate = {"two_mice_ms": summarize_ms(pair_ns[10:]), "one_mouse_ms": summarize_ms(single_ns[10:])}
    cases: dict[str, Any] = {"rate": rate}

    identities: dict[str, Any] = {}
    tracked_by_social: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    dumped: dict[str, np.ndarray] = {}
    for social in ("cross", "free"):
        raw: list[np.ndarray] = []
        tracked, truth, _ = _analyse(
            pair, _herd(2, social), crossing_frames, IdentityTracker(2, keypoints), raw
        )
        identities[social] = _switches(tracked, truth, crossing_frames)
        tracked_by_social[social] = (tracked, truth)
        dumped[f"{social}_raw"], dumped[f"{social}_truth"] = np.stack(raw), truth
    if args.dump is not None:
        np.savez_compressed(
            args.dump,
            fps=np.float64(FPS),
            cross_raw=dumped["cross_raw"],
            cross_truth=dumped["cross_truth"],
            free_raw=dumped["free_raw"],
            free_truth=dumped["free_truth"],
        )
        print(f"dumped {args.dump}")
    alone, lone_truth, _ = _analyse(single, _herd(1, "free"), crossing_frames, None)
    cases["identities"] = identities
    cases["error"] = {
        "two_mice_px": round(_median_error(*tracked_by_social["cross"]), 3),
        "two_mice_free_px": round(_median_error(*tracked_by_social["free"]), 3),
        "two_mice_matched_each_frame_px": round(
            _median_error(*tracked_by_social["free"], per_frame=True), 3
        ),
        "one_mouse_px": round(_median_error(alone, lone_truth), 3),
    }
    sleap = _sleap_case(SMOKE_FRAMES if args.smoke else 100)
    if sleap is not None:
        cases["sleap"] = sleap

    figures = _figures(cases)
    print_table("Several animals (simulated arena, 640x480)", figures, machine,
                project="two mice", baseline="one mouse")  # fmt: skip
    for social, found in cases["identities"].items():
        print(f"identities, {social}: {found}")
    if args.smoke:
        return 0
    details = {
        "parameters": {
            "model": str(args.model),
            "seed": SEED,
            "rate_frames": rate_frames,
            "crossing_frames": crossing_frames,
            "threads": THREADS,
            "wall_s": round(time.monotonic() - wall, 1),
        },
        "cases": cases,
    }
    path = save_result("multi_animal", figures, started=started, machine=machine, details=details)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
