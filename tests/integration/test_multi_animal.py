"""Several animals end to end: a sleap-nn export replayed by ``utils/VideoAnalyzer.py``.

The replay runs the real pipeline (video camera process, shared memory, the inference worker,
the identity tracker, the pose files); its poses must equal sleap-nn's own predictions of the
same clip (``../shared/data/sleap-flies``), matched animal to animal in each frame, and every
pose file must have the multi-animal layouts: DeepLabCut's ``individuals`` header and the
parquet table's ``individual`` column.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.pose.table import read_pose_table
from tests.support.in_process import run_main_here
from tests.support.paths import PACKAGE_ROOT, PROJECT_ROOT, shared_data

FLIES = "sleap-flies"


def _replay(tmp_path: Path, clip: Path, model: Path) -> Path:
    """Run VideoAnalyzer on ``clip`` with ``model``; return the session folder."""
    settings = tmp_path / "settings.ini"
    # VideoAnalyzer replaces the cameras by the video; the file must still declare one. The
    # shipped LIKELIHOOD_THRESHOLD: sleap-nn's animals reach the files whole whatever it is.
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\n[Pose]\nMAX_ANIMALS = 2\n"
        "[Output]\nNWB = on\nSLP = on\n"
    )
    from deeplabstream.offline.replay.command import main

    # utils/VideoAnalyzer.py's command, its main in this process: the poses and the files are
    # the point here, not a new interpreter importing the package again.
    code, said, complained = run_main_here(
        main,
        [str(clip), "--fast", "--no-experiment", "--model", str(model), "--settings",
         str(settings), "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert code == 0, said[-3000:] + complained[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    return session


def _best_match(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Reorder ``ours`` (A, K, 3) to the permutation of animals nearest ``theirs`` (B, K, 2)."""
    best, best_cost = ours[: len(theirs)], np.inf
    for order in itertools.permutations(range(len(ours)), len(theirs)):
        candidate = ours[list(order)]
        distance = np.abs(candidate[..., :2] - theirs)
        cost = np.nansum(distance) + 1e6 * np.sum(
            np.isnan(candidate[..., 0]) != np.isnan(theirs[..., 0])
        )
        if cost < best_cost:
            best, best_cost = candidate, cost
    return best


@pytest.mark.slow
def test_done_when_a_sleap_export_replayed_equals_sleap_nns_own_predictions(tmp_path):
    folder = shared_data(FLIES)
    model = folder / "onnx" / "flies_bottomup_tiny_onnx"
    reference = np.load(folder / "inference" / "flies_clip_first100.onnx_predictions.npz")
    session = _replay(tmp_path, folder / "inference" / "flies_clip_first100.mp4", model)
    info = json.loads((session / "session.json").read_text())
    camera = next(iter(info["cameras"]))
    figures = info["pose_runs"][0]["cameras"][camera]
    assert figures["frames_analysed"] == 100
    assert figures["identities"]["max_animals"] == 2
    # Whole animals (issue 54): sleap-nn's instances, nothing moved, dropped or added.
    assert figures["identities"]["merged_instance_repair"] == "off"
    assert figures["identities"]["detections_dropped"] == 0

    table = read_pose_table(session / figures["pose_file"])
    assert table.individuals == ("animal1", "animal2")
    assert table.keypoints == tuple(str(n) for n in reference["node_names"])
    assert list(table.frames) == list(range(100))
    worst_xy = worst_score = 0.0
    for frame in range(100):
        theirs = reference["points"][frame]  # (2, 13, 2), NaN where sleap-nn found no point
        ours = _best_match(table.points[frame], theirs)
        assert np.array_equal(np.isnan(ours[..., 0]), np.isnan(theirs[..., 0])), frame
        seen = ~np.isnan(theirs[..., 0])
        worst_xy = max(worst_xy, float(np.abs(ours[..., :2][seen] - theirs[seen]).max()))
        scores = reference["point_scores"][frame]
        worst_score = max(worst_score, float(np.abs(ours[..., 2][seen] - scores[seen]).max()))
    assert worst_xy <= 0.02, worst_xy  # the CSV keeps 3 decimals: 0.0005 px of rounding
    assert worst_score <= 1e-3, worst_score

    parquet = pd.read_parquet(session / figures["pose_table"])
    assert list(parquet.columns[:2]) == ["frame_index", "individual"]
    assert len(parquet) == 200  # a row per frame and animal
    assert set(parquet["individual"]) == {"animal1", "animal2"}

    # The other readers see the same two animals: movement, sleap-io (tracks), pynwb.
    from movement.io import load_poses

    moved = load_poses.from_dlc_file(session / figures["pose_file"], fps=25)
    assert list(moved.individuals.values) == ["animal1", "animal2"]
    assert (moved.sizes["time"], moved.sizes["keypoints"]) == (100, 13)
    import sleap_io as sio

    labels = sio.load_slp(str(session / f"{camera}.slp"))
    assert [track.name for track in labels.tracks] == ["animal1", "animal2"]
    slp_points = labels.numpy()  # (frames, tracks, nodes, 2)
    np.testing.assert_allclose(slp_points, table.points[..., :2], atol=1e-3)
    assert len(labels.skeletons[0].edges) == len(reference["edge_inds"])
    for animal in ("animal1", "animal2"):
        nwb = load_poses.from_nwb_file(
            session / "session.nwb", pose_estimation_key=f"{camera}_{animal}"
        )
        assert nwb.position.shape[0] == 100


