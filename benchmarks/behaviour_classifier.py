"""Behaviour classifiers: the cost of a decision at every pose, and the classifier's scores.

Run ``python -m benchmarks.behaviour_classifier [--minutes M] [--smoke]``.

Sessions of the simulated arena with behaviours (walking, freezing, grooming, rearing) on seeds
the shipped classifier (``experiments/classifiers/arena-behaviours.onnx``, trained on seeds 1-6)
never saw, every frame analysed by the bundled pose model (:mod:`offline.training.behaviour_arena`),
30 fps:

* **cost per update**: the ``classifier`` trigger's work at each pose (the sliding feature
  window updated incrementally, the ONNX classifier, the bout filter), frame by frame. Baseline:
  the same features, classifier and filter with the window recomputed from its frames at every
  pose (what "no re-computing the window" saves). Goal: <= 1 ms p99.
* **scores**: precision, recall and F1 of each behaviour against the simulator's labels, with
  the offline classifier (batch features). Goal: F1 >= 0.9 for each behaviour.
* **live == offline**: the frames where the trigger's decision (``freezing`` for 2 s, the
  shipped experiment's) differs from the offline classifier's through the same filter. Goal: 0.

``--smoke`` runs a few seconds and saves nothing.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import deeplabstream
from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.behaviour.classifier import BehaviourClassifier
from deeplabstream.behaviour.features import features_of
from deeplabstream.core.figures import Figure
from deeplabstream.core.machine import machine_description
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.classifier import (
    BoutFilter,
    ClassifierTrigger,
    bout_decisions,
)
from deeplabstream.hardware.simulator.truth import read_behaviours
from deeplabstream.offline.training.behaviour_arena import FPS, open_estimator, write_session
from deeplabstream.outputs.pose.table import read_pose_table

MODEL = (
    Path(deeplabstream.__file__).resolve().parent
    / "experiments"
    / "classifiers"
    / "arena-behaviours.onnx"
)
SEEDS = (10, 11, 12)  # none trained on (1-6) nor used to score the training (7-9)
BEHAVIOUR, THRESHOLD, RELEASE, MIN_BOUT_S = "freezing", 0.6, 0.4, 2.0  # freezing_classifier.ini


def _session(seed: int, minutes: float, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundled model's keypoints (T, K, 3), frame times and true labels of one seed."""
    estimator = open_estimator(None, threads=2)
    pose, labels = write_session(seed, round(minutes * 60 * FPS), folder, estimator)
    table = read_pose_table(pose)
    truth = read_behaviours(labels)
    return table.points[:, 0], table.frames / FPS, truth.labels


def _live(
    trigger: ClassifierTrigger, keypoints: np.ndarray, times: np.ndarray, names: tuple[str, ...]
) -> tuple[np.ndarray, list[int]]:
    """The trigger at every frame: its decisions and the time each update took (ns)."""
    trigger.reset()
    decisions, took = [], []
    for index, (points, t) in enumerate(zip(keypoints, times, strict=True)):
        obs = Observation(float(t), "arena", index, points, names)
        started = time.perf_counter_ns()
        decisions.append(trigger.update(obs))
        took.append(time.perf_counter_ns() - started)
    return np.array(decisions), took


def _recomputed(classifier: BehaviourClassifier, keypoints: np.ndarray, times: np.ndarray
                ) -> list[int]:  # fmt: skip
    """Baseline: the window's features recomputed from its frames at every update (ns each)."""
    bouts, took, first = BoutFilter(THRESHOLD, RELEASE, MIN_BOUT_S), [], 0
    column, window = classifier.behaviours.index(BEHAVIOUR), classifier.spec.window_s
    for index, t in enumerate(times):
        started = time.perf_counter_ns()
        while times[first] <= t - window:
            first += 1
        features = features_of(keypoints[first : index + 1], times[first : index + 1],
                               classifier.spec, classifier.pixels_per_mm)[-1:]  # fmt: skip
        probability = float(classifier.probabilities_of(features)[0, column])
        bouts.update(probability if t - times[0] >= window else None, float(t))
        took.append(time.perf_counter_ns() - started)
    return took


