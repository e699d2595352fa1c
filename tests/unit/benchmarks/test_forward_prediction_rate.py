"""benchmarks.forward_prediction at another camera rate: steps, warm-up and the results' name."""

from __future__ import annotations

from benchmarks.forward_prediction import result_name, substeps, warm_up_count


def test_the_fine_simulation_follows_the_camera_rate_in_steps_of_at_most_1_900_s() -> None:
    assert substeps(30.0) == 30  # 900 Hz, as before --fps
    assert substeps(200.0) == 5  # 1000 Hz
    assert substeps(900.0) == 1
    assert substeps(1000.0) == 1
    for fps in (30.0, 60.0, 150.0, 200.0, 500.0):
        assert fps * substeps(fps) >= 900.0


def test_the_warm_up_is_one_second_and_at_least_30() -> None:
    assert warm_up_count(30.0) == 30
    assert warm_up_count(200.0) == 200
    assert warm_up_count(10.0) == 30


def test_another_rate_saves_a_variant_of_the_benchmark() -> None:
    assert result_name(30.0) == "forward_prediction"
    assert result_name(200.0) == "forward_prediction_200fps"
    assert result_name(62.5) == "forward_prediction_62.5fps"
