"""An ensemble's parts: its statistics, its keypoint map, its estimator, its settings.

The statistics are checked against NumPy's NaN-aware functions and Lightning Pose's definition of
the ensemble std dev; the estimator runs real models (the bundled one and perturbed copies of it)
and must give, frame by frame, what each model gives alone, combined.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.errors import ModelError
from deeplabstream.hardware.simulator.arena import ArenaParams, SimulatedArena
from deeplabstream.pose.ensemble.causal import CausalEks, smoothing_parameters
from deeplabstream.pose.ensemble.members import (
    check_member,
    keypoint_map_text,
    mapping_problem,
    member_rows,
    parse_keypoint_map,
)
from deeplabstream.pose.ensemble.statistics import (
    EKS_NAN_VARIANCE,
    eks_observation_variance,
    ensemble_frame,
)
from deeplabstream.pose.loading import load_model
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.ensemble import EnsembleEstimator
from deeplabstream.pose.runtime.estimator import NetworkEstimator
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import resolve_cameras
from tests.support.ensembles import perturbed_member, renamed_member
from tests.support.files import write_settings


def _members(seed: int = 0, models: int = 5, keypoints: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    members = np.empty((models, keypoints, 3))
    members[..., :2] = rng.normal(100.0, 5.0, (models, keypoints, 2))
    members[..., 2] = rng.uniform(0.2, 1.0, (models, keypoints))
    return members


@pytest.mark.parametrize("models", [2, 3, 4, 5])
def test_the_statistics_are_numpys_median_variance_and_lightning_poses_std(models: int) -> None:
    members = _members(models, models)
    members[0, 1, :2] = np.nan  # model 1 did not place keypoint 2
    members[:, 3, :2] = np.nan  # no model placed keypoint 4
    members[1:, 2, :2] = np.nan  # only model 1 placed keypoint 3
    frame = ensemble_frame(members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's all-NaN slices
        median = np.nanmedian(members[..., :2], axis=0)
        variance = np.nanvar(members[..., :2], axis=0)
    np.testing.assert_allclose(frame.keypoints[:, :2], median, equal_nan=True)
    np.testing.assert_allclose(frame.variance, variance, equal_nan=True)
    np.testing.assert_allclose(frame.keypoints[:, 2], members[..., 2].mean(axis=0))
    # Lightning Pose: np.std over the models, the mean of x and y (where two or more placed it)
    std = np.std(members[:, 0, :2], axis=0).mean()
    assert frame.std[0] == pytest.approx(std)
    assert np.isnan(frame.std[2]) and np.isnan(frame.std[3])
    assert np.isnan(frame.std[1]) == (models == 2)


def test_the_eks_observation_variance_follows_the_package() -> None:
    members = _members(3, 3, 2)
    members[:, 1, :2] = np.nan
    frame = ensemble_frame(members)
    mean_likelihood = members[..., 2].sum(axis=0) / 3
    plain = eks_observation_variance(members, "var")
    weighted = eks_observation_variance(members, "confidence_weighted_var")
    np.testing.assert_allclose(plain[0], frame.variance[0])
    np.testing.assert_allclose(weighted[0], frame.variance[0] / mean_likelihood[0])
    assert (plain[1] == EKS_NAN_VARIANCE).all() and (weighted[1] == EKS_NAN_VARIANCE).all()
    single = eks_observation_variance(members[:1], "var")
    np.testing.assert_allclose(single[:, 0], 1.0 / members[0, :, 2])


def test_the_causal_filter_starts_at_the_first_median_and_predicts_through_a_gap() -> None:
    members = np.stack([_members(n, 3, 2) for n in range(4)])
    members[2, :, 1, :2] = np.nan  # keypoint 2 not placed in frame 3
    causal = CausalEks(2, [2.0, 3.0], "var")
    steps = causal.run(members)
    first = ensemble_frame(members[0]).keypoints[:, :2]
    np.testing.assert_allclose(steps[0].mean, first)  # no prior: it starts where the ensemble is
    assert (steps[2].mean[1] == steps[1].mean[1]).all()  # a gap: kept where it was ...
    np.testing.assert_allclose(steps[2].variance[1], steps[1].variance[1] + 3.0)  # ... less sure
    causal.reset()
    np.testing.assert_allclose(
        causal.update(members[1]).mean, ensemble_frame(members[1]).keypoints[:, :2]
    )
    with pytest.raises(ValueError, match="2 values for 3 keypoints"):
        smoothing_parameters([1.0, 2.0], 3)
    with pytest.raises(ValueError, match="> 0"):
        smoothing_parameters(0.0, 3)


def test_a_keypoint_map_reads_other_names_in_the_ensembles_order() -> None:
    pairs = parse_keypoint_map("snout=nose, tailbase = tail_base")
    assert pairs == (("snout", "nose"), ("tailbase", "tail_base"))
    assert parse_keypoint_map(keypoint_map_text(pairs)) == pairs
    for bad in ("snout", "snout=", "a b=c", "snout=nose, snout=ear"):
        with pytest.raises(ValueError):
            parse_keypoint_map(bad)
    ensemble = ("nose", "ear", "tail_base")
    assert mapping_problem(ensemble, ("tailbase", "ear", "snout", "paw"), pairs) == ""
    missing = mapping_problem(ensemble, ("snout", "ear"), pairs)
    assert "no keypoint tail_base" in missing and "KEYPOINT_MAP" in missing
    assert "two of its keypoints" in mapping_problem(ensemble, ("snout", "nose", "ear"), pairs)
    member = load_model(None)
    renamed = dataclasses.replace(member, keypoints=("tailbase", "ear", "snout"), skeleton=())
    assert member_rows(ensemble, renamed, pairs, "model 2").tolist() == [2, 1, 0]
    with pytest.raises(ModelError, match="model 2: it has no keypoint"):
        member_rows(ensemble, renamed, (), "model 2")
    with pytest.raises(ModelError, match="several animals"):
        check_member(load_model(_PAIR_MODEL), "model 1")


_PAIR_MODEL = Path(load_model(None).model_file).parent.parent / "arena-pair"


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("members")
    return [perturbed_member(folder / "a", 1, 0.02), perturbed_member(folder / "b", 2, 0.3)]


def test_the_estimator_runs_each_model_on_the_batch_and_combines_them(members: list[Path]) -> None:
    arena = SimulatedArena(ArenaParams(seed=5))
    frames = []
    for _ in range(3):
        frame = np.empty((480, 640, 3), np.uint8)
        arena.render_next(frame)
        frames.append(frame)
    alone = []
    for path in (None, *members):
        description = load_model(path)
        backend = open_backend(description, "onnxruntime", "cpu", 1)
        alone.append(NetworkEstimator(description, backend, frames[0].shape, max_batch=3))
    expected = np.stack([estimator.estimate(frames) for estimator in alone], axis=1)
    ensemble = EnsembleEstimator(alone[0].description, alone, [np.arange(6)] * 3)
    found = ensemble.estimate_animals(frames, [False] * 3, ["cam"] * 3)
    assert found.shape == (3, 1, 6, 3)
    np.testing.assert_array_equal(ensemble.last_members, expected)
    for index in range(3):
        frame = ensemble_frame(expected[index])
        np.testing.assert_array_equal(found[index, 0], frame.keypoints)
        np.testing.assert_array_equal(ensemble.last_frames[index].std, frame.std)
    assert set(ensemble.last_stage_timings) == {"model1", "model2", "model3"}
    model_time = ensemble.last_timings["inference"] + ensemble.last_timings["decode"]
    assert sum(ensemble.last_stage_timings.values()) == pytest.approx(model_time)


def test_model_path_names_several_models_as_an_ensemble(
    tmp_path: Path, members: list[Path]
) -> None:
    text = (
        "[Camera top]\nSOURCE = synthetic\n\n"
        f"[Camera side]\nSOURCE = synthetic\nMODEL_PATH = {members[0]}\n"
        "KEYPOINT_MAP = snout=nose\n\n"
        f"[Pose]\nMODEL_PATH = {members[0]}; {members[1]}\n    models/third\n"
    )
    plan = resolve_cameras(load_settings(write_settings(tmp_path, text)))
    top, side = plan.cameras
    assert top.ensemble == (members[0], members[1], tmp_path / "models/third")
    assert top.model == members[0] and top.models == top.ensemble
    assert side.ensemble == () and side.models == (members[0],)
    assert side.keypoint_map == (("snout", "nose"),) and top.keypoint_map == ()
    assert top.model_key != side.model_key
    assert plan.models == (members[0], members[1], tmp_path / "models/third")


def test_a_renamed_models_keypoints_are_mapped_before_the_start(
    tmp_path: Path, members: list[Path]
) -> None:
    from deeplabstream.live.session.preflight import check_before_start

    renamed = renamed_member(perturbed_member(tmp_path / "lp", 3, 0.02), {"nose": "snout"})
    base = f"[Camera top]\nSOURCE = synthetic\n\n[Pose]\nMODEL_PATH = {members[0]}; {renamed}\n"
    problems = check_before_start(load_settings(write_settings(tmp_path, base)), True, False)
    assert len(problems) == 1 and "model 2" in problems[0] and "no keypoint nose" in problems[0]
    assert "KEYPOINT_MAP" in problems[0]
    mapped = base + "KEYPOINT_MAP = snout=nose\n"
    assert check_before_start(load_settings(write_settings(tmp_path, mapped)), True, False) == []
    cropped = mapped + "DYNAMIC_CROP = on\n"
    (problem,) = check_before_start(load_settings(write_settings(tmp_path, cropped)), True, False)
    assert "ensemble of 2 models" in problem and "DYNAMIC_CROP = off" in problem
    pair = f"[Camera top]\nSOURCE = synthetic\n\n[Pose]\nMODEL_PATH = {members[0]}; {_PAIR_MODEL}\n"
    (problem,) = check_before_start(load_settings(write_settings(tmp_path, pair)), True, False)
    assert "model 2" in problem and "several animals" in problem
