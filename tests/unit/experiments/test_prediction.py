"""Forward prediction: the predictors, the lead, the config keys, and events.csv end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.timing import host_now_ns
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.parse import ExperimentConfigError, parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EVENT_COLUMNS
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.prediction import (
    MAX_LEAD_MS,
    ConstantVelocity,
    KalmanConstantVelocity,
    LeadEstimator,
    PredictionSettings,
)
from deeplabstream.experiments.triggers import Circle, Region
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.hardware.stimulation.base import ActionRecord
from deeplabstream.live.processes.analysis.dispatch import ExperimentRun
from tests.support.files import write_settings
from tests.support.processes import only_session, run_cli

NOSE = KEYPOINT_NAMES.index("nose")


def _keypoints(x: float, y: float, likelihood: float = 1.0, count: int = 6) -> np.ndarray:
    """``count`` keypoints, all at (x, y) with ``likelihood``."""
    return np.tile([x, y, likelihood], (count, 1)).astype(np.float64)


def _observation(t: float, x: float, y: float, likelihood: float = 1.0, **extra) -> Observation:
    return Observation(
        t, "top", round(t * 30), _keypoints(x, y, likelihood), KEYPOINT_NAMES, **extra
    )


# --------------------------------------------------------------------------------------------------
# The predictors
# --------------------------------------------------------------------------------------------------


def test_constant_velocity_is_exact_on_a_linear_track_with_skipped_frames() -> None:
    predictor = ConstantVelocity(window_s=0.1, max_gap_s=0.25, min_likelihood=0.5)
    velocity = np.array([180.0, -75.0])  # px/s
    start = np.array([100.0, 300.0])
    frames = [0, 1, 2, 4, 5, 8, 9, 10, 13, 14]  # skipped frames: unequal intervals
    for frame in frames:
        t = frame / 30
        x, y = start + velocity * t
        predictor.update(t, _keypoints(x, y))
        if frame == frames[0]:  # one position: no velocity yet, it stays there
            np.testing.assert_allclose(predictor.predict(t + 0.05)[NOSE], [x, y])
            continue
        for lead in (0.0, 0.012, 0.05):
            expected = start + velocity * (t + lead)
            np.testing.assert_allclose(predictor.predict(t + lead), np.tile(expected, (6, 1)))


def test_constant_velocity_predicts_only_from_positions_inside_its_window() -> None:
    predictor = ConstantVelocity(window_s=0.1, max_gap_s=1.0, min_likelihood=0.5)
    for frame in range(10):  # standing still ...
        predictor.update(frame / 30, _keypoints(50.0, 50.0))
    for frame in range(10, 14):  # ... then moving at 300 px/s along x
        predictor.update(frame / 30, _keypoints(50.0 + 300.0 * (frame - 9) / 30, 50.0))
    t = 13 / 30
    predicted = predictor.predict(t + 0.02)[NOSE]
    # 0.1 s holds frames 10-13 only: the line of the movement, not a blend with the stop.
    assert predicted[0] == pytest.approx(50.0 + 300.0 * (4 / 30 + 0.02))
    assert predicted[1] == pytest.approx(50.0)


def test_kalman_converges_on_a_noisy_linear_track() -> None:
    rng = np.random.default_rng(5)
    noise = 1.0
    # A small process noise: the model says the velocity hardly changes, as on this track.
    predictor = KalmanConstantVelocity(
        process_noise=1e3, measurement_noise=noise, max_gap_s=0.25, min_likelihood=0.5
    )
    velocity = np.array([240.0, 120.0])
    errors, measured_errors, velocity_errors = [], [], []
    for frame in range(150):
        t = frame / 30
        truth = np.array([80.0, 60.0]) + velocity * t
        x, y = truth + rng.normal(0.0, noise, 2)
        predictor.update(t, _keypoints(x, y))
        velocity_errors.append(np.hypot(*(predictor.velocity[NOSE] - velocity)))
        lead = 0.02
        if frame >= 60:  # after two seconds
            future = truth + velocity * lead
            errors.append(np.hypot(*(predictor.predict(t + lead)[NOSE] - future)))
            measured_errors.append(np.hypot(x - future[0], y - future[1]))
    # The velocity error shrinks as frames come, to a few px/s, and so does its uncertainty.
    assert np.mean(velocity_errors[120:]) < 0.5 * np.mean(velocity_errors[1:5])
    assert math.sqrt(predictor._p11[NOSE]) < 15.0  # px/s, from 1000 at the start
    np.testing.assert_allclose(predictor.velocity[NOSE], velocity, atol=10.0)
    # Converged: closer to where the keypoint will be than the (noisy) measurement of now is,
    # and closer than the measurement noise itself.
    assert np.median(errors) < 0.5 * np.median(measured_errors)
    assert np.median(errors) < noise
    # The uncertainty settles: the position variance is below the measurement's.
    assert predictor._p00[NOSE] < noise**2


def test_kalman_learns_a_velocity_within_a_few_frames() -> None:
    predictor = KalmanConstantVelocity(3e4, 1.0, 0.25, 0.5)
    for frame in range(5):
        t = frame / 30
        predictor.update(t, _keypoints(10.0 + 150.0 * t, 20.0))
    assert predictor.velocity[NOSE, 0] == pytest.approx(150.0, rel=0.05)
    assert predictor.velocity[NOSE, 1] == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize(
    "make",
    [lambda: ConstantVelocity(0.1, 0.25, 0.5), lambda: KalmanConstantVelocity(3e4, 1.0, 0.25, 0.5)],
)
def test_likelihood_gating_ignores_unsure_keypoints(make) -> None:
    predictor = make()
    reference = make()
    for frame in range(8):
        t = frame / 30
        x = 100.0 + 90.0 * t
        predictor.update(t, _keypoints(x, 200.0))
        reference.update(t, _keypoints(x, 200.0))
    t = 8 / 30
    # A wild position below the threshold (and a NaN) adds no sample: the track goes on.
    predictor.update(t, _keypoints(600.0, 10.0, likelihood=0.2))
    reference.update(t, _keypoints(math.nan, math.nan, likelihood=0.9))
    np.testing.assert_allclose(predictor.predict(t + 0.02), reference.predict(t + 0.02))
    assert predictor.predict(t + 0.02)[NOSE, 0] == pytest.approx(100.0 + 90.0 * (t + 0.02), abs=0.5)


@pytest.mark.parametrize(
    "make",
    [lambda: ConstantVelocity(0.1, 0.25, 0.5), lambda: KalmanConstantVelocity(3e4, 1.0, 0.25, 0.5)],
)
def test_a_gap_longer_than_max_gap_forgets_the_track(make) -> None:
    predictor = make()
    for frame in range(10):
        t = frame / 30
        predictor.update(t, _keypoints(100.0 + 300.0 * t, 100.0))
    # Not seen: predicted from the track for max_gap_s, then no prediction at all.
    predictor.update(12 / 30, _keypoints(0.0, 0.0, likelihood=0.0))
    assert np.isfinite(predictor.predict(12 / 30 + 0.02)).all()
    predictor.update(
        20 / 30, _keypoints(0.0, 0.0, likelihood=0.0)
    )  # 0.37 s since the last sighting
    assert np.isnan(predictor.predict(20 / 30 + 0.02)).all()
    # Seen again, elsewhere and standing: a new track, no velocity carried over the gap.
    predictor.update(21 / 30, _keypoints(400.0, 300.0))
    np.testing.assert_allclose(predictor.predict(21 / 30 + 0.05)[NOSE], [400.0, 300.0])


@pytest.mark.parametrize(
    "make",
    [lambda: ConstantVelocity(0.1, 0.25, 0.5), lambda: KalmanConstantVelocity(3e4, 1.0, 0.25, 0.5)],
)
def test_time_going_back_starts_afresh_and_a_repeated_frame_adds_nothing(make) -> None:
    predictor = make()
    for frame in range(6):
        predictor.update(frame / 30, _keypoints(10.0 * frame, 0.0))
    before = predictor.predict(6 / 30)
    predictor.update(5 / 30, _keypoints(50.0, 0.0))  # the same frame again
    np.testing.assert_allclose(predictor.predict(6 / 30), before)
    predictor.update(0.0, _keypoints(7.0, 8.0))  # a new replay
    np.testing.assert_allclose(predictor.predict(0.1)[NOSE], [7.0, 8.0])


# --------------------------------------------------------------------------------------------------
# The lead
# --------------------------------------------------------------------------------------------------


def test_lead_is_fixed_or_follows_the_measured_latency() -> None:
    assert LeadEstimator(fixed_ms=12.5).current_s() == pytest.approx(0.0125)
    lead = LeadEstimator(margin_ms=1.0, window=5)
    assert lead.current_s() == pytest.approx(0.001) and lead.source == "margin"  # offline
    lead.set_elapsed(0.018)  # live, before any command: frame -> decision + margin
    assert lead.current_s() == pytest.approx(0.019) and lead.source == "elapsed"
    for latency_ms in (30, 10, 20, 1000, 25, 22, 21):  # the median of the latest five
        lead.add_latency(latency_ms / 1e3)
    assert lead.current_s() == pytest.approx(0.022) and lead.source == "measured"
    for _ in range(5):
        lead.add_latency(2.0)  # a stalled device: the lead is capped
    assert lead.current_s() == pytest.approx(MAX_LEAD_MS / 1e3)
    lead.add_latency(math.nan)  # ignored
    assert lead.measured == 5


class _FakeDevice:
    """A device whose every command is written ``latency_s`` after the frame arrived."""

    def __init__(self) -> None:
        self.frame_host_s = 0.0
        self.latency_s = 0.0

    def _record(self, command: str) -> ActionRecord:
        return ActionRecord(command, round((self.frame_host_s + self.latency_s) * 1e9))

    def send(self, action: Action) -> ActionRecord:
        return self._record(action.describe())

    def close(self) -> None:
        pass


class _PulseEveryUpdate(Experiment):
    def __init__(self, prediction: PredictionSettings | None = None) -> None:
        super().__init__(prediction=prediction or PredictionSettings("constant-velocity"))
        self.last_seen: object = None  # what on_update was given, its predictions applied

    def on_update(self, obs, t):
        self.last_seen = obs
        return [Action.pulse("box", 0, 0.005)]


def test_the_run_feeds_the_lead_with_each_commands_measured_latency(tmp_path: Path) -> None:
    runtime = ExperimentRuntime(_PulseEveryUpdate())
    device = _FakeDevice()
    run = ExperimentRun(runtime, {"box": device}, tmp_path / "events.csv")  # type: ignore[dict-item]
    runtime.start()
    # The first update: nothing measured yet, so frame -> now plus the margin (1 ms). The frame
    # arrived 40 ms before the update on the host clock.
    first_host = host_now_ns() / 1e9 - 0.040
    device.frame_host_s, device.latency_s = first_host, 0.030
    run.on_poses([_observation(0.0, 10.0, 10.0, host_time_s=first_host)], host_now_ns())
    first = runtime.events.of_kind("action")[-1]
    assert first.lead_ms is not None and first.lead_ms >= 41.0
    assert runtime.prediction is not None and runtime.prediction.lead.measured == 1
    # From then on: the median of the measured latencies (30, 18, 18, 18 ms -> 18 ms).
    for frame, latency in zip((1, 2, 3, 4), (0.018, 0.018, 0.018, 0.025), strict=True):
        host = 100.0 + frame / 30
        device.frame_host_s, device.latency_s = host, latency
        run.on_poses([_observation(frame / 30, 10.0, 10.0, host_time_s=host)], host_now_ns())
        lead_ms = runtime.events.pending[-1].lead_ms
        measured = [0.030, 0.018, 0.018, 0.018][:frame]
        assert lead_ms == pytest.approx(float(np.median(measured)) * 1e3)
    assert runtime.summary()["parameters"]["prediction"]["lead_source"] == "measured"
    run.stop()


# --------------------------------------------------------------------------------------------------
# Experiments: observations, triggers and events
# --------------------------------------------------------------------------------------------------


_LINEAR_CONFIG = """
[Experiment]
TRIAL_DURATION = 0
{experiment}

