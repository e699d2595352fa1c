"""The timing file of a two-stage model: each stage's column, and the part blamed for a miss.

A model in two stages (a detector, then the pose model on crops) writes its stages' times after
the common columns, then ``deadline_part``; a worker that died has its deadline figures rebuilt
from that file, the parts included (outputs/pose/recovery.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deeplabstream.outputs.pose.files import TIMING_COLUMNS, PoseTimingWriter
from deeplabstream.outputs.pose.recovery import _deadline_from_timing

STAGES = ("detector", "crop", "pose")


def _write(path: Path, stages: tuple[str, ...]) -> None:
    writer = PoseTimingWriter(path, stages)
    model = {"preprocess": 0.001, "inference": 0.03, "decode": 0.0}
    parts = {"detector": 0.02, "crop": 0.0004, "pose": 0.009}
    writer.write(0, 0, 1_000, model | parts, 40_000_000, 1)
    writer.write(1, 100_000_000, 100_001_000, model | parts, 160_000_000, 1,
                 deadline_stage="inference", deadline_part="detector")  # fmt: skip
    writer.write(2, 200_000_000, 250_000_000, model | parts, 290_000_000, 1,
                 deadline_stage="wait")  # fmt: skip
    writer.close()


def test_a_two_stage_models_timing_file_has_its_stages_and_the_blamed_part(tmp_path: Path) -> None:
    path = tmp_path / "cam.pose_timing.csv"
    _write(path, STAGES)
    table = pd.read_csv(path)
    assert list(table.columns) == [
        *TIMING_COLUMNS,
        "detector_ms",
        "crop_ms",
        "pose_ms",
        "deadline_part",
    ]
    assert table["crop_ms"].tolist() == [0.4, 0.4, 0.4]
    assert table["deadline_part"].fillna("").tolist() == ["", "detector", ""]
    figures = _deadline_from_timing(path, 50_000_000)
    assert figures is not None
    assert figures["misses_by_stage"]["inference"] == 1 and figures["misses"] == 2
    assert figures["inference_misses_by_part"] == {"detector": 1}


def test_a_one_stage_models_timing_file_is_as_before(tmp_path: Path) -> None:
    path = tmp_path / "cam.pose_timing.csv"
    _write(path, ())
    assert list(pd.read_csv(path).columns) == list(TIMING_COLUMNS)
    figures = _deadline_from_timing(path, 50_000_000)
    assert figures is not None and "inference_misses_by_part" not in figures
