"""docs/ensembles.md's examples, run as written: the settings, the config and the lab's trigger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.experiments.config.parse import parse_experiment_config
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers import make_trigger
from deeplabstream.settings import load_settings
from deeplabstream.settings.effective import resolve_cameras
from tests.support.paths import PROJECT_ROOT
from tests.support.plugin_page import page_blocks

PAGE = PROJECT_ROOT / "docs" / "ensembles.md"


def _blocks() -> dict[str, str]:
    return {block.name: block.text for block in page_blocks(PAGE)}


def test_the_pages_settings_name_an_ensemble_of_three(tmp_path: Path) -> None:
    (tmp_path / "settings.ini").write_text(_blocks()["settings.ini"], encoding="utf-8")
    plan = resolve_cameras(load_settings(tmp_path / "settings.ini"))
    (camera,) = plan.cameras
    assert [path.relative_to(tmp_path).as_posix() for path in camera.ensemble] == [
        "models/dlc/shuffle1.pt", "models/dlc/shuffle2.pt", "models/lp/seed1",
    ]  # fmt: skip
    assert camera.keypoint_map == (("snout", "nose"), ("tailbase", "tail_base"))
    assert plan.settings.pose.ensemble_smoothing == "causal"
    assert plan.settings.pose.eks_smooth_param == (10.0,)


def test_the_pages_config_gates_its_rule_on_the_spread() -> None:
    triggers = parse_experiment_config(_blocks()["experiments/agreed_zone.ini"]).build().triggers
    assert triggers["zone"].describe()["max_ensemble_std"] == 4.0  # [Experiment]'s default
    assert triggers["zone_smoothed"].describe()["max_ensemble_std"] == 8.0
    assert triggers["zone_smoothed"].describe()["smoothed"] is True


def _frame(spread: float, t: float) -> Observation:
    members = np.array([[[100.0 + d, 100.0 + d, 0.9]] for d in (-spread, 0.0, spread)])
    return Observation(
        t, "top", round(t * 30), np.array([[100.0, 100.0, 0.9]]), ("nose",),
        ensemble_std=np.std(members[:, :, :2], axis=0).mean(axis=1), members=members,
    )  # fmt: skip


def test_the_pages_trigger_reads_the_spread(tmp_path: Path) -> None:
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "still_and_sure.py").write_text(
        _blocks()["triggers/still_and_sure.py"], encoding="utf-8"
    )
    one_model = Observation(0.0, "top", 0, np.array([[1.0, 1.0, 0.9]]), ("nose",))
    with using_settings_folder(tmp_path):
        trigger = make_trigger("still_and_sure", {"max_px": "3", "hold_s": "0"})
        states = [trigger.update(_frame(s, n / 30)) for n, s in enumerate((1.0, 5.0, 2.0))]
        with pytest.raises(ValueError, match="runs one pose model"):
            make_trigger("still_and_sure", {}).update(one_model)
    assert states == [True, False, True]
