"""Each identity's confidence beside the pose table: the identity CSV and the parquet column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.live.processes.messages import (
    PoseReader,
    PoseRecord,
    encode_pose,
    pose_record_size,
)
from deeplabstream.outputs.pose.files import (
    IdentityConfidenceWriter,
    PoseCsvWriter,
    individual_names,
    read_identities_metadata,
    write_pose_parquet,
)
from tests.support.paths import PROJECT_ROOT


def _session(tmp_path: Path) -> tuple[Path, Path]:
    names = individual_names(2)
    pose = PoseCsvWriter(tmp_path / "top.pose.csv", "s", ("nose", "tail_base"), names)
    identity = IdentityConfidenceWriter(tmp_path / "top.identity.csv", names)
    rng = np.random.default_rng(0)
    for frame in range(6):
        if frame == 2:  # passed over: both files get the empty row when frame 3 comes
            pose.write_missing(frame)
            continue
        pose.write(frame, rng.uniform(0, 100, (2, 2, 3)))
        unnamed = np.array([False, frame == 5])  # animal2 unsure after a merge: unnamed
        identity.write(frame, np.array([0.999, np.nan if frame == 4 else 0.5]), unnamed)
    pose.end_at(7)
    identity.end_at(7)
    pose.close()
    identity.close()
    return pose.path, identity.path


def test_the_confidence_file_has_a_row_per_pose_row_and_leaves_the_pose_csv_as_dlc_writes_it(
    tmp_path: Path,
) -> None:
    pose_path, identity_path = _session(tmp_path)
    confidence = pd.read_csv(identity_path, index_col="frame_index")
    table = pd.read_csv(pose_path, header=[0, 1, 2, 3], index_col=0)
    assert list(confidence.index) == list(table.index) == list(range(8))
    assert list(confidence.columns) == ["animal1", "animal2", "unnamed"]
    # The animals the experiments did not see: listed by name, in the frames they were not.
    assert confidence["unnamed"].fillna("").tolist() == ["", "", "", "", "", "animal2", "", ""]
    assert confidence.loc[0, "animal1"] == 0.999 and np.isnan(confidence.loc[4, "animal2"])
    assert confidence.loc[2].isna().all()  # not analysed
    # movement reads the pose CSV as DeepLabCut's, unchanged.
    pytest.importorskip("movement", reason="movement is not installed (pip install movement)")
    from movement.io import load_poses

    poses = load_poses.from_dlc_file(pose_path, fps=30)
    assert list(poses.individuals.values) == ["animal1", "animal2"]
    assert poses.position.shape[0] == 8


def test_the_multi_animal_table_carries_each_rows_identity_confidence(tmp_path: Path) -> None:
    pose_path, identity_path = _session(tmp_path)
    write_pose_parquet(pose_path, tmp_path / "top.pose.pqt", None, identity_path)
    table = pd.read_parquet(tmp_path / "top.pose.pqt").set_index(["frame_index", "individual"])
    assert table.loc[(0, "animal1"), "identity_confidence"] == 0.999
    assert table.loc[(1, "animal2"), "identity_confidence"] == 0.5
    assert np.isnan(table.loc[(4, "animal2"), "identity_confidence"])


def test_the_multi_animal_table_names_how_its_identities_were_given(tmp_path: Path) -> None:
    pose_path, identity_path = _session(tmp_path)
    method = {"identities": "motion", "merged_instance_repair": "on"}
    write_pose_parquet(pose_path, tmp_path / "top.pose.pqt", None, identity_path, identities=method)
    assert read_identities_metadata(tmp_path / "top.pose.pqt") == method
    assert len(pd.read_parquet(tmp_path / "top.pose.pqt")) == 16  # the table itself unchanged
    write_pose_parquet(pose_path, tmp_path / "plain.pose.pqt")  # one animal: nothing named
    assert read_identities_metadata(tmp_path / "plain.pose.pqt") is None


def test_pose_records_carry_the_confidence_of_each_identity() -> None:
    import multiprocessing

    from deeplabstream.transport.channel import ChannelWriter

    read, write = multiprocessing.Pipe(duplex=False)
    animals = np.zeros((2, 3, 3), np.float32)
    confidence = np.array([0.9, 0.2])
    sent = PoseRecord(0, 1, 1, 2, 3, 0, animals[0], animals, identity_confidence=confidence)
    assert len(encode_pose(sent)) == pose_record_size(3, 2)
    ChannelWriter(write).send(encode_pose(sent))
    (got,) = PoseReader(read, 3, 2).read_available()
    np.testing.assert_allclose(got.identity_confidence, [0.9, 0.2], rtol=1e-6)


def _chimeras_written(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """Chimeras of two crossing animals through the identity keeper, its rows written as the
    worker writes them. Returns the pose CSV, the identity CSV and what the rules read
    (T, A, K, 3)."""
    from deeplabstream.pose.tracking.identities import IdentityKeeper
    from deeplabstream.pose.tracking.tracker import IdentityTracker
    from tests.unit.pose.tracking.test_rules_view import FPS, K, _chimeric_crossing

    _, detections, chimeras = _chimeric_crossing()
    names = individual_names(2)
    pose = PoseCsvWriter(tmp_path / "top.pose.csv", "s", tuple(f"k{i}" for i in range(K)), names)
    keypoints = tuple(f"k{i}" for i in range(K))
    identity = IdentityConfidenceWriter(tmp_path / "top.identity.csv", names, keypoints)
    keeper = IdentityKeeper(IdentityTracker(2, K), None)
    seen = []
    for t, found in enumerate(detections):
        whole = keeper.update(t / FPS, found, None)
        pose.write(t, whole)
        identity.write(t, keeper.confidence, keeper.unnamed, keeper.withheld)
        seen.append(keeper.named(whole))
    pose.close()
    identity.close()
    rules = np.stack(seen)
    # The files keep the chimeras whole; the rules did not see their borrowed keypoint.
    assert np.isnan(rules[chimeras][:, :, 0]).all() and not np.isnan(rules[0]).any()
    assert not np.isnan(pd.read_csv(pose.path, header=[0, 1, 2, 3], index_col=0)).any().any()
    return pose.path, identity.path, rules


def _docs_lines(pose_path: Path, identity_path: Path) -> list[str]:
    """docs/pose-models.md ("Two truths"): its Python blocks, reading these files.

    The first applies identity.csv's ``unnamed`` tokens (``animal2``, the whole animal;
    ``animal2:nose``, one keypoint) with pandas, the second with movement.
    """
    doc = (PROJECT_ROOT / "docs" / "pose-models.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Two truths") :]
    section = section[: section.index("\n## ", 1)]
    blocks = [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]
    assert len(blocks) == 2, "the section gives the pandas lines, then movement's"
    files = {"arena.pose.csv": str(pose_path), "arena.identity.csv": str(identity_path)}
    for name, path in files.items():
        blocks = [block.replace(f'"{name}"', repr(path)) for block in blocks]
    return blocks


def test_the_identity_table_applied_with_pandas_gives_what_the_rules_saw(
    tmp_path: Path,
) -> None:
    pose_path, identity_path, rules = _chimeras_written(tmp_path)
    with_pandas, _ = _docs_lines(pose_path, identity_path)
    namespace: dict = {}
    exec(with_pandas, namespace)  # the documented lines, as a lab runs them
    # Whole animals and single keypoints the rules did not see, applied to the pose table.
    assert namespace["hidden"].columns.str.contains(":").any()  # single keypoints listed
    values = namespace["rules"].to_numpy().reshape(rules.shape)
    np.testing.assert_allclose(values, rules, atol=5e-4)


def test_the_identity_table_applied_with_movement_gives_what_the_rules_saw(
    tmp_path: Path,
) -> None:
    pytest.importorskip("movement", reason="movement is not installed (pip install movement)")
    pose_path, identity_path, rules = _chimeras_written(tmp_path)
    with_pandas, with_movement = _docs_lines(pose_path, identity_path)
    namespace: dict = {}
    exec(with_pandas + with_movement, namespace)  # movement's lines read pandas' `hidden`
    xy = namespace["rules"].position.transpose("time", "individuals", "keypoints", "space")
    np.testing.assert_allclose(xy.to_numpy(), rules[..., :2], atol=5e-4)