PAIR_MODEL = PACKAGE_ROOT / "pose" / "bundled" / "arena-pair"


@pytest.mark.slow
def test_done_when_two_simulated_mice_run_the_shipped_social_experiment_live(tmp_path):
    """Two mice meeting (SOCIAL = touch) through the project's two-mouse model, live."""
    from deeplabstream.hardware.simulator.truth import read_truth
    from deeplabstream.pose.tracking.switches import count_identity_switches

    settings = tmp_path / "two_mice.ini"
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\nANIMALS = 2\nSOCIAL = touch\nFRAMERATE = 30\n"
        f"[Pose]\nMODEL_PATH = {PAIR_MODEL}\nMAX_ANIMALS = 2\n"
        # Not a timing test: a loaded test machine may miss the loop's deadline (its tests are
        # in tests/faults/test_loop_health.py).
        "[Experiment]\nNAME = social_example\nDEADLINE_MS = off\n"
        "[Device stimulus_box]\nTYPE = log\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--experiment-enabled", "--frames", "660", "--output-dir",
         str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    info = json.loads((session / "session.json").read_text())
    figures = info["pose_runs"][0]["cameras"]["arena"]
    assert figures["identities"]["max_animals"] == 2

    # Ids: the tracked animals follow the true ones (the truth of every frame is written).
    table = read_pose_table(session / figures["pose_file"])
    assert table.individuals == ("animal1", "animal2")
    truth = read_truth(session / "arena.truth.csv")
    rows = {int(frame): row for row, frame in enumerate(truth.frames)}
    analysed = ~np.isnan(table.points[..., 2]).all(axis=(1, 2))
    frames = table.frames[analysed]
    true_xy = truth.positions[[rows[int(f)] for f in frames]]
    true_xy[~truth.visible[[rows[int(f)] for f in frames]]] = np.nan
    report = count_identity_switches(table.points[analysed], true_xy)
    assert report.animal_frames_matched >= 0.9 * report.animal_frames
    assert report.switches <= 1, report.events

    # Events: the mice meet twice in 22 s; the experiment pulsed on a meeting, with its latency.
    events = pd.read_csv(session / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    assert len(pulses) >= 1, events.tail(20)
    assert (pulses["written"] >= pulses["pose_ready"]).all()  # prompted by a pose, then written
