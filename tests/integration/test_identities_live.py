"""Two marked mice through a merge, live: identities after it are those before it.

The real pipeline: the simulated arena camera in its capture process (two free mice, marked,
``PACING = lockstep`` so that every frame is analysed whatever the machine's speed), the
inference worker with the project's two-mouse model, the identity keeper on its loop and the
appearance learner in its own process, the pose files. Two seeds (:data:`EPISODES`):

* 37: the mice walk apart for 16 s, then one lies over the other for more than a second (frames
  496-544), then they part again (half a body length apart from frame 565);
* 16: apart for 12 s, then in contact for 3.4 s (frames 374-476), one hidden under the other
  in frames 412-426. As they come out of it, the detection of the pair slides from one mouse
  onto the other and the motion tracker swaps them (frame 437) while they still touch: shown
  under motion's word, the mice would carry each other's names until their looks set them
  right (a swap and a swap back, the kind of error free walking is measured by).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.hardware.simulator.truth import read_truth
from deeplabstream.outputs.pose.table import read_pose_table
from deeplabstream.pose.tracking.switches import match_identities
from tests.support.paths import PACKAGE_ROOT, PROJECT_ROOT
from tests.support.rules_view import rules_view

PAIR_MODEL = PACKAGE_ROOT / "pose" / "bundled" / "arena-pair"
FRAMES = 720


@dataclass(frozen=True)
class Episode:
    """A seed and its frames: apart (the identities then), the merge, apart again."""

    seed: int
    before: tuple[int, int]
    merge: tuple[int, int]
    after: tuple[int, int]


EPISODES = (
    Episode(37, before=(300, 480), merge=(496, 545), after=(600, FRAMES)),
    Episode(16, before=(200, 370), merge=(404, 441), after=(490, 590)),
)


def _run(tmp_path: Path, seed: int) -> Path:
    settings = tmp_path / "two_marked_mice.ini"
    settings.write_text(
        f"[Camera arena]\nSOURCE = synthetic\nANIMALS = 2\nSOCIAL = free\nSEED = {seed}\n"
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


def _parted(positions: np.ndarray, frames: np.ndarray, merge: tuple[int, int]) -> int:
    """The first frame after ``merge`` with the mice half a body length apart (all keypoints).

    ``positions``: the truth's (T, 2, K, 2), hidden keypoints included.
    """
    body = float(np.median(np.hypot(*(positions[:, 0, 0] - positions[:, 0, -1]).T)))
    between = positions[:, 0, :, None] - positions[:, 1, None, :]
    gap = np.hypot(between[..., 0], between[..., 1]).min(axis=(1, 2))
    after = np.flatnonzero((frames >= merge[1]) & (gap > 0.5 * body))
    assert after.size, "the mice never parted after the merge"
    return int(frames[after[0]])


@pytest.mark.slow
@pytest.mark.parametrize("episode", EPISODES, ids=lambda episode: f"seed{episode.seed}")
def test_two_marked_mice_keep_their_identities_through_a_merge(
    tmp_path: Path, episode: Episode
) -> None:
    session = _run(tmp_path, episode.seed)
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
    # The pose file holds the model's animals whole, under the identity shown; the experiments
    # did not see those identity.csv lists as unnamed (unsure after the merge): judged here.
    identity_csv = session / looks["confidence_file"]
    shown = rules_view(
        table.points, table.frames, table.individuals, identity_csv, table.keypoints
    )
    matched = match_identities(shown, true_xy)

    # The merge happened: the mice lay on each other and the model saw one of them.
    confidence = pd.read_csv(session / looks["confidence_file"], index_col="frame_index")
    confidence = confidence.drop(columns="unnamed")
    assert list(confidence.index) == list(table.frames)
    in_merge = confidence.loc[episode.merge[0] : episode.merge[1] - 1]
    assert in_merge.isna().any(axis=1).sum() >= 10

    # After it, each mouse has the identity it had before, and the keeper is sure of it.
    before = _identity_of(matched, table.frames, episode.before)
    assert sorted(before) == [0, 1]
    assert _identity_of(matched, table.frames, episode.after) == before
    assert confidence.loc[episode.after[0] :].mean().min() >= 0.95

    # Not one frame, from the merge on, shows a mouse under the other's identity: not while
    # they lie on each other, not in their first frames apart (a swap corrected a few frames
    # later is a stimulus sent to the wrong animal), not after. A mouse the keeper is unsure of
    # may go unnamed (a miss), but only until its looks can tell: from a third of a second
    # after the mice have parted, both are named in every frame but a few.
    frames = np.asarray(table.frames)
    since_merge = frames >= episode.merge[0]
    for animal, identity in enumerate(before):
        shown = matched[since_merge, animal]
        wrong = frames[since_merge][(shown >= 0) & (shown != identity)]
        assert wrong.size == 0, f"mouse {animal + 1} shown as the other in frames {wrong}"
    parted = _parted(truth.positions, frames, episode.merge)
    settled = (frames >= parted + 10) & (frames < parted + 70)
    assert settled.sum() >= 50, parted
    named = (matched[settled] >= 0).mean(axis=0)
    assert named.min() >= 0.95, (parted, named)

    # The multi-animal table carries the confidence of every row.
    parquet = pd.read_parquet(session / figures["pose_table"])
    assert "identity_confidence" in parquet.columns
    assert parquet["identity_confidence"].notna().mean() > 0.9
