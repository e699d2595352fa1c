"""Two marked mice through a merge, live: identities after it are those before it.

The real pipeline: the simulated arena camera in its capture process (two free mice, marked,
``PACING = lockstep`` so that every frame is analysed whatever the machine's speed), the
inference worker with the project's two-mouse model, the identity keeper on its loop and the
appearance learner in its own process, the pose files. Seed 37: the mice walk apart for 16 s,
then one lies over the other for more than a second (frames 496-544), then they part again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.hardware.simulator.truth import read_truth
from deeplabstream.outputs.pose_table import read_pose_table
from deeplabstream.pose.tracking.switches import match_identities
from tests.support.paths import PACKAGE_ROOT, PROJECT_ROOT

PAIR_MODEL = PACKAGE_ROOT / "pose" / "bundled" / "arena-pair"
FRAMES = 720
BEFORE, MERGE, AFTER = (300, 480), (496, 545), (600, FRAMES)


def _run(tmp_path: Path) -> Path:
    settings = tmp_path / "two_marked_mice.ini"
    settings.write_text(
        "[Camera arena]\nSOURCE = synthetic\nANIMALS = 2\nSOCIAL = free\nSEED = 37\n"
        "FRAMERATE = 30\nPACING = lockstep\n"
        f"[Pose]\nMODEL_PATH = {PAIR_MODEL}\nMAX_ANIMALS = 2\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--pose-enabled", "--frames", str(FRAMES), "--output-dir",
         str(tmp_path / "out")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "DEEPLABSTREAM_LOCK_FILE": str(tmp_path / "lock")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (session,) = [p.parent for p in (tmp_path / "out").glob("*/session.json")]
    return session


def _identity_of(matched: np.ndarray, frames: np.ndarray, span: tuple[int, int]) -> list[int]:
    """Each true animal's most frequent identity in ``span``, checked to hold 95 % of it."""
    rows = (frames >= span[0]) & (frames < span[1])
    found = []
    for animal in range(matched.shape[1]):
        ids = matched[rows, animal]
        ids = ids[ids >= 0]
        assert ids.size > 0.8 * rows.sum(), f"animal {animal + 1} barely matched in {span}"
        values, counts = np.unique(ids, return_counts=True)
        assert counts.max() >= 0.95 * ids.size, (span, animal, values, counts)
        found.append(int(values[counts.argmax()]))
    return found


@pytest.mark.slow
def test_two_marked_mice_keep_their_identities_through_a_merge(tmp_path: Path) -> None:
    session = _run(tmp_path)
    info = json.loads((session / "session.json").read_text())
    figures = info["pose_runs"][0]["cameras"]["arena"]
    assert figures["frames_analysed"] == FRAMES and figures["frames_skipped"] == 0
    looks = figures["identities"]["appearance"]
    assert looks["models"] >= 1 and looks["samples"] > 0 and looks["learner"]["fits"] >= 1
    assert looks["identity_step_ms"]["count"] == FRAMES

    table = read_pose_table(session / figures["pose_file"])
    truth = read_truth(session / "arena.truth.csv")
    assert list(truth.frames) == list(table.frames)  # lockstep: every frame, in order
    true_xy = truth.positions.copy()
    true_xy[~truth.visible] = np.nan
    matched = match_identities(table.points, true_xy)

    # The merge happened: the mice lay on each other and the model saw one of them.
    confidence = pd.read_csv(session / looks["confidence_file"], index_col="frame_index")
    assert list(confidence.index) == list(table.frames)
    in_merge = confidence.loc[MERGE[0] : MERGE[1] - 1]
    assert in_merge.isna().any(axis=1).sum() >= 10

    # After it, each mouse has the identity it had before, and the keeper is sure of it.
    before = _identity_of(matched, table.frames, BEFORE)
    assert sorted(before) == [0, 1]
    assert _identity_of(matched, table.frames, AFTER) == before
    assert confidence.loc[AFTER[0] :].mean().min() >= 0.95

    # The multi-animal table carries the confidence of every row.
    parquet = pd.read_parquet(session / figures["pose_table"])
    assert "identity_confidence" in parquet.columns
    assert parquet["identity_confidence"].notna().mean() > 0.9
