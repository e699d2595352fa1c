"""The Ensemble Kalman Smoother: the package itself offline, its forward filter live.

Checked against the ``ensemble-kalman-smoother`` package's own single-camera smoother
(``eks.singlecam_smoother.ensemble_kalman_smoother_singlecam``), called here on the same
predictions:

- ``deeplabstream-eks``'s file is the package's output, number for number;
- the live causal filter (pose/ensemble/causal.py), run over a stretch with the package's model
  and parameters (its fitted ``s``, its first-frame prior), gives at the stretch's last frame the
  package's smoothed value there: the smoother's backward pass changes nothing at the last frame.
  The package computes in float32 (JAX's default), the filter in float64: equal to float32's
  precision.

The package's calls take seconds each (JAX compiles its functions for each stretch length): the
two tests that call it are slow tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.offline.eks.command import main as eks_command
from deeplabstream.outputs.pose.files import EKS_SUFFIX, ExactPoseWriter
from deeplabstream.pose.ensemble.causal import CausalEks, package_prior
from tests.support.lazy_modules import installed, lazy

# eks imports JAX (about 4 s of CPU): at the first test that reads it, not while every
# pytest-xdist worker collects this module.
pytestmark = installed("eks")
eks_core = lazy("eks.singlecam_smoother")
eks_markers = lazy("eks.marker_array")

KEYPOINTS = ("nose", "tail_base")


def _stretch(frames: int, models: int = 3, seed: int = 4) -> np.ndarray:
    """(T, M, K, 3): an animal's random walk seen by ``models`` noisy models."""
    rng = np.random.default_rng(seed)
    truth = 200.0 + np.cumsum(rng.normal(0.0, 3.0, (frames, len(KEYPOINTS), 2)), axis=0)
    members = np.empty((frames, models, len(KEYPOINTS), 3))
    members[..., :2] = truth[:, None] + rng.normal(0.0, 2.0, (frames, models, len(KEYPOINTS), 2))
    members[..., 2] = rng.uniform(0.4, 1.0, (frames, models, len(KEYPOINTS)))
    members[frames // 3, 0, 1, :2] += 40.0  # one model's blunder: a frame of large variance
    return members


def package_smoother(
    members: np.ndarray, smooth_param: float | list[float] | None, var_mode: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The package's own call on ``members`` (T, M, K, 3)."""
    array = np.ascontiguousarray(np.transpose(members, (1, 0, 2, 3))[:, None])
    table, parameters = eks_core.ensemble_kalman_smoother_singlecam(
        eks_markers.MarkerArray(array, data_fields=["x", "y", "likelihood"]),
        list(KEYPOINTS),
        smooth_param=smooth_param,
        var_mode=var_mode,
    )
    return table, np.asarray(parameters)


def _last(table: pd.DataFrame, keypoint: str, coords: tuple[str, ...]) -> np.ndarray:
    row = table.iloc[-1]
    return np.array([row[(row.index[0][0], keypoint, coord)] for coord in coords])


@pytest.mark.slow  # the package compiles its JAX functions for each stretch: about 10 s a call
@pytest.mark.parametrize("var_mode", ["confidence_weighted_var", "var"])
def test_the_causal_filter_at_a_stretchs_last_frame_is_the_packages_smoother(var_mode: str) -> None:
    members = _stretch(80)
    # The whole stretch with the package's fitted s per keypoint, then a shorter one with it.
    whole, fitted = package_smoother(members, None, var_mode)
    short, _ = package_smoother(members[:15], fitted.tolist(), var_mode)
    for end, table in ((80, whole), (15, short)):
        stretch = members[:end]
        mean, variance = package_prior(stretch)
        steps = CausalEks(len(KEYPOINTS), fitted, var_mode, mean, variance).run(stretch)
        last = steps[-1]
        for k, keypoint in enumerate(KEYPOINTS):
            smoothed = _last(table, keypoint, ("x", "y"))
            posterior = _last(table, keypoint, ("x_posterior_var", "y_posterior_var"))
            observation = _last(table, keypoint, ("x_ens_var", "y_ens_var"))
            np.testing.assert_allclose(last.mean[k], smoothed, rtol=0, atol=2e-3)
            np.testing.assert_allclose(last.variance[k], posterior, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(last.observation_variance[k], observation, rtol=1e-4)
    # Before the last frame the filter has not seen the frames after: it is not the smoother.
    mean, variance = package_prior(members)
    filtered = CausalEks(len(KEYPOINTS), fitted, var_mode, mean, variance).run(members)[40]
    middle = whole.iloc[40]
    assert not math.isclose(filtered.mean[0, 0], middle[(middle.index[0][0], "nose", "x")])


@pytest.mark.slow  # two calls of the package, each fitting s
def test_deeplabstream_eks_writes_the_packages_own_output(tmp_path: Path, capsys) -> None:
    members = _stretch(60, seed=9)
    frames = np.arange(100, 160)
    frames_written = np.delete(frames, [7, 30])  # two frames the live session skipped
    writer = ExactPoseWriter(tmp_path / "top.pose_exact.csv", KEYPOINTS, members=3)
    kept = np.delete(members, [7, 30], axis=0)
    for index, frame_members in zip(frames_written, kept, strict=True):
        median = np.median(frame_members[..., :2], axis=0)
        ensemble = np.concatenate([median, frame_members[..., 2:].mean(axis=0)], axis=1)
        writer.write(int(index), ensemble, members=frame_members)
    writer.close()
    assert eks_command([str(tmp_path)]) == 0
    assert "EKS_SMOOTH_PARAM = " in capsys.readouterr().out
    ours = pd.read_csv(tmp_path / f"top{EKS_SUFFIX}", header=[0, 1, 2], index_col=0)
    expected, _ = package_smoother(kept, None, "confidence_weighted_var")
    assert list(ours.index) == list(frames)  # one row per frame index, as the pose CSV
    analysed = ours.loc[frames_written]
    assert list(analysed.columns) == list(expected.columns)  # the package's own columns
    np.testing.assert_array_equal(analysed.to_numpy(), expected.to_numpy())
    assert ours.loc[[107, 130]].isna().all().all()  # frames not analysed: no smoothed value


def test_without_an_ensemble_the_command_says_what_to_do(tmp_path: Path, capsys) -> None:
    writer = ExactPoseWriter(tmp_path / "top.pose_exact.csv", KEYPOINTS)
    writer.write(0, np.ones((2, 3)))
    writer.close()
    assert eks_command([str(tmp_path)]) == 2
    assert "no camera ran an ensemble" in capsys.readouterr().err
