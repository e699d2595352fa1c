"""Pose records through a real pipe: one animal, and every animal of a multi-animal model."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from deeplabstream.live.processes.messages import (
    PoseReader,
    PoseRecord,
    encode_pose,
    pose_record_size,
)
from deeplabstream.transport.channel import DOORBELL_ENV, ChannelWriter, Doorbell


def _send(
    records: list[PoseRecord], animals: int, keypoints: int, spread: bool = False
) -> list[PoseRecord]:
    read_end, write_end = multiprocessing.Pipe(duplex=False)
    reader = PoseReader(read_end, keypoints, animals, spread)
    writer = ChannelWriter(write_end)
    for record in records:
        writer.send(encode_pose(record))
    got: list[PoseRecord] = []
    while len(got) < len(records):
        got += reader.read_available()
    reader.close()
    write_end.close()
    return got


def test_the_sessions_doorbell_reads_its_records_without_the_environment(monkeypatch):
    """The worker writes with the doorbell its job names; the session's reader is given it too.

    Nothing in the environment says ``portable``, and on Linux the default is the pipe, whose
    reader would take the portable framing for records: only the handed choice decodes them.
    """
    monkeypatch.delenv(DOORBELL_ENV, raising=False)
    read_end, write_end = multiprocessing.Pipe(duplex=False)
    reader = PoseReader(read_end, 3, doorbell=Doorbell.PORTABLE)
    writer = ChannelWriter(write_end, kind=Doorbell.PORTABLE)
    sent = [PoseRecord(0, i, i, i, i, i, np.full((3, 3), i, np.float32)) for i in range(3)]
    for record in sent:
        assert writer.send(encode_pose(record))
    writer.close()
    got: list[PoseRecord] = []
    while not reader.at_eof:
        got += reader.read_available()
    assert [r.frame_index for r in got] == [0, 1, 2]
    assert np.array_equal(got[2].pose, sent[2].pose)
    reader.close()


def test_a_multi_animal_record_carries_every_animal_and_the_first_as_its_pose():
    animals = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    animals[1, 2] = np.nan  # animal 2's last keypoint not seen
    sent = PoseRecord(1, 17, 1_000, 2_000, 3_000, 5, animals[0], animals)
    (got,) = _send([sent], animals=2, keypoints=3)
    assert (got.camera_id, got.frame_index, got.seq) == (1, 17, 5)
    assert got.animals is not None
    np.testing.assert_array_equal(got.animals, animals)
    np.testing.assert_array_equal(got.pose, animals[0])


def test_a_single_animal_record_has_no_animals():
    pose = np.ones((4, 3), np.float32)
    (got,) = _send([PoseRecord(0, 1, 1, 2, 3, 0, pose)], animals=1, keypoints=4)
    assert got.animals is None
    np.testing.assert_array_equal(got.pose, pose)


def test_too_many_animals_for_one_atomic_record_names_the_setting():
    with pytest.raises(ValueError, match="MAX_ANIMALS"):
        pose_record_size(keypoints=100, animals=16)


def test_a_record_of_an_ensembles_session_carries_each_keypoints_spread():
    pose = np.ones((3, 3), np.float32)
    spread = np.array([0.5, np.nan, 7.25], np.float32)  # NaN: fewer than two models placed it
    sent = [
        PoseRecord(0, 4, 1, 2, 3, 0, pose, ensemble_std=spread),
        PoseRecord(1, 9, 1, 2, 3, 1, pose, ensemble_std=np.full(3, np.nan, np.float32)),
    ]
    got = _send(sent, animals=1, keypoints=3, spread=True)
    np.testing.assert_array_equal(got[0].ensemble_std, spread)
    assert np.isnan(got[1].ensemble_std).all()  # a camera of one model in the same session
    np.testing.assert_array_equal(got[1].pose, pose)
    assert pose_record_size(3, 1, spread=True) == pose_record_size(3, 1) + 12
