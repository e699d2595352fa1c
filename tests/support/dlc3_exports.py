"""What the parity tests of DeepLabCut 3.0 exports share.

The exports themselves (27-195 MB) are not in the repository: a test module names the
environment variable that points at one and the fixture folder whose README says how it was
made, and its tests skip with that reason when the file is absent. Their predictions by
DeepLabCut are in the fixture folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import PoseEstimator


def converted_models_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yield a fresh folder for the converted graphs, set as the conversion cache meanwhile."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def export_or_skip(env: str, default: Path, what: str, fixture: Path) -> Path:
    """Return the export ``$env`` (else ``default``) names; skip, saying why, if it is absent."""
    path = Path(os.environ.get(env, default))
    if not path.is_file():
        pytest.skip(
            f"the {what} export is not here ({path}; set {env}): see "
            f"{fixture / 'README.md'} for how it was made"
        )
    return path


def labelled_images_or_skip(folder: Path, names: list[str]) -> list[Path]:
    """Return the labelled PNGs ``names`` in ``folder``; skip when any is missing."""
    paths = [folder / name for name in names]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"the labelled PNGs are not here ({folder})")
    return paths


def estimate_animals(
    description: ModelDescription, frames: list[np.ndarray], backend: str
) -> np.ndarray:
    """Every animal of each frame (BGR, as the cameras give them), one frame a batch."""
    opened = open_backend(description, backend, "cpu", threads=2)
    try:
        return PoseEstimator(description, opened, frames[0].shape, 1).estimate_animals(frames)
    finally:
        opened.close()


def worst_differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Largest differences where both have a keypoint, and where only one of them has it."""
    assert ours.shape == theirs.shape
    same_missing = np.isnan(ours[..., 0]) == np.isnan(theirs[..., 0])
    seen = ~np.isnan(theirs[..., 0]) & ~np.isnan(ours[..., 0])
    delta = np.abs(ours - theirs)
    return {
        "dx": float(delta[..., 0][seen].max()),
        "dy": float(delta[..., 1][seen].max()),
        "dlikelihood": float(delta[..., 2][seen].max()),
        "keypoints_compared": int(seen.sum()),
        "missing_disagree": int((~same_missing).sum()),
    }


def assert_within(worst: dict[str, float], xy: float, likelihood: float) -> None:
    """Assert the same missing keypoints and the others within ``xy`` px and ``likelihood``."""
    assert worst["missing_disagree"] == 0
    assert worst["dx"] <= xy and worst["dy"] <= xy
    assert worst["dlikelihood"] <= likelihood
