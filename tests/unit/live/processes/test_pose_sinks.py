"""The inference worker's sinks: the pose files' rows, the POSE pipe's records, a lab's output.

The sinks are driven here as the worker's loop drives them (live/processes/analysis/pipeline.py):
one ``AnalysedFrame`` filled in place per analysed frame, ``write_not_analysed`` for the frames
passed over, ``close`` at the end. The end-to-end path is covered by the integration tests
(test_pose_stream.py, test_pose_times.py, test_lsl.py).
"""

from __future__ import annotations

import math
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeplabstream.live.processes.analysis.sinks import (
    AnalysedFrame,
    GuardedSink,
    LiveOutputs,
    PoseFileSink,
    PosePipeSink,
    PoseSink,
)
from deeplabstream.live.processes.messages import PoseReader
from deeplabstream.outputs.interface import ChosenOutput, LiveOutput, OutputCamera, OutputSession
from deeplabstream.transport.channel import ChannelWriter, FrameRecord

KEYPOINTS = ("nose", "tail_base")


def _record(index: int) -> FrameRecord:
    return FrameRecord(0, index % 4, index, index, index / 30, 1_000_000_000 + index * 33_000_000)


def _fill(frame: AnalysedFrame, index: int, seq: int) -> None:
    """Fill ``frame`` as the worker does for an analysed frame."""
    frame.record = _record(index)
    frame.animals = np.array([[[10.0 + index, 20.0, 0.9], [30.0, 40.0, 0.8]]], np.float32)
    frame.seq = seq
    frame.picked_ns = frame.record.host_timestamp_ns + 1_000_000
    frame.ready_ns = frame.picked_ns + 5_000_000
    frame.timings = {"preprocess": 0.001, "inference": 0.003, "decode": 0.001}


class _Counting:
    """A sink of one's own: one class, handed every frame like the built-in ones."""

    def __init__(self) -> None:
        self.analysed: list[int] = []
        self.passed_over: list[int] = []

    def write(self, frame: AnalysedFrame) -> None:
        self.analysed.append(frame.record.frame_index)

    def write_not_analysed(self, record: FrameRecord) -> None:
        self.passed_over.append(record.frame_index)

    def close(self, last_index: int | None) -> dict[str, Any]:
        return {"counted": len(self.analysed) + len(self.passed_over)}


def test_the_file_sink_writes_a_row_per_captured_frame_and_ends_at_the_last_index(
    tmp_path: Path,
) -> None:
    files = PoseFileSink(OutputCamera("arena", "arena", tmp_path, KEYPOINTS, "m"))
    counting = _Counting()
    sinks: list[PoseSink] = [files, counting]
    frame = AnalysedFrame()
    for index in range(5):
        if index % 2:  # every other frame passed over, as under load
            for sink in sinks:
                sink.write_not_analysed(_record(index))
            continue
        _fill(frame, index, seq=index // 2)
        for sink in sinks:
            sink.write(frame)
    figures = files.close(last_index=7)  # frames 5-7 published, their announcements refused
    assert figures == {
        "pose_file": "arena.pose.csv",
        "pose_rows": 8,
        "pose_times_file": "arena.pose_times.csv",
        "pose_table": "arena.pose.pqt",  # written from the finished files at the close
        "pose_exact_dtype": "float32",  # how pose_exact.csv reads back to the bit
    }
    assert files.errors == []
    assert counting.close(7) == {"counted": 5}
    assert counting.analysed == [0, 2, 4] and counting.passed_over == [1, 3]
    pose = pd.read_csv(tmp_path / "arena.pose.csv", header=[0, 1, 2], index_col=0)
    assert len(pose) == 8
    nose_x = pose.xs(("nose", "x"), level=(1, 2), axis=1).iloc[:, 0].tolist()
    assert nose_x[0] == 10.0 and nose_x[2] == 12.0 and nose_x[4] == 14.0
    assert all(math.isnan(nose_x[i]) for i in (1, 3, 5, 6, 7))
    times = pd.read_csv(tmp_path / "arena.pose_times.csv")
    assert len(times) == 8 and times["analysed"].tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    timing = pd.read_csv(tmp_path / "arena.pose_timing.csv")
    assert timing["frame_index"].tolist() == [0, 2, 4]


def test_the_pipe_sink_sends_records_padded_to_the_largest_model(tmp_path: Path) -> None:
    receive, send = Pipe(duplex=False)
    pipe = PosePipeSink(ChannelWriter(send), 3, record_rows=4, record_animals=1, identities=None)
    frame = AnalysedFrame()
    for seq, index in enumerate((0, 2)):
        _fill(frame, index, seq)
        frame.late = 2
        pipe.write(frame)
    reader = PoseReader(receive, keypoints=4)
    records = []
    while len(records) < 2:
        assert receive.poll(10.0)
        records += reader.read_available()
    assert [(r.camera_id, r.frame_index, r.seq) for r in records] == [(3, 0, 0), (3, 2, 1)]
    first = records[0]
    assert first.pose.shape == (4, 3)
    np.testing.assert_array_equal(first.pose[:2, 0], [10.0, 30.0])
    assert np.isnan(first.pose[2:]).all()  # the other model's keypoints: NaN
    assert first.late_stage == 2 and first.ready_ns - first.picked_up_ns == 5_000_000
    assert pipe.close(None) == {}


class _Failing:
    """A lab's sink that raises on its second analysed frame."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, frame: AnalysedFrame) -> None:
        self.written += 1
        if self.written == 2:
            raise RuntimeError("the lab's disk is full")

    def write_not_analysed(self, record: FrameRecord) -> None:
        pass

    def close(self, last_index: int | None) -> dict[str, Any]:
        return {"lab_rows": self.written}


class _LiveLab(LiveOutput):
    def __init__(self) -> None:
        self.sink = _Failing()

    def camera_sink(self, camera: OutputCamera) -> PoseSink:
        return self.sink


def test_a_failing_output_is_reported_and_dropped_and_the_pose_files_go_on(
    tmp_path: Path,
) -> None:
    camera = OutputCamera("arena", "arena", tmp_path, KEYPOINTS, "m")
    session = OutputSession(tmp_path, "", (camera,))
    pose = ChosenOutput("pose").plugin().open_live(session)
    assert pose is not None
    lab = _LiveLab()
    outputs = LiveOutputs(session, [("pose", pose), ("lab_rows", lab)])
    files, guarded = outputs.sinks(camera)
    assert isinstance(files, PoseFileSink) and isinstance(guarded, GuardedSink)
    frame = AnalysedFrame()
    for index in range(4):
        _fill(frame, index, seq=index)
        for sink in (files, guarded):
            sink.write(frame)  # the second frame's failure is kept, never raised
    assert lab.sink.written == 2  # dropped after its failure: no more frames
    assert files.close(None)["pose_rows"] == 4
    assert guarded.close(None) == {"lab_rows": 2}  # closed all the same: its files end
    assert outputs.error == (
        "output 'lab_rows' of camera 'arena' failed while writing a frame: RuntimeError: the "
        "lab's disk is full; the session goes on without it"
    )