[Trigger zone]
KIND = region
SHAPE = rect 300 0 640 480
MODE = entered
KEYPOINT = nose
{trigger}

[Stimulation light]
DEVICE = box
COMMAND = pulse
DURATION = 0.01

[Rule enter]
WHEN = zone
DO = light
"""


def _run_linear(config_text: str, speed: float = 300.0, frames: int = 40) -> ExperimentRuntime:
    """The nose moving right at ``speed`` px/s from x = 200, fed to a config experiment."""
    runtime = ExperimentRuntime(parse_experiment_config(config_text, Path("linear.ini")).build())
    runtime.start()
    for frame in range(frames):
        t = frame / 30
        runtime.update(_observation(t, 200.0 + speed * t, 240.0))
    return runtime


def test_a_predicting_config_acts_a_lead_earlier_and_logs_both_positions() -> None:
    measured = _run_linear(_LINEAR_CONFIG.format(experiment="", trigger=""))
    predicted = _run_linear(
        _LINEAR_CONFIG.format(
            experiment="PREDICT = constant-velocity\nPREDICT_LEAD = 50", trigger=""
        )
    )
    (late,) = measured.events.of_kind("action")
    (early,) = predicted.events.of_kind("action")
    # x = 200 + 300 t reaches 300 at t = 1/3 s: frame 10 measured; predicted 50 ms ahead, the
    # first frame whose x + 15 px >= 300 is frame 9.
    assert (late.frame_index, early.frame_index) == (10, 9)
    assert early.keypoint == "nose" and early.lead_ms == pytest.approx(50.0)
    assert early.measured_x == pytest.approx(200.0 + 300.0 * 9 / 30)
    assert early.predicted_x == pytest.approx(early.measured_x + 300.0 * 0.05)
    assert early.predicted_y == pytest.approx(240.0) and early.measured_y == pytest.approx(240.0)
    assert (
        late.predicted_x is None
        and late.lead_ms is None
        and late.measured_x == pytest.approx(300.0)
    )
    # The trigger's own event carries the same positions.
    (trigger_event,) = [e for e in predicted.events.of_kind("trigger") if e.detail == "true"]
    assert trigger_event.predicted_x == early.predicted_x
    summary = predicted.summary()["parameters"]["prediction"]
    assert summary["method"] == "constant-velocity" and summary["lead_ms"] == 50.0


def test_a_trigger_can_keep_measured_positions_in_a_predicting_experiment() -> None:
    runtime = _run_linear(
        _LINEAR_CONFIG.format(
            experiment="PREDICT = kalman\nPREDICT_LEAD = 50", trigger="PREDICTED = false"
        )
    )
    (action,) = runtime.events.of_kind("action")
    assert action.frame_index == 10  # as without prediction
    assert action.predicted_x is not None  # but the prediction is logged all the same
    assert "predicted" not in runtime.experiment.triggers["zone"].describe()


def test_event_keypoint_names_the_keypoint_of_undecided_events() -> None:
    text = """
