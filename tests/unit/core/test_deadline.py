"""The loop's deadline, frame by frame: stage times, blame, the fixed-memory histogram."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.core.deadline import (
    ON_TIME,
    STAGES,
    DeadlineAccount,
    inference_parts,
    model_parts,
    stage_name,
    stage_times_ns,
)
from deeplabstream.core.timing import DurationHistogram
from deeplabstream.settings.sections import ExperimentSettings, parse_deadline, parse_percent

MS = 1_000_000


def test_the_stages_of_a_frame_add_up_to_its_loop():
    # arrived 0; the worker was busy until 30 ms, took it at 31 ms; the model 5 ms, pose at 40;
    # decided at 540 (a slow update), the command written at 541.
    stages = stage_times_ns(0, 30 * MS, 31 * MS, 5 * MS, 40 * MS, 540 * MS, 541 * MS)
    assert dict(zip(STAGES, stages, strict=True)) == {
        "wait": 30 * MS,
        "transport": 5 * MS,
        "inference": 5 * MS,
        "experiment": 500 * MS,
        "output": 1 * MS,
    }
    assert sum(stages) == 541 * MS


def test_a_frame_that_arrived_while_the_worker_was_idle_did_not_wait():
    wait, transport, *_ = stage_times_ns(10 * MS, 0, 11 * MS, 3 * MS, 15 * MS)
    assert wait == 0 and transport == 2 * MS  # 15 - 10 ms, less the 3 ms model


def test_a_late_frame_is_blamed_on_its_longest_stage_and_counted_once():
    account = DeadlineAccount(66 * MS)
    assert account.add(0, 0, 1 * MS, 3 * MS, 5 * MS) == ON_TIME
    late = account.add(0, 0, 1 * MS, 3 * MS, 5 * MS, 505 * MS)
    assert stage_name(late) == "experiment"
    assert stage_name(account.add(0, 200 * MS, 201 * MS, 3 * MS, 205 * MS)) == "wait"
    figures = account.figures()
    assert figures["frames_checked"] == 3 and figures["misses"] == 2
    assert figures["misses_by_stage"] == {
        "wait": 1, "transport": 0, "inference": 0, "experiment": 1, "output": 0,
    }  # fmt: skip
    assert figures["deadline_ms"] == 66.0


def test_without_a_deadline_frames_are_timed_never_judged():
    account = DeadlineAccount(None)
    assert account.add(0, 0, 0, 1 * MS, 10_000 * MS) == ON_TIME
    assert account.figures()["misses"] == 0 and account.figures()["deadline_ms"] is None
    assert account.figures()["end_to_end_ms"]["max"] == 10_000


def test_the_histogram_gives_percentiles_to_the_bin_in_fixed_memory():
    rng = np.random.default_rng(3)
    values = rng.lognormal(np.log(5e6), 0.6, 20_000).astype(np.int64)  # ~5 ms, ns
    histogram = DurationHistogram()
    size = len(histogram.counts)
    for value in values:
        histogram.add(int(value))
    assert len(histogram.counts) == size  # nothing grows with the values
    for q in (50, 95, 99):
        assert histogram.percentile_ms(q) == pytest.approx(np.percentile(values, q) / 1e6, rel=0.01)
    figures = histogram.figures()
    assert figures["max"] == pytest.approx(values.max() / 1e6, abs=1e-3)
    assert figures["count"] == 20_000
    assert DurationHistogram().figures() is None


def test_the_default_deadline_is_three_frame_intervals_at_least_20_ms():
    settings = ExperimentSettings()
    assert settings.deadline_ns(30.0) == 100 * MS
    assert settings.deadline_ns(60.0) == 50 * MS
    assert settings.deadline_ns(200.0) == 20 * MS
    assert settings.deadline_ns(None) == 100 * MS  # unknown rate: as 30 fps
    assert ExperimentSettings(deadline_ms="off").deadline_ns(30.0) is None
    assert ExperimentSettings(deadline_ms=50.0).deadline_ns(200.0) == 50 * MS


@pytest.mark.parametrize(
    ("text", "value"), [("auto", "auto"), ("", "auto"), ("OFF", "off"), ("12.5", 12.5), ("8 ms", 8)]
)
def test_deadline_ms_accepts_auto_off_and_milliseconds(text, value):
    assert parse_deadline(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "nan", "soon"])
def test_deadline_ms_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_deadline(text)


def test_the_tolerance_is_a_percentage():
    assert parse_percent("1 %") == parse_percent("1") == 1.0
    with pytest.raises(ValueError):
        parse_percent("101")


def test_a_two_stage_models_parts_are_its_stages_on_the_frames_path() -> None:
    assert model_parts(("detector", "crop", "pose")) == (
        "preprocess",
        "detector",
        "crop",
        "pose",
        "other",
    )
    assert model_parts(("centroid", "crop", "instance", "peaks", "refresh")) == (
        "preprocess", "centroid", "crop", "instance", "peaks", "other",
    )  # fmt: skip
    assert model_parts(()) == ()
    parts = inference_parts(
        {"preprocess": 0.001, "inference": 0.010, "decode": 0.004},
        {"centroid": 0.010, "crop": 0.0005, "instance": 0.003, "peaks": 0.0002, "refresh": 9.0},
    )
    assert parts["other"] == pytest.approx(0.0003) and "refresh" not in parts


def test_models_of_one_stage_have_no_parts_in_their_figures() -> None:
    account = DeadlineAccount(1 * MS)
    account.add(0, 0, 0, 5 * MS, 6 * MS)
    assert account.blame_part({"preprocess": 1.0}) == ""
    assert "inference_misses_by_part" not in account.figures()
