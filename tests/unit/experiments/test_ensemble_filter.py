"""The keypoint filter declared once, and its ensemble keys: ``MAX_ENSEMBLE_STD`` and ``SMOOTHED``.

A camera that runs an ensemble gives each observation its models' spread (``Observation.spread``)
and, with the causal filter, smoothed positions. A rule with ``MAX_ENSEMBLE_STD`` sees a keypoint
the models disagree on as not seen, with the same ``POLICY`` and ``HOLD_S`` as one below
``MIN_LIKELIHOOD``; every keypoint kind takes it from the one spec list, a lab's kind through the
factory's wrapper, a config from ``[Experiment] MAX_ENSEMBLE_STD``.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.experiments.config.parse import parse_experiment_config
from deeplabstream.experiments.observation import KeypointFilter, Observation
from deeplabstream.experiments.triggers import Circle, Region, make_trigger
from deeplabstream.experiments.triggers.base import FilteredTrigger, KeypointTrigger
from deeplabstream.experiments.triggers.factory import TRIGGER_KINDS, parameter_specs
from deeplabstream.experiments.triggers.kinds import FILTER, trigger_kind

FPS = 30.0


def _ensemble(x: float, spread: float, t: float, likelihood: float = 0.9) -> Observation:
    """One frame whose three models place the nose at x - spread, x, x + spread (y alike)."""
    members = np.array([[[x + d, 100.0 + d, likelihood]] for d in (-spread, 0.0, spread)])
    std = np.std(members[:, 0, :2], axis=0).mean()  # Lightning Pose's ensemble std dev
    return Observation(
        t, "cam", round(t * FPS), np.array([[x, 100.0, likelihood]]), ("nose",),
        ensemble_std=np.array([std]), members=members,
    )  # fmt: skip


def test_the_spread_is_read_beside_the_likelihood() -> None:
    obs = _ensemble(100.0, 3.0, 0.0)
    assert obs.likelihood("nose") == pytest.approx(0.9)
    assert obs.spread("nose") == pytest.approx(np.std([-3.0, 0.0, 3.0]))
    assert obs.point("nose", max_ensemble_std=3.0) == (100.0, 100.0)
    assert obs.point("nose", max_ensemble_std=2.0) is None
    one_model = Observation(0.0, "cam", 0, np.array([[1.0, 2.0, 0.9]]), ("nose",))
    with pytest.raises(ValueError, match=r"runs one pose model.*MODEL_PATH"):
        one_model.spread("nose")
    with pytest.raises(ValueError, match="ENSEMBLE_SMOOTHING = causal"):
        one_model.smoothed_point("nose")


def test_an_unknown_spread_is_not_agreement() -> None:
    obs = dataclass_replace(_ensemble(100.0, 1.0, 0.0), ensemble_std=np.array([np.nan]))
    assert obs.point("nose", max_ensemble_std=100.0) is None


def dataclass_replace(obs: Observation, **changes: Any) -> Observation:
    import dataclasses

    return dataclasses.replace(obs, **changes)


def test_a_region_rule_fires_only_where_the_models_agree() -> None:
    region = make_trigger(
        "region", {"shape": "circle 100 100 20", "max_ensemble_std": "4", "hold_s": "0"}
    )
    spreads = [1.0, 2.0, 9.0, 9.0, 1.0]
    states = [region.update(_ensemble(100.0, s, n / FPS)) for n, s in enumerate(spreads)]
    assert states == [True, True, False, False, True]
    assert region.describe()["max_ensemble_std"] == 4.0
    described = {k: str(v) for k, v in region.describe().items() if k != "kind"}
    rebuilt = make_trigger("region", described)
    assert rebuilt.describe() == region.describe()


def test_a_disagreement_is_held_like_a_low_likelihood() -> None:
    """HOLD_S bridges a short disagreement, exactly as it bridges a likelihood dip."""
    by_spread = Region(Circle(100, 100, 20), max_ensemble_std=4.0, hold_s=0.1)
    by_likelihood = Region(Circle(100, 100, 20), min_likelihood=0.5, hold_s=0.1)
    frames = [(1.0, 0.9), (9.0, 0.1), (9.0, 0.1), (9.0, 0.1), (9.0, 0.1), (1.0, 0.9)]
    spread_states, likelihood_states = [], []
    for n, (spread, likelihood) in enumerate(frames):
        t = n / FPS
        spread_states.append(by_spread.update(_ensemble(100.0, spread, t)))
        likelihood_states.append(by_likelihood.update(_ensemble(100.0, 0.0, t, likelihood)))
    assert spread_states == likelihood_states == [True, True, True, True, False, True]


def test_the_hold_policy_keeps_the_last_agreed_position() -> None:
    keypoint_filter = KeypointFilter(policy="hold", hold_s=0.2, max_ensemble_std=2.0)
    assert keypoint_filter.point(_ensemble(100.0, 1.0, 0.0), "nose") == (100.0, 100.0)
    held = keypoint_filter.lookup(_ensemble(140.0, 8.0, 0.1), "nose")
    assert held is not None and held.held and (held.x, held.y) == (100.0, 100.0)
    assert keypoint_filter.lookup(_ensemble(140.0, 8.0, 0.4), "nose") is None


def test_every_keypoint_kind_takes_the_filter_from_the_one_spec_list() -> None:
    """The five-keyword block is gone: each kind's signature passes ``**options`` on."""
    keypoint_kinds = [name for name in TRIGGER_KINDS if "hold_s" in trigger_kind(name).parameters]
    assert len(keypoint_kinds) >= 14
    for name in keypoint_kinds:
        factory = trigger_kind(name).factory
        signature = inspect.signature(factory)
        assert "hold_s" not in signature.parameters, name  # declared once, not per kind
        if "max_ensemble_std" in trigger_kind(name).parameters:
            assert parameter_specs(name)["max_ensemble_std"] is FILTER["max_ensemble_std"], name


