"""ImageAnalyzer with several ``--model``: the ensemble's predictions, its spread, each model's own.

Images of the simulated arena with their true keypoints as DeepLabCut-layout labels; the bundled
model and two perturbed copies of it, one with its keypoints named otherwise (mapped with
``--keypoint-map``). Each model's file must be what that model predicts alone; the predictions
file their median, scored against the labels; the ensemble file the spread in EKS's columns.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES, ArenaParams, SimulatedArena
from deeplabstream.offline.replay.image_command import main
from deeplabstream.offline.replay.images import find_images, predict
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model
from deeplabstream.pose.runtime.backends import open_backend
from tests.support.ensembles import perturbed_member, renamed_member


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DeepLabCut project's labelled frames: 4 arena images and CollectedData_sim.csv."""
    project = tmp_path_factory.mktemp("project")
    folder = project / "labeled-data" / "arena"
    folder.mkdir(parents=True)
    arena = SimulatedArena(ArenaParams(seed=21))
    rows, names = [], []
    for index in range(4):
        image = np.empty((480, 640, 3), np.uint8)
        _, truth = arena.render_next(image)
        name = f"img{index:03d}.png"
        cv2.imwrite(str(folder / name), image)
        names.append(f"labeled-data/arena/{name}")
        rows.append(truth.ravel())
    columns = pd.MultiIndex.from_tuples(
        [("sim", k, c) for k in KEYPOINT_NAMES for c in ("x", "y")],
        names=["scorer", "bodyparts", "coords"],
    )
    pd.DataFrame(np.array(rows), index=names, columns=columns).to_csv(
        folder / "CollectedData_sim.csv"
    )
    return folder / "CollectedData_sim.csv"


def test_imageanalyzer_runs_an_ensemble(labelled: Path, tmp_path: Path, capsys) -> None:
    agrees = perturbed_member(tmp_path / "agrees", 1, 0.02)
    renamed = renamed_member(perturbed_member(tmp_path / "lp", 2, 0.05), {"nose": "snout"})
    out = tmp_path / "out"
    arguments = [str(labelled), "--model", str(BUNDLED_MODEL), "--model", str(agrees),
                 "--model", str(renamed), "--output-dir", str(out)]  # fmt: skip
    assert main(arguments) == 2  # the third model has no nose: refused, nothing written
    assert "no keypoint nose" in capsys.readouterr().err and not out.exists()
    assert main([*arguments, "--keypoint-map", "snout=nose"]) == 0
    printed = capsys.readouterr().out
    assert "an ensemble of 3 models" in printed and "RMSE" in printed
    images = find_images(labelled)
    stem = "CollectedData_sim"
    members = []
    for index, path in enumerate((BUNDLED_MODEL, agrees, renamed), start=1):
        own = pd.read_csv(
            out / f"{stem}_predictions_model{index}.csv", header=[0, 1, 2], index_col=0
        )
        description = load_model(path)
        alone = predict(images, description, lambda m: open_backend(m, "onnxruntime", "cpu", 2))
        np.testing.assert_allclose(own.to_numpy().reshape(4, 6, 3), alone[:, 0])
        members.append(alone[:, 0])
    members_xy = np.stack(members)[..., :2]
    predictions = pd.read_csv(out / f"{stem}_predictions.csv", header=[0, 1, 2], index_col=0)
    ensemble = predictions.to_numpy().reshape(4, 6, 3)
    np.testing.assert_allclose(ensemble[..., :2], np.median(members_xy, axis=0))
    spread = pd.read_csv(out / f"{stem}_predictions_ensemble.csv", header=[0, 1, 2], index_col=0)
    assert list(dict.fromkeys(spread.columns.get_level_values(2))) == [
        "x", "y", "likelihood", "x_var", "y_var",
    ]  # fmt: skip
    values = spread.to_numpy().reshape(4, 6, 5)
    np.testing.assert_allclose(values[..., 3:], np.var(members_xy, axis=0))
    errors = pd.read_csv(out / f"{stem}_predictions_pixel_error.csv", index_col=0)
    truth = pd.read_csv(labelled, header=[0, 1, 2], index_col=0).to_numpy().reshape(4, 6, 2)
    expected = np.linalg.norm(ensemble[..., :2] - truth, axis=-1)
    np.testing.assert_allclose(errors.to_numpy(), expected, rtol=1e-9)
