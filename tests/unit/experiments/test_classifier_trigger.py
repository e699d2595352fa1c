"""The ``classifier`` trigger: bouts, configs, the shipped classifier, live == offline."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.app.display.overlay import draw_shape
from deeplabstream.behaviour.features import features_of
from deeplabstream.experiments.config.parse import ExperimentConfigError, parse_experiment_config
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers import Label, make_trigger
from deeplabstream.experiments.triggers.classifier import (
    BoutFilter,
    ClassifierTrigger,
    bout_decisions,
)
from deeplabstream.hardware.simulator.arena import (
    BEHAVIOUR_NAMES,
    KEYPOINT_NAMES,
    ArenaParams,
    keypoints_from_poses,
    simulate_behaviours,
)
from tests.support.paths import PACKAGE_ROOT

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SHIPPED = PACKAGE_ROOT / "experiments" / "classifiers" / "arena-behaviours.onnx"
FPS = 30.0


def test_a_bout_starts_at_the_threshold_ends_below_release_and_counts_only_when_long():
    bouts = BoutFilter(threshold=0.6, release=0.4, min_bout_s=1.0)
    times = np.arange(0, 5, 0.5)
    #            0.0  0.5  1.0  1.5  2.0  2.5  3.0  3.5   4.0  4.5
    p = np.array([0.7, 0.5, 0.5, 0.3, 0.6, 0.5, 0.45, 0.9, None, 0.9], dtype=float)
    decided = bout_decisions(p, times, bouts)
    # 0.0-1.0: a bout (0.5 stays above release) from 0.0, long enough at 1.0; 0.3 ends it.
    # 2.0-3.5: a new bout from 2.0, true from 3.0; unknown (NaN) at 4.0 ends it; 4.5 starts anew.
    expected = [False, False, True, False, False, False, True, True, False, False]
    assert decided.tolist() == expected


def test_bad_bout_settings_are_refused_with_their_names():
    with pytest.raises(ValueError, match="release"):
        BoutFilter(threshold=0.5, release=0.7)
    with pytest.raises(ValueError, match="threshold"):
        BoutFilter(threshold=1.5)
    with pytest.raises(ValueError, match="min_bout_s"):
        BoutFilter(threshold=0.5, min_bout_s=-1)


def _copy_model(folder: Path) -> Path:
    for suffix in (".onnx", ".json", ".metrics.json"):
        source = SHIPPED.with_name(SHIPPED.name.removesuffix(".onnx") + suffix)
        shutil.copy(source, folder / source.name)
    return folder / SHIPPED.name


CONFIG = """
[Trigger frozen]
KIND = classifier
MODEL = {model}
BEHAVIOUR = {behaviour}
MIN_BOUT_S = 2
[Stimulation light]
DEVICE = laser
COMMAND = pulse
DURATION = 0.1
[Rule go]
WHEN = frozen
DO = light
"""


def test_a_relative_model_path_is_taken_from_the_configs_folder(tmp_path):
    (tmp_path / "models").mkdir()
    model = _copy_model(tmp_path / "models")
    config_file = tmp_path / "exp.ini"
    text = CONFIG.format(model="models/" + model.name, behaviour="freezing")
    config = parse_experiment_config(text, config_file.resolve())
    assert Path(config.triggers["frozen"].params["model"]) == model


def test_a_missing_model_or_an_unknown_behaviour_names_the_key_and_what_to_do(tmp_path):
    config_file = tmp_path / "exp.ini"
    config_file.write_text("")
    with pytest.raises(ExperimentConfigError) as missing:
        parse_experiment_config(CONFIG.format(model="nowhere.onnx", behaviour="freezing"),
                                config_file)  # fmt: skip
    assert "[Trigger frozen] MODEL" in str(missing.value)
    assert "deeplabstream-train-behaviour" in str(missing.value)
    with pytest.raises(ExperimentConfigError) as unknown:
        parse_experiment_config(CONFIG.format(model=SHIPPED, behaviour="sleeping"), config_file)
    message = str(unknown.value)
    assert "[Trigger frozen] BEHAVIOUR" in message and "freezing, grooming" in message


def _session(seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True keypoints (T, 6, 3), times and labels of a simulated session with behaviours."""
    params = ArenaParams(seed=seed, framerate=FPS, behaviours=BEHAVIOUR_NAMES)
    poses, labels = simulate_behaviours(params, round(seconds * FPS))
    xy = keypoints_from_poses(poses, params.body_length_px)
    keypoints = np.concatenate([xy, np.ones((*xy.shape[:2], 1))], axis=2)
    return keypoints, np.arange(len(poses)) / FPS, labels


def test_the_live_trigger_decides_as_the_offline_classifier_on_the_same_frames():
    keypoints, times, labels = _session(seed=321, seconds=90)
    trigger = make_trigger(
        "classifier", {"model": str(SHIPPED), "behaviour": "freezing", "threshold": "0.6",
                       "release": "0.4", "min_bout_s": "2"},
    )  # fmt: skip
    assert isinstance(trigger, ClassifierTrigger)
    every = np.ones(len(times), bool)
    every[np.random.default_rng(0).random(len(times)) < 0.2] = False  # frames skipped live
    live = [
        trigger.update(Observation(float(t), "arena", i, keypoints[i], KEYPOINT_NAMES))
        for i, t in enumerate(times) if every[i]
    ]  # fmt: skip
    classifier = trigger.classifier
    kept, kept_times = keypoints[every], times[every]
    probabilities = classifier.probabilities_of(
        features_of(kept, kept_times, classifier.spec, classifier.pixels_per_mm)
    )[:, classifier.behaviours.index("freezing")]
    probabilities[kept_times - kept_times[0] < classifier.spec.window_s] = math.nan
    offline = bout_decisions(probabilities, kept_times, BoutFilter(0.6, 0.4, 2.0))
    assert np.array_equal(np.array(live), offline)
    # ... and what it decides is freezing (true keypoints here, the model's poses in training).
    assert offline.sum() > 60
    assert np.mean(labels[every][offline] == "freezing") > 0.9


def test_its_shape_writes_the_current_behaviour_beside_the_animal_and_the_log_its_probability():
    keypoints, times, _ = _session(seed=5, seconds=3)
    trigger = make_trigger("classifier", {"model": str(SHIPPED), "behaviour": "rearing"})
    assert trigger.shapes() == [] and trigger.measurement() == "rearing p=unknown"
    for i, t in enumerate(times):
        trigger.update(Observation(float(t), "arena", i, keypoints[i], KEYPOINT_NAMES))
    (label,) = trigger.shapes()
    assert isinstance(label, Label)
    behaviour, probability = label.text.split()
    assert behaviour in BEHAVIOUR_NAMES and 0 <= float(probability) <= 1
    assert trigger.measurement().startswith("rearing p=0.") or "p=1.00" in trigger.measurement()
    canvas = np.zeros((480, 640, 3), np.uint8)
    draw_shape(canvas, label, (255, 255, 255))
    assert canvas.any()


def test_a_pose_model_without_the_classifiers_keypoints_is_named():
    trigger = make_trigger("classifier", {"model": str(SHIPPED), "behaviour": "freezing"})
    names = ("snout", "tailbase")
    with pytest.raises(ValueError, match="needs keypoint"):
        trigger.update(Observation(0.0, "arena", 0, np.zeros((2, 3)), names))