def test_a_subclass_of_the_previous_release_passing_the_filter_positionally() -> None:
    class OldStyle(KeypointTrigger):
        kind = "old_style"

        def __init__(self, camera: str | None = None) -> None:
            super().__init__(camera, 0.7, "hold", 0.2, False)

        def keypoints_read(self) -> tuple[str, ...]:
            return ("nose",)

        def step(self, obs: Observation) -> bool:
            return self._point(obs, "nose") is not None

    trigger = OldStyle("cam")
    assert trigger.filter.options() == {
        "min_likelihood": 0.7, "policy": "hold", "hold_s": 0.2, "max_ensemble_std": None,
    }  # fmt: skip
    assert trigger.update(_ensemble(1.0, 0.0, 0.0, 0.9))
    assert trigger.update(_ensemble(1.0, 0.0, 0.1, 0.1))  # held by policy "hold"
    with pytest.raises(ValueError, match="predicted or smoothed"):
        Region(Circle(0, 0, 1), predicted=True, smoothed=True)


LAB_TRIGGER = """
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import TriggerKind


class NoseSeen(Trigger):
    kind = "lab_nose_seen"

    def keypoints_read(self):
        return ("nose",)

    def step(self, obs):
        return obs.point("nose") is not None

    def params(self):
        return {}


KIND = TriggerKind("lab_nose_seen", NoseSeen, "The nose is seen.")
"""


def test_a_lab_kind_gets_max_ensemble_std_without_declaring_it(tmp_path: Path) -> None:
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "lab_nose_seen.py").write_text(LAB_TRIGGER, encoding="utf-8")
    with using_settings_folder(tmp_path):
        trigger = make_trigger("lab_nose_seen", {"max_ensemble_std": "4", "hold_s": "0"})
        assert isinstance(trigger, FilteredTrigger)
        assert [trigger.update(_ensemble(1.0, s, n / FPS)) for n, s in enumerate((1, 9, 1))] == [
            True, False, True,
        ]  # fmt: skip
        assert trigger.describe()["max_ensemble_std"] == 4.0


def test_the_experiment_default_reaches_every_keypoint_rule() -> None:
    text = textwrap.dedent("""
        [Experiment]
        MAX_ENSEMBLE_STD = 4

        [Trigger zone]
        KIND = region
        SHAPE = circle 100 100 20

        [Trigger own]
        KIND = region
        SHAPE = circle 100 100 20
        MAX_ENSEMBLE_STD = 10

        [Trigger clock]
        KIND = every
        PERIOD_S = 1
        DURATION_S = 0.5

        [Stimulation pulse]
        DEVICE = laser
        COMMAND = pulse
        DURATION = 0.05

        [Rule go]
        WHEN = zone
        DO = pulse
    """)
    triggers = parse_experiment_config(text).build().triggers
    assert triggers["zone"].describe()["max_ensemble_std"] == 4.0
    assert triggers["own"].describe()["max_ensemble_std"] == 10.0
    assert "max_ensemble_std" not in triggers["clock"].describe()
    with pytest.raises(ValueError, match=r"MAX_ENSEMBLE_STD.*> 0"):
        parse_experiment_config(text.replace("MAX_ENSEMBLE_STD = 4", "MAX_ENSEMBLE_STD = -1"))