def _offline(classifier: BehaviourClassifier, keypoints: np.ndarray, times: np.ndarray
             ) -> np.ndarray:  # fmt: skip
    """Offline probabilities (N, B): batch features, the same model; NaN before a full window."""
    probabilities = classifier.probabilities_of(
        features_of(keypoints, times, classifier.spec, classifier.pixels_per_mm)
    ).astype(np.float64)
    probabilities[times - times[0] < classifier.spec.window_s] = math.nan
    return probabilities


def _scores(
    behaviours: tuple[str, ...], predicted: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    scores = {}
    for behaviour in behaviours:
        hit = np.sum((predicted == behaviour) & (truth == behaviour))
        precision = hit / max(1, np.sum(predicted == behaviour))
        recall = hit / max(1, np.sum(truth == behaviour))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[behaviour] = {"precision": round(float(precision), 4),
                             "recall": round(float(recall), 4), "f1": round(float(f1), 4),
                             "support": int(np.sum(truth == behaviour))}  # fmt: skip
    return scores


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and (unless ``--smoke``) save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each seed's session")
    parser.add_argument("--smoke", action="store_true", help="a few seconds; save nothing")
    args = parser.parse_args(argv)
    minutes = 0.2 if args.smoke else args.minutes
    started, machine, wall = now_iso(), machine_description(), time.monotonic()
    trigger = ClassifierTrigger(MODEL, BEHAVIOUR, THRESHOLD, RELEASE, MIN_BOUT_S)
    classifier = trigger.classifier
    names = classifier.keypoints  # the bundled model's keypoints, in the classifier's order
    live_ns: list[int] = []
    baseline_ns: list[int] = []
    predicted, truth, differ, decided = [], [], 0, 0
    with tempfile.TemporaryDirectory() as folder:
        for seed in SEEDS:
            keypoints, times, labels = _session(seed, minutes, Path(folder))
            decisions, took = _live(trigger, keypoints, times, names)
            live_ns += took[30:]  # the first second fills the window
            baseline_ns += _recomputed(classifier, keypoints, times)[30:]
            probabilities = _offline(classifier, keypoints, times)
            column = classifier.behaviours.index(BEHAVIOUR)
            offline = bout_decisions(probabilities[:, column], times,
                                     BoutFilter(THRESHOLD, RELEASE, MIN_BOUT_S))  # fmt: skip
            differ += int(np.sum(offline != decisions))
            decided += int(offline.sum())
            full = ~np.isnan(probabilities[:, 0])
            best = np.argmax(np.nan_to_num(probabilities[full], nan=-1.0), axis=1)
            predicted.append(np.array(classifier.behaviours)[best])
            truth.append(labels[full])
    scores = _scores(classifier.behaviours, np.concatenate(predicted), np.concatenate(truth))
    live, baseline = summarize_ms(live_ns), summarize_ms(baseline_ns)
    figures = [
        Figure("update.p50_ms", "cost per update, p50", live["p50"], baseline["p50"], unit="ms"),
        Figure("update.p99_ms", "cost per update, p99", live["p99"], baseline["p99"], unit="ms",
               goal="<= 1 ms"),
        Figure("update.max_ms", "cost per update, max", live["max"], baseline["max"], unit="ms"),
        *(Figure(f"f1.{name}", f"F1 {name}", score["f1"], None, higher_is_better=True,
                 goal=">= 0.9", compare=False) for name, score in scores.items()),
        Figure("live_vs_offline.frames_differing", "frames where live != offline", differ, None,
               goal="0", compare=False),
    ]  # fmt: skip
    print_table("Behaviour classifier (simulated arena, bundled pose model)", figures, machine,
                project="incremental window", baseline="window recomputed")  # fmt: skip
    print(f"scores: {scores}; freezing decided on {decided} frames")
    if args.smoke:
        return 0
    details = {
        "parameters": {"model": str(MODEL), "seeds": list(SEEDS), "minutes": minutes, "fps": FPS,
                       "behaviour": BEHAVIOUR, "threshold": THRESHOLD, "release": RELEASE,
                       "min_bout_s": MIN_BOUT_S, "wall_s": round(time.monotonic() - wall, 1)},
        "scores": scores,
        "update_ms": live,
        "recomputed_ms": baseline,
        "frames_deciding_freezing": decided,
    }  # fmt: skip
    path = save_result("behaviour_classifier", figures, started=started, machine=machine,
                       details=details)  # fmt: skip
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
