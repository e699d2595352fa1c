"""A sleap-nn identity (class map) export replayed by ``utils/VideoAnalyzer.py``, end to end.

The replay runs the real pipeline (video camera process, shared memory, the inference worker,
the pose files) with the project's own identity model (``tests/fixtures/sleap_id_flies``) on
the shared 100-frame fly clip (``../shared/data/sleap-flies``, read in place). Its animals must
be sleap-nn's classes row for row (``animal1`` = the first class in every frame, no tracker), with
sleap-nn's points, and its identity confidences the model's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.paths import PROJECT_ROOT, shared_data

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "sleap_id_flies"
CLIP = "sleap-flies/inference/flies_clip_first100.mp4"


def _replay(tmp_path: Path, clip: Path, model: Path) -> Path:
    """Run VideoAnalyzer on ``clip`` with ``model``; return the session folder."""
    settings = tmp_path / "settings.ini"
    # MAX_ANIMALS = 5 is ignored: an identity model reports one animal per class.
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 5\nLIKELIHOOD_THRESHOLD = 0.1\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "VideoAnalyzer.py"), str(clip), "--fast",
         "--no-experiment", "--model", str(model), "--settings", str(settings),
         "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    return session


def _reference() -> tuple[np.ndarray, np.ndarray]:
    """sleap-nn's per-class points in frame pixels (N, C, K, 2) and identity confidences (N, C)."""
    with np.load(FIXTURE / "reference" / "export_path.npz") as data:
        # sleap-nn 0.3.5 divides the graph's points by input_scale twice (fixture README).
        points = data["points"].astype(np.float64) * float(data["input_scale"])
        vectors = data["class_vectors"].astype(np.float64)
    classes = np.arange(vectors.shape[-1])
    own = vectors[:, classes, :, classes].transpose(1, 0, 2)
    seen = np.isfinite(own)
    with np.errstate(invalid="ignore"):
        confidence = np.where(seen, own, 0.0).sum(axis=2) / seen.sum(axis=2)
    return points, confidence


@pytest.mark.slow
def test_an_identity_export_replayed_gives_sleap_nns_classes_as_identities(tmp_path: Path) -> None:
    clip = shared_data(CLIP)
    session = _replay(tmp_path, clip, FIXTURE / "export")
    info = json.loads((session / "session.json").read_text())
    camera = next(iter(info["cameras"]))
    figures = info["pose_runs"][0]["cameras"][camera]
    assert figures["frames_analysed"] == 100
    identities = figures["identities"]
    assert identities["max_animals"] == 2  # the classes, not MAX_ANIMALS
    classes = json.loads((FIXTURE / "export" / "export_metadata.json").read_text())["class_names"]
    assert identities["model"]["classes"] == {"animal1": classes[0], "animal2": classes[1]}

    points, confidence = _reference()
    table = read_pose_table(session / figures["pose_file"])
    assert table.individuals == ("animal1", "animal2")
    assert list(table.frames) == list(range(100))
    # Row c is class c in every frame: no permutation, the same points missing.
    seen = ~np.isnan(points[..., 0])
    assert seen.sum() == 1746  # 191 class instances (test_sleap_identity.py)
    assert np.array_equal(~np.isnan(table.points[..., 0]), seen)
    worst = float(np.abs(table.points[..., :2][seen] - points[seen]).max())
    assert worst <= 1e-3, worst  # the CSV keeps 3 decimals: 0.0005 px of rounding

    found = pd.read_csv(session / identities["model"]["confidence_file"])
    assert list(found.columns) == ["frame_index", "animal1", "animal2", "unnamed"]
    assert found["unnamed"].isna().all()  # the classes name every animal: none left unsure
    assert list(found["frame_index"]) == list(range(100))
    written = found[["animal1", "animal2"]].to_numpy()
    assert np.array_equal(np.isnan(written), np.isnan(confidence))
    assert np.allclose(written, confidence, atol=5e-5, equal_nan=True)  # 4 decimals
