"""``utils/ImageAnalyzer.py``: labelled images predicted as the framework predicts them, and scored.

Run as a user runs it, on real models and their frameworks' own predictions of the same images
(``../shared/data``):

- DeepLabCut 3.0: the export's 10 labelled PNGs against ``deeplabcut.analyze_images``, and a
  DeepLabCut labels file (``CollectedData_Pranav.csv``) scored against its labels;
- Lightning Pose: its labelled images are not in the shared folder, only their network input
  (``reference/intermediates.npz``: 4 images after Lightning Pose's bicubic resize). Those
  pixels, written as PNGs at the input size, go through the command (reading, colour order,
  resize, normalisation, network, decoding, the CSV) and must give Lightning Pose's own image
  predictions, scaled from the input to the original frame size as Lightning Pose scales them.
  The bicubic downscale itself is OpenCV's ``INTER_CUBIC``, which is what Lightning Pose's
  image path does on uint8 (its README); it is not exercised here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deeplabstream.offline.replay.image_command import main as images_main
from deeplabstream.pose.model import IMAGENET_MEAN, IMAGENET_STD
from tests.support.in_process import run_main_here
from tests.support.paths import shared_data
from tests.support.processes import run_cli

ANALYZER = "utils/ImageAnalyzer.py"
DLC3 = "dlc3-openfield-cspnext_s"
DLC3_MODEL = (
    f"{DLC3}/model/DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
)
DLC3_REFERENCE = (
    f"{DLC3}/reference/analyze_images/"
    "image_predictions_DLC_CspnextS_openfieldOct30shuffle2_snapshot_best-60.csv"
)
LP = "lp-mirror-mouse-resnet18"
LP_FRAME = (406, 396)  # height, width of Lightning Pose's labelled frames
LP_INPUT = (256, 128)


def _analyse(*args: str) -> str:
    result = run_cli(*args, script=ANALYZER, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _table(path: Path, rows: int = 3) -> pd.DataFrame:
    """A predictions CSV with the scorer (and individuals) rows dropped: (bodypart, coord)."""
    table = pd.read_csv(path, header=list(range(rows)), index_col=0)
    table.columns = table.columns.droplevel(list(range(rows - 2)))
    return table


def _differences(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, float]:
    theirs = theirs[ours.columns]
    diff = (ours - theirs).abs()
    coord = ours.columns.get_level_values(1)
    return {
        "xy_px": float(diff.loc[:, coord != "likelihood"].to_numpy().max()),
        "likelihood": float(diff.loc[:, coord == "likelihood"].to_numpy().max()),
    }


@pytest.mark.slow
def test_the_dlc3_exports_labelled_images_equal_deeplabcuts_own_predictions(
    tmp_path: Path, record_property
) -> None:
    images = shared_data(f"{DLC3}/images")
    _analyse(str(images), "--model", str(shared_data(DLC3_MODEL)), "--output-dir", str(tmp_path))

    ours = _table(tmp_path / "images_predictions.csv")
    assert list(ours.index) == [f"images/{p.name}" for p in sorted(images.glob("*.png"))]
    theirs = _table(shared_data(DLC3_REFERENCE), rows=4).loc[ours.index]
    diff = _differences(ours, theirs)
    record_property("dlc3_images_vs_analyze_images", diff)
    print(f"DeepLabCut 3.0 labelled images, ours vs analyze_images: {diff}")
    # DeepLabCut-Live differs from DeepLabCut by 3e-5 px; float32 re-implementations ~1e-4
    assert diff["xy_px"] < 1e-3 and diff["likelihood"] < 1e-5


@pytest.mark.slow
def test_a_deeplabcut_labels_file_is_predicted_in_its_layout_and_scored(
    tmp_path: Path, record_property
) -> None:
    """The 10 images of the export, with their labels from DeepLabCut's own labels file."""
    labels = pd.read_csv(
        shared_data("dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv"),
        header=[0, 1, 2],
        index_col=0,
    )
    project = tmp_path / "project"
    folder = project / "labeled-data" / "m4s1"
    folder.mkdir(parents=True)
    names = sorted(p.name for p in shared_data(f"{DLC3}/images").glob("*.png"))
    for name in names:
        shutil.copyfile(shared_data(f"{DLC3}/images/{name}"), folder / name)
    labels.loc[[f"labeled-data/m4s1/{n}" for n in names]].to_csv(folder / "CollectedData_x.csv")

    text = _analyse(str(folder / "CollectedData_x.csv"), "--model", str(shared_data(DLC3_MODEL)))

    ours = _table(folder / "CollectedData_x_predictions.csv")
    assert list(ours.index) == [f"labeled-data/m4s1/{n}" for n in names]  # the labels' index
    theirs = _table(shared_data(DLC3_REFERENCE), rows=4)
    theirs.index = [f"labeled-data/m4s1/{Path(i).name}" for i in theirs.index]
    assert _differences(ours, theirs.loc[ours.index])["xy_px"] < 1e-3
    # the pixel errors are those of DeepLabCut's own predictions against the labels
    labelled = labels.droplevel(0, axis=1).loc[ours.index]
    errors = pd.read_csv(folder / "CollectedData_x_predictions_pixel_error.csv", index_col=0)
    for keypoint in errors.columns:
        delta = theirs.loc[ours.index, keypoint][["x", "y"]] - labelled[keypoint][["x", "y"]]
        expected = np.hypot(delta["x"], delta["y"])
        np.testing.assert_allclose(errors[keypoint], expected, atol=1e-3)
    scores = json.loads((folder / "CollectedData_x_predictions_scores.json").read_text())
    flat = errors.to_numpy().ravel()
    assert scores["deeplabcut_rmse_px"] == pytest.approx(np.nanmean(flat))
    snout = scores["per_keypoint_px"]["snout"]
    assert snout["median"] == pytest.approx(np.nanmedian(errors["snout"]))
    assert snout["p95"] == pytest.approx(np.nanpercentile(errors["snout"], 95))
    assert snout["count"] == len(names)
    assert "DeepLabCut's RMSE (mean error)" in text and "median px" in text
    record_property("dlc3_labelled_rmse_px", scores["deeplabcut_rmse_px"])


