"""Files whole, rules right: a chimera through the tracker and the keeper.

Where two animals touch, a bottom-up decoder can group the front of one with the back of the
other. The pose files keep the framework's animals whole, under the identity most of their
keypoints belong to; the rules must never read the other animal under an identity: the
keypoints of such a row that are the other's are withheld from them for that frame (the row
unnamed when half of it or more is the other's).
"""

from __future__ import annotations

import numpy as np

from deeplabstream.pose.tracking.identities import IdentityKeeper
from deeplabstream.pose.tracking.switches import count_identity_switches
from deeplabstream.pose.tracking.tracker import IdentityTracker
from tests.unit.pose.tracking.test_tracker import FPS, K, crossing


def _chimeric_crossing() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two animals crossing; while they touch, each instance is one's nose with the other's
    ears and tail (rows shuffled every other frame). Returns the true animals, the
    detections and the frames whose instances are no animal whole."""
    animals, _ = crossing(40, 20)
    detections = animals.copy()
    for t in range(40):
        centres = animals[t, :, :, :2].mean(axis=1)
        if np.hypot(*(centres[0] - centres[1])) < 24:
            detections[t, :, 1:] = detections[t, ::-1, 1:]
        if t % 2:
            detections[t] = detections[t, ::-1]
    chimeras = [
        t
        for t in range(40)
        if not any(np.array_equal(detections[t, i], animals[t, j]) for i in (0, 1) for j in (0, 1))
    ]
    return animals, detections, chimeras


def test_a_chimera_is_written_whole_and_the_rules_never_read_the_other_animal() -> None:
    animals, detections, chimeras = _chimeric_crossing()
    assert len(chimeras) >= 5
    keeper = IdentityKeeper(IdentityTracker(2, K), None)
    files, rules = [], []
    for t in range(40):
        whole = keeper.update(t / FPS, detections[t], None)
        seen = keeper.named(whole)
        # The files: the framework's animals whole, in identity order (a permutation).
        assert sorted(r.tobytes() for r in whole) == sorted(r.tobytes() for r in detections[t])
        # The rules: each keypoint identity i shows is animal i's; never one of the other.
        for identity in (0, 1):
            row = seen[identity]
            shown = ~np.isnan(row[:, 0])
            assert np.array_equal(row[shown], animals[t, identity][shown]), t
        if t in chimeras:
            # Both rows are chimeras (one's nose with the other's ears and tail): the borrowed
            # nose is withheld from each, the rest, its own, shown; the files keep both whole.
            assert np.isnan(seen[:, 0]).all() and keeper.withheld[:, 0].all(), t
            assert not np.isnan(seen[:, 1:, :2]).any(), t
        files.append(whole)
        rules.append(seen)
    # The rules follow each animal to the end; the files hold the chimeras under an identity.
    assert all(np.array_equal(rules[t], animals[t]) for t in (0, 10, 30, 39))
    assert keeper.counts.chimera_keypoints_withheld >= 2 * len(chimeras)
    truth = animals[..., :2]
    assert count_identity_switches(np.stack(rules), truth).switches == 0
    in_files = np.stack(files)
    assert any(not np.array_equal(in_files[t], animals[t]) for t in chimeras)
