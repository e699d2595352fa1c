"""Behaviour features: the spec, the incremental window against the batch function."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.behaviour.features import (
    SPEC_FORMAT,
    FeatureSpec,
    FeatureSpecError,
    FeatureWindow,
    default_spec,
    features_of,
)
from tests.unit.behaviour.synthetic import KEYPOINTS


def test_spec_json_round_trip() -> None:
    spec = default_spec(KEYPOINTS, window_s=0.75, likelihood_threshold=0.6)
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict()["format"] == SPEC_FORMAT
    assert len(spec.feature_names()) == spec.n_features


def test_default_spec_for_mice_and_for_any_names() -> None:
    mouse = default_spec(KEYPOINTS)
    names = mouse.frame_feature_names()
    assert "distance(nose,tail_base)" in names
    assert "distance(left_ear,right_ear)" in names
    assert "angle(nose,body_center,tail_base)" in names
    assert "turn_rate(tail_base->nose)" in names
    assert "acceleration(body_center)" in names
    assert mouse.window_s == 1.0
    fly = default_spec(["head", "thorax", "abdomen", "wing_l", "wing_r"])
    assert "distance(head,abdomen)" in fly.frame_feature_names()
    assert "angle(head,thorax,abdomen)" in fly.frame_feature_names()
    single = default_spec(["centroid"])
    assert single.frame_feature_names() == ("speed(centroid)", "acceleration(centroid)")


def test_spec_errors_say_what_was_expected() -> None:
    with pytest.raises(FeatureSpecError, match="not among the keypoints"):
        FeatureSpec(keypoints=("a", "b"), distances=(("a", "c"),))
    with pytest.raises(FeatureSpecError, match="window_s"):
        FeatureSpec(keypoints=("a",), speeds=("a",), window_s=0.0)
    with pytest.raises(FeatureSpecError, match="aggregates"):
        FeatureSpec(keypoints=("a",), speeds=("a",), aggregates=("median",))
    data = default_spec(KEYPOINTS).to_dict()
    data["format"] = "deeplabstream-behaviour-features/99"
    with pytest.raises(FeatureSpecError, match="another version"):
        FeatureSpec.from_dict(data)


def _random_session(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = rng.choice([1, 2, 3, 40], size=n, p=[0.8, 0.12, 0.07, 0.01])  # skipped frames, a gap
    times = 12.5 + np.cumsum(steps) / 30.0
    points = np.empty((n, len(KEYPOINTS), 3))
    walk = rng.normal(0, 2.0, (n, 1, 2)).cumsum(axis=0)
    points[..., :2] = 300 + walk + rng.normal(0, 15, (n, len(KEYPOINTS), 2))
    points[..., 2] = rng.uniform(0, 1, (n, len(KEYPOINTS)))
    points[rng.random((n, len(KEYPOINTS))) < 0.03, 0] = np.nan
    points[rng.random(n) < 0.02] = np.nan  # frames with nothing at all
    return points, times


def test_incremental_window_equals_batch() -> None:
    spec = default_spec(KEYPOINTS, window_s=0.5, likelihood_threshold=0.3)
    points, times = _random_session(4000, seed=3)
    batch = features_of(points, times, spec, pixels_per_mm=2.5)
    window = FeatureWindow(spec, pixels_per_mm=2.5)
    live = np.array([window.update(points[i], float(times[i])) for i in range(len(times))])
    assert live.dtype == np.float32 and batch.dtype == np.float32
    assert batch.shape == (len(times), spec.n_features)
    assert np.isfinite(batch).all()
    scale = np.abs(batch).max(axis=0) + 1e-9
    np.testing.assert_allclose(live, batch, rtol=1e-4, atol=0)  # equal to float32 rounding
    assert (np.abs(live - batch) <= 1e-4 * np.maximum(np.abs(batch), 1e-6 * scale)).all()
    # The missing fractions see the missing keypoints.
    assert batch[:, -len(KEYPOINTS) :].mean() > 0.2


def test_window_fills_evicts_by_time_and_resets() -> None:
    spec = FeatureSpec(keypoints=("a",), speeds=("a",), window_s=1.0, aggregates=("mean", "max"))
    window = FeatureWindow(spec, pixels_per_mm=1.0)
    first = window.update(np.array([[0.0, 0.0, 1.0]]), 0.0)
    assert first is not None
    assert first.tolist() == [0.0, 0.0, 0.0]  # no speed yet: missing_value; nothing missing
    assert not window.full
    window.update(np.array([[10.0, 0.0, 1.0]]), 0.5)  # 20 mm/s
    out = window.update(np.array([[10.0, 0.0, 1.0]]), 1.0)  # 0 mm/s; frame at 0.0 leaves
    assert window.full and window.frames_in_window == 2
    assert out is not None and out[:2].tolist() == pytest.approx([10.0, 20.0])
    out = window.update(np.array([[10.0, 0.0, 0.1]]), 1.6)  # missing; the 20 mm/s leaves
    assert out is not None and out[:2].tolist() == pytest.approx([0.0, 0.0])
    assert out[2] == pytest.approx(0.5)
    window.reset()
    assert not window.full and window.frames_in_window == 0
    with pytest.raises(ValueError, match="shape"):
        window.update(np.zeros((2, 3)), 2.0)
    window.update(np.array([[0.0, 0.0, 1.0]]), 2.0)
    with pytest.raises(ValueError, match="increase"):
        window.update(np.array([[0.0, 0.0, 1.0]]), 2.0)


def test_speeds_use_the_real_time_between_frames() -> None:
    spec = FeatureSpec(keypoints=("a",), speeds=("a",), aggregates=("max",), window_s=1.0)
    points = np.array([[[0.0, 0.0, 1.0]], [[3.0, 4.0, 1.0]], [[6.0, 8.0, 1.0]]])
    times = np.array([0.0, 0.1, 0.3])  # a frame skipped before the third
    out = features_of(points, times, spec, pixels_per_mm=0.5)
    assert out[1, 0] == pytest.approx(100.0)  # 5 px = 10 mm in 0.1 s
    assert out[2, 0] == pytest.approx(100.0)  # max of 100 and 10 mm / 0.2 s = 50
    assert features_of(points[2:], times[2:], spec, 0.5)[0, 0] == 0.0