def test_lightning_poses_labelled_images_give_its_own_image_predictions(
    tmp_path: Path, record_property
) -> None:
    with np.load(shared_data(f"{LP}/reference/intermediates.npz")) as data:
        inputs, names = data["labeled_input"], [str(n) for n in data["labeled_image_names"]]
    folder = tmp_path / "labeled-data"
    folder.mkdir()
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    for name, network_input in zip(names, inputs, strict=True):
        pixels = (network_input * std + mean) * 255  # Lightning Pose's resized uint8 image
        assert np.abs(pixels - np.rint(pixels)).max() < 0.01  # exactly recoverable
        rgb = np.rint(pixels).astype(np.uint8).transpose(1, 2, 0)
        cv2.imwrite(str(folder / Path(name).name), np.ascontiguousarray(rgb[..., ::-1]))

    _analyse(str(folder), "--model", str(shared_data(f"{LP}/model")), "--output-dir", str(tmp_path))

    ours = _table(tmp_path / "labeled-data_predictions.csv")
    assert list(ours.index) == names  # labeled-data/img01.png, as Lightning Pose names them
    coord = ours.columns.get_level_values(1)
    ours.loc[:, coord == "x"] *= LP_FRAME[1] / LP_INPUT[1]  # to the labelled frame, as LP does
    ours.loc[:, coord == "y"] *= LP_FRAME[0] / LP_INPUT[0]
    for run in ("litpose_predict_eager", "litpose_predict_onnx_fp32"):
        path = shared_data(f"{LP}/reference/{run}/image_preds/CollectedData_predictions.csv")
        diff = _differences(ours, _table(path).loc[names])
        record_property(f"lp_labelled_images_vs_{run}", diff)
        print(f"Lightning Pose labelled images, ours vs {run}: {diff}")
        assert diff["xy_px"] < 0.01 and diff["likelihood"] < 1e-4


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    model = str(shared_data(f"{LP}/model"))
    # The command itself once (its exit code through the launcher), then its main in this
    # process for the other refusals (the same parser and checks, no new Python each).
    result = run_cli(str(empty), "--model", model, script=ANALYZER)
    assert result.returncode == 2 and "holds no image" in result.stderr
    labels = tmp_path / "CollectedData.csv"
    labels.write_text("scorer,me,me\nbodyparts,nose,nose\ncoords,x,y\nlabeled-data/gone.png,1,2\n")
    code, _, err = run_main_here(images_main, [str(labels), "--model", model])
    assert code == 2 and "gone.png" in err and "not found" in err
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "one.png"), np.zeros((8, 8, 3), np.uint8))
    code, _, err = run_main_here(images_main, [str(images), "--model", str(tmp_path / "none.onnx")])
    assert code == 2 and "none.onnx" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "CollectedData.csv",
        "empty",
        "images",
        "one.png",
    ]
