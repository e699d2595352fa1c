"""What the parity tests of DeepLabCut 3.0 exports share.

The exports themselves (27-195 MB) are not in the repository: a test module names the
environment variable that points at one and the fixture folder whose README says how it was
made, and its tests skip with that reason when the file is absent. Their predictions by
DeepLabCut are in the fixture folders.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.estimator import NetworkEstimator


def converted_models_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yield a fresh folder for the converted graphs, set as the conversion cache meanwhile."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def run_converted_models_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yield the folder of converted graphs that this whole test run shares, set as the cache.

    For modules that test what a converted graph does, not the conversion: a graph one module
    (or one pytest-xdist worker) converted is read by the next instead of converted again (a
    conversion takes seconds to minutes). Two converting the same model at once each write a
    whole graph (``pose/formats/conversion.py`` replaces the file atomically).
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / "converted-shared"
    folder.mkdir(exist_ok=True)
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
    opened = open_backend(description, backend, "cpu", threads=1)
    try:
        return NetworkEstimator(description, opened, frames[0].shape, 1).estimate_animals(frames)
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


def frame_differences(mine: np.ndarray, want: np.ndarray) -> dict[str, float] | None:
    """Largest |differences| of two frames' animals (A, K, 3); None where NaNs differ."""
    if not np.array_equal(np.isnan(mine[..., 0]), np.isnan(want[..., 0])):
        return None
    seen = ~np.isnan(want[..., 0])
    delta = np.abs(mine[seen] - want[seen])
    if delta.size == 0:
        return {"dx": 0.0, "dy": 0.0, "dlikelihood": 0.0, "keypoints_compared": 0}
    dx, dy, dl = (float(v) for v in delta.max(axis=0))
    return {"dx": dx, "dy": dy, "dlikelihood": dl, "keypoints_compared": int(seen.sum())}


def whole_animal_differences(
    ours: np.ndarray, theirs: np.ndarray, xy: float = 1e-2
) -> dict[str, float]:
    """Compare each frame's animals (A, K, 3) with DeepLabCut's up to the order of whole animals.

    Each frame takes the order of DeepLabCut's animals that fits best; within it, every
    keypoint must be where DeepLabCut has one (else ``frames_missing_disagree``: a keypoint
    dropped or added), and the largest differences are returned, with the frames whose best
    order is off by more than ``xy`` px (``frames_regrouped``: a keypoint moved between
    animals).
    """
    worst = {"dx": 0.0, "dy": 0.0, "dlikelihood": 0.0, "keypoints_compared": 0}
    missing = regrouped = 0
    for mine, want in zip(ours, theirs, strict=True):
        best: dict[str, float] | None = None
        for order in itertools.permutations(range(want.shape[0])):
            trial = frame_differences(mine, want[list(order)])
            if trial is not None and (
                best is None or max(trial["dx"], trial["dy"]) < max(best["dx"], best["dy"])
            ):
                best = trial
        if best is None:
            missing += 1
            continue
        if max(best["dx"], best["dy"]) > xy:
            regrouped += 1
        for key in ("dx", "dy", "dlikelihood"):
            worst[key] = max(worst[key], best[key])
        worst["keypoints_compared"] += best["keypoints_compared"]
    return worst | {"frames_missing_disagree": missing, "frames_regrouped": regrouped}


def assert_whole_animals(worst: dict[str, float], xy: float, likelihood: float) -> None:
    """Assert each frame holds the reference's animals whole, within ``xy`` px, ``likelihood``."""
    assert worst["frames_missing_disagree"] == 0 and worst["frames_regrouped"] == 0, worst
    assert worst["dx"] <= xy and worst["dy"] <= xy and worst["dlikelihood"] <= likelihood