[Experiment]
PREDICT = constant-velocity
PREDICT_LEAD = 20
EVENT_KEYPOINT = tail_base

[Trigger tick]
KIND = every
PERIOD_S = 1
DURATION_S = 0.5

[Stimulation light]
DEVICE = box
COMMAND = pulse
DURATION = 0.01

[Rule flash]
WHEN = tick
DO = light
"""
    runtime = ExperimentRuntime(parse_experiment_config(text, Path("tick.ini")).build())
    runtime.start()
    keypoints = _keypoints(0.0, 0.0)
    keypoints[KEYPOINT_NAMES.index("tail_base")] = [33.0, 44.0, 1.0]
    runtime.update(Observation(0.0, "top", 0, keypoints, KEYPOINT_NAMES))
    (action,) = runtime.events.of_kind("action")
    assert (action.keypoint, action.measured_x, action.measured_y) == ("tail_base", 33.0, 44.0)


class _PredictedPoints(Experiment):
    """A Python experiment reading predictions through the observation and its helpers."""

    def __init__(self, prediction: str | None) -> None:
        super().__init__(prediction=prediction and PredictionSettings(prediction, lead_ms=100.0))
        self.add_trigger("zone", Region(Circle(400, 240, 30), "inside", "nose", predicted=True))
        self.seen: list[tuple] = []

    def on_update(self, obs, t):
        self.seen.append(
            (
                obs.point("nose"),
                obs.predicted_point("nose"),
                self.point(obs, "nose", predicted=True),
            )
        )
        return []


def test_python_experiments_read_predictions_from_the_observation() -> None:
    experiment = _PredictedPoints("kalman")
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    for frame in range(20):
        t = frame / 30
        runtime.update(_observation(t, 100.0 + 60.0 * t, 240.0))
    measured, predicted, helper = experiment.seen[-1]
    assert predicted == helper
    assert predicted[0] == pytest.approx(measured[0] + 6.0, abs=0.3)  # 60 px/s, 100 ms ahead
    # Without prediction a trigger that asks for it says what to do.
    plain = ExperimentRuntime(_PredictedPoints(None))
    plain.start()
    with pytest.raises(ValueError, match="PREDICT = constant-velocity or kalman"):
        plain.update(_observation(0.0, 1.0, 1.0))


def test_existing_experiments_see_no_prediction() -> None:
    observation = _observation(0.0, 1.0, 2.0)
    assert observation.predicted is None and observation.predicted_time_s is None
    runtime = _run_linear(_LINEAR_CONFIG.format(experiment="", trigger=""))
    assert runtime.prediction is None
    assert "prediction" not in runtime.summary()["parameters"]


def test_several_cameras_are_predicted_at_one_moment() -> None:
    experiment = _PulseEveryUpdate(PredictionSettings("constant-velocity", lead_ms=20.0))
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    side = Observation(0.1, "side", 3, _keypoints(0.0, 0.0), KEYPOINT_NAMES)
    for frame in range(6):
        t = frame / 30
        top = Observation(t, "top", frame, _keypoints(30.0 * frame, 0.0), KEYPOINT_NAMES)
        runtime.update(Observations(t, {"top": top, "side": side}))
    current = experiment.last_seen
    assert isinstance(current, Observations)
    # The same moment for both: the older frame of the side camera looks further ahead.
    assert current["top"].predicted_time_s == pytest.approx(5 / 30 + 0.02)
    assert current["side"].predicted_time_s == pytest.approx(5 / 30 + 0.02)
    assert current["top"].predicted[NOSE, 0] == pytest.approx(30.0 * 5 + 900.0 * 0.02)


# --------------------------------------------------------------------------------------------------
# Config errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("experiment", "trigger", "expected"),
    [
        (
            "PREDICT = linear",
            "",
            "[Experiment] PREDICT = 'linear': expected one of off, constant-velocity, kalman",
        ),
        (
            "PREDICT = kalman\nPREDICT_LEAD = soon",
            "",
            "[Experiment] PREDICT_LEAD = 'soon': expected auto, or a number of ms from 0 to 500",
        ),
        ("PREDICT = kalman\nPREDICT_LEAD = 900", "", "[Experiment] PREDICT_LEAD = '900'"),
        (
            "PREDICT = constant-velocity\nPREDICT_WINDOW = 0",
            "",
            "[Experiment] PREDICT_WINDOW = '0': must be > 0 s",
        ),
        (
            "PREDICT = kalman\nPREDICT_PROCESS_NOISE = -1",
            "",
            "[Experiment] PREDICT_PROCESS_NOISE = '-1'",
        ),
        (
            "PREDICT = kalman\nPREDICT_MIN_LIKELIHOOD = 2",
            "",
            "[Experiment] PREDICT_MIN_LIKELIHOOD = '2'",
        ),
        (
            "PREDICT = kalman\nPREDICT_WINDOW = 0.2",
            "",
            "[Experiment]: PREDICT_WINDOW is only used with PREDICT = constant-velocity",
        ),
        (
            "PREDICT_LEAD = 20",
            "",
            "[Experiment]: PREDICT_LEAD is only used with PREDICT = constant-velocity or kalman",
        ),
        (
            "",
            "PREDICTED = true",
            "[Trigger zone] PREDICTED = 'true': this experiment predicts no positions",
        ),
        ("PREDICT = kalman", "PREDICTED = maybe", "[Trigger zone] PREDICTED = 'maybe'"),
    ],
)
def test_bad_prediction_settings_name_file_section_and_key(
    tmp_path: Path, experiment: str, trigger: str, expected: str
) -> None:
    path = tmp_path / "bad.ini"
    with pytest.raises(ExperimentConfigError) as caught:
        parse_experiment_config(_LINEAR_CONFIG.format(experiment=experiment, trigger=trigger), path)
    assert f"{path}: {expected}" in str(caught.value)


def test_prediction_settings_in_python_are_checked() -> None:
    with pytest.raises(ValueError, match="method must be one of off, constant-velocity, kalman"):
        PredictionSettings("linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lead_ms must be from 0 to 500 ms"):
        PredictionSettings("kalman", lead_ms=-3.0)
    with pytest.raises(ValueError, match="measurement_noise must be > 0 px"):
        PredictionSettings("kalman", measurement_noise=0.0)
    with pytest.raises(ValueError, match="predicted must be True or False"):
        Region(Circle(1, 1, 1), predicted="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Through the real worker: camera -> pose model -> experiment -> events.csv
# --------------------------------------------------------------------------------------------------


def test_a_predicting_config_writes_both_positions_in_events_csv_through_the_worker(
    tmp_path: Path,
) -> None:
    # The nose moves right at 220 px/s on a straight line (frames 15-75), then stands.
    config = tmp_path / "predict_nose.ini"
    config.write_text(
        "[Experiment]\nTRIAL_DURATION = 0\nPREDICT = constant-velocity\nPREDICT_LEAD = 20\n"
        "[Trigger seen]\nKIND = region\nSHAPE = rect 0 0 640 480\nKEYPOINT = nose\n"
        "[Stimulation tick]\nDEVICE = box\nCOMMAND = pulse\nDURATION = 0.005\n"
        "[Rule every_update]\nWHEN = seen\nEDGE = while\nDO = tick\n",
        encoding="utf-8",
    )
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 100 240; 15: 100 240; 75: 540 240\n"
        f"[Experiment]\nNAME = {config}\n[Device box]\nTYPE = log\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--experiment-enabled",
        "--frames",
        "75",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    events = pd.read_csv(only_session(tmp_path / "out") / "events.csv")
    assert list(events.columns) == list(EVENT_COLUMNS)  # the new columns at the end
    every_action = events[events["kind"] == "action"]
    # The stop's switch-offs were decided by no pose: they carry none (issue 44).
    made_by_the_stop = every_action["detail"].str.contains(r"reason=(?:stop|finish)")
    assert every_action[made_by_the_stop]["keypoint"].isna().all()
    actions = every_action[~made_by_the_stop]
    assert len(actions) >= 10
    assert (actions["keypoint"] == "nose").all()
    assert (actions["lead_ms"] == 20.0).all()
    assert actions[["measured_x", "measured_y", "predicted_x", "predicted_y"]].notna().all().all()
    # While moving, the prediction is 220 px/s x 20 ms = 4.4 px ahead along x (model noise aside).
    moving = actions[(actions["frame_index"] >= 22) & (actions["frame_index"] <= 72)]
    ahead = moving["predicted_x"] - moving["measured_x"]
    assert len(moving) >= 5
    assert ahead.median() == pytest.approx(4.4, abs=1.5)
    assert (moving["predicted_y"] - moving["measured_y"]).abs().median() < 1.5


def test_predicted_is_a_keypoint_trigger_parameter_that_describe_gives_back() -> None:
    from deeplabstream.experiments.triggers import make_trigger, parameters_of

    trigger = make_trigger("region", {"shape": "circle 1 2 3", "predicted": "true"})
    described = trigger.describe()
    assert described["predicted"] is True
    rebuilt = make_trigger("region", {k: str(v) for k, v in described.items() if k != "kind"})
    assert rebuilt.describe() == described
    assert "predicted" not in make_trigger("region", {"shape": "circle 1 2 3"}).describe()
    for kind in ("speed_above", "freezing", "distance_below", "head_direction", "height"):
        assert parameters_of(kind)["predicted"] == "true or false"
    assert "predicted" not in parameters_of("every")
